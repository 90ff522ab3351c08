//! The outbox end to end on a real sled database in a temporary directory: numbering across
//! restarts, group commit, priorities, acks, resends, the disk budget and recovery.

use std::path::Path;
use std::time::{Duration, Instant};

use proto::{
    BinStream, Collection, Gap, GapReason, Health, JobStatus, JobUpdate, Outcome, Position, Record,
    RecordBody, RecordKind, RoundEvent, RoundPhase, Telemetry,
};
use tempfile::TempDir;

use super::store::Store;
use super::*;

const TS: TimestampMs = 1_764_000_000_000;

const ALL: BatchLimits = BatchLimits {
    records: 1_000,
    bytes: 1 << 20,
};

fn telemetry() -> RecordBody {
    RecordBody::Telemetry(Telemetry {
        asset: "B-1042".into(),
        flow: Some(61.5),
        ret: Some(48.25),
        bar: Some(1.4),
        modu: Some(35.0),
        flame: Some(true),
        ..Telemetry::default()
    })
}

fn health() -> RecordBody {
    RecordBody::Health(Health {
        batt: None,
        rssi: Some(-87),
        depth: 0,
        bytes: 0,
        free: 1 << 30,
        up: 60,
        ver: "0.1.0".into(),
        dead: None,
        faults: None,
        stalls: None,
        unverified: None,
        src: None,
    })
}

fn collection() -> RecordBody {
    RecordBody::Collection(Collection {
        uprn: Some(100_023_336_956),
        stream: BinStream::Refuse,
        outcome: Outcome::Collected,
        pos: Position {
            lat: 51.501,
            lon: -0.142,
            acc: 4.0,
        },
        vehicle: "RCV-17".into(),
        round: "MON-A".into(),
        job: None,
        photo: None,
        note: None,
    })
}

fn job_update() -> RecordBody {
    RecordBody::JobUpdate(JobUpdate {
        job: "J-881".into(),
        status: JobStatus::Arrived,
        pos: None,
        note: None,
    })
}

fn round_event() -> RecordBody {
    RecordBody::RoundEvent(RoundEvent {
        round: "MON-A".into(),
        vehicle: "RCV-17".into(),
        phase: RoundPhase::Started,
    })
}

fn open(dir: &Path) -> Outbox {
    Outbox::open(dir, OutboxConfig::default()).unwrap()
}

fn open_with_budget(dir: &Path, budget_bytes: u64) -> Outbox {
    let config = OutboxConfig {
        budget_bytes,
        ..OutboxConfig::default()
    };
    Outbox::open(dir, config).unwrap()
}

/// The encoded size of `body` as record number `seq`.
fn encoded_size(seq: u64, body: RecordBody) -> u64 {
    let record = Record {
        seq,
        ts: TS,
        body,
        boot: None,
        mono: None,
    };
    proto::encode_value(&record).unwrap().len() as u64
}

async fn accept_all(outbox: &Outbox, bodies: impl IntoIterator<Item = RecordBody>) -> Vec<u64> {
    let mut seqs = Vec::new();
    for body in bodies {
        seqs.push(outbox.accept(TS, body).await.unwrap().seq);
    }
    seqs
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|record| record.seq).collect()
}

fn gaps(records: &[Record]) -> Vec<(u64, Gap)> {
    records
        .iter()
        .filter_map(|record| match &record.body {
            RecordBody::Gap(gap) => Some((record.seq, gap.clone())),
            _ => None,
        })
        .collect()
}

// Sequence numbers.

#[tokio::test]
async fn numbers_increase_and_continue_after_a_restart() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    assert_eq!(
        accept_all(&outbox, [telemetry(), collection(), health()]).await,
        [1, 2, 3]
    );
    drop(outbox);

    let outbox = open(dir.path());
    assert_eq!(outbox.accept(TS, telemetry()).await.unwrap().seq, 4);
}

#[tokio::test]
async fn numbers_are_not_reused_once_every_record_is_acked() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, [telemetry(), telemetry(), telemetry()]).await;
    outbox.ack(3).await.unwrap();
    drop(outbox);

    let outbox = open(dir.path());
    assert_eq!(outbox.stats().unwrap().depth, 0);
    assert_eq!(outbox.accept(TS, telemetry()).await.unwrap().seq, 4);
}

