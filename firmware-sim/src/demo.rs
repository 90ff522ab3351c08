//! The whole system on one machine, in one process: a gateway on its embedded broker, boiler
//! hubs, refuse crews and a repairs operative, each device with its own edge agent (its own
//! database and local API), all in compressed simulated time.
//!
//! [`Demo::start`] wires it top to bottom: the gateway → the hubs (agent + boiler model) → the
//! crews (agent, optionally behind a [`LinkProxy`] that drops like patchy 4G, and the crew walking
//! its rounds over the agent's HTTP API) → the operative (agent + the operative working jobs over
//! HTTP) → the dispatcher. [`Demo::stop`] undoes it: the simulated people stop, links come back,
//! agents send what they hold and close, the gateway stops.
//!
//! The dispatcher stands in for the part of the gateway that will raise repair jobs from boiler
//! alerts: it gives the operative a job some simulated time after each hub's fault begins, and a
//! routine gas safety check now and then, by writing them into the operative's job store (where
//! the agent's downlink would put them). When the operative completes a job, the boiler it was for
//! is repaired, so the alert should clear.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use edge_agent::agent::{now_ms, Agent};
use edge_agent::jobs::JobStore;
use edge_agent::outbox::Outbox;
use gateway::access::Role;
use gateway::config::GatewayConfig;
use gateway::Gateway;
use proto::{Job, JobKind, Priority, RepairJob};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::agents::AgentSettings;
use crate::boiler::{Boiler, Fault, FaultPlan};
use crate::clock::SimClock;
use crate::crew::{self, CrewConfig, CrewStats};
use crate::http::JsonClient;
use crate::hub::Hub;
use crate::operative::{self, OperativeConfig, OperativeStats};
use crate::proxy::{self, LinkProxy};
use crate::SimError;

/// How long the gateway's ingest may take to subscribe.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the simulated people get to finish their current step at shutdown.
const PEOPLE_STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How often, in real time, a hub's model advances and sends its readings.
const HUB_TICK: Duration = Duration::from_millis(250);
/// The gateway's HTTP address tried first when none is given.
const PREFERRED_HTTP: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
/// How long after a fault begins a repair job is raised (an alert seen, a resident's call).
const REPORTED_AFTER: Duration = Duration::from_secs(30 * 60);
/// Simulated time between routine gas safety checks given to the operative.
const ROUTINE_EVERY: Duration = Duration::from_secs(4 * 3600);
/// When the first routine check is given, in simulated time.
const FIRST_ROUTINE: Duration = Duration::from_secs(20 * 60);

/// Everything the demo can be told; every field has a default ([`DemoConfig::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// The gateway's store goes in `{data_dir}/gateway`, each agent's in
    /// `{data_dir}/agents/{device}`. Default `data/demo`.
    pub data_dir: PathBuf,
    /// The embedded broker's address. Default: a free port on 127.0.0.1 (1883 is often held by a
    /// Mosquitto).
    pub mqtt_listen: Option<SocketAddr>,
    /// The gateway's HTTP address. Default: 127.0.0.1:8080 if free, else a free port.
    pub http_listen: Option<SocketAddr>,
    /// Boiler hubs. Default 5.
    pub hubs: usize,
    /// Refuse crews. Default 2.
    pub crews: usize,
    /// Simulated seconds per real second. Default 60 (a minute a second).
    pub speed: f64,
    /// Seeds every model, so that runs are reproducible. Default 1.
    pub seed: u64,
    /// Crews' links drop and come back like patchy 4G. Default off.
    pub flaky: bool,
    /// Faults by hub number (from 1). Default (`None`): [`default_faults`] for the hubs there are.
    pub faults: Option<Vec<(usize, FaultPlan)>>,
    /// The property register (the gateway's CSV format). Default: the built-in Hillingdon one.
    pub properties: Option<PathBuf>,
    /// How often [`run`] logs a summary. Default 10 s.
    pub summary_every: Duration,
    /// Seconds between a hub's samples, real time. Default 1.
    pub sample_s: u32,
    /// The simulated time of day (UTC, today) the demo starts at, so that it opens on a morning
    /// (heating on, hot water drawn, crews setting out) whenever it is run; `None` starts at the
    /// real time. Default 06:00. Records carry real timestamps either way.
    pub start_at: Option<NaiveTime>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/demo"),
            mqtt_listen: None,
            http_listen: None,
            hubs: 5,
            crews: 2,
            speed: 60.0,
            seed: 1,
            flaky: false,
            faults: None,
            properties: None,
            summary_every: Duration::from_secs(10),
            sample_s: 1,
            start_at: NaiveTime::from_hms_opt(6, 0, 0),
        }
    }
}

