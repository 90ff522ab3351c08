//! How long an agent takes to drain a 100,000-record telemetry backlog (about 70 days of
//! one-minute boiler samples) to a local broker and gateway once its link is back. Target: at most
//! 10 s on the 2-core development machine.
//!
//! The backlog is written into an outbox first (32 writers sharing flushes), then the embedded
//! broker (`gateway::broker::start_embedded`, on a free port) and the proto-speaking test gateway
//! (`fieldsync_tests::test_gateway`, which stores in memory and acks every batch) start, and then
//! the agent, through `Agent::start` as the binary runs it. The clock runs from `Agent::start`
//! (which opens the outbox and reads every record) until the agent holds the gateway's ack through
//! the last record and its outbox is empty. Everything shares one process and the machine's two
//! cores: the agent, the broker and the gateway.
//!
//! `cargo bench -p edge-agent --bench drain`. Uplink settings to compare can be set through the
//! environment: `DRAIN_BATCH_MAX_RECORDS`, `DRAIN_BATCH_MAX_BYTES`, `DRAIN_MAX_INFLIGHT_BATCHES`,
//! `DRAIN_LINGER_MS` (defaults: the agent's). `RUST_LOG=info` logs what the agent does.

mod common;

#[path = "../tests/support/signing.rs"]
mod signing;

use std::time::{Duration, Instant};

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use fieldsync_tests::test_gateway::TestGateway;
use proto::MAX_MESSAGE_BYTES;

const RECORDS: u64 = 100_000;
const DEVICE: &str = "hub-drain";
/// Gives up after this long.
const GIVE_UP: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    // `RUST_LOG=info` (or `debug`) shows what the agent does.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    common::block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join(DEVICE);
    let filling = Instant::now();
    common::fill(&data_dir, RECORDS).await?;
    println!(
        "drain: {RECORDS} telemetry records written to the outbox in {:.1} s ({})",
        filling.elapsed().as_secs_f64(),
        std::env::temp_dir().display()
    );

    let port = gateway::broker::free_local_port()?;
    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES)?;
    let gateway = TestGateway::start(port).await;

    let mut config = AgentConfig {
        device_id: DEVICE.into(),
        signing: signing::signing(DEVICE),
        data_dir,
        ..AgentConfig::default()
    };
    config.mqtt.port = port;
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config.outbox.budget_bytes = common::BUDGET_BYTES;
    config.intervals.health_s = 3600;
    override_from_env(&mut config)?;
    config.validate()?;
    let uplink = config.uplink.clone();

    let started = Instant::now();
    let agent = Agent::start(config).await?;
    let opened = started.elapsed();
    let mut link = agent.link_status();
    tokio::time::timeout(GIVE_UP, link.wait_for(|status| status.connected)).await??;
    let connected = started.elapsed();
    let outbox = agent.intake().outbox().clone();
    let drained = loop {
        let stats = outbox.stats()?;
        if stats.acked_through >= RECORDS && stats.depth == 0 {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < GIVE_UP,
            "not drained in time: {stats:?}; the gateway received {} batches, sent {} acks, acks \
             through {}; link {:?}",
            gateway.batches(),
            gateway.acks_sent(),
            gateway.acked_through(DEVICE),
            *agent.link_status().borrow(),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let stored = gateway.stored_count(DEVICE) as u64;
    anyhow::ensure!(
        stored == RECORDS,
        "the gateway stored {stored} records, not {RECORDS}"
    );
    let sending = drained - connected;
    println!(
        "uplink: batch_max_records {}, batch_max_bytes {}, max_inflight_batches {}, linger_ms {}",
        uplink.batch_max_records,
        uplink.batch_max_bytes,
        uplink.max_inflight_batches,
        uplink.linger_ms
    );
    println!(
        "opened {:.2} s, connected {:.2} s, drained {:.2} s after start: {:.0} records/s while \
         connected; {} batches, {} records sent twice",
        opened.as_secs_f64(),
        connected.as_secs_f64(),
        drained.as_secs_f64(),
        RECORDS as f64 / sending.as_secs_f64(),
        gateway.batches(),
        gateway.duplicates(),
    );
    agent.shutdown().await;
    Ok(())
}

/// Applies the `DRAIN_*` variables, if set.
fn override_from_env(config: &mut AgentConfig) -> anyhow::Result<()> {
    fn var<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
        match std::env::var(name) {
            Ok(value) => value
                .parse()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{name}={value} is not a number")),
            Err(_) => Ok(None),
        }
    }
    let uplink = &mut config.uplink;
    if let Some(value) = var("DRAIN_BATCH_MAX_RECORDS")? {
        uplink.batch_max_records = value;
    }
    if let Some(value) = var("DRAIN_BATCH_MAX_BYTES")? {
        uplink.batch_max_bytes = value;
    }
    if let Some(value) = var("DRAIN_MAX_INFLIGHT_BATCHES")? {
        uplink.max_inflight_batches = value;
    }
    if let Some(value) = var("DRAIN_LINGER_MS")? {
        uplink.linger_ms = value;
    }
    Ok(())
}
