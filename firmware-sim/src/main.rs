//! The `firmware-sim` binary: parses flags, sets up logging, and runs one of the `firmware_sim`
//! library's simulations until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::NaiveTime;
use clap::{Args, Parser, Subcommand};
use firmware_sim::boiler::{parse_duration, FaultPlan};
use firmware_sim::clock::SimClock;
use firmware_sim::crew::{self, CrewConfig, CrewStats};
use firmware_sim::demo::{self, DemoConfig};
use firmware_sim::http::JsonClient;
use firmware_sim::hub::{self, FleetConfig};
use firmware_sim::load::{self, LoadConfig};
use firmware_sim::operative::{self, OperativeConfig, OperativeStats};
use firmware_sim::soak;
use tokio_util::sync::CancellationToken;

/// Simulated boiler hubs, refuse crews and repairs operatives for fieldsync, driving real edge
/// agents against a real gateway.
///
/// `firmware-sim demo` runs the whole system on this machine in one process: a gateway on its
/// embedded broker and store, boiler hubs, refuse crews and a repairs operative, each device with
/// its own edge agent, in compressed time. The other commands run one kind of simulated device
/// against a gateway or agent that runs elsewhere. Logging follows RUST_LOG (default `info`, with
/// the libraries' own chatter at `warn`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole system in one process: gateway (embedded broker, sled), hubs, crews, operative.
    Demo(DemoArgs),
    /// Simulated boiler hubs (each an in-process agent) publishing to an external broker.
    Hubs(HubsArgs),
    /// A refuse crew walking one round through an agent's local API.
    Crew(CrewArgs),
    /// A repairs operative working the jobs on an agent through its local API.
    Operative(OperativeArgs),
    /// Load a gateway: many hubs, each a real agent, sampling faster than real hubs.
    Load(LoadArgs),
    /// The whole demo at high speed for a set time, sampling this process's memory and open
    /// files; fails if they grow after warm-up beyond the bounds. Run it in release mode.
    Soak(SoakArgs),
}

#[derive(Debug, Args)]
struct SoakArgs {
    /// Real minutes to run.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,

    /// Where the gateway's store and every agent's database go (emptied first).
    #[arg(long, default_value = "data/soak")]
    data_dir: PathBuf,

    /// Number of boiler hubs.
    #[arg(long, default_value_t = 50)]
    hubs: usize,

    /// Number of refuse crews.
    #[arg(long, default_value_t = 4)]
    crews: usize,

    /// Real seconds between samples of memory and open files.
    #[arg(long, default_value_t = 10)]
    sample_every_s: u64,

    /// Resident memory may grow by at most this many MiB after the first quarter of the run.
    #[arg(long, default_value_t = 64)]
    max_rss_growth_mib: u64,

    /// Resident memory may never exceed this many MiB.
    #[arg(long, default_value_t = 1024)]
    max_rss_mib: u64,

    /// Open files may grow by at most this many after the first quarter of the run.
    #[arg(long, default_value_t = 16)]
    max_open_files_growth: u64,

    /// Simulated seconds per real second [default: 600, ten minutes a second].
    #[arg(long, default_value_t = 600.0)]
    speed: f64,

    /// Seeds every model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Options shared by the simulations.
#[derive(Debug, Args)]
struct SimArgs {
    /// Simulated seconds per real second: 60 makes a minute pass each second.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,

