//! The sled store over a temporary directory: keys that survive every byte value, restarts and
//! migration from format 1, gap and poison records refused without stalling the ack, the bounded
//! quarantine, and records placed in time by their boots' anchors.

use std::collections::BTreeSet;
use std::sync::Arc;

use proto::{
    BinStream, Collection, DeviceId, Gap, GapReason, Outcome, Position, Record, RecordBody,
    Refusal, RoundEvent, RoundPhase, Telemetry, TimestampMs, TopicKind,
};

use super::*;
use crate::metrics::Metrics;
use crate::missed_bins::{Confirmation, MissedBins};
use crate::record_time::TimeBasis;
use crate::reports::{DeskSettings, DispatchError, JobSender, ReportDesk};
use crate::storage::*;

/// Tuesday 24 November 2026, 00:00 UTC.
const TUESDAY: TimestampMs = 1_795_478_400_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn dev(id: &str) -> DeviceId {
    DeviceId::new(id).unwrap()
}

fn record(seq: u64, ts: TimestampMs, body: RecordBody) -> Record {
    Record {
        seq,
        ts,
        body,
        boot: None,
        mono: None,
    }
}

fn collection(uprn: u64) -> RecordBody {
    RecordBody::Collection(Collection {
        uprn: Some(uprn),
        stream: BinStream::Refuse,
        outcome: Outcome::Collected,
        pos: Position {
            lat: 51.5624,
            lon: -0.4462,
            acc: 5.0,
        },
        vehicle: "RCV07".into(),
        round: "HIL-TUE-1".into(),
        job: None,
        photo: None,
        note: None,
    })
}

fn telemetry() -> RecordBody {
    RecordBody::Telemetry(Telemetry {
        asset: "B-1".into(),
        bar: Some(1.5),
        ..Telemetry::default()
    })
}

fn telemetry_records(seqs: impl IntoIterator<Item = u64>) -> Vec<Record> {
    seqs.into_iter()
        .map(|seq| record(seq, TUESDAY, telemetry()))
        .collect()
}

fn batch(device: &DeviceId, received: TimestampMs, records: Vec<Record>) -> IncomingBatch {
    IncomingBatch {
        device: device.clone(),
        topic: device.topic(TopicKind::Up),
        payload: bytes::Bytes::from_static(b"\xa4the batch as it came"),
        received,
        sent: received,
        boot: None,
        mono: None,
        records,
        refused: Vec::new(),
    }
}

fn open(dir: &std::path::Path) -> SledStore {
    SledStore::open(dir, 8 * 1024 * 1024).unwrap()
}

fn ingest_one(store: &SledStore, batch: IncomingBatch) -> BatchOutcome {
    store.ingest(&[batch]).unwrap().remove(0)
}

struct NoJobs;

impl JobSender for NoJobs {
    fn send_job(
        &self,
        _device: &DeviceId,
        _job: proto::Job,
        _now: TimestampMs,
    ) -> Result<(), DispatchError> {
        Ok(())
    }

    fn send_cancel(
        &self,
        _device: &DeviceId,
        _cancel: proto::JobCancel,
        _now: TimestampMs,
    ) -> Result<(), DispatchError> {
        Ok(())
    }
}

fn desk(store: &SledStore) -> ReportDesk {
    ReportDesk::open(
        MissedBins::new(Default::default(), Default::default()),
        Arc::new(SledReportStore::open(store.db()).unwrap()),
        Arc::new(NoJobs),
        DeskSettings {
            max_clock_skew_ms: 300_000,
            ..Default::default()
        },
        Arc::new(Metrics::default()),
    )
    .unwrap()
}

/// Every confirmation in the desk's evidence index, by day, in a fixed order.
fn evidence_snapshot(desk: &ReportDesk) -> Vec<(chrono::NaiveDate, Vec<Confirmation>)> {
    desk.with_missed(|missed| {
        let evidence = missed.evidence();
        evidence
            .days()
            .map(|day| {
                let mut on_day = evidence.on_day(day).to_vec();
                on_day.sort_by(|a, b| a.evidence.cmp(&b.evidence));
                (day, on_day)
            })
            .collect()
    })
}

