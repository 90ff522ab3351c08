//! A boiler sensor hub: a [`Boiler`] model feeding its agent through the agent's in-process
//! channel source ([`edge_agent::source::ChannelSource`] with [`edge_agent::source::spawn_with`]),
//! so that simulated readings go through the same sampler, checks and outbox as a real OpenTherm
//! interface's. The agent samples on its own interval (one real second in the demo, which is
//! `speed` simulated seconds); the driver here advances the model in simulated time and sends
//! every reading a few times per sample.

use std::time::Duration;

use edge_agent::agent::Agent;
use edge_agent::source::{self, Reading, RunningSource, SourceError};
use proto::clock::SystemClock;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::boiler::Boiler;
use crate::clock::SimClock;

/// Readings queued between the model and the sampler.
const READINGS_QUEUE: usize = 256;
/// The most simulated time one tick advances the model (after a stall, say).
const MAX_ADVANCE: Duration = Duration::from_secs(24 * 3600);

/// A running hub: its agent, the agent's sampling task and the model's driver.
pub struct Hub {
    /// The hub's device id.
    pub device: String,
    /// The boiler's asset id.
    pub asset: String,
    agent: Agent,
    source: RunningSource,
    driver: JoinHandle<()>,
    repairs: mpsc::UnboundedSender<()>,
    stop: CancellationToken,
}

impl Hub {
    /// Feeds `boiler` into `agent`, advancing the model every `tick` of real time.
    pub fn start(
        agent: Agent,
        boiler: Boiler,
        clock: SimClock,
        tick: Duration,
    ) -> Result<Self, SourceError> {
        let stop = CancellationToken::new();
        let (readings, channel) = source::channel(READINGS_QUEUE);
        let asset = boiler.asset().to_owned();
        let source = source::spawn_with(
            channel,
            asset.clone(),
            agent.sample_interval(),
            agent.telemetry_sink(),
            stop.clone(),
        )?;
        let (repairs, repair_requests) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(
            boiler,
            readings,
            clock,
            tick,
            repair_requests,
            stop.clone(),
        ));
        Ok(Self {
            device: agent.device.to_string(),
            asset,
            agent,
            source,
            driver,
            repairs,
            stop,
        })
    }

    /// The hub's agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Sends an engineer: see [`Boiler::repair`].
    pub fn repair(&self) {
        let _ = self.repairs.send(());
    }

    /// A handle that sends an engineer, for tasks that outlive a borrow of the hub.
    pub fn repairer(&self) -> mpsc::UnboundedSender<()> {
        self.repairs.clone()
    }

    /// Stops the model and the sampling, then the agent (which sends what it holds, within its
    /// deadline).
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.driver.await;
        match self.source.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(device = %self.device, %error, "sensor source ended"),
            Err(error) => tracing::warn!(device = %self.device, %error, "sensor source panicked"),
        }
        self.agent.shutdown().await;
    }
}

/// Advances `boiler` in simulated time and sends its readings, until `stop` or the sampler goes.
pub async fn drive(
    mut boiler: Boiler,
    readings: mpsc::Sender<Reading>,
    clock: SimClock,
    tick: Duration,
    mut repairs: mpsc::UnboundedReceiver<()>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(tick.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last = clock.now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = repairs.recv() => {
                tracing::info!(asset = boiler.asset(), "boiler repaired");
                boiler.repair();
            }
            _ = ticks.tick() => {}
        }
        let now = clock.now();
        let step = (now - last).to_std().unwrap_or_default().min(MAX_ADVANCE);
        boiler.advance(last, step);
        last = now;
        let Some(sample) = boiler.telemetry() else {
            continue;
        };
        for reading in Reading::from_telemetry(&sample) {
            tokio::select! {
                () = stop.cancelled() => return,
                sent = readings.send(reading) => if sent.is_err() { return },
            }
        }
    }
}

/// The `hubs` command's settings: simulated hubs against an external gateway's broker.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// The broker's host.
    pub mqtt_host: String,
    /// The broker's port.
    pub mqtt_port: u16,
    /// How many hubs.
    pub count: usize,
    /// Device ids are `{prefix}-01`, `{prefix}-02`…
    pub prefix: String,
    /// Each hub's agent keeps its database in `{data_dir}/{device}`.
    pub data_dir: std::path::PathBuf,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Seeds the boilers.
    pub seed: u64,
    /// Faults by hub number (from 1).
    pub faults: Vec<(usize, crate::boiler::FaultPlan)>,
    /// Seconds between samples, real time.
    pub sample_s: u32,
    /// How often to log a summary.
    pub summary_every: Duration,
}

/// Runs `config.count` hubs until `shutdown`, logging their outboxes and links now and then.
pub async fn run_fleet(
    config: FleetConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), crate::SimError> {
    let settings = crate::agents::AgentSettings {
        data_root: config.data_dir.clone(),
        mqtt_host: config.mqtt_host.clone(),
        mqtt_port: config.mqtt_port,
        sample_s: config.sample_s,
        health_s: 30,
        shutdown_deadline_s: 5,
        // The fleet's broker is the operator's: credentials for it are not ours to issue.
        credentials: Default::default(),
    };
    let clock = SimClock::start(config.speed);
    let mut hubs = Vec::with_capacity(config.count);
    for index in 0..config.count {
        let device = format!("{}-{:02}", config.prefix, index + 1);
        let faults = config
            .faults
            .iter()
            .filter(|(hub, _)| *hub == index + 1)
            .map(|(_, plan)| *plan)
            .collect();
        let boiler = Boiler::new(
            format!("B-{}", device.to_uppercase()),
            crate::demo::seed_for(config.seed, 1, index),
            faults,
        );
        let agent = settings.start(&device, None, SystemClock::shared()).await?;
        let hub = Hub::start(agent, boiler, clock, Duration::from_millis(250))
            .map_err(|source| crate::SimError::Source { device, source })?;
        println!(
            "{:<10} boiler {:<14} agent API http://{}",
            hub.device,
            hub.asset,
            hub.agent().api_addr
        );
        hubs.push(hub);
    }
    println!(
        "{} hubs publishing to mqtt://{}:{}; Ctrl-C stops them gracefully.",
        hubs.len(),
        config.mqtt_host,
        config.mqtt_port
    );
    let every = config.summary_every.max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => {
                let connected = hubs.iter().filter(|h| h.agent().link_status().borrow().connected).count();
                let stats: Vec<_> = hubs.iter().filter_map(|h| h.agent().intake().outbox().stats().ok()).collect();
                let depth: u64 = stats.iter().map(|s| s.depth).sum();
                let acked: u64 = stats.iter().map(|s| s.acked_through).sum();
                tracing::info!("sim {} | {connected}/{} hubs connected | outboxes hold {depth} records | {acked} acked by the gateway",
                    clock.now().format("%a %H:%M"), hubs.len());
            }
        }
    }
    let mut stopping = tokio::task::JoinSet::new();
    for hub in hubs {
        stopping.spawn(hub.shutdown());
    }
    while stopping.join_next().await.is_some() {}
    Ok(())
}
