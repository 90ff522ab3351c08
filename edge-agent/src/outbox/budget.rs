//! Keeping the outbox within its disk budget: which records to drop (the oldest bulk-lane ones,
//! never the priority lane), and the gap records that tell the gateway what was dropped. No I/O:
//! [`make_room`] returns a plan, and the caller writes it or, if it fails, writes nothing.
//!
//! Gap records follow two rules that keep the gateway's accounting exact:
//! - A gap's range `from..=to` holds only dropped numbers, all of them (`count` is the span), so
//!   the gateway may treat every number in it as accounted for.
//! - Every number in a gap's range is below the gap record's own number, so once the gateway has
//!   acked a gap record it has accounted for its whole range: a restart never mistakes dropped
//!   numbers for lost ones (see `recovery`).
//!
//! Consecutive drops grow one gap record instead of writing one per dropped record, but only while
//! that gap record is unsent: once the gateway may have stored it, it is never rewritten. After a
//! restart no gap is open (the outbox cannot know whether it was sent), so a new one is started.

use proto::{Gap, GapReason, Record, RecordBody, TimestampMs};

use super::sequence::Sequence;
use super::OutboxError;

/// A gap record, with its encoding (which is what counts against the budget).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GapRecord {
    /// Its sequence number.
    pub seq: u64,
    /// When the records were dropped (or the loss noticed).
    pub ts: TimestampMs,
    /// What it says.
    pub gap: Gap,
    /// The encoded record, as stored.
    pub encoded: Vec<u8>,
}

impl GapRecord {
    /// A gap record numbered `seq` for the dropped numbers `from..=to`, all of them below `seq`.
    pub(super) fn new(
        seq: u64,
        ts: TimestampMs,
        from: u64,
        to: u64,
        reason: GapReason,
    ) -> Result<Self, OutboxError> {
        let gap = Gap {
            from,
            to,
            count: to - from + 1,
            reason,
        };
        let encoded = encode(seq, ts, &gap)?;
        Ok(Self {
            seq,
            ts,
            gap,
            encoded,
        })
    }

    /// Its encoded size.
    pub(super) fn bytes(&self) -> u64 {
        self.encoded.len() as u64
    }

    /// The record it stores.
    #[cfg(test)]
    pub(super) fn record(&self) -> Record {
        Record {
            seq: self.seq,
            ts: self.ts,
            body: RecordBody::Gap(self.gap.clone()),
            boot: None,
            mono: None,
        }
    }

    /// Whether dropping `seq` can extend this gap: it must follow the range directly (the range
    /// holds only dropped numbers) and stay below the gap's own number.
    fn can_absorb(&self, seq: u64) -> bool {
        self.gap.to.checked_add(1) == Some(seq) && seq < self.seq
    }

    /// Extends the range to the dropped number `seq`, which [`Self::can_absorb`] accepted.
    fn absorb(&mut self, seq: u64) -> Result<(), OutboxError> {
        self.gap.to = seq;
        self.gap.count += 1;
        self.encoded = encode(self.seq, self.ts, &self.gap)?;
        Ok(())
    }
}

fn encode(seq: u64, ts: TimestampMs, gap: &Gap) -> Result<Vec<u8>, OutboxError> {
    let record = Record {
        seq,
        ts,
        body: RecordBody::Gap(gap.clone()),
        boot: None,
        mono: None,
    };
    Ok(proto::encode_value(&record)?)
}

/// The budget and how much of it is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Budget {
    /// The most encoded bytes the outbox may hold.
    pub limit: u64,
    /// The encoded bytes it holds now.
    pub held: u64,
}

/// What to do to make room for one more record.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Room {
    /// Records to delete, oldest first.
    pub drops: Vec<u64>,
    /// Gap records to write: the open gap grown, and any new ones, in that order. The last is the
    /// one that may keep growing.
    pub gaps: Vec<GapRecord>,
}

