//! Load for the gateway: many boiler hubs, each a real in-process agent (durable outbox, MQTT
//! uplink, the gateway's acks), sampling faster than any real hub would. Samples go straight into
//! each agent's telemetry sink at the chosen interval, past the sampler (whose shortest interval
//! is a second), so the load is the outbox and the uplink's, and the gateway's.
//!
//! What it reports is what the devices see: samples offered, records the gateway has acked (the
//! agents' ack watermarks, so stored durably at the gateway), and what still waits in outboxes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use edge_agent::agent::Agent;
use gateway::config::GatewayConfig;
use gateway::Gateway;
use proto::clock::SystemClock;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::agents::AgentSettings;
use crate::boiler::Boiler;
use crate::clock::SimClock;
use crate::demo::seed_for;
use crate::SimError;

/// How long the in-process gateway's ingest may take to subscribe.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The `load` command's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// The gateway's broker as (host, port); `None` starts a gateway in this process, on its
    /// embedded broker and a store in `{data_dir}/gateway`, on free ports.
    pub mqtt: Option<(String, u16)>,
    /// How many hubs.
    pub hubs: usize,
    /// Real time between one hub's samples.
    pub interval: Duration,
    /// How long to run; `None` until stopped.
    pub duration: Option<Duration>,
    /// Device ids are `{prefix}-0001`…
    pub prefix: String,
    /// Each agent's database goes in `{data_dir}/{device}`.
    pub data_dir: PathBuf,
    /// Simulated seconds per real second (the boilers' days).
    pub speed: f64,
    /// Seeds the boilers.
    pub seed: u64,
    /// How often to log progress.
    pub report_every: Duration,
}

/// What a load run achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Hubs that ran.
    pub hubs: usize,
    /// Real time under load, from the first sample to the stop.
    pub elapsed: Duration,
    /// Real time the agents then took to send what they held (each within its deadline).
    pub drain: Duration,
    /// Samples handed to the agents.
    pub offered: u64,
    /// Records the gateway had acked when the load stopped (every kind, health included).
    pub acked_under_load: u64,
    /// Records the gateway acked in all, after the drain.
    pub acked: u64,
    /// Records still in outboxes when the agents stopped.
    pub left: u64,
    /// Records the in-process gateway stored, if the run started one.
    pub gateway_stored: Option<u64>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{} hubs for {:.1} s: {} samples offered ({:.0}/s), {} records acked by the gateway \
             meanwhile ({:.0}/s); after a {:.1} s drain {} acked in all, {} left in outboxes",
            self.hubs,
            seconds,
            self.offered,
            self.offered as f64 / seconds,
            self.acked_under_load,
            self.acked_under_load as f64 / seconds,
            self.drain.as_secs_f64(),
            self.acked,
            self.left,
        )?;
        if let Some(stored) = self.gateway_stored {
            write!(f, "; the gateway stored {stored} records")?;
        }
        Ok(())
    }
}

