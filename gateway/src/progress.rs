//! Which of a device's sequence numbers the gateway holds, as merged ranges, and so how far the
//! cumulative ack may go. Pure bookkeeping: the ingest loop persists it with the records.
//!
//! Agents send crews' confirmations before older telemetry, so sequence numbers arrive out of
//! order; the ack may only cover `1..=N` once every number in it is stored or was announced as
//! dropped by an exact [`proto::Gap`]. A duplicate is recognised by membership, whatever its order.

use serde::{Deserialize, Serialize};

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

    /// Adds `seq`; returns whether it was new.
    pub fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        self.insert_range(seq, seq);
        true
    }

    /// Adds every number in `from..=to` (an empty range if `from > to` adds nothing).
    pub fn insert_range(&mut self, from: u64, to: u64) {
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
            Some(&(1, end)) => end,
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
    fn handles_the_top_of_the_number_space() {
        let mut held = SeqRanges::default();
        held.insert_range(u64::MAX - 1, u64::MAX);
        held.insert(u64::MAX - 2);
        assert!(held.contains(u64::MAX));
        assert_eq!(held.fragments(), 1);
    }
}