    /// Seeds every model, so that a run can be repeated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
struct FaultArgs {
    /// A fault for one hub, as HUB=KIND[@ONSET] with HUB numbered from 1, KIND one of
    /// short-cycling, low-pressure, code:N (a lockout with that OEM code), hot-flow (not
    /// condensing) or quiet (the hub stops reporting), and ONSET a simulated delay such as 30m or
    /// 2h (default: at once). Repeatable; replaces that hub's default fault [default: none].
    #[arg(long = "fault", value_name = "HUB=KIND[@ONSET]", value_parser = parse_fault)]
    faults: Vec<(usize, FaultPlan)>,
}

impl FaultArgs {
    /// The faults for `hubs` hubs: `defaults`' ([`demo::default_faults`]) if asked, each hub's
    /// replaced by those given with `--fault`.
    fn resolve(&self, hubs: usize, defaults: bool) -> Vec<(usize, FaultPlan)> {
        let mut faults: Vec<(usize, FaultPlan)> = if defaults {
            demo::default_faults(hubs)
        } else {
            Vec::new()
        };
        faults.retain(|(hub, _)| !self.faults.iter().any(|(given, _)| given == hub));
        faults.extend(self.faults.iter().copied());
        faults.sort_by_key(|(hub, _)| *hub);
        faults
    }
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where the gateway's store and every agent's database go; cleared at every start (only
    /// a directory the demo marked as its own).
    #[arg(long, default_value = "data/demo")]
    data_dir: PathBuf,

    /// Address of the embedded MQTT broker [default: a free port on 127.0.0.1, since 1883 is
    /// often held by a Mosquitto].
    #[arg(long)]
    mqtt_listen: Option<SocketAddr>,

    /// Address of the gateway's HTTP server [default: 127.0.0.1:8080 if free, else a free port].
    #[arg(long)]
    http_listen: Option<SocketAddr>,

    /// Number of boiler hubs.
    #[arg(long, default_value_t = 5)]
    hubs: usize,

    /// Number of refuse crews (they share the register's rounds).
    #[arg(long, default_value_t = 2)]
    crews: usize,

    /// Crews' links drop for a while now and then, like patchy 4G (through a proxy the demo cuts
    /// and restores) [default: off].
    #[arg(long)]
    flaky: bool,

    /// No faults but those given with --fault [default: off: hub 2 short-cycles, hub 3 leaks
    /// pressure from 1h, hub 4 locks out with code 28 from 3h, hub 5 goes quiet from 2h, hub 6
    /// runs hot and never condenses, and so on every eight hubs].
    #[arg(long)]
    healthy: bool,

    /// Property register CSV in the gateway's format [default: the built-in 33 Hillingdon
    /// properties on 3 rounds, data/hillingdon.csv].
    #[arg(long)]
    properties: Option<PathBuf>,

    /// Seconds between summary lines.
    #[arg(long, default_value_t = 10)]
    summary_s: u64,

    /// The simulated time of day (UTC, HH:MM, today) the demo starts at, or `now`; crews work
    /// the day's rounds from 06:30, boilers follow the day. Every record, and the gateway, is on
    /// the simulated clock.
    #[arg(long, default_value = "06:00", value_parser = parse_start)]
    start: Start,

    #[command(flatten)]
    sim: SimArgs,

    #[command(flatten)]
    faults: FaultArgs,
}

/// When simulated time starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// At the real time.
    Now,
    /// At this time of day, today.
    At(NaiveTime),
}

fn parse_start(text: &str) -> Result<Start, String> {
    if text == "now" {
        return Ok(Start::Now);
    }
    NaiveTime::parse_from_str(text, "%H:%M")
        .map(Start::At)
        .map_err(|_| format!("{text:?}: expected HH:MM or now"))
}

#[derive(Debug, Args)]
struct HubsArgs {
    /// The broker, as HOST:PORT (for example the gateway's, 127.0.0.1:1883).
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: String,

    /// Number of hubs.
    #[arg(long, default_value_t = 5)]
    count: usize,

    /// Device ids are PREFIX-01, PREFIX-02…
    #[arg(long, default_value = "hub")]
    prefix: String,

    /// Where each hub's agent keeps its database ({data-dir}/{device}).
    #[arg(long, default_value = "data/hubs")]
    data_dir: PathBuf,

    /// Real seconds between a hub's samples.
    #[arg(long, default_value_t = 1)]
    sample_s: u32,

    /// Seconds between summary lines.
    #[arg(long, default_value_t = 10)]
    summary_s: u64,

