#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The gateway killed with SIGKILL while three cabs' agents post confirmations, then killed again
//! once everything is delivered, on the embedded broker and on an external one: every accepted
//! record is stored exactly once, and the missed-bin desk decides residents' reports after each
//! restart from the crews' evidence as it would in a clean run. Each cab's sequence numbers pass
//! 256, so their stored keys hold every byte value (once, a '/' in a key lost the evidence at
//! every restart).

mod common;

use std::time::Duration;

use common::{reconcile, Accepted};

use fieldsync_tests::system::{
    post_collection, unique_id, AgentProcess, Broker, GatewayProcess, DEADLINE,
};
use fieldsync_tests::{http, wait_for};

const ROUND: &str = "SYS-1";
const CABS: usize = 3;
const RECORDS_PER_CAB: u64 = 300;
/// Each cab confirms this many registered properties (the rest of its records are for
/// properties outside the register: unmatched, like a crew's detour).
const PROPERTIES_PER_CAB: u64 = 20;
/// Properties on the round that no crew records: reports for them are accepted.
const UNVISITED: u64 = 5;
const FIRST_UPRN: u64 = 200_000_000_001;
const UNREGISTERED_UPRN: u64 = 900_000_000_000;

/// The round's register: every property collected every day, so that today is a collection day
/// whenever the test runs.
fn register() -> String {
    let mut csv = "uprn,address,lat,lon,round,order,weekdays,frequency,anchor,streams\n".to_owned();
    let total = CABS as u64 * PROPERTIES_PER_CAB + UNVISITED;
    for i in 0..total {
        csv.push_str(&format!(
            "{},\"{} Test Road, Uxbridge UB10 8BE\",{:.5},-0.44620,{ROUND},{},\
             Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,,refuse\n",
            FIRST_UPRN + i,
            i + 1,
            51.56240 + i as f64 * 0.0003,
            i + 1
        ));
    }
    csv
}

/// The property cab `cab` confirms as its `k`th, and whether its bin was put out.
fn property(cab: usize, k: u64) -> (u64, &'static str) {
    let uprn = FIRST_UPRN + cab as u64 * PROPERTIES_PER_CAB + k;
    let outcome = if k % 2 == 0 {
        "not_presented"
    } else {
        "collected"
    };
    (uprn, outcome)
}

/// What cab `cab` posts as its `i`th record: a registered property every 15th record, spread
/// over the whole sequence, an unregistered one otherwise.
fn posting(cab: usize, i: u64) -> (u64, &'static str) {
    if i % 15 == 0 && i / 15 < PROPERTIES_PER_CAB {
        property(cab, i / 15)
    } else {
        (UNREGISTERED_UPRN + cab as u64 * 10_000 + i, "collected")
    }
}

