//! The gateway's ingest, end to end over its embedded broker: how many records a second it
//! stores durably and acks when many devices send at once, and how long one batch takes from
//! publish to ack when the gateway is otherwise idle.
//!
//! `cargo bench -p gateway --bench ingest` (a plain `main`, not criterion: one run of a
//! throughput test says more than many samples of a tiny one). Options through the environment:
//! `DEVICES` (default 50), `BATCHES` per device (default 40), `RECORDS` per batch (default 100),
//! `WINDOW` batches in flight per device (default 4, as the agent's default), `PINGS` (default
//! 200).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fieldsync_tests::{free_port, telemetry, DeviceKeys, FakeDevice};
use gateway::config::GatewayConfig;
use gateway::Gateway;

const DEADLINE: Duration = Duration::from_secs(120);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let devices = env_or("DEVICES", 50);
    let batches = env_or("BATCHES", 40) as u64;
    let records = env_or("RECORDS", 100) as u64;
    let window = env_or("WINDOW", 4) as u64;
    let pings = env_or("PINGS", 200);

    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig {
        data_dir: dir.path().join("store"),
        ..GatewayConfig::default()
    };
    config.mqtt.listen = ([127, 0, 0, 1], free_port()).into();
    // Fake devices connect without credentials: device identity is tested in device_identity.rs.
    config.mqtt.allow_anonymous = true;
    config.http.listen = ([127, 0, 0, 1], 0).into();
    let gateway = Gateway::start(config).await.unwrap();
    assert!(
        gateway.wait_ready(DEADLINE).await,
        "the ingest never subscribed"
    );
    let port = gateway.mqtt.1;
    // Each device enrolled as `gateway devices add` does, signing its batches.
    let keys = |id: &str| {
        let issued = gateway
            .devices
            .add(&proto::DeviceId::new(id).unwrap(), true)
            .unwrap();
        DeviceKeys {
            device: issued.signing_key,
            gateway: issued.gateway_key,
        }
    };

    // Latency first, on an idle gateway: one device, one 100-record batch at a time.
    let device = FakeDevice::connect_signed("bench-ping", port, keys("bench-ping")).await;
    let mut latencies = Vec::with_capacity(pings);
    for i in 0..pings as u64 {
        let first = i * records + 1;
        let started = Instant::now();
        device
            .send(telemetry(first, first + records - 1, "B-1"))
            .await;
        device.wait_acked(first + records - 1, DEADLINE).await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let lag = gateway.metrics.render();
    let inside = lag
        .lines()
        .filter(|l| l.starts_with("fieldsync_ingest_lag_seconds_"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .collect::<Vec<_>>();
    let inside_ms = match inside.as_slice() {
        [sum, count] if *count > 0.0 => sum / count * 1000.0,
        _ => f64::NAN,
    };
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];

    // Throughput: every device sends its batches with up to `window` unacked at a time.
    let mut fleet = Vec::with_capacity(devices);
    for d in 0..devices {
        let id = format!("bench-{d}");
        fleet.push(FakeDevice::connect_signed(&id, port, keys(&id)).await);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for device in fleet {
        tasks.spawn(async move {
            for b in 0..batches {
                if b >= window {
                    device
                        .wait_acked((b - window + 1) * records, DEADLINE)
                        .await;
                }
                let first = b * records + 1;
                device
                    .send(telemetry(first, first + records - 1, "B-1"))
                    .await;
            }
            device.wait_acked(batches * records, DEADLINE).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let total = devices as u64 * batches * records;

    println!(
        "gateway ingest over the embedded broker ({} cores)",
        num_cpus()
    );
    println!(
        "latency, one device, {records}-record batch publish → stored → ack, {pings} batches: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(pct(1.0))
    );
    println!("of which inside the gateway (receipt → ack published), mean: {inside_ms:.2} ms");
    println!(
        "throughput, {devices} devices × {batches} batches × {records} records, window {window}: \
         {total} records in {:.2} s = {:.0} records/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    gateway.stop().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
