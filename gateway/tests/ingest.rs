#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Ingest over the embedded broker with real MQTT clients: records stored once and acked,
//! replays deduplicated, bad messages quarantined while good traffic flows, a poison record
//! refused by name while the rest of its batch is stored and acked, and nothing acked lost when
//! the gateway process is killed; envelopes not signed by their topic's device refused, never
//! stored nor acked.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fieldsync_tests::{free_port, http, telemetry, wait_for, DeviceKeys, FakeDevice};
use gateway::access::Role;
use gateway::config::GatewayConfig;
use gateway::storage::Store as _;
use gateway::Gateway;
use proto::DeviceId;
use support::enrolled;

const DEADLINE: Duration = Duration::from_secs(20);

/// An admin's staff token from `gateway`'s registry (the quarantine is theirs to read).
fn admin_token(gateway: &Gateway) -> String {
    let issued = gateway.access.add_staff("ops", Role::Admin, false).unwrap();
    issued.token.reveal().to_owned()
}

fn config(dir: &std::path::Path) -> GatewayConfig {
    let mut config = support::config(dir);
    config.devices.provisioned = vec!["hub-1".into(), "hub-2".into()];
    config
}

/// Starts a gateway and waits until its ingest is subscribed, so that nothing sent is dropped by
/// the broker for want of a subscriber.
async fn start(config: GatewayConfig) -> Gateway {
    let gateway = Gateway::start(config).await.unwrap();
    assert!(
        gateway.wait_ready(DEADLINE).await,
        "the ingest never subscribed"
    );
    gateway
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_each_record_once_and_acks_replays() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(config(dir.path())).await;
    let device = enrolled(&gateway, "hub-1").await;
    let id = DeviceId::new("hub-1").unwrap();

    device.send(telemetry(1, 50, "B-1")).await;
    device.wait_acked(50, DEADLINE).await;
    // The same batch again, and an overlapping one, as a resend after a lost ack would be.
    device.send(telemetry(1, 50, "B-1")).await;
    wait_for("the replay's ack", DEADLINE, || async {
        (device.acks_received() >= 2).then_some(())
    })
    .await;
    device.send(telemetry(40, 60, "B-1")).await;
    device.wait_acked(60, DEADLINE).await;

    assert_eq!(gateway.store.record_count(&id).unwrap(), 60);
    let metrics = gateway.metrics.render();
    assert!(
        metrics.contains("fieldsync_records_stored_total 60\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fieldsync_duplicate_records_total 61\n"),
        "{metrics}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_only_a_complete_prefix_when_records_arrive_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(config(dir.path())).await;
    let device = enrolled(&gateway, "hub-1").await;

    device.send(telemetry(11, 20, "B-1")).await;
    wait_for("an ack for the early batch", DEADLINE, || async {
        (device.acks_received() >= 1).then_some(())
    })
    .await;
    assert_eq!(device.acked_through(), 0, "1..=10 are still missing");
    device.send(telemetry(1, 10, "B-1")).await;
    device.wait_acked(20, DEADLINE).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantines_bad_messages_while_good_traffic_flows() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(config(dir.path())).await;
    let token = admin_token(&gateway);
    let device = enrolled(&gateway, "hub-1").await;
    let up = device.id.topic(proto::TopicKind::Up);

    device.send_up(b"\xff\x00 not cbor".to_vec()).await;
    device.send(telemetry(1, 5, "B-1")).await;
    // A batch claiming to be from another device.
    let mut other = device.envelope(telemetry(6, 6, "B-1"));
    other.dev = DeviceId::new("hub-2").unwrap();
    device
        .send_up(proto::encode(&other, proto::MAX_MESSAGE_BYTES).unwrap())
        .await;
    // Over the gateway's payload limit, yet under the broker's packet limit (sized for the
    // longest topic, 62 bytes longer than hub-1's), so it reaches the gateway.
    device
        .send_raw(&up, vec![0xa0; proto::MAX_MESSAGE_BYTES + 50])
        .await;
    device.send(telemetry(6, 10, "B-1")).await;
    device.wait_acked(10, DEADLINE).await;

    let url = format!("http://{}/api/v1/quarantine", gateway.http_addr);
    let entries = wait_for("three quarantined messages", DEADLINE, || async {
        let response = http::get(&url, Some(token.as_str())).await;
        let entries = response.json();
        (entries.as_array().map(Vec::len) == Some(3)).then_some(entries)
    })
    .await;
    let reasons: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("malformed CBOR")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("from device hub-2")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("limit")), "{reasons:?}");
    assert_eq!(http::get(&url, None).await.status, 401);
    assert_eq!(http::get(&url, Some("wrong")).await.status, 401);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_records_from_unprovisioned_devices_but_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    // A device without a credential has no key to sign with: only while signing is optional.
    let mut config = config(dir.path());
    config.signing.required = false;
    let gateway = start(config).await;
    let token = admin_token(&gateway);
    let stranger = FakeDevice::connect("stranger-9", gateway.mqtt.1).await;
    stranger.send(telemetry(1, 3, "B-1")).await;
    stranger.wait_acked(3, DEADLINE).await;
    let devices = http::get(
        &format!("http://{}/api/v1/devices", gateway.http_addr),
        Some(token.as_str()),
    )
    .await
    .json();
    let stranger = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "stranger-9")
        .expect("the stranger is listed");
    assert_eq!(stranger["provisioned"], false);
    assert_eq!(stranger["records"], 3);
    assert_eq!(stranger["acked_through"], 3);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_not_signed_by_their_topics_device_are_refused_never_stored_nor_acked() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(config(dir.path())).await;
    let victim = enrolled(&gateway, "hub-1").await;
    let intruder_id = DeviceId::new("hub-2").unwrap();
    let intruder_keys = support::keys(&gateway.devices.add(&intruder_id, true).unwrap());
    let intruder = FakeDevice::connect_signed("hub-2", gateway.mqtt.1, intruder_keys.clone()).await;

    // hub-2 publishes records 1 to 5 on hub-1's topic: signed as itself, signed as hub-1 with
    // its own key, and unsigned.
    let up = victim.id.topic(proto::TopicKind::Up);
    let forged = proto::encode(
        &victim.envelope(telemetry(1, 5, "B-1")),
        proto::MAX_MESSAGE_BYTES,
    )
    .unwrap();
    intruder
        .send_raw(&up, intruder.seal(&up, forged.clone()))
        .await;
    let as_victim = proto::signed::sign(&forged, &up, "hub-1", &intruder_keys.device).unwrap();
    intruder.send_raw(&up, as_victim).await;
    intruder.send_raw(&up, forged).await;
    // Then hub-1 itself sends 1 to 3.
    victim.send(telemetry(1, 3, "B-1")).await;
    victim.wait_acked(3, DEADLINE).await;

    let url = format!("http://{}/api/v1/quarantine", gateway.http_addr);
    let token = admin_token(&gateway);
    let entries = wait_for("three quarantined envelopes", DEADLINE, || async {
        let entries = http::get(&url, Some(&token)).await.json();
        (entries.as_array().map(Vec::len) == Some(3)).then_some(entries)
    })
    .await;
    let reasons: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    for expected in ["signed as \"hub-2\"", "bad signature", "unsigned envelope"] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{expected}: {reasons:?}"
        );
    }
    // Nothing forged was stored, nor acked: 4 and 5 came only from the intruder.
    assert_eq!(gateway.store.record_count(&victim.id).unwrap(), 3);
    assert_eq!(victim.acked_through(), 3);
    assert!(gateway
        .metrics
        .render()
        .contains("fieldsync_envelopes_unverified_total 3\n"));
    gateway.stop().await;
}

