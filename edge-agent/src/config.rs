//! The agent's configuration: a TOML file whose every field has a documented default, which the
//! binary's environment variables and flags override. Invalid values are reported by name, never
//! by a panic.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use proto::{DeviceId, MAX_BATCH_RECORDS, MAX_MESSAGE_BYTES};
use serde::{Deserialize, Serialize};

use crate::outbox::{OutboxConfig, MAX_RECORD_BYTES};
use crate::source::{OtgwCommands, SourceConfig, MIN_POLL_EVERY_S, POLL_SPACING};

/// Bytes a batch's envelope adds around its records (version, device id, timestamp, array
/// header), rounded up generously so that a batch of `batch_max_bytes` always encodes within
/// [`MAX_MESSAGE_BYTES`].
pub const ENVELOPE_OVERHEAD: usize = 1024;

/// Everything the agent needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// This device's id, `[A-Za-z0-9_-]{1,64}`: its MQTT topics and the gateway's key for its
    /// records. Required; no default.
    pub device_id: String,
    /// Directory of the agent's database (outbox, jobs, configuration). Default `data/edge-agent`.
    pub data_dir: PathBuf,
    /// The MQTT connection to the gateway's broker.
    pub mqtt: MqttConfig,
    /// How records are batched and resent.
    pub uplink: UplinkConfig,
    /// The outbox's disk and memory budget.
    pub outbox: OutboxSettings,
    /// The local HTTP API for the in-cab or handheld app.
    pub api: ApiConfig,
    /// Sampling and health reporting.
    pub intervals: IntervalsConfig,
    /// The jobs the gateway sends.
    pub jobs: JobsConfig,
    /// Signed messages: this device's key, the gateway's, and whether signatures are required.
    pub signing: SigningConfig,
    /// Seconds that shutdown may take to send what is still unacked before it closes the link.
    /// Default 10.
    pub shutdown_deadline_s: u64,
    /// The boiler's asset id as the gateway knows it (up to 64 bytes of text): every telemetry
    /// sample from `source` carries it. Required with `source`; unused without. Default: none.
    pub asset: Option<String>,
    /// A boiler hub's sensor input: JSON lines on stdin or from a file or FIFO, or an OpenTherm
    /// Gateway on a serial port (read as a file) or over TCP. Sampled every `intervals.sample_s`.
    /// Default: none (in-cab devices and handhelds have no sensors).
    pub source: Option<SourceConfig>,
}

/// Where and how the agent connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address. Default `127.0.0.1`.
    pub host: String,
    /// Broker port. Default 1883 (use 8883 with `tls`).
    pub port: u16,
    /// MQTT client id; the broker keeps this session (subscriptions, queued jobs) while the agent
    /// is away. Default: the device id.
    pub client_id: Option<String>,
    /// Username, if the broker wants one; the gateway's embedded broker wants the device id (and
    /// the client id to be the device id too). Default: none.
    pub username: Option<String>,
    /// Password, if the broker wants one: for the gateway's embedded broker, the secret
    /// `gateway devices add` printed. Default: none. Prefer the environment variable to a file.
    pub password: Option<String>,
    /// Seconds between MQTT keep-alive pings; also how soon a dead link is noticed. Default 30.
    pub keep_alive_s: u64,
    /// The first delay before reconnecting, in milliseconds; it doubles up to `reconnect_max_ms`,
    /// with random jitter so that a fleet does not reconnect in step. Default 500.
    pub reconnect_min_ms: u64,
    /// The longest delay between reconnection attempts, in milliseconds. Default 2000: a cab back
    /// in coverage should rejoin within seconds, and jitter still spreads a fleet over the
    /// upper half of the delay.
    pub reconnect_max_ms: u64,
    /// TLS to the broker. Default: none (plain TCP).
    pub tls: Option<TlsConfig>,
}

/// TLS settings; the broker's certificate must name `mqtt.host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates that sign the broker's certificate. Required.
    pub ca: PathBuf,
    /// PEM file of this device's client certificate (chain). Default: none (no client auth).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1). Required with
    /// `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// Signed messages (COSE_Sign1, Ed25519): the agent signs every batch with its key, and acts on
