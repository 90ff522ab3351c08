//! The whole system on one machine, in one process: a gateway on its embedded broker, boiler
//! hubs, refuse crews, a repairs operative, residents and tenants at the council's front end, and
//! an asset manager at the staff API, all on one compressed simulated clock.
//!
//! [`Demo::start`] wires it top to bottom: the clock → the gateway (on the clock, with the
//! property and asset registers, repairs raised by critical alerts) → the hubs (agent + boiler
//! model) → the crews (agent, optionally behind a [`LinkProxy`] that drops like patchy 4G, and
//! the crew walking its rounds over the agent's HTTP API) → the operative (agent + the operative
//! working the jobs the gateway sends) → the residents, tenants and asset manager. [`Demo::stop`]
//! undoes it: the simulated people stop, links come back, agents send what they hold and close,
//! the front end and the asset manager read where everything ended ([`Ending`]); then
//! [`Finished::close`] stops the gateway.
//!
//! Every agent and the gateway read the same [`SimClock`] as the models, so an hour of a
//! boiler's firing is an hour of records, a report's window is the simulated day's, and an alert
//! for a boiler silent for twenty minutes opens twenty simulated minutes after its last sample.
//! When the operative completes a repair, the boiler it was for is put right, so its alert clears
//! and closes with the job as its evidence.

mod ending;
mod homes;

pub use ending::{BoilerAlerts, Ending, HeatingReports, MissedBinReports};
pub use homes::Home;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use edge_agent::agent::Agent;
use gateway::access::Role;
use gateway::config::GatewayConfig;
use gateway::devices::Issued;
use gateway::repairs::{AssignRule, Operative};
use gateway::Gateway;
use proto::clock::SystemClock;
use proto::BinStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::agents::AgentSettings;
use crate::asset_manager::{self, AlertBook};
use crate::boiler::{Boiler, Fault, FaultPlan};
use crate::clock::SimClock;
use crate::crew::{self, CrewConfig, CrewStats};
use crate::http::JsonClient;
use crate::hub::Hub;
use crate::operative::{self, OperativeConfig, OperativeStats};
use crate::proxy::{self, LinkProxy};
use crate::residents::{self, FrontEnd, ReportBook};
use crate::SimError;

/// How long the gateway's ingest may take to subscribe.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the simulated people get to finish their current step at shutdown.
const PEOPLE_STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How often, in real time, a hub's model advances and sends its readings.
const HUB_TICK: Duration = Duration::from_millis(250);
/// The gateway's HTTP address tried first when none is given.
const PREFERRED_HTTP: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
/// Real seconds between the gateway's boiler and repairs ticks: a simulated minute at the
/// default speed, so that silence and finished hours are noticed on time.
const DESK_TICK_S: u64 = 1;

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
    /// real time. Default 06:00. Every record, and the gateway's clock, is on simulated time.
    pub start_at: Option<NaiveTime>,
    /// The simulated day the demo starts on (with [`DemoConfig::start_at`]); `None`: today.
    /// The crews work the rounds the register has on each simulated day.
    pub start_date: Option<NaiveDate>,
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
            start_date: None,
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

/// The staff tokens and front-end key issued for this run.
#[derive(Debug, Clone)]
struct Credentials {
    /// A waste supervisor's token.
    waste: String,
    /// An asset manager's token.
    assets: String,
    /// The residents' front end's Open311 `api_key`.
    front_end: String,
}

/// The running demo.
pub struct Demo {
    gateway: Gateway,
    hubs: Vec<Hub>,
    hub_faults: Vec<Vec<FaultPlan>>,
    crews: Vec<CrewUnit>,
    operative: OperativeUnit,
    /// The simulated people and the links' flapping, once launched.
    tasks: JoinSet<()>,
    /// The same, before [`Demo::launch`].
    pending: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
    stop: CancellationToken,
    clock: SimClock,
    credentials: Credentials,
    /// What the residents and tenants filed, and what became of it.
    reports: Arc<ReportBook>,
    /// The alerts the asset manager saw.
    alerts: Arc<AlertBook>,
    /// When the demo began, simulated, as RFC 3339 (the alerts' window).
    began: String,
    /// A home and bin collected on the first simulated day, for the banner's example report.
    example: Option<(u64, BinStream)>,
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

