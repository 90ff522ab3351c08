#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The boilers' staff API over HTTP on a real gateway with a fixed clock: the register imported
//! by CSV, assets with state, latest readings, open alerts and yesterday's efficiency, alerts
//! listed and acknowledged, telemetry and efficiency over ranges, the estate; bad parameters
//! answered 400 by name; and every route refusing a missing token (401) and the wrong role (403).

mod support;

use std::sync::Arc;

use std::time::Duration;

use fieldsync_tests::{http, telemetry};
use gateway::access::Role;
use gateway::clock::FixedClock;
use gateway::storage::IncomingBatch;
use gateway::Gateway;
use proto::{Record, RecordBody, Telemetry, TimestampMs};

/// Staff's tokens, issued by each test's gateway.
struct Tokens {
    admin: String,
    /// Amira's, an asset manager.
    manager: String,
    viewer: String,
}
/// Wednesday 25 November 2026, 10:00 UTC (London is on UTC in November).
const NOW: &str = "2026-11-25T10:00:00Z";
const NOW_MS: TimestampMs = 1_795_600_800_000;
/// Tuesday 24 November 2026, 00:00 UTC: samples run from here to now.
const DAY0_MS: TimestampMs = NOW_MS - 34 * 3_600_000;
const MIN: i64 = 60_000;
const DEADLINE: Duration = Duration::from_secs(20);

const REGISTER: &str = "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub
HIL-B-0001,100021445102,\"4 Swakeleys Road, Ickenham\",Worcester Bosch,Greenstar 30i,30,2019-03-14,no,no,hub-0001
HIL-B-0002,100021445103,6 Swakeleys Road,Vaillant,ecoTEC plus 832,32,,no,no,hub-0002
HIL-B-0003,not-a-uprn,8 Swakeleys Road,Ideal,Logic+,24,,no,no,hub-0003
";

async fn start(dir: &std::path::Path) -> (Gateway, Tokens) {
    let config = support::config(dir);
    let gateway = Gateway::start_with_clock(config, Arc::new(FixedClock::at_rfc3339(NOW)))
        .await
        .unwrap();
    let issue = |name: &str, role| {
        let issued = gateway.access.add_staff(name, role, false).unwrap();
        issued.token.reveal().to_owned()
    };
    let tokens = Tokens {
        admin: issue("admin", Role::Admin),
        manager: issue("amira", Role::AssetManager),
        viewer: issue("wallboard", Role::Viewer),
    };
    (gateway, tokens)
}

/// B-0001's samples each minute from `DAY0_MS` to now: heating all along with a 45 °C return,
/// at 0.8 bar (low: an alert opens).
fn samples() -> IncomingBatch {
    samples_at(0..(NOW_MS - DAY0_MS) / MIN, 0.8)
}

/// B-0001's samples at minutes `minutes` after `DAY0_MS` (sequence = minute + 1), at `bar`.
fn samples_at(minutes: std::ops::Range<i64>, bar: f32) -> IncomingBatch {
    let records = minutes
        .map(|m| Record {
            seq: m as u64 + 1,
            ts: DAY0_MS + m * MIN,
            body: RecordBody::Telemetry(Telemetry {
                asset: "HIL-B-0001".into(),
                flow: Some(60.0),
                ret: Some(45.0),
                bar: Some(bar),
                flame: Some(true),
                ch: Some(true),
                ..Telemetry::default()
            }),
            boot: None,
            mono: None,
        })
        .collect();
    support::batch_from("hub-0001", records, NOW_MS)
}

