//! What to repair when the outbox opens, decided from what sled recovered. No I/O.
//!
//! The invariant the gateway relies on: every number below the next one is either acked, held
//! here, or inside a held gap record's range. Writes are ordered so that a crash at any point
//! keeps it (see the parent module), but sled is beta and has lost writes after abrupt stops; a
//! number missing here would stall the gateway's acks for ever. So opening checks it, and covers
//! any number that is unaccounted for with a [`GapReason::Restart`] gap record: the record was
//! lost before it was confirmed, or it is unreadable.
//!
//! Opening also finishes what a crash interrupted: it deletes records the ack watermark covers (the
//! ack's deletions did not all reach the disk) and bulk-lane records a gap record reports as
//! dropped (the gap was written, the deletions were not). Priority-lane records are deleted only
//! by an ack.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use proto::{GapReason, TimestampMs};

use super::budget::GapRecord;
use super::index::Lane;
use super::sequence::Sequence;
use super::store::{Stored, StoredRecord};
use super::OutboxError;

/// The repairs to make on open, and what remains.
#[derive(Debug)]
pub(super) struct Recovery {
    /// Where numbering resumes (after any repair gaps).
    pub sequence: Sequence,
    /// Records to keep, in sequence order.
    pub kept: Vec<StoredRecord>,
    /// Gap records to write for numbers no record or gap accounts for.
    pub repair_gaps: Vec<GapRecord>,
    /// Records to delete: already acked, or unreadable (and covered by a repair gap).
    pub deletions: Vec<u64>,
}

/// Decides the repairs for what sled holds; `now` dates the repair gap records.
pub(super) fn recover(stored: Stored, now: TimestampMs) -> Result<Recovery, OutboxError> {
    let highest = stored
        .records
        .iter()
        .map(|record| record.seq)
        .chain(stored.unreadable.iter().copied())
        .max();
    let acked_through = stored.acked_through;
    let mut sequence = Sequence::recovered(stored.next_seq, highest, acked_through);

    let dropped = GapRanges::of(&stored.records);
    let (deleted, kept): (Vec<StoredRecord>, Vec<StoredRecord>) =
        stored.records.into_iter().partition(|record| {
            let droppable = Lane::of(record.kind) == Lane::Bulk;
            record.seq <= acked_through || (droppable && dropped.covers(record.seq))
        });
    let mut deletions: Vec<u64> = deleted.iter().map(|record| record.seq).collect();
    deletions.extend(stored.unreadable);

    let accounted = kept
        .iter()
        .map(|record| record.seq..=record.seq)
        .chain(dropped.iter());
    let missing = unaccounted(acked_through, sequence.next(), accounted);
    let mut repair_gaps = Vec::with_capacity(missing.len());
    for range in missing {
        let seq = sequence.issue()?;
        repair_gaps.push(GapRecord::new(
            seq,
            now,
            *range.start(),
            *range.end(),
            GapReason::Restart,
        )?);
    }
    Ok(Recovery {
        sequence,
        kept,
        repair_gaps,
        deletions,
    })
}

/// The ranges of dropped numbers that held gap records report.
struct GapRanges(BTreeMap<u64, u64>);

impl GapRanges {
    fn of(records: &[StoredRecord]) -> Self {
        let ranges = records.iter().filter_map(|record| record.gap.as_ref());
        Self(ranges.map(|gap| (gap.from, gap.to)).collect())
    }

    /// Whether a gap reports `seq` as dropped. Gap ranges never overlap: each holds only numbers
    /// dropped once.
    fn covers(&self, seq: u64) -> bool {
        self.0
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &to)| seq <= to)
    }

    fn iter(&self) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        self.0.iter().map(|(&from, &to)| from..=to)
    }
}

