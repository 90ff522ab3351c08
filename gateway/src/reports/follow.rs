//! Feeds the report desk from the ingest: crews' records as they are stored, and at start-up (or
//! after falling behind) the recent evidence replayed from the store, since the desk's evidence
//! lives in memory. Observing twice changes nothing, so replays are safe.

use std::sync::Arc;
use std::time::Duration;

use proto::{DeviceId, RecordBody};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::desk::ReportDesk;
use crate::clock::SharedClock;
use crate::ingest::IngestEvent;
use crate::storage::{Store, StoredRecord};

/// How often return jobs still waiting for a device are tried again.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often closed reports are checked for residents' data past its retention: a day's
/// retention is met to within the hour.
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Runs until `shutdown`: replays the last `evidence_days` of crews' records, then follows
/// `events` (subscribed before the ingest started, so nothing falls between the two); purges
/// residents' data from reports closed `contact_retention_ms` ago, at start and every hour.
pub async fn run(
    desk: Arc<ReportDesk>,
    store: Arc<dyn Store>,
    mut events: broadcast::Receiver<IngestEvent>,
    evidence_days: u32,
    contact_retention_ms: i64,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let window_ms = i64::from(evidence_days) * 24 * 60 * 60 * 1000;
    replay(&desk, &store, &clock, window_ms).await;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = purge.tick() => {
                let desk = desk.clone();
                let now = clock.now_ms();
                let purged = tokio::task::spawn_blocking(move || {
                    desk.purge_residents(now, contact_retention_ms)
                })
                .await;
                if let Ok(Err(e)) = purged {
                    tracing::error!(error = %e, "could not purge residents' data from closed reports");
                }
            }
            _ = sweep.tick() => {
                let desk = desk.clone();
                let now = clock.now_ms();
                let swept = tokio::task::spawn_blocking(move || desk.dispatch_all_waiting(now)).await;
                if let Ok(Err(e)) = swept {
                    tracing::warn!(error = %e, "could not dispatch waiting return jobs");
                }
            }
            event = events.recv() => match event {
                Ok(IngestEvent::Stored(outcome)) => {
                    let crew_records: Vec<StoredRecord> = outcome
                        .stored
                        .iter()
                        .filter(|stored| is_crew_record(&stored.record.body))
                        .cloned()
                        .collect();
                    if !crew_records.is_empty() {
                        observe(&desk, outcome.device.clone(), crew_records, clock.now_ms()).await;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fell behind the ingest; replaying recent evidence");
                    replay(&desk, &store, &clock, window_ms).await;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
}

fn is_crew_record(body: &RecordBody) -> bool {
    matches!(body, RecordBody::Collection(_) | RecordBody::RoundEvent(_))
}

async fn observe(
    desk: &Arc<ReportDesk>,
    device: DeviceId,
    records: Vec<StoredRecord>,
    now: proto::TimestampMs,
) {
    let desk = desk.clone();
    let observed = tokio::task::spawn_blocking(move || desk.observe(&device, &records, now)).await;
    match observed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not apply crew records to reports"),
        Err(e) => tracing::error!(error = %e, "report desk task failed"),
    }
}

/// Replays the crews' records received in the last `window_ms`, device by device in arrival order.
async fn replay(
    desk: &Arc<ReportDesk>,
    store: &Arc<dyn Store>,
    clock: &SharedClock,
    window_ms: i64,
) {
    let since = clock.now_ms().saturating_sub(window_ms);
    let store = store.clone();
    let loaded = tokio::task::spawn_blocking(move || store.evidence_since(since)).await;
    let records = match loaded {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not read crews' evidence from the store");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "evidence replay task failed");
            return;
        }
    };
    let count = records.len();
    for (device, record) in records {
        observe(desk, device, vec![record], clock.now_ms()).await;
    }
    tracing::info!(records = count, "replayed crews' evidence");
}