/// Plans room for an `incoming`-byte record: drops `droppable` records (given oldest first) until
/// it fits, growing `open_gap` or starting gap records (numbered from `numbers`) to report them.
/// Fails with [`OutboxError::Full`] if it cannot fit even with every droppable record gone.
pub(super) fn make_room(
    budget: Budget,
    incoming: u64,
    droppable: impl Iterator<Item = (u64, u64)>,
    open_gap: Option<&GapRecord>,
    numbers: &mut Sequence,
    ts: TimestampMs,
) -> Result<Room, OutboxError> {
    let mut total = budget.held + incoming;
    let mut room = Room::default();
    let mut growing = open_gap.cloned();
    for (seq, bytes) in droppable {
        if total <= budget.limit {
            break;
        }
        total = total.saturating_sub(bytes);
        room.drops.push(seq);
        match growing.as_mut() {
            Some(gap) if gap.can_absorb(seq) => {
                total = total.saturating_sub(gap.bytes());
                gap.absorb(seq)?;
                total += gap.bytes();
            }
            _ => {
                let gap = GapRecord::new(numbers.issue()?, ts, seq, seq, GapReason::DiskBudget)?;
                total += gap.bytes();
                room.gaps
                    .extend(growing.replace(gap).filter(|g| Some(g) != open_gap));
            }
        }
    }
    room.gaps.extend(growing.filter(|g| Some(g) != open_gap));
    if total > budget.limit {
        return Err(OutboxError::Full {
            record_bytes: incoming,
            budget_bytes: budget.limit,
        });
    }
    Ok(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: TimestampMs = 1_764_000_000_000;

    /// Telemetry records 1..=n of 100 bytes each.
    fn telemetry(n: u64) -> Vec<(u64, u64)> {
        (1..=n).map(|seq| (seq, 100)).collect()
    }

    #[test]
    fn nothing_is_dropped_while_the_record_fits() {
        let mut numbers = Sequence::recovered(11, Some(10), 0);
        let budget = Budget {
            limit: 1_100,
            held: 1_000,
        };
        let room = make_room(
            budget,
            100,
            telemetry(10).into_iter(),
            None,
            &mut numbers,
            TS,
        );
        assert_eq!(room.unwrap(), Room::default());
        assert_eq!(numbers.next(), 11, "no number issued");
    }

    #[test]
    fn drops_oldest_first_and_reports_them_in_one_gap() {
        let mut numbers = Sequence::recovered(12, Some(11), 0);
        let budget = Budget {
            limit: 1_000,
            held: 1_000,
        };
        // 100 bytes in, plus a gap record of a few dozen bytes: two telemetry records must go.
        let room = make_room(
            budget,
            100,
            telemetry(10).into_iter(),
            None,
            &mut numbers,
            TS,
        )
        .unwrap();
        assert_eq!(room.drops, vec![1, 2]);
        assert_eq!(room.gaps.len(), 1);
        let gap = &room.gaps[0];
        assert_eq!(gap.seq, 12);
        assert_eq!(
            gap.gap,
            Gap {
                from: 1,
                to: 2,
                count: 2,
                reason: GapReason::DiskBudget
            }
        );
        assert_eq!(
            proto::decode_value::<Record>(&gap.encoded, 1_000).unwrap(),
            gap.record()
        );
        assert!(1_000 - 200 + 100 + gap.bytes() <= budget.limit);
    }

    #[test]
    fn an_open_gap_grows_instead_of_a_new_one() {
        let open = GapRecord::new(20, TS, 1, 2, GapReason::DiskBudget).unwrap();
        let mut numbers = Sequence::recovered(31, Some(30), 0);
        let budget = Budget {
            limit: 1_000,
            held: 1_000,
        };
        let remaining = (3..=10).map(|seq| (seq, 100));
        let room = make_room(budget, 100, remaining, Some(&open), &mut numbers, TS).unwrap();
        assert_eq!(room.drops, vec![3]);
        assert_eq!(room.gaps.len(), 1);
        assert_eq!(
            (room.gaps[0].seq, room.gaps[0].gap.from, room.gaps[0].gap.to),
            (20, 1, 3)
        );
        assert_eq!(room.gaps[0].gap.count, 3);
        assert_eq!(numbers.next(), 31, "no new gap record");
    }

    #[test]
    fn a_kept_record_between_drops_starts_a_new_gap() {
        let mut numbers = Sequence::recovered(21, Some(20), 0);
        // 3 is a priority record, so not droppable: 2 and 4 are not consecutive drops.
        let droppable = [(1, 100), (2, 100), (4, 100), (5, 100)];
        let budget = Budget {
            limit: 400,
            held: 500,
        };
        let room = make_room(budget, 100, droppable.into_iter(), None, &mut numbers, TS).unwrap();
        let ranges: Vec<(u64, u64, u64)> = room
            .gaps
            .iter()
            .map(|g| (g.seq, g.gap.from, g.gap.to))
            .collect();
        assert_eq!(room.drops, vec![1, 2, 4, 5]);
        assert_eq!(ranges, vec![(21, 1, 2), (22, 4, 5)]);
    }

    #[test]
    fn a_gap_never_covers_its_own_number_or_beyond() {
        // The open gap (seq 3) covers 1..=2; the next oldest telemetry is 4, past the gap itself.
        let open = GapRecord::new(3, TS, 1, 2, GapReason::DiskBudget).unwrap();
        let mut numbers = Sequence::recovered(11, Some(10), 0);
        let budget = Budget {
            limit: 700,
            held: 700,
        };
        let remaining = (4..=10).map(|seq| (seq, 100));
        let room = make_room(budget, 100, remaining, Some(&open), &mut numbers, TS).unwrap();
        assert_eq!(room.gaps.len(), 1);
        assert_eq!((room.gaps[0].seq, room.gaps[0].gap.from), (11, 4));
        assert!(room.gaps.iter().all(|g| g.gap.to < g.seq));
    }

    #[test]
    fn full_when_nothing_droppable_is_left() {
        let mut numbers = Sequence::recovered(6, Some(5), 0);
        let budget = Budget {
            limit: 500,
            held: 500,
        };
        let result = make_room(budget, 100, std::iter::empty(), None, &mut numbers, TS);
        assert!(matches!(
            result,
            Err(OutboxError::Full {
                record_bytes: 100,
                budget_bytes: 500
            })
        ));
    }

    #[test]
    fn full_when_even_dropping_everything_is_not_enough() {
        let mut numbers = Sequence::recovered(6, Some(5), 0);
        let budget = Budget {
            limit: 150,
            held: 150,
        };
        // One 50-byte droppable record; the rest of the budget is priority records.
        let result = make_room(budget, 100, [(1, 50)].into_iter(), None, &mut numbers, TS);
        assert!(matches!(result, Err(OutboxError::Full { .. })));
    }
}
