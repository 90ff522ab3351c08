//! The gateway's configuration: a TOML file whose every field has a documented default, which the
//! binary's flags and environment variables override.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the gateway needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Directory of the embedded store (sled). Default `data/gateway`.
    pub data_dir: PathBuf,
    /// The store's page cache in bytes. Default 64 MiB.
    pub cache_bytes: u64,
    /// The MQTT side.
    pub mqtt: MqttConfig,
    /// The HTTP side.
    pub http: HttpConfig,
    /// Devices.
    pub devices: DevicesConfig,
    /// Missed-bin reports: the council's calendar, matching and dispatch.
    pub missed_bins: MissedBinsConfig,
    /// The Open311 interface for residents' front ends.
    pub open311: Open311Config,
    /// Boilers: the domain's rules, how long raw telemetry is kept, the clock's tick.
    pub boilers: BoilersSettings,
    /// Repairs: the operatives, how jobs are given to them, auto-raising and the attention time.
    pub repairs: crate::repairs::RepairsConfig,
    /// Signed messages: whether devices' envelopes must be signed.
    pub signing: SigningConfig,
}

/// Signed messages (COSE_Sign1, Ed25519): devices sign their envelopes, the gateway its acks and
/// downlink messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// Refuse every envelope not signed by the device its topic names, and sign every ack and
    /// downlink message. Default true. Off only while migrating agents that do not sign yet:
    /// bare envelopes are then taken (a signed one is still checked), an ack is signed only if
    /// the envelope it answers was, and a downlink message only if its device has a key; the
    /// gateway warns at every start.
    pub required: bool,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self { required: true }
    }
}

/// Boilers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoilersSettings {
    /// Days raw samples (and reported gaps) are kept; hourly rollups are kept for ever, so a
    /// year is answered from them. Default 90.
    pub raw_retention_days: u32,
    /// Seconds between the boilers' clock ticks: silence, completed hours and days, the
    /// pressure forecast and the purge of old raw samples. Default 60.
    pub tick_s: u64,
    /// Seconds a completed hour or day waits for late samples before it is judged. Default 300.
    pub grace_s: u64,
    /// The domain's rules: plausible ranges, rollups, efficiency, waste, the pressure forecast
    /// and the alerts' thresholds, each with its documented default.
    pub rules: crate::boilers::BoilersConfig,
}

impl Default for BoilersSettings {
    fn default() -> Self {
        Self {
            raw_retention_days: 90,
            tick_s: 60,
            grace_s: 300,
            rules: crate::boilers::BoilersConfig::default(),
        }
    }
}

impl BoilersSettings {
    /// How long raw samples are kept, in ms.
    pub fn raw_retention_ms(&self) -> i64 {
        i64::from(self.raw_retention_days) * 24 * 60 * 60 * 1000
    }
}

/// Missed-bin reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MissedBinsConfig {
    /// The council's time zone, bank holidays, round end (default 17:00) and report window
    /// (default 2 working days).
    pub calendar: crate::missed_bins::CouncilCalendar,
    /// How confirmations without a UPRN are matched to properties (default within 25 m).
    pub matching: crate::missed_bins::MatchConfig,
    /// Which device a return job goes to. Default `last_on_round`.
    pub dispatch: DispatchRule,
    /// Devices that take a round's return jobs, by round id: the fallback for `last_on_round`
    /// before any device has reported on the round, and the rule itself for `configured`.
    /// Default: none.
    pub round_devices: BTreeMap<String, Vec<String>>,
    /// How many days of crews' evidence to reload at start-up. Default 14, well beyond the
    /// report window.
    pub evidence_days: u32,
    /// Days after a report closes (collected, rejected or refused) that its resident's contact
    /// details, words and comments are kept; then they are purged from the store, the report's
    /// history and evidence staying. Default 90.
    pub contact_retention_days: u32,
}

/// Which device a report's return job goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatchRule {
    /// The device that most recently sent a collection or round event for the report's round
    /// (the crew out there now), else the first of `round_devices`.
    #[default]
    LastOnRound,
    /// Always the first of `round_devices` for the round (a dedicated return-collection crew).
    Configured,
}