/// Sequences with every byte value in the low byte, every byte value repeated through all eight
/// bytes, and 0x2f ('/', the byte format 1 split keys on) in each position.
fn every_byte_sequences() -> BTreeSet<u64> {
    let mut seqs: BTreeSet<u64> = (1..=300).collect();
    seqs.extend((1..=u8::MAX).map(|b| u64::from_be_bytes([b; 8])));
    seqs.extend((0..8).map(|k| 0x2f_u64 << (8 * k)));
    seqs
}

#[test]
fn the_evidence_index_rebuilt_after_a_restart_is_the_one_built_live() {
    let dir = tempfile::tempdir().unwrap();
    let devices = ["cab-rcv01", "cab-rcv02", "cab-rcv03", "op-ph0193"].map(dev);
    let seqs = every_byte_sequences();
    let live = {
        let store = open(dir.path());
        let live = desk(&store);
        let mut total = 0;
        for (d, device) in devices.iter().enumerate() {
            let records: Vec<Record> = seqs
                .iter()
                .enumerate()
                .map(|(i, &seq)| {
                    let ts = TUESDAY + 7 * HOUR + (i as i64) * 1_000 + d as i64;
                    let body = if i % 50 == 0 {
                        RecordBody::RoundEvent(RoundEvent {
                            round: "HIL-TUE-1".into(),
                            vehicle: format!("RCV0{d}"),
                            phase: RoundPhase::Started,
                        })
                    } else {
                        collection(100_000 + i as u64)
                    };
                    record(seq, ts, body)
                })
                .collect();
            // Several batches per group, as the writer commits them.
            let batches: Vec<IncomingBatch> = records
                .chunks(100)
                .enumerate()
                .map(|(i, chunk)| batch(device, TUESDAY + 12 * HOUR + i as i64, chunk.to_vec()))
                .collect();
            for outcome in store.ingest(&batches).unwrap() {
                total += outcome.stored.len();
                live.observe(&outcome.device, &outcome.stored, TUESDAY + 12 * HOUR)
                    .unwrap();
            }
        }
        assert_eq!(total, devices.len() * seqs.len());
        assert!(total > 2_000, "thousands of records: {total}");
        evidence_snapshot(&live)
    };

    // The gateway restarts: a new store over the same directory, a new desk fed by the replay.
    let store = open(dir.path());
    let replayed = desk(&store);
    let evidence = store.evidence_since(0).unwrap();
    assert_eq!(evidence.len(), devices.len() * seqs.len());
    for (device, stored) in evidence {
        replayed
            .observe(&device, &[stored], TUESDAY + 13 * HOUR)
            .unwrap();
    }
    let rebuilt = evidence_snapshot(&replayed);
    assert_eq!(rebuilt.iter().map(|(_, c)| c.len()).sum::<usize>(), {
        live.iter().map(|(_, c)| c.len()).sum::<usize>()
    });
    assert_eq!(rebuilt, live);
    for device in &devices {
        assert_eq!(store.record_count(device).unwrap(), seqs.len() as u64);
        for &seq in &seqs {
            assert!(
                store.record(device, seq).unwrap().is_some(),
                "{device} {seq}"
            );
        }
    }
}

/// Format 1's quarantine entry, whole payload and all.
#[derive(serde::Serialize)]
struct FormatOneEntry<'a> {
    id: u64,
    topic: &'a str,
    reason: &'a str,
    received: TimestampMs,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
}