/// The faults the demo gives its hubs unless told otherwise, so that every kind of alert shows:
/// hub 1 is healthy; 2 short-cycles; 3 loses pressure from the first hour; 4 locks out with code
/// 28 after three hours; 5 goes quiet after two; 6 runs hot and never condenses; 7 and 8 are
/// healthy; then the pattern repeats.
pub fn default_faults(hubs: usize) -> Vec<(usize, FaultPlan)> {
    let hour = |h: u64| Duration::from_secs(h * 3600);
    (1..=hubs)
        .filter_map(|hub| {
            let (fault, onset) = match hub % 8 {
                2 => (Fault::ShortCycling, Duration::ZERO),
                3 => (Fault::LowPressure, hour(1)),
                4 => (Fault::Code(28), hour(3)),
                5 => (Fault::Quiet, hour(2)),
                6 => (Fault::HotFlow, Duration::ZERO),
                _ => return None,
            };
            Some((hub, FaultPlan { fault, onset }))
        })
        .collect()
}

/// A crew's cab: its agent, its link and how the crew is getting on.
struct CrewUnit {
    device: String,
    vehicle: String,
    rounds: Vec<String>,
    agent: Agent,
    stats: Arc<CrewStats>,
    proxy: Option<Arc<LinkProxy>>,
}

/// The operative's handheld.
struct OperativeUnit {
    device: String,
    agent: Agent,
    stats: Arc<OperativeStats>,
}

/// The running demo.
pub struct Demo {
    gateway: Gateway,
    hubs: Vec<Hub>,
    hub_faults: Vec<Vec<FaultPlan>>,
    crews: Vec<CrewUnit>,
    operative: OperativeUnit,
    /// The simulated people, the links' flapping and the dispatcher, once launched.
    tasks: JoinSet<()>,
    /// The same, before [`Demo::launch`].
    pending: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
    stop: CancellationToken,
    clock: SimClock,
    staff_token: String,
    /// A property on a crew's round, for the banner's example report.
    example_uprn: Option<u64>,
    data_dir: PathBuf,
    flaky: bool,
}

impl Demo {
    /// Starts the gateway, then every device and the simulated people.
    pub async fn start(config: DemoConfig) -> Result<Self, SimError> {
        let mut demo = Self::prepare(config).await?;
        demo.launch();
        Ok(demo)
    }

    /// Sets the people going: crews, operative, dispatcher, and the links' flapping.
    pub fn launch(&mut self) {
        for task in self.pending.drain(..) {
            self.tasks.spawn(task);
        }
    }

