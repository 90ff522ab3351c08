#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Repairs end to end on a real gateway over real MQTT (the embedded broker), with a fixed
//! clock: a repair job raised from an alert reaches the operative's handheld subscribed to its
//! `down` topic, once; the operative's updates, published as records, move it through its
//! states; a tenant's Open311 heating report for the same boiler follows it; and the alert,
//! cleared after the repair, closes with the job as its evidence.

mod support;

use std::sync::Arc;
use std::time::Duration;

use fieldsync_tests::{http, wait_for};
use gateway::access::Role;
use gateway::clock::FixedClock;
use gateway::repairs::Operative;
use gateway::storage::IncomingBatch;
use gateway::Gateway;
use proto::{DownBody, JobKind, JobStatus, Record, RecordBody, Telemetry, TimestampMs};
use serde_json::{json, Value};

/// What the test gateway issues: an admin's and an asset manager's tokens, and the tenants'
/// front end's Open311 key.
struct Tokens {
    admin: String,
    manager: String,
    api_key: String,
}
/// Wednesday 25 November 2026, 10:00 UTC (London is on UTC in November).
const NOW: &str = "2026-11-25T10:00:00Z";
const NOW_MS: TimestampMs = 1_795_600_800_000;
const MIN: i64 = 60_000;
const DEADLINE: Duration = Duration::from_secs(20);
const UPRN: u64 = 100_021_445_102;

const REGISTER: &str = "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub
HIL-B-0001,100021445102,\"4 Swakeleys Road, Ickenham UB10 8BE\",Worcester Bosch,Greenstar 30i,30,2019-03-14,no,no,hub-0001
";

async fn start(dir: &std::path::Path) -> (Gateway, Tokens) {
    let mut config = support::config(dir);
    config.repairs.operatives = vec![Operative {
        device: "hh-ada".into(),
        name: "Ada".into(),
        patch: vec!["UB10".into()],
    }];
    config.repairs.rule = gateway::repairs::AssignRule::Patch;
    let gateway = Gateway::start_with_clock(config, Arc::new(FixedClock::at_rfc3339(NOW)))
        .await
        .unwrap();
    let staff = |name: &str, role: Role| {
        let issued = gateway.access.add_staff(name, role, false).unwrap();
        issued.token.reveal().to_owned()
    };
    let tokens = Tokens {
        admin: staff("ada", Role::Admin),
        manager: staff("amira", Role::AssetManager),
        api_key: gateway
            .access
            .add_integration("tenants-portal", false)
            .unwrap()
            .token
            .reveal()
            .to_owned(),
    };
    (gateway, tokens)
}