/// The runs of numbers above `acked_through` and below `next` that no range in `accounted` covers.
fn unaccounted(
    acked_through: u64,
    next: u64,
    accounted: impl Iterator<Item = RangeInclusive<u64>>,
) -> Vec<RangeInclusive<u64>> {
    let mut ranges: Vec<(u64, u64)> = accounted.map(|r| (*r.start(), *r.end())).collect();
    ranges.sort_unstable();
    let mut missing = Vec::new();
    let mut cursor = acked_through.saturating_add(1);
    for (start, end) in ranges {
        if cursor >= next {
            break;
        }
        if start > cursor {
            missing.push(cursor..=(start - 1).min(next - 1));
        }
        cursor = cursor.max(end.saturating_add(1));
    }
    if cursor < next {
        missing.push(cursor..=next - 1);
    }
    missing
}

#[cfg(test)]
mod tests {
    use proto::{Gap, RecordKind};

    use super::*;

    fn record(seq: u64) -> StoredRecord {
        StoredRecord {
            seq,
            kind: RecordKind::Telemetry,
            bytes: 100,
            ts: 1_000,
            gap: None,
        }
    }

    fn gap_record(seq: u64, from: u64, to: u64) -> StoredRecord {
        StoredRecord {
            kind: RecordKind::Gap,
            gap: Some(Gap {
                from,
                to,
                count: to - from + 1,
                reason: GapReason::DiskBudget,
            }),
            ..record(seq)
        }
    }

    fn stored(records: Vec<StoredRecord>, next_seq: u64, acked_through: u64) -> Stored {
        Stored {
            next_seq,
            acked_through,
            records,
            unreadable: Vec::new(),
        }
    }

    #[test]
    fn finds_the_runs_nothing_accounts_for() {
        let accounted = [3..=3, 5..=7, 6..=8, 12..=12].into_iter();
        assert_eq!(
            unaccounted(1, 15, accounted),
            vec![2..=2, 4..=4, 9..=11, 13..=14]
        );
        assert_eq!(unaccounted(0, 1, std::iter::empty()), vec![]);
        assert_eq!(unaccounted(10, 11, [1..=4].into_iter()), vec![]);
        assert_eq!(unaccounted(4, 8, [1..=9].into_iter()), vec![]);
    }

    #[test]
    fn a_clean_outbox_needs_no_repair() {
        let records = vec![record(4), gap_record(5, 1, 3), record(6)];
        let recovery = recover(stored(records, 7, 0), 2_000).unwrap();
        assert!(recovery.repair_gaps.is_empty());
        assert!(recovery.deletions.is_empty());
        assert_eq!(recovery.sequence.next(), 7);
        assert_eq!(recovery.kept.len(), 3);
    }

    #[test]
    fn lost_and_unreadable_records_are_covered_by_restart_gaps() {
        // 2 was lost (5 survived), 4 is unreadable.
        let mut stored = stored(vec![record(1), record(3), record(5)], 4, 0);
        stored.unreadable.push(4);
        let recovery = recover(stored, 2_000).unwrap();
        let gaps: Vec<(u64, u64, u64, GapReason)> = recovery
            .repair_gaps
            .iter()
            .map(|g| (g.seq, g.gap.from, g.gap.to, g.gap.reason))
            .collect();
        assert_eq!(
            gaps,
            vec![(6, 2, 2, GapReason::Restart), (7, 4, 4, GapReason::Restart)]
        );
        assert_eq!(recovery.deletions, vec![4]);
        assert_eq!(recovery.sequence.next(), 8);
    }

    #[test]
    fn an_interrupted_drop_is_finished() {
        // The gap record reporting 1..=2 reached the disk; the deletion of 2 did not.
        let records = vec![record(2), record(3), gap_record(5, 1, 2), record(4)];
        let recovery = recover(stored(records, 6, 0), 2_000).unwrap();
        assert_eq!(recovery.deletions, vec![2]);
        assert!(recovery.repair_gaps.is_empty());
    }

    #[test]
    fn records_the_watermark_covers_are_deleted_not_resent() {
        let recovery = recover(stored(vec![record(1), record(2), record(3)], 4, 2), 2_000).unwrap();
        assert_eq!(recovery.deletions, vec![1, 2]);
        assert_eq!(recovery.kept.len(), 1);
        assert!(recovery.repair_gaps.is_empty());
    }
}