/// Every ack the gateway publishes to one device, decoded: the fake device keeps only the
/// highest `thru`, and these tests read the refusals too.
struct AckListener {
    acks: std::sync::Arc<std::sync::Mutex<Vec<proto::Ack>>>,
}

impl AckListener {
    async fn start(device: &DeviceId, port: u16, gateway: proto::signed::VerifyingKey) -> Self {
        let keys = DeviceKeys {
            device: proto::signed::SigningKey::from_bytes(&[0; 32]),
            gateway,
        };
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let mut options = MqttOptions::new(format!("acks-of-{device}"), "127.0.0.1", port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let topic = device.topic(proto::TopicKind::Ack);
        let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (subscribed_tx, mut subscribed) = tokio::sync::watch::channel(false);
        let sink = acks.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(topic.as_str(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let payload = fieldsync_tests::open_from_gateway(
                            &publish.payload,
                            &publish.topic,
                            Some(&keys),
                        )
                        .expect("an ack the gateway signed");
                        let ack = proto::decode::<proto::Ack>(&payload, 1 << 20);
                        sink.lock().unwrap().push(ack.unwrap());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        tokio::time::timeout(DEADLINE, subscribed.wait_for(|done| *done))
            .await
            .unwrap()
            .unwrap();
        Self { acks }
    }

    fn acks(&self) -> Vec<proto::Ack> {
        self.acks.lock().unwrap().clone()
    }
}

/// A batch of telemetry `from..=to` in which record `gap` is a gap claiming its own and later
/// numbers, and record `nan` a sample with a pressure that is not a number: encoded without the
/// encoder's checks, as a faulty device would send it.
fn poisoned(device: &FakeDevice, from: u64, to: u64, gap: u64, nan: u64) -> Vec<u8> {
    let records = telemetry(from, to, "B-1")
        .into_iter()
        .map(|mut record| {
            if record.seq == gap {
                record.body = proto::RecordBody::Gap(proto::Gap {
                    from: gap,
                    to: gap + 100,
                    count: 101,
                    reason: proto::GapReason::DiskBudget,
                });
            }
            if let (true, proto::RecordBody::Telemetry(sample)) =
                (record.seq == nan, &mut record.body)
            {
                sample.bar = Some(f32::NAN);
            }
            record
        })
        .collect();
    proto::encode_value(&device.envelope(records)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_refused_by_name_and_the_rest_of_its_batch_stored_and_acked() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(config(dir.path())).await;
    let token = admin_token(&gateway);
    let device = enrolled(&gateway, "hub-1").await;
    let listener =
        AckListener::start(&device.id, gateway.mqtt.1, gateway.signatures.public_key()).await;

    device.send_up(poisoned(&device, 1, 10, 4, 7)).await;
    device.wait_acked(10, DEADLINE).await;
    let refused = |ack: &proto::Ack| ack.rej.iter().map(|r| r.seq).collect::<Vec<_>>();
    let first = wait_for("the ack naming the refusal", DEADLINE, || async {
        listener.acks().into_iter().find(|ack| ack.thru == 10)
    })
    .await;
    assert_eq!(refused(&first), [4, 7], "{first:?}");
    assert_eq!(gateway.store.record_count(&device.id).unwrap(), 8);

    // A resend (the ack was lost, say) gets the same refusal, and nothing is counted twice.
    device.send_up(poisoned(&device, 1, 10, 4, 7)).await;
    let again = wait_for("the resend's ack", DEADLINE, || async {
        let acks = listener.acks();
        (acks.len() >= 2).then(|| acks[1].clone())
    })
    .await;
    assert_eq!((again.thru, refused(&again)), (10, vec![4, 7]));
    assert_eq!(again.rej, first.rej);
    device.send(telemetry(11, 12, "B-1")).await;
    device.wait_acked(12, DEADLINE).await;

    let quarantine = http::get(
        &format!("http://{}/api/v1/quarantine", gateway.http_addr),
        Some(token.as_str()),
    )
    .await
    .json();
    let entries = quarantine.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{quarantine}");
    // Newest first.
    assert_eq!(entries[0]["device"], "hub-1");
    assert_eq!(entries[0]["seq"], 7);
    assert_eq!(entries[1]["seq"], 4);
    let reason = entries[1]["reason"].as_str().unwrap();
    assert!(reason.contains("below its own"), "{reason}");
    assert_eq!(entries[0]["payload_sha256"].as_str().unwrap().len(), 64);
    let metrics = gateway.metrics.render();
    for expected in [
        "fieldsync_records_refused_total 2\n",
        "fieldsync_records_stored_total 10\n",
        "fieldsync_quarantine_entries 2\n",
    ] {
        assert!(metrics.contains(expected), "{expected} in {metrics}");
    }
    gateway.stop().await;
}

/// The gateway binary, started on free ports over `dir`.
fn spawn_gateway(dir: &std::path::Path, mqtt_port: u16, http_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--data-dir", dir.to_str().unwrap()])
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
        // Fake devices connect without credentials (device identity: device_identity.rs).
        .arg("--mqtt-allow-anonymous")
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// `gateway devices add ID` on the store in `dir` (no gateway running on it): the keys it printed.
fn issue_with_binary(dir: &std::path::Path, id: &str) -> DeviceKeys {
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--data-dir", dir.to_str().unwrap(), "devices", "add", id])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    DeviceKeys::from_agent_config(&String::from_utf8_lossy(&output.stdout))
        .expect("`gateway devices add` printed the device's keys")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_loses_nothing_it_acked() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let keys = issue_with_binary(&store_dir, "hub-1");
    let mut acked = 0;
    for round in 0..3u64 {
        let (mqtt_port, http_port) = (free_port(), free_port());
        let mut gateway = spawn_gateway(&store_dir, mqtt_port, http_port);
        wait_for("the gateway's health check", DEADLINE, || async {
            let url = format!("http://127.0.0.1:{http_port}/healthz");
            let response = http::try_request("GET", &url, None, None, Vec::new()).await;
            matches!(response, Ok(response) if response.status == 200).then_some(())
        })
        .await;
        let device = FakeDevice::connect_signed("hub-1", mqtt_port, keys.clone()).await;
        let first = round * 100 + 1;
        for start in (first..first + 100).step_by(20) {
            device.send(telemetry(start, start + 19, "B-1")).await;
        }
        device.wait_acked(first + 99, DEADLINE).await;
        acked = device.acked_through();
        // SIGKILL: no shutdown, no flush beyond what the ack already promised.
        gateway.kill().unwrap();
        gateway.wait().unwrap();
    }
    let store = gateway::storage::SledStore::open(&store_dir, 8 * 1024 * 1024).unwrap();
    let id = DeviceId::new("hub-1").unwrap();
    assert_eq!(acked, 300);
    assert_eq!(store.record_count(&id).unwrap(), 300);
    for seq in 1..=300 {
        assert!(
            store.record(&id, seq).unwrap().is_some(),
            "record {seq} lost"
        );
    }
}

/// The external broker the tests use (the machine's Mosquitto; `.ci/run` makes sure it runs).
fn external_broker() -> String {
    std::env::var("FIELDSYNC_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingests_through_an_external_broker_with_a_shared_subscription() {
    let dir = tempfile::tempdir().unwrap();
    // Unique names: the broker outlives the test, and keeps persistent sessions.
    let run = std::process::id();
    let mut config = config(dir.path());
    config.mqtt.url = Some(external_broker());
    // An external broker has its own credentials.
    config.mqtt.allow_anonymous = false;
    config.mqtt.client_id = format!("fieldsync-gateway-test-{run}");
    config.mqtt.shared_group = Some(format!("fieldsync-test-{run}"));
    let gateway = start(config).await;
    let (host, port) = gateway.mqtt.clone();
    assert_eq!(host, "127.0.0.1");

    let device = enrolled(&gateway, &format!("ext-{run}")).await;
    assert_eq!(gateway.mqtt.1, port);
    device.send(telemetry(1, 20, "B-1")).await;
    device.send(telemetry(1, 20, "B-1")).await;
    device.wait_acked(20, DEADLINE).await;
    assert_eq!(gateway.store.record_count(&device.id).unwrap(), 20);
    gateway.stop().await;
}
