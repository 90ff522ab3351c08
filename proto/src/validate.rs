//! Value checks that CBOR's types alone cannot express: finite numbers, latitude and longitude
//! ranges, non-empty ids, device id syntax. The codec runs them on every message it encodes or
//! decodes, so a value that passed through `proto` is one the rest of the system can trust.

use crate::downlink::{
    Config, Down, DownBody, Job, JobCancel, JobKind, Refusal, MAX_REFUSAL_REASON_LEN,
};
use crate::record::{
    Collection, Envelope, Gap, Health, JobUpdate, Outcome, Position, Record, RecordBody,
    RoundEvent, SourceHealth, Telemetry,
};
use crate::{Ack, DeviceId, State, TimestampMs};

/// The longest id (vehicle, round, job, asset) a message may carry, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// The longest free text (notes, addresses, descriptions), in bytes.
pub const MAX_TEXT_LEN: usize = 1000;

/// A value that breaks the contract: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for `{field}`: {reason}")]
pub struct Invalid {
    /// The field's path, e.g. `recs[3].pos.lat`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Invalid {
    /// An invalid `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Puts `parent` in front of the field's path.
    fn under(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// A message whose values can be checked.
pub trait Validate {
    /// Checks every value; the first problem found is returned.
    fn validate(&self) -> Result<(), Invalid>;
}

/// Checks an id: non-empty, at most [`MAX_ID_LEN`] bytes, no control characters.
pub fn check_id(field: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    check_text(field, id, MAX_ID_LEN)
}

/// Checks free text: at most `max` bytes, no control characters other than newlines and tabs.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), Invalid> {
    if text.len() > max {
        return Err(Invalid::new(
            field,
            format!("is {} bytes, over the {max}-byte limit", text.len()),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Invalid::new(field, "contains a control character"));
    }
    Ok(())
}

fn check_optional_text(field: &str, text: &Option<String>, max: usize) -> Result<(), Invalid> {
    text.as_deref()
        .map_or(Ok(()), |text| check_text(field, text, max))
}

fn check_range(field: &str, value: f64, min: f64, max: f64) -> Result<(), Invalid> {
    if !value.is_finite() {
        return Err(Invalid::new(
            field,
            format!("{value} is not a finite number"),
        ));
    }
    if value < min || value > max {
        return Err(Invalid::new(
            field,
            format!("{value} is outside {min} to {max}"),
        ));
    }
    Ok(())
}

fn check_optional_range(
    field: &str,
    value: Option<impl Into<f64>>,
    min: f64,
    max: f64,
) -> Result<(), Invalid> {
    value.map_or(Ok(()), |value| check_range(field, value.into(), min, max))
}

fn check_timestamp(field: &str, ts: i64) -> Result<(), Invalid> {
    if ts < 0 {
        return Err(Invalid::new(field, "must not be before 1970"));
    }
    Ok(())
}

fn check_device(field: &str, device: &DeviceId) -> Result<(), Invalid> {
    DeviceId::check(device.as_str()).map_err(|e| Invalid::new(field, e.to_string()))
}

impl Validate for Position {
    fn validate(&self) -> Result<(), Invalid> {
        check_range("lat", self.lat, -90.0, 90.0)?;
        check_range("lon", self.lon, -180.0, 180.0)?;
        check_range("acc", self.acc.into(), 0.0, 100_000.0)
    }
}

/// Checks a batch's header: everything in an [`Envelope`] but its records.
pub(crate) fn check_envelope_header(dev: &DeviceId, sent: TimestampMs) -> Result<(), Invalid> {
    check_device("dev", dev)?;
    check_timestamp("sent", sent)
}

impl Validate for Envelope {
    fn validate(&self) -> Result<(), Invalid> {
        check_envelope_header(&self.dev, self.sent)?;
        if self.recs.len() > crate::MAX_BATCH_RECORDS {
            return Err(Invalid::new(
                "recs",
                format!(
                    "{} records, over the limit of {} per batch",
                    self.recs.len(),
                    crate::MAX_BATCH_RECORDS
                ),
            ));
        }
        for (i, record) in self.recs.iter().enumerate() {
            record
                .validate()
                .map_err(|e| e.under(&format!("recs[{i}]")))?;
        }
        Ok(())
    }
}

impl Validate for Record {
    fn validate(&self) -> Result<(), Invalid> {
        if self.seq == 0 {
            return Err(Invalid::new("seq", "sequence numbers start at 1"));
        }
        check_timestamp("ts", self.ts)?;
        let (tag, result) = match &self.body {
            RecordBody::Collection(c) => ("col", c.validate()),
            RecordBody::Telemetry(t) => ("tel", t.validate()),
            RecordBody::JobUpdate(j) => ("job", j.validate()),
            RecordBody::RoundEvent(r) => ("rnd", r.validate()),
            RecordBody::Health(h) => ("hlt", h.validate()),
            RecordBody::Gap(g) => ("gap", g.validate().and_then(|()| gap_below(g, self.seq))),
        };
        result.map_err(|e| e.under(&format!("body.{tag}")))
    }
}

impl Validate for Collection {
    fn validate(&self) -> Result<(), Invalid> {
        if self.uprn == Some(0) {
            return Err(Invalid::new("uprn", "UPRNs start at 1"));
        }
        self.pos.validate().map_err(|e| e.under("pos"))?;
        check_id("vehicle", &self.vehicle)?;
        check_id("round", &self.round)?;
        if let Some(job) = &self.job {
            check_id("job", job)?;
        }
        if let Some(photo) = &self.photo {
            let is_sha256_hex = photo.len() == 64
                && photo
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !is_sha256_hex {
                return Err(Invalid::new("photo", "must be a lower-case hex SHA-256"));
            }
        }
        check_optional_text("note", &self.note, MAX_TEXT_LEN)?;
        if self.outcome == Outcome::Other && self.note.as_deref().is_none_or(str::is_empty) {
            return Err(Invalid::new(
                "note",
                "is required when the outcome is `other`",
            ));
        }
        Ok(())
    }
}

impl Validate for Telemetry {
    fn validate(&self) -> Result<(), Invalid> {
        check_id("asset", &self.asset)?;
        for (field, value) in [
            ("flow", self.flow),
            ("ret", self.ret),
            ("dhw", self.dhw),
            ("out", self.out),
            ("exh", self.exh),
            ("setp", self.setp),
        ] {
            // OpenTherm's f8.8 spans −128 to 128 °C; exhaust (s16) may go higher.
            check_optional_range(field, value, -128.0, 400.0)?;
        }
        for (field, value) in [
            ("room", self.room),
            ("dhw_setp", self.dhw_setp),
            ("max_setp", self.max_setp),
        ] {
            check_optional_range(field, value, -128.0, 400.0)?;
        }
        check_optional_range("bar", self.bar, 0.0, 10.0)?;
        check_optional_range("modu", self.modu, 0.0, 100.0)?;
        check_optional_range("min_modu", self.min_modu.map(f64::from), 0.0, 100.0)?;
        // f8.8 l/min; a domestic tap draws at most a few tens.
        check_optional_range("dhw_flow", self.dhw_flow, 0.0, 100.0)?;
        for (field, ids) in [("inval", &self.inval), ("unsup", &self.unsup)] {
            // Ascending and distinct: at most the 256 data ids, so the list cannot grow.
            if !ids.windows(2).all(|pair| pair[0] < pair[1]) {
                return Err(Invalid::new(
                    field,
                    "must be distinct data ids in ascending order",
                ));
            }
        }
        check_optional_range("gas", self.gas, 0.0, f64::MAX)?;
        check_optional_range("heat", self.heat, 0.0, f64::MAX)
    }
}

impl Validate for JobUpdate {
    fn validate(&self) -> Result<(), Invalid> {
        check_id("job", &self.job)?;
        if let Some(pos) = &self.pos {
            pos.validate().map_err(|e| e.under("pos"))?;
        }
        check_optional_text("note", &self.note, MAX_TEXT_LEN)
    }
}

impl Validate for RoundEvent {
    fn validate(&self) -> Result<(), Invalid> {
        check_id("round", &self.round)?;
        check_id("vehicle", &self.vehicle)
    }
}

impl Validate for Health {
    fn validate(&self) -> Result<(), Invalid> {
        check_optional_range("batt", self.batt, 0.0, 100.0)?;
        check_id("ver", &self.ver)?;
        match &self.src {
            Some(src) => src.validate().map_err(|e| e.under("src")),
            None => Ok(()),
        }
    }
}

impl Validate for SourceHealth {
    fn validate(&self) -> Result<(), Invalid> {
        check_optional_text("why", &self.why, MAX_TEXT_LEN)
    }
}

impl Validate for Gap {
    fn validate(&self) -> Result<(), Invalid> {
        if self.from == 0 || self.from > self.to {
            return Err(Invalid::new("from", "must be at least 1 and at most `to`"));
        }
        // Gaps are exact: the gateway acks through a gap's range, so a gap that covered numbers
        // the device kept would let their later arrival look like a replay.
        let span = self.to - self.from + 1;
        if self.count != span {
            return Err(Invalid::new(
                "count",
                format!("must be {span}, the size of the range: every number in it was dropped"),
            ));
        }
        Ok(())
    }
}

/// A gap may only account for numbers below its own record's: the gateway acks through a gap's
/// range once it has the gap record, so a gap reaching past itself (seq 1 claiming 2..10) would
/// ack records never received, and drop them as replays when they came (docs/decisions/0001).
fn gap_below(gap: &Gap, own_seq: u64) -> Result<(), Invalid> {
    if gap.to >= own_seq {
        return Err(Invalid::new(
            "to",
            format!(
                "{} is not below the gap record's own seq {own_seq}: a gap may only cover \
                 sequences below its own",
                gap.to
            ),
        ));
    }
    Ok(())
}

impl Validate for Ack {
    fn validate(&self) -> Result<(), Invalid> {
        if self.rej.len() > crate::MAX_BATCH_RECORDS {
            return Err(Invalid::new(
                "rej",
                format!(
                    "{} refusals, over the limit of {}",
                    self.rej.len(),
                    crate::MAX_BATCH_RECORDS
                ),
            ));
        }
        for (i, refusal) in self.rej.iter().enumerate() {
            refusal
                .validate()
                .map_err(|e| e.under(&format!("rej[{i}]")))?;
        }
        Ok(())
    }
}

impl Validate for Refusal {
    fn validate(&self) -> Result<(), Invalid> {
        if self.seq == 0 {
            return Err(Invalid::new("seq", "sequence numbers start at 1"));
        }
        if self.why.is_empty() {
            return Err(Invalid::new("why", "must not be empty"));
        }
        if self.why.len() > MAX_REFUSAL_REASON_LEN {
            return Err(Invalid::new(
                "why",
                format!(
                    "is {} bytes, over the {MAX_REFUSAL_REASON_LEN}-byte limit",
                    self.why.len()
                ),
            ));
        }
        if self.why.chars().any(char::is_control) {
            return Err(Invalid::new("why", "contains a control character"));
        }
        Ok(())
    }
}

impl Validate for State {
    fn validate(&self) -> Result<(), Invalid> {
        check_timestamp("ts", self.ts)
    }
}

impl Validate for Down {
    fn validate(&self) -> Result<(), Invalid> {
        check_timestamp("sent", self.sent)?;
        match &self.body {
            DownBody::Job(job) => job.validate().map_err(|e| e.under("body.job")),
            DownBody::JobCancel(cancel) => cancel.validate().map_err(|e| e.under("body.cancel")),
            DownBody::Config(config) => config.validate().map_err(|e| e.under("body.config")),
        }
    }
}

impl Validate for Job {
    fn validate(&self) -> Result<(), Invalid> {
        check_id("id", &self.id)?;
        if self.rev == 0 {
            return Err(Invalid::new("rev", "revisions start at 1"));
        }
        check_timestamp("due", self.due)?;
        match &self.kind {
            JobKind::ReturnCollection(ret) => {
                let inner = || -> Result<(), Invalid> {
                    check_id("report", &ret.report)?;
                    if ret.uprn == 0 {
                        return Err(Invalid::new("uprn", "UPRNs start at 1"));
                    }
                    check_text("addr", &ret.addr, MAX_TEXT_LEN)?;
                    ret.pos.validate().map_err(|e| e.under("pos"))
                };
                inner().map_err(|e| e.under("kind.return"))
            }
            JobKind::Repair(repair) => {
                let inner = || -> Result<(), Invalid> {
                    check_id("asset", &repair.asset)?;
                    check_text("addr", &repair.addr, MAX_TEXT_LEN)?;
                    check_text("desc", &repair.desc, MAX_TEXT_LEN)
                };
                inner().map_err(|e| e.under("kind.repair"))
            }
        }
    }
}

impl Validate for JobCancel {
    fn validate(&self) -> Result<(), Invalid> {
        check_id("id", &self.id)?;
        check_optional_text("reason", &self.reason, MAX_TEXT_LEN)
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), Invalid> {
        for (field, value) in [
            ("sample_s", self.sample_s),
            ("health_s", self.health_s),
            ("batch_max", self.batch_max),
        ] {
            if value == Some(0) {
                return Err(Invalid::new(field, "must be at least 1"));
            }
        }
        if let Some(batch_max) = self.batch_max {
            if batch_max as usize > crate::MAX_BATCH_RECORDS {
                return Err(Invalid::new(
                    "batch_max",
                    format!("must be at most {}", crate::MAX_BATCH_RECORDS),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinStream, RecordBody};

    fn collection() -> Collection {
        Collection {
            uprn: Some(100021234567),
            stream: BinStream::Refuse,
            outcome: Outcome::Collected,
            pos: Position {
                lat: 51.5,
                lon: -0.45,
                acc: 4.0,
            },
            vehicle: "RCV-07".into(),
            round: "MON-A".into(),
            job: None,
            photo: None,
            note: None,
        }
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        let mut c = collection();
        c.pos.lat = 91.0;
        let envelope = Envelope {
            v: 1,
            dev: DeviceId::new("cab-1").unwrap(),
            sent: 0,
            recs: vec![Record {
                seq: 1,
                ts: 0,
                body: RecordBody::Collection(c),
                boot: None,
                mono: None,
            }],
            boot: None,
            mono: None,
        };
        let err = envelope.validate().unwrap_err();
        assert_eq!(err.field, "recs[0].body.col.pos.lat");
    }

    #[test]
    fn checks_the_revision_1_1_telemetry_fields() {
        let ok = Telemetry {
            asset: "B-1".into(),
            inval: vec![18, 28],
            unsup: vec![27],
            min_modu: Some(20),
            dhw_flow: Some(7.5),
            room: Some(19.5),
            ..Telemetry::default()
        };
        assert!(ok.validate().is_ok());
        let field = |t: Telemetry| t.validate().unwrap_err().field;
        for (bad, name) in [
            (
                Telemetry {
                    inval: vec![28, 18],
                    ..ok.clone()
                },
                "inval",
            ),
            (
                Telemetry {
                    unsup: vec![27, 27],
                    ..ok.clone()
                },
                "unsup",
            ),
            (
                Telemetry {
                    min_modu: Some(101),
                    ..ok.clone()
                },
                "min_modu",
            ),
            (
                Telemetry {
                    dhw_flow: Some(-1.0),
                    ..ok.clone()
                },
                "dhw_flow",
            ),
            (
                Telemetry {
                    room: Some(f32::NAN),
                    ..ok.clone()
                },
                "room",
            ),
        ] {
            assert_eq!(field(bad), name);
        }
    }

    #[test]
    fn rejects_nan_and_infinite_readings() {
        let mut c = collection();
        c.pos.lon = f64::NAN;
        assert_eq!(c.validate().unwrap_err().field, "pos.lon");
        let t = Telemetry {
            asset: "B-1".into(),
            flow: Some(f32::INFINITY),
            ..Telemetry::default()
        };
        assert_eq!(t.validate().unwrap_err().field, "flow");
    }

    #[test]
    fn a_source_reason_is_checked_as_text() {
        let mut health = crate::examples::health_with_source();
        health.validate().unwrap();
        health.src = Some(SourceHealth {
            st: crate::SourceStatus::Failed,
            why: Some("x".repeat(MAX_TEXT_LEN + 1)),
        });
        assert_eq!(health.validate().unwrap_err().field, "src.why");
    }

    #[test]
    fn other_outcome_needs_a_note() {
        let mut c = collection();
        c.outcome = Outcome::Other;
        assert_eq!(c.validate().unwrap_err().field, "note");
        c.note = Some("bin on fire".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn gap_count_fits_its_range() {
        let gap = Gap {
            from: 5,
            to: 6,
            count: 3,
            reason: crate::GapReason::DiskBudget,
        };
        assert_eq!(gap.validate().unwrap_err().field, "count");
        let partial = Gap {
            count: 1,
            ..gap.clone()
        };
        assert_eq!(partial.validate().unwrap_err().field, "count");
        let exact = Gap { count: 2, ..gap };
        assert!(exact.validate().is_ok());
    }

    #[test]
    fn photo_must_be_a_hash() {
        let mut c = collection();
        c.photo = Some("not-a-hash".into());
        assert_eq!(c.validate().unwrap_err().field, "photo");
        c.photo = Some("a".repeat(64));
        assert!(c.validate().is_ok());
    }
}