/// an ack or a downlink message only if the gateway signed it for this device's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// Ignore (and count) every ack and downlink message the gateway did not sign, and sign every
    /// batch. Default true; then `key` and `gateway_key` are required. Off only while migrating:
    /// bare acks and jobs are acted on too (a signed one is still checked), batches are signed
    /// only with a `key`, and the agent warns at every start.
    pub required: bool,
    /// This device's Ed25519 private key, 64 hex digits, as `gateway devices add` printed it.
    /// Prefer the environment variable (FIELDSYNC_AGENT_SIGNING_KEY) to the file. Default: none.
    pub key: Option<PrivateKey>,
    /// The gateway's Ed25519 public key, 64 hex digits, as `gateway devices add` printed it.
    /// Default: none.
    pub gateway_key: Option<String>,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            required: true,
            key: None,
            gateway_key: None,
        }
    }
}

impl SigningConfig {
    /// Required signing with these keys, as hex text (`gateway devices add` prints them so).
    pub fn with_keys(key: impl Into<String>, gateway_key: impl Into<String>) -> Self {
        Self {
            required: true,
            key: Some(PrivateKey::new(key)),
            gateway_key: Some(gateway_key.into()),
        }
    }
}

/// A private key's text: its `Debug` does not show it, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKey(String);

impl PrivateKey {
    /// The key's text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The key's text, to parse and nothing else.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(…)")
    }
}

/// Batching and resending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UplinkConfig {
    /// The most records in one batch (one MQTT message), 1 to 1000. Default 200. The gateway can
    /// change it (a downlink `config` message).
    pub batch_max_records: u32,
    /// The most bytes of encoded records in one batch, 1024 to 261120 (the message limit less the
    /// envelope). Default 65536.
    pub batch_max_bytes: usize,
    /// Milliseconds a part-filled batch waits for more records before it is sent; a full batch
    /// goes at once. Default 200. The gateway can change it.
    pub linger_ms: u64,
    /// Seconds a sent batch waits for the gateway's ack before it is sent again. Default 30.
    pub resend_after_s: u64,
    /// Batches published and awaiting the broker's PUBACK, at most (MQTT's in-flight window);
    /// further batches wait in the outbox rather than in memory, where on a slow link they would
    /// only time out and be sent twice. 1 to 100. Default 4.
    pub max_inflight_batches: u16,
    /// The shortest time a batch may wait for its ack, with no ack meanwhile, before the link
    /// counts as stalled and is dropped and reconnected; the agent raises it with the measured
    /// round trip (up to 20 s). 500 to 20000 ms. Default 2000. Raise it if a busy gateway's acks
    /// can lag by seconds, so that its devices do not reconnect needlessly.
    pub stall_min_ms: u64,
}

/// The outbox's budgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    /// Bytes of encoded records held at most; beyond it the oldest telemetry and health records
    /// are dropped (and reported), and crews' records are refused with HTTP 507. Default 16 MiB.
    pub budget_bytes: u64,
    /// sled's page cache in bytes. Default 4 MiB.
    pub cache_bytes: u64,
}

/// The local HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address. Default `127.0.0.1:8181`: the app runs on the same device; only widen it
    /// behind a firewall, since the API has no authentication.
    pub listen: SocketAddr,
    /// The largest request body in bytes. Default 65536.
    pub max_body_bytes: usize,
    /// Seconds a request may take before it is answered 408. Default 10.
    pub request_timeout_s: u64,
}

/// Periodic work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntervalsConfig {
    /// Seconds between sensor samples. Default 60. The gateway can change it.
    pub sample_s: u32,
    /// Seconds between the device's health records. Default 300. The gateway can change it.
    pub health_s: u32,
}