    /// Starts the gateway and every device (hubs sample from the start); the simulated people
    /// wait for [`Demo::launch`].
    pub async fn prepare(config: DemoConfig) -> Result<Self, SimError> {
        if !(config.speed.is_finite() && config.speed > 0.0) {
            return Err(SimError::Invalid("speed must be a positive number".into()));
        }
        let faults = config
            .faults
            .clone()
            .unwrap_or_else(|| default_faults(config.hubs));
        if let Some((hub, _)) = faults
            .iter()
            .find(|(hub, _)| *hub == 0 || *hub > config.hubs)
        {
            return Err(SimError::Invalid(format!(
                "a fault names hub {hub}, but hubs are numbered 1 to {}",
                config.hubs
            )));
        }
        let csv = crew::register_csv(config.properties.as_deref())?;
        let register = crew::parse_register(&csv)?;
        let rounds = crew::rounds_of(&register);
        let assigned = crew::assign_rounds(&rounds, config.crews);
        let example_uprn = assigned
            .first()
            .and_then(|mine| mine.first())
            .and_then(|round| round.stops.last())
            .map(|stop| stop.uprn);
        if rounds.is_empty() && config.crews > 0 {
            return Err(SimError::Invalid(
                "the property register has no rounds for the crews".into(),
            ));
        }

        // Device ids, known to the gateway in advance.
        let hub_ids: Vec<String> = (1..=config.hubs).map(|i| format!("hub-{i:02}")).collect();
        let crew_ids: Vec<String> = (1..=config.crews).map(|i| format!("cab-{i:02}")).collect();
        let operative_id = "op-01".to_owned();

        // The gateway, on its embedded broker.
        let mut gateway_config = GatewayConfig {
            data_dir: config.data_dir.join("gateway"),
            ..GatewayConfig::default()
        };
        gateway_config.mqtt.listen = match config.mqtt_listen {
            Some(addr) => addr,
            None => SocketAddr::from((
                [127, 0, 0, 1],
                gateway::broker::free_local_port().map_err(SimError::Port)?,
            )),
        };
        gateway_config.http.listen = config.http_listen.unwrap_or_else(preferred_http);
        // Return jobs for a round go to the cab that works it, until a cab has reported on it.
        for (device, mine) in crew_ids.iter().zip(&assigned) {
            for round in mine {
                gateway_config
                    .missed_bins
                    .round_devices
                    .entry(round.id.clone())
                    .or_default()
                    .push(device.clone());
            }
        }
        gateway_config.devices.provisioned = hub_ids
            .iter()
            .chain(&crew_ids)
            .chain(std::iter::once(&operative_id))
            .cloned()
            .collect();
        let gateway = Gateway::start(gateway_config).await?;
        if !gateway.wait_ready(READY_TIMEOUT).await {
            gateway.stop().await;
            return Err(SimError::NotReady(READY_TIMEOUT));
        }
        // A waste supervisor's token, as `gateway staff add demo --role waste_supervisor` would
        // issue it: new at every run, the previous run's replaced.
        let staff_token = match gateway
            .access
            .add_staff("demo", Role::WasteSupervisor, true)
        {
            Ok(issued) => issued.token.reveal().to_owned(),
            Err(error) => {
                gateway.stop().await;
                return Err(error.into());
            }
        };
        let broker = SocketAddr::from(([127, 0, 0, 1], gateway.mqtt.1));
        // The gateway matches the crews' confirmations to the same register.
        if let Err(error) = gateway.desk.import_properties(&csv[..]) {
            gateway.stop().await;
            return Err(SimError::Register(error));
        }

        // Every device gets its credential as `gateway devices add` would issue it.
        let devices: Vec<String> = hub_ids
            .iter()
            .chain(&crew_ids)
            .chain(std::iter::once(&operative_id))
            .cloned()
            .collect();
        let credentials = match crate::agents::issue_credentials(&gateway.devices, &devices).await {
            Ok(credentials) => credentials,
            Err(error) => {
                gateway.stop().await;
                return Err(error);
            }
        };
        let settings = AgentSettings {
            data_root: config.data_dir.join("agents"),
            mqtt_host: broker.ip().to_string(),
            mqtt_port: broker.port(),
            sample_s: config.sample_s,
            health_s: 30,
            shutdown_deadline_s: 5,
            credentials,
        };
        let clock = match config.start_at {
            Some(time) => SimClock::starting_at(
                Utc::now().date_naive().and_time(time).and_utc(),
                config.speed,
            ),
            None => SimClock::start(config.speed),
        };
        let stop = CancellationToken::new();
        let mut pending: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();

        // Boiler hubs, one per council home on the register (in UPRN order).
        let homes: Vec<_> = register.iter().collect();
        let mut hubs = Vec::with_capacity(config.hubs);
        let mut hub_faults = Vec::with_capacity(config.hubs);
        for (index, device) in hub_ids.iter().enumerate() {
            let mine: Vec<FaultPlan> = faults
                .iter()
                .filter(|(hub, _)| *hub == index + 1)
                .map(|(_, plan)| *plan)
                .collect();
            let asset = homes.get(index).map_or_else(
                || format!("B-SIM{:04}", index + 1),
                |home| format!("B-{}", home.uprn),
            );
            let boiler = Boiler::new(asset, seed_for(config.seed, 1, index), mine.clone());
            let agent = settings.start(device, None).await?;
            let hub =
                Hub::start(agent, boiler, clock, HUB_TICK).map_err(|source| SimError::Source {
                    device: device.clone(),
                    source,
                })?;
            hubs.push(hub);
            hub_faults.push(mine);
        }

        // Refuse crews, each on its own cab agent, behind a flaky link if asked.
        let mut crews = Vec::with_capacity(config.crews);
        for ((index, device), rounds) in crew_ids.iter().enumerate().zip(assigned) {
            let proxy = if config.flaky {
                let proxy = Arc::new(LinkProxy::start(broker).await.map_err(SimError::Proxy)?);
                pending.push(Box::pin(proxy::flap(
                    Arc::clone(&proxy),
                    seed_for(config.seed, 2, index),
                    clock,
                    stop.clone(),
                )));
                Some(proxy)
            } else {
                None
            };
            let agent = settings
                .start(device, proxy.as_ref().map(|p| p.addr))
                .await?;
            let vehicle = format!("RCV-{:02}", index + 1);
            let stats = Arc::new(CrewStats::default());
            let round_ids = rounds.iter().map(|r| r.id.clone()).collect();
            pending.push(Box::pin(crew::run(
                JsonClient::new(format!("http://{}", agent.api_addr)),
                CrewConfig {
                    vehicle: vehicle.clone(),
                    rounds,
                    seed: seed_for(config.seed, 3, index),
                    max_rounds: None,
                    shift: Some(crew::usual_shift()),
                },
                clock,
                Arc::clone(&stats),
                stop.clone(),
            )));
            crews.push(CrewUnit {
                device: device.clone(),
                vehicle,
                rounds: round_ids,
                agent,
                stats,
                proxy,
            });
        }

        // The repairs operative and the dispatcher that gives them work.
        let agent = settings.start(&operative_id, None).await?;
        let stats = Arc::new(OperativeStats::default());
        let (completed_tx, completed_rx) = mpsc::unbounded_channel();
        let mut sites = Vec::with_capacity(hubs.len());
        let mut positions = HashMap::new();
        for (index, hub) in hubs.iter().enumerate() {
            let home = homes.get(index);
            if let Some(home) = home {
                positions.insert(hub.asset.clone(), home.position);
            }
            sites.push(Site {
                asset: hub.asset.clone(),
                address: home.map_or_else(
                    || format!("Simulated home {}", index + 1),
                    |h| h.address.clone(),
                ),
                faults: hub_faults[index].clone(),
                repairer: hub.repairer(),
            });
        }
        pending.push(Box::pin(operative::run(
            JsonClient::new(format!("http://{}", agent.api_addr)),
            OperativeConfig {
                sites: positions,
                poll: Duration::from_secs(120),
                seed: seed_for(config.seed, 4, 0),
            },
            clock,
            Arc::clone(&stats),
            Some(completed_tx),
            stop.clone(),
        )));
        pending.push(Box::pin(dispatch(
            Dispatcher {
                jobs: agent.jobs().clone(),
                outbox: agent.intake().outbox().clone(),
                sites,
                issued: 0,
                for_site: HashMap::new(),
            },
            clock,
            completed_rx,
            stop.clone(),
        )));
        let operative = OperativeUnit {
            device: operative_id,
            agent,
            stats,
        };

        Ok(Self {
            gateway,
            hubs,
            hub_faults,
            crews,
            operative,
            tasks: JoinSet::new(),
            pending,
            stop,
            clock,
            staff_token,
            example_uprn,
            data_dir: config.data_dir,
            flaky: config.flaky,
        })
    }

    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The hubs' device ids.
    pub fn hub_devices(&self) -> Vec<&str> {
        self.hubs.iter().map(|h| h.device.as_str()).collect()
    }