async fn post_report(gateway: &GatewayProcess, uprn: u64) -> String {
    let form = format!(
        "api_key={}&service_code=refuse&address_id={uprn}&description=Bin+not+emptied",
        gateway.api_key
    );
    let response = http::request(
        "POST",
        &gateway.url("/open311/v2/requests.json"),
        None,
        Some("application/x-www-form-urlencoded"),
        form.into_bytes(),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()[0]["service_request_id"]
        .as_str()
        .expect("a service_request_id")
        .to_owned()
}

async fn request_status(gateway: &GatewayProcess, id: &str) -> serde_json::Value {
    let response = http::get(
        &gateway.url(&format!("/open311/v2/requests/{id}.json")),
        None,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()[0].clone()
}

/// Waits until the desk knows the round is complete: at start-up it replays crews' evidence
/// from the store, so this is also "the evidence is back".
async fn wait_round_complete(gateway: &GatewayProcess) {
    let url = gateway.url(&format!("/api/v1/rounds/{ROUND}/progress"));
    wait_for(
        "the desk to know the round is complete",
        DEADLINE,
        || async {
            let progress = http::get(&url, Some(&gateway.admin_token)).await;
            (progress.status == 200 && progress.json()["completed_at"].is_number()).then_some(())
        },
    )
    .await;
}

/// Files a report for one not-presented property of each cab (rejected from the evidence) and
/// one unvisited property (accepted); checks both decisions.
async fn check_decisions(gateway: &GatewayProcess, round_of_reports: u64) {
    for cab in 0..CABS {
        let (uprn, outcome) = property(cab, round_of_reports * 2);
        assert_eq!(outcome, "not_presented");
        let id = post_report(gateway, uprn).await;
        let request = request_status(gateway, &id).await;
        // FixMyStreet's extended status (the default): a rejection is never shown as fixed.
        assert_eq!(
            request["status"],
            "no_further_action",
            "{} report for {uprn}: the crew's evidence says not presented: {request}",
            gateway.broker.name()
        );
        let notes = request["status_notes"].as_str().unwrap_or_default();
        assert!(notes.contains("not put out"), "{notes}");
    }
    let unvisited = FIRST_UPRN + CABS as u64 * PROPERTIES_PER_CAB + round_of_reports;
    let id = post_report(gateway, unvisited).await;
    let request = request_status(gateway, &id).await;
    // Accepted, and a crew sent back for it.
    assert_eq!(request["status"], "action_scheduled", "{request}");
}

async fn run(broker: Broker) {
    let _exclusive = fieldsync_tests::system::external_broker_lock(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let cabs: Vec<String> = (0..CABS).map(|_| unique_id("cab")).collect();
    let enrolled: Vec<&str> = cabs.iter().map(String::as_str).collect();
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &enrolled).await;
    let imported = http::request(
        "POST",
        &gateway.url("/api/v1/properties"),
        Some(&gateway.admin_token),
        Some("text/csv"),
        register().into_bytes(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);

    let mut agents = Vec::new();
    for cab in &cabs {
        agents.push(AgentProcess::start(dir.path(), cab, broker.address(), &gateway).await);
    }
    for agent in &agents {
        let started = fieldsync_tests::system::agent_request(
            agent.api_port,
            "POST",
            &format!("/v1/rounds/{ROUND}/start"),
            r#"{"vehicle": "RCV-07"}"#,
        )
        .await;
        assert_eq!(started.map(|(status, _)| status), Some(201));
    }

    // Three cabs post while the gateway is killed twice under them.
    let posters: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(cab, agent)| {
            let port = agent.api_port;
            tokio::spawn(async move {
                let mut created = std::collections::BTreeMap::new();
                for i in 0..RECORDS_PER_CAB {
                    let (uprn, outcome) = posting(cab, i);
                    match post_collection(port, uprn, outcome, ROUND).await {
                        Ok(seq) => {
                            created.insert(seq, uprn);
                        }
                        Err(status) => panic!("the agent refused a good record: {status:?}"),
                    }
                }
                created
            })
        })
        .collect();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        gateway.restart().await;
    }
    let mut created = Vec::new();
    for poster in posters {
        created.push(poster.await.unwrap());
    }
    for agent in &agents {
        let completed = fieldsync_tests::system::agent_request(
            agent.api_port,
            "POST",
            &format!("/v1/rounds/{ROUND}/complete"),
            r#"{"vehicle": "RCV-07"}"#,
        )
        .await;
        assert_eq!(completed.map(|(status, _)| status), Some(201));
    }
    for agent in &agents {
        agent.wait_drained().await;
    }
    wait_round_complete(&gateway).await;
    check_decisions(&gateway, 0).await;

    // Killed once everything is delivered: the desk must rebuild its evidence from the store.
    gateway.restart().await;
    wait_round_complete(&gateway).await;
    check_decisions(&gateway, 1).await;

    // Reconciliation: stop everything, then read the gateway's store itself.
    for agent in &mut agents {
        agent.stop();
    }
    gateway.stop();
    let accepted: Vec<(String, Accepted)> = agents
        .iter()
        .zip(created)
        .map(|(agent, created)| {
            assert!(created.keys().any(|seq| seq.to_be_bytes().contains(&b'/')));
            let accepted = Accepted {
                created,
                // The round's start and completion.
                others: 2,
                ..Accepted::default()
            };
            (agent.device.clone(), accepted)
        })
        .collect();
    reconcile(&gateway.data_dir, &accepted, broker.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_under_load_loses_nothing_and_keeps_the_desks_evidence() {
    for broker in Broker::under_test() {
        run(broker).await;
    }
}
