#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The external broker as docs/OPERATIONS.md configures it: a Mosquitto of the test's own on the
//! very files the documentation shows (`docs/mosquitto/fieldsync.conf` and `fieldsync.acl`), with
//! a password file made by `mosquitto_passwd -b`. A device delivers its own batches through it to
//! a gateway logged in as its own user; it can neither publish as another device nor read
//! another device's acks; a wrong password is refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldsync_tests::system::{GatewayProcess, PrivateMosquitto, DEADLINE};
use fieldsync_tests::{http, telemetry, wait_for};
use proto::{Ack, DeviceId, Envelope, TopicKind, MAX_MESSAGE_BYTES, SCHEMA_VERSION};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

/// Where the documented configuration expects its password and ACL files.
const DOCUMENTED_FILES: &str = "/etc/mosquitto/fieldsync.";

/// The gateway's user in the documented ACL.
const GATEWAY_USER: &str = "fieldsync-gateway";

fn documented(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/mosquitto")
        .join(file)
}

/// Writes the password file with `mosquitto_passwd -b`, one user at a time; `None` when the tool
/// is not installed.
fn password_file(path: &Path, users: &[(&str, &str)]) -> Option<()> {
    std::fs::write(path, "").ok()?;
    for (user, password) in users {
        let status = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(path)
            .args([user, password])
            .status()
            .ok()?;
        assert!(status.success(), "mosquitto_passwd -b failed for {user}");
    }
    Some(())
}

/// The documented configuration with its two files moved into `dir`, behind a listener on
/// 127.0.0.1:`port`; nothing else of it changed.
fn documented_config(dir: &Path, port: u16) -> String {
    let text = std::fs::read_to_string(documented("fieldsync.conf")).unwrap();
    assert_eq!(
        text.matches(DOCUMENTED_FILES).count(),
        2,
        "the documented configuration names its password file and ACL file"
    );
    let moved = text.replace(DOCUMENTED_FILES, &format!("{}/fieldsync.", dir.display()));
    format!("listener {port} 127.0.0.1\npersistence false\n{moved}")
}

/// A device's MQTT session logged in as `device` with `password`, recording every message it
/// receives (its topic) and the highest ack on its own `ack` topic.
struct Device {
    id: DeviceId,
    client: AsyncClient,
    received: Arc<Mutex<Vec<String>>>,
    acked: watch::Receiver<u64>,
}

