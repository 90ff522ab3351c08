#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The demo end to end, at high speed on free ports in a temporary directory: every hub's
//! telemetry and every crew's collections (exactly once, over links that drop) reach the
//! gateway's store; a resident's missed-bin report goes to the crew's cab as a return job and the
//! crew's return closes it; and the demo's end summary (reports closed and rejected, alerts per
//! boiler, repairs completed) is what the gateway's own APIs say.

use std::collections::BTreeMap;
use std::time::Duration;

use firmware_sim::demo::{Demo, DemoConfig, Ending};
use firmware_sim::http::JsonClient;
use firmware_sim::residents::FrontEnd;
use gateway::missed_bins::ReportStatus;
use gateway::reports::NewReport;
use gateway::storage::Store;
use proto::clock::Clock;
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

/// A Tuesday, for tests: the demo's simulated days never depend on the day a test runs.
fn a_tuesday() -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hubs_telemetry_and_every_crews_collections_reach_the_gateway_once() {
    let dir = tempfile::tempdir().unwrap();
    let register = dir.path().join("register.csv");
    std::fs::write(&register, EVERY_DAY).unwrap();
    let config = DemoConfig {
        data_dir: dir.path().join("demo"),
        http_listen: Some(([127, 0, 0, 1], 0).into()),
        speed: 600.0,
        flaky: true,
        properties: Some(register),
        // Crews are out from 06:30.
        start_at: chrono::NaiveTime::from_hms_opt(7, 0, 0),
        start_date: a_tuesday(),
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
        // The crews' links have dropped at least once, so what they sent crossed an outage.
        let dropped = demo.summary().link_outages >= 1;
        if hubs_seen && crews_seen && dropped {
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "after {DEADLINE:?} the gateway holds only {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let finished = demo.stop().await;
    let last = &finished.summary;
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
    finished.close().await;
}

/// A register whose two rounds are collected every day, one for each crew.
const EVERY_DAY: &str = "uprn,address,lat,lon,round,order,weekdays,frequency,streams
900000000001,\"1 Test Street, Testham\",51.56240,-0.44620,TEST-1,1,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
900000000002,\"3 Test Street, Testham\",51.56240,-0.44580,TEST-1,2,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
900000000003,\"5 Test Street, Testham\",51.56240,-0.44540,TEST-1,3,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
900000000011,\"2 Test Street, Testham\",51.56250,-0.44620,TEST-2,1,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
900000000012,\"4 Test Street, Testham\",51.56250,-0.44580,TEST-2,2,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,refuse;recycling
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
        start_date: a_tuesday(),
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
            demo.clock().now_ms(),
        )
        .unwrap();
    assert_eq!(report.status, ReportStatus::InProgress, "{report:?}");
    wait_until("the report closed by the crew's return", || {
        desk.report(&report.id).unwrap().unwrap().status == ReportStatus::Closed
    })
    .await;
    assert!(demo.summary().returns >= 1);
    demo.stop().await.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_end_summary_is_what_the_gateways_apis_say() {
    let dir = tempfile::tempdir().unwrap();
    let config = DemoConfig {
        data_dir: dir.path().to_owned(),
        http_listen: Some(([127, 0, 0, 1], 0).into()),
        speed: 600.0,
        hubs: 5,
        start_date: a_tuesday(),
        ..DemoConfig::default()
    };
    let demo = Demo::start(config).await.unwrap();
    // Long enough for rounds, residents' reports and their return visits, the lockout at 09:00
    // and its repair: about eight simulated hours.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let reports = demo.reports();
        let status = |s: &str| {
            reports
                .values()
                .filter(|r| r.status.as_deref() == Some(s) && r.service_code != "heating_fault")
                .count()
        };
        if demo.summary().jobs_completed >= 2
            && status("closed") >= 1
            && status("no_further_action") >= 1
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the demo did not get far enough: {reports:?}, {}",
            demo.summary()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let began = demo.began().to_owned();
    let (front_end_key, staff_token) = (
        demo.front_end_key().to_owned(),
        demo.asset_manager_token().to_owned(),
    );
    let finished = demo.stop().await;
    let ending = &finished.ending;
    let http = format!("http://{}", finished.gateway().http_addr);

    // Reports, as the Open311 listing has them.
    let listed = FrontEnd::new(JsonClient::new(&http), front_end_key)
        .all()
        .await
        .unwrap();
    let (heating, bins): (Vec<_>, Vec<_>) = listed
        .iter()
        .partition(|r| r.service_code.as_deref() == Some("heating_fault"));
    let with = |list: &[&firmware_sim::residents::Listed], s: &str| {
        list.iter().filter(|r| r.status == s).count()
    };
    assert_eq!(ending.missed_bins.filed, bins.len(), "{ending}\n{listed:?}");
    assert_eq!(ending.missed_bins.closed, with(&bins, "closed"), "{ending}");
    assert_eq!(
        ending.missed_bins.rejected,
        with(&bins, "no_further_action"),
        "{ending}"
    );
    assert_eq!(ending.heating.filed, heating.len(), "{ending}");
    assert_eq!(ending.heating.fixed, with(&heating, "closed"), "{ending}");
    assert!(
        ending.missed_bins.as_expected == ending.missed_bins.closed + ending.missed_bins.rejected,
        "{ending}\n{listed:#?}"
    );

    // Alerts per boiler, as the staff API lists them, open and closed.
    let staff = JsonClient::new(&http).with_bearer(staff_token);
    let mut alerts: Vec<serde_json::Value> = staff
        .get("/api/v1/alerts?state=open&limit=5000")
        .await
        .unwrap();
    let closed: Vec<serde_json::Value> = staff
        .get(&format!(
            "/api/v1/alerts?state=closed&limit=5000&from={}",
            began.replace('+', "%2B")
        ))
        .await
        .unwrap();
    alerts.extend(closed);
    let mut by_asset: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    // Once the devices stopped, every hub fell silent: those alerts are not the run's.
    let before_the_end = |alert: &&serde_json::Value| {
        let opened = alert["opened"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(opened).unwrap() < ending.until
    };
    for alert in alerts.iter().filter(before_the_end) {
        *by_asset
            .entry(alert["asset"].as_str().unwrap().to_owned())
            .or_default()
            .entry(alert["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for boiler in &ending.boilers {
        assert_eq!(
            boiler.kinds,
            by_asset.remove(&boiler.asset).unwrap_or_default(),
            "{}: {ending}",
            boiler.asset
        );
    }
    assert!(
        by_asset.is_empty(),
        "alerts for boilers the summary misses: {by_asset:?}"
    );
    // The locked-out boiler raised its fault alert; the healthy first one raised none.
    assert!(ending.boilers[3].kinds.contains_key("fault"), "{ending}");
    assert!(ending.boilers[0].kinds.is_empty(), "{ending}");

    // Repairs completed, as the repairs API has them once the operative's updates are in.
    let completed = wait_for_completed(&staff, ending).await;
    assert_eq!(completed, ending.repairs_completed, "{ending}");
    finished.close().await;
}

/// The repairs the API shows completed, once it shows as many as `ending` says (the operative's
/// last update is ingested as the agents drain), or after a few seconds whatever it shows.
async fn wait_for_completed(staff: &JsonClient, ending: &Ending) -> u64 {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let jobs: Vec<serde_json::Value> = staff
            .get("/api/v1/repairs?status=completed&limit=5000")
            .await
            .unwrap();
        let completed = jobs.len() as u64;
        if completed == ending.repairs_completed || tokio::time::Instant::now() > give_up {
            return completed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
