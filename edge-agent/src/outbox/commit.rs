//! Group commit: many writers, one flush.
//!
//! A flush (sled's write-out plus an fsync) costs about as much for one record as for a hundred,
//! so writers do not flush themselves. Each write joins the current *epoch*; the flusher thread
//! closes the epoch, flushes, and publishes "durable through epoch E"; every writer of E or earlier
//! then returns. Writes that arrive during a flush join the next epoch, which the flusher takes as
//! soon as the current flush ends. [`GroupCommit`] is that bookkeeping, free of I/O; the flusher
//! thread in the parent module drives it, and [`FlushReport`] carries its results to waiting writers.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use super::OutboxError;

/// A group of writes made durable by one flush. Epochs only grow.
pub(super) type Epoch = u64;

/// Which writes are on disk, which are waiting, and whether the flusher has work.
#[derive(Debug)]
pub(super) struct GroupCommit {
    /// The epoch writes join now; the next flush to begin makes it durable.
    open: Epoch,
    /// Every write of this epoch or earlier is on disk.
    durable: Epoch,
    /// Writes have joined `open` since the last flush began.
    dirty: bool,
    /// The flusher is flushing or about to look for work, so a new write need not wake it.
    busy: bool,
    /// Flushes that succeeded, for the stats: fewer flushes than writes is group commit working.
    flushes: u64,
}

/// What a write learns when it joins an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Joined {
    /// Wait until this epoch is durable.
    pub epoch: Epoch,
    /// The flusher is idle and must be woken.
    pub wake_flusher: bool,
}

impl GroupCommit {
    /// Nothing written yet.
    pub(super) fn new() -> Self {
        Self {
            open: 1,
            durable: 0,
            dirty: false,
            busy: false,
            flushes: 0,
        }
    }

    /// A write joins the open epoch. Callers join and write under the state lock, which the
    /// flusher needs to close the epoch, so the write is in sled before its epoch's flush begins.
    pub(super) fn join(&mut self) -> Joined {
        self.dirty = true;
        let wake_flusher = !self.busy;
        self.busy = true;
        Joined {
            epoch: self.open,
            wake_flusher,
        }
    }

    /// The flusher asks for work: the epoch to flush now, or `None` to sleep until woken.
    pub(super) fn begin_flush(&mut self) -> Option<Epoch> {
        if !self.dirty {
            self.busy = false;
            return None;
        }
        self.dirty = false;
        self.busy = true;
        let epoch = self.open;
        self.open += 1;
        Some(epoch)
    }

    /// The flush of `epoch` has ended. A failed flush takes the storage down; its writes are
    /// discarded when the outbox reopens its database, so no later flush covers them.
    pub(super) fn finish_flush(&mut self, epoch: Epoch, succeeded: bool) {
        if succeeded {
            self.durable = self.durable.max(epoch);
            self.flushes += 1;
        }
    }

    /// Whether writes made in `epoch` are on disk.
    pub(super) fn is_durable(&self, epoch: Epoch) -> bool {
        epoch <= self.durable
    }

    /// How many flushes have succeeded.
    pub(super) fn flushes(&self) -> u64 {
        self.flushes
    }
}

/// Failed flushes remembered for writers still waiting.
const FAILURES_KEPT: usize = 16;

/// What the flusher publishes to waiting writers after each flush.
#[derive(Debug, Clone, Default)]
pub(super) struct FlushReport {
    /// Every write of this epoch or earlier is on disk.
    durable: Epoch,
    /// Recent failed flushes: the epochs each failed (those after the last durable one, through
    /// its own) and why. Their writes never become durable (the outbox discards them when it
    /// reopens its database), so their writers are told, however late they look. The oldest are
    /// forgotten beyond [`FAILURES_KEPT`]: no writer waits that long.
    failures: VecDeque<(Epoch, Epoch, Arc<std::io::Error>)>,
    /// The flusher has exited: nothing not yet durable will become so.
    stopped: bool,
}

