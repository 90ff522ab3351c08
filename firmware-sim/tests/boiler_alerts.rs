#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The demo's boilers against the gateway's boiler desk: the eight simulated boilers of the
//! demo's fault plan (`demo::default_faults`), sampled every minute for ten hours of simulated
//! time, their batches stored and fed to the desk as the ingest does, the desk ticked on the
//! same clock. Each faulty boiler raises its alert (short cycling, the leak's low pressure, the
//! lockout's fault, silence, the hot return's not condensing), and the healthy ones raise none
//! (an alert that opened and closed again counts as raised: short cycling stops with the
//! morning's heating).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use firmware_sim::boiler::{Boiler, Fault};
use firmware_sim::demo::{default_faults, seed_for};
use gateway::boilers::follow::FeedBoilers;
use gateway::boilers::{AlertEvent, BoilerDesk, BoilerDeskSettings, BoilersConfig};
use gateway::storage::{IncomingBatch, Storage, Store, StoreSettings};
use proto::{DeviceId, Record, RecordBody};
use tokio::sync::broadcast;

const MIN: i64 = 60_000;
/// Tuesday 24 November 2026, 06:00 UTC: the heating comes on for the morning.
const START: &str = "2026-11-24T06:00:00Z";
const HOURS: i64 = 10;
const HUBS: usize = 8;

fn hub(index: usize) -> DeviceId {
    DeviceId::new(format!("hub-{index:04}")).unwrap()
}

fn asset(index: usize) -> String {
    format!("B-DEMO{index:02}")
}

/// The asset register for the hubs, each boiler read by its own hub.
fn register() -> String {
    let mut csv =
        String::from("asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub\n");
    for index in 1..=HUBS {
        csv.push_str(&format!(
            "{},{},\"{index} Swakeleys Road, Ickenham UB10 8BE\",Vaillant,ecoTEC plus 832,32,2019-03-01,no,no,{}\n",
            asset(index),
            100_021_445_100 + index as u64,
            hub(index).as_str()
        ));
    }
    csv
}

/// The kinds of alert each boiler raised (opened, whether or not closed since), by asset.
fn raised(
    events: &mut broadcast::Receiver<AlertEvent>,
) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut raised: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    loop {
        match events.try_recv() {
            Ok(AlertEvent::Opened(alert)) => {
                raised
                    .entry(alert.asset)
                    .or_default()
                    .insert(alert.kind.as_str());
            }
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Empty) => return raised,
            Err(e) => panic!("alert events: {e}"),
        }
    }
}

#[test]
fn the_demos_faulty_boilers_raise_their_alerts_and_its_healthy_ones_none() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open_embedded(dir.path(), StoreSettings::default()).unwrap();
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
    let report = desk.import_assets(register().as_bytes()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let store = FeedBoilers::new(storage.ingest.clone(), desk.clone());
    // Enough for every event of the run: a lagging receiver would fail the test, not pass it.
    let mut events = desk.subscribe();

    let faults = default_faults(HUBS);
    let mut boilers: Vec<Boiler> = (1..=HUBS)
        .map(|index| {
            let plans = faults
                .iter()
                .filter(|(hub, _)| *hub == index)
                .map(|(_, plan)| *plan)
                .collect();
            Boiler::new(asset(index), seed_for(7, 1, index - 1), plans)
        })
        .collect();
    let start: DateTime<Utc> = START.parse().unwrap();
    let start_ms = start.timestamp_millis();
    let mut next_seq = [1_u64; HUBS];
    let mut pending: Vec<Vec<Record>> = vec![Vec::new(); HUBS];
    for minute in 0..HOURS * 60 {
        let at = start + chrono::Duration::minutes(minute);
        for (i, boiler) in boilers.iter_mut().enumerate() {
            boiler.advance(at, Duration::from_secs(60));
            if let Some(telemetry) = boiler.telemetry() {
                pending[i].push(Record {
                    seq: next_seq[i],
                    ts: at.timestamp_millis() + MIN,
                    body: RecordBody::Telemetry(telemetry),
                    boot: None,
                    mono: None,
                });
                next_seq[i] += 1;
            }
        }
        // A hub sends what it has every ten minutes, as the agents batch; the desk is ticked
        // on the same clock.
        if (minute + 1) % 10 == 0 {
            let now = start_ms + (minute + 1) * MIN + 1_000;
            let batches: Vec<IncomingBatch> = pending
                .iter_mut()
                .enumerate()
                .filter(|(_, records)| !records.is_empty())
                .map(|(i, records)| {
                    let device = hub(i + 1);
                    IncomingBatch {
                        topic: device.topic(proto::TopicKind::Up),
                        device,
                        payload: bytes::Bytes::new(),
                        received: now,
                        sent: now,
                        boot: None,
                        mono: None,
                        records: std::mem::take(records),
                        refused: Vec::new(),
                    }
                })
                .collect();
            store.ingest(&batches).unwrap();
            desk.tick(now).unwrap();
        }
    }
    let raised = raised(&mut events);

    let expected = |index: usize| -> Option<&'static str> {
        let plan = faults.iter().find(|(hub, _)| *hub == index)?;
        Some(match plan.1.fault {
            Fault::ShortCycling => "short_cycling",
            Fault::LowPressure => "pressure_low",
            Fault::Code(_) => "fault",
            Fault::Quiet => "silent",
            Fault::HotFlow => "not_condensing",
        })
    };
    let none = BTreeSet::new();
    for index in 1..=HUBS {
        let open = raised.get(&asset(index)).unwrap_or(&none);
        let seen = &raised;
        match expected(index) {
            Some(kind) => assert!(
                open.contains(kind),
                "{} should have raised {kind}: {seen:?}",
                asset(index)
            ),
            None => assert!(open.is_empty(), "{} is healthy: {seen:?}", asset(index)),
        }
    }
    // Every kind of the plan is there: the test covers each fault the demo shows.
    let kinds: BTreeSet<_> = (1..=HUBS).filter_map(expected).collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
}
