//! The in-memory index of the records the outbox holds: what to send next, what is in flight and
//! when to give up waiting for its ack, and what may be dropped for space. Rebuilt from sled on
//! open; it holds sizes and timestamps, never bodies, so that choosing a batch costs no disk reads.
//! No I/O here: time comes in as arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use proto::{RecordKind, TimestampMs};

use super::commit::Epoch;

/// How a record is treated when the link is scarce or the disk is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Lane {
    /// Sent first, never dropped: what people are waiting on (collections, job updates, round
    /// events), and gap records, which the gateway needs before it can ack past dropped telemetry.
    Priority,
    /// Sent after, dropped oldest first when the disk budget is reached: telemetry and health.
    Bulk,
}

impl Lane {
    /// The lane for records of `kind`.
    pub(super) fn of(kind: RecordKind) -> Self {
        if kind.is_critical() || kind == RecordKind::Gap {
            Lane::Priority
        } else {
            Lane::Bulk
        }
    }
}

/// A waiting record's place in the send order. The derived order is the send order: never-sent
/// records before resends, and within each, the priority lane before the bulk lane.
///
/// Resends go last because the gateway acks cumulatively: a critical record sent ahead of older
/// telemetry is usually already at the gateway, waiting for that telemetry before it can be
/// acked; sending it again ahead of the telemetry would only delay the ack that frees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Turn {
    Fresh(Lane),
    Resend(Lane),
}

/// Where a record stands with the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Waiting to be sent, in this turn.
    Waiting(Turn),
    /// Sent; eligible again if no ack covers it by the deadline.
    InFlight { deadline: Instant },
}

/// What the index needs to know about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Held {
    /// Its lane.
    pub lane: Lane,
    /// Its encoded size, which counts against the disk budget.
    pub bytes: u64,
    /// Its timestamp, for the age of the oldest unsent record.
    pub ts: TimestampMs,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    held: Held,
    /// The group-commit epoch of its latest write: it may be sent once that epoch is durable,
    /// so the gateway never holds a record that a crash could take back.
    written: Epoch,
    status: Status,
}

/// Limits on one batch from [`super::Outbox::next_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// The most records in the batch (at most [`proto::MAX_BATCH_RECORDS`] for one envelope).
    pub records: usize,
    /// The most bytes of encoded records in the batch; leave room for the envelope around them.
    /// A batch always takes at least one record, even one larger than this.
    pub bytes: usize,
}

/// The records the outbox holds, indexed for sending and dropping.
#[derive(Debug, Default)]
pub(super) struct Index {
    entries: BTreeMap<u64, Entry>,
    /// Waiting records in send order.
    queue: BTreeSet<(Turn, u64)>,
    /// In-flight records by the time their ack is due.
    deadlines: BTreeSet<(Instant, u64)>,
    /// Bulk-lane records, oldest first: the candidates for dropping.
    droppable: BTreeSet<u64>,
    bytes: u64,
}

impl Index {
    /// Adds a record, or updates one rewritten in place (a gap record that grew): its size and
    /// epoch change, its place in the send order does not.
    pub(super) fn put(&mut self, seq: u64, held: Held, written: Epoch) {
        if let Some(entry) = self.entries.get_mut(&seq) {
            self.bytes = self.bytes - entry.held.bytes + held.bytes;
            entry.held.bytes = held.bytes;
            entry.held.ts = held.ts;
            entry.written = written;
            return;
        }
        let status = Status::Waiting(Turn::Fresh(held.lane));
        self.entries.insert(
            seq,
            Entry {
                held,
                written,
                status,
            },
        );
        self.schedule(seq, status);
        if held.lane == Lane::Bulk {
            self.droppable.insert(seq);
        }
        self.bytes += held.bytes;
    }

    /// Forgets a record (acked or dropped). Returns whether it was held.
    pub(super) fn remove(&mut self, seq: u64) -> bool {
        let Some(entry) = self.entries.remove(&seq) else {
            return false;
        };
        self.unschedule(seq, entry.status);
        self.droppable.remove(&seq);
        self.bytes -= entry.held.bytes;
        true
    }

    /// The held records numbered `thru` or lower, oldest first.
    pub(super) fn seqs_through(&self, thru: u64) -> Vec<u64> {
        self.entries.range(..=thru).map(|(&seq, _)| seq).collect()
    }

    /// Bulk-lane records as `(seq, bytes)`, oldest first: the order in which they are dropped.
    pub(super) fn droppable_oldest_first(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.droppable
            .iter()
            .filter_map(|seq| self.entries.get(seq).map(|entry| (*seq, entry.held.bytes)))
    }

