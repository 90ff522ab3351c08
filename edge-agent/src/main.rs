//! The `edge-agent` binary: reads the configuration (file, then environment, then flags), sets up
//! logging, and runs the agent until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge_agent::config::{parse_source_flag, AgentConfig, PrivateKey, TlsConfig};

/// The fieldsync edge agent: stores every record from the in-cab or handheld app and the sensors
/// durably, forwards them to the gateway over MQTT exactly once, and receives jobs and
/// configuration back.
///
/// The app posts to the local HTTP API (`POST /v1/collections`, `GET /v1/status`, ...). On a
/// boiler hub, `--source` and `--asset` read the boiler (an OpenTherm Gateway or JSON lines) and
/// store one telemetry sample every `--sample-s` seconds.
///
/// Every option can also be set in the TOML configuration file (`edge-agent print-config` prints
/// one with every default and its meaning) or through the environment variable named beside it;
/// flags win over the environment, which wins over the file. SIGINT or SIGTERM stops the agent
/// gracefully: it stops accepting, flushes, sends what the link allows within the shutdown
/// deadline, and announces the device offline.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML configuration file. Default: none (built-in defaults).
    #[arg(long, env = "FIELDSYNC_AGENT_CONFIG", global = true)]
    config: Option<PathBuf>,

    /// This device's id, [A-Za-z0-9_-]{1,64}. Required (here or in the file).
    #[arg(long, env = "FIELDSYNC_AGENT_DEVICE_ID", global = true)]
    device_id: Option<String>,

    /// Directory of the agent's database. Default `data/edge-agent`.
    #[arg(long, env = "FIELDSYNC_AGENT_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,

    /// Seconds shutdown may spend sending what is unacked. Default 10.
    #[arg(long, env = "FIELDSYNC_AGENT_SHUTDOWN_DEADLINE_S", global = true)]
    shutdown_deadline_s: Option<u64>,

    /// MQTT broker host. Default `127.0.0.1`.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_HOST", global = true)]
    mqtt_host: Option<String>,

    /// MQTT broker port. Default 1883.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_PORT", global = true)]
    mqtt_port: Option<u16>,

    /// MQTT client id (the broker keeps its session). Default: the device id.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_CLIENT_ID", global = true)]
    mqtt_client_id: Option<String>,

    /// MQTT username. Default: none.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_USERNAME", global = true)]
    mqtt_username: Option<String>,

    /// MQTT password; prefer the environment variable, which `ps` does not show. Default: none.
    #[arg(
        long,
        env = "FIELDSYNC_AGENT_MQTT_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    mqtt_password: Option<String>,

    /// This device's Ed25519 private key (64 hex digits, from `gateway devices add`); prefer the
    /// environment variable, which `ps` does not show. Default: none.
    #[arg(
        long,
        env = "FIELDSYNC_AGENT_SIGNING_KEY",
        global = true,
        hide_env_values = true
    )]
    signing_key: Option<String>,

    /// The gateway's Ed25519 public key (64 hex digits, from `gateway devices add`). Default:
    /// none.
    #[arg(long, env = "FIELDSYNC_AGENT_SIGNING_GATEWAY_KEY", global = true)]
    signing_gateway_key: Option<String>,

    /// Whether acks and jobs must be signed by the gateway and batches by this device (`true`
    /// or `false`). Default true; false only while migrating.
    #[arg(long, env = "FIELDSYNC_AGENT_SIGNING_REQUIRED", global = true)]
    signing_required: Option<bool>,

    /// Seconds between MQTT keep-alive pings. Default 30.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_KEEP_ALIVE_S", global = true)]
    mqtt_keep_alive_s: Option<u64>,

    /// First reconnection delay in ms; doubles, with jitter, up to the maximum. Default 500.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_RECONNECT_MIN_MS", global = true)]
    mqtt_reconnect_min_ms: Option<u64>,

    /// Longest reconnection delay in ms. Default 2000.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_RECONNECT_MAX_MS", global = true)]
    mqtt_reconnect_max_ms: Option<u64>,

    /// Use TLS, trusting the CAs in this PEM file. Default: plain TCP.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_TLS_CA", global = true)]
    mqtt_tls_ca: Option<PathBuf>,

    /// With TLS: this device's client certificate (PEM). Default: none.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_TLS_CERT", global = true)]
    mqtt_tls_cert: Option<PathBuf>,

    /// With TLS: the client certificate's private key (PEM). Default: none.
    #[arg(long, env = "FIELDSYNC_AGENT_MQTT_TLS_KEY", global = true)]
    mqtt_tls_key: Option<PathBuf>,

    /// Most records per batch, 1 to 1000. Default 200.
    #[arg(long, env = "FIELDSYNC_AGENT_BATCH_MAX_RECORDS", global = true)]
    batch_max_records: Option<u32>,

    /// Most bytes of records per batch, 1024 to 261120. Default 65536.
    #[arg(long, env = "FIELDSYNC_AGENT_BATCH_MAX_BYTES", global = true)]
    batch_max_bytes: Option<usize>,

    /// Milliseconds a part-filled batch waits for more records. Default 200.
    #[arg(long, env = "FIELDSYNC_AGENT_LINGER_MS", global = true)]
    linger_ms: Option<u64>,

    /// Seconds a sent batch waits for the gateway's ack before it is resent. Default 30.
    #[arg(long, env = "FIELDSYNC_AGENT_RESEND_AFTER_S", global = true)]
    resend_after_s: Option<u64>,

    /// Batches awaiting the broker's PUBACK at most, 1 to 100. Default 4.
    #[arg(long, env = "FIELDSYNC_AGENT_MAX_INFLIGHT_BATCHES", global = true)]
    max_inflight_batches: Option<u16>,

    /// Least ms a batch may wait for its ack before the link counts as stalled. Default 2000.
    #[arg(long, env = "FIELDSYNC_AGENT_STALL_MIN_MS", global = true)]
    stall_min_ms: Option<u64>,

    /// Bytes of records the outbox holds at most. Default 16777216 (16 MiB).
    #[arg(long, env = "FIELDSYNC_AGENT_OUTBOX_BUDGET_BYTES", global = true)]
    outbox_budget_bytes: Option<u64>,

    /// The database's page cache in bytes. Default 4194304 (4 MiB).
    #[arg(long, env = "FIELDSYNC_AGENT_OUTBOX_CACHE_BYTES", global = true)]
    outbox_cache_bytes: Option<u64>,

    /// Address of the local API (no authentication: keep it on loopback). Default
    /// `127.0.0.1:8181`.
    #[arg(long, env = "FIELDSYNC_AGENT_API_LISTEN", global = true)]
    api_listen: Option<SocketAddr>,

    /// Largest API request body in bytes. Default 65536.
    #[arg(long, env = "FIELDSYNC_AGENT_API_MAX_BODY_BYTES", global = true)]
    api_max_body_bytes: Option<usize>,

    /// Seconds before an API request is answered 408. Default 10.
    #[arg(long, env = "FIELDSYNC_AGENT_API_REQUEST_TIMEOUT_S", global = true)]
    api_request_timeout_s: Option<u64>,

    /// Seconds between sensor samples. Default 60.
    #[arg(long, env = "FIELDSYNC_AGENT_SAMPLE_S", global = true)]
    sample_s: Option<u32>,

    /// Seconds between health records. Default 300.
    #[arg(long, env = "FIELDSYNC_AGENT_HEALTH_S", global = true)]
    health_s: Option<u32>,

    /// Days a finished job stays on the device before it is pruned. Default 7.
    #[arg(long, env = "FIELDSYNC_AGENT_JOBS_KEEP_FINISHED_DAYS", global = true)]
    jobs_keep_finished_days: Option<u32>,

    /// A boiler hub's sensor input: `stdin`, `line:PATH` (JSON lines from a file or FIFO),
    /// `otgw_file:PATH` (an OpenTherm Gateway on a serial port, or a capture) or
    /// `otgw_tcp:HOST:PORT` (an OTGW over TCP). Needs --asset. Default: none.
    #[arg(long, env = "FIELDSYNC_AGENT_SOURCE", global = true)]
    source: Option<String>,

    /// The boiler's asset id, which every sample from --source carries. Default: none.
    #[arg(long, env = "FIELDSYNC_AGENT_ASSET", global = true)]
    asset: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Print a configuration file with every option, its default and its meaning.
    PrintConfig,
}