#[tokio::test]
async fn numbers_are_not_reused_when_the_persisted_counter_lags() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, (0..5).map(|_| telemetry())).await;
    drop(outbox);
    // As if the counter's last update never reached the disk.
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.commit(2).unwrap();
    drop(store);

    let outbox = open(dir.path());
    assert_eq!(outbox.stats().unwrap().next_seq, 6);
    assert_eq!(outbox.accept(TS, telemetry()).await.unwrap().seq, 6);
}

// Group commit.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_flushes() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    let writers: Vec<_> = (0..32)
        .map(|i| {
            let outbox = outbox.clone();
            let body = if i % 4 == 0 {
                collection()
            } else {
                telemetry()
            };
            tokio::spawn(async move { outbox.accept(TS, body).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for writer in writers {
        seqs.push(writer.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=32).collect::<Vec<u64>>());

    let stats = outbox.stats().unwrap();
    assert_eq!(stats.depth, 32);
    assert!(
        stats.flushes < 32,
        "{} flushes for 32 writes",
        stats.flushes
    );
}

#[tokio::test]
async fn accepted_records_are_offered_at_once() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    let seq = outbox.accept(TS, collection()).await.unwrap().seq;
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    assert_eq!(seqs(&batch), [seq]);
    assert_eq!(batch[0].body, collection());
}

#[tokio::test]
async fn records_carry_the_boot_and_the_monotonic_time_they_were_accepted_at() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    // A start that began five seconds ago (or now, on a clock too young to go back that far).
    let started = Instant::now()
        .checked_sub(Duration::from_secs(5))
        .unwrap_or_else(Instant::now);
    let stamp = crate::stamp::Stamp::new(7, started);
    outbox.stamp_records(stamp.clone()).unwrap();
    let before = stamp.mono_at(Instant::now());
    outbox.accept(TS, collection()).await.unwrap();
    let after = stamp.mono_at(Instant::now());
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    assert_eq!(batch[0].boot, Some(7));
    let mono = batch[0].mono.unwrap();
    assert!(
        (before..=after).contains(&mono),
        "{before} <= {mono} <= {after}"
    );
    // Stored with the record: the same after a restart.
    drop(outbox);
    let outbox = open(dir.path());
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    assert_eq!((batch[0].boot, batch[0].mono), (Some(7), Some(mono)));
}

// Priorities and batch limits.

#[tokio::test]
async fn critical_records_go_first_each_lane_in_order() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    let bodies = [
        telemetry(),
        collection(),
        health(),
        job_update(),
        telemetry(),
        round_event(),
    ];
    accept_all(&outbox, bodies).await;
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    assert_eq!(seqs(&batch), [2, 4, 6, 1, 3, 5]);
    let kinds: Vec<RecordKind> = batch.iter().map(|r| r.body.kind()).collect();
    assert!(kinds[..3].iter().all(|kind| kind.is_critical()));
}

#[tokio::test]
async fn batches_respect_count_and_byte_limits() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, (0..10).map(|_| telemetry())).await;
    let now = Instant::now();

    let three = BatchLimits {
        records: 3,
        bytes: 1 << 20,
    };
    assert_eq!(seqs(&outbox.next_batch(now, three).unwrap()), [1, 2, 3]);

    let size = encoded_size(1, telemetry()) as usize;
    let four_and_a_half = BatchLimits {
        records: 100,
        bytes: size * 9 / 2,
    };
    let batch = outbox.next_batch(now, four_and_a_half).unwrap();
    assert_eq!(batch.len(), 4);
    let bytes: u64 = batch
        .iter()
        .map(|r| proto::encode_value(r).unwrap().len() as u64)
        .sum();
    assert!(bytes as usize <= four_and_a_half.bytes);
}

// Acks.

#[tokio::test]
async fn acks_delete_through_their_number_and_repeat_harmlessly() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, (0..5).map(|_| telemetry())).await;

    let acked = outbox.ack(3).await.unwrap();
    assert_eq!(
        acked,
        Acked {
            acked_through: 3,
            removed: 3,
            dead_lettered: 0,
        }
    );
    assert_eq!(outbox.ack(3).await.unwrap().removed, 0, "duplicate");
    assert_eq!(
        outbox.ack(1).await.unwrap(),
        Acked {
            acked_through: 3,
            removed: 0,
            dead_lettered: 0,
        }
    );
    assert!(matches!(
        outbox.ack(6).await,
        Err(OutboxError::AckAhead {
            thru: 6,
            last_issued: 5
        })
    ));

    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    assert_eq!(seqs(&batch), [4, 5]);
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.depth, stats.acked_through), (2, 3));
}

