//! One realistic example of every message, for tests, the test vectors in `vectors/`, benchmarks
//! and simulators: a refuse crew's cab tablet (`cab-rcv07`) and a repairs operative's phone
//! (`op-ph0193`) working in Hillingdon, and a boiler hub (`hub-b004512`) in one of the council's
//! flats.
//!
//! Each example is a function returning the message itself; [`all`] lists them by name, wrapped in
//! [`Example`] so that messages of different types share one list. [`telemetry_batch`] builds a
//! batch of any size for benchmarks and load tests. Every example passes [`crate::validate`], so
//! [`Example::encode`] never fails on them.

use serde::Serialize;

use crate::codec::{decode, encode, DecodeError, EncodeError, Message};
use crate::{
    Ack, BinStream, Collection, Config, DeviceId, Down, DownBody, Envelope, Gap, GapReason, Health,
    Job, JobCancel, JobKind, JobStatus, JobUpdate, Outcome, Position, Priority, Record, RecordBody,
    Refusal, RepairJob, ReturnCollectionJob, RoundEvent, RoundPhase, SourceHealth, SourceStatus,
    State, Telemetry, TimestampMs, MAX_MESSAGE_BYTES, SCHEMA_VERSION,
};

/// A top-level message of any type: what [`all`] lists.
///
/// It serializes as the message it holds (serde's untagged representation), so
/// `serde_json::to_string(&example)` is the message's own JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Example {
    /// A batch of records, on `…/up`.
    Envelope(Envelope),
    /// An acknowledgement, on `…/ack`.
    Ack(Ack),
    /// A job, cancellation or configuration, on `…/down`.
    Down(Down),
    /// Online or offline, retained on `…/state`.
    State(State),
}

impl Example {
    /// The message type's name, which is also its rule in `fieldsync.cddl`: `envelope`, `ack`,
    /// `down` or `state`.
    pub fn rule(&self) -> &'static str {
        match self {
            Example::Envelope(_) => Envelope::NAME,
            Example::Ack(_) => Ack::NAME,
            Example::Down(_) => Down::NAME,
            Example::State(_) => State::NAME,
        }
    }

    /// Encodes the message as it goes on the wire ([`crate::encode`] with the default limit).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        match self {
            Example::Envelope(m) => encode(m, MAX_MESSAGE_BYTES),
            Example::Ack(m) => encode(m, MAX_MESSAGE_BYTES),
            Example::Down(m) => encode(m, MAX_MESSAGE_BYTES),
            Example::State(m) => encode(m, MAX_MESSAGE_BYTES),
        }
    }

    /// Decodes `bytes` as a message of this example's type, so that a stored encoding can be
    /// compared with the example it should hold.
    pub fn decode_same_type(&self, bytes: &[u8]) -> Result<Example, DecodeError> {
        Ok(match self {
            Example::Envelope(_) => Example::Envelope(decode(bytes, MAX_MESSAGE_BYTES)?),
            Example::Ack(_) => Example::Ack(decode(bytes, MAX_MESSAGE_BYTES)?),
            Example::Down(_) => Example::Down(decode(bytes, MAX_MESSAGE_BYTES)?),
            Example::State(_) => Example::State(decode(bytes, MAX_MESSAGE_BYTES)?),
        })
    }
}

impl From<Envelope> for Example {
    fn from(message: Envelope) -> Self {
        Example::Envelope(message)
    }
}

impl From<Ack> for Example {
    fn from(message: Ack) -> Self {
        Example::Ack(message)
    }
}

impl From<Down> for Example {
    fn from(message: Down) -> Self {
        Example::Down(message)
    }
}

impl From<State> for Example {
    fn from(message: State) -> Self {
        Example::State(message)
    }
}