    #[command(flatten)]
    sim: SimArgs,

    #[command(flatten)]
    faults: FaultArgs,
}

#[derive(Debug, Args)]
struct CrewArgs {
    /// The cab agent's local API, such as http://127.0.0.1:8181.
    #[arg(long, value_name = "URL")]
    agent_api: String,

    /// The round to walk (its id in the register).
    #[arg(long, value_name = "ROUND")]
    round: String,

    /// Property register CSV in the gateway's format [default: the built-in Hillingdon one].
    #[arg(long, value_name = "FILE")]
    properties: Option<PathBuf>,

    /// The vehicle's fleet id.
    #[arg(long, default_value = "RCV-01")]
    vehicle: String,

    /// Times to walk the round (one stream per pass); 0 walks it until Ctrl-C.
    #[arg(long, default_value_t = 1)]
    passes: u64,

    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Debug, Args)]
struct OperativeArgs {
    /// The handheld agent's local API, such as http://127.0.0.1:8181.
    #[arg(long, value_name = "URL")]
    agent_api: String,

    /// Simulated time between looks for new jobs when there are none (such as 2m).
    #[arg(long, default_value = "2m", value_parser = parse_sim_duration)]
    poll: Duration,

    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// The gateway's broker, as HOST:PORT [default: none: a gateway is started in this process,
    /// on its embedded broker, with its store in {data-dir}/gateway].
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: Option<String>,

    /// Number of hubs, each its own agent with its own database and connection.
    #[arg(long, default_value_t = 100)]
    hubs: usize,

    /// Milliseconds between one hub's samples.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,

    /// Seconds to run, then stop and report [default: until Ctrl-C].
    #[arg(long)]
    duration_s: Option<u64>,

    /// Device ids are PREFIX-0001, PREFIX-0002…
    #[arg(long, default_value = "load")]
    prefix: String,

    /// Where the agents' databases (and an in-process gateway's store) go.
    #[arg(long, default_value = "data/load")]
    data_dir: PathBuf,

    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10)]
    report_s: u64,

    #[command(flatten)]
    sim: SimArgs,
}

fn parse_fault(text: &str) -> Result<(usize, FaultPlan), String> {
    let (hub, plan) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected HUB=KIND[@ONSET], such as 3=low-pressure@1h"))?;
    let hub: usize = hub
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the hub must be a number from 1"))?;
    if hub == 0 {
        return Err(format!("{text:?}: hubs are numbered from 1"));
    }
    let plan = plan.parse::<FaultPlan>().map_err(|e| e.to_string())?;
    Ok((hub, plan))
}

fn parse_sim_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
        .ok_or_else(|| format!("{text:?}: expected a duration such as 90s, 2m or 1h"))
}

fn check_speed(speed: f64) -> anyhow::Result<()> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed must be a positive number, not {speed}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The libraries' own chatter at `warn`; the embedded broker's reports of clients leaving are
    // not errors here. With flaky links the proxy logs each outage, so the agents' reconnection
    // attempts would only repeat it.
    let mut filter = "info,rumqttd=warn,rumqttd::router::routing=off,rumqttd::server::broker=off,\
                      rumqttc=warn,edge_agent=warn,gateway=warn,tower_http=warn"
        .to_owned();
    if matches!(&cli.command, Command::Demo(args) if args.flaky) {
        filter.push_str(",edge_agent::uplink::connection=error");
    }
    tracing_subscriber::fmt()
        // Colour for a person at a terminal; plain text in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .init();
    match cli.command {
        Command::Demo(args) => run_demo(args).await,
        Command::Hubs(args) => run_hubs(args).await,
        Command::Crew(args) => run_crew(args).await,
        Command::Operative(args) => run_operative(args).await,
        Command::Load(args) => run_load(args).await,
        Command::Soak(args) => run_soak(args).await,
    }
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    check_speed(args.sim.speed)?;
    let config = DemoConfig {
        data_dir: args.data_dir,
        mqtt_listen: args.mqtt_listen,
        http_listen: args.http_listen,
        hubs: args.hubs,
        crews: args.crews,
        speed: args.sim.speed,
        seed: args.sim.seed,
        flaky: args.flaky,
        faults: Some(args.faults.resolve(args.hubs, !args.healthy)),
        properties: args.properties,
        summary_every: Duration::from_secs(args.summary_s.max(1)),
        start_at: match args.start {
            Start::Now => None,
            Start::At(time) => Some(time),
        },
        ..DemoConfig::default()
    };
    demo::run(config, shutdown_signal()?)
        .await
        .context("running the demo")
}