#[tokio::test]
async fn a_refused_record_is_kept_as_a_dead_letter_and_the_rest_go_on() {
    let dir = TempDir::new().unwrap();
    {
        let outbox = open(dir.path());
        accept_all(
            &outbox,
            [collection(), telemetry(), collection(), telemetry()],
        )
        .await;
        let refused = [
            Refusal::new(2, "asset: not provisioned"),
            // Beyond the ack, and below the watermark later: both ignored.
            Refusal::new(4, "not covered by this ack"),
        ];
        let acked = outbox.ack_refusing(3, &refused, TS + 5).await.unwrap();
        assert_eq!((acked.removed, acked.dead_lettered), (3, 1));
        let stats = outbox.stats().unwrap();
        assert_eq!((stats.acked_through, stats.depth), (3, 1));
        assert_eq!(stats.dead_letters, 1);
        // Only the record behind it is left to send.
        assert_eq!(seqs(&outbox.next_batch(Instant::now(), ALL).unwrap()), [4]);
        // A repeated ack naming it again changes nothing.
        let again = outbox.ack_refusing(3, &refused, TS + 9).await.unwrap();
        assert_eq!((again.removed, again.dead_lettered), (0, 0));
    }
    // Durable: after a restart the letter is there, with its reason and what it was.
    let outbox = open(dir.path());
    let dead = outbox.dead_letters(NEWEST_SHOWN).unwrap();
    assert_eq!((dead.count, dead.evicted), (1, 0));
    assert_eq!(
        dead.newest,
        [DeadLetter {
            seq: 2,
            kind: Some("telemetry"),
            ts: Some(TS),
            why: "asset: not provisioned".into(),
            at: TS + 5,
        }]
    );
    assert_eq!(outbox.stats().unwrap().dead_letters, 1);
}

#[tokio::test]
async fn the_dead_letter_list_is_bounded_and_counts_what_it_evicts() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    let extra = 3;
    let n = MAX_DEAD_LETTERS + extra;
    accept_all(&outbox, (0..n).map(|_| telemetry())).await;
    // Refused in two acks, as a gateway would over several batches.
    let refusals: Vec<Refusal> = (1..=n).map(|seq| Refusal::new(seq, "bad")).collect();
    let half = n / 2;
    let first = usize::try_from(half).unwrap();
    outbox
        .ack_refusing(half, &refusals[..first], TS)
        .await
        .unwrap();
    outbox
        .ack_refusing(n, &refusals[first..], TS)
        .await
        .unwrap();
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.depth, stats.acked_through), (0, n));
    let dead = outbox.dead_letters(2).unwrap();
    assert_eq!((dead.count, dead.evicted), (MAX_DEAD_LETTERS, extra));
    assert_eq!(seqs_of(&dead.newest), [n, n - 1], "newest first");
    drop(outbox);
    // The oldest went; the eviction count survives a restart.
    let outbox = open(dir.path());
    let dead = outbox.dead_letters(NEWEST_SHOWN).unwrap();
    assert_eq!((dead.count, dead.evicted), (MAX_DEAD_LETTERS, extra));
}

fn seqs_of(letters: &[DeadLetter]) -> Vec<u64> {
    letters.iter().map(|letter| letter.seq).collect()
}

#[tokio::test]
async fn acks_survive_a_restart() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, (0..5).map(|_| telemetry())).await;
    outbox.ack(2).await.unwrap();
    drop(outbox);

    let outbox = open(dir.path());
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (stats.depth, stats.acked_through, stats.next_seq),
        (3, 2, 6)
    );
    assert_eq!(
        seqs(&outbox.next_batch(Instant::now(), ALL).unwrap()),
        [3, 4, 5]
    );
}

#[tokio::test]
async fn a_record_sent_ahead_stays_until_the_ack_covers_it() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, [telemetry(), telemetry(), collection()]).await;
    // The collection (3) goes first; the gateway can ack only 1 until 2 arrives.
    outbox.ack(1).await.unwrap();
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    assert_eq!(seqs(&batch), [3, 2]);
}

// In flight and resending.

#[tokio::test]
async fn unacked_records_are_offered_again_after_the_timeout() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, [telemetry(), collection(), telemetry()]).await;
    let t0 = Instant::now();
    let batch = outbox.next_batch(t0, ALL).unwrap();
    outbox.mark_sent(&seqs(&batch), t0).unwrap();
    assert_eq!(outbox.stats().unwrap().in_flight, 3);
    assert!(outbox
        .next_batch(t0 + Duration::from_secs(29), ALL)
        .unwrap()
        .is_empty());

    // A newer record goes before the overdue ones.
    accept_all(&outbox, [telemetry()]).await;
    let overdue = t0 + OutboxConfig::default().resend_after;
    assert_eq!(
        seqs(&outbox.next_batch(overdue, ALL).unwrap()),
        [4, 2, 1, 3]
    );
}