/// Runs the load until `config.duration` has passed or `shutdown` resolves, then stops the agents
/// (each sends what it holds within its deadline) and reports.
pub async fn run(
    config: LoadConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<LoadReport, SimError> {
    if config.interval.is_zero() {
        return Err(SimError::Invalid("the interval must be above zero".into()));
    }
    let devices: Vec<String> = (1..=config.hubs)
        .map(|i| format!("{}-{i:04}", config.prefix))
        .collect();
    let gateway = match &config.mqtt {
        Some(_) => None,
        None => Some(start_gateway(&config, &devices).await?),
    };
    let (mqtt_host, mqtt_port) = match (&config.mqtt, &gateway) {
        (Some((host, port)), _) => (host.clone(), *port),
        (None, Some(gateway)) => ("127.0.0.1".to_owned(), gateway.mqtt.1),
        (None, None) => return Err(SimError::Invalid("no broker to load".into())),
    };
    // The gateway in this process issues its devices' credentials; an external broker's are
    // the operator's.
    let credentials = match &gateway {
        Some(gateway) => crate::agents::issue_credentials(&gateway.devices, &devices).await?,
        None => Default::default(),
    };
    let settings = AgentSettings {
        data_root: config.data_dir.join("agents"),
        mqtt_host,
        mqtt_port,
        sample_s: 60,
        health_s: 60,
        shutdown_deadline_s: 10,
        credentials,
    };
    let started = Instant::now();
    let mut agents: Vec<Agent> = Vec::with_capacity(config.hubs);
    for device in &devices {
        agents.push(settings.start(device, None, SystemClock::shared()).await?);
    }
    tracing::info!(
        hubs = agents.len(),
        start_s = started.elapsed().as_secs_f64(),
        "agents started"
    );

    let clock = SimClock::start(config.speed);
    let stop = CancellationToken::new();
    let offered = Arc::new(AtomicU64::new(0));
    let acked_before: u64 = agents.iter().map(acked_through).sum();
    let mut drivers = JoinSet::new();
    for (index, agent) in agents.iter().enumerate() {
        let boiler = Boiler::new(
            format!("B-{}", agent.device.as_str().to_uppercase()),
            seed_for(config.seed, 5, index),
            Vec::new(),
        );
        drivers.spawn(drive(
            boiler,
            agent.telemetry_sink(),
            clock,
            config.interval,
            Arc::clone(&offered),
            stop.clone(),
        ));
    }

    let began = Instant::now();
    let every = config.report_every.max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(began + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let until = async {
        match config.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown, until);
    let (mut last_offered, mut last_acked) = (0, 0);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = &mut until => break,
            _ = ticks.tick() => {
                let offered_now = offered.load(Ordering::Relaxed);
                let acked_now = agents.iter().map(acked_through).sum::<u64>() - acked_before;
                let depth: u64 = agents.iter().map(depth).sum();
                let connected = agents.iter().filter(|a| a.link_status().borrow().connected).count();
                let per_s = |n: u64| n as f64 / every.as_secs_f64();
                tracing::info!(
                    "{connected}/{} connected | offered {:.0}/s | acked {:.0}/s | outboxes hold {depth}",
                    agents.len(),
                    per_s(offered_now - last_offered),
                    per_s(acked_now.saturating_sub(last_acked)),
                );
                (last_offered, last_acked) = (offered_now, acked_now);
            }
        }
    }

    stop.cancel();
    while drivers.join_next().await.is_some() {}
    let elapsed = began.elapsed();
    let acked_under_load = agents
        .iter()
        .map(acked_through)
        .sum::<u64>()
        .saturating_sub(acked_before);
    let draining = Instant::now();
    let hubs = agents.len();
    let mut stopping = JoinSet::new();
    let mut outboxes = Vec::with_capacity(hubs);
    for agent in agents {
        outboxes.push(agent.intake().outbox().clone());
        stopping.spawn(agent.shutdown());
    }
    while stopping.join_next().await.is_some() {}
    let (mut acked, mut left) = (0, 0);
    for outbox in &outboxes {
        if let Ok(stats) = outbox.stats() {
            acked += stats.acked_through;
            left += stats.depth;
        }
    }
    let drain = draining.elapsed();
    let gateway_stored = match gateway {
        Some(gateway) => {
            let stored = gateway.metrics.records_stored.load(Ordering::Relaxed);
            gateway.stop().await;
            Some(stored)
        }
        None => None,
    };
    Ok(LoadReport {
        hubs,
        elapsed,
        drain,
        offered: offered.load(Ordering::Relaxed),
        acked_under_load,
        acked: acked.saturating_sub(acked_before),
        left,
        gateway_stored,
    })
}

/// A gateway in this process, on free ports, with `devices` provisioned.
async fn start_gateway(config: &LoadConfig, devices: &[String]) -> Result<Gateway, SimError> {
    let mut gateway_config = GatewayConfig {
        data_dir: config.data_dir.join("gateway"),
        ..GatewayConfig::default()
    };
    let port = gateway::broker::free_local_port().map_err(SimError::Port)?;
    gateway_config.mqtt.listen = SocketAddr::from(([127, 0, 0, 1], port));
    gateway_config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    gateway_config.devices.provisioned = devices.to_vec();
    let gateway = Gateway::start(gateway_config).await?;
    if !gateway.wait_ready(READY_TIMEOUT).await {
        gateway.stop().await;
        return Err(SimError::NotReady(READY_TIMEOUT));
    }
    tracing::info!(mqtt = port, http = %gateway.http_addr, "gateway started in this process");
    Ok(gateway)
}

fn acked_through(agent: &Agent) -> u64 {
    agent
        .intake()
        .outbox()
        .stats()
        .map_or(0, |s| s.acked_through)
}

fn depth(agent: &Agent) -> u64 {
    agent.intake().outbox().stats().map_or(0, |s| s.depth)
}

/// Advances `boiler` and hands a sample to `sink` every `interval`, until `stop`.
async fn drive(
    mut boiler: Boiler,
    sink: tokio::sync::mpsc::Sender<proto::Telemetry>,
    clock: SimClock,
    interval: Duration,
    offered: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last = clock.now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = clock.now();
        boiler.advance(last, (now - last).to_std().unwrap_or_default());
        last = now;
        let Some(sample) = boiler.telemetry() else {
            continue;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            sent = sink.send(sample) => {
                if sent.is_err() {
                    return;
                }
                offered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