/// The job store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Days a finished job (completed on the device, or withdrawn by the gateway) stays on the
    /// device, for the app to show, before it is pruned. 1 to 3650. Default 7.
    pub keep_finished_days: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            keep_finished_days: 7,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            device_id: String::new(),
            data_dir: PathBuf::from("data/edge-agent"),
            mqtt: MqttConfig::default(),
            uplink: UplinkConfig::default(),
            outbox: OutboxSettings::default(),
            api: ApiConfig::default(),
            intervals: IntervalsConfig::default(),
            jobs: JobsConfig::default(),
            signing: SigningConfig::default(),
            shutdown_deadline_s: 10,
            asset: None,
            source: None,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 1883,
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: 30,
            reconnect_min_ms: 500,
            reconnect_max_ms: 2_000,
            tls: None,
        }
    }
}

impl Default for UplinkConfig {
    fn default() -> Self {
        Self {
            batch_max_records: 200,
            batch_max_bytes: 64 * 1024,
            linger_ms: 200,
            resend_after_s: 30,
            max_inflight_batches: 4,
            stall_min_ms: 2_000,
        }
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        let outbox = OutboxConfig::default();
        Self {
            budget_bytes: outbox.budget_bytes,
            cache_bytes: outbox.cache_bytes,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8181)),
            max_body_bytes: 64 * 1024,
            request_timeout_s: 10,
        }
    }
}

impl Default for IntervalsConfig {
    fn default() -> Self {
        Self {
            sample_s: 60,
            health_s: 300,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range or inconsistent; the message names the option.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl AgentConfig {
    /// Parses a TOML configuration; absent fields take their defaults. Not validated: flags and
    /// the environment may still fill in required values.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Checks values that TOML's types cannot; every message names the option.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if self.device_id.is_empty() {
            return invalid(
                "device_id is required (--device-id, FIELDSYNC_AGENT_DEVICE_ID, or device_id in \
                 the file)"
                    .into(),
            );
        }
        if let Err(e) = DeviceId::check(&self.device_id) {
            return invalid(format!("device_id: {e}"));
        }
        let uplink = &self.uplink;
        if uplink.batch_max_records == 0 || uplink.batch_max_records as usize > MAX_BATCH_RECORDS {
            return invalid(format!(
                "uplink.batch_max_records must be 1 to {MAX_BATCH_RECORDS}"
            ));
        }
        let max_bytes = MAX_MESSAGE_BYTES - ENVELOPE_OVERHEAD;
        if !(1024..=max_bytes).contains(&uplink.batch_max_bytes) {
            return invalid(format!(
                "uplink.batch_max_bytes must be 1024 to {max_bytes}"
            ));
        }
        if uplink.resend_after_s == 0 {
            return invalid("uplink.resend_after_s must be at least 1".into());
        }
        if !(1..=100).contains(&uplink.max_inflight_batches) {
            return invalid("uplink.max_inflight_batches must be 1 to 100".into());
        }
        if !(500..=20_000).contains(&uplink.stall_min_ms) {
            return invalid("uplink.stall_min_ms must be 500 to 20000".into());
        }
        let mqtt = &self.mqtt;
        if mqtt.host.is_empty() {
            return invalid("mqtt.host must not be empty".into());
        }
        if mqtt.keep_alive_s == 0 {
            return invalid("mqtt.keep_alive_s must be at least 1".into());
        }
        if mqtt.reconnect_min_ms == 0 || mqtt.reconnect_min_ms > mqtt.reconnect_max_ms {
            return invalid(
                "mqtt.reconnect_min_ms must be at least 1 and at most mqtt.reconnect_max_ms".into(),
            );
        }
        if let Some(client_id) = &mqtt.client_id {
            if client_id.is_empty() {
                return invalid("mqtt.client_id must not be empty".into());
            }
        }
        if mqtt.password.is_some() && mqtt.username.is_none() {
            return invalid("mqtt.password needs mqtt.username".into());
        }
        if let Some(tls) = &mqtt.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                return invalid("mqtt.tls.cert and mqtt.tls.key go together".into());
            }
        }
        if self.outbox.budget_bytes < (4 * MAX_RECORD_BYTES) as u64 {
            return invalid(format!(
                "outbox.budget_bytes must be at least {}",
                4 * MAX_RECORD_BYTES
            ));
        }
        if self.api.max_body_bytes < 1024 {
            return invalid("api.max_body_bytes must be at least 1024".into());
        }
        if self.api.request_timeout_s == 0 {
            return invalid("api.request_timeout_s must be at least 1".into());
        }
        if self.intervals.sample_s == 0 || self.intervals.health_s == 0 {
            return invalid("intervals.sample_s and intervals.health_s must be at least 1".into());
        }
        if !(1..=3650).contains(&self.jobs.keep_finished_days) {
            return invalid("jobs.keep_finished_days must be 1 to 3650".into());
        }
        let signing = &self.signing;
        if signing.key.is_some() != signing.gateway_key.is_some() {
            return invalid("signing.key and signing.gateway_key go together".into());
        }
        if signing.required && signing.key.is_none() {
            return invalid(
                "signing.key and signing.gateway_key are required (the [signing] lines `gateway \
                 devices add` printed, or FIELDSYNC_AGENT_SIGNING_KEY and \
                 FIELDSYNC_AGENT_SIGNING_GATEWAY_KEY); signing.required = false runs without \
                 them, only while migrating"
                    .into(),
            );
        }
        if let Some(key) = &signing.key {
            if let Err(e) = proto::signed::signing_key_from_hex(key.reveal()) {
                return invalid(format!("signing.key: {e}"));
            }
        }
        if let Some(key) = &signing.gateway_key {
            if let Err(e) = proto::signed::verifying_key_from_hex(key) {
                return invalid(format!("signing.gateway_key: {e}"));
            }
        }
        if let Some(asset) = &self.asset {
            if let Err(e) = proto::validate::check_id("asset", asset) {
                return invalid(format!("asset: {}", e.reason));
            }
        }
        if let Some(source) = &self.source {
            if self.asset.is_none() {
                return invalid(
                    "asset is required with a source (--asset, FIELDSYNC_AGENT_ASSET, or asset in \
                     the file): the boiler's id, which every sample carries"
                        .into(),
                );
            }
            check_source(source).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }

    /// The device id, checked.
    pub fn device(&self) -> Result<DeviceId, ConfigError> {
        DeviceId::new(self.device_id.as_str())
            .map_err(|e| ConfigError::Invalid(format!("device_id: {e}")))
    }

    /// The MQTT client id: the configured one, or the device id.
    pub fn client_id(&self) -> String {
        self.mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| self.device_id.clone())
    }

    /// The outbox's settings.
    pub fn outbox_config(&self) -> OutboxConfig {
        OutboxConfig {
            budget_bytes: self.outbox.budget_bytes,
            cache_bytes: self.outbox.cache_bytes,
            resend_after: Duration::from_secs(self.uplink.resend_after_s),
        }
    }

    /// How long finished jobs are kept.
    pub fn keep_finished_jobs(&self) -> Duration {
        Duration::from_secs(u64::from(self.jobs.keep_finished_days) * 86_400)
    }

    /// The shutdown deadline.
    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_deadline_s)
    }

    /// A configuration file with every option, its default and what it means, as comments; it
    /// parses back to the defaults (with the device id still to fill in).
    pub fn commented_default() -> String {
        let d = Self::default();
        let commands = OtgwCommands::default();
        let mut out = String::new();
        // `write!` to a String cannot fail.
        let _ = write!(
            out,
            r#"# edge-agent configuration. Every option is shown with its default; environment
# variables (FIELDSYNC_AGENT_*) and flags override the file (see `edge-agent --help`).

# This device's id, [A-Za-z0-9_-]{{1,64}}: its MQTT topics and the gateway's key. Required.
device_id = ""
# Directory of the agent's database (outbox, jobs, configuration).
data_dir = "{data_dir}"
# Seconds shutdown may spend sending what is still unacked before it closes the link.
shutdown_deadline_s = {shutdown}
# A boiler hub's asset id, as the gateway knows it: every sample carries it. Required with [source].
# asset = "B-1042"

[mqtt]
# Broker host and port (use 8883 with TLS).
host = "{host}"
port = {port}
# MQTT client id; the broker keeps its session (subscriptions, queued jobs). Default: the device id.
# client_id = "cab-0042"
# Credentials, if the broker wants them (prefer FIELDSYNC_AGENT_MQTT_PASSWORD to the file). The
# gateway's embedded broker does: the device id as username (and client id) and the password that
# `gateway devices add` printed.
# username = "cab-0042"
# password = "secret"
# Seconds between keep-alive pings; also how soon a dead link is noticed.
keep_alive_s = {keep_alive}
# Reconnection delay: starts here, doubles up to the maximum, with random jitter (milliseconds).
reconnect_min_ms = {rmin}
reconnect_max_ms = {rmax}

# TLS to the broker, with an optional client certificate. Default: plain TCP.
# [mqtt.tls]
# ca = "/etc/fieldsync/ca.pem"
# cert = "/etc/fieldsync/device.pem"
# key = "/etc/fieldsync/device.key"

[uplink]
# Most records per batch (1 to {max_records}); the gateway can change it.
batch_max_records = {records}
# Most bytes of encoded records per batch (1024 to {max_bytes}).
batch_max_bytes = {bytes}
# Milliseconds a part-filled batch waits for more records; the gateway can change it.
linger_ms = {linger}
# Seconds a sent batch waits for the gateway's ack before it is sent again.
resend_after_s = {resend}
# Batches published and awaiting the broker's PUBACK, at most (1 to 100).
max_inflight_batches = {unconfirmed}
# Milliseconds a batch may wait for its ack (with no ack meanwhile) before the link counts as
# stalled and is reconnected, at least (500 to 20000); raised with the measured round trip.
stall_min_ms = {stall}

[outbox]
# Bytes of records held at most: then the oldest telemetry goes, and crews' records get HTTP 507.
budget_bytes = {budget}
# sled's page cache in bytes.
cache_bytes = {cache}

[api]
# The local API's address. It has no authentication: keep it on loopback.
listen = "{listen}"
# Largest request body in bytes.
max_body_bytes = {body}
# Seconds before a request is answered 408.
request_timeout_s = {timeout}

[intervals]
# Seconds between sensor samples; the gateway can change it.
sample_s = {sample}
# Seconds between health records; the gateway can change it.
health_s = {health}

[jobs]
# Days a finished job (completed here, or withdrawn by the gateway) stays for the app to show
# before it is pruned (1 to 3650).
keep_finished_days = {keep_finished}

[signing]
# Sign every batch, and ignore (and count) every ack and job the gateway did not sign. Turn off
# only while migrating agents: bare acks and jobs are then acted on too.
required = {signing_required}
# This device's Ed25519 private key and the gateway's public key, 64 hex digits each, as
# `gateway devices add` printed them; required while signing is. Prefer
# FIELDSYNC_AGENT_SIGNING_KEY to the file for the private key.
# key = "…"
# gateway_key = "…"

# A boiler hub's sensor input, sampled every intervals.sample_s. Default: none. The kinds:
#   kind = "otgw_tcp",  addr = "host:port": an OpenTherm Gateway over TCP (ser2net, or the ESP
#                       firmware's port such as 25238), reconnected whenever it drops;
#   kind = "otgw_file", path = "/dev/ttyUSB0": an OTGW on a serial port set to 9600 8N1 raw
#                       beforehand (stty -F /dev/ttyUSB0 9600 raw -echo), or a saved capture;
#   kind = "line",      path = "/run/boiler.fifo": JSON lines of telemetry fields (flow, ret,
#                       bar, flame, ...) from a file or FIFO;
#   kind = "stdin":     JSON lines on standard input.
# A file ends the source at its end; a FIFO or TCP keeps it running.
# [source]
# kind = "otgw_tcp"
# addr = "otgw.local:25238"

# What the agent sends an OTGW it can write to (otgw_tcp, and otgw_file on a serial port).
# [source.commands]
# Send PS=0 on every connection, so that an OTGW left in PS=1 summary mode prints frames again.
# summary_off = {summary_off}
# Data ids to have the OTGW ask the boiler for (PM=id, one every {spacing} s), for those the
# thermostat does not poll; the boiler's answers are read as frames. Default: none.
# poll = [116, 117, 118, 119, 120, 121, 122, 123, 113, 114, 15, 3]
# Seconds between two rounds of the poll list (at least {min_every}).
# poll_every_s = {poll_every}
"#,
            summary_off = commands.summary_off,
            spacing = POLL_SPACING.as_secs(),
            min_every = MIN_POLL_EVERY_S,
            poll_every = commands.poll_every_s,
            data_dir = d.data_dir.display(),
            shutdown = d.shutdown_deadline_s,
            host = d.mqtt.host,
            port = d.mqtt.port,
            keep_alive = d.mqtt.keep_alive_s,
            rmin = d.mqtt.reconnect_min_ms,
            rmax = d.mqtt.reconnect_max_ms,
            max_records = MAX_BATCH_RECORDS,
            records = d.uplink.batch_max_records,
            max_bytes = MAX_MESSAGE_BYTES - ENVELOPE_OVERHEAD,
            bytes = d.uplink.batch_max_bytes,
            linger = d.uplink.linger_ms,
            resend = d.uplink.resend_after_s,
            unconfirmed = d.uplink.max_inflight_batches,
            stall = d.uplink.stall_min_ms,
            budget = d.outbox.budget_bytes,
            cache = d.outbox.cache_bytes,
            listen = d.api.listen,
            body = d.api.max_body_bytes,
            timeout = d.api.request_timeout_s,
            sample = d.intervals.sample_s,
            health = d.intervals.health_s,
            keep_finished = d.jobs.keep_finished_days,
            signing_required = d.signing.required,
        );
        out
    }
}

