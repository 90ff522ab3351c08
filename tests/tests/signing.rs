#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Authenticity end to end, with the real binaries on a broker that checks nothing (a private
//! Mosquitto letting anyone in): an intruder publishes on a device's topics. Its acks (`thru`
//! covering everything the agent holds, or far ahead) and jobs, unsigned or signed with a key
//! that is not the gateway's, are ignored by the real agent: nothing leaves its outbox, no job
//! reaches its crew, and its status and its health record count them. And the intruder, a
//! device with keys of its own, cannot publish as another: its forged batch is quarantined.

use std::time::Duration;

use fieldsync_tests::system::{
    post_collection, unique_id, AgentProcess, Broker, GatewayProcess, PrivateMosquitto, DEADLINE,
};
use fieldsync_tests::{http, telemetry, wait_for, FakeDevice, GATEWAY_KID};
use proto::signed::{self, SigningKey};
use proto::{Ack, DeviceId, TopicKind, MAX_MESSAGE_BYTES, SCHEMA_VERSION};

const POLL: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_acks_and_jobs_are_ignored_and_counted_and_no_device_publishes_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosquitto) = PrivateMosquitto::start(dir.path()).await else {
        eprintln!("no mosquitto binary on this machine: skipped");
        return;
    };
    let broker = Broker::External("127.0.0.1".into(), mosquitto.port);
    let (device, intruder_id) = (unique_id("cab"), unique_id("cab"));
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &[&device, &intruder_id]).await;
    let env = vec![("FIELDSYNC_AGENT_HEALTH_S".to_owned(), "2".to_owned())];
    let agent =
        AgentProcess::start_with_env(dir.path(), &device, broker.address(), &gateway, env).await;
    post_collection(agent.api_port, 100_000_000_001, "collected", "R-1")
        .await
        .unwrap();
    agent.wait_drained().await;

    // The intruder, enrolled as a device of its own, publishes a batch as the victim, signed
    // with its own key: quarantined, never stored.
    let intruder = FakeDevice::connect_signed(
        &intruder_id,
        mosquitto.port,
        gateway.keys(&intruder_id).clone(),
    )
    .await;
    let victim = DeviceId::new(device.as_str()).unwrap();
    let up = victim.topic(TopicKind::Up);
    let mut forged = intruder.envelope(telemetry(500, 502, "B-1"));
    forged.dev = victim.clone();
    let forged = proto::encode(&forged, MAX_MESSAGE_BYTES).unwrap();
    let intruder_key = gateway.keys(&intruder_id).device.clone();
    intruder
        .send_raw(
            &up,
            signed::sign(&forged, &up, &device, &intruder_key).unwrap(),
        )
        .await;
    let quarantine = gateway.url("/api/v1/quarantine");
    wait_for("the forged batch in quarantine", DEADLINE, || async {
        let entries = http::get(&quarantine, Some(gateway.admin_token.as_str()))
            .await
            .json();
        let found = entries.as_array()?.iter().any(|entry| {
            entry["topic"] == up.as_str()
                && entry["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("bad signature"))
        });
        found.then_some(())
    })
    .await;

    // With the gateway stopped, the agent's next records wait in its outbox for an ack.
    gateway.stop();
    for uprn in 2..=4 {
        post_collection(agent.api_port, 100_000_000_000 + uprn, "collected", "R-1")
            .await
            .unwrap();
    }
    let before = agent.status().await.unwrap();
    let acked_before = before["outbox"]["acked_through"].as_u64().unwrap();
    let holding = before["outbox"]["next_seq"].as_u64().unwrap() - 1;
    assert!(holding >= acked_before + 3, "{before}");

    // Acks and jobs that the gateway did not sign: bare, or signed by another key as the
    // gateway, covering everything the agent holds or far beyond.
    let ack_topic = victim.topic(TopicKind::Ack);
    let down_topic = victim.topic(TopicKind::Down);
    let not_the_gateway = SigningKey::from_bytes(&[0x99; 32]);
    let ack = |thru| {
        proto::encode(
            &Ack {
                v: SCHEMA_VERSION,
                thru,
                rej: Vec::new(),
            },
            MAX_MESSAGE_BYTES,
        )
        .unwrap()
    };
    let job = proto::encode(&proto::examples::down_job_return(), MAX_MESSAGE_BYTES).unwrap();
    let sign_as_gateway = |payload: &[u8], topic: &str| {
        signed::sign(payload, topic, GATEWAY_KID, &not_the_gateway).unwrap()
    };
    let spoofs = [
        (ack_topic.clone(), ack(holding)),
        (ack_topic.clone(), ack(1_000_000)),
        (
            ack_topic.clone(),
            sign_as_gateway(&ack(holding), &ack_topic),
        ),
        (down_topic.clone(), job.clone()),
        (down_topic.clone(), sign_as_gateway(&job, &down_topic)),
    ];
    for (topic, payload) in &spoofs {
        intruder.send_raw(topic, payload.clone()).await;
    }
    let status = wait_for("the agent to count the spoofs", DEADLINE, || async {
        let status = agent.status().await?;
        (status["link"]["unverified"] == spoofs.len()).then_some(status)
    })
    .await;
    // Nothing was deleted and no job arrived.
    assert_eq!(status["outbox"]["acked_through"], acked_before, "{status}");
    assert!(status["outbox"]["depth"].as_u64().unwrap() >= 3, "{status}");
    let (code, jobs) =
        fieldsync_tests::system::agent_request(agent.api_port, "GET", "/v1/jobs", "")
            .await
            .unwrap();
    assert_eq!((code, jobs.trim()), (200, "[]"));

    // The gateway back: the real ack drains the outbox, and the agent's health record tells the
    // gateway how many it ignored.
    gateway.restart().await;
    agent.wait_drained().await;
    let devices = gateway.url("/api/v1/devices");
    wait_for("the health record with the count", DEADLINE, || async {
        tokio::time::sleep(POLL).await;
        let listed = http::get(&devices, Some(gateway.admin_token.as_str()))
            .await
            .json();
        let mine = listed
            .as_array()?
            .iter()
            .find(|d| d["id"] == device.as_str())?
            .clone();
        (mine["health"]["unverified"] == spoofs.len()).then_some(())
    })
    .await;
    drop(agent);
    gateway.stop();
}