    /// The crews' cab device ids.
    pub fn crew_devices(&self) -> Vec<&str> {
        self.crews.iter().map(|c| c.device.as_str()).collect()
    }

    /// The operative's device id.
    pub fn operative_device(&self) -> &str {
        &self.operative.device
    }

    /// Each device's local API, by device id.
    pub fn agent_apis(&self) -> Vec<(&str, SocketAddr)> {
        let hubs = self
            .hubs
            .iter()
            .map(|h| (h.device.as_str(), h.agent().api_addr));
        let crews = self
            .crews
            .iter()
            .map(|c| (c.device.as_str(), c.agent.api_addr));
        let operative = std::iter::once((
            self.operative.device.as_str(),
            self.operative.agent.api_addr,
        ));
        hubs.chain(crews).chain(operative).collect()
    }

    /// The bearer token for the gateway's staff API (a waste supervisor's), issued for this run.
    pub fn staff_token(&self) -> &str {
        &self.staff_token
    }

    /// Where everything is, for people: the broker, the gateway, each device's API.
    pub fn directory(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        let speed = self.clock.speed();
        let _ = writeln!(
            out,
            "fieldsync demo: {} boiler hubs, {} refuse crews, 1 repairs operative; simulated time runs \
             {speed}x (a real second is {speed} simulated seconds){}",
            self.hubs.len(),
            self.crews.len(),
            if self.flaky { "; crews' links are flaky" } else { "" },
        );
        let (host, port) = &self.gateway.mqtt;
        let http = self.gateway.http_addr;
        let _ = writeln!(out, "  MQTT broker (embedded)  mqtt://{host}:{port}");
        let _ = writeln!(
            out,
            "  gateway HTTP            http://{http}  (/healthz, /metrics; staff API /api/v1/devices)"
        );
        let _ = writeln!(
            out,
            "  staff token             {}  (curl -H 'Authorization: Bearer {}' http://{http}/api/v1/devices)",
            self.staff_token, self.staff_token
        );
        if let Some(uprn) = self.example_uprn {
            let _ = writeln!(
                out,
                "  report a missed bin     curl -H 'Authorization: Bearer {}' -H 'content-type: \
                 application/json' -d '{{\"uprn\":{uprn},\"stream\":\"recycling\"}}' \
                 http://{http}/api/v1/reports",
                self.staff_token
            );
        }
        let _ = writeln!(out, "  data                    {}", self.data_dir.display());
        for (hub, faults) in self.hubs.iter().zip(&self.hub_faults) {
            let faults = if faults.is_empty() {
                "healthy".to_owned()
            } else {
                faults
                    .iter()
                    .map(FaultPlan::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "  {:<7} boiler {:<16} {:<22} agent API http://{}",
                hub.device,
                hub.asset,
                faults,
                hub.agent().api_addr
            );
        }
        for crew in &self.crews {
            let link = match &crew.proxy {
                Some(proxy) => format!(" via flaky link {}", proxy.addr),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<7} {} on {}  agent API http://{}{link}",
                crew.device,
                crew.vehicle,
                crew.rounds.join(", "),
                crew.agent.api_addr
            );
        }
        let _ = writeln!(
            out,
            "  {:<7} repairs operative  agent API http://{}",
            self.operative.device, self.operative.agent.api_addr
        );
        let _ = write!(out, "Ctrl-C stops everything gracefully.");
        out
    }

