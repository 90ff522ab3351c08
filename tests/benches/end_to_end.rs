//! End-to-end ingest as a ratio measured in one run: devices → broker → gateway (decoded,
//! deduplicated, stored durably, acked), against the same messages through the same broker with
//! the same MQTT client answered by a bare echo that acks without storing. The ratio is the share
//! of the broker's own capacity that the gateway keeps; the goal is ≥ 0.5 with one-record
//! batches.
//!
//! `cargo bench -p fieldsync-tests --bench end_to_end`. It runs on the embedded broker, and on
//! the Mosquitto at `FIELDSYNC_TEST_MQTT_URL` (default `mqtt://127.0.0.1:1883`) when one answers
//! there. Options through the environment: `DEVICES` (default 20), `RECORDS_1` one-record batches
//! per device (default 1000), `BATCHES_100` hundred-record batches per device (default 50),
//! `WINDOW` batches in flight per device (default 4, the agent's default).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fieldsync_tests::{free_port, system::unique_id, telemetry, DeviceKeys, FakeDevice};
use gateway::config::GatewayConfig;
use gateway::Gateway;
use proto::{Ack, Envelope, MAX_MESSAGE_BYTES, SCHEMA_VERSION};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const DEADLINE: Duration = Duration::from_secs(300);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The workload: `devices` devices, each sending `batches` batches of `records` records with up
/// to `window` unacked.
#[derive(Debug, Clone, Copy)]
struct Load {
    devices: u64,
    batches: u64,
    records: u64,
    window: u64,
}

/// Runs `load` against whatever answers acks on `port`; records per second. With `gateway`,
/// each device is enrolled by it and signs, as a real one does.
async fn drive(host: &str, port: u16, load: Load, gateway: Option<&Gateway>) -> f64 {
    let mut fleet = Vec::new();
    for _ in 0..load.devices {
        let id = unique_id("e2e");
        let keys = gateway.map(|gateway| {
            let issued = gateway
                .devices
                .add(&proto::DeviceId::new(id.as_str()).unwrap(), true)
                .unwrap();
            DeviceKeys {
                device: issued.signing_key,
                gateway: issued.gateway_key,
            }
        });
        fleet.push(FakeDevice::connect_to(&id, host, port, keys).await);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for device in fleet {
        tasks.spawn(async move {
            for b in 0..load.batches {
                if b >= load.window {
                    device
                        .wait_acked((b - load.window + 1) * load.records, DEADLINE)
                        .await;
                }
                let first = b * load.records + 1;
                device
                    .send(telemetry(first, first + load.records - 1, "B-1"))
                    .await;
            }
            device
                .wait_acked(load.batches * load.records, DEADLINE)
                .await;
        });
    }
    while tasks.join_next().await.is_some() {}
    (load.devices * load.batches * load.records) as f64 / started.elapsed().as_secs_f64()
}

/// A bare responder: the gateway's MQTT client and subscription, acking each batch at once
/// without storing anything.
async fn start_echo(host: &str, port: u16) -> tokio::task::JoinHandle<()> {
    let mut options = MqttOptions::new(unique_id("echo"), host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(MAX_MESSAGE_BYTES * 2, MAX_MESSAGE_BYTES * 2);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        let mut acked: HashMap<String, u64> = HashMap::new();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .subscribe("fieldsync/v1/+/up", QoS::AtLeastOnce)
                        .await
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let Ok(envelope) =
                        proto::decode::<Envelope>(&publish.payload, MAX_MESSAGE_BYTES)
                    else {
                        continue;
                    };
                    let top = envelope.recs.iter().map(|r| r.seq).max().unwrap_or(0);
                    let thru = acked.entry(envelope.dev.to_string()).or_default();
                    *thru = (*thru).max(top);
                    let ack = Ack {
                        v: SCHEMA_VERSION,
                        thru: *thru,
                        rej: Vec::new(),
                    };
                    let topic = envelope.dev.topic(proto::TopicKind::Ack).to_string();
                    let payload = proto::encode(&ack, MAX_MESSAGE_BYTES).unwrap();
                    client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await
                        .unwrap();
                }
                Ok(_) => {}
                Err(e) => panic!("the echo lost the broker: {e}"),
            }
        }
    });
    tokio::time::timeout(DEADLINE, subscribed)
        .await
        .expect("the echo could not subscribe")
        .unwrap();
    task
}

/// A gateway on `mqtt` (embedded broker on this port, or an external broker by URL).
async fn start_gateway(dir: &std::path::Path, external: Option<&str>) -> Gateway {
    let mut config = GatewayConfig {
        data_dir: dir.join(unique_id("store")),
        ..GatewayConfig::default()
    };
    match external {
        Some(url) => {
            config.mqtt.url = Some(url.to_owned());
            config.mqtt.client_id = unique_id("gateway");
        }
        None => {
            config.mqtt.listen = ([127, 0, 0, 1], free_port()).into();
            // The bench's devices connect without credentials.
            config.mqtt.allow_anonymous = true;
        }
    }
    config.http.listen = ([127, 0, 0, 1], 0).into();
    let gateway = Gateway::start(config).await.unwrap();
    assert!(
        gateway.wait_ready(DEADLINE).await,
        "the ingest never subscribed"
    );
    gateway
}

/// One broker: both batch sizes, baseline then gateway; prints one line per batch size.
async fn compare(name: &str, external: Option<&str>, loads: &[Load]) {
    let dir = tempfile::tempdir().unwrap();
    let (host, port) = match external {
        Some(url) => {
            let rest = url.trim_start_matches("mqtt://");
            let (host, port) = rest.rsplit_once(':').unwrap();
            (host.to_owned(), port.parse().unwrap())
        }
        None => {
            let port = free_port();
            gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES)
                .unwrap();
            ("127.0.0.1".to_owned(), port)
        }
    };
    for load in loads {
        let echo = start_echo(&host, port).await;
        let bare = drive(&host, port, *load, None).await;
        echo.abort();
        let gateway = start_gateway(dir.path(), external).await;
        let (gateway_host, gateway_port) = match external {
            Some(_) => (host.clone(), port),
            None => ("127.0.0.1".to_owned(), gateway.mqtt.1),
        };
        let stored = drive(&gateway_host, gateway_port, *load, Some(&gateway)).await;
        gateway.stop().await;
        println!(
            "{name}, {} devices × {} batches × {} record(s), window {}: broker alone {:.0} rec/s, \
             through the gateway {:.0} rec/s, ratio {:.2}",
            load.devices,
            load.batches,
            load.records,
            load.window,
            bare,
            stored,
            stored / bare
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let devices = env_or("DEVICES", 20);
    let window = env_or("WINDOW", 4);
    let loads = [
        Load {
            devices,
            batches: env_or("RECORDS_1", 1000),
            records: 1,
            window,
        },
        Load {
            devices,
            batches: env_or("BATCHES_100", 50),
            records: 100,
            window,
        },
    ];
    println!(
        "end-to-end ingest ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    compare("embedded broker", None, &loads).await;
    let url = std::env::var("FIELDSYNC_TEST_MQTT_URL")
        .unwrap_or_else(|_| "mqtt://127.0.0.1:1883".to_owned());
    let reachable = std::net::TcpStream::connect(url.trim_start_matches("mqtt://")).is_ok();
    if reachable {
        compare("Mosquitto", Some(&url), &loads).await;
    } else {
        println!("Mosquitto: none at {url}; skipped");
    }
}
