//! Feeds the boiler desk from the ingest and from the clock.
//!
//! [`FeedBoilers`] wraps the ingest's [`Store`]: every batch it stores, its newly stored
//! telemetry and gap records go to the desk before `ingest` returns, so before the batch is
//! acked. A subscriber to the ingest's broadcast events (as [`crate::reports::follow`] is) could
//! lag and miss batches, and a missed sample is a wrong rollup for good; resent records never
//! reach the desk, since the store tells new records from duplicates.
//!
//! [`run_ticks`] ticks the desk on the gateway's clock: silence, completed hours and days, the
//! pressure forecast, and the purge of raw samples past their retention.

use std::sync::Arc;
use std::time::Duration;

use proto::{DeviceId, State, TimestampMs};
use tokio_util::sync::CancellationToken;

use super::desk::BoilerDesk;
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
        let outcomes = self.inner.ingest(batches)?;
        for outcome in &outcomes {
            if outcome.stored.is_empty() {
                continue;
            }
            // The records are stored and will be acked: a failure here must not make devices
            // resend them (they would be duplicates, and fed nowhere). It is logged instead.
            if let Err(error) = self.desk.observe(outcome, self.inner.as_ref()) {
                tracing::error!(
                    device = %outcome.device,
                    %error,
                    "could not fold a batch's telemetry into the boilers' rollups and alerts"
                );
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

    fn record_count(&self, device: &DeviceId) -> Result<u64, StoreError> {
        self.inner.record_count(device)
    }

    fn evidence_since(
        &self,
        since: TimestampMs,
    ) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        self.inner.evidence_since(since)
    }
}

/// Ticks `desk` every `every` on `clock` until `shutdown`.
pub async fn run_ticks(
    desk: Arc<BoilerDesk>,
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
        let desk = desk.clone();
        let now = clock.now_ms();
        match tokio::task::spawn_blocking(move || desk.tick(now)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "the boilers' tick failed"),
            Err(error) => tracing::error!(%error, "the boilers' tick panicked"),
        }
    }
}