    /// Sets the people going: crews, operative, residents, asset manager, and the links'
    /// flapping.
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
        if rounds.is_empty() && config.crews > 0 {
            return Err(SimError::Invalid(
                "the property register has no rounds for the crews".into(),
            ));
        }

        // Device ids, known to the gateway in advance.
        let hub_ids: Vec<String> = (1..=config.hubs).map(|i| format!("hub-{i:02}")).collect();
        let crew_ids: Vec<String> = (1..=config.crews).map(|i| format!("cab-{i:02}")).collect();
        let operative_id = "op-01".to_owned();

        start_afresh(&config.data_dir)?;

        // One simulated clock for the models, the agents and the gateway.
        let clock = match config.start_at {
            Some(time) => SimClock::starting_at(
                config
                    .start_date
                    .unwrap_or_else(|| Utc::now().date_naive())
                    .and_time(time)
                    .and_utc(),
                config.speed,
            ),
            None => SimClock::start(config.speed),
        };
        let began = clock.now().to_rfc3339_opts(SecondsFormat::Secs, true);
        // For the banner's example report: the last home on the first round due today.
        let today = clock.now().date_naive();
        let example = rounds.iter().find_map(|round| {
            let stream = *round.streams_due(today).first()?;
            let home = round
                .stops
                .iter()
                .rev()
                .find(|stop| stop.collects_on(stream, Some(today)))?;
            Some((home.uprn, stream))
        });

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
        // Repairs: one operative; critical alerts raise their own jobs; the desks tick every
        // simulated minute.
        gateway_config.repairs.operatives = vec![Operative {
            device: operative_id.clone(),
            name: "Ada Okafor".into(),
            patch: Vec::new(),
        }];
        gateway_config.repairs.rule = AssignRule::LeastLoaded;
        gateway_config.repairs.auto_raise = true;
        gateway_config.repairs.tick_s = DESK_TICK_S;
        gateway_config.boilers.tick_s = DESK_TICK_S;
        // A hub samples every `sample_s` real seconds: that many times `speed` simulated ones,
        // which is what coverage and silence are judged against.
        gateway_config.boilers.rules.rollup.sample_interval_ms =
            (f64::from(config.sample_s.max(1)) * config.speed * 1000.0).round() as i64;
        // People's sessions on the dashboard, and rate limits, keep real time.
        let gateway =
            Gateway::start_with_clocks(gateway_config, clock.shared(), SystemClock::shared())
                .await?;
        if !gateway.wait_ready(READY_TIMEOUT).await {
            gateway.stop().await;
            return Err(SimError::NotReady(READY_TIMEOUT));
        }

        // The council's homes with a boiler hub, one per home on the register (in UPRN order).
        let properties: Vec<_> = register.iter().collect();
        let homes: Vec<Home> = hub_ids
            .iter()
            .enumerate()
            .map(|(index, device)| {
                let property = properties.get(index);
                let spec = Boiler::new("", seed_for(config.seed, 1, index), Vec::new())
                    .spec()
                    .clone();
                Home {
                    device: device.clone(),
                    asset: property.map_or_else(
                        || format!("B-SIM{:04}", index + 1),
                        |p| format!("B-{}", p.uprn),
                    ),
                    uprn: property.map(|p| p.uprn),
                    address: property.map_or_else(
                        || format!("Simulated home {}", index + 1),
                        |p| p.address.clone(),
                    ),
                    rated_kw: spec.max_output_kw,
                    heat_meter: spec.heat_meter,
                    faults: faults
                        .iter()
                        .filter(|(hub, _)| *hub == index + 1)
                        .map(|(_, plan)| *plan)
                        .collect(),
                }
            })
            .collect();
        let devices: Vec<String> = hub_ids
            .iter()
            .chain(&crew_ids)
            .chain(std::iter::once(&operative_id))
            .cloned()
            .collect();
        let setup = Self::set_up_gateway(&gateway, &csv, &homes, &devices).await;
        let (credentials, issued) = match setup {
            Ok(done) => done,
            Err(error) => {
                gateway.stop().await;
                return Err(error);
            }
        };
        let broker = SocketAddr::from(([127, 0, 0, 1], gateway.mqtt.1));
        let settings = AgentSettings {
            data_root: config.data_dir.join("agents"),
            mqtt_host: broker.ip().to_string(),
            mqtt_port: broker.port(),
            sample_s: config.sample_s,
            health_s: 30,
            shutdown_deadline_s: 5,
            credentials: issued,
        };
        let stop = CancellationToken::new();
        let mut pending: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();