/// Every example, under the name its test vector has (`vectors/NAME.cbor`, `vectors/NAME.json`).
/// Names are unique and stable: renaming one renames a published vector. Each device's envelopes
/// are listed in its sequence order, from 1: replayed in this order against a fresh gateway, they
/// get the acks a real device would.
pub fn all() -> Vec<(&'static str, Example)> {
    vec![
        ("envelope_round_started", envelope_round_started().into()),
        (
            "envelope_collection_full",
            envelope_collection_full().into(),
        ),
        (
            "envelope_collection_lift_sensor",
            envelope_collection_lift_sensor().into(),
        ),
        ("envelope_health", envelope_health().into()),
        (
            "envelope_round_completed",
            envelope_round_completed().into(),
        ),
        ("envelope_job_update", envelope_job_update().into()),
        (
            "envelope_telemetry_sparse",
            envelope_telemetry_sparse().into(),
        ),
        ("envelope_telemetry_full", envelope_telemetry_full().into()),
        ("envelope_gap", envelope_gap().into()),
        ("envelope_telemetry_batch", telemetry_batch(3).into()),
        ("envelope_health_hub", envelope_health_hub().into()),
        ("ack", ack().into()),
        ("ack_with_refusal", ack_with_refusal().into()),
        ("down_job_return", down_job_return().into()),
        ("down_job_repair", down_job_repair().into()),
        ("down_cancel", down_cancel().into()),
        ("down_config", down_config().into()),
        ("state_online", state_online().into()),
        ("state_offline", state_offline().into()),
    ]
}

/// The refuse vehicle's cab tablet.
pub const CAB_DEVICE: &str = "cab-rcv07";
/// The repairs operative's phone.
pub const OPERATIVE_DEVICE: &str = "op-ph0193";
/// The boiler hub.
pub const HUB_DEVICE: &str = "hub-b004512";
/// A second boiler hub, just installed, whose OpenTherm Gateway was left in summary mode.
pub const SECOND_HUB_DEVICE: &str = "hub-b004513";

const VEHICLE: &str = "RCV-07";
const ROUND: &str = "HIL-MON-R2";
const BOILER: &str = "BLR-HIL-004512";
const RETURN_JOB: &str = "RET-2025-004187";
const REPAIR_JOB: &str = "REP-2025-118204";
const MISSED_BIN_UPRN: u64 = 100_021_456_789;

/// Monday 24 November 2025, 07:02:00 UTC: the round sets off.
const ROUND_START: TimestampMs = 1_763_967_720_000;
/// 07:14:31 UTC: the crew reaches the contaminated bin.
const AT_MISSED_BIN: TimestampMs = 1_763_968_471_000;
/// 09:40:12 UTC: the operative arrives at the flat.
const AT_FLAT: TimestampMs = 1_763_977_212_000;
/// 12:00:00 UTC: a boiler sample.
const NOON: TimestampMs = 1_763_985_600_000;
/// 13:05:00 UTC: the round is done.
const ROUND_END: TimestampMs = 1_763_989_500_000;
/// Tuesday 25 November 2025, 17:00 UTC: when the return collection is due.
const NEXT_DAY_CLOSE: TimestampMs = 1_764_090_000_000;

// Every device's sequence starts at 1, as a fresh device's does, so that a third party replaying
// the envelopes in the order of [`all`] against a fresh gateway gets real acks: through 5 for the
// cab, 1 for the operative, 66 for the hub and 1 for the second hub.

/// The hub samples once a minute.
const SAMPLE_INTERVAL_MS: TimestampMs = 60_000;
/// The hub's samples 3 to 62 (12:01 to 13:00) were dropped for its disk budget, and its gap
/// record, number 63, says so.
const HUB_DROPPED: (u64, u64) = (3, 62);
const HUB_GAP_SEQ: u64 = 63;
/// Where the hub's first telemetry record in [`telemetry_batch`] falls in its sequence.
const HUB_FIRST_SEQ: u64 = 64;
/// When the first sample of [`telemetry_batch`] was taken: 13:02.
const HUB_BATCH_START: TimestampMs = NOON + 62 * SAMPLE_INTERVAL_MS;

/// `id` as a [`DeviceId`]; only for this module's literal ids.
#[allow(clippy::expect_used)]
fn device(id: &'static str) -> DeviceId {
    // DeviceId has no const constructor; every id passed here is a literal that the unit test
    // `device_ids_are_valid` checks.
    DeviceId::new(id).expect("example device ids are valid literals")
}

/// A device's current boot (its agent's start counter) and when that boot began by the device's
/// clock, which never jumps in these examples: monotonic readings are wall time since the boot.
fn boot_of(dev: &str) -> (u64, TimestampMs) {
    match dev {
        CAB_DEVICE => (17, ROUND_START - 25 * 60_000),
        OPERATIVE_DEVICE => (5, AT_FLAT - 3 * 3_600_000),
        SECOND_HUB_DEVICE => (1, NOON - 3_600_000),
        _ => (42, ROUND_START - 90_000),
    }
}