#[test]
fn a_format_one_store_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let device = dev("cab-rcv07");
    let big = vec![0x2f_u8; 200 * 1024];
    {
        let db = sled::open(dir.path()).unwrap();
        let main = db.open_tree("ingest").unwrap();
        let quarantine = db.open_tree("quarantine").unwrap();
        for seq in [1_u64, 47, 303, 0x2f2f, 0x2f00_0000_0000_002f] {
            let value = proto::encode_value(&StoredRecord {
                received: TUESDAY,
                sent: TUESDAY,
                record: record(seq, TUESDAY + 8 * HOUR, collection(7)),
                placed: None,
            })
            .unwrap();
            let mut key = b"rcab-rcv07/".to_vec();
            key.extend_from_slice(&seq.to_be_bytes());
            main.insert(key, value.clone()).unwrap();
            let mut key = vec![b'e'];
            key.extend_from_slice(&(TUESDAY as u64 + seq % 1000).to_be_bytes());
            key.extend_from_slice(b"cab-rcv07/");
            key.extend_from_slice(&seq.to_be_bytes());
            main.insert(key, value).unwrap();
        }
        for id in 0..3_u64 {
            let entry = FormatOneEntry {
                id,
                topic: "fieldsync/v1/cab-rcv07/up",
                reason: "malformed CBOR",
                received: TUESDAY,
                payload: &big,
            };
            quarantine
                .insert(id.to_be_bytes(), proto::encode_value(&entry).unwrap())
                .unwrap();
        }
        db.flush().unwrap();
    }

    let store = open(dir.path());
    for seq in [1_u64, 47, 303, 0x2f2f, 0x2f00_0000_0000_002f] {
        assert!(
            store.record(&device, seq).unwrap().is_some(),
            "record {seq}"
        );
    }
    assert_eq!(store.record_count(&device).unwrap(), 5);
    let evidence = store.evidence_since(0).unwrap();
    assert_eq!(evidence.len(), 5);
    assert!(evidence.iter().all(|(d, _)| *d == device));
    let entries = store.quarantined(10, None).unwrap();
    assert_eq!(entries.len(), 3);
    let digest = ring::digest::digest(&ring::digest::SHA256, &big);
    for entry in &entries {
        assert_eq!(entry.size, big.len() as u64);
        assert_eq!(entry.prefix.len(), 256);
        assert_eq!(entry.sha256, digest.as_ref());
    }
    assert!(
        store.quarantine_usage().bytes < 4 * 1024,
        "payloads are gone"
    );
    drop(store);
    // Opening again finds the current format and changes nothing.
    let store = open(dir.path());
    assert_eq!(store.evidence_since(0).unwrap().len(), 5);
}

#[test]
fn a_format_two_store_has_its_records_gathered_into_runs_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let device = dev("hub-0042");
    // Two stretches of telemetry with a hole, and sequences crossing byte boundaries; 1..=3 and
    // 300 not yet fed to the boilers.
    let seqs: Vec<u64> = (1..=300).chain(0x2f00..0x2f10).collect();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("format", &2_u32.to_be_bytes())
            .unwrap();
        let main = db.open_tree("ingest").unwrap();
        for &seq in &seqs {
            let value = proto::encode_value(&StoredRecord {
                received: TUESDAY,
                sent: TUESDAY,
                record: record(seq, TUESDAY + seq as i64, telemetry()),
                placed: None,
            })
            .unwrap();
            main.insert(keys::record_key(&device, seq), value).unwrap();
        }
        for seq in [1_u64, 2, 3, 300] {
            let mut key = keys::run_prefix(keys::TO_FEED, &device);
            key.extend_from_slice(&seq.to_be_bytes());
            main.insert(key, &[][..]).unwrap();
        }
        db.flush().unwrap();
    }

    let store = open(dir.path());
    assert_eq!(store.record_count(&device).unwrap(), seqs.len() as u64);
    let all: Vec<u64> = store
        .records(&device, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|s| s.record.seq)
        .collect();
    assert_eq!(all, seqs);
    for &seq in &seqs {
        assert_eq!(store.record(&device, seq).unwrap().unwrap().record.seq, seq);
    }
    assert!(store.record(&device, 301).unwrap().is_none());
    // The unfed marks now name the runs holding 1..=3 and 300: the first run, every record.
    let unfed = store.unfed(10_000).unwrap();
    assert!(unfed.len() >= 4 && unfed.iter().all(|(d, _)| *d == device));
    assert!(unfed.iter().any(|(_, s)| s.record.seq == 300));
    store
        .fed(
            &unfed
                .iter()
                .map(|(d, s)| (d.clone(), s.record.seq))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert!(store.unfed(10).unwrap().is_empty());
}