/// A started gateway with the register imported and B-0001's samples stored.
async fn loaded(dir: &std::path::Path) -> (Gateway, String, Tokens) {
    let (gateway, t) = start(dir).await;
    let base = format!("http://{}", gateway.http_addr);
    let imported = http::request(
        "POST",
        &format!("{base}/api/v1/assets"),
        Some(t.admin.as_str()),
        Some("text/csv"),
        REGISTER.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let report = imported.json();
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["errors"][0]["line"], 4, "{report}");
    gateway.store.ingest(&[samples()]).unwrap();
    (gateway, base, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_show_state_latest_readings_open_alerts_and_yesterdays_efficiency() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, base, t) = loaded(dir.path()).await;

    let assets = http::get(&format!("{base}/api/v1/assets"), Some(t.manager.as_str())).await;
    assert_eq!(assets.status, 200, "{}", assets.body);
    let assets = assets.json();
    let one = &assets[0];
    assert_eq!(one["asset"], "HIL-B-0001");
    assert_eq!(one["state"], "alerting", "{one}");
    assert_eq!(one["rated_output_kw"], 30.0);
    assert_eq!(one["latest"]["at"], "2026-11-25T09:59:00.000Z");
    assert_eq!(one["latest"]["readings"]["pressure_bar"], 0.800000011920929);
    assert_eq!(one["open_alerts"][0]["kind"], "pressure_low");
    let eff = &one["last_day_efficiency"];
    assert_eq!(eff["period"], "2026-11-24");
    assert_eq!(eff["basis"], "estimated");
    assert!(eff["coverage"].as_f64().unwrap() > 0.99, "{eff}");
    let pct = eff["efficiency_pct"].as_f64().unwrap();
    assert!((89.0..=92.0).contains(&pct), "{eff}");
    // Never heard from: silent.
    assert_eq!(assets[1]["state"], "silent");
    assert_eq!(assets[1]["latest"], serde_json::Value::Null);

    // Pages by id.
    let page = http::get(
        &format!("{base}/api/v1/assets?after=HIL-B-0001&limit=5"),
        Some(t.manager.as_str()),
    )
    .await
    .json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["asset"], "HIL-B-0002");
    let bad = http::get(
        &format!("{base}/api/v1/assets?limit=many"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(bad.status, 400);

    let one = http::get(
        &format!("{base}/api/v1/assets/HIL-B-0002"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(one.status, 200);
    let unknown = http::get(
        &format!("{base}/api/v1/assets/NOPE"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "no asset NOPE");

    let estate = http::get(&format!("{base}/api/v1/estate"), Some(t.manager.as_str())).await;
    assert_eq!(estate.status, 200, "{}", estate.body);
    let estate = estate.json();
    assert_eq!(estate["by_state"]["alerting"], 1, "{estate}");
    assert_eq!(estate["by_state"]["silent"], 1, "{estate}");
    assert_eq!(estate["period"], "2026-11");
    let bad = http::get(
        &format!("{base}/api/v1/estate?month=11-2026"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().starts_with("month:"));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_listed_by_filter_and_acknowledged_by_role() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, base, t) = loaded(dir.path()).await;

    let open = http::get(
        &format!("{base}/api/v1/alerts?state=open&kind=pressure_low&severity=warning"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(open.status, 200, "{}", open.body);
    let open = open.json();
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    let alert = &open[0];
    assert_eq!(alert["state"], "open");
    assert_eq!(alert["opened"], "2026-11-24T00:01:00.000Z");
    assert_eq!(alert["evidence"][0]["unit"], "bar");
    let id = alert["id"].as_str().unwrap().to_owned();

    let none = http::get(
        &format!("{base}/api/v1/alerts?kind=fault"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(none.json(), serde_json::json!([]));
    let closed = http::get(
        &format!("{base}/api/v1/alerts?state=closed"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(closed.json(), serde_json::json!([]));
    for (query, parameter) in [
        ("kind=boiling", "kind:"),
        ("state=ajar", "state:"),
        ("severity=dire", "severity:"),
        ("from=yesterday", "from:"),
        ("limit=-1", "limit:"),
    ] {
        let bad = http::get(
            &format!("{base}/api/v1/alerts?{query}"),
            Some(t.manager.as_str()),
        )
        .await;
        assert_eq!(bad.status, 400, "{query}");
        let error = bad.json()["error"].as_str().unwrap().to_owned();
        assert!(error.starts_with(parameter), "{query}: {error}");
    }

    let ack_url = format!("{base}/api/v1/alerts/{id}/ack");
    let acked = http::post_json(
        &ack_url,
        Some(t.manager.as_str()),
        &serde_json::json!({"note": "booked a visit"}),
    )
    .await;
    assert_eq!(acked.status, 200, "{}", acked.body);
    let acked = acked.json();
    assert_eq!(acked["ack"]["by"], "amira");
    assert_eq!(acked["ack"]["at"], "2026-11-25T10:00:00.000Z");
    assert_eq!(acked["ack"]["note"], "booked a visit");
    // The acknowledgement is kept with the open alert.
    let listed = http::get(
        &format!("{base}/api/v1/alerts?asset=HIL-B-0001"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(listed.json()[0]["ack"]["note"], "booked a visit");

    for unknown in [
        "HIL-B-0001:pressure_low:1",
        "HIL-B-0001:fault:1795600800000",
        "garbage",
    ] {
        let missing = http::post_json(
            &format!("{base}/api/v1/alerts/{unknown}/ack"),
            Some(t.manager.as_str()),
            &serde_json::json!({}),
        )
        .await;
        assert_eq!(missing.status, 404, "{unknown}: {}", missing.body);
    }
    let not_json = http::request(
        "POST",
        &ack_url,
        Some(t.manager.as_str()),
        Some("text/plain"),
        b"hi".to_vec(),
    )
    .await;
    assert_eq!(not_json.status, 415);

    // The pressure restored: the alert closes, is listed as closed, and cannot be acknowledged.
    let restored = (NOW_MS - DAY0_MS) / MIN;
    gateway
        .store
        .ingest(&[samples_at(restored..restored + 5, 1.5)])
        .unwrap();
    let closed = http::get(
        &format!("{base}/api/v1/alerts?state=closed"),
        Some(t.manager.as_str()),
    )
    .await;
    let closed = closed.json();
    assert_eq!(closed[0]["id"], id.as_str(), "{closed}");
    assert_eq!(closed[0]["state"], "closed");
    assert_eq!(closed[0]["ack"]["note"], "booked a visit");
    let late = http::post_json(&ack_url, Some(t.manager.as_str()), &serde_json::json!({})).await;
    assert_eq!(late.status, 409, "{}", late.body);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_and_efficiency_come_raw_or_rolled_up_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, base, t) = loaded(dir.path()).await;
    let url = |query: &str| format!("{base}/api/v1/assets/HIL-B-0001/{query}");

    // A day by default: raw samples.
    let raw = http::get(&url("telemetry"), Some(t.manager.as_str())).await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    let raw = raw.json();
    assert_eq!(raw["step"], "raw");
    assert_eq!(raw["points"].as_array().unwrap().len(), 1440);
    assert_eq!(raw["points"][0]["readings"]["return_c"], 45.0);

    // A year, with its offset given: answered from daily rollups, the empty days shown as gaps.
    let year = http::get(
        &url("telemetry?from=2025-11-26T00:00:00%2B00:00&to=2026-11-26T00:00:00Z"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(year.status, 200, "{}", year.body);
    let year = year.json();
    assert_eq!(year["step"], "day");
    let days = year["points"].as_array().unwrap();
    assert_eq!(days.len(), 365);
    assert_eq!(days[0]["coverage"], 0.0);
    let yesterday = &days[363];
    assert_eq!(yesterday["day"], "2026-11-24");
    assert_eq!(yesterday["samples"], 1440);
    assert_eq!(yesterday["return_c"]["mean"], 45.0);
    assert_eq!(yesterday["pressure_bar"]["samples"], 1440.0);

    let hours = http::get(
        &url("telemetry?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z&step=hour"),
        Some(t.manager.as_str()),
    )
    .await
    .json();
    assert_eq!(hours["points"].as_array().unwrap().len(), 24);
    assert_eq!(hours["points"][3]["flame_on_min"], 60.0);

    // A year of raw samples is refused, saying why.
    let too_many = http::get(
        &url("telemetry?from=2025-11-26T00:00:00Z&to=2026-11-26T00:00:00Z&step=raw"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(too_many.status, 400);
    assert!(
        too_many.body.contains("more than 10000"),
        "{}",
        too_many.body
    );
    for (query, parameter) in [
        ("telemetry?step=minute", "step:"),
        ("telemetry?from=24-11-2026", "from:"),
        (
            "telemetry?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z",
            "to:",
        ),
        ("efficiency?step=week", "step:"),
        ("efficiency?to=soon", "to:"),
    ] {
        let bad = http::get(&url(query), Some(t.manager.as_str())).await;
        assert_eq!(bad.status, 400, "{query}");
        let error = bad.json()["error"].as_str().unwrap().to_owned();
        assert!(error.starts_with(parameter), "{query}: {error}");
    }
    let unknown = http::get(
        &format!("{base}/api/v1/assets/NOPE/telemetry"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(unknown.status, 404);

    let daily = http::get(
        &url("efficiency?from=2026-11-23T00:00:00Z&to=2026-11-25T00:00:00Z&step=day"),
        Some(t.manager.as_str()),
    )
    .await
    .json();
    let points = daily["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["efficiency_pct"], serde_json::Value::Null);
    assert_eq!(points[0]["coverage"], 0.0);
    assert_eq!(points[1]["basis"], "estimated");
    let monthly = http::get(
        &url("efficiency?from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z"),
        Some(t.manager.as_str()),
    )
    .await
    .json();
    assert_eq!(monthly["step"], "month");
    let months = monthly["points"].as_array().unwrap();
    assert_eq!(months.len(), 11);
    assert_eq!(months[10]["period"], "2026-11");
    assert_eq!(months[10]["basis"], "estimated");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_token_and_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, base, t) = loaded(dir.path()).await;
    let alerts = http::get(&format!("{base}/api/v1/alerts"), Some(t.manager.as_str()))
        .await
        .json();
    let id = alerts[0]["id"].as_str().unwrap().to_owned();
    // The event streams' right role is walked in `events_stream_alerts_and_one_boilers_samples`:
    // their bodies never end.
    let asset = "/api/v1/assets/HIL-B-0001";
    let routes: Vec<(&str, String, &str, Option<&str>)> = vec![
        (
            "POST",
            "/api/v1/assets".into(),
            t.manager.as_str(),
            Some(t.admin.as_str()),
        ),
        (
            "GET",
            "/api/v1/assets".into(),
            t.viewer.as_str(),
            Some(t.manager.as_str()),
        ),
        (
            "GET",
            asset.into(),
            t.viewer.as_str(),
            Some(t.manager.as_str()),
        ),
        (
            "GET",
            format!("{asset}/telemetry"),
            t.viewer.as_str(),
            Some(t.manager.as_str()),
        ),
        (
            "GET",
            format!("{asset}/efficiency"),
            t.viewer.as_str(),
            Some(t.manager.as_str()),
        ),
        ("GET", format!("{asset}/events"), t.viewer.as_str(), None),
        (
            "GET",
            "/api/v1/estate".into(),
            t.viewer.as_str(),
            Some(t.manager.as_str()),
        ),
        (
            "GET",
            "/api/v1/alerts".into(),
            t.viewer.as_str(),
            Some(t.manager.as_str()),
        ),
        (
            "GET",
            "/api/v1/alerts/events".into(),
            t.viewer.as_str(),
            None,
        ),
        (
            "POST",
            format!("/api/v1/alerts/{id}/ack"),
            t.viewer.as_str(),
            Some(t.manager.as_str()),
        ),
    ];
    for (method, path, wrong, right) in routes {
        let url = format!("{base}{path}");
        let (content_type, body) = if path.ends_with("/ack") {
            ("application/json", b"{\"note\":null}".to_vec())
        } else {
            ("text/csv", REGISTER.as_bytes().to_vec())
        };
        let send = |token| http::request(method, &url, token, Some(content_type), body.clone());
        assert_eq!(
            send(None).await.status,
            401,
            "{method} {path} without a token"
        );
        assert_eq!(
            send(Some("nobody")).await.status,
            401,
            "{method} {path} unknown token"
        );
        let refused = send(Some(wrong)).await;
        assert_eq!(refused.status, 403, "{method} {path} with the wrong role");
        assert!(refused.json()["error"].as_str().unwrap().contains("role"));
        if let Some(right) = right {
            let allowed = send(Some(right)).await;
            assert_eq!(allowed.status, 200, "{method} {path}: {}", allowed.body);
        }
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_alerts_and_one_boilers_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, t) = start(dir.path()).await;
    assert!(
        gateway.wait_ready(DEADLINE).await,
        "the ingest never subscribed"
    );
    let base = format!("http://{}", gateway.http_addr);
    let imported = http::request(
        "POST",
        &format!("{base}/api/v1/assets"),
        Some(t.admin.as_str()),
        Some("text/csv"),
        REGISTER.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(imported.status, 200);

    let mut alerts =
        http::EventStream::open(gateway.http_addr, "/api/v1/alerts/events", &t.manager).await;
    gateway.store.ingest(&[samples()]).unwrap();
    // An event's name comes before its data.
    let seen = alerts
        .read_until("\"kind\":\"pressure_low\"", DEADLINE)
        .await;
    assert!(seen.contains("event: opened"), "{seen}");

    let unknown = http::get(
        &format!("{base}/api/v1/assets/NOPE/events"),
        Some(t.manager.as_str()),
    )
    .await;
    assert_eq!(unknown.status, 404);
    let mut live = http::EventStream::open(
        gateway.http_addr,
        "/api/v1/assets/HIL-B-0002/events",
        &t.manager,
    )
    .await;
    let hub = support::enrolled(&gateway, "hub-0002").await;
    // Another asset's sample from the same hub (flow 61 °C, first) is not this boiler's; its
    // own follow (flow 62 and 63 °C), in order.
    let mut records = telemetry(1, 1, "HIL-B-0001");
    records.extend(telemetry(2, 3, "HIL-B-0002"));
    hub.send(records).await;
    hub.wait_acked(3, DEADLINE).await;
    let seen = live.read_until("\"flow_c\":63.0", DEADLINE).await;
    assert!(seen.contains("event: sample"), "{seen}");
    assert!(seen.contains("\"flow_c\":62.0"), "{seen}");
    assert!(!seen.contains("\"flow_c\":61.0"), "{seen}");
    drop((alerts, live));
    gateway.stop().await;
}