    /// Counts for the one-line summary.
    pub fn summary(&self) -> Summary {
        let devices = self.gateway.store.devices().unwrap_or_default();
        let depth = |agent: &Agent| agent.intake().outbox().stats().map_or(0, |s| s.depth);
        Summary {
            sim_time: self.clock.now(),
            records_stored: self.gateway.metrics.records_stored.load(Ordering::Relaxed),
            devices_online: devices
                .iter()
                .filter(|(_, info, _)| info.online == Some(true))
                .count(),
            devices: self.hubs.len() + self.crews.len() + 1,
            outbox_hubs: self.hubs.iter().map(|h| depth(h.agent())).sum(),
            outbox_crews: self.crews.iter().map(|c| depth(&c.agent)).sum(),
            outbox_operative: depth(&self.operative.agent),
            collections: self
                .crews
                .iter()
                .map(|c| c.stats.collections.load(Ordering::Relaxed))
                .sum(),
            rounds_completed: self
                .crews
                .iter()
                .map(|c| c.stats.rounds_completed.load(Ordering::Relaxed))
                .sum(),
            returns: self
                .crews
                .iter()
                .map(|c| c.stats.returns.load(Ordering::Relaxed))
                .sum(),
            jobs_completed: self.operative.stats.completed.load(Ordering::Relaxed),
            links_down: self
                .crews
                .iter()
                .filter(|c| c.proxy.as_ref().is_some_and(|p| !p.is_up()))
                .count(),
            link_outages: self
                .crews
                .iter()
                .filter_map(|c| c.proxy.as_ref())
                .map(|p| p.outages())
                .sum(),
        }
    }

