//! A link that stalls (stops forwarding without closing) while an agent drains a backlog, and
//! comes back: how soon the agent notices, and how long from the link's return until the
//! backlog (what waited before the stall and what crews added during it) is drained. Target: link
//! back → drained in at most 5 s.
//!
//! The embedded broker (on a free port) and the test gateway run in-process; the agent reaches
//! the broker through [`StallRelay`], which stops forwarding in both directions while keeping
//! every connection open (and accepting new ones), as a coverage hole does. Each run: a
//! `BACKLOG`-record telemetry backlog; the stall begins once the first acks arrive, lasts
//! `STALL_FOR`, and `DURING` collections are accepted meanwhile. Defaults are the agent's own.
//!
//! `cargo bench -p edge-agent --bench stall`.

mod common;
#[path = "../tests/support/stall_relay.rs"]
mod stall_relay;

#[path = "../tests/support/signing.rs"]
mod signing;

use std::time::{Duration, Instant};

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use fieldsync_tests::test_gateway::TestGateway;
use proto::{BinStream, Collection, Outcome, Position, RecordBody, MAX_MESSAGE_BYTES};
use stall_relay::StallRelay;

const BACKLOG: u64 = 20_000;
const DURING: u64 = 500;
const STALL_FOR: Duration = Duration::from_secs(15);
const RUNS: usize = 3;
const GIVE_UP: Duration = Duration::from_secs(90);

fn main() -> anyhow::Result<()> {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    common::block_on(async {
        let port = gateway::broker::free_local_port()?;
        gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES)?;
        let gateway = TestGateway::start(port).await;
        let mut back_to_drained = Vec::new();
        for run in 1..=RUNS {
            back_to_drained.push(one_run(run, port, &gateway).await?);
        }
        back_to_drained.sort();
        println!(
            "link back → drained over {RUNS} runs: min {:.2} s, median {:.2} s, max {:.2} s",
            back_to_drained[0].as_secs_f64(),
            back_to_drained[RUNS / 2].as_secs_f64(),
            back_to_drained[RUNS - 1].as_secs_f64()
        );
        Ok(())
    })
}

async fn one_run(run: usize, port: u16, gateway: &TestGateway) -> anyhow::Result<Duration> {
    let device = format!("cab-stall-{run}");
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join(&device);
    common::fill(&data_dir, BACKLOG).await?;
    let relay = StallRelay::start(([127, 0, 0, 1], port).into()).await?;

    let mut config = AgentConfig {
        device_id: device.clone(),
        signing: signing::signing(&device),
        data_dir,
        ..AgentConfig::default()
    };
    config.mqtt.port = relay.port;
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config.outbox.budget_bytes = common::BUDGET_BYTES;
    config.intervals.health_s = 3600;
    config.validate()?;
    let agent = Agent::start(config).await?;
    let outbox = agent.intake().outbox().clone();
    let mut link = agent.link_status();
    tokio::time::timeout(GIVE_UP, link.wait_for(|s| s.last_ack.is_some())).await??;

    relay.stall();
    let stalled = Instant::now();
    let in_flight = outbox.stats()?.in_flight;
    let intake = agent.intake().clone();
    let crews = tokio::spawn(async move {
        for uprn in 0..DURING {
            intake.accept(intake.now_ms(), collection(uprn)).await?;
        }
        anyhow::Ok(())
    });
    tokio::time::timeout(GIVE_UP, link.wait_for(|s| s.stalls >= 1)).await??;
    let noticed = stalled.elapsed();
    let bound_ms = link.borrow().stall_after_ms;
    tokio::time::sleep(STALL_FOR.saturating_sub(stalled.elapsed())).await;
    crews.await??;
    let expected = outbox.stats()?.next_seq - 1;

    relay.resume();
    let back = Instant::now();
    tokio::time::timeout(GIVE_UP, link.wait_for(|s| s.connected)).await??;
    let reconnected = back.elapsed();
    let drained = loop {
        let stats = outbox.stats()?;
        if stats.depth == 0 && stats.acked_through >= expected {
            break back.elapsed();
        }
        anyhow::ensure!(back.elapsed() < GIVE_UP, "not drained: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let stored = gateway.stored_count(&device) as u64;
    anyhow::ensure!(
        stored == expected,
        "the gateway stored {stored}, not {expected}"
    );
    println!(
        "run {run}: stall noticed after {:.2} s (bound {:.1} s, {in_flight} records in flight); \
         link back → reconnected {:.2} s, → {expected} records drained {:.2} s",
        noticed.as_secs_f64(),
        bound_ms as f64 / 1000.0,
        reconnected.as_secs_f64(),
        drained.as_secs_f64(),
    );
    agent.shutdown().await;
    Ok(drained)
}

fn collection(uprn: u64) -> RecordBody {
    RecordBody::Collection(Collection {
        uprn: Some(100_000 + uprn),
        stream: BinStream::Refuse,
        outcome: Outcome::Collected,
        pos: Position {
            lat: 51.5,
            lon: -0.14,
            acc: 4.0,
        },
        vehicle: "RCV-17".into(),
        round: "MON-A".into(),
        job: None,
        photo: None,
        note: None,
    })
}
