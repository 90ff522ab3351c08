#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Jobs, cancellations and configuration sent down by a test gateway: stored durably, shown to the
//! app, answered idempotently when repeated, kept across a restart, and queued by the broker
//! (persistent session) while the agent is away.

#[path = "support/signing.rs"]
mod signing;

use std::path::Path;
use std::time::Duration;

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use fieldsync_tests::test_gateway::TestGateway;
use fieldsync_tests::{free_port, http, wait_for};
use proto::{
    Config, Down, DownBody, Job, JobCancel, JobKind, Priority, RecordBody, RepairJob,
    MAX_MESSAGE_BYTES, SCHEMA_VERSION,
};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(20);

fn broker() -> u16 {
    let port = free_port();
    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES).unwrap();
    port
}

fn config(dir: &Path, mqtt_port: u16) -> AgentConfig {
    let mut config = AgentConfig {
        device_id: "hh-7".into(),
        signing: signing::signing("hh-7"),
        data_dir: dir.join("agent"),
        shutdown_deadline_s: 5,
        ..AgentConfig::default()
    };
    config.mqtt.port = mqtt_port;
    config.mqtt.reconnect_min_ms = 50;
    config.mqtt.reconnect_max_ms = 400;
    config.uplink.linger_ms = 10;
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config
}

fn down(body: DownBody) -> Down {
    Down {
        v: SCHEMA_VERSION,
        sent: 1_764_000_000_000,
        body,
    }
}

fn job(id: &str, rev: u32) -> Down {
    down(DownBody::Job(Job {
        id: id.into(),
        rev,
        due: 1_764_100_000_000,
        kind: JobKind::Repair(RepairJob {
            asset: "B-1042".into(),
            addr: "Flat 3, 1 High Street".into(),
            desc: format!("No heating (revision {rev})"),
            prio: Priority::Urgent,
        }),
    }))
}

