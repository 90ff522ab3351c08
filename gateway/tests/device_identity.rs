#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Device identity on the embedded broker, with real MQTT connections (rumqttc): a device with a
//! credential from the registry connects; an unknown device, a revoked one, a wrong password, no
//! credentials, another device's client id and the gateway's own client id without its secret
//! are all refused; the configuration `gateway devices add` prints is what a real agent needs to
//! deliver through that broker; `mqtt.allow_anonymous` really does let anyone in; and a device
//! flooding the broker is held to `mqtt.device_publishes_per_s`.

use std::sync::Arc;
use std::time::Duration;

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use fieldsync_tests::{free_port, wait_for};
use gateway::clock::FixedClock;
use gateway::config::GatewayConfig;
use gateway::devices::{snippet, DeviceError};
use gateway::storage::Revoked;
use gateway::Gateway;
use proto::DeviceId;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet};

const DEADLINE: Duration = Duration::from_secs(20);

fn config(dir: &std::path::Path) -> GatewayConfig {
    let mut config = GatewayConfig {
        data_dir: dir.join("store"),
        ..GatewayConfig::default()
    };
    config.mqtt.listen = ([127, 0, 0, 1], free_port()).into();
    config.http.listen = ([127, 0, 0, 1], 0).into();
    config
}

async fn start(config: GatewayConfig) -> Gateway {
    let clock = Arc::new(FixedClock::at_rfc3339("2026-11-25T10:00:00Z"));
    let gateway = Gateway::start_with_clock(config, clock).await.unwrap();
    // Ready means the gateway's own client got in, with the secret it made at start.
    assert!(
        gateway.wait_ready(DEADLINE).await,
        "the gateway's own client never connected"
    );
    gateway
}

/// Whether a client with `client_id` and `credentials` gets a successful CONNACK from the
/// broker on `port` (false when the broker closes the connection instead, as rumqttd does on a
/// refused login).
async fn connects(port: u16, client_id: &str, credentials: Option<(&str, &str)>) -> bool {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    if let Some((username, password)) = credentials {
        options.set_credentials(username, password);
    }
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    match tokio::time::timeout(DEADLINE, eventloop.poll()).await {
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => ack.code == ConnectReturnCode::Success,
        Ok(Ok(other)) => panic!("unexpected first event {other:?}"),
        Ok(Err(_)) => false,
        Err(_) => panic!("the broker neither accepted nor refused {client_id}"),
    }
}

fn id(text: &str) -> DeviceId {
    DeviceId::new(text).unwrap()
}

#[tokio::test]
async fn only_registered_devices_with_their_own_secret_connect() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(config(dir.path())).await;
    let port = gateway.mqtt.1;
    let cab = gateway.devices.add(&id("cab-1"), false).unwrap();
    let other = gateway.devices.add(&id("cab-2"), false).unwrap();
    let secret = cab.secret.reveal();

    assert!(connects(port, "cab-1", Some(("cab-1", secret))).await);

    // Unknown, wrong password, no credentials at all.
    assert!(!connects(port, "cab-9", Some(("cab-9", secret))).await);
    assert!(!connects(port, "cab-1", Some(("cab-1", other.secret.reveal()))).await);
    assert!(!connects(port, "cab-1", Some(("cab-1", ""))).await);
    assert!(!connects(port, "cab-1", None).await);
    // A device's own secret under another's client id (which would take over its session and
    // the jobs queued for it), and another's username with one's own client id.
    assert!(!connects(port, "cab-2", Some(("cab-1", secret))).await);
    assert!(!connects(port, "cab-1", Some(("cab-2", other.secret.reveal()))).await);
    // The gateway's own client id, without the secret only the gateway holds.
    assert!(
        !connects(
            port,
            "fieldsync-gateway",
            Some(("fieldsync-gateway", secret))
        )
        .await
    );
    assert!(!connects(port, "fieldsync-broker-probe", None).await);

    // Revoked: refused from the next connection on; a new secret reinstates it, and only the
    // new one works.
    assert!(matches!(
        gateway.devices.revoke(&id("cab-1")),
        Ok(Revoked::Now)
    ));
    assert!(!connects(port, "cab-1", Some(("cab-1", secret))).await);
    assert!(matches!(
        gateway.devices.add(&id("cab-1"), false),
        Err(DeviceError::Exists { .. })
    ));
    let renewed = gateway.devices.add(&id("cab-1"), true).unwrap();
    assert!(renewed.replaced);
    assert!(!connects(port, "cab-1", Some(("cab-1", secret))).await);
    assert!(connects(port, "cab-1", Some(("cab-1", renewed.secret.reveal()))).await);
    assert!(connects(port, "cab-2", Some(("cab-2", other.secret.reveal()))).await);

    // No device may take one of the gateway's own client ids.
    assert!(matches!(
        gateway.devices.add(&id("fieldsync-gateway"), false),
        Err(DeviceError::Reserved(_))
    ));
    let listed = gateway.devices.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|device| device.revoked.is_none()));
    gateway.stop().await;
}

