//! What the app sends, as JSON, and how each becomes a record. Unknown fields are refused (a typo
//! must not silently drop a value), and every value passes `proto`'s checks before anything is
//! written, so a refused request changes nothing.

use proto::validate::check_id;
use proto::{
    BinStream, Collection, Invalid, JobStatus, JobUpdate, Outcome, Position, RecordBody,
    RoundEvent, RoundPhase, TimestampMs, Validate,
};
use serde::Deserialize;

/// `POST /v1/collections`: a crew's confirmation of one property's bin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    /// The property's UPRN, if the app knows it.
    #[serde(default)]
    pub uprn: Option<u64>,
    /// Which bin.
    pub stream: BinStream,
    /// What the crew found.
    pub outcome: Outcome,
    /// Where the vehicle was: `{"lat": …, "lon": …, "acc": …}`.
    pub pos: Position,
    /// The vehicle's fleet id.
    pub vehicle: String,
    /// The round being worked.
    pub round: String,
    /// The return job this answers, if any.
    #[serde(default)]
    pub job: Option<String>,
    /// The photo's SHA-256, lower-case hex.
    #[serde(default)]
    pub photo: Option<String>,
    /// The crew's note; required when the outcome is `other`.
    #[serde(default)]
    pub note: Option<String>,
    /// When it happened (UTC ms); default: when the agent receives it.
    #[serde(default)]
    pub ts: Option<TimestampMs>,
}

/// `POST /v1/rounds/{id}/start` and `…/complete`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundChange {
    /// The vehicle working the round.
    pub vehicle: String,
    /// When (UTC ms); default: when the agent receives it.
    #[serde(default)]
    pub ts: Option<TimestampMs>,
}

/// `POST /v1/jobs/{id}/status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJobStatus {
    /// The new status.
    pub status: JobStatus,
    /// Where the operative was, if known.
    #[serde(default)]
    pub pos: Option<Position>,
    /// The operative's note.
    #[serde(default)]
    pub note: Option<String>,
    /// When (UTC ms); default: when the agent receives it.
    #[serde(default)]
    pub ts: Option<TimestampMs>,
}

/// A record to store: its timestamp and body, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The record's timestamp.
    pub ts: TimestampMs,
    /// The record.
    pub body: RecordBody,
}

/// The timestamp to use: the app's, if it gave one and it is sane, else `now`.
fn timestamp(ts: Option<TimestampMs>, now: TimestampMs) -> Result<TimestampMs, Invalid> {
    match ts {
        Some(ts) if ts < 0 => Err(Invalid::new("ts", "must not be before 1970")),
        Some(ts) => Ok(ts),
        None => Ok(now),
    }
}

impl NewCollection {
    /// The collection record, checked.
    pub fn into_record(self, now: TimestampMs) -> Result<Checked, Invalid> {
        let ts = timestamp(self.ts, now)?;
        let collection = Collection {
            uprn: self.uprn,
            stream: self.stream,
            outcome: self.outcome,
            pos: self.pos,
            vehicle: self.vehicle,
            round: self.round,
            job: self.job,
            photo: self.photo,
            note: self.note,
        };
        collection.validate()?;
        Ok(Checked {
            ts,
            body: RecordBody::Collection(collection),
        })
    }
}

impl RoundChange {
    /// The round event for round `round`, checked.
    pub fn into_record(
        self,
        round: String,
        phase: RoundPhase,
        now: TimestampMs,
    ) -> Result<Checked, Invalid> {
        let ts = timestamp(self.ts, now)?;
        let event = RoundEvent {
            round,
            vehicle: self.vehicle,
            phase,
        };
        event.validate()?;
        Ok(Checked {
            ts,
            body: RecordBody::RoundEvent(event),
        })
    }
}

impl NewJobStatus {
    /// The job update for job `job`, checked.
    pub fn into_record(self, job: String, now: TimestampMs) -> Result<Checked, Invalid> {
        let ts = timestamp(self.ts, now)?;
        check_id("job", &job)?;
        let update = JobUpdate {
            job,
            status: self.status,
            pos: self.pos,
            note: self.note,
        };
        update.validate()?;
        Ok(Checked {
            ts,
            body: RecordBody::JobUpdate(update),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimestampMs = 1_764_000_000_000;

    fn collection(json: serde_json::Value) -> Result<Checked, Invalid> {
        serde_json::from_value::<NewCollection>(json)
            .unwrap()
            .into_record(NOW)
    }

    #[test]
    fn a_collection_becomes_a_record_with_the_agents_time_by_default() {
        let checked = collection(serde_json::json!({
            "uprn": 100023336956u64, "stream": "refuse", "outcome": "collected",
            "pos": {"lat": 51.5, "lon": -0.14, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A"
        }))
        .unwrap();
        assert_eq!(checked.ts, NOW);
        assert!(matches!(checked.body, RecordBody::Collection(_)));
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let invalid = collection(serde_json::json!({
            "stream": "refuse", "outcome": "collected",
            "pos": {"lat": 91.0, "lon": 0.0, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A"
        }))
        .unwrap_err();
        assert_eq!(invalid.field, "pos.lat");
        let invalid = collection(serde_json::json!({
            "stream": "refuse", "outcome": "other",
            "pos": {"lat": 51.0, "lon": 0.0, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A"
        }))
        .unwrap_err();
        assert_eq!(invalid.field, "note");
        let invalid = RoundChange {
            vehicle: String::new(),
            ts: None,
        }
        .into_record("MON-A".into(), RoundPhase::Started, NOW)
        .unwrap_err();
        assert_eq!(invalid.field, "vehicle");
        let invalid = RoundChange {
            vehicle: "RCV-17".into(),
            ts: Some(-1),
        }
        .into_record("MON-A".into(), RoundPhase::Started, NOW)
        .unwrap_err();
        assert_eq!(invalid.field, "ts");
    }
}