/// The device's monotonic clock at wall time `ts` in its current boot.
fn mono_at(dev: &str, ts: TimestampMs) -> Option<u64> {
    u64::try_from(ts - boot_of(dev).1).ok()
}

/// A batch of `recs` from `dev`, sent a second after the last record, each record stamped with
/// the device's boot and monotonic clock.
fn envelope(dev: &'static str, recs: Vec<Record>) -> Envelope {
    let sent = recs.iter().map(|r| r.ts).max().unwrap_or(NOON) + 1_000;
    let (boot, _) = boot_of(dev);
    let recs = recs
        .into_iter()
        .map(|record| Record {
            boot: Some(boot),
            mono: mono_at(dev, record.ts),
            ..record
        })
        .collect();
    Envelope {
        v: SCHEMA_VERSION,
        dev: device(dev),
        sent,
        recs,
        boot: Some(boot),
        mono: mono_at(dev, sent),
    }
}

/// A one-record batch.
fn single(dev: &'static str, seq: u64, ts: TimestampMs, body: RecordBody) -> Envelope {
    envelope(
        dev,
        vec![Record {
            seq,
            ts,
            body,
            boot: None,
            mono: None,
        }],
    )
}

/// Outside 14 Swakeleys Road, Ickenham.
fn missed_bin_position() -> Position {
    Position {
        lat: 51.561_84,
        lon: -0.453_27,
        acc: 3.5,
    }
}

/// A crew's confirmation with every optional field: a return collection found contaminated,
/// tagged and photographed.
pub fn envelope_collection_full() -> Envelope {
    single(
        CAB_DEVICE,
        2,
        AT_MISSED_BIN,
        RecordBody::Collection(Collection {
            uprn: Some(MISSED_BIN_UPRN),
            stream: BinStream::Recycling,
            outcome: Outcome::Contaminated,
            pos: missed_bin_position(),
            vehicle: VEHICLE.into(),
            round: ROUND.into(),
            job: Some(RETURN_JOB.into()),
            photo: Some("67df3118c140c3df62656cb624e5a8585cdbe481498ecb0b1e6c823c4b684df8".into()),
            note: Some("Food waste in sacks on top of the recycling; bin tagged.".into()),
        }),
    )
}

/// A confirmation from the vehicle's lift sensor: no UPRN, only the fix where the bin was lifted.
pub fn envelope_collection_lift_sensor() -> Envelope {
    single(
        CAB_DEVICE,
        3,
        AT_MISSED_BIN + 41_000,
        RecordBody::Collection(Collection {
            uprn: None,
            stream: BinStream::Refuse,
            outcome: Outcome::Collected,
            pos: Position {
                lat: 51.562_05,
                lon: -0.452_61,
                acc: 7.0,
            },
            vehicle: VEHICLE.into(),
            round: ROUND.into(),
            job: None,
            photo: None,
            note: None,
        }),
    )
}

/// A boiler sample from an OpenTherm interface that reports every reading.
pub fn envelope_telemetry_full() -> Envelope {
    single(
        HUB_DEVICE,
        2,
        NOON,
        RecordBody::Telemetry(Telemetry {
            asset: BOILER.into(),
            flow: Some(68.5),
            ret: Some(52.25),
            dhw: Some(48.5),
            out: Some(6.5),
            exh: Some(71.0),
            setp: Some(70.0),
            // OpenTherm's f8.8: 1.453125 is 372/256 bar, the nearest step to 1.45.
            bar: Some(1.453_125),
            modu: Some(38.0),
            flame: Some(true),
            ch: Some(true),
            dhw_on: Some(false),
            fault: Some(false),
            fflags: Some(0),
            oem: Some(0),
            starts: Some(18_234),
            hours: Some(9_412),
            gas: Some(4_521.337),
            heat: Some(41_250.5),
            ..Telemetry::default()
        }),
    )
}

/// A boiler sample from a basic interface: flow, return and flame only.
pub fn envelope_telemetry_sparse() -> Envelope {
    single(
        HUB_DEVICE,
        1,
        NOON - SAMPLE_INTERVAL_MS,
        RecordBody::Telemetry(Telemetry {
            asset: BOILER.into(),
            flow: Some(67.75),
            ret: Some(51.5),
            flame: Some(true),
            ..Telemetry::default()
        }),
    )
}