#[test]
fn records_are_stored_a_run_at_a_time_and_read_back_one_by_one_or_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let device = dev("hub-7");
    store.provision(std::slice::from_ref(&device)).unwrap();
    // Out of order and with a resend: stored as runs 1..=3, 5..=6, then 4 alone.
    ingest_one(
        &store,
        batch(&device, TUESDAY, telemetry_records([1, 2, 3, 5, 6])),
    );
    let again = ingest_one(&store, batch(&device, TUESDAY, telemetry_records([6, 4])));
    assert_eq!(again.duplicates, 1);
    assert_eq!(again.acked_through, 6);
    assert_eq!(store.record_count(&device).unwrap(), 6);
    for seq in 1..=6 {
        assert_eq!(store.record(&device, seq).unwrap().unwrap().record.seq, seq);
    }
    assert!(store.record(&device, 7).unwrap().is_none());
    assert!(store.record(&dev("hub-70"), 1).unwrap().is_none());
    let seqs = |from, limit| -> Vec<u64> {
        store
            .records(&device, from, limit)
            .unwrap()
            .iter()
            .map(|s| s.record.seq)
            .collect()
    };
    // In key order, runs by their first sequence: 1..=3, 4, 5..=6.
    assert_eq!(seqs(0, 100), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(2, 3), vec![2, 3, 4]);
    assert_eq!(seqs(6, 100), vec![6]);
    // Each run is marked for the boilers until it is fed.
    assert_eq!(store.unfed(100).unwrap().len(), 6);
    store
        .fed(&[(device.clone(), 2), (device.clone(), 4)])
        .unwrap();
    let left: Vec<u64> = store
        .unfed(100)
        .unwrap()
        .iter()
        .map(|(_, s)| s.record.seq)
        .collect();
    assert_eq!(left, vec![5, 6]);
}

#[test]
fn a_store_from_a_newer_gateway_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("format", &9_u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path(), 8 * 1024 * 1024) {
        Err(StoreError::NewerFormat { found: 9, .. }) => {}
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a newer store was opened"),
    }
}

fn gap_record(seq: u64, from: u64, to: u64) -> Record {
    record(
        seq,
        TUESDAY,
        RecordBody::Gap(Gap {
            from,
            to,
            count: to.wrapping_sub(from).wrapping_add(1),
            reason: GapReason::DiskBudget,
        }),
    )
}

#[test]
fn a_gap_over_its_own_or_later_numbers_is_refused_and_acks_nothing_unreceived() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let device = dev("hub-1");
    let outcome = ingest_one(&store, batch(&device, TUESDAY, vec![gap_record(1, 2, 10)]));
    assert_eq!(outcome.refused.len(), 1);
    assert_eq!(outcome.refused[0].seq, 1);
    assert!(
        outcome.refused[0].why.contains("below its own"),
        "{:?}",
        outcome.refused
    );
    assert_eq!(
        outcome.acked_through, 1,
        "the refused record is accounted for, no more"
    );
    // The records the gap claimed arrive, and are stored, not taken for duplicates.
    let outcome = ingest_one(&store, batch(&device, TUESDAY, telemetry_records(2..=10)));
    assert_eq!((outcome.stored.len(), outcome.duplicates), (9, 0));
    assert_eq!(outcome.acked_through, 10);
    let outcome = ingest_one(
        &store,
        batch(&device, TUESDAY, vec![gap_record(11, 12, u64::MAX)]),
    );
    assert_eq!(outcome.refused.len(), 1);
    assert_eq!(outcome.acked_through, 11);
    let outcome = ingest_one(&store, batch(&device, TUESDAY, telemetry_records(12..=20)));
    assert_eq!(outcome.stored.len(), 9);
    assert_eq!(outcome.acked_through, 20);
}

