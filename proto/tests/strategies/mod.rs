//! proptest strategies for every message: arbitrary values that the contract allows (finite,
//! in-range numbers, well-formed ids, gaps whose count fits their range…), so that every value
//! generated here must encode, decode to itself and match `fieldsync.cddl`.
//!
//! Shared by several test binaries, each of which uses only part of it.

#![allow(dead_code, clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::{array, collection, option, sample};

use proto::examples::Example;
use proto::{
    Ack, BinStream, Collection, Config, DeviceId, Down, DownBody, Envelope, Gap, GapReason, Health,
    Job, JobCancel, JobKind, JobStatus, JobUpdate, Outcome, Position, Priority, Record, RecordBody,
    Refusal, RepairJob, ReturnCollectionJob, RoundEvent, RoundPhase, SourceHealth, SourceStatus,
    State, Telemetry, TimestampMs, MAX_BATCH_RECORDS, SCHEMA_VERSION,
};

/// A valid device id: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn device_id() -> impl Strategy<Value = DeviceId> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|id| DeviceId::new(id).unwrap())
}

/// A valid id: 1 to 16 characters without control characters, so at most 64 bytes of UTF-8.
pub fn id() -> impl Strategy<Value = String> {
    "\\PC{1,16}"
}

/// Free text: any characters but controls other than newline and tab.
pub fn text() -> impl Strategy<Value = String> {
    "[\\PC\n\t]{0,40}"
}

pub fn timestamp() -> impl Strategy<Value = TimestampMs> {
    0..=TimestampMs::MAX
}

/// A sequence number or UPRN: from 1.
pub fn from_one() -> impl Strategy<Value = u64> {
    1..=u64::MAX
}

pub fn position() -> impl Strategy<Value = Position> {
    (-90.0..=90.0, -180.0..=180.0, 0.0f32..=100_000.0).prop_map(|(lat, lon, acc)| Position {
        lat,
        lon,
        acc,
    })
}

pub fn bin_stream() -> impl Strategy<Value = BinStream> {
    sample::select(BinStream::ALL.to_vec())
}

pub fn outcome() -> impl Strategy<Value = Outcome> {
    sample::select(vec![
        Outcome::Collected,
        Outcome::NotPresented,
        Outcome::Contaminated,
        Outcome::BlockedAccess,
        Outcome::DamagedBin,
        Outcome::Overweight,
        Outcome::Other,
    ])
}

pub fn collection() -> impl Strategy<Value = Collection> {
    (
        (option::of(from_one()), bin_stream(), outcome(), position()),
        (id(), id(), option::of(id())),
        (option::of("[0-9a-f]{64}"), option::of(text())),
    )
        .prop_map(
            |((uprn, stream, outcome, pos), (vehicle, round, job), (photo, mut note))| {
                // The contract requires a note to explain an `other` outcome.
                if outcome == Outcome::Other && note.as_deref().is_none_or(str::is_empty) {
                    note = Some("bin on fire".into());
                }
                Collection {
                    uprn,
                    stream,
                    outcome,
                    pos,
                    vehicle,
                    round,
                    job,
                    photo,
                    note,
                }
            },
        )
}

/// A temperature as OpenTherm (or a flue sensor) reports it, °C.
fn celsius() -> impl Strategy<Value = Option<f32>> {
    option::of(-128.0f32..=400.0)
}

fn meter() -> impl Strategy<Value = Option<f64>> {
    option::of(0.0..=1e12)
}

pub fn telemetry() -> impl Strategy<Value = Telemetry> {
    let temperatures = (
        celsius(),
        celsius(),
        celsius(),
        celsius(),
        celsius(),
        celsius(),
    );
    let levels = (option::of(0.0f32..=10.0), option::of(0.0f32..=100.0));
    let flags = array::uniform4(option::of(any::<bool>()));
    let counters = (
        option::of(any::<u8>()),
        option::of(any::<u16>()),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        meter(),
        meter(),
    );
    (
        id(),
        temperatures,
        levels,
        flags,
        counters,
        telemetry_later(),
    )
        .prop_map(
            |(asset, (flow, ret, dhw, out, exh, setp), (bar, modu), flags, counters, later)| {
                let [flame, ch, dhw_on, fault] = flags;
                let (fflags, oem, starts, hours, gas, heat) = counters;
                Telemetry {
                    asset,
                    flow,
                    ret,
                    dhw,
                    out,
                    exh,
                    setp,
                    bar,
                    modu,
                    flame,
                    ch,
                    dhw_on,
                    fault,
                    fflags,
                    oem,
                    starts,
                    hours,
                    gas,
                    heat,
                    ..later
                }
            },
        )
}