impl Device {
    /// Connects and subscribes to `filters` (its own `ack` and whatever else the test tries).
    async fn connect(port: u16, device: &str, password: &str, filters: &[String]) -> Self {
        let id = DeviceId::new(device).unwrap();
        let mut options = MqttOptions::new(device, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_credentials(device, password);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let (acked_tx, acked) = watch::channel(0);
        let (subscribed_tx, mut subscribed) = watch::channel(false);
        let own_ack = id.topic(TopicKind::Ack);
        let log = received.clone();
        let subscriber = client.clone();
        let filters = filters.to_vec();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for filter in &filters {
                            let _ = subscriber.subscribe(filter, QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subscribed_tx.send_modify(|done| *done = true);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if publish.topic == own_ack {
                            if let Ok(ack) =
                                proto::decode::<Ack>(&publish.payload, MAX_MESSAGE_BYTES)
                            {
                                acked_tx.send_modify(|thru| *thru = (*thru).max(ack.thru));
                            }
                        }
                        log.lock().unwrap().push(publish.topic.clone());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(DEADLINE, subscribed.wait_for(|done| *done))
            .await
            .expect("the device could not subscribe in time")
            .unwrap();
        Self {
            id,
            client,
            received,
            acked,
        }
    }

    /// Publishes records `from..=to` as a batch of device `as_device` on `as_device`'s `up`.
    async fn publish_as(&self, as_device: &str, from: u64, to: u64) {
        let dev = DeviceId::new(as_device).unwrap();
        let envelope = Envelope {
            v: SCHEMA_VERSION,
            dev: dev.clone(),
            sent: 1_764_000_000_000,
            recs: telemetry(from, to, "boiler-acl"),
            boot: None,
            mono: None,
        };
        let payload = proto::encode(&envelope, MAX_MESSAGE_BYTES).unwrap();
        self.client
            .publish(dev.topic(TopicKind::Up), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    async fn wait_acked(&self, seq: u64) {
        let mut acked = self.acked.clone();
        tokio::time::timeout(DEADLINE, acked.wait_for(|thru| *thru >= seq))
            .await
            .unwrap_or_else(|_| panic!("{} was not acked through {seq}", self.id))
            .unwrap();
    }

    /// The topics of every message received so far.
    fn topics(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// The broker's answer to `user` with `password`: its CONNACK's code, or `None` if it closed
/// the connection without one.
async fn connack(port: u16, user: &str, password: &str) -> Option<ConnectReturnCode> {
    let mut options = MqttOptions::new(user, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials(user, password);
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    match tokio::time::timeout(DEADLINE, eventloop.poll()).await {
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => Some(ack.code),
        Ok(Ok(other)) => panic!("unexpected first event {other:?}"),
        Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => Some(code),
        Ok(Err(_)) => None,
        Err(_) => panic!("the broker neither accepted nor refused {user}"),
    }
}

/// Device ids the gateway has stored records from, with how far each is acked.
async fn stored_devices(gateway: &GatewayProcess) -> Vec<(String, u64)> {
    let devices = http::get(
        &gateway.url("/api/v1/devices"),
        Some(gateway.admin_token.as_str()),
    )
    .await;
    assert_eq!(devices.status, 200, "{}", devices.body);
    let listed = devices.json();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|device| {
            (
                device["id"].as_str().unwrap().to_owned(),
                device["acked_through"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_mosquitto_confines_each_device_to_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway_pw, cab1_pw, cab2_pw) = ("gateway-secret-1", "cab-1-secret", "cab-2-secret");
    let users = [
        (GATEWAY_USER, gateway_pw),
        ("cab-1", cab1_pw),
        ("cab-2", cab2_pw),
    ];
    if password_file(&dir.path().join("fieldsync.passwd"), &users).is_none() {
        eprintln!("SKIPPED: no mosquitto_passwd on this machine (apt-get install mosquitto)");
        return;
    }
    std::fs::copy(
        documented("fieldsync.acl"),
        dir.path().join("fieldsync.acl"),
    )
    .unwrap();
    let mosquitto_dir = dir.path().to_owned();
    let Some(mosquitto) =
        PrivateMosquitto::start_with(dir.path(), |port| documented_config(&mosquitto_dir, port))
            .await
    else {
        eprintln!("SKIPPED: no mosquitto binary on this machine (apt-get install mosquitto)");
        return;
    };
    // Ready means the broker granted the gateway its subscriptions under the ACL.
    let mut gateway = GatewayProcess::start_with_broker_login(
        dir.path(),
        mosquitto.port,
        GATEWAY_USER,
        gateway_pw,
    )
    .await;

    // A wrong password, and a device with no password entry, are refused.
    assert_eq!(
        connack(mosquitto.port, "cab-1", cab2_pw).await,
        Some(ConnectReturnCode::NotAuthorized),
        "a wrong password"
    );
    assert_eq!(
        connack(mosquitto.port, "cab-3", cab1_pw).await,
        Some(ConnectReturnCode::NotAuthorized),
        "an unknown device"
    );

    // cab-1 also subscribes to cab-2's acks, to every device's acks and to cab-2's jobs: the
    // broker grants the subscriptions but delivers nothing the ACL does not let it read.
    let spying = [
        "fieldsync/v1/cab-1/ack".to_owned(),
        "fieldsync/v1/cab-2/ack".to_owned(),
        "fieldsync/v1/+/ack".to_owned(),
        "fieldsync/v1/cab-2/down".to_owned(),
    ];
    let cab1 = Device::connect(mosquitto.port, "cab-1", cab1_pw, &spying).await;
    let cab2 = Device::connect(
        mosquitto.port,
        "cab-2",
        cab2_pw,
        &["fieldsync/v1/cab-2/ack".to_owned()],
    )
    .await;

    // A device's own batch is stored and acked.
    cab1.publish_as("cab-1", 1, 3).await;
    cab1.wait_acked(3).await;

    // cab-1 forges a batch as cab-2, then sends one of its own on the same connection: once its
    // own is acked, the forgery (had the broker passed it) would have reached the gateway first.
    cab1.publish_as("cab-2", 1, 5).await;
    cab1.publish_as("cab-1", 4, 4).await;
    cab1.wait_acked(4).await;
    let stored = stored_devices(&gateway).await;
    assert_eq!(
        stored,
        vec![("cab-1".to_owned(), 4)],
        "only cab-1's own batches"
    );
    let quarantine = http::get(
        &gateway.url("/api/v1/quarantine"),
        Some(gateway.admin_token.as_str()),
    )
    .await;
    assert_eq!(
        quarantine.json(),
        serde_json::json!([]),
        "nothing reached it"
    );

    // cab-2's own batch is acked to cab-2; cab-1, whose next ack the gateway sends after it,
    // receives its own ack and never cab-2's.
    cab2.publish_as("cab-2", 1, 2).await;
    cab2.wait_acked(2).await;
    cab1.publish_as("cab-1", 5, 5).await;
    cab1.wait_acked(5).await;
    wait_for("the devices' listing to show both", DEADLINE, || async {
        let stored = stored_devices(&gateway).await;
        (stored.len() == 2).then_some(())
    })
    .await;
    let seen = cab1.topics();
    assert!(
        seen.iter().all(|topic| topic == "fieldsync/v1/cab-1/ack"),
        "cab-1 read another device's messages: {seen:?}"
    );
    assert!(cab2
        .topics()
        .iter()
        .all(|topic| topic == "fieldsync/v1/cab-2/ack"));

    gateway.stop();
}