        // Boiler hubs.
        let mut hubs = Vec::with_capacity(homes.len());
        let mut hub_faults = Vec::with_capacity(homes.len());
        for (index, home) in homes.iter().enumerate() {
            let boiler = Boiler::new(
                home.asset.clone(),
                seed_for(config.seed, 1, index),
                home.faults.clone(),
            );
            let agent = settings.start(&home.device, None, clock.shared()).await?;
            let hub =
                Hub::start(agent, boiler, clock, HUB_TICK).map_err(|source| SimError::Source {
                    device: home.device.clone(),
                    source,
                })?;
            hubs.push(hub);
            hub_faults.push(home.faults.clone());
        }

        // Refuse crews, each on its own cab agent, behind a flaky link if asked; what they do
        // is told to the residents.
        let (passes, passed) = mpsc::unbounded_channel();
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
                .start(device, proxy.as_ref().map(|p| p.addr), clock.shared())
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
                    passes: Some(passes.clone()),
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
        drop(passes);

        // The repairs operative, working the jobs the gateway sends; a completed repair puts
        // its boiler right.
        let agent = settings.start(&operative_id, None, clock.shared()).await?;
        let stats = Arc::new(OperativeStats::default());
        let (completed_tx, completed_rx) = mpsc::unbounded_channel();
        let positions = homes
            .iter()
            .zip(&properties)
            .map(|(home, property)| (home.asset.clone(), property.position))
            .collect();
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
        let repairers = hubs
            .iter()
            .map(|hub| (hub.asset.clone(), hub.repairer()))
            .collect();
        pending.push(Box::pin(repair_boilers(
            repairers,
            completed_rx,
            stop.clone(),
        )));
        let operative = OperativeUnit {
            device: operative_id,
            agent,
            stats,
        };