#[tokio::test]
async fn a_reconnect_makes_everything_eligible_again() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, [telemetry(), collection()]).await;
    let t0 = Instant::now();
    outbox.mark_sent(&[1, 2], t0).unwrap();
    assert!(outbox.next_batch(t0, ALL).unwrap().is_empty());

    outbox.reset_in_flight().unwrap();
    assert_eq!(outbox.stats().unwrap().in_flight, 0);
    assert_eq!(seqs(&outbox.next_batch(t0, ALL).unwrap()), [2, 1]);
}

// The disk budget.

#[tokio::test]
async fn the_oldest_telemetry_makes_room_reported_by_one_gap() {
    let dir = TempDir::new().unwrap();
    let budget = 10 * encoded_size(10, telemetry());
    let outbox = open_with_budget(dir.path(), budget);
    accept_all(&outbox, (0..16).map(|_| telemetry())).await;

    let stats = outbox.stats().unwrap();
    assert!(stats.bytes <= budget, "{} > {budget}", stats.bytes);
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    let gaps = gaps(&batch);
    assert_eq!(gaps.len(), 1, "drops coalesce into one gap: {gaps:?}");
    let (gap_seq, gap) = &gaps[0];
    assert_eq!((gap.from, gap.reason), (1, GapReason::DiskBudget));
    assert_eq!(gap.count, gap.to - gap.from + 1);
    assert!(gap.to < *gap_seq);
    assert_eq!(seqs(&batch)[0], *gap_seq, "the gap goes first");
    assert_eq!(seqs(&batch)[1], gap.to + 1, "the newest telemetry is kept");
    assert_every_number_accounted(&batch, stats.next_seq);
}

#[tokio::test]
async fn a_kept_record_between_drops_splits_the_report() {
    let dir = TempDir::new().unwrap();
    let budget = 10 * encoded_size(10, telemetry());
    let outbox = open_with_budget(dir.path(), budget);
    accept_all(&outbox, (0..4).map(|_| telemetry())).await;
    accept_all(&outbox, [collection()]).await;
    accept_all(&outbox, (0..12).map(|_| telemetry())).await;

    let stats = outbox.stats().unwrap();
    assert!(stats.bytes <= budget, "{} > {budget}", stats.bytes);
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    assert!(
        batch.iter().any(|r| r.body == collection()),
        "never dropped"
    );
    let ranges: Vec<(u64, u64)> = gaps(&batch).iter().map(|(_, g)| (g.from, g.to)).collect();
    assert_eq!(
        ranges[0],
        (1, 4),
        "a gap holds only dropped numbers: {ranges:?}"
    );
    assert_every_number_accounted(&batch, stats.next_seq);
}