#[test]
fn a_poison_record_is_refused_the_rest_stored_and_every_resend_answered_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let device = dev("hub-1");
    let poisoned = || {
        let mut b = batch(&device, TUESDAY, telemetry_records([1, 2, 4, 5]));
        b.refused = vec![Refusal {
            seq: 3,
            why: "telemetry.bar: not a finite number".into(),
        }];
        b
    };
    {
        let store = open(dir.path());
        let outcome = ingest_one(&store, poisoned());
        assert_eq!(outcome.stored.len(), 4);
        assert_eq!(
            outcome.acked_through, 5,
            "the ack moves past the refused record"
        );
        assert_eq!(outcome.newly_refused, 1);
        assert_eq!(
            outcome.refused,
            [Refusal {
                seq: 3,
                why: "telemetry.bar: not a finite number".into()
            }]
        );
        let resent = ingest_one(&store, poisoned());
        assert_eq!((resent.stored.len(), resent.duplicates), (0, 4));
        assert_eq!(resent.refused, outcome.refused, "the same answer");
        assert_eq!(resent.newly_refused, 0, "counted once");
        // A resend in which 3 decodes is still refused, never stored later as good.
        let mut healed = batch(&device, TUESDAY, telemetry_records(1..=5));
        healed.refused.clear();
        let resent = ingest_one(&store, healed);
        assert_eq!(resent.refused, outcome.refused);
        assert!(store.record(&device, 3).unwrap().is_none());
        let entries = store.quarantined(10, None).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].device.as_ref(), Some(&device));
        assert_eq!(entries[0].seq, Some(3));
        let (_, info, acked) = store.devices().unwrap().remove(0);
        assert_eq!((info.records, info.refused, acked), (4, 1, 5));
    }
    // After a restart the refusal is still the answer.
    let store = open(dir.path());
    let resent = ingest_one(&store, poisoned());
    assert_eq!(resent.refused.len(), 1);
    assert_eq!(resent.acked_through, 5);
    assert_eq!(store.quarantined(10, None).unwrap().len(), 1);
}

fn small_limits() -> StoreSettings {
    StoreSettings {
        cache_bytes: 8 * 1024 * 1024,
        quarantine: QuarantineLimits {
            max_entries: 5,
            max_bytes: 4 * 1024,
            retention_ms: HOUR,
            prefix_bytes: 16,
        },
        ..StoreSettings::default()
    }
}

fn refused_at(payload: &[u8], received: TimestampMs) -> Refused<'_> {
    Refused {
        topic: "fieldsync/v1/hub-1/up",
        reason: "malformed CBOR",
        payload,
        received,
        record: None,
    }
}

#[test]
fn the_quarantine_keeps_a_prefix_and_a_hash_within_its_caps_oldest_evicted_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open_with(dir.path(), small_limits()).unwrap();
    let payload = vec![0xab_u8; proto::MAX_MESSAGE_BYTES];
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.extend(
            store
                .quarantine(&[refused_at(&payload, TUESDAY + i)])
                .unwrap(),
        );
    }
    let usage = store.quarantine_usage();
    assert_eq!((usage.entries, usage.evicted), (5, 3));
    assert!(usage.bytes <= 4 * 1024, "{usage:?}");
    let entries = store.quarantined(100, None).unwrap();
    let kept: Vec<u64> = entries.iter().map(|e| e.id).collect();
    assert_eq!(kept, ids[3..].iter().rev().copied().collect::<Vec<_>>());
    let digest = ring::digest::digest(&ring::digest::SHA256, &payload);
    assert!(entries.iter().all(|e| e.prefix.len() == 16
        && e.size == payload.len() as u64
        && e.sha256 == digest.as_ref()));
    // Paging: the entries below an id.
    let older = store.quarantined(2, Some(ids[6])).unwrap();
    assert_eq!(
        older.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[5], ids[4]]
    );
    // Past the retention, everything older goes with the next arrival.
    store
        .quarantine(&[refused_at(b"late", TUESDAY + 2 * HOUR)])
        .unwrap();
    let usage = store.quarantine_usage();
    assert_eq!((usage.entries, usage.evicted), (1, 8));
    drop(store);
    // The totals are counted again at open.
    let store = SledStore::open_with(dir.path(), small_limits()).unwrap();
    assert_eq!(store.quarantine_usage().entries, 1);
}

