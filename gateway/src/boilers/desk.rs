//! The boiler desk: the [`Boilers`] domain over the storage seam. It loads the asset register
//! and every boiler's alert state at start, folds each new telemetry and gap record into its
//! boiler's telemetry ([`AssetLog`]) and alerts, ticks the boilers on the gateway's clock, purges
//! raw samples past their retention, and persists what changed, so alerts (open ones, their
//! acknowledgements, what hysteresis remembers) survive restarts. Alert events are published to
//! whoever subscribes (the API's server-sent events).
//!
//! The domain stays pure; this is the only part of `boilers` that does I/O.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono_tz::Tz;
use proto::{DeviceId, RecordBody, TimestampMs};
use tokio::sync::broadcast;

use super::{
    Ack, AckError, Alert, AlertEvent, AlertKind, AssetRegister, BoilerAlerts, Boilers,
    BoilersConfig, GapSpan, ImportError, ImportReport,
};
use crate::storage::{AssetLog, BatchOutcome, BoilerStore, Store, StoreError, StoredRecord};

/// What the desk can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BoilerDeskError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An asset CSV could not be read at all.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// An acknowledgement named no open alert.
    #[error(transparent)]
    Ack(#[from] AckError),
}

/// How the desk runs.
#[derive(Debug, Clone, Copy)]
pub struct BoilerDeskSettings {
    /// How long a completed period waits for late samples before it is judged (ms).
    pub grace_ms: i64,
    /// How long raw samples are kept (ms); rollups are kept for ever.
    pub raw_retention_ms: i64,
    /// The council's time zone: days are local days.
    pub tz: Tz,
}

struct DeskState {
    boilers: Boilers,
    /// The hour (start, UTC ms) of the last purge: the purge runs once an hour.
    purged_hour: Option<TimestampMs>,
}

/// The boiler desk. Cheap to share behind an `Arc`.
pub struct BoilerDesk {
    state: Mutex<DeskState>,
    store: Arc<dyn BoilerStore>,
    settings: BoilerDeskSettings,
    events: broadcast::Sender<AlertEvent>,
}

