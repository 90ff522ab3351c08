//! The gateway: ingests devices' records exactly once, closes or rejects missed-bin reports from
//! crews' evidence, tracks boilers, and serves staff, residents (Open311) and dashboards.
//!
//! [`Gateway::start`] wires the parts, top to bottom:
//! - [`broker`]: the embedded MQTT broker, unless an external one is configured, authenticating
//!   every connection against [`devices`], the registry of devices' credentials;
//! - [`storage`]: the storage seam: every store the gateway has, behind traits, on sled today;
//!   [`record_time`] places each record's time by its device's
//!   monotonic clock;
//! - [`ingest`]: the MQTT subscriber that stores batches once and acks them ([`progress`] keeps
//!   the per-device bookkeeping);
//! - [`http`]: health, metrics and the staff API, over plain TCP or TLS ([`tls`]; the embedded
//!   broker's TLS listener is [`mqtt_tls`]), whose callers [`access`] knows (staff's tokens with
//!   their roles, integrations' Open311 keys);
//! - [`missed_bins`]: the property register and the rules that decide residents' reports;
//! - [`boilers`]: boiler samples' checks, rollups, efficiency, waste, forecasts and alerts; its
//!   desk is fed every new telemetry record as the ingest stores it, and ticked by the clock;
//! - [`repairs`]: repair jobs raised from alerts, assets and tenants' reports, dispatched to
//!   operatives' handhelds and moved by their updates.