async fn run_soak(args: SoakArgs) -> anyhow::Result<()> {
    check_speed(args.speed)?;
    if !(args.minutes.is_finite() && args.minutes > 0.0) {
        bail!("--minutes must be a positive number, not {}", args.minutes);
    }
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("emptying {}", args.data_dir.display()))?;
    }
    const MIB: u64 = 1024 * 1024;
    let config = DemoConfig {
        data_dir: args.data_dir,
        hubs: args.hubs,
        crews: args.crews,
        speed: args.speed,
        seed: args.seed,
        flaky: true,
        summary_every: Duration::from_secs(3600),
        ..DemoConfig::default()
    };
    let bounds = soak::Bounds {
        max_rss_growth_bytes: args.max_rss_growth_mib * MIB,
        max_rss_bytes: args.max_rss_mib * MIB,
        max_open_files_growth: args.max_open_files_growth,
        ..soak::Bounds::default()
    };
    let samples = soak::run(
        config,
        Duration::from_secs_f64(args.minutes * 60.0),
        Duration::from_secs(args.sample_every_s),
    )
    .await
    .context("running the soak")?;
    let breaches = soak::judge(&samples, &bounds);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let peak = samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
        println!(
            "soak: {:.0} s, {} records stored, rss {:.1} → {:.1} MiB (peak {:.1}), open files {} → {}",
            last.at.as_secs_f64(),
            last.records_stored,
            first.rss_bytes as f64 / MIB as f64,
            last.rss_bytes as f64 / MIB as f64,
            peak as f64 / MIB as f64,
            first.open_files,
            last.open_files
        );
    }
    if breaches.is_empty() {
        println!("soak: within bounds");
        Ok(())
    } else {
        for breach in &breaches {
            println!("soak: {breach}");
        }
        bail!("the soak broke {} bound(s)", breaches.len())
    }
}