#[tokio::test]
async fn the_printed_configuration_is_what_an_agent_needs() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(config(dir.path())).await;
    let listen = ([127, 0, 0, 1], gateway.mqtt.1).into();
    let issued = gateway.devices.add(&id("hub-7"), false).unwrap();
    let text = snippet::agent_config(&issued, listen);

    let mut agent_config = AgentConfig::from_toml(&text).unwrap();
    assert_eq!(agent_config.device_id, "hub-7");
    assert_eq!(agent_config.mqtt.username.as_deref(), Some("hub-7"));
    assert_eq!(
        agent_config.mqtt.password.as_deref(),
        Some(issued.secret.reveal())
    );
    let signing = &agent_config.signing;
    assert_eq!(
        signing.key.as_ref().map(|key| key.reveal().to_owned()),
        Some(proto::signed::key_hex(&issued.signing_key.to_bytes()))
    );
    assert_eq!(
        signing.gateway_key.as_deref(),
        Some(proto::signed::key_hex(&gateway.signatures.public_key().to_bytes()).as_str())
    );
    agent_config.data_dir = dir.path().join("agent");
    agent_config.api.listen = ([127, 0, 0, 1], 0).into();
    agent_config.intervals.health_s = 1;
    agent_config.validate().unwrap();
    // The agent's health records reach the gateway's store through the authenticated broker.
    let agent = Agent::start(agent_config).await.unwrap();
    let store = gateway.store.clone();
    wait_for("the agent's first record", DEADLINE, || {
        let store = store.clone();
        async move { (store.record_count(&id("hub-7")).ok()? > 0).then_some(()) }
    })
    .await;
    // Registered means provisioned: its records are not flagged as from an unknown device.
    let devices = gateway.store.devices().unwrap();
    let (_, info, _) = devices
        .iter()
        .find(|(d, _, _)| d.as_str() == "hub-7")
        .unwrap();
    assert!(info.provisioned);
    agent.shutdown().await;
    gateway.stop().await;
}

#[tokio::test]
async fn allow_anonymous_lets_anyone_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.mqtt.allow_anonymous = true;
    let gateway = start(config).await;
    assert!(connects(gateway.mqtt.1, "anyone", None).await);
    gateway.stop().await;
}

#[test]
fn an_address_of_any_interface_is_left_for_the_operator_to_fill_in() {
    let issued = gateway::devices::Issued {
        device: id("cab-1"),
        secret: gateway::devices::Secret::generate().unwrap(),
        signing_key: proto::signed::SigningKey::from_bytes(&[1; 32]),
        gateway_key: proto::signed::SigningKey::from_bytes(&[2; 32]).verifying_key(),
        replaced: false,
    };
    let text = snippet::agent_config(&issued, ([0, 0, 0, 0], 1883).into());
    assert!(text.contains("host = \"GATEWAY-ADDRESS\""), "{text}");
    assert!(text.contains("port = 1883"), "{text}");
}

/// Connects `device` with `secret` to the broker on `port`, polling its event loop in a task;
/// counts the publishes it receives in `received`.
async fn session(
    port: u16,
    device: &str,
    secret: &str,
    received: Arc<std::sync::atomic::AtomicUsize>,
) -> AsyncClient {
    let mut options = MqttOptions::new(device, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials(device, secret)
        .set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::ConnAck(_)) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Incoming(Packet::Publish(_)) => {
                    received.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(DEADLINE, connected)
        .await
        .expect("no CONNACK in time")
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_device_is_held_to_its_publish_rate() {
    const RATE: f64 = 10.0;
    // Large messages, so that one read of the socket holds a few of them: the bucket is charged
    // after each read, so a read can overshoot it by what it holds.
    const PAYLOAD: usize = 8 * 1024;
    const PER_READ: f64 = 16.0;
    // Probe messages still on their way when the flood starts.
    const STRAGGLERS: f64 = 4.0;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.mqtt.device_publishes_per_s = RATE;
    let gateway = start(config).await;
    let port = gateway.mqtt.1;
    let flooder = gateway.devices.add(&id("hub-flood"), false).unwrap();
    let watcher = gateway.devices.add(&id("hub-watch"), false).unwrap();

    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watching = session(port, "hub-watch", watcher.secret.reveal(), seen.clone()).await;
    let topic = "fieldsync/v1/hub-flood/flood";
    watching
        .subscribe(topic, rumqttc::QoS::AtMostOnce)
        .await
        .unwrap();
    // The subscription is in place once the watcher's own probe message comes back.
    let probe = session(port, "hub-flood", flooder.secret.reveal(), Arc::default()).await;
    wait_for("the watcher's subscription", DEADLINE, || async {
        probe
            .publish(topic, rumqttc::QoS::AtMostOnce, false, vec![0u8; 16])
            .await
            .unwrap();
        (seen.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(())
    })
    .await;

    // The flood: 80 messages at once, four times the burst.
    let before = seen.load(std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    for _ in 0..80 {
        probe
            .publish(topic, rumqttc::QoS::AtMostOnce, false, vec![1u8; PAYLOAD])
            .await
            .unwrap();
    }
    let flood = || seen.load(std::sync::atomic::Ordering::SeqCst) - before;
    wait_for("half the flood to come through", DEADLINE, || async {
        (flood() >= 40).then_some(())
    })
    .await;
    // However fast the machine, no more than the burst, what the rate allows since, and one
    // read's overshoot have come through (all 80 would, at once, without the limit).
    let through = flood() as f64;
    let allowed = 2.0 * RATE + RATE * started.elapsed().as_secs_f64() + PER_READ + STRAGGLERS;
    assert!(
        through <= allowed,
        "{through} of the flood came through in {:?}; the rate allows {allowed}",
        started.elapsed()
    );
}