/// Distinct data ids in ascending order, as `inval` and `unsup` carry them.
fn data_ids() -> impl Strategy<Value = Vec<u8>> {
    collection::btree_set(any::<u8>(), 0..8).prop_map(|ids| ids.into_iter().collect())
}

/// The fields added in revision 1.1, on an otherwise empty sample.
fn telemetry_later() -> impl Strategy<Value = Telemetry> {
    let status = (
        option::of(any::<u8>()),
        option::of(any::<bool>()),
        option::of(any::<u16>()),
        data_ids(),
        data_ids(),
    );
    let config = (
        option::of(any::<u8>()),
        option::of(any::<u8>()),
        option::of(any::<u8>()),
        option::of(0u8..=100),
        option::of(0.0f32..=100.0),
    );
    let temperatures = (celsius(), celsius(), celsius());
    let counters = array::uniform8(option::of(any::<u32>()));
    (status, config, temperatures, counters).prop_map(
        |(status, config, (room, dhw_setp, max_setp), counters)| {
            let (sflags, diag, odiag, inval, unsup) = status;
            let (scfg, smem, max_kw, min_modu, dhw_flow) = config;
            let [fail_starts, flame_low, pump_starts, dhw_pump_starts, dhw_starts, pump_hours, dhw_pump_hours, dhw_hours] =
                counters;
            Telemetry {
                sflags,
                diag,
                odiag,
                inval,
                unsup,
                scfg,
                smem,
                max_kw,
                min_modu,
                dhw_flow,
                room,
                dhw_setp,
                max_setp,
                fail_starts,
                flame_low,
                pump_starts,
                dhw_pump_starts,
                dhw_starts,
                pump_hours,
                dhw_pump_hours,
                dhw_hours,
                ..Telemetry::default()
            }
        },
    )
}

pub fn job_update() -> impl Strategy<Value = JobUpdate> {
    let status = sample::select(vec![
        JobStatus::Accepted,
        JobStatus::EnRoute,
        JobStatus::Arrived,
        JobStatus::Completed,
        JobStatus::NoAccess,
        JobStatus::PartsNeeded,
        JobStatus::Cancelled,
    ]);
    (id(), status, option::of(position()), option::of(text())).prop_map(
        |(job, status, pos, note)| JobUpdate {
            job,
            status,
            pos,
            note,
        },
    )
}

pub fn round_event() -> impl Strategy<Value = RoundEvent> {
    let phase = prop_oneof![Just(RoundPhase::Started), Just(RoundPhase::Completed)];
    (id(), id(), phase).prop_map(|(round, vehicle, phase)| RoundEvent {
        round,
        vehicle,
        phase,
    })
}

pub fn health() -> impl Strategy<Value = Health> {
    (
        option::of(0..=100u8),
        option::of(any::<i16>()),
        array::uniform4(any::<u64>()),
        id(),
        array::uniform4(option::of(any::<u64>())),
        option::of(source_health()),
    )
        .prop_map(
            |(
                batt,
                rssi,
                [depth, bytes, free, up],
                ver,
                [dead, faults, stalls, unverified],
                src,
            )| {
                Health {
                    batt,
                    rssi,
                    depth,
                    bytes,
                    free,
                    up,
                    ver,
                    dead,
                    faults,
                    stalls,
                    unverified,
                    src,
                }
            },
        )
}

fn source_health() -> impl Strategy<Value = SourceHealth> {
    let status = sample::select(vec![
        SourceStatus::Ok,
        SourceStatus::Silent,
        SourceStatus::Summary,
        SourceStatus::Reconnecting,
        SourceStatus::Ended,
        SourceStatus::Failed,
    ]);
    (status, option::of(text())).prop_map(|(st, why)| SourceHealth { st, why })
}

/// A gap whose range does not overflow and whose count fits it.
pub fn gap() -> impl Strategy<Value = Gap> {
    let reason = sample::select(vec![
        GapReason::DiskBudget,
        GapReason::SensorError,
        GapReason::Restart,
    ]);
    (1..=u64::MAX / 2, 1..=1_000_000u64, reason).prop_map(|(from, span, reason)| Gap {
        from,
        to: from + span - 1,
        count: span,
        reason,
    })
}