/// The repairs operative reports arriving at the flat, with every optional field.
pub fn envelope_job_update() -> Envelope {
    single(
        OPERATIVE_DEVICE,
        1,
        AT_FLAT,
        RecordBody::JobUpdate(JobUpdate {
            job: REPAIR_JOB.into(),
            status: JobStatus::Arrived,
            pos: Some(Position {
                lat: 51.545_93,
                lon: -0.478_12,
                acc: 12.0,
            }),
            note: Some("Tenant in; boiler showing F28 lockout.".into()),
        }),
    )
}

fn round_event(seq: u64, ts: TimestampMs, phase: RoundPhase) -> Envelope {
    single(
        CAB_DEVICE,
        seq,
        ts,
        RecordBody::RoundEvent(RoundEvent {
            round: ROUND.into(),
            vehicle: VEHICLE.into(),
            phase,
        }),
    )
}

/// The crew sets off on Monday's recycling round.
pub fn envelope_round_started() -> Envelope {
    round_event(1, ROUND_START, RoundPhase::Started)
}

/// The crew finishes the round; residents may now report missed bins.
pub fn envelope_round_completed() -> Envelope {
    round_event(5, ROUND_END, RoundPhase::Completed)
}

/// The cab tablet's health report, with every optional field.
pub fn envelope_health() -> Envelope {
    single(
        CAB_DEVICE,
        4,
        AT_MISSED_BIN + 5 * 60_000,
        RecordBody::Health(Health {
            batt: Some(87),
            rssi: Some(-83),
            depth: 12,
            bytes: 4_812,
            free: 1_203_765_248,
            up: 3 * 86_400 + 4_271,
            ver: "0.1.0".into(),
            dead: Some(1),
            faults: Some(0),
            stalls: Some(3),
            unverified: Some(2),
            // A cab tablet has no sensor source.
            src: None,
        }),
    )
}

/// The health of a hub whose OpenTherm Gateway was left in `PS=1` summary mode: the outbox's
/// usual counts, and its sensor source's state and why.
pub fn health_with_source() -> Health {
    Health {
        batt: None,
        rssi: Some(-71),
        depth: 3,
        bytes: 1_164,
        free: 6_442_450_944,
        up: 3_600 + 5 * 60,
        ver: "0.1.0".into(),
        dead: Some(0),
        faults: Some(0),
        stalls: Some(0),
        unverified: Some(0),
        src: Some(SourceHealth {
            st: SourceStatus::Summary,
            why: Some("the OTGW is in PS=1 summary mode: send it PS=0".into()),
        }),
    }
}

/// The second hub's first record, its health an hour after it started: see
/// [`health_with_source`].
pub fn envelope_health_hub() -> Envelope {
    single(
        SECOND_HUB_DEVICE,
        1,
        NOON + 5 * 60_000,
        RecordBody::Health(health_with_source()),
    )
}

/// The hub reports an hour of telemetry it dropped when its outbox reached its disk budget.
pub fn envelope_gap() -> Envelope {
    single(
        HUB_DEVICE,
        HUB_GAP_SEQ,
        NOON + 61 * SAMPLE_INTERVAL_MS,
        RecordBody::Gap(Gap {
            from: HUB_DROPPED.0,
            to: HUB_DROPPED.1,
            count: HUB_DROPPED.1 - HUB_DROPPED.0 + 1,
            reason: GapReason::DiskBudget,
        }),
    )
}

/// The gateway has stored everything from the hub through its latest sample.
pub fn ack() -> Ack {
    Ack {
        v: SCHEMA_VERSION,
        thru: HUB_FIRST_SEQ + 2,
        rej: Vec::new(),
    }
}

/// The gateway stored the hub's batch but one sample, whose pressure was out of range: it acks
/// through the batch and says which record it refused and why.
pub fn ack_with_refusal() -> Ack {
    Ack {
        v: SCHEMA_VERSION,
        thru: HUB_FIRST_SEQ + 2,
        rej: vec![Refusal {
            seq: HUB_FIRST_SEQ + 1,
            why: "invalid value for `body.tel.bar`: 12.5 is outside 0 to 10".into(),
        }],
    }
}

fn down(sent: TimestampMs, body: DownBody) -> Down {
    Down {
        v: SCHEMA_VERSION,
        sent,
        body,
    }
}

