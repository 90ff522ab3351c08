//! Feeds the boiler desk from the ingest and from the clock.
//!
//! [`FeedBoilers`] wraps the ingest's [`Store`]: every batch it stores, its newly stored
//! telemetry and gap records go to the desk before `ingest` returns, so before the batch is
//! acked. A subscriber to the ingest's broadcast events (as [`crate::reports::follow`] is) could
//! lag and miss batches, and a missed sample is a wrong rollup for good; resent records never
//! reach the desk, since the store tells new records from duplicates.
//!
//! A record is marked unfed in the same atomic write that stores it, and marked fed once the
//! desk has it durably: [`catch_up`] feeds what a crash between the two left behind, at start-up
//! and on every tick. Feeding twice is harmless (the boilers' telemetry keeps one sample per
//! time), so feeding is at least once and counting exactly once.
//!
//! [`run_ticks`] ticks the desk on the gateway's clock: silence, completed hours and days, the
//! pressure forecast, and the purge of raw samples past their retention.

use std::sync::Arc;
use std::time::Duration;

use proto::{DeviceId, RecordBody, State, TimestampMs};
use tokio_util::sync::CancellationToken;

use super::desk::{BoilerDesk, Unannounced};
use crate::clock::SharedClock;
use crate::storage::{
    BatchOutcome, DeviceInfo, IncomingBatch, QuarantineEntry, QuarantineUsage, Refused, Store,
    StoreError, StoredRecord,
};

/// The ingest's store, feeding the boiler desk what it stores for the first time.
pub struct FeedBoilers {
    inner: Arc<dyn Store>,
    desk: Arc<BoilerDesk>,
}

impl FeedBoilers {
    /// `inner`, feeding `desk`.
    pub fn new(inner: Arc<dyn Store>, desk: Arc<BoilerDesk>) -> Self {
        Self { inner, desk }
    }
}

impl Store for FeedBoilers {
    fn ingest(&self, batches: &[IncomingBatch]) -> Result<Vec<BatchOutcome>, StoreError> {
        // The group's records and their fold are made durable by one flush: the fold is written
        // while the ingest's writes wait for theirs.
        let mut folded = None;
        let outcomes = self.inner.ingest_then(batches, &mut |outcomes| {
            folded = self.fold(outcomes);
        })?;
        if let Some((unannounced, keys)) = folded {
            self.desk.announce(unannounced);
            // Not flushed: a mark lost in a crash only feeds its records again, harmlessly. The
            // fold it stands for is durable already.
            if let Err(error) = self.inner.fed(&keys) {
                tracing::error!(%error, "could not mark a group's telemetry as fed to the boilers");
            }
        }
        Ok(outcomes)
    }

    fn record_state(
        &self,
        device: &DeviceId,
        state: &State,
        received: TimestampMs,
    ) -> Result<(), StoreError> {
        self.inner.record_state(device, state, received)
    }

    fn quarantine(&self, refused: &[Refused<'_>]) -> Result<Vec<u64>, StoreError> {
        self.inner.quarantine(refused)
    }

    fn quarantined(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.inner.quarantined(limit, before)
    }

    fn quarantine_usage(&self) -> QuarantineUsage {
        self.inner.quarantine_usage()
    }

    fn provision(&self, devices: &[DeviceId]) -> Result<(), StoreError> {
        self.inner.provision(devices)
    }

    fn devices(&self) -> Result<Vec<(DeviceId, DeviceInfo, u64)>, StoreError> {
        self.inner.devices()
    }

    fn record(&self, device: &DeviceId, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        self.inner.record(device, seq)
    }

    fn records(
        &self,
        device: &DeviceId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.inner.records(device, from, limit)
    }

    fn record_count(&self, device: &DeviceId) -> Result<u64, StoreError> {
        self.inner.record_count(device)
    }

    fn unfed(&self, limit: usize) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        self.inner.unfed(limit)
    }

    fn fed(&self, records: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        self.inner.fed(records)
    }

    fn evidence_since(
        &self,
        since: TimestampMs,
    ) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        self.inner.evidence_since(since)
    }
}

impl FeedBoilers {
    /// Folds the records stored for the first time in `outcomes` into the desk, not yet
    /// flushed; with the records to mark fed once it is durable. `None` when there were none,
    /// or when folding failed.
    fn fold(&self, outcomes: &[BatchOutcome]) -> Option<(Unannounced, Vec<(DeviceId, u64)>)> {
        let fresh: Vec<(&DeviceId, &[StoredRecord])> = outcomes
            .iter()
            .filter(|outcome| !outcome.stored.is_empty())
            .map(|outcome| (&outcome.device, outcome.stored.as_slice()))
            .collect();
        if fresh.is_empty() {
            return None;
        }
        // The records are stored and will be acked: a failure here must not make devices
        // resend them (they would be duplicates, and fed nowhere). It is logged instead, and
        // the records stay marked unfed, so `catch_up` feeds them on the next tick. One fold
        // for the whole group the ingest committed together.
        match self.desk.fold_batches(&fresh, self.inner.as_ref()) {
            Ok(unannounced) => {
                let keys = fresh
                    .iter()
                    .flat_map(|(device, stored)| fed_keys(device, stored))
                    .collect();
                Some((unannounced, keys))
            }
            Err(error) => {
                tracing::error!(
                    batches = fresh.len(),
                    %error,
                    "could not fold a group of batches' telemetry into the boilers' rollups and alerts"
                );
                None
            }
        }
    }
}

/// The (device, seq) of the records in `stored` that are fed to the boilers.
fn fed_keys(device: &DeviceId, stored: &[StoredRecord]) -> Vec<(DeviceId, u64)> {
    stored
        .iter()
        .filter(|s| matches!(s.record.body, RecordBody::Telemetry(_) | RecordBody::Gap(_)))
        .map(|s| (device.clone(), s.record.seq))
        .collect()
}

/// Records fed per round of [`catch_up`]: bounded memory, whatever the backlog.
const CATCH_UP_CHUNK: usize = 512;

/// Feeds `desk` every record `store` holds as stored but not fed (what a crash between the two
/// left behind, or a failed feed), and marks them fed. Returns how many it fed.
pub fn catch_up(desk: &BoilerDesk, store: &dyn Store) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let unfed = store.unfed(CATCH_UP_CHUNK)?;
        if unfed.is_empty() {
            return Ok(total);
        }
        total += unfed.len();
        // One device's run at a time, in the order the store gave them.
        let mut start = 0;
        while start < unfed.len() {
            let device = &unfed[start].0;
            let end = unfed[start..]
                .iter()
                .position(|(d, _)| d != device)
                .map_or(unfed.len(), |n| start + n);
            let records: Vec<StoredRecord> =
                unfed[start..end].iter().map(|(_, r)| r.clone()).collect();
            desk.observe(device, &records, store)?;
            store.fed(&fed_keys(device, &records))?;
            start = end;
        }
    }
}

/// Ticks `desk` every `every` on `clock` until `shutdown`, first feeding it whatever `store`
/// holds unfed.
pub async fn run_ticks(
    desk: Arc<BoilerDesk>,
    store: Arc<dyn Store>,
    clock: SharedClock,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let (desk, store) = (desk.clone(), store.clone());
        let now = clock.now_ms();
        let ticked = tokio::task::spawn_blocking(move || {
            catch_up(&desk, store.as_ref())?;
            desk.tick(now)
        });
        match ticked.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "the boilers' tick failed"),
            Err(error) => tracing::error!(%error, "the boilers' tick panicked"),
        }
    }
}