impl BoilerDesk {
    /// A desk over `store`, with the register and alert state loaded from it.
    pub fn open(
        config: BoilersConfig,
        store: Arc<dyn BoilerStore>,
        settings: BoilerDeskSettings,
    ) -> Result<Self, StoreError> {
        let mut boilers = Boilers::new(config);
        for asset in store.assets()? {
            boilers.register_mut().insert(asset);
        }
        for (asset, alerts) in store.alert_states()? {
            boilers.restore_alerts(asset, alerts);
        }
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            state: Mutex::new(DeskState {
                boilers,
                purged_hour: None,
            }),
            store,
            settings,
            events,
        })
    }

    fn lock(&self) -> MutexGuard<'_, DeskState> {
        // Every change is persisted before the lock is released, or not at all: a panic
        // elsewhere leaves the state as usable as the store.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Alert events as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }

    /// Imports assets from CSV (see [`super::import`]): good rows replace any asset with their
    /// id, in the store and then in the register; bad rows are reported by line.
    pub fn import_assets(&self, csv: impl Read) -> Result<ImportReport, BoilerDeskError> {
        let mut staged = AssetRegister::new();
        let report = staged.import_csv(csv)?;
        let mut state = self.lock();
        self.store.save_assets(&staged.iter().collect::<Vec<_>>())?;
        for asset in staged.iter() {
            state.boilers.register_mut().insert(asset.clone());
        }
        Ok(report)
    }

    /// Runs `f` with the domain (register, settings, alert state) for a read.
    pub fn with_boilers<T>(&self, f: impl FnOnce(&Boilers) -> T) -> T {
        f(&self.lock().boilers)
    }

    /// A boiler's alert state, if it has any.
    pub fn alerts(&self, asset: &str) -> Option<BoilerAlerts> {
        self.lock().boilers.alerts(asset).cloned()
    }

    /// A boiler's closed alerts opened in `[from_ms, to_ms)`, oldest first.
    pub fn closed_alerts(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Alert>, StoreError> {
        self.store.closed_alerts(asset, from_ms, to_ms)
    }

    /// Staff acknowledge a boiler's open alert; stored before it is answered.
    pub fn acknowledge(
        &self,
        asset: &str,
        kind: AlertKind,
        ack: Ack,
    ) -> Result<Alert, BoilerDeskError> {
        let mut state = self.lock();
        let alert = state.boilers.acknowledge(asset, kind, ack)?.clone();
        if let Some(alerts) = state.boilers.alerts(asset) {
            self.store.save_alerts(asset, alerts)?;
        }
        self.store.flush()?;
        Ok(alert)
    }

    /// One stored batch's new records from `outcome.device`: telemetry folded into its
    /// boiler's rollups and alerts, gaps shown over the stretch they dropped (found from the
    /// records either side of them in `records`). Only records stored for the first time
    /// reach here, so a resent batch changes nothing. Durable on return.
    pub fn observe(
        &self,
        outcome: &BatchOutcome,
        records: &dyn Store,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        let hub = &outcome.device;
        let mut state = self.lock();
        let mut events = Vec::new();
        let mut touched = BTreeSet::new();
        for stored in &outcome.stored {
            match &stored.record.body {
                RecordBody::Telemetry(telemetry) => {
                    let mut log = AssetLog::new(self.store.as_ref(), &telemetry.asset);
                    let observed = state.boilers.observe_sample(
                        &mut log,
                        hub,
                        telemetry,
                        placed_ms(stored),
                        stored.received,
                    )?;
                    if observed.folded.is_some() {
                        touched.insert(telemetry.asset.clone());
                    }
                    events.extend(observed.alerts);
                }
                RecordBody::Gap(gap) => {
                    let neighbour = |seq: Option<u64>| -> Result<Option<TimestampMs>, StoreError> {
                        Ok(match seq {
                            Some(seq) => records.record(hub, seq)?.as_ref().map(placed_ms),
                            None => None,
                        })
                    };
                    let span = GapSpan::between(
                        neighbour(gap.from.checked_sub(1))?,
                        neighbour(gap.to.checked_add(1))?,
                        placed_ms(stored),
                        gap.reason,
                    );
                    let Some(span) = span else { continue };
                    let assets = read_by(&state.boilers, hub);
                    for asset in assets {
                        let mut log = AssetLog::new(self.store.as_ref(), &asset);
                        state
                            .boilers
                            .observe_gap(&mut log, &span, stored.received)?;
                    }
                }
                _ => {}
            }
        }
        self.persist(&state.boilers, &touched, &events)?;
        Ok(events)
    }

    /// The clock: every boiler's silence, completed hours and days, and pressure forecast at
    /// `now_ms`; once an hour, raw samples past their retention purged. Durable on return.
    pub fn tick(&self, now_ms: TimestampMs) -> Result<Vec<AlertEvent>, StoreError> {
        let mut state = self.lock();
        let mut events = Vec::new();
        let mut touched = BTreeSet::new();
        let assets: Vec<String> = state
            .boilers
            .register()
            .iter()
            .map(|a| a.asset.clone())
            .collect();
        for asset in assets {
            let before = state.boilers.alerts(&asset).cloned();
            let log = AssetLog::new(self.store.as_ref(), &asset);
            let ticked = state.boilers.tick(
                &log,
                &asset,
                now_ms,
                self.settings.grace_ms,
                self.settings.tz,
            )?;
            events.extend(ticked);
            if state.boilers.alerts(&asset) != before.as_ref() {
                touched.insert(asset);
            }
        }
        self.persist(&state.boilers, &touched, &events)?;
        let hour = super::rollup::hour_of(now_ms);
        if state.purged_hour != Some(hour) {
            let cut = now_ms.saturating_sub(self.settings.raw_retention_ms);
            let purged = self.store.purge_raw_before(cut)?;
            if purged > 0 {
                tracing::info!(purged, "purged raw boiler samples past their retention");
            }
            state.purged_hour = Some(hour);
        }
        Ok(events)
    }

    /// Stores the alert state of the boilers `touched`, and the alerts that closed; flushes;
    /// then tells subscribers.
    fn persist(
        &self,
        boilers: &Boilers,
        touched: &BTreeSet<String>,
        events: &[AlertEvent],
    ) -> Result<(), StoreError> {
        for asset in touched {
            if let Some(alerts) = boilers.alerts(asset) {
                self.store.save_alerts(asset, alerts)?;
            }
        }
        for event in events {
            if let AlertEvent::Closed(alert) = event {
                self.store.save_closed_alert(&alert.asset, alert)?;
            }
        }
        self.store.flush()?;
        for event in events {
            // Nobody listening is fine: the state is stored.
            let _ = self.events.send(event.clone());
        }
        Ok(())
    }
}

/// When a stored record happened, by the gateway's reckoning when it could place it.
fn placed_ms(stored: &StoredRecord) -> TimestampMs {
    stored.placed.map_or(stored.record.ts, |placed| placed.at)
}

/// The assets `hub` reads.
fn read_by(boilers: &Boilers, hub: &DeviceId) -> Vec<String> {
    boilers
        .register()
        .read_by(hub)
        .map(|a| a.asset.clone())
        .collect()
}