impl FlushReport {
    /// Records the end of the flush of `epoch`.
    pub(super) fn record(&mut self, epoch: Epoch, result: Result<(), std::io::Error>) {
        match result {
            Ok(()) => self.durable = self.durable.max(epoch),
            Err(error) => {
                if self.failures.len() == FAILURES_KEPT {
                    self.failures.pop_front();
                }
                let from = self.durable.saturating_add(1);
                self.failures.push_back((from, epoch, Arc::new(error)));
            }
        }
    }

    /// Records that the flusher has exited.
    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }

    /// The outcome for a writer of `epoch`, or `None` while it is still pending.
    fn outcome_for(&self, epoch: Epoch) -> Option<Result<(), OutboxError>> {
        let failed = self.failures.iter().rev();
        if let Some((_, _, error)) = failed
            .into_iter()
            .find(|(from, to, _)| (*from..=*to).contains(&epoch))
        {
            return Some(Err(OutboxError::Flush(Arc::clone(error))));
        }
        if epoch <= self.durable {
            return Some(Ok(()));
        }
        self.stopped.then_some(Err(OutboxError::FlusherStopped))
    }
}

/// Waits until the writes of `epoch` are durable, or their flush has failed.
pub(super) async fn wait_durable(
    mut reports: watch::Receiver<FlushReport>,
    epoch: Epoch,
) -> Result<(), OutboxError> {
    loop {
        if let Some(outcome) = reports.borrow_and_update().outcome_for(epoch) {
            return outcome;
        }
        // The sender lives as long as the outbox, which the waiting writer keeps alive; if it is
        // gone anyway, the write can no longer be confirmed.
        if reports.changed().await.is_err() {
            return Err(OutboxError::FlusherStopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_during_a_flush_share_the_next_one() {
        let mut commit = GroupCommit::new();
        let first = commit.join();
        assert!(first.wake_flusher);
        assert_eq!(commit.begin_flush(), Some(first.epoch));

        // 32 writers arrive while the first flush runs: none wakes the busy flusher.
        let joined: Vec<Joined> = (0..32).map(|_| commit.join()).collect();
        assert!(joined.iter().all(|j| !j.wake_flusher));
        assert!(joined.iter().all(|j| j.epoch == first.epoch + 1));

        commit.finish_flush(first.epoch, true);
        assert_eq!(commit.begin_flush(), Some(first.epoch + 1));
        commit.finish_flush(first.epoch + 1, true);
        assert!(joined.iter().all(|j| commit.is_durable(j.epoch)));
        assert_eq!(commit.flushes(), 2, "33 writes, 2 flushes");

        // No more work: the flusher sleeps, and the next writer wakes it.
        assert_eq!(commit.begin_flush(), None);
        assert!(commit.join().wake_flusher);
    }

    #[test]
    fn a_failed_flush_leaves_its_writes_not_durable() {
        let mut commit = GroupCommit::new();
        let lost = commit.join();
        let epoch = commit.begin_flush().unwrap();
        commit.finish_flush(epoch, false);
        assert!(!commit.is_durable(lost.epoch));
        assert_eq!(commit.flushes(), 0);
    }

    #[test]
    fn reports_tell_each_writer_its_own_outcome() {
        let mut report = FlushReport::default();
        assert!(report.outcome_for(1).is_none());
        report.record(1, Ok(()));
        report.record(2, Err(std::io::Error::other("disk gone")));
        assert!(matches!(report.outcome_for(1), Some(Ok(()))));
        assert!(matches!(
            report.outcome_for(2),
            Some(Err(OutboxError::Flush(_)))
        ));
        assert!(report.outcome_for(3).is_none());
        // A later success (after the outbox reopened its database, which discarded epoch 2's
        // writes) does not make the failed epoch durable: its writers are told it failed, even
        // one that looks only now.
        report.record(3, Ok(()));
        assert!(matches!(report.outcome_for(3), Some(Ok(()))));
        assert!(matches!(
            report.outcome_for(2),
            Some(Err(OutboxError::Flush(_)))
        ));
        report.stop();
        assert!(matches!(
            report.outcome_for(4),
            Some(Err(OutboxError::FlusherStopped))
        ));
    }
}