/// The Open311 GeoReport v2 interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Open311Config {
    /// Retired: front ends' api_keys are issued by `gateway integrations add` and kept hashed
    /// in the store. A configuration that still sets this is refused with that advice, rather
    /// than started with keys it would silently ignore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<toml::Value>,
    /// Show FixMyStreet's extended statuses in `GET requests` (`no_further_action` for a
    /// rejected or refused report, `action_scheduled` once a crew is sent) instead of only
    /// `open` and `closed`, so that FixMyStreet, which reads `closed` as fixed, never tells a
    /// resident whose bin was left that it was emptied. FixMyStreet sends nothing that says it
    /// wants them on that call, hence a setting. Turn off only for a client that accepts
    /// nothing but `open` and `closed`. Default: true.
    pub extended_statuses: bool,
    /// The `jurisdiction_id` this endpoint serves; a request naming another is refused with 404.
    /// Default: none (any value accepted).
    pub jurisdiction_id: Option<String>,
    /// Add `waste_only` to every service's keywords, so that FixMyStreet offers the missed-bin
    /// services on its waste (WasteWorks) pages only, not on its map. Default: false.
    pub waste_only: bool,
}

impl Default for Open311Config {
    fn default() -> Self {
        Self {
            api_keys: None,
            extended_statuses: true,
            jurisdiction_id: None,
            waste_only: false,
        }
    }
}

impl Open311Config {
    /// The settings the Open311 router answers by.
    pub fn settings(&self) -> crate::open311::Settings {
        crate::open311::Settings {
            extended_statuses: self.extended_statuses,
            jurisdiction_id: self.jurisdiction_id.clone(),
            waste_only: self.waste_only,
        }
    }
}

impl MissedBinsConfig {
    /// How long a closed report keeps its resident's details, in ms.
    pub fn contact_retention_ms(&self) -> i64 {
        i64::from(self.contact_retention_days) * 24 * 60 * 60 * 1000
    }
}

impl Default for MissedBinsConfig {
    fn default() -> Self {
        Self {
            calendar: Default::default(),
            matching: Default::default(),
            dispatch: DispatchRule::default(),
            round_devices: BTreeMap::new(),
            evidence_days: 14,
            contact_retention_days: 90,
        }
    }
}

/// Where the gateway gets devices' messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Address of the embedded broker, when no external `url` is set. Default `127.0.0.1:1883`;
    /// use `0.0.0.0:1883` to accept devices from the network.
    pub listen: SocketAddr,
    /// An external broker instead of the embedded one, as `mqtt://host:port` (Mosquitto, EMQX…).
    /// Default: none.
    pub url: Option<String>,
    /// Subscribe through the shared subscription `$share/{group}/…` so that several gateway
    /// replicas share the devices. External brokers only. Default: none.
    pub shared_group: Option<String>,
    /// The gateway's MQTT client id; its session persists across restarts. Default
    /// `fieldsync-gateway`.
    pub client_id: String,
    /// Username for the external broker. Default: none.
    pub username: Option<String>,
    /// Password for the external broker. Default: none.
    pub password: Option<String>,
    /// Let any client connect to the embedded broker without credentials, as before device
    /// identity existed: no device is authenticated, any client can publish as any device and
    /// read any device's acks and jobs. For tests and local experiments only; the gateway warns
    /// at every start. Embedded broker only. Default false: every connection needs a
    /// credential from `gateway devices add`.
    pub allow_anonymous: bool,
    /// The largest MQTT payload accepted, in bytes: larger ones are quarantined with the reason.
    /// Default and maximum: the protocol's limit, `proto::MAX_MESSAGE_BYTES` (256 KiB); lower it
    /// only with the agents' `uplink.batch_max_bytes` below it.
    pub max_payload: usize,
    /// Publishes a second one device may send to the embedded broker, with a burst of twice
    /// that: beyond it the broker stops reading from the device until it is back within the
    /// rate (TCP slows it down), so that one device flooding cannot crowd out the others. An
    /// agent sends a batch of up to a thousand records a publish. The gateway's own clients are
    /// not limited; with `allow_anonymous` nobody is. Embedded broker only. Default 200.
    pub device_publishes_per_s: f64,
    /// A TLS listener for the embedded broker beside its plain one (`listen`, which the
    /// gateway's own client keeps using: leave it on 127.0.0.1 to give devices TLS only).
    /// Embedded broker only. Default: none.
    pub tls: Option<MqttTlsConfig>,
}

/// The embedded broker's TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTlsConfig {
    /// Its address, e.g. `0.0.0.0:8883`.
    pub listen: SocketAddr,
    /// The broker's certificate, then any intermediates, as PEM.
    pub cert: PathBuf,
    /// The certificate's private key, as PEM.
    pub key: PathBuf,
}

