//! The `gateway` binary: reads the configuration (file, then environment and flags), sets up
//! logging, and runs the gateway until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::access::{AccessRegistry, Issued, Listed, Role};
use gateway::boilers::{BoilerDesk, BoilerDeskSettings};
use gateway::clock::SystemClock;
use gateway::config::GatewayConfig;
use gateway::devices::{rfc3339, snippet, DeviceRegistry};
use gateway::storage::{reports, Storage, StoreSettings};
use gateway::storage::{HolderKind, Revoked};
use gateway::Gateway;

/// The commented default configuration (binary-only: the library has no use for it).
mod print_config;

/// The fieldsync gateway: ingests devices' records exactly once over MQTT, decides residents'
/// missed-bin reports from crews' evidence, and serves staff, residents and dashboards over HTTP.
///
/// Every option can also be set in the TOML configuration file (`gateway print-config` prints
/// the defaults) or through the environment variable named beside it; flags win over the
/// environment, which wins over the file.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML configuration file. Default: none (built-in defaults).
    #[arg(long, env = "FIELDSYNC_GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,

    /// Directory of the embedded store. Default `data/gateway`.
    #[arg(long, env = "FIELDSYNC_GATEWAY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,

    /// Address of the embedded MQTT broker. Default `127.0.0.1:1883`.
    #[arg(long, env = "FIELDSYNC_GATEWAY_MQTT_LISTEN", global = true)]
    mqtt_listen: Option<SocketAddr>,

    /// Use this external MQTT broker (`mqtt://host:port`) instead of the embedded one.
    #[arg(long, env = "FIELDSYNC_GATEWAY_MQTT_URL", global = true)]
    mqtt_url: Option<String>,

    /// With an external broker: subscribe through `$share/GROUP/…` to share devices between
    /// gateway replicas.
    #[arg(long, env = "FIELDSYNC_GATEWAY_MQTT_SHARED_GROUP", global = true)]
    mqtt_shared_group: Option<String>,

    /// Let any client connect to the embedded broker without credentials (no device is
    /// authenticated): for tests only, and loudly warned about. Default: off.
    #[arg(long, env = "FIELDSYNC_GATEWAY_MQTT_ALLOW_ANONYMOUS", global = true)]
    mqtt_allow_anonymous: bool,

    /// Address of the HTTP server. Default `127.0.0.1:8080`.
    #[arg(long, env = "FIELDSYNC_GATEWAY_HTTP_LISTEN", global = true)]
    http_listen: Option<SocketAddr>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Print the default configuration as TOML, every option with its meaning and default.
    PrintConfig,
    /// Import properties from a CSV file into the register (the gateway must not be running on
    /// the same data directory; while it runs, POST the file to /api/v1/properties instead).
    /// Bad rows are reported by line number; the good ones are imported.
    ImportProperties {
        /// The CSV file: `uprn,address,lat,lon,round,order,weekdays,frequency,anchor,streams`.
        file: PathBuf,
    },
    /// Import boilers from a CSV file into the asset register, replacing assets with the same
    /// id (the gateway must not be running on the same data directory). Bad rows are reported
    /// by line number; the good ones are imported.
    ImportAssets {
        /// The CSV file: `asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub`.
        file: PathBuf,
    },
    /// Devices' credentials for the embedded broker (the gateway must not be running on the same
    /// data directory). A device connects with its id as client id and username and its secret
    /// as password; an unknown or revoked device cannot connect.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// Staff's bearer tokens for the staff API, each with its role (the gateway must not be
    /// running on the same data directory). Tokens are printed once and kept only hashed.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Residents' front ends' Open311 api_keys (FixMyStreet, the council's CRM), one per front
    /// end (the gateway must not be running on the same data directory). Keys are printed once
    /// and kept only hashed.
    Integrations {
        #[command(subcommand)]
        command: IntegrationsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Issue a member of staff (or a staff tool) a token with a role, printed on its own line:
    /// `Authorization: Bearer TOKEN`. Shown this once.
    Add {
        /// Who holds it: 1 to 64 letters, digits, '-' or '_' (recorded on what they do, such as
        /// acknowledging an alert).
        name: String,
        /// viewer, asset_manager, waste_supervisor or admin (docs/API.md has what each may do).
        #[arg(long)]
        role: Role,
        /// Issue a new token to a name that has one (lost, revoked, or a new role): the old one
        /// stops working.
        #[arg(long)]
        replace: bool,
    },
    /// Revoke a token: it opens nothing from the next request on.
    Revoke {
        /// Its name.
        name: String,
    },
    /// List the tokens, with their roles and whether they are revoked.
    List,
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// Issue a front end an api_key, printed on its own line. Shown this once.
    Add {
        /// The front end: 1 to 64 letters, digits, '-' or '_'.
        name: String,
        /// Issue a new key to a front end that has one: the old one stops working.
        #[arg(long)]
        replace: bool,
    },
    /// Revoke a key: it opens nothing from the next request on.
    Revoke {
        /// Its name.
        name: String,
    },
    /// List the keys and whether they are revoked.
    List,
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    /// Issue a device its secret and print the agent's configuration for it. The secret is
    /// shown this once; the gateway keeps only its hash.
    Add {
        /// The device id, [A-Za-z0-9_-]{1,64}.
        id: String,
        /// Issue a new secret to a device that has one (lost, or revoked): the old one stops
        /// working.
        #[arg(long)]
        replace: bool,
    },
    /// Revoke a device's secret: it cannot connect again (until `add --replace`). Its records
    /// stay.
    Revoke {
        /// The device id.
        id: String,
    },
    /// List the devices that have a secret, and whether it is revoked.
    List,
}