/// Send the crew back for the missed recycling bin a resident reported.
pub fn down_job_return() -> Down {
    down(
        ROUND_END + 3 * 3_600_000,
        DownBody::Job(Job {
            id: RETURN_JOB.into(),
            rev: 1,
            due: NEXT_DAY_CLOSE,
            kind: JobKind::ReturnCollection(ReturnCollectionJob {
                report: "MB-2025-031552".into(),
                uprn: MISSED_BIN_UPRN,
                addr: "14 Swakeleys Road, Ickenham, Uxbridge UB10 8BE".into(),
                pos: missed_bin_position(),
                stream: BinStream::Recycling,
            }),
        }),
    )
}

/// Send the operative to the boiler that keeps locking out; a second revision of the job.
pub fn down_job_repair() -> Down {
    down(
        AT_FLAT - 2 * 3_600_000,
        DownBody::Job(Job {
            id: REPAIR_JOB.into(),
            rev: 2,
            due: NEXT_DAY_CLOSE,
            kind: JobKind::Repair(RepairJob {
                asset: BOILER.into(),
                addr: "Flat 3, 41 Harefield Road, Uxbridge UB8 1PN".into(),
                desc: "Boiler locked out twice in 24 h (F28, ignition failure); no heating or \
                       hot water."
                    .into(),
                prio: Priority::Urgent,
            }),
        }),
    )
}

/// Withdraw the return collection: the resident says the bin was emptied after all.
pub fn down_cancel() -> Down {
    down(
        ROUND_END + 4 * 3_600_000,
        DownBody::JobCancel(JobCancel {
            id: RETURN_JOB.into(),
            reason: Some("Resident reports the bin was emptied.".into()),
        }),
    )
}

/// New agent settings, with every optional field.
pub fn down_config() -> Down {
    down(
        ROUND_START - 7 * 60_000,
        DownBody::Config(Config {
            rev: 7,
            sample_s: Some(60),
            health_s: Some(900),
            batch_max: Some(100),
            linger_ms: Some(2_000),
        }),
    )
}

/// The hub's presence after its 42nd start.
pub fn state_online() -> State {
    State {
        v: SCHEMA_VERSION,
        online: true,
        boot: 42,
        ts: ROUND_START - 60_000,
    }
}

/// The hub's Last Will, registered with the broker at the same connect as [`state_online`].
pub fn state_offline() -> State {
    State {
        online: false,
        ..state_online()
    }
}

/// A batch of `n` one-minute boiler samples from the hub, as a benchmark or load test sends: the
/// burner cycles on for 14 minutes and off for 6, temperatures and pressure drift within their
/// usual bands (flow 60–75 °C, return 40–60 °C, 1.2–1.8 bar), counters only grow, and sequence
/// numbers are consecutive. Deterministic: the same `n` gives the same batch on every platform.
pub fn telemetry_batch(n: usize) -> Envelope {
    let mut meters = Meters::default();
    let recs = (0..n)
        .map(|i| Record {
            seq: HUB_FIRST_SEQ + i as u64,
            ts: HUB_BATCH_START + i as TimestampMs * SAMPLE_INTERVAL_MS,
            body: RecordBody::Telemetry(meters.sample(i)),
            boot: None,
            mono: None,
        })
        .collect();
    envelope(HUB_DEVICE, recs)
}

/// The boiler's counters, which each sample advances.
#[derive(Default)]
struct Meters {
    /// Gas used since the start of the batch, m³.
    gas: f64,
    /// Heat delivered since the start of the batch, kWh.
    heat: f64,
    /// Burner starts since the start of the batch.
    starts: u32,
}

/// The burner's cycle in minutes, and how many of them it is lit.
const BURNER_CYCLE: usize = 20;
const BURNER_ON: usize = 14;