impl MqttTlsConfig {
    /// Its certificate and key.
    pub fn files(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Retired: staff's bearer tokens are issued by `gateway staff add NAME --role ROLE` and
    /// kept hashed in the store. A configuration that still sets this is refused with that
    /// advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_tokens: Option<toml::Value>,
    /// Serve HTTPS instead of plain HTTP, with this certificate and key. Default: none.
    pub tls: Option<crate::tls::TlsFiles>,
    /// What one client may take: bodies, time, connections, Open311 posts.
    pub limits: HttpLimits,
}

/// The HTTP server's abuse limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// The largest request body of any route that sets no larger one of its own (the property
    /// and asset registers, Open311's multipart uploads), in bytes. Default 64 KiB.
    pub max_body_bytes: usize,
    /// Seconds a request may take, reading its body included, before it is answered 408.
    /// Event streams are not cut: the limit is on the time to their first byte. Default 60.
    pub request_timeout_s: u64,
    /// Open connections at most. Default 1024.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64) at most. Default 64.
    pub max_connections_per_address: usize,
    /// Open311 posts (requests, comments) from one client address. Default a burst of 100,
    /// then 300 a minute: FixMyStreet posts every resident's report from its own server.
    pub open311_posts_per_address: crate::http::rate_limit::Rate,
    /// Open311 posts with one `api_key`. Default a burst of 60, then 120 a minute.
    pub open311_posts_per_key: crate::http::rate_limit::Rate,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout_s: 60,
            max_connections: 1024,
            max_connections_per_address: 64,
            open311_posts_per_address: crate::http::rate_limit::Rate {
                burst: 100,
                per_minute: 300,
            },
            open311_posts_per_key: crate::http::rate_limit::Rate {
                burst: 60,
                per_minute: 120,
            },
        }
    }
}