    /// Chooses the next batch, in send order: records whose ack is overdue are waiting again;
    /// records not yet durable are passed over. Stops at the first record that does not fit, so
    /// that nothing overtakes a record of higher priority. Does not mark them sent.
    pub(super) fn select(
        &mut self,
        now: Instant,
        limits: BatchLimits,
        is_durable: impl Fn(Epoch) -> bool,
    ) -> Vec<u64> {
        self.requeue_overdue(now);
        let mut batch = Vec::new();
        let mut batch_bytes: usize = 0;
        for &(_, seq) in &self.queue {
            if batch.len() >= limits.records {
                break;
            }
            let Some(entry) = self.entries.get(&seq) else {
                continue;
            };
            if !is_durable(entry.written) {
                continue;
            }
            let bytes = usize::try_from(entry.held.bytes).unwrap_or(usize::MAX);
            if !batch.is_empty() && batch_bytes.saturating_add(bytes) > limits.bytes {
                break;
            }
            batch_bytes = batch_bytes.saturating_add(bytes);
            batch.push(seq);
        }
        batch
    }

    /// Notes that `seq` was published; it waits for an ack until `deadline`. Unknown numbers (acked
    /// or dropped since) are ignored.
    pub(super) fn mark_sent(&mut self, seq: u64, deadline: Instant) {
        self.set_status(seq, |_| Status::InFlight { deadline });
    }

    /// Forgets everything about sending (after a reconnect the gateway may have any of it, or
    /// none): every record waits again as if never sent.
    pub(super) fn reset_in_flight(&mut self) {
        let resend_turns = (Turn::Resend(Lane::Priority), 0)..;
        let sent: Vec<u64> = self
            .deadlines
            .iter()
            .map(|&(_, seq)| seq)
            .chain(self.queue.range(resend_turns).map(|&(_, seq)| seq))
            .collect();
        for seq in sent {
            self.set_status(seq, |lane| Status::Waiting(Turn::Fresh(lane)));
        }
    }

