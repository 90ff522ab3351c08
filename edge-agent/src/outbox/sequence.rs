//! The device's sequence numbers and the gateway's ack watermark: which number comes next, and
//! what an incoming ack means. Plain data, no I/O.

use super::OutboxError;

/// The next number to issue and the highest number the gateway has acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sequence {
    /// The number the next record gets. Every number below it has been issued.
    next: u64,
    /// Every record at or below this number is stored at the gateway (0: none yet).
    acked_through: u64,
}

/// What an ack asks of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckEffect {
    /// Already covered by an earlier ack (a duplicate, or one overtaken on the way): nothing to do.
    Stale,
    /// Moves the watermark forward: delete through `thru`.
    Advance,
}

impl Sequence {
    /// A fresh outbox: the first record is number 1.
    #[cfg(test)]
    pub(super) fn new() -> Self {
        Self::recovered(0, None, 0)
    }

    /// Where numbering resumes after a restart. Each source can lag the others after a crash, so
    /// the next number is past all of them: the persisted `next_seq` (written at each flush), the
    /// highest record still held, and the ack watermark (acked records are deleted, so the highest
    /// key alone could go backwards).
    pub(super) fn recovered(
        persisted_next: u64,
        highest_held: Option<u64>,
        acked_through: u64,
    ) -> Self {
        let after_held = highest_held.map_or(0, |seq| seq.saturating_add(1));
        let next = persisted_next
            .max(after_held)
            .max(acked_through.saturating_add(1))
            .max(1);
        Self {
            next,
            acked_through,
        }
    }

    /// The number the next record will get.
    pub(super) fn next(&self) -> u64 {
        self.next
    }

    /// The ack watermark.
    pub(super) fn acked_through(&self) -> u64 {
        self.acked_through
    }

    /// Issues the next number. Writers issue from a copy while planning, then call
    /// [`Self::mark_written`] on the real one as each record reaches sled, so that a failed write
    /// leaves no number issued but unwritten (a hole the gateway would wait on forever).
    pub(super) fn issue(&mut self) -> Result<u64, OutboxError> {
        let seq = self.next;
        self.next = seq.checked_add(1).ok_or(OutboxError::SequenceExhausted)?;
        Ok(seq)
    }

    /// Notes that the record numbered `seq` (issued from a copy) is written.
    pub(super) fn mark_written(&mut self, seq: u64) {
        self.next = self.next.max(seq.saturating_add(1));
    }

    /// Judges an ack through `thru`. Acks are cumulative, so an old or repeated one is harmless;
    /// one beyond the last number issued cannot describe this outbox's records and is refused.
    pub(super) fn judge_ack(&self, thru: u64) -> Result<AckEffect, OutboxError> {
        let last_issued = self.next - 1;
        if thru > last_issued {
            return Err(OutboxError::AckAhead { thru, last_issued });
        }
        if thru <= self.acked_through {
            return Ok(AckEffect::Stale);
        }
        Ok(AckEffect::Advance)
    }

    /// Records an ack that [`Self::judge_ack`] found to advance the watermark.
    pub(super) fn advance_ack(&mut self, thru: u64) {
        self.acked_through = self.acked_through.max(thru);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_starts_at_one_and_increases() {
        let mut sequence = Sequence::new();
        assert_eq!(sequence.issue().unwrap(), 1);
        assert_eq!(sequence.issue().unwrap(), 2);
        assert_eq!(sequence.next(), 3);
    }

    #[test]
    fn recovery_resumes_past_every_source_so_no_number_is_reused() {
        // The persisted counter lagged behind the records (a crash before the next flush).
        assert_eq!(Sequence::recovered(5, Some(9), 0).next(), 10);
        // Every record was acked and deleted: the watermark remembers how far numbering got.
        assert_eq!(Sequence::recovered(0, None, 42).next(), 43);
        // The counter is ahead of the keys (the newest records were acked).
        assert_eq!(Sequence::recovered(50, Some(30), 20).next(), 50);
    }

    #[test]
    fn old_and_repeated_acks_are_stale() {
        let mut sequence = Sequence::recovered(11, Some(10), 0);
        assert_eq!(sequence.judge_ack(6).unwrap(), AckEffect::Advance);
        sequence.advance_ack(6);
        assert_eq!(sequence.judge_ack(6).unwrap(), AckEffect::Stale);
        assert_eq!(sequence.judge_ack(3).unwrap(), AckEffect::Stale);
        assert_eq!(sequence.judge_ack(0).unwrap(), AckEffect::Stale);
        assert_eq!(sequence.acked_through(), 6);
    }

    #[test]
    fn acks_beyond_the_last_issued_number_are_refused() {
        let sequence = Sequence::recovered(11, Some(10), 0);
        assert!(matches!(
            sequence.judge_ack(11),
            Err(OutboxError::AckAhead {
                thru: 11,
                last_issued: 10
            })
        ));
    }

    #[test]
    fn numbers_issued_from_a_copy_count_once_written() {
        let mut sequence = Sequence::new();
        let mut plan = sequence;
        let first = plan.issue().unwrap();
        let _unwritten = plan.issue().unwrap();
        sequence.mark_written(first);
        assert_eq!(
            sequence.next(),
            2,
            "the number whose write failed is issued again"
        );
    }

    #[test]
    fn exhaustion_is_an_error_not_a_wrap() {
        let mut sequence = Sequence::recovered(u64::MAX, None, 0);
        assert!(matches!(
            sequence.issue(),
            Err(OutboxError::SequenceExhausted)
        ));
    }
}