/// Sets `target` to `value` if the flag or environment gave one.
fn set<T: Clone>(target: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *target = value.clone();
    }
}

impl Args {
    /// The configuration file's values with the environment's and flags' on top, validated.
    fn config(&self) -> anyhow::Result<AgentConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                AgentConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => AgentConfig::default(),
        };
        set(&mut config.device_id, &self.device_id);
        set(&mut config.data_dir, &self.data_dir);
        set(&mut config.shutdown_deadline_s, &self.shutdown_deadline_s);
        let mqtt = &mut config.mqtt;
        set(&mut mqtt.host, &self.mqtt_host);
        set(&mut mqtt.port, &self.mqtt_port);
        if self.mqtt_client_id.is_some() {
            mqtt.client_id = self.mqtt_client_id.clone();
        }
        if self.mqtt_username.is_some() {
            mqtt.username = self.mqtt_username.clone();
        }
        if self.mqtt_password.is_some() {
            mqtt.password = self.mqtt_password.clone();
        }
        set(&mut mqtt.keep_alive_s, &self.mqtt_keep_alive_s);
        set(&mut mqtt.reconnect_min_ms, &self.mqtt_reconnect_min_ms);
        set(&mut mqtt.reconnect_max_ms, &self.mqtt_reconnect_max_ms);
        if let Some(ca) = &self.mqtt_tls_ca {
            mqtt.tls = Some(TlsConfig {
                ca: ca.clone(),
                cert: None,
                key: None,
            });
        }
        if self.mqtt_tls_cert.is_some() || self.mqtt_tls_key.is_some() {
            let tls = mqtt.tls.as_mut().context(
                "--mqtt-tls-cert and --mqtt-tls-key need --mqtt-tls-ca (or mqtt.tls.ca)",
            )?;
            if self.mqtt_tls_cert.is_some() {
                tls.cert = self.mqtt_tls_cert.clone();
            }
            if self.mqtt_tls_key.is_some() {
                tls.key = self.mqtt_tls_key.clone();
            }
        }
        let uplink = &mut config.uplink;
        set(&mut uplink.batch_max_records, &self.batch_max_records);
        set(&mut uplink.batch_max_bytes, &self.batch_max_bytes);
        set(&mut uplink.linger_ms, &self.linger_ms);
        set(&mut uplink.resend_after_s, &self.resend_after_s);
        set(&mut uplink.stall_min_ms, &self.stall_min_ms);
        set(&mut uplink.max_inflight_batches, &self.max_inflight_batches);
        set(&mut config.outbox.budget_bytes, &self.outbox_budget_bytes);
        set(&mut config.outbox.cache_bytes, &self.outbox_cache_bytes);
        set(&mut config.api.listen, &self.api_listen);
        set(&mut config.api.max_body_bytes, &self.api_max_body_bytes);
        set(
            &mut config.api.request_timeout_s,
            &self.api_request_timeout_s,
        );
        set(&mut config.intervals.sample_s, &self.sample_s);
        set(&mut config.intervals.health_s, &self.health_s);
        set(
            &mut config.jobs.keep_finished_days,
            &self.jobs_keep_finished_days,
        );
        if let Some(key) = &self.signing_key {
            config.signing.key = Some(PrivateKey::new(key.as_str()));
        }
        if self.signing_gateway_key.is_some() {
            config.signing.gateway_key = self.signing_gateway_key.clone();
        }
        set(&mut config.signing.required, &self.signing_required);
        if let Some(spec) = &self.source {
            config.source = Some(parse_source_flag(spec)?);
        }
        if self.asset.is_some() {
            config.asset = self.asset.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

/// Two workers whatever the core count: the agent waits on the disk and the network, and each
/// worker costs a stack and, with glibc, a malloc arena of resident memory (see
/// `docs/BENCHMARKS.md`).
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        // Colour for a person at a terminal; plain text in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match args.command {
        Some(Command::PrintConfig) => {
            print!("{}", AgentConfig::commented_default());
            Ok(())
        }
        Some(Command::Run) | None => {
            let config = args.config()?;
            let signal = shutdown_signal()?;
            edge_agent::agent::run(config, signal)
                .await
                .context("running the edge agent")
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed before the agent starts, so that a
/// signal during start-up is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}