impl Args {
    /// The configuration file's values with the environment's and flags' on top.
    fn config(&self) -> anyhow::Result<GatewayConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                GatewayConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => GatewayConfig::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = self.mqtt_listen {
            config.mqtt.listen = listen;
        }
        if let Some(url) = &self.mqtt_url {
            config.mqtt.url = Some(url.clone());
        }
        if let Some(group) = &self.mqtt_shared_group {
            config.mqtt.shared_group = Some(group.clone());
        }
        if self.mqtt_allow_anonymous {
            config.mqtt.allow_anonymous = true;
        }
        if let Some(listen) = self.http_listen {
            config.http.listen = listen;
        }
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        // Colour for a person at a terminal; plain text in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn".into()),
        )
        .init();
    match args.command {
        Some(Command::PrintConfig) => {
            print!("{}", print_config::commented_default());
            Ok(())
        }
        Some(Command::ImportProperties { ref file }) => import_properties(&args.config()?, file),
        Some(Command::ImportAssets { ref file }) => import_assets(&args.config()?, file),
        Some(Command::Devices { ref command }) => devices(&args.config()?, command),
        Some(Command::Staff { ref command }) => staff(&args.config()?, command),
        Some(Command::Integrations { ref command }) => integrations(&args.config()?, command),
        Some(Command::Run) | None => run(args.config()?).await,
    }
}

fn import_properties(config: &GatewayConfig, file: &std::path::Path) -> anyhow::Result<()> {
    let csv = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let settings = StoreSettings {
        cache_bytes: config.cache_bytes,
        ..StoreSettings::default()
    };
    let storage = Storage::open_embedded(&config.data_dir, settings).with_context(|| {
        format!(
            "opening the store in {} (is a gateway running on it? then POST the file to \
             /api/v1/properties)",
            config.data_dir.display()
        )
    })?;
    let mut register = storage
        .reports
        .load_register()
        .context("loading the register")?;
    let report = reports::import_properties(storage.reports.as_ref(), &mut register, csv)
        .with_context(|| format!("importing {}", file.display()))?;
    for error in &report.errors {
        eprintln!("{}:{}: {}", file.display(), error.line, error.message);
    }
    println!(
        "imported {} properties from {} ({} rows refused); the register holds {}",
        report.imported,
        file.display(),
        report.errors.len(),
        register.len()
    );
    Ok(())
}

fn import_assets(config: &GatewayConfig, file: &std::path::Path) -> anyhow::Result<()> {
    let csv = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let settings = StoreSettings {
        cache_bytes: config.cache_bytes,
        ..StoreSettings::default()
    };
    let storage = Storage::open_embedded(&config.data_dir, settings).with_context(|| {
        format!(
            "opening the store in {} (is a gateway running on it?)",
            config.data_dir.display()
        )
    })?;
    let desk = BoilerDesk::open(
        config.boilers.rules.clone(),
        storage.boilers.clone(),
        BoilerDeskSettings {
            grace_ms: 0,
            raw_retention_ms: config.boilers.raw_retention_ms(),
            tz: config.missed_bins.calendar.tz,
        },
    )
    .context("loading the asset register")?;
    let report = desk
        .import_assets(std::io::BufReader::new(csv))
        .with_context(|| format!("importing {}", file.display()))?;
    for error in &report.errors {
        eprintln!("{}:{}: {}", file.display(), error.line, error.message);
    }
    println!(
        "imported {} assets from {} ({} rows refused); the register holds {}",
        report.imported,
        file.display(),
        report.errors.len(),
        desk.with_boilers(|boilers| boilers.register().len())
    );
    Ok(())
}

/// The store, for a command run while no gateway has it open.
fn stopped_store(config: &GatewayConfig) -> anyhow::Result<Storage> {
    let settings = StoreSettings {
        cache_bytes: config.cache_bytes,
        ..StoreSettings::default()
    };
    Storage::open_embedded(&config.data_dir, settings).with_context(|| {
        format!(
            "opening the store in {} (is a gateway running on it? stop it first)",
            config.data_dir.display()
        )
    })
}

