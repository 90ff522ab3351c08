#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The boilers wired to the ingest's store, as `Gateway::start` wires them, without MQTT:
//! telemetry stored for the first time reaches the boilers once, and their alerts survive a
//! restart of the store.

use std::sync::Arc;

use gateway::boilers::follow::{catch_up, FeedBoilers};
use gateway::boilers::{AlertEvent, AlertKind, BoilerDesk, BoilerDeskSettings, BoilersConfig};
use gateway::storage::{IncomingBatch, Storage, Store, StoreSettings};
use proto::{DeviceId, Record, RecordBody, Telemetry, TimestampMs};

/// Tuesday 24 November 2026, 10:00 UTC.
const T0: TimestampMs = 1_795_514_400_000;
const MIN: i64 = 60_000;

const REGISTER: &str = "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub
HIL-B-0001,100021445102,\"4 Swakeleys Road, Ickenham\",Worcester Bosch,Greenstar 30i,30,2019-03-14,yes,yes,hub-0001
";

fn hub() -> DeviceId {
    DeviceId::new("hub-0001").unwrap()
}

/// What a start-up builds: the storage, the desk loaded from it, the ingest's store feeding it.
fn open(dir: &std::path::Path) -> (Arc<BoilerDesk>, Arc<dyn Store>) {
    let storage = Storage::open_embedded(dir, StoreSettings::default()).unwrap();
    let desk = Arc::new(
        BoilerDesk::open(
            BoilersConfig::default(),
            storage.boilers.clone(),
            BoilerDeskSettings {
                grace_ms: 5 * MIN,
                raw_retention_ms: 90 * 24 * 60 * MIN,
                tz: chrono_tz::Europe::London,
            },
        )
        .unwrap(),
    );
    let store: Arc<dyn Store> = Arc::new(FeedBoilers::new(storage.ingest.clone(), desk.clone()));
    (desk, store)
}

/// A batch from the hub of samples at minutes `minutes` (sequence = minute + `seq_base`) with
/// pressure `bar`, received just after the last.
fn batch(minutes: std::ops::Range<i64>, seq_base: u64, bar: f32) -> IncomingBatch {
    let received = T0 + minutes.end * MIN;
    let records = minutes
        .map(|m| Record {
            seq: seq_base + m as u64,
            ts: T0 + m * MIN,
            body: RecordBody::Telemetry(Telemetry {
                asset: "HIL-B-0001".into(),
                bar: Some(bar),
                ret: Some(45.0),
                ..Telemetry::default()
            }),
            boot: None,
            mono: None,
        })
        .collect();
    IncomingBatch {
        device: hub(),
        topic: "fieldsync/v1/hub-0001/up".into(),
        payload: bytes::Bytes::new(),
        received,
        sent: received,
        boot: None,
        mono: None,
        records,
        refused: Vec::new(),
    }
}

fn opened(events: &mut tokio::sync::broadcast::Receiver<AlertEvent>) -> Vec<AlertKind> {
    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let AlertEvent::Opened(alert) = event {
            kinds.push(alert.kind);
        }
    }
    kinds
}

#[test]
fn low_pressure_opens_one_alert_that_survives_a_restart_and_resends_open_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first_alert = {
        let (desk, store) = open(dir.path());
        let report = desk.import_assets(REGISTER.as_bytes()).unwrap();
        assert_eq!((report.imported, report.errors.len()), (1, 0));
        let mut events = desk.subscribe();

        let outcomes = store.ingest(&[batch(0..5, 1, 0.4)]).unwrap();
        assert_eq!(outcomes[0].stored.len(), 5);
        assert_eq!(opened(&mut events), vec![AlertKind::PressureLow]);
        let alerts = desk.alerts("HIL-B-0001").unwrap();
        let alert = alerts.get(AlertKind::PressureLow).unwrap().clone();
        assert!(alert.evidence.iter().any(|e| e.what == "pressure_bar"));

        // The hub resends the batch (its ack was lost): stored once, fed once.
        let again = store.ingest(&[batch(0..5, 1, 0.4)]).unwrap();
        assert_eq!((again[0].stored.len(), again[0].duplicates), (0, 5));
        // The same samples again under new sequence numbers: stored as records, but the same
        // samples to the boiler, which evaluates no alert for them.
        let renumbered = store.ingest(&[batch(0..5, 101, 0.4)]).unwrap();
        assert_eq!(renumbered[0].stored.len(), 5);
        assert_eq!(opened(&mut events), Vec::<AlertKind>::new());
        assert_eq!(
            desk.alerts("HIL-B-0001")
                .unwrap()
                .get(AlertKind::PressureLow),
            Some(&alert)
        );
        alert
    };

    // Restarted: the register and the open alert are loaded from the store.
    let (desk, store) = open(dir.path());
    assert_eq!(desk.with_boilers(|b| b.register().len()), 1);
    let alerts = desk.alerts("HIL-B-0001").unwrap();
    assert_eq!(alerts.get(AlertKind::PressureLow), Some(&first_alert));
    let mut events = desk.subscribe();
    store.ingest(&[batch(0..5, 1, 0.4)]).unwrap();
    assert_eq!(opened(&mut events), Vec::<AlertKind>::new());

    // Refilled: the alert closes, past its hysteresis band, and is kept in the history.
    store.ingest(&[batch(5..15, 1, 1.5)]).unwrap();
    let alerts = desk.alerts("HIL-B-0001").unwrap();
    assert_eq!(alerts.get(AlertKind::PressureLow), None);
    let closed = desk.closed_alerts("HIL-B-0001", T0, T0 + 60 * MIN).unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].opened_at_ms, first_alert.opened_at_ms);
    assert!(closed[0].closed_at_ms.is_some());
}

#[test]
fn records_stored_but_not_fed_before_a_crash_are_fed_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (desk, store) = open(dir.path());
        desk.import_assets(REGISTER.as_bytes()).unwrap();
        // Fed as stored: nothing left unfed.
        store.ingest(&[batch(0..2, 1, 1.5)]).unwrap();
        assert!(store.unfed(10).unwrap().is_empty());
    }
    {
        // The process dies after the ingest's write and before the boilers had the batch:
        // stored through the ingest's own store, which feeds no one.
        let storage = Storage::open_embedded(dir.path(), StoreSettings::default()).unwrap();
        storage.ingest.ingest(&[batch(2..7, 1, 0.4)]).unwrap();
        assert_eq!(storage.ingest.unfed(10).unwrap().len(), 5);
    }
    let (desk, store) = open(dir.path());
    assert!(desk
        .alerts("HIL-B-0001")
        .is_none_or(|a| a.get(AlertKind::PressureLow).is_none()));
    assert_eq!(catch_up(&desk, store.as_ref()).unwrap(), 5);
    let alerts = desk.alerts("HIL-B-0001").unwrap();
    assert!(alerts.get(AlertKind::PressureLow).is_some());
    assert_eq!(catch_up(&desk, store.as_ref()).unwrap(), 0);
    // The hub resends them (their ack was never sent): duplicates, fed to no one.
    let mut events = desk.subscribe();
    let again = store.ingest(&[batch(2..7, 1, 0.4)]).unwrap();
    assert_eq!(again[0].duplicates, 5);
    assert_eq!(opened(&mut events), Vec::<AlertKind>::new());
}
