#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The demo end to end, at high speed on free ports in a temporary directory: every hub's
//! telemetry, every crew's collections (exactly once, over links that drop) and the operative's
//! job updates reach the gateway's store; a resident's missed-bin report goes to the crew's cab
//! as a return job and the crew's return closes it.

use std::collections::BTreeMap;
use std::time::Duration;

use firmware_sim::demo::{Demo, DemoConfig};
use gateway::missed_bins::ReportStatus;
use gateway::reports::NewReport;
use gateway::storage::Store;
use proto::{BinStream, DeviceId, RecordKind};

/// How long the demo may take to show what the test waits for.
const DEADLINE: Duration = Duration::from_secs(12);

/// Records stored per device and kind.
fn stored(store: &dyn Store) -> BTreeMap<String, BTreeMap<RecordKind, u64>> {
    let mut counts: BTreeMap<String, BTreeMap<RecordKind, u64>> = BTreeMap::new();
    for (device, _, acked) in store.devices().unwrap() {
        let kinds = counts.entry(device.to_string()).or_default();
        for stored in store.records(&device, 0, usize::MAX).unwrap() {
            if stored.record.seq <= acked {
                *kinds.entry(stored.record.body.kind()).or_default() += 1;
            }
        }
    }
    counts
}

fn count(
    counts: &BTreeMap<String, BTreeMap<RecordKind, u64>>,
    device: &str,
    kind: RecordKind,
) -> u64 {
    counts
        .get(device)
        .and_then(|k| k.get(&kind))
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hubs_telemetry_and_every_crews_collections_reach_the_gateway_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = DemoConfig {
        data_dir: dir.path().to_owned(),
        http_listen: Some(([127, 0, 0, 1], 0).into()),
        speed: 600.0,
        flaky: true,
        // Crews are out from 06:30.
        start_at: chrono::NaiveTime::from_hms_opt(7, 0, 0),
        ..DemoConfig::default()
    };
    let demo = Demo::start(config).await.unwrap();
    let hubs: Vec<String> = demo.hub_devices().into_iter().map(str::to_owned).collect();
    let crews: Vec<String> = demo.crew_devices().into_iter().map(str::to_owned).collect();
    assert_eq!((hubs.len(), crews.len()), (5, 2));
    let directory = demo.directory();
    for (device, api) in demo.agent_apis() {
        assert!(
            directory.contains(&format!("http://{api}")),
            "{device}: {directory}"
        );
    }
    let store = demo.gateway().store.clone();

    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        let counts = stored(store.as_ref());
        let hubs_seen = hubs
            .iter()
            .all(|hub| count(&counts, hub, RecordKind::Telemetry) >= 2);
        let crews_seen = crews
            .iter()
            .all(|cab| count(&counts, cab, RecordKind::Collection) >= 3);
        // The operative has reported on a job the dispatcher gave them.
        let operative_seen = count(&counts, demo.operative_device(), RecordKind::JobUpdate) >= 1;
        // The crews' links have dropped at least once, so what they sent crossed an outage.
        let dropped = demo.summary().link_outages >= 1;
        if hubs_seen && crews_seen && operative_seen && dropped {
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "after {DEADLINE:?} the gateway holds only {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let last = demo.stop().await;
    // Once the agents have drained, the store holds every collection the crews recorded, once.
    let counts = stored(store.as_ref());
    let collections: u64 = crews
        .iter()
        .map(|cab| count(&counts, cab, RecordKind::Collection))
        .sum();
    assert_eq!(collections, last.collections, "{counts:?}");
    for cab in &crews {
        assert!(
            count(&counts, cab, RecordKind::RoundEvent) >= 1,
            "{counts:?}"
        );
        let id = DeviceId::new(cab.as_str()).unwrap();
        let held = store.record_count(&id).unwrap();
        assert_eq!(held, counts[cab].values().sum::<u64>());
    }
}

/// A register whose one round is collected every day, so that a report filed today is in its
/// window whatever the date.
const EVERY_DAY: &str = "uprn,address,lat,lon,round,order,weekdays,frequency,streams
900000000001,\"1 Test Street, Testham\",51.56240,-0.44620,TEST-1,1,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
900000000002,\"3 Test Street, Testham\",51.56240,-0.44580,TEST-1,2,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
900000000003,\"5 Test Street, Testham\",51.56240,-0.44540,TEST-1,3,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_bin_report_goes_to_the_cab_and_the_crews_return_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let register = dir.path().join("register.csv");
    std::fs::write(&register, EVERY_DAY).unwrap();
    let config = DemoConfig {
        data_dir: dir.path().join("demo"),
        http_listen: Some(([127, 0, 0, 1], 0).into()),
        hubs: 1,
        crews: 1,
        speed: 600.0,
        properties: Some(register),
        start_at: chrono::NaiveTime::from_hms_opt(7, 0, 0),
        ..DemoConfig::default()
    };
    let demo = Demo::start(config).await.unwrap();
    let desk = demo.gateway().desk.clone();

    // The first pass collects refuse and completes the round, which opens reports for the day.
    wait_until("a round completed", || demo.summary().rounds_completed >= 1).await;
    let report = desk
        .file(
            NewReport {
                uprn: 900_000_000_002,
                stream: BinStream::Recycling,
                description: Some("Recycling not emptied.".into()),
                contact: None,
            },
            edge_agent::agent::now_ms(),
        )
        .unwrap();
    assert_eq!(report.status, ReportStatus::InProgress, "{report:?}");
    wait_until("the report closed by the crew's return", || {
        desk.report(&report.id).unwrap().unwrap().status == ReportStatus::Closed
    })
    .await;
    assert!(demo.summary().returns >= 1);
    demo.stop().await;
}

/// Polls `condition` until it holds, or fails after [`DEADLINE`].
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