/// Every number below `next_seq` is in `batch` or in one of its gaps' ranges, once.
fn assert_every_number_accounted(batch: &[Record], next_seq: u64) {
    let mut accounted = seqs(batch);
    for (_, gap) in gaps(batch) {
        accounted.extend(gap.from..=gap.to);
    }
    accounted.sort_unstable();
    assert_eq!(accounted, (1..next_seq).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_critical_record_that_cannot_fit_is_refused_and_nothing_is_written() {
    let dir = TempDir::new().unwrap();
    let budget = 3 * encoded_size(1, collection());
    let outbox = open_with_budget(dir.path(), budget);
    accept_all(&outbox, (0..3).map(|_| collection())).await;
    let before = outbox.stats().unwrap();

    let refused = outbox.accept(TS, collection()).await;
    assert!(
        matches!(refused, Err(OutboxError::Full { .. })),
        "{refused:?}"
    );
    assert_eq!(outbox.stats().unwrap(), before);
    drop(outbox);

    let outbox = open_with_budget(dir.path(), budget);
    let after = outbox.stats().unwrap();
    assert_eq!(
        (after.depth, after.bytes, after.next_seq),
        (3, before.bytes, 4)
    );
}

#[tokio::test]
async fn a_gap_open_before_a_restart_is_not_grown_after_it() {
    let dir = TempDir::new().unwrap();
    let budget = 6 * encoded_size(10, telemetry());
    let outbox = open_with_budget(dir.path(), budget);
    accept_all(&outbox, (0..8).map(|_| telemetry())).await;
    drop(outbox);

    // The first gap may have reached the gateway before the restart: it must not change.
    let outbox = open_with_budget(dir.path(), budget);
    let before: Vec<(u64, Gap)> = gaps(&outbox.next_batch(Instant::now(), ALL).unwrap());
    accept_all(&outbox, (0..3).map(|_| telemetry())).await;
    let after = gaps(&outbox.next_batch(Instant::now(), ALL).unwrap());
    assert_eq!(before.len(), 1);
    assert_eq!(after[0], before[0]);
    assert_eq!(after.len(), 2);
    assert_eq!(after[1].1.from, before[0].1.to + 1);
}

#[tokio::test]
async fn a_gap_stops_growing_once_handed_to_the_uplink() {
    let dir = TempDir::new().unwrap();
    let budget = 6 * encoded_size(10, telemetry());
    let outbox = open_with_budget(dir.path(), budget);
    accept_all(&outbox, (0..8).map(|_| telemetry())).await;
    let sent = gaps(&outbox.next_batch(Instant::now(), ALL).unwrap());
    accept_all(&outbox, (0..3).map(|_| telemetry())).await;
    let now_held = gaps(&outbox.next_batch(Instant::now(), ALL).unwrap());
    assert_eq!(now_held[0], sent[0], "the sent gap is unchanged");
    assert_eq!(now_held.len(), 2);
}

// Validation.

#[tokio::test]
async fn callers_cannot_write_gap_records_or_invalid_ones() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    let gap = RecordBody::Gap(Gap {
        from: 1,
        to: 1,
        count: 1,
        reason: GapReason::SensorError,
    });
    assert!(matches!(
        outbox.accept(TS, gap).await,
        Err(OutboxError::ReservedKind(RecordKind::Gap))
    ));
    let nameless = RecordBody::Telemetry(Telemetry::default());
    assert!(matches!(
        outbox.accept(TS, nameless).await,
        Err(OutboxError::Invalid(_))
    ));
    assert_eq!(outbox.stats().unwrap().next_seq, 1, "no number spent");
}

// Restarts.

#[tokio::test]
async fn a_restart_restores_depth_bytes_and_numbering() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, [telemetry(), collection(), health(), job_update()]).await;
    outbox.ack(1).await.unwrap();
    let before = outbox.stats().unwrap();
    drop(outbox);

    let outbox = open(dir.path());
    let after = outbox.stats().unwrap();
    assert_eq!(
        (
            after.depth,
            after.priority_depth,
            after.bytes,
            after.next_seq,
            after.acked_through
        ),
        (
            before.depth,
            before.priority_depth,
            before.bytes,
            before.next_seq,
            before.acked_through
        )
    );
    assert_eq!(after.oldest_unsent_ts, Some(TS));
}

#[tokio::test]
async fn a_record_lost_by_storage_is_reported_as_a_gap_on_open() {
    let dir = TempDir::new().unwrap();
    let outbox = open(dir.path());
    accept_all(&outbox, [telemetry(), telemetry(), telemetry()]).await;
    drop(outbox);
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.remove(2).unwrap();
    store.commit(4).unwrap();
    drop(store);

    let outbox = open(dir.path());
    let batch = outbox.next_batch(Instant::now(), ALL).unwrap();
    let expected = Gap {
        from: 2,
        to: 2,
        count: 1,
        reason: GapReason::Restart,
    };
    assert_eq!(gaps(&batch), [(4, expected)]);
    assert_eq!(seqs(&batch), [4, 1, 3]);
    assert_eq!(outbox.stats().unwrap().next_seq, 5);
}

#[test]
fn the_oldest_unsent_age_uses_the_callers_clock() {
    let stats = OutboxStats {
        depth: 1,
        priority_depth: 0,
        bytes: 100,
        budget_bytes: 1_000,
        in_flight: 0,
        oldest_unsent_ts: Some(TS),
        acked_through: 0,
        next_seq: 2,
        flushes: 1,
        storage: StorageState::Ok,
        storage_faults: 0,
        storage_recoveries: 0,
        dead_letters: 0,
        dead_letters_evicted: 0,
    };
    assert_eq!(
        stats.oldest_unsent_age(TS + 90_000),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        stats.oldest_unsent_age(TS - 1),
        Some(Duration::ZERO),
        "a clock set back"
    );
}