/// Splits `--mqtt HOST:PORT`.
fn parse_host_port(text: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = text
        .rsplit_once(':')
        .with_context(|| format!("--mqtt {text:?}: expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("--mqtt {text:?}: the port must be a number"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

async fn run_hubs(args: HubsArgs) -> anyhow::Result<()> {
    check_speed(args.sim.speed)?;
    let (host, port) = parse_host_port(&args.mqtt)?;
    if let Some((hub, _)) = args.faults.faults.iter().find(|(hub, _)| *hub > args.count) {
        bail!(
            "--fault names hub {hub}, but there are only {} hubs",
            args.count
        );
    }
    let config = FleetConfig {
        mqtt_host: host,
        mqtt_port: port,
        count: args.count,
        prefix: args.prefix,
        data_dir: args.data_dir,
        speed: args.sim.speed,
        seed: args.sim.seed,
        faults: args.faults.resolve(args.count, false),
        sample_s: args.sample_s,
        summary_every: Duration::from_secs(args.summary_s.max(1)),
    };
    hub::run_fleet(config, shutdown_signal()?)
        .await
        .context("running the hubs")
}

async fn run_crew(args: CrewArgs) -> anyhow::Result<()> {
    check_speed(args.sim.speed)?;
    let rounds = crew::load_rounds(args.properties.as_deref()).with_context(|| {
        format!(
            "reading the property register {}",
            args.properties
                .as_deref()
                .map_or("(built in)".into(), |p| p.display().to_string())
        )
    })?;
    let known: Vec<String> = rounds.iter().map(|r| r.id.clone()).collect();
    let round = rounds
        .into_iter()
        .find(|r| r.id == args.round)
        .with_context(|| {
            format!(
                "round {:?} is not in the register; it has {}",
                args.round,
                known.join(", ")
            )
        })?;
    let stop = CancellationToken::new();
    let stats = Arc::new(CrewStats::default());
    let walk = crew::run(
        JsonClient::new(args.agent_api.clone()),
        CrewConfig {
            vehicle: args.vehicle,
            rounds: vec![round],
            seed: args.sim.seed,
            max_rounds: (args.passes > 0).then_some(args.passes),
            shift: None,
            passes: None,
        },
        SimClock::start(args.sim.speed),
        Arc::clone(&stats),
        stop.clone(),
    );
    let signal = shutdown_signal()?;
    tokio::select! {
        () = walk => {}
        () = signal => {
            stop.cancel();
        }
    }
    let collections = stats.collections.load(std::sync::atomic::Ordering::Relaxed);
    let refused = stats.refused.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{collections} collections recorded through {}; {refused} refused",
        args.agent_api
    );
    Ok(())
}

async fn run_operative(args: OperativeArgs) -> anyhow::Result<()> {
    check_speed(args.sim.speed)?;
    let stop = CancellationToken::new();
    let stats = Arc::new(OperativeStats::default());
    let work = tokio::spawn(operative::run(
        JsonClient::new(args.agent_api.clone()),
        OperativeConfig {
            sites: Default::default(),
            poll: args.poll,
            seed: args.sim.seed,
        },
        SimClock::start(args.sim.speed),
        Arc::clone(&stats),
        None,
        stop.clone(),
    ));
    shutdown_signal()?.await;
    stop.cancel();
    work.await.context("the operative's task failed")?;
    let completed = stats.completed.load(std::sync::atomic::Ordering::Relaxed);
    println!("{completed} jobs completed through {}", args.agent_api);
    Ok(())
}

async fn run_load(args: LoadArgs) -> anyhow::Result<()> {
    check_speed(args.sim.speed)?;
    if args.interval_ms == 0 {
        bail!("--interval-ms must be at least 1");
    }
    let mqtt = args.mqtt.as_deref().map(parse_host_port).transpose()?;
    let config = LoadConfig {
        mqtt,
        hubs: args.hubs,
        interval: Duration::from_millis(args.interval_ms),
        duration: args.duration_s.map(Duration::from_secs),
        prefix: args.prefix,
        data_dir: args.data_dir,
        speed: args.sim.speed,
        seed: args.sim.seed,
        report_every: Duration::from_secs(args.report_s.max(1)),
    };
    let report = load::run(config, shutdown_signal()?)
        .await
        .context("running the load")?;
    println!("{report}");
    Ok(())
}

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed before it returns.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "cannot wait for SIGINT; stopping");
                }
            }
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn faults_parse_and_replace_the_defaults_per_hub() {
        assert!(parse_fault("0=quiet").is_err());
        assert!(parse_fault("quiet").is_err());
        assert!(parse_fault("2=melted").is_err());
        let cli = Cli::try_parse_from([
            "firmware-sim",
            "demo",
            "--fault",
            "2=code:133@1h",
            "--fault",
            "7=quiet",
            "--hubs",
            "7",
        ])
        .unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("a demo");
        };
        let faults = args.faults.resolve(7, !args.healthy);
        let plans: Vec<String> = faults.iter().map(|(h, p)| format!("{h}={p}")).collect();
        assert_eq!(
            plans,
            [
                "2=code:133@3600s",
                "3=low-pressure@3600s",
                "4=code:28@10800s",
                "5=quiet@7200s",
                "6=hot-flow",
                "7=quiet"
            ]
        );
        assert!(args.faults.resolve(7, false).len() == 2);
    }
}