    /// Stops gracefully: the simulated people finish their step, links come back, every agent
    /// sends what it holds (within its deadline) and closes, then the gateway stops.
    ///
    /// Returns the summary as the simulated people stopped: what they recorded is what the
    /// gateway should hold once the agents have drained.
    pub async fn stop(mut self) -> Summary {
        self.stop.cancel();
        let tasks = &mut self.tasks;
        let finished = tokio::time::timeout(PEOPLE_STOP_DEADLINE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!("simulated devices still busy at the deadline; aborting them");
            self.tasks.abort_all();
        }
        let last = self.summary();
        let mut agents = JoinSet::new();
        for hub in self.hubs {
            agents.spawn(hub.shutdown());
        }
        for crew in self.crews {
            if let Some(proxy) = &crew.proxy {
                proxy.restore();
            }
            agents.spawn(async move {
                crew.agent.shutdown().await;
                // The link goes only once the agent has finished with it.
                drop(crew.proxy);
            });
        }
        agents.spawn(self.operative.agent.shutdown());
        while agents.join_next().await.is_some() {}
        self.gateway.stop().await;
        last
    }
}

/// What the demo's one-line summary says.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Simulated time now.
    pub sim_time: DateTime<Utc>,
    /// Records the gateway has stored since it started.
    pub records_stored: u64,
    /// Devices the gateway sees online.
    pub devices_online: usize,
    /// The demo's devices.
    pub devices: usize,
    /// Records waiting in the hubs' outboxes.
    pub outbox_hubs: u64,
    /// Records waiting in the cabs' outboxes.
    pub outbox_crews: u64,
    /// Records waiting in the operative's outbox.
    pub outbox_operative: u64,
    /// Collections the crews have recorded.
    pub collections: u64,
    /// Rounds the crews have completed.
    pub rounds_completed: u64,
    /// Missed bins the crews went back for (return jobs done).
    pub returns: u64,
    /// Jobs the operative has completed.
    pub jobs_completed: u64,
    /// Crews whose link is down now.
    pub links_down: usize,
    /// Times crews' links have dropped since the demo started.
    pub link_outages: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sim {} | stored {} records | online {}/{} | outbox hubs {} cabs {} op {} | \
             {} collections, {} rounds, {} returns | {} repairs done | links down {} ({} outages)",
            self.sim_time.format("%a %H:%M"),
            self.records_stored,
            self.devices_online,
            self.devices,
            self.outbox_hubs,
            self.outbox_crews,
            self.outbox_operative,
            self.collections,
            self.rounds_completed,
            self.returns,
            self.jobs_completed,
            self.links_down,
            self.link_outages,
        )
    }
}

