//! The boiler desk: the [`Boilers`] domain over the storage seam. It loads the asset register
//! and every boiler's alert state at start, folds each new telemetry and gap record into its
//! boiler's telemetry ([`AssetLog`]) and alerts, ticks the boilers on the gateway's clock, purges
//! raw samples past their retention, and persists what changed, so alerts (open ones, their
//! acknowledgements, what hysteresis remembers) survive restarts. Alert events are published to
//! whoever subscribes (the API's server-sent events).
//!
//! The domain stays pure; this is the only part of `boilers` that does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::periods::all_periods;
use chrono_tz::Tz;
use proto::{DeviceId, RecordBody, TimestampMs};
use tokio::sync::broadcast;

use super::waste::{rank, waste_over, Ranked};
use super::{
    Ack, AckError, Alert, AlertEvent, AlertKind, AssetRegister, BoilerAlerts, Boilers,
    BoilersConfig, GapSpan, ImportError, ImportReport,
};
use crate::storage::write_back::{GroupWrites, Tails};
use crate::storage::{AssetLog, BoilerStore, Store, StoreError, StoredRecord};

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
    /// Each boiler's newest samples, so in-order samples fold without asking the store.
    tails: Tails,
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

/// Stores every boiler's days and months for `tz` from its hours, unless they are stored for it
/// already: once on a store that had none (format 3 kept hours only), and again if the council's
/// time zone is changed. Until done, readers merge hours.
fn build_periods(store: &dyn BoilerStore, tz: Tz) -> Result<(), StoreError> {
    if store.periods_calendar()?.as_deref() == Some(tz.name()) {
        return Ok(());
    }
    store.set_periods_calendar(None)?;
    let assets = store.assets()?;
    for asset in &assets {
        let hours = store.hours_in(&asset.asset, TimestampMs::MIN, TimestampMs::MAX)?;
        store.replace_periods(&asset.asset, &all_periods(&hours, tz))?;
    }
    store.set_periods_calendar(Some(tz.name()))?;
    if !assets.is_empty() {
        tracing::info!(
            boilers = assets.len(),
            calendar = tz.name(),
            "built the boilers' days and months from their hours"
        );
    }
    Ok(())
}