/// The boiler's samples at `bar` for minutes `minutes` before now (sequence = `seq_base` + i).
fn samples(minutes: std::ops::Range<i64>, seq_base: u64, bar: f32) -> IncomingBatch {
    let records = minutes
        .enumerate()
        .map(|(i, m)| Record {
            seq: seq_base + i as u64,
            ts: NOW_MS - 60 * MIN + m * MIN,
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
    support::batch_from("hub-0001", records, NOW_MS)
}

async fn repair(base: &str, id: &str, t: &Tokens) -> Value {
    let reply = http::get(&format!("{base}/api/v1/repairs/{id}"), Some(&t.manager)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

async fn tenant_view(base: &str, id: &str) -> Value {
    let reply = http::get(&format!("{base}/open311/v2/requests/{id}.json"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_raised_from_an_alert_reaches_the_handheld_moves_by_its_updates_and_closes_the_alert(
) {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, t) = start(dir.path()).await;
    assert!(gateway.wait_ready(DEADLINE).await);
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
    let handheld = support::enrolled(&gateway, "hh-ada").await;

    // The boiler loses pressure: an alert opens.
    gateway.store.ingest(&[samples(0..5, 1, 0.4)]).unwrap();
    let alerts = http::get(
        &format!("{base}/api/v1/alerts?kind=pressure_low"),
        Some(t.manager.as_str()),
    )
    .await
    .json();
    let alert_id = alerts[0]["id"].as_str().expect("an open alert").to_owned();

    // Staff raise a repair from it: it goes to the operative whose patch covers the home.
    let mut events =
        http::EventStream::open(gateway.http_addr, "/api/v1/repairs/events", &t.manager).await;
    let raised = http::post_json(
        &format!("{base}/api/v1/alerts/{alert_id}/repair"),
        Some(t.manager.as_str()),
        &json!({}),
    )
    .await;
    assert_eq!(raised.status, 201, "{}", raised.body);
    let raised = raised.json();
    let job_id = raised["id"].as_str().unwrap().to_owned();
    assert_eq!(raised["operative"], "hh-ada");
    assert_eq!(raised["alert"], alert_id);
    assert_eq!(raised["priority"], "emergency");
    let again = http::post_json(
        &format!("{base}/api/v1/alerts/{alert_id}/repair"),
        Some(t.manager.as_str()),
        &json!({}),
    )
    .await;
    assert_eq!(again.status, 409, "one job for one alert: {}", again.body);

    // Followers of the jobs' events hear of it.
    let seen = events
        .read_until(&format!("\"id\":\"{job_id}\""), DEADLINE)
        .await;
    assert!(seen.contains("event: repair"), "{seen}");

    // It reaches the handheld on its down topic, as a repair job.
    let job = wait_for("the job on the handheld", DEADLINE, || async {
        handheld
            .downs()
            .into_iter()
            .find_map(|down| match down.body {
                DownBody::Job(job) if job.id == job_id => Some(job),
                _ => None,
            })
    })
    .await;
    let JobKind::Repair(repair_job) = &job.kind else {
        panic!("not a repair: {job:?}");
    };
    assert_eq!(repair_job.asset, "HIL-B-0001");
    assert!(repair_job.addr.ends_with("UB10 8BE"));
    assert_eq!(job.rev, 1);

    // A tenant reports no heating through Open311: linked to the job already booked.
    let filed = http::request(
        "POST",
        &format!("{base}/open311/v2/requests.json"),
        None,
        Some("application/x-www-form-urlencoded"),
        format!(
            "api_key={}&service_code=heating_fault&address_id={UPRN}\
             &description=No+heating&email=tenant%40example.org",
            t.api_key
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(filed.status, 200, "{}", filed.body);
    let report_id = filed.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = tenant_view(&base, &report_id).await;
    assert_eq!(seen["service_code"], "heating_fault");
    assert_eq!(seen["status"], "action_scheduled");
    let notes = seen["status_notes"].as_str().unwrap();
    assert!(
        notes.contains(&format!("already booked (job {job_id})")),
        "{notes}"
    );

    // The operative's updates, over MQTT, move it through its states.
    handheld
        .send(vec![
            support::job_update(1, &job_id, JobStatus::Accepted, NOW_MS),
            support::job_update(2, &job_id, JobStatus::EnRoute, NOW_MS),
            support::job_update(3, &job_id, JobStatus::Arrived, NOW_MS),
        ])
        .await;
    handheld.wait_acked(3, DEADLINE).await;
    wait_for("the job arrived", DEADLINE, || async {
        (repair(&base, &job_id, &t).await["status"] == "arrived").then_some(())
    })
    .await;
    events.read_until("\"status\":\"arrived\"", DEADLINE).await;
    let seen = tenant_view(&base, &report_id).await;
    assert_eq!(seen["status"], "in_progress");
    assert!(seen["status_notes"]
        .as_str()
        .unwrap()
        .contains("The engineer arrived"));
    handheld
        .send(vec![support::job_update(
            4,
            &job_id,
            JobStatus::Completed,
            NOW_MS,
        )])
        .await;
    handheld.wait_acked(4, DEADLINE).await;
    let done = wait_for("the job completed", DEADLINE, || async {
        let job = repair(&base, &job_id, &t).await;
        (job["status"] == "completed").then_some(job)
    })
    .await;
    let events: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "raised",
            "dispatched",
            "dispatched",
            "accepted",
            "en_route",
            "arrived",
            "completed"
        ],
        "raised, sent, the tenant's report linked, then the operative's updates"
    );
    let seen = tenant_view(&base, &report_id).await;
    assert_eq!(seen["status"], "closed");
    assert!(seen["status_notes"]
        .as_str()
        .unwrap()
        .contains("completed the repair"));

    // The pressure recovers: the alert closes with the job as its evidence.
    gateway.store.ingest(&[samples(5..15, 100, 1.5)]).unwrap();
    let closed = wait_for("the alert closed with the repair", DEADLINE, || async {
        let closed = http::get(
            &format!("{base}/api/v1/alerts?state=closed&kind=pressure_low"),
            Some(t.manager.as_str()),
        )
        .await
        .json();
        (closed[0]["closed_with_repair"] == job_id.as_str()).then(|| closed[0].clone())
    })
    .await;
    assert_eq!(closed["id"], alert_id);
    assert_eq!(closed["repairs"][0]["id"], job_id.as_str());
    let job = repair(&base, &job_id, &t).await;
    assert_eq!(job["resolved_alert"], true);
    assert_eq!(job["tenant_reports"], json!([report_id]));

    // The asset lists it; the handheld had it once.
    let asset = http::get(
        &format!("{base}/api/v1/assets/HIL-B-0001"),
        Some(t.manager.as_str()),
    )
    .await
    .json();
    assert_eq!(asset["repairs"][0]["id"], job_id.as_str());
    let sent = handheld
        .downs()
        .into_iter()
        .filter(|d| matches!(&d.body, DownBody::Job(j) if j.id == job_id))
        .count();
    assert_eq!(sent, 1);
    drop(events);
    gateway.stop().await;
}