/// Runs the demo until `shutdown` resolves: prints where everything is, logs a summary every
/// [`DemoConfig::summary_every`], then stops gracefully.
pub async fn run(config: DemoConfig, shutdown: impl Future<Output = ()>) -> Result<(), SimError> {
    let every = config.summary_every.max(Duration::from_millis(100));
    let mut demo = Demo::prepare(config).await?;
    println!("{}", demo.directory());
    demo.launch();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut previous = 0;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => {
                let summary = demo.summary();
                let rate = summary.records_stored.saturating_sub(previous) as f64 / every.as_secs_f64();
                previous = summary.records_stored;
                tracing::info!("{summary} | {rate:.0} rec/s");
            }
        }
    }
    tracing::info!("stopping: devices send what they hold, then the gateway stops");
    let last = demo.stop().await;
    tracing::info!(
        collections = last.collections,
        jobs_completed = last.jobs_completed,
        "demo stopped"
    );
    Ok(())
}

/// A hub's site, as the dispatcher knows it.
struct Site {
    asset: String,
    address: String,
    faults: Vec<FaultPlan>,
    repairer: mpsc::UnboundedSender<()>,
}

/// Gives the operative repair jobs, and repairs boilers when their jobs are done.
struct Dispatcher {
    jobs: JobStore,
    outbox: Outbox,
    sites: Vec<Site>,
    issued: u64,
    /// Which site each job was for.
    for_site: HashMap<String, usize>,
}

impl Dispatcher {
    /// Puts a job on the operative's device, durably, as the downlink would.
    async fn issue(&mut self, site: usize, desc: String, prio: Priority) {
        let Some(target) = self.sites.get(site) else {
            return;
        };
        self.issued += 1;
        let id = format!("R-{:05}", self.issued);
        let within = match prio {
            Priority::Emergency => Duration::from_secs(24 * 3600),
            Priority::Urgent => Duration::from_secs(3 * 24 * 3600),
            Priority::Routine | Priority::Planned => Duration::from_secs(28 * 24 * 3600),
        };
        let job = Job {
            id: id.clone(),
            rev: 1,
            due: now_ms().saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX)),
            kind: JobKind::Repair(RepairJob {
                asset: target.asset.clone(),
                addr: target.address.clone(),
                desc,
                prio,
            }),
        };
        let applied = self.jobs.apply_job(job, now_ms());
        let synced = self.outbox.sync().await;
        match (applied, synced) {
            (Ok(_), Ok(())) => {
                tracing::info!(job = %id, asset = %target.asset, ?prio, "repair job dispatched");
                self.for_site.insert(id, site);
            }
            (Err(e), _) => tracing::warn!(error = %e, "cannot dispatch a job"),
            (_, Err(e)) => tracing::warn!(error = %e, "cannot flush a dispatched job"),
        }
    }

    /// A job was completed: the engineer fixed the boiler.
    fn completed(&mut self, job: &str) {
        if let Some(site) = self.for_site.remove(job).and_then(|i| self.sites.get(i)) {
            let _ = site.repairer.send(());
        }
    }
}

/// What a fault's repair job says.
fn job_for(fault: Fault) -> (String, Priority) {
    match fault {
        Fault::Code(code) => (
            format!("Boiler locked out with fault code {code}; no heating or hot water."),
            Priority::Emergency,
        ),
        Fault::LowPressure => (
            "Boiler pressure low and falling; find the leak and repressurise.".into(),
            Priority::Urgent,
        ),
        Fault::ShortCycling => (
            "Boiler short cycling; check TRVs, pump and anti-cycle setting.".into(),
            Priority::Routine,
        ),
        Fault::HotFlow => (
            "Boiler not condensing; set weather compensation and pump speed.".into(),
            Priority::Planned,
        ),
        Fault::Quiet => (
            "Boiler sensor hub not reporting; check its power and OpenTherm link.".into(),
            Priority::Routine,
        ),
    }
}

