//! Feeds the repairs desk: operatives' job updates as the ingest stores them (and, at start-up,
//! those stored since the oldest job still open was raised, since a crash can fall between the
//! ack and the desk), alerts as the boiler desk opens and closes them, and the clock. Applying an
//! update twice changes nothing, so replays are safe.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proto::{DeviceId, RecordBody, TimestampMs};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::desk::RepairDesk;
use super::rules::Presence;
use crate::boilers::AlertEvent;
use crate::clock::SharedClock;
use crate::ingest::IngestEvent;
use crate::storage::{Store, StoredRecord};

/// Runs until `shutdown`: replays, then follows `events` and `alerts` (both subscribed before
/// the ingest started) and ticks every `tick`.
pub async fn run(
    desk: Arc<RepairDesk>,
    store: Arc<dyn Store>,
    mut events: broadcast::Receiver<IngestEvent>,
    mut alerts: broadcast::Receiver<AlertEvent>,
    clock: SharedClock,
    tick: Duration,
    shutdown: CancellationToken,
) {
    replay(&desk, &store, &clock).await;
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => run_tick(&desk, &store, clock.now_ms()).await,
            event = events.recv() => match event {
                Ok(IngestEvent::Stored(outcome)) => {
                    let updates: Vec<StoredRecord> = outcome
                        .stored
                        .iter()
                        .filter(|s| matches!(s.record.body, RecordBody::JobUpdate(_)))
                        .cloned()
                        .collect();
                    if !updates.is_empty() {
                        observe(&desk, outcome.device.clone(), updates, clock.now_ms()).await;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "repairs fell behind the ingest; replaying updates");
                    replay(&desk, &store, &clock).await;
                }
                Err(RecvError::Closed) => break,
            },
            alert = alerts.recv() => match alert {
                Ok(event) => {
                    let desk = desk.clone();
                    let now = clock.now_ms();
                    let done = tokio::task::spawn_blocking(move || desk.on_alert(&event, now)).await;
                    if let Ok(Err(e)) = done {
                        tracing::error!(error = %e, "could not apply an alert to repairs");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // The tick catches closes it missed; an auto-raise missed waits for staff.
                    tracing::warn!(missed, "repairs fell behind the alerts");
                }
                Err(RecvError::Closed) => {}
            },
        }
    }
}

async fn observe(
    desk: &Arc<RepairDesk>,
    device: DeviceId,
    records: Vec<StoredRecord>,
    now: TimestampMs,
) {
    let desk = desk.clone();
    let done = tokio::task::spawn_blocking(move || desk.observe(&device, &records, now)).await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not apply job updates to repairs"),
        Err(e) => tracing::error!(error = %e, "repairs desk task failed"),
    }
}

async fn run_tick(desk: &Arc<RepairDesk>, store: &Arc<dyn Store>, now: TimestampMs) {
    let (desk, store) = (desk.clone(), store.clone());
    let done = tokio::task::spawn_blocking(move || {
        let presence: BTreeMap<String, Presence> = store
            .devices()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(id, info, _)| {
                let seen = Presence {
                    online: info.online,
                    last_seen: info.last_seen,
                };
                (id.to_string(), seen)
            })
            .collect();
        desk.tick(now, &presence).map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the repairs tick failed"),
        Err(e) => tracing::error!(error = %e, "repairs tick task failed"),
    }
}

/// Replays the job updates stored since the oldest job still open was raised.
async fn replay(desk: &Arc<RepairDesk>, store: &Arc<dyn Store>, clock: &SharedClock) {
    let Some(since) = desk.replay_from() else {
        return;
    };
    let store = store.clone();
    let loaded = tokio::task::spawn_blocking(move || store.evidence_since(since)).await;
    let records = match loaded {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not read operatives' updates from the store");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "update replay task failed");
            return;
        }
    };
    let mut replayed = 0;
    for (device, record) in records {
        if matches!(record.record.body, RecordBody::JobUpdate(_)) {
            replayed += 1;
            observe(desk, device, vec![record], clock.now_ms()).await;
        }
    }
    tracing::info!(updates = replayed, "replayed operatives' updates");
}