        // The residents and tenants at the council's front end, and the asset manager.
        let http = format!("http://{}", gateway.http_addr);
        let reports = Arc::new(ReportBook::default());
        pending.push(Box::pin(residents::run(
            FrontEnd::new(JsonClient::new(&http), &credentials.front_end),
            homes::tenants_reports(&homes),
            passed,
            clock,
            Arc::clone(&reports),
            seed_for(config.seed, 5, 0),
            stop.clone(),
        )));
        let alerts = Arc::new(AlertBook::default());
        pending.push(Box::pin(asset_manager::run(
            JsonClient::new(&http).with_bearer(&credentials.assets),
            clock,
            Arc::clone(&alerts),
            began.clone(),
            stop.clone(),
        )));

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
            credentials,
            reports,
            alerts,
            began,
            example,
            data_dir: config.data_dir,
            flaky: config.flaky,
        })
    }

    /// Gives the gateway its registers (properties for the crews, assets for the hubs) and
    /// issues this run's credentials: staff tokens, the front end's key and every device's, as
    /// `gateway staff add`, `gateway integrations add` and `gateway devices add` would (new at
    /// every run, the previous run's replaced).
    async fn set_up_gateway(
        gateway: &Gateway,
        properties_csv: &[u8],
        homes: &[Home],
        devices: &[String],
    ) -> Result<(Credentials, BTreeMap<String, Issued>), SimError> {
        gateway
            .desk
            .import_properties(properties_csv)
            .map_err(SimError::Register)?;
        let assets = homes::register_csv(homes);
        let imported = gateway
            .boilers
            .import_assets(assets.as_bytes())
            .map_err(|e| SimError::Invalid(format!("the hubs' asset register: {e}")))?;
        tracing::debug!(?imported, "asset register imported");
        let token = |name: &str, role| {
            gateway
                .access
                .add_staff(name, role, true)
                .map(|issued| issued.token.reveal().to_owned())
        };
        let credentials = Credentials {
            waste: token("demo-waste", Role::WasteSupervisor)?,
            assets: token("demo-assets", Role::AssetManager)?,
            front_end: gateway
                .access
                .add_integration("demo-front-end", true)?
                .token
                .reveal()
                .to_owned(),
        };
        let issued = crate::agents::issue_credentials(&gateway.devices, devices).await?;
        Ok((credentials, issued))
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

    /// A waste supervisor's bearer token for the gateway's staff API, issued for this run.
    pub fn staff_token(&self) -> &str {
        &self.credentials.waste
    }

    /// An asset manager's bearer token, issued for this run.
    pub fn asset_manager_token(&self) -> &str {
        &self.credentials.assets
    }

    /// The residents' front end's Open311 `api_key`, issued for this run.
    pub fn front_end_key(&self) -> &str {
        &self.credentials.front_end
    }

    /// The simulated clock every part of the demo reads.
    pub fn clock(&self) -> SimClock {
        self.clock
    }

    /// What the residents and tenants have filed so far, as their front end last read it.
    pub fn reports(&self) -> BTreeMap<String, residents::Filed> {
        self.reports.reports()
    }

    /// When the demo began, simulated (RFC 3339).
    pub fn began(&self) -> &str {
        &self.began
    }

    /// Where everything is, for people: the dashboard first, then the APIs, the broker and each
    /// device's API.
    pub fn directory(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        let http = self.gateway.http_addr;
        let _ = writeln!(
            out,
            "fieldsync demo: open the dashboard at http://{http}/dashboard/"
        );
        let _ = writeln!(
            out,
            "  sign in as an asset manager   {}  (boilers, alerts, repairs)",
            self.credentials.assets
        );
        let _ = writeln!(
            out,
            "  sign in as a waste supervisor {}  (rounds, missed bins, devices)",
            self.credentials.waste
        );
        let speed = self.clock.speed();
        let _ = writeln!(
            out,
            "{} boiler hubs, {} refuse crews, 1 repairs operative, residents and tenants; simulated \
             time runs {speed}x (a real second is {speed} simulated seconds), from {}{}",
            self.hubs.len(),
            self.crews.len(),
            self.clock.now().format("%a %H:%M UTC"),
            if self.flaky { "; crews' links are flaky" } else { "" },
        );
        let (host, port) = &self.gateway.mqtt;
        let _ = writeln!(out, "  MQTT broker (embedded)  mqtt://{host}:{port}");
        let _ = writeln!(
            out,
            "  staff API               curl -H 'Authorization: Bearer {}' http://{http}/api/v1/alerts",
            self.credentials.assets
        );
        let _ = writeln!(
            out,
            "  Open311 (residents)     http://{http}/open311/v2/requests.json  (api_key {})",
            self.credentials.front_end
        );
        if let Some((uprn, stream)) = self.example {
            let _ = writeln!(
                out,
                "  report a missed bin     curl -d api_key={} -d service_code={} -d \
                 address_id={uprn} http://{http}/open311/v2/requests.json",
                self.credentials.front_end,
                stream.as_str()
            );
        }
        let _ = writeln!(out, "  data                    {}", self.data_dir.display());
        for (hub, faults) in self.hubs.iter().zip(&self.hub_faults) {
            let faults = faults_in_words(faults);
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

    /// Stops the devices gracefully: the simulated people finish their step, links come back,
    /// every agent sends what it holds (within its deadline) and closes; then the residents' front
    /// end and the asset manager read where everything ended. The gateway keeps serving until
    /// [`Finished::close`].
    pub async fn stop(mut self) -> Finished {
        self.stop.cancel();
        let tasks = &mut self.tasks;
        let finished = tokio::time::timeout(PEOPLE_STOP_DEADLINE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!("simulated people still busy at the deadline; aborting them");
            self.tasks.abort_all();
        }
        let summary = self.summary();
        let until = self.clock.now();
        let hubs: Vec<(String, String, String)> = self
            .hubs
            .iter()
            .zip(&self.hub_faults)
            .map(|(hub, faults)| {
                (
                    hub.device.clone(),
                    hub.asset.clone(),
                    faults_in_words(faults),
                )
            })
            .collect();
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

        let http = format!("http://{}", self.gateway.http_addr);
        let front_end = FrontEnd::new(JsonClient::new(&http), &self.credentials.front_end);
        self.reports.refresh(&front_end).await;
        let staff = JsonClient::new(&http).with_bearer(&self.credentials.assets);
        if let Err(error) = self.alerts.refresh(&staff, &self.began).await {
            tracing::warn!(%error, "cannot read the alerts for the summary");
        }
        let ending = Ending::new(
            &self.reports.reports(),
            &self.alerts.alerts(),
            &hubs,
            summary.jobs_completed,
            until,
        );
        Finished {
            summary,
            ending,
            gateway: self.gateway,
        }
    }
}

/// The demo with its devices stopped and its gateway still serving, so that what it holds can be
/// read.
#[must_use = "the gateway serves until `Finished::close`"]
pub struct Finished {
    /// The summary as the simulated people stopped: what they recorded is what the gateway holds
    /// once the agents have drained.
    pub summary: Summary,
    /// What became of the reports, alerts and repairs.
    pub ending: Ending,
    gateway: Gateway,
}

impl Finished {
    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Stops the gateway.
    pub async fn close(self) {
        self.gateway.stop().await;
    }
}

/// A hub's faults in words, `healthy` if none.
fn faults_in_words(faults: &[FaultPlan]) -> String {
    if faults.is_empty() {
        return "healthy".to_owned();
    }
    faults
        .iter()
        .map(FaultPlan::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
    let finished = demo.stop().await;
    println!("{}", finished.ending);
    finished.close().await;
    tracing::info!("demo stopped");
    Ok(())
}

/// Puts right the boiler of each repair the operative completes (the engineer's visit), by its
/// asset id, until `stop`.
async fn repair_boilers(
    repairers: BTreeMap<String, mpsc::UnboundedSender<()>>,
    mut completed: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) {
    loop {
        let asset = tokio::select! {
            () = stop.cancelled() => return,
            asset = completed.recv() => asset,
        };
        let Some(asset) = asset else { return };
        if let Some(repairer) = repairers.get(&asset) {
            let _ = repairer.send(());
        }
    }
}

/// The file that marks a directory as the demo's own, to clear at the next start.
const DATA_DIR_MARK: &str = ".fieldsync-demo";

/// Clears what an earlier run left in `data_dir` (its gateway's and agents' stores), so that each
/// run starts on an empty simulated morning: records of an earlier run's later simulated days
/// would stand in the new run's future. Only a directory the demo marked as its own is cleared;
/// one holding a `gateway` or `agents` directory without the mark is refused, in case it is not
/// the demo's.
fn start_afresh(data_dir: &std::path::Path) -> Result<(), SimError> {
    let failed = |source| SimError::DataDir {
        dir: data_dir.to_owned(),
        source,
    };
    let stores = [data_dir.join("gateway"), data_dir.join("agents")];
    if data_dir.join(DATA_DIR_MARK).exists() {
        for store in &stores {
            match std::fs::remove_dir_all(store) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
                _ => {}
            }
        }
    } else if stores.iter().any(|store| store.exists()) {
        return Err(SimError::Invalid(format!(
            "{} holds stores the demo did not mark as its own (no {DATA_DIR_MARK}); remove \
             them, or give the demo another --data-dir",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(failed)?;
    std::fs::write(
        data_dir.join(DATA_DIR_MARK),
        "The fieldsync demo's data: cleared at every start of the demo.\n",
    )
    .map_err(failed)
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
    fn each_run_starts_afresh_in_a_directory_the_demo_marked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("demo");
        start_afresh(&data).unwrap();
        std::fs::create_dir_all(data.join("gateway/db")).unwrap();
        start_afresh(&data).unwrap();
        assert!(!data.join("gateway").exists());
        // Someone else's stores are left alone.
        let other = dir.path().join("other");
        std::fs::create_dir_all(other.join("agents/cab-01")).unwrap();
        assert!(matches!(start_afresh(&other), Err(SimError::Invalid(_))));
        assert!(other.join("agents/cab-01").exists());
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