    /// The held records whose latest write is not durable (`is_durable` says of its epoch), in
    /// sequence order: after a failed flush, the records whose writers were told so.
    pub(super) fn undurable(&self, is_durable: impl Fn(Epoch) -> bool) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|(_, entry)| !is_durable(entry.written))
            .map(|(&seq, _)| seq)
            .collect()
    }

    /// How many records are held.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many held records are in the priority lane.
    pub(super) fn priority_len(&self) -> usize {
        self.entries.len() - self.droppable.len()
    }

    /// The encoded bytes of all held records.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many records are sent and awaiting an ack.
    pub(super) fn in_flight(&self) -> usize {
        self.deadlines.len()
    }

    /// The timestamp of the oldest (lowest-numbered) record never yet sent.
    pub(super) fn oldest_unsent_ts(&self) -> Option<TimestampMs> {
        let first_fresh = |lane| {
            let turn = Turn::Fresh(lane);
            self.queue
                .range((turn, 0)..=(turn, u64::MAX))
                .next()
                .map(|&(_, seq)| seq)
        };
        let oldest = [first_fresh(Lane::Priority), first_fresh(Lane::Bulk)]
            .into_iter()
            .flatten()
            .min()?;
        self.entries.get(&oldest).map(|entry| entry.held.ts)
    }

    /// Moves in-flight records whose deadline has passed back to waiting, behind fresh records.
    fn requeue_overdue(&mut self, now: Instant) {
        while let Some(&(deadline, seq)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            // Popped here, not only by `set_status`, so the loop ends even for an unknown number.
            self.deadlines.pop_first();
            self.set_status(seq, |lane| Status::Waiting(Turn::Resend(lane)));
        }
    }

    /// Moves a held record to the status `status_for(its lane)`, in the queue or the deadlines.
    fn set_status(&mut self, seq: u64, status_for: impl FnOnce(Lane) -> Status) {
        let Some(entry) = self.entries.get_mut(&seq) else {
            return;
        };
        let status = status_for(entry.held.lane);
        let previous = std::mem::replace(&mut entry.status, status);
        self.unschedule(seq, previous);
        self.schedule(seq, status);
    }

    /// Puts `seq` in the send queue or the deadlines, wherever `status` puts it.
    fn schedule(&mut self, seq: u64, status: Status) {
        match status {
            Status::Waiting(turn) => self.queue.insert((turn, seq)),
            Status::InFlight { deadline } => self.deadlines.insert((deadline, seq)),
        };
    }

    /// Takes `seq` out of the send queue or the deadlines, wherever `status` puts it.
    fn unschedule(&mut self, seq: u64, status: Status) {
        match status {
            Status::Waiting(turn) => self.queue.remove(&(turn, seq)),
            Status::InFlight { deadline } => self.deadlines.remove(&(deadline, seq)),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ANY: BatchLimits = BatchLimits {
        records: 100,
        bytes: 100_000,
    };

    fn held(lane: Lane, bytes: u64) -> Held {
        Held {
            lane,
            bytes,
            ts: 1_000,
        }
    }

    /// Records 1..=6 alternating bulk and priority, all durable (epoch 0).
    fn mixed() -> Index {
        let mut index = Index::default();
        for seq in 1..=6 {
            let lane = if seq % 2 == 0 {
                Lane::Priority
            } else {
                Lane::Bulk
            };
            index.put(seq, held(lane, 10), 0);
        }
        index
    }

    fn durable(_: Epoch) -> bool {
        true
    }

    #[test]
    fn lanes_follow_record_kinds() {
        assert_eq!(Lane::of(RecordKind::Collection), Lane::Priority);
        assert_eq!(Lane::of(RecordKind::JobUpdate), Lane::Priority);
        assert_eq!(Lane::of(RecordKind::RoundEvent), Lane::Priority);
        assert_eq!(Lane::of(RecordKind::Gap), Lane::Priority);
        assert_eq!(Lane::of(RecordKind::Telemetry), Lane::Bulk);
        assert_eq!(Lane::of(RecordKind::Health), Lane::Bulk);
    }

    #[test]
    fn priority_lane_goes_first_each_lane_in_sequence_order() {
        let mut index = mixed();
        let now = Instant::now();
        assert_eq!(index.select(now, ANY, durable), vec![2, 4, 6, 1, 3, 5]);
    }

    #[test]
    fn batches_respect_record_and_byte_limits() {
        let mut index = mixed();
        let now = Instant::now();
        let two = BatchLimits {
            records: 2,
            bytes: 1_000,
        };
        assert_eq!(index.select(now, two, durable), vec![2, 4]);
        let thirty_five_bytes = BatchLimits {
            records: 100,
            bytes: 35,
        };
        assert_eq!(index.select(now, thirty_five_bytes, durable), vec![2, 4, 6]);
    }

    #[test]
    fn an_oversized_record_still_goes_alone() {
        let mut index = Index::default();
        index.put(1, held(Lane::Priority, 500), 0);
        index.put(2, held(Lane::Priority, 5), 0);
        let small = BatchLimits {
            records: 10,
            bytes: 100,
        };
        assert_eq!(index.select(Instant::now(), small, durable), vec![1]);
    }

    #[test]
    fn records_not_yet_durable_are_passed_over() {
        let mut index = mixed();
        index.put(7, held(Lane::Priority, 10), 3);
        let durable_through_2 = |epoch: Epoch| epoch <= 2;
        let batch = index.select(Instant::now(), ANY, durable_through_2);
        assert!(!batch.contains(&7));
        assert_eq!(batch.len(), 6);
    }

    #[test]
    fn sent_records_wait_for_their_deadline_then_follow_fresh_ones() {
        let mut index = mixed();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(30);
        for seq in [2, 4, 1] {
            index.mark_sent(seq, deadline);
        }
        assert_eq!(index.in_flight(), 3);
        assert_eq!(index.select(t0, ANY, durable), vec![6, 3, 5]);

        let later = deadline + Duration::from_millis(1);
        assert_eq!(index.select(later, ANY, durable), vec![6, 3, 5, 2, 4, 1]);
        assert_eq!(index.in_flight(), 0);
    }

    #[test]
    fn reset_makes_everything_fresh_again() {
        let mut index = mixed();
        let t0 = Instant::now();
        for seq in 1..=6 {
            index.mark_sent(seq, t0 + Duration::from_secs(30));
        }
        assert!(index.select(t0, ANY, durable).is_empty());
        index.reset_in_flight();
        assert_eq!(index.in_flight(), 0);
        assert_eq!(index.select(t0, ANY, durable), vec![2, 4, 6, 1, 3, 5]);
    }

    #[test]
    fn removal_unlinks_a_record_wherever_it_is() {
        let mut index = mixed();
        index.mark_sent(2, Instant::now());
        assert!(index.remove(2));
        assert!(index.remove(3));
        assert!(!index.remove(3));
        assert_eq!(index.len(), 4);
        assert_eq!(index.bytes(), 40);
        assert_eq!(index.in_flight(), 0);
        let droppable: Vec<u64> = index.droppable_oldest_first().map(|(seq, _)| seq).collect();
        assert_eq!(droppable, vec![1, 5]);
        index.mark_sent(99, Instant::now());
        assert_eq!(index.in_flight(), 0, "unknown numbers are ignored");
    }

    #[test]
    fn a_rewritten_record_keeps_its_place_but_not_its_size() {
        let mut index = mixed();
        index.put(2, held(Lane::Priority, 25), 0);
        assert_eq!(index.len(), 6);
        assert_eq!(index.bytes(), 75);
        assert_eq!(index.select(Instant::now(), ANY, durable)[0], 2);
    }

    #[test]
    fn oldest_unsent_ignores_records_in_flight() {
        let mut index = Index::default();
        for (seq, ts) in [(1, 100), (2, 200), (3, 300)] {
            index.put(
                seq,
                Held {
                    lane: Lane::Bulk,
                    bytes: 1,
                    ts,
                },
                0,
            );
        }
        assert_eq!(index.oldest_unsent_ts(), Some(100));
        index.mark_sent(1, Instant::now());
        assert_eq!(index.oldest_unsent_ts(), Some(200));
    }
}