/// The dispatcher's loop: a job for each fault some time after it begins, a routine check every
/// few hours, a repair for each completed job.
async fn dispatch(
    mut dispatcher: Dispatcher,
    clock: SimClock,
    mut completed: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) {
    // Every fault's report, in time order.
    let mut reports: Vec<(Duration, usize, Fault)> = dispatcher
        .sites
        .iter()
        .enumerate()
        .flat_map(|(site, s)| {
            s.faults
                .iter()
                .map(move |plan| (plan.onset + REPORTED_AFTER, site, plan.fault))
        })
        .collect();
    reports.sort_by_key(|(at, site, _)| (*at, *site));
    let mut reports = reports.into_iter().peekable();
    let mut next_routine = FIRST_ROUTINE;
    let mut routine_site = 0usize;
    loop {
        let next_report = reports.peek().map(|(at, _, _)| *at);
        let due = next_report.map_or(next_routine, |at| at.min(next_routine));
        let wait = clock.real(due.saturating_sub(clock.elapsed()));
        tokio::select! {
            () = stop.cancelled() => return,
            Some(job) = completed.recv() => {
                dispatcher.completed(&job);
                continue;
            }
            () = tokio::time::sleep(wait) => {}
        }
        if next_report.is_some_and(|at| at <= next_routine) {
            if let Some((_, site, fault)) = reports.next() {
                let (desc, prio) = job_for(fault);
                dispatcher.issue(site, desc, prio).await;
            }
        } else if !dispatcher.sites.is_empty() {
            let site = routine_site % dispatcher.sites.len();
            routine_site += 1;
            next_routine += ROUTINE_EVERY;
            dispatcher
                .issue(
                    site,
                    "Annual gas safety check (landlord's gas safety record).".into(),
                    Priority::Planned,
                )
                .await;
        } else {
            next_routine += ROUTINE_EVERY;
        }
    }
}

/// The preferred HTTP address if it is free now, else any free loopback port.
fn preferred_http() -> SocketAddr {
    let preferred = SocketAddr::from(PREFERRED_HTTP);
    match TcpListener::bind(preferred) {
        Ok(_) => preferred,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

/// A seed for the `index`th device of a `kind`, derived from the run's seed so that each device
/// differs and the whole run is reproducible.
pub fn seed_for(seed: u64, kind: u64, index: usize) -> u64 {
    // SplitMix64's finaliser: nearby inputs give unrelated outputs.
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(kind << 32)
        .wrapping_add(index as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_faults_show_every_kind_once_in_eight_hubs() {
        let faults = default_faults(8);
        let kinds: Vec<Fault> = faults.iter().map(|(_, p)| p.fault).collect();
        assert_eq!(
            kinds,
            [
                Fault::ShortCycling,
                Fault::LowPressure,
                Fault::Code(28),
                Fault::Quiet,
                Fault::HotFlow
            ]
        );
        assert_eq!(faults[0].0, 2);
        assert!(default_faults(1).is_empty());
        assert_eq!(default_faults(5).len(), 4);
    }

    #[test]
    fn seeds_differ_per_device_and_repeat_per_run() {
        assert_eq!(seed_for(1, 1, 0), seed_for(1, 1, 0));
        assert_ne!(seed_for(1, 1, 0), seed_for(1, 1, 1));
        assert_ne!(seed_for(1, 1, 0), seed_for(1, 2, 0));
        assert_ne!(seed_for(1, 1, 0), seed_for(2, 1, 0));
    }

    #[test]
    fn the_summary_is_one_line() {
        let summary = Summary {
            sim_time: DateTime::parse_from_rfc3339("2026-01-13T07:42:00Z")
                .unwrap()
                .with_timezone(&Utc),
            records_stored: 1234,
            devices_online: 8,
            devices: 8,
            outbox_hubs: 3,
            outbox_crews: 0,
            outbox_operative: 0,
            collections: 45,
            rounds_completed: 1,
            returns: 0,
            jobs_completed: 2,
            links_down: 1,
            link_outages: 3,
        };
        let line = summary.to_string();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("sim Tue 07:42 | stored 1234 records | online 8/8"));
    }
}