/// Checks what serde cannot: a path that is there, an address with a port.
fn check_source(source: &SourceConfig) -> Result<(), String> {
    match source {
        SourceConfig::Stdin => Ok(()),
        SourceConfig::OtgwFile { path, commands } => {
            if path.as_os_str().is_empty() {
                Err("source.path must not be empty".into())
            } else {
                commands.check()
            }
        }
        SourceConfig::Line { path } => {
            if path.as_os_str().is_empty() {
                Err("source.path must not be empty".into())
            } else {
                Ok(())
            }
        }
        SourceConfig::OtgwTcp { addr, commands } => match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                commands.check()
            }
            _ => Err(format!(
                "source.addr must be host:port (such as otgw.local:25238), not {addr:?}"
            )),
        },
    }
}

/// Parses the `--source` flag: `stdin`, `line:PATH`, `otgw_file:PATH` or `otgw_tcp:HOST:PORT`,
/// the same kinds as the file's `[source]` table.
pub fn parse_source_flag(spec: &str) -> Result<SourceConfig, ConfigError> {
    let (kind, rest) = match spec.split_once(':') {
        Some((kind, rest)) => (kind, Some(rest)),
        None => (spec, None),
    };
    let source = match (kind, rest) {
        ("stdin", None) => SourceConfig::Stdin,
        ("line", Some(path)) => SourceConfig::Line { path: path.into() },
        ("otgw_file", Some(path)) => SourceConfig::OtgwFile {
            path: path.into(),
            commands: OtgwCommands::default(),
        },
        ("otgw_tcp", Some(addr)) => SourceConfig::OtgwTcp {
            addr: addr.into(),
            commands: OtgwCommands::default(),
        },
        _ => {
            return Err(ConfigError::Invalid(format!(
                "--source must be stdin, line:PATH, otgw_file:PATH or otgw_tcp:HOST:PORT, not \
                 {spec:?}"
            )))
        }
    };
    check_source(&source).map_err(ConfigError::Invalid)?;
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032's first test key, as this device's and the gateway's.
    const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn valid() -> AgentConfig {
        AgentConfig {
            device_id: "cab-0042".into(),
            signing: SigningConfig {
                required: true,
                key: Some(PrivateKey::new(KEY)),
                gateway_key: Some(PUBLIC.into()),
            },
            ..AgentConfig::default()
        }
    }

    #[test]
    fn signing_needs_both_keys_unless_turned_off_and_never_shows_the_private_one() {
        valid().validate().unwrap();
        let message = |config: AgentConfig| config.validate().unwrap_err().to_string();
        let mut unkeyed = valid();
        unkeyed.signing.key = None;
        unkeyed.signing.gateway_key = None;
        assert!(
            message(unkeyed.clone()).contains("signing.key and signing.gateway_key are required")
        );
        unkeyed.signing.required = false;
        unkeyed.validate().unwrap();
        let mut half = valid();
        half.signing.gateway_key = None;
        assert!(message(half).contains("go together"));
        let mut bad = valid();
        bad.signing.gateway_key = Some("00".repeat(31));
        assert!(message(bad).contains("signing.gateway_key"));
        let mut bad = valid();
        bad.signing.key = Some(PrivateKey::new("xyz"));
        assert!(message(bad).contains("signing.key"));
        assert!(!format!("{:?}", valid()).contains(KEY));
        let parsed = AgentConfig::from_toml(&format!(
            "[signing]\nkey = \"{KEY}\"\ngateway_key = \"{PUBLIC}\"\n"
        ))
        .unwrap();
        assert_eq!(
            parsed.signing.key.map(|k| k.reveal().to_owned()),
            Some(KEY.into())
        );
    }

    #[test]
    fn the_commented_default_parses_back_to_the_defaults() {
        let parsed = AgentConfig::from_toml(&AgentConfig::commented_default()).unwrap();
        assert_eq!(parsed, AgentConfig::default());
        // Uncommenting the examples still parses.
        let uncommented = AgentConfig::commented_default().replace("# [mqtt.tls]", "[mqtt.tls]");
        let uncommented = ["ca =", "cert =", "key ="]
            .iter()
            .fold(uncommented, |text, key| {
                text.replace(&format!("# {key}"), key)
            });
        let parsed = AgentConfig::from_toml(&uncommented).unwrap();
        assert!(parsed.mqtt.tls.is_some());
        // And so do the sensor source's.
        let uncommented = [
            "asset =",
            "[source]",
            "kind =",
            "addr =",
            "[source.commands]",
            "summary_off =",
            "poll =",
            "poll_every_s =",
        ]
        .iter()
        .fold(AgentConfig::commented_default(), |text, key| {
            text.replace(&format!("\n# {key}"), &format!("\n{key}"))
        });
        let parsed = AgentConfig::from_toml(&uncommented).unwrap();
        assert_eq!(parsed.asset.as_deref(), Some("B-1042"));
        assert_eq!(
            parsed.source,
            Some(SourceConfig::OtgwTcp {
                addr: "otgw.local:25238".into(),
                commands: OtgwCommands {
                    poll: vec![116, 117, 118, 119, 120, 121, 122, 123, 113, 114, 15, 3],
                    ..OtgwCommands::default()
                },
            })
        );
        let parsed = AgentConfig {
            device_id: "hub-1".into(),
            signing: valid().signing,
            ..parsed
        };
        parsed.validate().unwrap();
    }

    #[test]
    fn a_source_needs_a_valid_asset_and_place() {
        let hub = |asset: Option<&str>, source: SourceConfig| AgentConfig {
            asset: asset.map(str::to_owned),
            source: Some(source),
            ..valid()
        };
        let otgw = |addr: &str| SourceConfig::OtgwTcp {
            addr: addr.into(),
            commands: OtgwCommands::default(),
        };
        hub(Some("B-1042"), otgw("otgw.local:25238"))
            .validate()
            .unwrap();
        hub(Some("B-1042"), SourceConfig::Stdin).validate().unwrap();
        let message = |config: AgentConfig| config.validate().unwrap_err().to_string();
        assert!(message(hub(None, SourceConfig::Stdin)).contains("asset is required"));
        assert!(message(hub(Some(""), SourceConfig::Stdin)).contains("asset: must not be empty"));
        assert!(message(hub(Some("B-1"), otgw("otgw.local"))).contains("source.addr"));
        let polls_too_often = SourceConfig::OtgwTcp {
            addr: "otgw.local:25238".into(),
            commands: OtgwCommands {
                poll: vec![116],
                poll_every_s: 1,
                ..OtgwCommands::default()
            },
        };
        assert!(message(hub(Some("B-1"), polls_too_often)).contains("poll_every_s"));
        assert!(message(hub(Some("B-1"), otgw(":25238"))).contains("source.addr"));
        let no_path = SourceConfig::Line { path: "".into() };
        assert!(message(hub(Some("B-1"), no_path)).contains("source.path"));
        // An asset without a source is harmless (and unused).
        AgentConfig {
            asset: Some("B-1".into()),
            ..valid()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn the_source_flag_names_a_kind_and_a_place() {
        assert_eq!(parse_source_flag("stdin").unwrap(), SourceConfig::Stdin);
        assert_eq!(
            parse_source_flag("otgw_tcp:192.168.1.40:25238").unwrap(),
            SourceConfig::OtgwTcp {
                addr: "192.168.1.40:25238".into(),
                commands: OtgwCommands::default(),
            }
        );
        assert_eq!(
            parse_source_flag("otgw_file:/dev/ttyUSB0").unwrap(),
            SourceConfig::OtgwFile {
                path: "/dev/ttyUSB0".into(),
                commands: OtgwCommands::default(),
            }
        );
        assert_eq!(
            parse_source_flag("line:/run/boiler.fifo").unwrap(),
            SourceConfig::Line {
                path: "/run/boiler.fifo".into()
            }
        );
        for bad in [
            "",
            "modbus:/dev/x",
            "line",
            "stdin:x",
            "otgw_tcp:otgw.local",
            "line:",
        ] {
            let message = parse_source_flag(bad).unwrap_err().to_string();
            assert!(message.contains("source"), "{bad:?}: {message}");
        }
    }

    #[test]
    fn defaults_with_a_device_id_are_valid() {
        valid().validate().unwrap();
        assert_eq!(valid().client_id(), "cab-0042");
    }

    #[test]
    fn errors_name_the_option() {
        type Breaker = Box<dyn Fn(&mut AgentConfig)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("device_id is required", Box::new(|c| c.device_id.clear())),
            ("device_id", Box::new(|c| c.device_id = "a/b".into())),
            (
                "uplink.batch_max_records",
                Box::new(|c| c.uplink.batch_max_records = 1001),
            ),
            (
                "uplink.batch_max_bytes",
                Box::new(|c| c.uplink.batch_max_bytes = MAX_MESSAGE_BYTES),
            ),
            (
                "mqtt.reconnect_min_ms",
                Box::new(|c| c.mqtt.reconnect_min_ms = 100_000),
            ),
            (
                "uplink.stall_min_ms",
                Box::new(|c| c.uplink.stall_min_ms = 100),
            ),
            (
                "mqtt.password",
                Box::new(|c| c.mqtt.password = Some("x".into())),
            ),
            (
                "mqtt.tls.cert",
                Box::new(|c| {
                    c.mqtt.tls = Some(TlsConfig {
                        ca: "ca.pem".into(),
                        cert: Some("c.pem".into()),
                        key: None,
                    })
                }),
            ),
            (
                "outbox.budget_bytes",
                Box::new(|c| c.outbox.budget_bytes = 10),
            ),
            ("intervals", Box::new(|c| c.intervals.sample_s = 0)),
            (
                "jobs.keep_finished_days",
                Box::new(|c| c.jobs.keep_finished_days = 0),
            ),
        ];
        for (option, break_it) in cases {
            let mut config = valid();
            break_it(&mut config);
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(option), "{message} should name {option}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(AgentConfig::from_toml("colour = 'blue'").is_err());
        assert!(AgentConfig::from_toml("[uplink]\nlinger = 3").is_err());
    }
}
