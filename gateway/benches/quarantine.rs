//! What a flood of bad messages costs the gateway: resident memory and disk after 2,000 small
//! malformed messages, then after 1,900 of nearly 256 KiB, then while staff read the newest 1,000
//! quarantine entries; and how many log lines the flood wrote. The gateway runs as its own
//! process (the release binary), so its memory is measured apart from the sender's.
//!
//! `cargo bench -p gateway --bench quarantine` (a plain `main` that prints its figures). Options
//! through the environment: `SMALL` (default 2000) and `LARGE` (default 1900) messages, and
//! `MQTT_PORT`: the port of an external broker on 127.0.0.1 (Mosquitto, say) to use instead of
//! the embedded one, which tells the gateway's own memory from the embedded broker's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fieldsync_tests::{free_port, http, wait_for, DeviceKeys, FakeDevice};

const DEADLINE: Duration = Duration::from_secs(180);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident and peak resident memory of `pid`, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let memory = fieldsync_tests::process::memory(pid).unwrap();
    (memory.rss_mib(), memory.hwm_mib())
}

/// Bytes allocated on disk under `dir`, in MiB.
fn disk_mib(dir: &Path) -> f64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total as f64 / (1024.0 * 1024.0)
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|log| log.lines().count())
        .unwrap_or(0)
}

async fn metric(http_port: u16, name: &str) -> u64 {
    let url = format!("http://127.0.0.1:{http_port}/metrics");
    let text = http::get(&url, None).await.body;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

struct Sample {
    what: String,
    rss: f64,
    peak: f64,
    disk: f64,
    log_lines: usize,
}

fn sample(what: &str, gateway: &Child, data: &Path, log: &Path) -> Sample {
    let (rss, peak) = memory_mib(gateway.id());
    Sample {
        what: what.to_owned(),
        rss,
        peak,
        disk: disk_mib(data),
        log_lines: lines(log),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let small = env_or("SMALL", 2000) as u64;
    let large = env_or("LARGE", 1900) as u64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let log = dir.path().join("gateway.log");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nclient_id = \"fieldsync-bench-{}\"\n",
            std::process::id()
        ),
    )
    .unwrap();
    // The quarantine is an admin's to read; the token is issued before the gateway holds the store.
    let issued = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--config", config.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["staff", "add", "bench", "--role", "admin"])
        .output()
        .unwrap();
    assert!(issued.status.success(), "gateway staff add failed");
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_owned();
    let external = std::env::var("MQTT_PORT")
        .ok()
        .and_then(|port| port.parse::<u16>().ok());
    let (mqtt_port, http_port) = (external.unwrap_or_else(free_port), free_port());
    let broker = match external {
        Some(port) => ["--mqtt-url".to_owned(), format!("mqtt://127.0.0.1:{port}")],
        None => ["--mqtt-listen".to_owned(), format!("127.0.0.1:{mqtt_port}")],
    };
    // The fake devices connect without credentials, to the embedded broker.
    let anonymous = external.is_none().then_some("--mqtt-allow-anonymous");
    // The flooding device is enrolled, so that its garbage is signed and judged on what is
    // inside, as a genuine device's bad batches are.
    let flooder = format!("bench-flood-{}", std::process::id());
    let issued = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--config", config.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["devices", "add", &flooder])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(issued.status.success(), "{issued:?}");
    let keys = DeviceKeys::from_agent_config(&String::from_utf8_lossy(&issued.stdout)).unwrap();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--config", config.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(&broker)
        .args(anonymous)
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .env("RUST_LOG", "info,rumqttd=warn")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for("the gateway's health check", DEADLINE, || async {
        let url = format!("http://127.0.0.1:{http_port}/healthz");
        let response = http::try_request("GET", &url, None, None, Vec::new()).await;
        matches!(response, Ok(response) if response.status == 200).then_some(())
    })
    .await;
    let device = FakeDevice::connect_signed(&flooder, mqtt_port, keys).await;
    let mut samples = vec![sample("started", &gateway, &data, &log)];

    let started = Instant::now();
    for i in 0..small {
        device
            .send_up(format!("\u{ff}not cbor {i:0>120}").into_bytes())
            .await;
    }
    wait_for("the small messages quarantined", DEADLINE, || async {
        (metric(http_port, "fieldsync_quarantined_total").await >= small).then_some(())
    })
    .await;
    let small_took = started.elapsed();
    samples.push(sample(
        &format!("after {small} small"),
        &gateway,
        &data,
        &log,
    ));

    let started = Instant::now();
    let payload = vec![0xff_u8; proto::MAX_MESSAGE_BYTES - 1024];
    for _ in 0..large {
        device.send_up(payload.clone()).await;
    }
    wait_for("the large messages quarantined", DEADLINE, || async {
        (metric(http_port, "fieldsync_quarantined_total").await >= small + large).then_some(())
    })
    .await;
    let large_took = started.elapsed();
    samples.push(sample(
        &format!("after {large} of {} KiB", payload.len() / 1024),
        &gateway,
        &data,
        &log,
    ));

    let started = Instant::now();
    let url = format!("http://127.0.0.1:{http_port}/api/v1/quarantine?limit=1000");
    let listing = http::get(&url, Some(&token)).await;
    let read_took = started.elapsed();
    assert_eq!(listing.status, 200);
    let entries = listing.json().as_array().map_or(0, Vec::len);
    samples.push(sample(
        &format!("after reading {entries} entries"),
        &gateway,
        &data,
        &log,
    ));
    let entries_held = metric(http_port, "fieldsync_quarantine_entries").await;
    let bytes_held = metric(http_port, "fieldsync_quarantine_bytes").await;
    let evicted = metric(http_port, "fieldsync_quarantine_evicted_total").await;

    println!("| point | RSS MiB | peak RSS MiB | disk MiB | log lines |");
    println!("| --- | --- | --- | --- | --- |");
    for s in &samples {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {} |",
            s.what, s.rss, s.peak, s.disk, s.log_lines
        );
    }
    println!(
        "small messages quarantined in {small_took:.2?}, large in {large_took:.2?}; \
         listing {entries} entries took {read_took:.2?} ({} KiB of JSON)",
        listing.body.len() / 1024
    );
    println!("quarantine holds {entries_held} entries, {bytes_held} bytes; evicted {evicted}");
    gateway.kill().unwrap();
    gateway.wait().unwrap();
}