/// The device registry's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// Devices provisioned at start; records from others are kept but flagged. Default: none.
    pub provisioned: Vec<String>,
    /// Clock skew beyond which a device is flagged, in seconds. Default 300.
    pub max_clock_skew_s: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/gateway"),
            cache_bytes: 64 * 1024 * 1024,
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            devices: DevicesConfig::default(),
            missed_bins: MissedBinsConfig::default(),
            open311: Open311Config::default(),
            boilers: BoilersSettings::default(),
            repairs: crate::repairs::RepairsConfig::default(),
            signing: SigningConfig::default(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            url: None,
            shared_group: None,
            client_id: "fieldsync-gateway".to_owned(),
            username: None,
            password: None,
            allow_anonymous: false,
            max_payload: proto::MAX_MESSAGE_BYTES,
            device_publishes_per_s: 200.0,
            tls: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            staff_tokens: None,
            tls: None,
            limits: HttpLimits::default(),
        }
    }
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            provisioned: Vec::new(),
            max_clock_skew_s: 300,
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl GatewayConfig {
    /// Parses a TOML configuration; absent fields take their defaults.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The defaults as a TOML file.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Self::default()).unwrap_or_default()
    }

    /// Checks values that TOML's types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Above the protocol's limit would admit batches no agent builds and no other broker
        // setting in docs/OPERATIONS.md allows for: one limit everywhere.
        if !(1024..=proto::MAX_MESSAGE_BYTES).contains(&self.mqtt.max_payload) {
            return Err(ConfigError::Invalid(format!(
                "mqtt.max_payload must be 1024 to {} bytes (the protocol's limit)",
                proto::MAX_MESSAGE_BYTES
            )));
        }
        let rate = self.mqtt.device_publishes_per_s;
        if !(rate.is_finite() && rate >= 1.0) {
            return Err(ConfigError::Invalid(
                "mqtt.device_publishes_per_s must be a number, at least 1".into(),
            ));
        }
        if self.mqtt.shared_group.is_some() && self.mqtt.url.is_none() {
            return Err(ConfigError::Invalid(
                "mqtt.shared_group needs an external broker (mqtt.url)".into(),
            ));
        }
        if let Some(url) = &self.mqtt.url {
            parse_mqtt_url(url).map_err(ConfigError::Invalid)?;
            if self.mqtt.tls.is_some() {
                return Err(ConfigError::Invalid(
                    "mqtt.tls is the embedded broker's TLS listener; an external broker (mqtt.url) \
                     has its own"
                        .into(),
                ));
            }
            if self.mqtt.allow_anonymous {
                return Err(ConfigError::Invalid(
                    "mqtt.allow_anonymous applies to the embedded broker only; an external \
                     broker (mqtt.url) has its own settings"
                        .into(),
                ));
            }
        }
        for device in &self.devices.provisioned {
            proto::DeviceId::check(device)
                .map_err(|e| ConfigError::Invalid(format!("devices.provisioned: {e}")))?;
        }
        for (round, devices) in &self.missed_bins.round_devices {
            for device in devices {
                proto::DeviceId::check(device).map_err(|e| {
                    ConfigError::Invalid(format!("missed_bins.round_devices.{round}: {e}"))
                })?;
            }
        }
        let matching = &self.missed_bins.matching;
        if !(matching.tolerance_m > 0.0 && matching.max_accuracy_m > 0.0) {
            return Err(ConfigError::Invalid(
                "missed_bins.matching: tolerance_m and max_accuracy_m must be positive".into(),
            ));
        }
        let boilers = &self.boilers;
        if boilers.tick_s == 0 {
            return Err(ConfigError::Invalid(
                "boilers.tick_s must be at least 1".into(),
            ));
        }
        // A late sample is folded in from its raw neighbours: they must still be there.
        let rollup = &boilers.rules.rollup;
        let needed_ms = rollup
            .max_lateness_ms
            .saturating_add(rollup.max_counter_span_ms.max(rollup.sample_interval_ms));
        if boilers.raw_retention_ms() <= needed_ms {
            return Err(ConfigError::Invalid(format!(
                "boilers.raw_retention_days must keep raw samples longer than late samples are \
                 accepted (boilers.rules.rollup.max_lateness_ms, {} days)",
                rollup.max_lateness_ms / (24 * 60 * 60 * 1000)
            )));
        }
        if let Some(problem) = self.repairs.problem() {
            return Err(ConfigError::Invalid(problem));
        }
        let limits = &self.http.limits;
        if limits.max_body_bytes == 0
            || limits.request_timeout_s == 0
            || limits.max_connections == 0
            || limits.max_connections_per_address == 0
        {
            return Err(ConfigError::Invalid(
                "http.limits: every limit must be at least 1".into(),
            ));
        }
        for rate in [
            limits.open311_posts_per_address,
            limits.open311_posts_per_key,
        ] {
            if rate.burst == 0 || rate.per_minute == 0 {
                return Err(ConfigError::Invalid(
                    "http.limits: an Open311 rate needs a burst and a per_minute of at least 1"
                        .into(),
                ));
            }
        }
        if self.http.staff_tokens.is_some() {
            return Err(ConfigError::Invalid(
                "http.staff_tokens is no longer read: issue each member of staff a token with \
                 `gateway staff add NAME --role ROLE` (kept hashed in the store), then remove \
                 the table (docs/OPERATIONS.md)"
                    .into(),
            ));
        }
        if self.open311.api_keys.is_some() {
            return Err(ConfigError::Invalid(
                "open311.api_keys is no longer read: issue each front end a key with `gateway \
                 integrations add NAME` (kept hashed in the store), then remove the list \
                 (docs/OPERATIONS.md)"
                    .into(),
            ));
        }
        if self.missed_bins.contact_retention_days == 0 {
            return Err(ConfigError::Invalid(
                "missed_bins.contact_retention_days must be at least 1".into(),
            ));
        }
        if let Some(id) = &self.open311.jurisdiction_id {
            if id.trim().is_empty() || id.trim() != id || id.chars().any(char::is_control) {
                return Err(ConfigError::Invalid(
                    "open311.jurisdiction_id must be non-empty, without surrounding spaces".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Splits `mqtt://host:port` (port defaulting to 1883) into host and port.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("MQTT URL {url:?} must start with mqtt://"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse()
                .map_err(|_| format!("MQTT URL {url:?} has an invalid port"))?;
            Ok((host.to_owned(), port))
        }
        None if !rest.is_empty() => Ok((rest.to_owned(), 1883)),
        None => Err(format!("MQTT URL {url:?} has no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = GatewayConfig::default_toml();
        assert_eq!(
            GatewayConfig::from_toml(&text).unwrap(),
            GatewayConfig::default()
        );
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(GatewayConfig::from_toml("colour = 'blue'").is_err());
        assert!(GatewayConfig::from_toml("[mqtt]\nmax_payload = 10").is_err());
        let over = format!("[mqtt]\nmax_payload = {}", proto::MAX_MESSAGE_BYTES + 1);
        assert!(GatewayConfig::from_toml(&over).is_err());
        let at = format!("[mqtt]\nmax_payload = {}", proto::MAX_MESSAGE_BYTES);
        assert!(GatewayConfig::from_toml(&at).is_ok());
        assert!(GatewayConfig::from_toml("[mqtt]\nshared_group = 'g'").is_err());
        let anonymous_external = "[mqtt]\nurl = 'mqtt://x'\nallow_anonymous = true";
        assert!(GatewayConfig::from_toml(anonymous_external).is_err());
        let tls_external =
            "[mqtt]\nurl = 'mqtt://x'\n[mqtt.tls]\nlisten = '0.0.0.0:8883'\ncert = 'c'\nkey = 'k'";
        assert!(GatewayConfig::from_toml(tls_external).is_err());
        assert!(!GatewayConfig::default().mqtt.allow_anonymous);
        assert!(GatewayConfig::default().signing.required);
        assert!(
            !GatewayConfig::from_toml("[signing]\nrequired = false")
                .unwrap()
                .signing
                .required
        );
        assert!(GatewayConfig::from_toml("[signing]\nkey = 'x'").is_err());
        assert!(GatewayConfig::from_toml("[devices]\nprovisioned = ['a/b']").is_err());
        assert!(GatewayConfig::from_toml("[boilers]\ntick_s = 0").is_err());
        assert!(GatewayConfig::from_toml("[boilers]\nraw_retention_days = 7").is_err());
        assert!(GatewayConfig::from_toml("[missed_bins]\ncontact_retention_days = 0").is_err());
    }

    #[test]
    fn retired_plaintext_secrets_are_refused_with_the_way_forward() {
        let tokens = GatewayConfig::from_toml("[http.staff_tokens]\nabc = 'admin'").unwrap_err();
        assert!(tokens.to_string().contains("gateway staff add"), "{tokens}");
        let keys = GatewayConfig::from_toml("[open311]\napi_keys = ['k']").unwrap_err();
        assert!(
            keys.to_string().contains("gateway integrations add"),
            "{keys}"
        );
    }

    #[test]
    fn open311_settings_default_to_extended_statuses_and_any_jurisdiction() {
        let open311 = GatewayConfig::default().open311;
        assert!(open311.extended_statuses && !open311.waste_only);
        assert_eq!(open311.jurisdiction_id, None);
        let set = GatewayConfig::from_toml(
            "[open311]\njurisdiction_id = 'hillingdon.gov.uk'\nextended_statuses = false",
        )
        .unwrap();
        assert_eq!(
            set.open311.settings().jurisdiction_id.as_deref(),
            Some("hillingdon.gov.uk")
        );
        assert!(!set.open311.settings().extended_statuses);
        assert!(GatewayConfig::from_toml("[open311]\njurisdiction_id = ' x'").is_err());
    }

    #[test]
    fn parses_mqtt_urls() {
        assert_eq!(
            parse_mqtt_url("mqtt://broker.local:8883"),
            Ok(("broker.local".into(), 8883))
        );
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1"),
            Ok(("127.0.0.1".into(), 1883))
        );
        assert!(parse_mqtt_url("http://x").is_err());
        assert!(parse_mqtt_url("mqtt://x:port").is_err());
    }

    #[test]
    fn repairs_take_operatives_and_a_rule_and_refuse_bad_device_ids() {
        let config = GatewayConfig::from_toml(
            "[repairs]\nrule = 'patch'\nauto_raise = true\n\
             [[repairs.operatives]]\ndevice = 'hh-ada'\nname = 'Ada'\npatch = ['UB10', 'UB8']\n",
        )
        .unwrap();
        config.validate().unwrap();
        let repairs = &config.repairs;
        assert_eq!(repairs.rule, crate::repairs::AssignRule::Patch);
        assert!(repairs.auto_raise);
        assert_eq!(repairs.operatives[0].patch, vec!["UB10", "UB8"]);
        // Off by default; two hours offline; a day to clear.
        let defaults = GatewayConfig::default().repairs;
        assert!(!defaults.auto_raise);
        assert_eq!(
            (defaults.offline_limit_s, defaults.attention_after_s),
            (7200, 86400)
        );
        for bad in [
            "[[repairs.operatives]]\ndevice = 'no spaces'\nname = 'A'\n",
            "[[repairs.operatives]]\ndevice = 'hh'\nname = 'A'\n\
             [[repairs.operatives]]\ndevice = 'hh'\nname = 'B'\n",
            "[repairs]\ntick_s = 0\n",
        ] {
            let refused = GatewayConfig::from_toml(bad).and_then(|c| c.validate());
            assert!(refused.is_err(), "{bad}");
        }
    }
}