pub mod access;
pub mod boilers;
pub mod broker;
pub mod clock;
pub mod config;
pub mod csv_import;
pub mod devices;
pub mod http;
pub mod ingest;
pub mod log_throttle;
pub mod metrics;
pub mod missed_bins;
pub mod mqtt_tls;
pub mod open311;
pub mod progress;
pub mod record_time;
pub mod repairs;
pub mod reports;
pub mod secret;
pub mod storage;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::access::AccessRegistry;
use crate::boilers::follow::FeedBoilers;
use crate::boilers::{BoilerDesk, BoilerDeskSettings};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{parse_mqtt_url, GatewayConfig};
use crate::devices::{Authenticator, DeviceRegistry, Signatures};
use crate::ingest::{IngestEvent, MqttEndpoint};
use crate::metrics::Metrics;
use crate::missed_bins::MissedBins;
use crate::repairs::RepairDesk;
use crate::reports::{DeskSettings, MqttJobSender, ReportDesk};
use crate::storage::{Storage, Store, StoreError, StoreSettings};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The store could not be opened.
    #[error("could not open the store in {dir}: {source}")]
    Store {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// The HTTP listener could not be bound.
    #[error(
        "cannot listen for HTTP on {addr}: {source}; choose another address with --http-listen"
    )]
    Http {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The reports could not be loaded.
    #[error("could not load missed-bin reports: {0}")]
    Reports(reports::DeskError),
    /// The asset register or the boilers' alerts could not be loaded.
    #[error("could not load the boilers: {0}")]
    Boilers(StoreError),
    /// The repair jobs could not be loaded.
    #[error("could not load repair jobs: {0}")]
    Repairs(StoreError),
    /// The gateway's own broker secret could not be made.
    #[error("could not make the gateway's broker secret: {0}")]
    Secret(devices::secret::SecretError),
    /// A device in the configuration could not be provisioned.
    #[error("could not provision devices: {0}")]
    Provision(StoreError),
    /// The gateway's signing key could not be read or made.
    #[error("could not load the gateway's signing key: {0}")]
    SigningKey(devices::DeviceError),
    /// A listener's TLS certificate or key cannot be used.
    #[error("{listener}: {source}")]
    Tls {
        /// Which listener (`http.tls`, `mqtt.tls`).
        listener: &'static str,
        /// Why.
        source: tls::TlsError,
    },
    /// The embedded broker's TLS listener could not be bound.
    #[error("cannot listen for MQTT over TLS on {addr}: {source}; choose another mqtt.tls.listen")]
    MqttTls {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Gateway {
    /// Where the HTTP server listens.
    pub http_addr: SocketAddr,
    /// The MQTT broker the gateway uses, as (host, port).
    pub mqtt: (String, u16),
    /// Where the embedded broker's TLS listener listens, if it has one.
    pub mqtt_tls_addr: Option<SocketAddr>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// Missed-bin reports.
    pub desk: Arc<ReportDesk>,
    /// Boilers: the register, telemetry and alerts.
    pub boilers: Arc<BoilerDesk>,
    /// Repair jobs and tenants' heating reports.
    pub repairs: Arc<RepairDesk>,
    /// Devices' credentials for the broker: adding or revoking one takes effect at the next
    /// connection (and, for its signing key, at its next envelope).
    pub devices: DeviceRegistry,
    /// Staff's bearer tokens and integrations' Open311 keys: adding or revoking one takes effect
    /// at the next request.
    pub access: AccessRegistry,
    /// The gateway's signatures: its public key, and whether envelopes must be signed.
    pub signatures: Arc<Signatures>,
    events: broadcast::Sender<IngestEvent>,
    ingest_ready: watch::Receiver<bool>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

/// How long shutdown waits for tasks to finish their current work.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

impl Gateway {
    /// Opens the store, starts the broker (embedded unless configured otherwise), the ingest and
    /// the HTTP server.
    pub async fn start(config: GatewayConfig) -> Result<Self, GatewayError> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Gateway::start`] with the clock the gateway reads the time from (tests pass a fixed one).
    pub async fn start_with_clock(
        config: GatewayConfig,
        clock: SharedClock,
    ) -> Result<Self, GatewayError> {
        Self::start_with_clocks(config, clock.clone(), clock).await
    }

    /// [`Gateway::start`] with the clock records, reports, alerts and jobs are dated and judged
    /// by (`clock`, a simulation's compressed one), and the clock of people's real time
    /// (`wall_clock`: dashboard sessions' age, rate limits' windows).
    pub async fn start_with_clocks(
        config: GatewayConfig,
        clock: SharedClock,
        wall_clock: SharedClock,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let store_error = |source| GatewayError::Store {
            dir: config.data_dir.clone(),
            source,
        };
        let settings = StoreSettings {
            cache_bytes: config.cache_bytes,
            max_clock_skew_ms: max_clock_skew_ms(&config),
            ..StoreSettings::default()
        };
        let storage = Storage::open_embedded(&config.data_dir, settings).map_err(store_error)?;
        let boilers = Arc::new(
            BoilerDesk::open(
                config.boilers.rules.clone(),
                storage.boilers.clone(),
                BoilerDeskSettings {
                    grace_ms: secs_ms(config.boilers.grace_s),
                    raw_retention_ms: config.boilers.raw_retention_ms(),
                    tz: config.missed_bins.calendar.tz,
                },
            )
            .map_err(GatewayError::Boilers)?,
        );
        // Every record the ingest stores for the first time reaches the boilers before its ack;
        // what a crash kept from them is fed now.
        boilers::follow::catch_up(&boilers, storage.ingest.as_ref())
            .map_err(GatewayError::Boilers)?;
        let store: Arc<dyn Store> =
            Arc::new(FeedBoilers::new(storage.ingest.clone(), boilers.clone()));
        let provisioned = config
            .devices
            .provisioned
            .iter()
            .filter_map(|id| proto::DeviceId::new(id.as_str()).ok())
            .collect::<Vec<_>>();
        store
            .provision(&provisioned)
            .map_err(GatewayError::Provision)?;

        let own_clients = vec![
            config.mqtt.client_id.clone(),
            broker::PROBE_CLIENT_ID.to_owned(),
        ];
        let devices = DeviceRegistry::new(
            storage.devices.clone(),
            store.clone(),
            own_clients.clone(),
            clock.clone(),
        );
        let access = AccessRegistry::new(storage.access.clone(), clock.clone());
        let signatures = Arc::new(Signatures::new(
            devices.gateway_key().map_err(GatewayError::SigningKey)?,
            devices.clone(),
            config.signing.required,
        ));
        if !config.signing.required {
            tracing::warn!(
                "signing.required is off: envelopes that are not signed are stored and acked, so \
                 anyone who can publish on a device's topic can send as that device, and acks and \
                 jobs go unsigned to devices that do not sign. Only while migrating agents"
            );
        }
        let mut credentials = config
            .mqtt
            .username
            .clone()
            .zip(config.mqtt.password.clone());
        let mqtt = match &config.mqtt.url {
            Some(url) => parse_mqtt_url(url).map_err(config::ConfigError::Invalid)?,
            None => {
                let (listen, max_payload) = (config.mqtt.listen, config.mqtt.max_payload);
                if config.mqtt.allow_anonymous {
                    tracing::warn!(
                        %listen,
                        "mqtt.allow_anonymous is set: the embedded broker lets ANY client connect \
                         without credentials, publish as any device and read any device's acks \
                         and jobs. Never use this outside tests"
                    );
                    broker::start_embedded(listen, max_payload)?;
                } else {
                    let auth = Arc::new(
                        Authenticator::new(devices.clone(), own_clients)
                            .map_err(GatewayError::Secret)?,
                    );
                    credentials = Some((
                        config.mqtt.client_id.clone(),
                        auth.internal_secret().reveal().to_owned(),
                    ));
                    broker::start_authenticated(
                        listen,
                        max_payload,
                        auth,
                        config.mqtt.device_publishes_per_s,
                    )?;
                }
                (listen.ip().to_string(), listen.port())
            }
        };
        // Both TLS configurations are read before anything listens: a bad file stops the start.
        let http_tls = config
            .http
            .tls
            .as_ref()
            .map(|files| tls::acceptor(files, &[b"http/1.1"]))
            .transpose()
            .map_err(|source| GatewayError::Tls {
                listener: "http.tls",
                source,
            })?;
        let mqtt_tls = match (&config.mqtt.tls, &config.mqtt.url) {
            (Some(settings), None) => {
                let acceptor =
                    tls::acceptor(&settings.files(), &[]).map_err(|source| GatewayError::Tls {
                        listener: "mqtt.tls",
                        source,
                    })?;
                let listener = tokio::net::TcpListener::bind(settings.listen)
                    .await
                    .map_err(|source| GatewayError::MqttTls {
                        addr: settings.listen,
                        source,
                    })?;
                Some((listener, acceptor))
            }
            _ => None,
        };
        let mqtt_tls_addr = mqtt_tls
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok());
        let http_listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|source| GatewayError::Http {
                addr: config.http.listen,
                source,
            })?;
        let http_addr = http_listener
            .local_addr()
            .map_err(|source| GatewayError::Http {
                addr: config.http.listen,
                source,
            })?;

        let metrics = Arc::new(Metrics::default());
        metrics.set_quarantine(store.quarantine_usage());
        let shutdown = CancellationToken::new();
        let (events, _) = broadcast::channel(1024);
        let (ready_tx, ingest_ready) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let endpoint = MqttEndpoint {
            host: connectable_host(&mqtt.0),
            port: mqtt.1,
            client_id: config.mqtt.client_id.clone(),
            credentials,
            shared_group: config.mqtt.shared_group.clone(),
            max_payload: config.mqtt.max_payload,
        };
        let mqtt_client = ingest::client(&endpoint);
        // One sender for every kind of job: return jobs and repairs reach devices the same way.
        let job_sender = Arc::new(MqttJobSender::new(
            mqtt_client.0.clone(),
            config.mqtt.max_payload,
            signatures.clone(),
        ));
        let desk = Arc::new(
            ReportDesk::open(
                MissedBins::new(
                    config.missed_bins.calendar.clone(),
                    config.missed_bins.matching,
                ),
                storage.reports.clone(),
                job_sender.clone(),
                DeskSettings {
                    dispatch: config.missed_bins.dispatch,
                    round_devices: config
                        .missed_bins
                        .round_devices
                        .iter()
                        .map(|(round, devices)| {
                            let devices = devices
                                .iter()
                                .filter_map(|d| proto::DeviceId::new(d.as_str()).ok())
                                .collect();
                            (round.clone(), devices)
                        })
                        .collect(),
                    max_clock_skew_ms: max_clock_skew_ms(&config),
                },
                metrics.clone(),
            )
            .map_err(GatewayError::Reports)?,
        );
        // Subscribed before the ingest starts, so the desk misses nothing stored from now on.
        tasks.spawn(reports::follow::run(
            desk.clone(),
            store.clone(),
            events.subscribe(),
            config.missed_bins.evidence_days,
            config.missed_bins.contact_retention_ms(),
            clock.clone(),
            shutdown.clone(),
        ));
        let repairs = repairs::start(
            &config.repairs,
            repairs::Wiring {
                store: storage.repairs.clone(),
                sender: job_sender,
                boilers: boilers.clone(),
                records: store.clone(),
                ingest_events: &events,
                clock: clock.clone(),
                shutdown: shutdown.clone(),
            },
            &mut tasks,
        )
        .map_err(GatewayError::Repairs)?;
        tasks.spawn(boilers::follow::run_ticks(
            boilers.clone(),
            store.clone(),
            clock.clone(),
            Duration::from_secs(config.boilers.tick_s.max(1)),
            shutdown.clone(),
        ));
        tasks.spawn(ingest::run(
            endpoint,
            mqtt_client,
            store.clone(),
            metrics.clone(),
            events.clone(),
            ready_tx,
            clock.clone(),
            signatures.clone(),
            shutdown.clone(),
        ));

        let app = http::router(
            http::AppState {
                store: store.clone(),
                metrics: metrics.clone(),
                ingest_ready: ingest_ready.clone(),
                access: access.clone(),
                max_clock_skew_ms: max_clock_skew_ms(&config),
                desk: desk.clone(),
                open311: Arc::new(config.open311.clone()),
                council_tz: config.missed_bins.calendar.tz,
                clock: clock.clone(),
                wall_clock: wall_clock.clone(),
                boilers: boilers.clone(),
                boiler_store: storage.boilers.clone(),
                repairs: repairs.clone(),
                ingest_events: events.clone(),
                shutdown: shutdown.clone(),
                sessions: Arc::new(http::dashboard::Sessions::new()),
            },
            &config.http.limits,
        );
        tasks.spawn(http::serve::serve(
            http_listener,
            app,
            http_tls,
            http::serve::ServeLimits {
                max_connections: config.http.limits.max_connections,
                max_connections_per_address: config.http.limits.max_connections_per_address,
            },
            shutdown.clone(),
        ));
        if let Some((listener, acceptor)) = mqtt_tls {
            let plain = SocketAddr::new(
                connectable_host(&mqtt.0)
                    .parse()
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                mqtt.1,
            );
            tracing::info!(listen = ?mqtt_tls_addr, "embedded MQTT broker listening for TLS");
            tasks.spawn(mqtt_tls::run(
                listener,
                acceptor,
                plain,
                broker::MAX_CONNECTIONS,
                wall_clock.clone(),
                shutdown.clone(),
            ));
        }
        tracing::info!(%http_addr, mqtt = ?mqtt, "gateway started");

        Ok(Self {
            http_addr,
            mqtt,
            mqtt_tls_addr,
            store,
            metrics,
            desk,
            boilers,
            repairs,
            devices,
            access,
            signatures,
            events,
            ingest_ready,
            shutdown,
            tasks,
        })
    }

    /// Events from the ingest (stored batches), for whoever wants to follow them.
    pub fn subscribe(&self) -> broadcast::Receiver<IngestEvent> {
        self.events.subscribe()
    }

    /// Waits until the ingest is connected to the broker and subscribed, so that what devices
    /// publish from now on reaches it. False if that did not happen within `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut ready = self.ingest_ready.clone();
        let outcome = tokio::time::timeout(timeout, ready.wait_for(|ready| *ready)).await;
        matches!(outcome, Ok(Ok(_)))
    }

    /// A token that stops the gateway when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every task, letting each finish its current group, within a deadline.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_DEADLINE, all_done)
            .await
            .is_err()
        {
            tracing::warn!("tasks still running at the shutdown deadline; aborting them");
            self.tasks.abort_all();
        }
    }
}

/// Seconds as ms, saturating.
fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

fn max_clock_skew_ms(config: &GatewayConfig) -> i64 {
    i64::try_from(config.devices.max_clock_skew_s)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

/// A listen address of "any interface" is not one a client can connect to; use loopback.
fn connectable_host(host: &str) -> String {
    match host {
        "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" => "::1".to_owned(),
        other => other.to_owned(),
    }
}