async fn jobs(agent: &Agent) -> Vec<Value> {
    let response = http::get(&format!("http://{}/v1/jobs", agent.api_addr), None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json().as_array().unwrap().clone()
}

async fn wait_jobs(agent: &Agent, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    wait_for(what, DEADLINE, || async {
        let jobs = jobs(agent).await;
        check(&jobs).then_some(jobs)
    })
    .await
}

async fn wait_connected(agent: &Agent) {
    let mut status = agent.link_status();
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.connected))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cancellations_and_configuration_from_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let agent = Agent::start(config(dir.path(), port)).await.unwrap();
    wait_connected(&agent).await;

    // A job, its redelivery, and a new revision.
    gateway.send_down("hh-7", &job("J-1", 1)).await;
    gateway.send_down("hh-7", &job("J-1", 1)).await;
    gateway.send_down("hh-7", &job("J-1", 2)).await;
    let listed = wait_jobs(&agent, "revision 2 of J-1", |jobs| {
        jobs.len() == 1 && jobs[0]["rev"] == 2
    })
    .await;
    assert_eq!(listed[0]["kind"]["repair"]["asset"], "B-1042");
    assert!(listed[0]["cancelled"].is_null());

    // The operative reports progress: a record for the gateway, and the job shows it.
    let status_url = format!("http://{}/v1/jobs/J-1/status", agent.api_addr);
    let response = http::post_json(&status_url, None, &json!({"status": "arrived"})).await;
    assert_eq!(response.status, 201, "{}", response.body);
    gateway.wait_stored("hh-7", 1, DEADLINE).await;
    let update = &gateway.stored("hh-7")[0];
    assert!(
        matches!(&update.body, RecordBody::JobUpdate(u) if u.job == "J-1"),
        "{update:?}"
    );
    assert_eq!(jobs(&agent).await[0]["status"], "arrived");

    // Withdrawn: shown as cancelled, refused for progress, and a later revision does not revive it.
    let cancel = down(DownBody::JobCancel(JobCancel {
        id: "J-1".into(),
        reason: Some("resident fixed it".into()),
    }));
    gateway.send_down("hh-7", &cancel).await;
    gateway.send_down("hh-7", &cancel).await;
    wait_jobs(&agent, "J-1 cancelled", |jobs| {
        jobs[0]["cancelled"]["reason"] == "resident fixed it"
    })
    .await;
    let response = http::post_json(&status_url, None, &json!({"status": "completed"})).await;
    assert_eq!(response.status, 409, "{}", response.body);
    assert!(
        response.body.contains("resident fixed it"),
        "{}",
        response.body
    );
    gateway.send_down("hh-7", &job("J-1", 3)).await;

    // Configuration: the sampling interval follows it; an older revision is ignored.
    let mut sample = agent.sample_interval();
    let push = |rev, sample_s| {
        down(DownBody::Config(Config {
            rev,
            sample_s: Some(sample_s),
            ..Config::default()
        }))
    };
    gateway.send_down("hh-7", &push(5, 15)).await;
    gateway.send_down("hh-7", &push(4, 99)).await;
    tokio::time::timeout(DEADLINE, sample.wait_for(|d| *d == Duration::from_secs(15)))
        .await
        .unwrap()
        .unwrap();
    // Messages are applied in order; a marker job after them shows all were handled.
    gateway.send_down("hh-7", &job("J-2", 1)).await;
    wait_jobs(&agent, "J-2", |jobs| jobs.len() == 2).await;
    assert_eq!(*agent.sample_interval().borrow(), Duration::from_secs(15));

    // A restart keeps the jobs and the configuration.
    agent.shutdown().await;
    let agent = Agent::start(config(dir.path(), port)).await.unwrap();
    assert_eq!(agent.boot, 2);
    assert_eq!(*agent.sample_interval().borrow(), Duration::from_secs(15));
    let listed = jobs(&agent).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["rev"], 2, "cancellation is final");
    assert_eq!(listed[0]["status"], "arrived");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_sent_while_the_agent_is_away_arrive_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let agent = Agent::start(config(dir.path(), port)).await.unwrap();
    wait_connected(&agent).await;
    agent.shutdown().await;

    // The broker holds the persistent session's messages until the agent reconnects.
    gateway.send_down("hh-7", &job("J-9", 1)).await;
    let agent = Agent::start(config(dir.path(), port)).await.unwrap();
    wait_jobs(&agent, "J-9 after the restart", |jobs| jobs.len() == 1).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_records_follow_the_pushed_interval() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let agent = Agent::start(config(dir.path(), port)).await.unwrap();
    wait_connected(&agent).await;
    let push = down(DownBody::Config(Config {
        rev: 1,
        health_s: Some(1),
        ..Config::default()
    }));
    gateway.send_down("hh-7", &push).await;
    let health = wait_for("two health records", DEADLINE, || async {
        let health: Vec<_> = gateway
            .stored("hh-7")
            .into_iter()
            .filter_map(|record| match record.body {
                RecordBody::Health(health) => Some(health),
                _ => None,
            })
            .collect();
        (health.len() >= 2).then_some(health)
    })
    .await;
    assert_eq!(health[0].ver, env!("CARGO_PKG_VERSION"));
    // Free disk is measured (0 would mean unknown).
    assert!(health.iter().all(|h| h.free > 0), "{health:?}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_jobs_the_gateway_did_not_sign_are_ignored_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    gateway.withhold_acks(true);
    let agent = Agent::start(config(dir.path(), port)).await.unwrap();
    wait_connected(&agent).await;
    let outbox = agent.intake().outbox().clone();
    for n in 0..3 {
        let body = RecordBody::Telemetry(proto::Telemetry {
            asset: "B-1042".into(),
            flow: Some(60.0 + n as f32),
            ..proto::Telemetry::default()
        });
        agent
            .intake()
            .accept(1_764_000_000_000 + n, body)
            .await
            .unwrap();
    }
    gateway.wait_stored("hh-7", 3, DEADLINE).await;
    let holding = outbox.stats().unwrap().next_seq - 1;

    // Unsigned, and signed by a key that is not the gateway's as the gateway: acks through
    // everything held, and a job.
    let intruder = proto::signed::SigningKey::from_bytes(&[0x77; 32]);
    let (ack_topic, down_topic) = ("fieldsync/v1/hh-7/ack", "fieldsync/v1/hh-7/down");
    let ack = proto::encode(
        &proto::Ack {
            v: SCHEMA_VERSION,
            thru: holding,
            rej: Vec::new(),
        },
        MAX_MESSAGE_BYTES,
    )
    .unwrap();
    let job = proto::encode(&job("J-FORGED", 1), MAX_MESSAGE_BYTES).unwrap();
    let forge = |payload: &[u8], topic: &str| {
        proto::signed::sign(payload, topic, "gateway", &intruder).unwrap()
    };
    let spoofs = [
        (ack_topic, ack.clone()),
        (ack_topic, forge(&ack, ack_topic)),
        (down_topic, job.clone()),
        (down_topic, forge(&job, down_topic)),
        // The gateway's own signature, but made for the down topic, replayed on the ack topic.
        (
            ack_topic,
            fieldsync_tests::test_gateway::sign(down_topic, &ack),
        ),
    ];
    for (topic, payload) in &spoofs {
        gateway.publish_raw(topic, payload.clone()).await;
    }
    let mut link = agent.link_status();
    tokio::time::timeout(
        DEADLINE,
        link.wait_for(|status| status.unverified == spoofs.len() as u64),
    )
    .await
    .expect("the agent counted every spoof")
    .unwrap();
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.acked_through, 0);
    assert!(stats.depth >= holding, "{stats:?}");
    assert!(jobs(&agent).await.is_empty());

    // The gateway's real ack is acted on.
    gateway.withhold_acks(false);
    gateway.ack_now("hh-7").await;
    wait_for("the real ack", DEADLINE, || async {
        (outbox.stats().ok()?.acked_through == holding).then_some(())
    })
    .await;
    agent.shutdown().await;
}
