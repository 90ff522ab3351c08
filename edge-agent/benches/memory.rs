//! Resident memory of the real `edge-agent` binary: idle (started, connected, empty outbox), and
//! holding a 100,000-record telemetry backlog with the link down, and while it drains it. Target:
//! at most 16 MiB idle.
//!
//! Runs the binary that cargo built beside this benchmark (the `bench` profile: the release
//! profile without stripping, which does not change what is resident), against the embedded
//! broker and the test gateway running in this process, and reads `VmRSS` (resident now) and
//! `VmHWM` (the peak) from `/proc/PID/status`: idle after a few seconds connected, and every
//! 20 ms while draining. Linux only.
//!
//! `cargo bench -p edge-agent --bench memory`. The stripped release binary's size is measured
//! apart: `cargo build --release -p edge-agent && stat -c %s target/release/edge-agent`.

mod common;

use fieldsync_tests::process::memory;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fieldsync_tests::http;
use fieldsync_tests::test_gateway::{LinkProxy, TestGateway};
use proto::MAX_MESSAGE_BYTES;

const BIN: &str = env!("CARGO_BIN_EXE_edge-agent");
const RECORDS: u64 = 100_000;
/// How long the idle agent runs, connected, before its memory is read.
const SETTLE: Duration = Duration::from_secs(5);
const GIVE_UP: Duration = Duration::from_secs(300);

fn main() -> anyhow::Result<()> {
    common::block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = gateway::broker::free_local_port()?;
    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES)?;
    let gateway = TestGateway::start(port).await;
    println!(
        "memory: {BIN} ({:.1} MiB, not stripped)",
        mib(std::fs::metadata(BIN)?.len() / 1024)
    );
    println!("scenario                          VmRSS MiB  VmHWM MiB");

    // Idle: started, connected, nothing to send.
    let device = "hub-idle";
    let mut agent = spawn(device, &dir.path().join(device), port)?;
    wait(&gateway, device, |g| {
        g.states(device).last().is_some_and(|s| s.online)
    })
    .await?;
    tokio::time::sleep(SETTLE).await;
    let idle = memory(agent.id())?;
    println!(
        "{:<32}  {:>9.1}  {:>9.1}",
        "idle, connected",
        mib(idle.rss_kib),
        mib(idle.hwm_kib)
    );
    stop(&mut agent).await?;

    // A backlog: opened with the link down, then drained.
    let device = "hub-backlog";
    let data_dir = dir.path().join(device);
    common::fill(&data_dir, RECORDS).await?;
    let link = LinkProxy::start(port).await;
    link.cut();
    let api_port = gateway::broker::free_local_port()?;
    let mut agent = spawn_on(device, &data_dir, link.port, api_port)?;
    wait_api(api_port).await?;
    let opened = memory(agent.id())?;
    println!(
        "{:<32}  {:>9.1}  {:>9.1}",
        format!("{RECORDS} held, link down"),
        mib(opened.rss_kib),
        mib(opened.hwm_kib)
    );
    let started = Instant::now();
    link.restore();
    let mut peak_rss = 0;
    while gateway.acked_through(device) < RECORDS {
        anyhow::ensure!(started.elapsed() < GIVE_UP, "not drained in time");
        peak_rss = peak_rss.max(memory(agent.id())?.rss_kib);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    let draining = memory(agent.id())?;
    println!(
        "{:<32}  {:>9.1}  {:>9.1}",
        format!("draining {RECORDS} (peak sampled)"),
        mib(peak_rss.max(draining.rss_kib)),
        mib(draining.hwm_kib)
    );
    tokio::time::sleep(SETTLE).await;
    let after = memory(agent.id())?;
    println!(
        "{:<32}  {:>9.1}  {:>9.1}",
        "idle again, after the drain",
        mib(after.rss_kib),
        mib(after.hwm_kib)
    );
    println!(
        "(the binary drained the backlog {:.1} s after it started, opening included)",
        drained.as_secs_f64()
    );
    stop(&mut agent).await?;
    Ok(())
}

/// Starts the binary for `device`, its API on a free port.
fn spawn(device: &str, data_dir: &Path, mqtt_port: u16) -> anyhow::Result<Child> {
    spawn_on(
        device,
        data_dir,
        mqtt_port,
        gateway::broker::free_local_port()?,
    )
}

/// Starts the binary for `device`, its API on `api_port`.
fn spawn_on(device: &str, data_dir: &Path, mqtt_port: u16, api_port: u16) -> anyhow::Result<Child> {
    let child = Command::new(BIN)
        .envs(fieldsync_tests::test_gateway::keys_for(device).agent_env())
        .args(["--device-id", device, "--data-dir"])
        .arg(data_dir)
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
        .args(["--outbox-budget-bytes", &common::BUDGET_BYTES.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(child)
}

/// SIGTERM, then waits for the graceful exit.
async fn stop(agent: &mut Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the agent did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until the agent's API answers (its outbox is open by then).
async fn wait_api(port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/v1/status");
    let deadline = Instant::now() + GIVE_UP;
    while http::try_request("GET", &url, None, None, Vec::new())
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "the agent's API never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn wait(
    gateway: &TestGateway,
    what: &str,
    done: impl Fn(&TestGateway) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + GIVE_UP;
    while !done(gateway) {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
