//! The gateway's memory when a fleet comes back after an outage: five agents, each holding a
//! backlog of 40,000 boiler samples, connect at once and drain 200,000 records into the gateway.
//! Target: the gateway's peak resident memory at most 256 MiB, and every record stored once.
//!
//! Runs the real `gateway` binary that cargo built beside this benchmark (its own process, the
//! embedded broker, a sled store in a temporary directory), and real agents (`Agent::start`, as
//! the `edge-agent` binary runs them) in this process, so that only the gateway's memory is
//! measured. Each agent is enrolled first (`gateway devices add`): it logs in to the broker and
//! signs its batches, and the gateway checks every signature, as in production. Reads the gateway's `VmRSS` (resident now) and `VmHWM` (its peak) from
//! `/proc/PID/status` every 20 ms: idle, while the backlog drains, and for a while after. Then it
//! stops the gateway and reads its store: each device's sequences 1..=N present, once. Linux only.
//!
//! `cargo bench -p gateway --bench burst`. Options through the environment: `AGENTS` (default 5),
//! `RECORDS` per agent (default 40,000), `AFTER_S` seconds sampled after the drain (default 30),
//! `GATEWAY_CONFIG` a TOML file of extra gateway settings (put before the bench's own),
//! `GATEWAY_BIN` another gateway binary to measure, `REGISTERED=1` to register each hub's boiler
//! on the asset register first (so every sample is folded into rollups and alerts, its times
//! ending now), and `MALLOC_ARENA_MAX` and the like pass through to the gateway's environment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use fieldsync_tests::http;
use fieldsync_tests::process::{memory, Memory};
use gateway::storage::{SledStore, Store};
use proto::DeviceId;

/// The gateway binary cargo built beside this benchmark; `GATEWAY_BIN` runs another (a copy, or
/// one built from another commit, to compare).
fn gateway_bin() -> String {
    std::env::var("GATEWAY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gateway").to_owned())
}

/// The agents' backlogs are filled as the edge agent's own benchmarks fill theirs.
#[allow(dead_code)] // its `block_on` is for the agent's benchmarks
#[path = "../../edge-agent/benches/common/mod.rs"]
mod backlog;

