//! Which of a device's sequence numbers the gateway holds, as merged ranges, and so how far the
//! cumulative ack may go. Pure bookkeeping: the ingest loop persists it with the records.
//!
//! Agents send crews' confirmations before older telemetry, so sequence numbers arrive out of
//! order; the ack may only cover `1..=N` once every number in it is stored, refused, or was
//! announced as dropped by an exact [`proto::Gap`] below the gap record's own number. A duplicate
//! is recognised by membership, whatever its order.
//!
//! Nothing here lets one record claim numbers at or above its own: a gap that did could move the
//! ack past records not yet received, which would then be taken for duplicates and dropped.

use serde::{Deserialize, Serialize};

/// Why a gap record cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GapError {
    /// The gap covers the gap record's own number or later ones: a device can only know it
    /// dropped numbers it had already handed out.
    #[error("a gap may cover only sequences below its own ({seq}), not {from}..={to}")]
    NotBelow {
        /// The gap record's own number.
        seq: u64,
        /// The gap's first number.
        from: u64,
        /// The gap's last number.
        to: u64,
    },
    /// The gap is empty or starts at 0, which is no sequence number.
    #[error("a gap must cover 1 or more sequences from 1 up, not {from}..={to}")]
    Empty {
        /// The gap's first number.
        from: u64,
        /// The gap's last number.
        to: u64,
    },
}

/// The sequence numbers held for one device, as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRanges {
    ranges: Vec<(u64, u64)>,
}

impl SeqRanges {
    /// Whether `seq` is held.
    pub fn contains(&self, seq: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, end)| end < seq);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= seq)
    }

    /// Adds `seq`; returns whether it was new. 0 is no sequence number and is never held (it
    /// would sit before 1 and hold the ack at 0 for ever).
    pub fn insert(&mut self, seq: u64) -> bool {
        if seq == 0 || self.contains(seq) {
            return false;
        }
        self.insert_range(seq, seq);
        true
    }

    /// Adds a gap record `seq` that says `from..=to` were dropped: both, or neither if the gap is
    /// not wholly below `seq`. Returns whether `seq` was new.
    pub fn insert_gap(&mut self, seq: u64, from: u64, to: u64) -> Result<bool, GapError> {
        if from == 0 || from > to {
            return Err(GapError::Empty { from, to });
        }
        if to >= seq {
            return Err(GapError::NotBelow { seq, from, to });
        }
        let new = self.insert(seq);
        if new {
            self.insert_range(from, to);
        }
        Ok(new)
    }

    /// Adds every number in `from..=to` (an empty range if `from > to` adds nothing).
    fn insert_range(&mut self, from: u64, to: u64) {
        if from > to {
            return;
        }
        // Ranges that overlap or touch the new one merge with it.
        let first = self
            .ranges
            .partition_point(|&(_, end)| end.saturating_add(1) < from);
        let last = self
            .ranges
            .partition_point(|&(start, _)| start <= to.saturating_add(1));
        let (mut start, mut end) = (from, to);
        if first < last {
            start = start.min(self.ranges[first].0);
            end = end.max(self.ranges[last - 1].1);
        }
        self.ranges.splice(first..last, [(start, end)]);
    }

    /// The cumulative ack: the highest `N` such that all of `1..=N` is held, or 0.
    pub fn acked_through(&self) -> u64 {
        match self.ranges.first() {
            // A range from 0 (held by an older gateway) counts from 1 all the same.
            Some(&(start, end)) if start <= 1 => end,
            _ => 0,
        }
    }

    /// How many separate ranges are held: a measure of how out of order a device's data is.
    pub fn fragments(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_only_a_complete_prefix() {
        let mut held = SeqRanges::default();
        assert_eq!(held.acked_through(), 0);
        assert!(held.insert(2));
        assert!(held.insert(3));
        assert_eq!(held.acked_through(), 0, "1 is missing");
        assert!(held.insert(1));
        assert_eq!(held.acked_through(), 3);
        assert_eq!(held.fragments(), 1);
    }

    #[test]
    fn recognises_duplicates_in_any_order() {
        let mut held = SeqRanges::default();
        for seq in [10, 1, 5, 2] {
            assert!(held.insert(seq));
        }
        for seq in [10, 1, 5, 2] {
            assert!(!held.insert(seq), "{seq} is a duplicate");
        }
        assert!(!held.contains(3));
        assert_eq!(held.acked_through(), 2);
        assert_eq!(held.fragments(), 3);
    }

    #[test]
    fn merges_ranges_that_touch_or_overlap() {
        let mut held = SeqRanges::default();
        held.insert_range(5, 9);
        held.insert_range(20, 30);
        held.insert_range(1, 4);
        assert_eq!(held.acked_through(), 9);
        held.insert_range(8, 25);
        assert_eq!(held.acked_through(), 30);
        assert_eq!(held.fragments(), 1);
        held.insert_range(40, 39);
        assert_eq!(held.fragments(), 1, "an empty range adds nothing");
    }

    #[test]
    fn a_gap_never_covers_its_own_or_later_numbers() {
        let mut held = SeqRanges::default();
        assert!(held.insert(1));
        assert_eq!(
            held.insert_gap(1, 2, 10),
            Err(GapError::NotBelow {
                seq: 1,
                from: 2,
                to: 10
            })
        );
        assert_eq!(
            held.insert_gap(2, 2, u64::MAX),
            Err(GapError::NotBelow {
                seq: 2,
                from: 2,
                to: u64::MAX
            })
        );
        assert!(held.insert_gap(5, 5, 5).is_err(), "not even its own number");
        assert!(held.insert_gap(5, 0, 3).is_err(), "0 is no sequence number");
        assert!(held.insert_gap(5, 4, 3).is_err(), "empty");
        assert_eq!(held.acked_through(), 1, "nothing refused moved the ack");
        assert!(!held.contains(2) && !held.contains(5));
        // Records 2..=10 then arrive and are new, not duplicates.
        for seq in 2..=10 {
            assert!(held.insert(seq), "{seq} was never received");
        }
        assert_eq!(held.acked_through(), 10);
    }

    #[test]
    fn a_gap_below_its_record_moves_the_ack_past_what_was_dropped() {
        let mut held = SeqRanges::default();
        assert!(held.insert(1));
        assert_eq!(held.insert_gap(11, 2, 10), Ok(true));
        assert_eq!(held.acked_through(), 11);
        assert_eq!(
            held.insert_gap(11, 2, 10),
            Ok(false),
            "a resend is a duplicate"
        );
    }

    #[test]
    fn zero_is_never_held() {
        let mut held = SeqRanges::default();
        assert!(!held.insert(0));
        assert!(held.insert(1));
        assert_eq!(held.acked_through(), 1);
    }

    #[test]
    fn handles_the_top_of_the_number_space() {
        let mut held = SeqRanges::default();
        held.insert(u64::MAX);
        held.insert(u64::MAX - 1);
        held.insert(u64::MAX - 2);
        assert!(held.contains(u64::MAX));
        assert_eq!(held.fragments(), 1);
    }
}