#[test]
fn a_refused_record_evicted_from_the_quarantine_is_then_answered_as_held() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open_with(dir.path(), small_limits()).unwrap();
    let device = dev("hub-1");
    let mut poisoned = batch(&device, TUESDAY, telemetry_records([1]));
    poisoned.refused = vec![Refusal {
        seq: 2,
        why: "bad".into(),
    }];
    assert_eq!(ingest_one(&store, poisoned.clone()).refused.len(), 1);
    for i in 0..5 {
        store
            .quarantine(&[refused_at(b"junk", TUESDAY + i)])
            .unwrap();
    }
    let resent = ingest_one(&store, poisoned);
    assert!(resent.refused.is_empty(), "forgotten with its entry");
    assert_eq!(resent.acked_through, 2, "and still counted as held");
    assert!(store.record(&device, 2).unwrap().is_none());
}

/// Gateway time of the device's boot.
const BOOT_AT: TimestampMs = TUESDAY + 5 * HOUR;
/// The link's delay on every batch.
const DELAY: i64 = 250;

/// A crew record made `after` ms into boot 1, by a device clock `clock_error` ms out.
fn made(seq: u64, after: i64, clock_error: i64) -> Record {
    Record {
        boot: Some(1),
        mono: Some(after as u64),
        ..record(seq, BOOT_AT + after + clock_error, collection(100 + seq))
    }
}

/// A batch sent `after` ms into boot 1 by a device clock `clock_error` ms out.
fn sent(device: &DeviceId, after: i64, clock_error: i64, records: Vec<Record>) -> IncomingBatch {
    IncomingBatch {
        sent: BOOT_AT + after + clock_error,
        boot: Some(1),
        mono: Some(after as u64),
        ..batch(device, BOOT_AT + after + DELAY, records)
    }
}

fn assert_placed_right(outcome: &BatchOutcome, truth: impl Fn(u64) -> TimestampMs) {
    for stored in &outcome.stored {
        let placed = stored.placed.unwrap();
        let error = placed.at - truth(stored.record.seq);
        assert!(
            (0..=DELAY).contains(&error),
            "record {} placed {error} ms from the truth ({:?})",
            stored.record.seq,
            placed.basis
        );
        assert_eq!(placed.basis, TimeBasis::Monotonic);
    }
}

#[test]
fn records_made_offline_on_a_clock_three_hours_slow_are_placed_right() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let live = desk(&store);
    let device = dev("cab-rcv07");
    // 500 confirmations, 30 s apart, made offline on a clock 3 h slow.
    let records: Vec<Record> = (1..=500)
        .map(|seq| made(seq, seq as i64 * 30_000, -3 * HOUR))
        .collect();
    // Back in signal 5 h after boot, NTP has fixed the clock; the backlog goes in 5 batches.
    let mut placed = 0;
    for (i, chunk) in records.chunks(100).enumerate() {
        let at = 5 * HOUR + i as i64 * 2_000;
        let outcome = ingest_one(&store, sent(&device, at, 0, chunk.to_vec()));
        assert_placed_right(&outcome, |seq| BOOT_AT + seq as i64 * 30_000);
        live.observe(&device, &outcome.stored, BOOT_AT + at)
            .unwrap();
        placed += outcome.stored.len();
    }
    assert_eq!(placed, 500);
    // The desk judges them by the placed time, not the device's.
    let snapshot = evidence_snapshot(&live);
    let confirmations: Vec<&Confirmation> = snapshot.iter().flat_map(|(_, c)| c).collect();
    assert_eq!(confirmations.len(), 500);
    for confirmation in confirmations {
        let seq: i64 = confirmation.evidence.as_str()["cab-rcv07#".len()..]
            .parse()
            .unwrap();
        let error = confirmation.at - (BOOT_AT + seq * 30_000);
        assert!((0..=DELAY).contains(&error), "#{seq} judged {error} ms out");
    }
}