const SAMPLE_EVERY: Duration = Duration::from_millis(20);
const GIVE_UP: Duration = Duration::from_secs(600);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    // The agents run on the runtime the agent binary uses: two workers.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let agents = env_or("AGENTS", 5);
    let records = env_or("RECORDS", 40_000);
    let after = Duration::from_secs(env_or("AFTER_S", 30));
    let dir = tempfile::tempdir()?;
    let devices: Vec<String> = (0..agents).map(|a| format!("hub-burst-{a}")).collect();

    let registered = env_or("REGISTERED", 0) == 1;
    let filling = Instant::now();
    for device in &devices {
        if registered {
            // Recent enough for the boilers to fold: the backlog ends about now.
            let now = chrono::Utc::now().timestamp_millis();
            let first = now - i64::try_from(records)? * 60_000;
            let asset = format!("B-{device}");
            backlog::fill_for(&dir.path().join(device), records, Some(&asset), first).await?;
        } else {
            backlog::fill(&dir.path().join(device), records).await?;
        }
    }
    println!(
        "burst: {agents} agents × {records} telemetry records written to their outboxes in {:.1} s",
        filling.elapsed().as_secs_f64()
    );

    let mqtt_port = gateway::broker::free_local_port()?;
    let http_port = gateway::broker::free_local_port()?;
    let store_dir = dir.path().join("gateway");
    if registered {
        register_boilers(dir.path(), &store_dir, &devices)?;
    }
    let enrolled = enrol(&store_dir, &devices)?;
    let mut gateway = spawn_gateway(dir.path(), &store_dir, &devices, mqtt_port, http_port)?;
    let pid = gateway.id();
    wait_healthy(http_port).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = memory(pid)?;
    println!("gateway {}, pid {pid}", gateway_bin());
    println!("{:<40}  {:>9}  {:>9}", "", "VmRSS MiB", "VmHWM MiB");
    print_row("idle, subscribed", &idle);

    // The fleet reconnects: every agent starts at once, its backlog waiting.
    let started = Instant::now();
    let mut fleet = Vec::new();
    for (device, mut config) in devices.iter().zip(enrolled) {
        config.data_dir = dir.path().join(device);
        config.mqtt.host = "127.0.0.1".into();
        config.mqtt.port = mqtt_port;
        config.api.listen = ([127, 0, 0, 1], 0).into();
        config.outbox.budget_bytes = backlog::BUDGET_BYTES;
        config.intervals.health_s = 3600;
        config.validate()?;
        fleet.push(Agent::start(config).await?);
    }
    let mut peak_rss = 0;
    loop {
        peak_rss = peak_rss.max(memory(pid)?.rss_kib);
        let mut done = true;
        for agent in &fleet {
            let stats = agent.intake().outbox().stats()?;
            done &= stats.acked_through >= records && stats.depth == 0;
        }
        if done {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < GIVE_UP,
            "the backlog did not drain in time"
        );
        anyhow::ensure!(gateway.try_wait()?.is_none(), "the gateway exited");
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let drained = started.elapsed();
    let at_drain = memory(pid)?;
    print_row(
        "draining (peak of samples; VmHWM)",
        &Memory {
            rss_kib: peak_rss.max(at_drain.rss_kib),
            hwm_kib: at_drain.hwm_kib,
        },
    );
    let metrics = http::request(
        "GET",
        &format!("http://127.0.0.1:{http_port}/metrics"),
        None,
        None,
        Vec::new(),
    )
    .await
    .body;

    let quiet = Instant::now();
    let mut reported = Vec::new();
    for mark in [5, 10, 30, 60, 120] {
        let mark = Duration::from_secs(mark);
        if mark > after {
            break;
        }
        while quiet.elapsed() < mark {
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        let now = memory(pid)?;
        print_row(&format!("{} s after the drain", mark.as_secs()), &now);
        reported.push(mark);
    }
    if reported.last() != Some(&after) && !after.is_zero() {
        while quiet.elapsed() < after {
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        print_row(
            &format!("{} s after the drain", after.as_secs()),
            &memory(pid)?,
        );
    }
    let total = agents * records;
    println!(
        "drained {total} records in {:.2} s from the agents' start ({:.0} records/s)",
        drained.as_secs_f64(),
        total as f64 / drained.as_secs_f64()
    );
    for name in [
        "fieldsync_records_stored_total",
        "fieldsync_duplicate_records_total",
        "fieldsync_quarantined_total",
        "fieldsync_messages_in_total",
    ] {
        if let Some(line) = metrics.lines().find(|l| l.starts_with(name)) {
            println!("gateway metric: {line}");
        }
    }

    let stored = metric(&metrics, "fieldsync_records_stored_total");
    anyhow::ensure!(
        stored == Some(total),
        "the gateway stored {stored:?} records, not {total}"
    );

    for agent in fleet {
        agent.shutdown().await;
    }
    stop(&mut gateway).await?;
    check_stored_once(&store_dir, &devices, records)?;
    println!("store: every device holds sequences 1..={records}, each once");
    Ok(())
}

/// Registers each device's boiler (`B-{device}`, read by that device) with `gateway
/// import-assets`, before the gateway starts on `store_dir`.
fn register_boilers(dir: &Path, store_dir: &Path, devices: &[String]) -> anyhow::Result<()> {
    let mut csv =
        String::from("asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub\n");
    for (i, device) in devices.iter().enumerate() {
        csv.push_str(&format!(
            "B-{device},{},\"{} Test Road, UB10 8BE\",Vaillant,ecoTEC plus 832,32,2019-03-01,yes,yes,{device}\n",
            100_000_000 + i,
            i + 1
        ));
    }
    let file = dir.join("assets.csv");
    std::fs::write(&file, csv)?;
    let status = Command::new(gateway_bin())
        .arg("--data-dir")
        .arg(store_dir)
        .arg("import-assets")
        .arg(&file)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "gateway import-assets failed: {status}");
    Ok(())
}

/// Issues each device its credential as an operator does (`gateway devices add`, the gateway
/// stopped), so that the agents log in and sign as real ones: the configuration each was given.
fn enrol(store_dir: &Path, devices: &[String]) -> anyhow::Result<Vec<AgentConfig>> {
    devices
        .iter()
        .map(|device| {
            let issued = Command::new(gateway_bin())
                .arg("--data-dir")
                .arg(store_dir)
                .args(["devices", "add", device, "--replace"])
                .env("RUST_LOG", "warn")
                .output()?;
            anyhow::ensure!(
                issued.status.success(),
                "gateway devices add {device} failed: {}",
                String::from_utf8_lossy(&issued.stderr)
            );
            Ok(AgentConfig::from_toml(&String::from_utf8_lossy(
                &issued.stdout,
            ))?)
        })
        .collect()
}

/// Starts the gateway binary on a store in `store_dir`, the devices provisioned, with the
/// settings of `GATEWAY_CONFIG` appended, if set.
fn spawn_gateway(
    dir: &Path,
    store_dir: &Path,
    devices: &[String],
    mqtt_port: u16,
    http_port: u16,
) -> anyhow::Result<Child> {
    let quoted: Vec<String> = devices.iter().map(|d| format!("{d:?}")).collect();
    let mut config = format!("[devices]\nprovisioned = [{}]\n", quoted.join(", "));
    if let Ok(extra) = std::env::var("GATEWAY_CONFIG") {
        config = format!("{}\n{config}", std::fs::read_to_string(&extra)?);
    }
    let config_path: PathBuf = dir.join("gateway.toml");
    std::fs::write(&config_path, config)?;
    let child = Command::new(gateway_bin())
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(store_dir)
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(child)
}

/// Waits until the gateway says it is subscribed.
async fn wait_healthy(http_port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{http_port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http::try_request("GET", &url, None, None, Vec::new()).await {
            if response.status == 200 {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the gateway never became healthy"
        );
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// SIGTERM, then waits for the graceful exit (the store closed).
async fn stop(gateway: &mut Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the gateway did not stop");
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    Ok(())
}

/// Every device's records 1..=`records` are in the store, and nothing else.
fn check_stored_once(store_dir: &Path, devices: &[String], records: u64) -> anyhow::Result<()> {
    let store = SledStore::open(store_dir, 8 * 1024 * 1024)?;
    for device in devices {
        let id = DeviceId::new(device.as_str())?;
        let count = store.record_count(&id)?;
        anyhow::ensure!(
            count == records,
            "{device}: {count} records stored, not {records}"
        );
        let seqs: Vec<u64> = store
            .records(&id, 0, usize::MAX)?
            .iter()
            .map(|s| s.record.seq)
            .collect();
        anyhow::ensure!(
            seqs.iter().copied().eq(1..=records),
            "{device}: the stored sequences are not 1..={records}, each once"
        );
    }
    Ok(())
}

/// A counter's value from the gateway's `/metrics` text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn print_row(what: &str, memory: &Memory) {
    println!(
        "{what:<40}  {:>9.1}  {:>9.1}",
        memory.rss_kib as f64 / 1024.0,
        memory.hwm_kib as f64 / 1024.0
    );
}