impl BoilerDesk {
    /// A desk over `store`, with the register and alert state loaded from it.
    pub fn open(
        config: BoilersConfig,
        store: Arc<dyn BoilerStore>,
        settings: BoilerDeskSettings,
    ) -> Result<Self, StoreError> {
        build_periods(store.as_ref(), settings.tz)?;
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
                tails: Tails::default(),
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

    /// The estate over `[start_ms, end_ms)`: each boiler on the register with its address and
    /// whether it was ever heard from, and the boilers ranked by gas wasted over the period
    /// (read from the stored months and days where the period holds them whole).
    pub fn estate(&self, start_ms: TimestampMs, end_ms: TimestampMs) -> Result<Estate, StoreError> {
        let (config, assets) = self.with_boilers(|b| {
            (
                b.config().clone(),
                b.register().iter().cloned().collect::<Vec<_>>(),
            )
        });
        let store = self.store.as_ref();
        let mut estate = Estate::default();
        let mut wastes = Vec::new();
        for asset in &assets {
            let heard = store
                .sample_before(&asset.asset, TimestampMs::MAX)?
                .is_some();
            estate.heard.insert(asset.asset.clone(), heard);
            estate
                .addresses
                .insert(asset.asset.clone(), asset.address.clone());
            let log = AssetLog::new(store, &asset.asset);
            let (_, waste) = waste_over(
                &log,
                start_ms,
                end_ms,
                asset.facts(),
                &config.efficiency,
                &config.waste,
            )?;
            if let Some(waste) = waste {
                wastes.push((asset.asset.clone(), waste));
            }
        }
        estate.ranking = rank(wastes, &config.waste);
        Ok(estate)
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

    /// Records from `hub` as stored: telemetry folded into its boiler's rollups and alerts,
    /// gaps shown over the stretch they dropped (found from the records either side of them in
    /// `records`). Only records stored for the first time are fed here, and a record fed twice
    /// (after a crash) finds its sample or gap already there, so a resend changes nothing.
    /// Durable on return.
    pub fn observe(
        &self,
        hub: &DeviceId,
        stored: &[StoredRecord],
        records: &dyn Store,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        self.observe_batches(&[(hub, stored)], records)
    }

    /// [`BoilerDesk::observe`] for several hubs' batches at once, made durable together: what
    /// the ingest's group commit stored in one write is folded in under one flush.
    pub fn observe_batches(
        &self,
        batches: &[(&DeviceId, &[StoredRecord])],
        records: &dyn Store,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        let folded = self.fold_batches(batches, records)?;
        self.store.flush()?;
        Ok(self.announce(folded))
    }

    /// [`BoilerDesk::observe_batches`] without its flush, for a caller that makes the fold
    /// durable together with its own writes (the ingest's, in [`super::follow::FeedBoilers`]):
    /// the fold is written to the store, durable at its next flush, and its alert events are
    /// held until [`BoilerDesk::announce`], which comes after that flush.
    pub fn fold_batches(
        &self,
        batches: &[(&DeviceId, &[StoredRecord])],
        records: &dyn Store,
    ) -> Result<Unannounced, StoreError> {
        let mut state = self.lock();
        let DeskState { boilers, tails, .. } = &mut *state;
        // The group's samples and hours are written once, together, at its end.
        let mut writes = GroupWrites::new(self.store.as_ref(), tails, self.settings.tz);
        let mut events = Vec::new();
        let mut touched = BTreeSet::new();
        for (hub, stored) in batches {
            let hub = *hub;
            for stored in *stored {
                match &stored.record.body {
                    RecordBody::Telemetry(telemetry) => {
                        let mut log = writes.log(&telemetry.asset);
                        let observed = boilers.observe_sample(
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
                        let neighbour =
                            |seq: Option<u64>| -> Result<Option<TimestampMs>, StoreError> {
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
                        for asset in read_by(boilers, hub) {
                            boilers.observe_gap(&mut writes.log(&asset), &span, stored.received)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        writes.commit()?;
        self.save(boilers, &touched, &events)?;
        Ok(Unannounced(events))
    }

    /// Tells subscribers of alert events once they are durable; returns them.
    pub fn announce(&self, Unannounced(events): Unannounced) -> Vec<AlertEvent> {
        for event in &events {
            // Nobody listening is fine: the state is stored.
            let _ = self.events.send(event.clone());
        }
        events
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
        self.save(&state.boilers, &touched, &events)?;
        self.store.flush()?;
        let events = self.announce(Unannounced(events));
        let hour = super::rollup::hour_of(now_ms);
        if state.purged_hour != Some(hour) {
            let cut = now_ms.saturating_sub(self.settings.raw_retention_ms);
            let purged = self.store.purge_raw_before(cut)?;
            // A boiler's newest samples may have gone with the old ones.
            state.tails.clear();
            if purged > 0 {
                tracing::info!(purged, "purged raw boiler samples past their retention");
            }
            state.purged_hour = Some(hour);
        }
        Ok(events)
    }

    /// Stores the alert state of the boilers `touched`, and the alerts that closed (durable at
    /// the next flush).
    fn save(
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
        Ok(())
    }
}

/// The estate over a period, as [`BoilerDesk::estate`] reads it.
#[derive(Debug, Default)]
pub struct Estate {
    /// Every boiler on the register, and whether any sample of it is stored.
    pub heard: BTreeMap<String, bool>,
    /// Every boiler's address.
    pub addresses: BTreeMap<String, String>,
    /// The boilers with enough data, most gas wasted first.
    pub ranking: Vec<Ranked>,
}

/// Alert events folded in but not yet durable: [`BoilerDesk::announce`] them after the flush.
#[must_use = "alert events reach subscribers only when announced"]
#[derive(Debug)]
pub struct Unannounced(Vec<AlertEvent>);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boilers::follow::FeedBoilers;
    use crate::boilers::rollup::tests::T0;
    use crate::boilers::HOUR_MS;
    use crate::storage::{IncomingBatch, Storage, StoreSettings};
    use proto::{Gap, GapReason, Record, Telemetry};

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * HOUR_MS;
    const REGISTER: &str =
        "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub
B-1,100021445102,4 Swakeleys Road,Worcester Bosch,Greenstar 30i,30,,no,no,hub-1
";

    struct Site {
        storage: Storage,
        desk: Arc<BoilerDesk>,
        ingest: FeedBoilers,
    }

    fn open(dir: &std::path::Path) -> Site {
        let storage = Storage::open_embedded(dir, StoreSettings::default()).unwrap();
        let desk = Arc::new(
            BoilerDesk::open(
                BoilersConfig::default(),
                storage.boilers.clone(),
                BoilerDeskSettings {
                    grace_ms: 5 * MIN,
                    raw_retention_ms: 90 * DAY,
                    tz: chrono_tz::Europe::London,
                },
            )
            .unwrap(),
        );
        let ingest = FeedBoilers::new(storage.ingest.clone(), desk.clone());
        Site {
            storage,
            desk,
            ingest,
        }
    }

    fn telemetry(seq: u64, at: TimestampMs) -> Record {
        Record {
            seq,
            ts: at,
            body: RecordBody::Telemetry(Telemetry {
                asset: "B-1".into(),
                bar: Some(1.5),
                ..Telemetry::default()
            }),
            boot: None,
            mono: None,
        }
    }

    fn batch(records: Vec<Record>, received: TimestampMs) -> IncomingBatch {
        IncomingBatch {
            device: DeviceId::new("hub-1").unwrap(),
            topic: "fieldsync/v1/hub-1/up".into(),
            payload: bytes::Bytes::new(),
            received,
            sent: received,
            boot: None,
            mono: None,
            records,
            refused: Vec::new(),
        }
    }

    #[test]
    fn silence_opens_on_the_clock_survives_a_restart_and_closes_when_samples_resume() {
        let dir = tempfile::tempdir().unwrap();
        {
            let site = open(dir.path());
            site.desk.import_assets(REGISTER.as_bytes()).unwrap();
            let records = (0..3)
                .map(|m| telemetry(m + 1, T0 + m as i64 * MIN))
                .collect();
            site.ingest.ingest(&[batch(records, T0 + 2 * MIN)]).unwrap();
            assert_eq!(site.desk.tick(T0 + 3 * MIN).unwrap(), vec![]);
            let events = site.desk.tick(T0 + 10 * MIN).unwrap();
            assert!(
                matches!(&events[..], [AlertEvent::Opened(a)] if a.kind == AlertKind::Silent),
                "{events:?}"
            );
        }
        let site = open(dir.path());
        let alerts = site.desk.alerts("B-1").unwrap();
        assert!(alerts.get(AlertKind::Silent).is_some());
        // Ticking again opens nothing new.
        assert_eq!(site.desk.tick(T0 + 11 * MIN).unwrap(), vec![]);
        site.ingest
            .ingest(&[batch(vec![telemetry(4, T0 + 12 * MIN)], T0 + 12 * MIN)])
            .unwrap();
        assert!(site
            .desk
            .alerts("B-1")
            .unwrap()
            .get(AlertKind::Silent)
            .is_none());
        assert_eq!(
            site.desk
                .closed_alerts("B-1", T0, T0 + DAY)
                .unwrap()
                .iter()
                .map(|a| a.kind)
                .collect::<Vec<_>>(),
            vec![AlertKind::Silent]
        );
    }

    #[test]
    fn a_gap_record_shows_over_the_stretch_its_hub_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let site = open(dir.path());
        site.desk.import_assets(REGISTER.as_bytes()).unwrap();
        // Sequences 3 to 10 were dropped on the hub; 11 says so; 12 is the next sample.
        let records = vec![
            telemetry(1, T0),
            telemetry(2, T0 + MIN),
            Record {
                seq: 11,
                ts: T0 + 10 * MIN,
                body: RecordBody::Gap(Gap {
                    from: 3,
                    to: 10,
                    count: 8,
                    reason: GapReason::DiskBudget,
                }),
                boot: None,
                mono: None,
            },
            telemetry(12, T0 + 10 * MIN),
        ];
        site.ingest
            .ingest(&[batch(records, T0 + 11 * MIN)])
            .unwrap();
        let hour = site.storage.boilers.hour("B-1", T0).unwrap().unwrap();
        assert_eq!(hour.gap_reported_ms, 9 * MIN);
        assert_eq!(hour.samples, 3);
    }

    #[test]
    fn raw_samples_past_their_retention_are_purged_by_the_clock_and_rollups_kept() {
        let dir = tempfile::tempdir().unwrap();
        let site = open(dir.path());
        site.desk.import_assets(REGISTER.as_bytes()).unwrap();
        let records = (0..3)
            .map(|m| telemetry(m + 1, T0 + m as i64 * MIN))
            .collect();
        site.ingest.ingest(&[batch(records, T0 + 2 * MIN)]).unwrap();
        let boilers = &site.storage.boilers;
        site.desk.tick(T0 + 89 * DAY).unwrap();
        assert_eq!(
            boilers.samples_in("B-1", T0, T0 + HOUR_MS).unwrap().len(),
            3
        );
        site.desk.tick(T0 + 91 * DAY).unwrap();
        assert_eq!(boilers.samples_in("B-1", T0, T0 + HOUR_MS).unwrap(), vec![]);
        assert_eq!(boilers.hour("B-1", T0).unwrap().unwrap().samples, 3);
    }
}