#[test]
fn a_two_hour_jump_mid_round_does_not_move_any_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let device = dev("cab-rcv07");
    let jump_after = 250 * 30_000;
    let clock_error = |after: i64| if after >= jump_after { 2 * HOUR } else { 0 };
    // A record every 30 s; a batch every 7 minutes with what has been made since the last, so
    // records made before the jump go in batches sent after it.
    let mut next = 1;
    for minute in (7..=(500 * 30 / 60 + 7)).step_by(7) {
        let at = minute * MINUTE;
        let mut records = Vec::new();
        while next <= 500 && (next as i64) * 30_000 <= at {
            let after = next as i64 * 30_000;
            records.push(made(next, after, clock_error(after)));
            next += 1;
        }
        let outcome = ingest_one(&store, sent(&device, at, clock_error(at), records));
        assert_placed_right(&outcome, |seq| BOOT_AT + seq as i64 * 30_000);
    }
    assert_eq!(next, 501);
    assert_eq!(store.record_count(&device).unwrap(), 500);
    let (_, info, acked) = store.devices().unwrap().remove(0);
    assert_eq!((info.uncorrected_times, acked), (0, 500));
}

#[test]
fn records_without_an_anchor_fall_back_and_say_how_they_were_placed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let device = dev("cab-rcv07");
    // An older device: no boot or mono anywhere; its clock 3 h slow at sending.
    let mut old = batch(
        &device,
        TUESDAY + 12 * HOUR,
        vec![record(1, TUESDAY + 9 * HOUR, collection(1))],
    );
    old.sent = TUESDAY + 9 * HOUR;
    let outcome = ingest_one(&store, old);
    let placed = outcome.stored[0].placed.unwrap();
    assert_eq!(placed.basis, TimeBasis::BatchOffset);
    assert_eq!(placed.at, TUESDAY + 12 * HOUR);
    // A record from boot 6, which never sent an envelope, in a batch of boot 7.
    let mut other_boot = batch(
        &device,
        TUESDAY + 12 * HOUR,
        vec![Record {
            boot: Some(6),
            mono: Some(60_000),
            ..record(2, TUESDAY + 8 * HOUR, collection(2))
        }],
    );
    other_boot.boot = Some(7);
    other_boot.mono = Some(1_000);
    let outcome = ingest_one(&store, other_boot);
    assert_eq!(
        outcome.stored[0].placed.unwrap().basis,
        TimeBasis::Uncorrected
    );
    let (_, info, _) = store.devices().unwrap().remove(0);
    assert_eq!(info.uncorrected_times, 1);
    // Boot 6's anchor, learnt later, places its later records (and survives a restart).
    let mut boot_six = batch(&device, TUESDAY + 13 * HOUR, Vec::new());
    boot_six.boot = Some(6);
    boot_six.mono = Some(2 * 3_600_000);
    ingest_one(&store, boot_six);
    drop(store);
    let store = open(dir.path());
    let mut late = batch(
        &device,
        TUESDAY + 14 * HOUR,
        vec![Record {
            boot: Some(6),
            mono: Some(3_600_000),
            ..record(3, 0, collection(3))
        }],
    );
    late.boot = Some(7);
    late.mono = Some(10_000);
    let placed = ingest_one(&store, late).stored[0].placed.unwrap();
    assert_eq!(placed.basis, TimeBasis::Monotonic);
    assert_eq!(placed.at, TUESDAY + 12 * HOUR);
}

#[test]
fn a_store_made_with_sleds_default_segment_size_still_opens_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let device = dev("hub-0001");
    {
        let store = {
            // As stores were made before the segment size was raised.
            let db = sled::open(dir.path()).unwrap();
            db.flush().unwrap();
            drop(db);
            open(dir.path())
        };
        ingest_one(&store, batch(&device, TUESDAY, telemetry_records(1..=3)));
    }
    for _ in 0..2 {
        let store = open(dir.path());
        assert_eq!(store.record_count(&device).unwrap(), 3);
    }
}