fn access(config: &GatewayConfig) -> anyhow::Result<AccessRegistry> {
    let storage = stopped_store(config)?;
    Ok(AccessRegistry::new(storage.access, Arc::new(SystemClock)))
}

/// The token alone on stdout, for a script to take; what it is on stderr.
fn print_issued(issued: &Issued, what: &str, how: &str) {
    println!("{}", issued.token.reveal());
    eprintln!(
        "{} {what} {}: {how}. It is shown this once; the gateway keeps only its hash.",
        if issued.replaced {
            "replaced the"
        } else {
            "issued a"
        },
        issued.name
    );
}

fn print_listed(listed: &[Listed]) {
    for entry in listed {
        let state = match entry.revoked {
            Some(at) => format!("revoked {}", rfc3339(at)),
            None => "active".to_owned(),
        };
        let role = entry.role.map(|r| format!("\t{r}")).unwrap_or_default();
        println!(
            "{}{role}\tissued {}\t{state}",
            entry.name,
            rfc3339(entry.issued)
        );
    }
}

fn print_revoked(name: &str, revoked: Revoked) {
    match revoked {
        Revoked::Already(at) => println!("{name} was already revoked (at {})", rfc3339(at)),
        _ => println!("revoked {name}: it opens nothing from now on"),
    }
}

fn staff(config: &GatewayConfig, command: &StaffCommand) -> anyhow::Result<()> {
    let access = access(config)?;
    match command {
        StaffCommand::Add {
            name,
            role,
            replace,
        } => {
            let issued = access.add_staff(name, *role, *replace)?;
            print_issued(
                &issued,
                &format!("{role} token to"),
                "send it as `Authorization: Bearer TOKEN`",
            );
        }
        StaffCommand::Revoke { name } => {
            print_revoked(name, access.revoke(HolderKind::Staff, name)?);
        }
        StaffCommand::List => print_listed(&access.list(HolderKind::Staff)?),
    }
    Ok(())
}

fn integrations(config: &GatewayConfig, command: &IntegrationsCommand) -> anyhow::Result<()> {
    let access = access(config)?;
    match command {
        IntegrationsCommand::Add { name, replace } => {
            let issued = access.add_integration(name, *replace)?;
            print_issued(
                &issued,
                "Open311 api_key to",
                "configure the front end to send it as api_key",
            );
        }
        IntegrationsCommand::Revoke { name } => {
            print_revoked(name, access.revoke(HolderKind::Integration, name)?);
        }
        IntegrationsCommand::List => print_listed(&access.list(HolderKind::Integration)?),
    }
    Ok(())
}

fn devices(config: &GatewayConfig, command: &DevicesCommand) -> anyhow::Result<()> {
    let storage = stopped_store(config)?;
    let registry = DeviceRegistry::new(
        storage.devices.clone(),
        storage.ingest.clone(),
        vec![
            config.mqtt.client_id.clone(),
            gateway::broker::PROBE_CLIENT_ID.to_owned(),
        ],
        Arc::new(SystemClock),
    );
    let device_id =
        |id: &str| proto::DeviceId::new(id).with_context(|| format!("{id:?} is not a device id"));
    match command {
        DevicesCommand::Add { id, replace } => {
            let issued = registry.add(&device_id(id)?, *replace)?;
            print!("{}", snippet::agent_config(&issued, config.mqtt.listen));
            eprintln!(
                "{} {id}: put the lines above in its edge-agent configuration",
                if issued.replaced {
                    "replaced the secret of"
                } else {
                    "added"
                }
            );
            if config.mqtt.url.is_some() {
                eprintln!(
                    "note: this gateway uses an external broker (mqtt.url), which checks its own \
                     credentials (docs/OPERATIONS.md)"
                );
            }
        }
        DevicesCommand::Revoke { id } => match registry.revoke(&device_id(id)?)? {
            Revoked::Already(at) => println!("{id} was already revoked (at {})", rfc3339(at)),
            _ => println!("revoked {id}: it cannot connect again"),
        },
        DevicesCommand::List => {
            for listed in registry.list()? {
                let state = match listed.revoked {
                    Some(at) => format!("revoked {}", rfc3339(at)),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\tissued {}\t{state}",
                    listed.device,
                    rfc3339(listed.issued)
                );
            }
        }
    }
    Ok(())
}

async fn run(config: GatewayConfig) -> anyhow::Result<()> {
    let gateway = Gateway::start(config)
        .await
        .context("starting the gateway")?;
    shutdown_signal().await?;
    tracing::info!("shutting down");
    gateway.stop().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