impl Meters {
    /// Minute `i`'s sample.
    fn sample(&mut self, i: usize) -> Telemetry {
        let lit = i % BURNER_CYCLE < BURNER_ON;
        if i % BURNER_CYCLE == 0 {
            self.starts += 1;
        }
        let modulation = if lit { 25.0 + 50.0 * wave(i, 9) } else { 0.0 };
        if lit {
            // A 24 kW combi at this modulation for a minute, 90 % efficient, on UK mains gas
            // (about 11.2 kWh per m³).
            let kwh = 24.0 * f64::from(modulation) / 100.0 / 60.0;
            self.heat += kwh;
            self.gas += kwh / 0.9 / 11.2;
        }
        let flow = 60.0 + 15.0 * wave(i, 23);
        Telemetry {
            asset: BOILER.into(),
            flow: Some(opentherm(flow)),
            ret: Some(opentherm(flow - 15.0 - 5.0 * wave(i, 17))),
            out: Some(opentherm(4.0 + 3.0 * wave(i, 240))),
            setp: Some(70.0),
            bar: Some(opentherm(1.3 + 0.4 * wave(i, 97))),
            modu: Some(opentherm(modulation)),
            flame: Some(lit),
            ch: Some(true),
            dhw_on: Some(false),
            starts: Some(18_234 + self.starts),
            hours: Some(9_412 + (i / 60) as u32),
            gas: Some(round_to(4_521.337 + self.gas, 1_000.0)),
            heat: Some(round_to(41_250.5 + self.heat, 10.0)),
            ..Telemetry::default()
        }
    }
}

/// A triangle wave over `period` steps, from 0 up to 1 and back: deterministic where `sin` may
/// differ in its last bit between platforms, which would change the test vectors.
fn wave(i: usize, period: usize) -> f32 {
    let phase = (i % period) as f32 / period as f32;
    1.0 - (2.0 * phase - 1.0).abs()
}

/// `value` at OpenTherm's f8.8 resolution (1/256), as a hub reads it from the boiler.
fn opentherm(value: f32) -> f32 {
    (value * 256.0).round() / 256.0
}

/// `value` rounded to `1/per_unit`, as a meter displays it.
fn round_to(value: f64, per_unit: f64) -> f64 {
    (value * per_unit).round() / per_unit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordKind, Validate};

    #[test]
    fn device_ids_are_valid() {
        for id in [CAB_DEVICE, OPERATIVE_DEVICE, HUB_DEVICE, SECOND_HUB_DEVICE] {
            assert!(DeviceId::new(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn every_example_encodes_and_decodes_to_itself() {
        for (name, example) in all() {
            let bytes = example.encode().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(example.decode_same_type(&bytes), Ok(example), "{name}");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = all().into_iter().map(|(name, _)| name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().len());
    }

    #[test]
    fn every_record_kind_has_an_example() {
        let kinds: std::collections::BTreeSet<RecordKind> = all()
            .into_iter()
            .filter_map(|(_, example)| match example {
                Example::Envelope(envelope) => Some(envelope),
                _ => None,
            })
            .flat_map(|envelope| envelope.recs)
            .map(|record| record.body.kind())
            .collect();
        assert_eq!(kinds.len(), RecordKind::ALL.len());
    }

    #[test]
    fn telemetry_batch_is_plausible() {
        let batch = telemetry_batch(240);
        assert!(batch.validate().is_ok());
        let samples: Vec<(&Record, &Telemetry)> = batch
            .recs
            .iter()
            .map(|r| match &r.body {
                RecordBody::Telemetry(t) => (r, t),
                other => panic!("not telemetry: {other:?}"),
            })
            .collect();
        for pair in samples.windows(2) {
            let ((r0, t0), (r1, t1)) = (pair[0], pair[1]);
            assert_eq!(r1.seq, r0.seq + 1);
            assert_eq!(r1.ts - r0.ts, SAMPLE_INTERVAL_MS);
            assert!(t1.starts >= t0.starts && t1.hours >= t0.hours);
            assert!(t1.gas >= t0.gas && t1.heat >= t0.heat);
        }
        for (_, t) in &samples {
            let (flow, ret, bar) = (t.flow.unwrap(), t.ret.unwrap(), t.bar.unwrap());
            assert!((60.0..=75.0).contains(&flow), "flow {flow}");
            assert!((40.0..=60.0).contains(&ret), "return {ret}");
            assert!((1.2..=1.8).contains(&bar), "pressure {bar}");
        }
        let (_, last) = samples[samples.len() - 1];
        assert!(last.gas > samples[0].1.gas, "the gas meter moves");
    }

    #[test]
    fn a_full_batch_fits_the_message_limit() {
        let batch = telemetry_batch(crate::MAX_BATCH_RECORDS);
        assert!(Example::from(batch).encode().is_ok());
    }
}