pub fn record_body() -> impl Strategy<Value = RecordBody> {
    prop_oneof![
        collection().prop_map(RecordBody::Collection),
        telemetry().prop_map(RecordBody::Telemetry),
        job_update().prop_map(RecordBody::JobUpdate),
        round_event().prop_map(RecordBody::RoundEvent),
        health().prop_map(RecordBody::Health),
        gap().prop_map(RecordBody::Gap),
    ]
}

/// A record; a gap record's own number is above its range, as the contract requires.
pub fn record() -> impl Strategy<Value = Record> {
    (
        from_one(),
        timestamp(),
        record_body(),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    )
        .prop_map(|(seq, ts, body, boot, mono)| {
            let seq = match &body {
                RecordBody::Gap(gap) if gap.to >= seq => gap.to + 1,
                _ => seq,
            };
            Record {
                seq,
                ts,
                body,
                boot,
                mono,
            }
        })
}

/// An envelope of up to `max_records` records.
pub fn envelope_of(max_records: usize) -> impl Strategy<Value = Envelope> {
    let max_records = max_records.min(MAX_BATCH_RECORDS);
    (
        device_id(),
        timestamp(),
        collection::vec(record(), 0..=max_records),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    )
        .prop_map(|(dev, sent, recs, boot, mono)| Envelope {
            v: SCHEMA_VERSION,
            dev,
            sent,
            recs,
            boot,
            mono,
        })
}

/// An envelope of a few records: enough to mix kinds, small enough for many cases.
pub fn envelope() -> impl Strategy<Value = Envelope> {
    envelope_of(6)
}

/// A refusal: a sequence number and a reason without control characters, at most 160 bytes.
pub fn refusal() -> impl Strategy<Value = Refusal> {
    (from_one(), "\\PC{1,40}").prop_map(|(seq, why)| Refusal { seq, why })
}

pub fn ack() -> impl Strategy<Value = Ack> {
    (any::<u64>(), collection::vec(refusal(), 0..4)).prop_map(|(thru, rej)| Ack {
        v: SCHEMA_VERSION,
        thru,
        rej,
    })
}

fn job_kind() -> impl Strategy<Value = JobKind> {
    let return_collection = (id(), from_one(), text(), position(), bin_stream()).prop_map(
        |(report, uprn, addr, pos, stream)| {
            JobKind::ReturnCollection(ReturnCollectionJob {
                report,
                uprn,
                addr,
                pos,
                stream,
            })
        },
    );
    let priority = sample::select(vec![
        Priority::Emergency,
        Priority::Urgent,
        Priority::Routine,
        Priority::Planned,
    ]);
    let repair = (id(), text(), text(), priority).prop_map(|(asset, addr, desc, prio)| {
        JobKind::Repair(RepairJob {
            asset,
            addr,
            desc,
            prio,
        })
    });
    prop_oneof![return_collection, repair]
}

fn job() -> impl Strategy<Value = Job> {
    (id(), 1..=u32::MAX, timestamp(), job_kind()).prop_map(|(id, rev, due, kind)| Job {
        id,
        rev,
        due,
        kind,
    })
}

fn config() -> impl Strategy<Value = Config> {
    let batch_max = 1..=u32::try_from(MAX_BATCH_RECORDS).unwrap();
    (
        any::<u64>(),
        option::of(1..=u32::MAX),
        option::of(1..=u32::MAX),
        option::of(batch_max),
        option::of(any::<u32>()),
    )
        .prop_map(|(rev, sample_s, health_s, batch_max, linger_ms)| Config {
            rev,
            sample_s,
            health_s,
            batch_max,
            linger_ms,
        })
}

pub fn down() -> impl Strategy<Value = Down> {
    let cancel = (id(), option::of(text())).prop_map(|(id, reason)| JobCancel { id, reason });
    let body = prop_oneof![
        job().prop_map(DownBody::Job),
        cancel.prop_map(DownBody::JobCancel),
        config().prop_map(DownBody::Config),
    ];
    (timestamp(), body).prop_map(|(sent, body)| Down {
        v: SCHEMA_VERSION,
        sent,
        body,
    })
}

pub fn state() -> impl Strategy<Value = State> {
    (any::<bool>(), any::<u64>(), timestamp()).prop_map(|(online, boot, ts)| State {
        v: SCHEMA_VERSION,
        online,
        boot,
        ts,
    })
}

/// A message of any type.
pub fn message() -> impl Strategy<Value = Example> {
    prop_oneof![
        envelope().prop_map(Example::Envelope),
        ack().prop_map(Example::Ack),
        down().prop_map(Example::Down),
        state().prop_map(Example::State),
    ]
}
