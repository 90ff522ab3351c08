//! The agent's wiring and its one shutdown path. [`Agent::start`] reads top to bottom like the
//! architecture: database → outbox → jobs → tunables → uplink (with the downlink) → telemetry
//! intake and the sensor source → API, job pruning and health. [`Agent::shutdown`] undoes it in
//! order: stop accepting, flush, send what the link allows within the deadline, announce
//! offline, close.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::clock::{SharedClock, SystemClock};
use proto::{DeviceId, RecordBody, Telemetry};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::{AgentConfig, ConfigError};
use crate::downlink::{Downlink, Tunables};
use crate::health;
use crate::jobs::{self, JobStore, JobsError};
use crate::outbox::{Outbox, OutboxError};
use crate::source::{self, SourceError, SourceMonitor};
use crate::stamp::Stamp;
use crate::uplink::{Intake, LinkStatus, OptionsError, Uplink};

/// Telemetry samples waiting to be stored, at most; a sensor that outruns the disk waits.
const TELEMETRY_QUEUE: usize = 64;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The outbox could not be opened.
    #[error("cannot open the outbox in {dir}: {source}")]
    Outbox {
        /// Its directory.
        dir: std::path::PathBuf,
        /// Why.
        source: OutboxError,
    },
    /// The job store could not be opened or written.
    #[error(transparent)]
    Jobs(#[from] JobsError),
    /// The boot counter could not be made durable.
    #[error("cannot flush the outbox: {0}")]
    Flush(#[source] OutboxError),
    /// The MQTT settings are unusable (TLS files, say).
    #[error(transparent)]
    Mqtt(#[from] OptionsError),
    /// The API's address cannot be bound.
    #[error(
        "cannot listen for the local API on {addr}: {source}; choose another with --api-listen"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The sensor source could not be started.
    #[error("cannot start the sensor source: {0}")]
    Source(#[from] SourceError),
    /// A blocking start-up task failed.
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running agent.
pub struct Agent {
    /// Where the local API listens.
    pub api_addr: SocketAddr,
    /// This device.
    pub device: DeviceId,
    /// This start's number (1 for the first).
    pub boot: u64,
    intake: Intake,
    jobs: JobStore,
    tunables: Arc<Tunables>,
    uplink: Uplink,
    telemetry: mpsc::Sender<Telemetry>,
    /// A boiler hub's sensor source, for tests and the status API; its task is in `intake_tasks`.
    source: Option<SourceMonitor>,
    /// Stops everything that accepts records: the API, health, telemetry (and sensor sources).
    stop_intake: CancellationToken,
    intake_tasks: JoinSet<()>,
    shutdown_deadline: Duration,
}

impl Agent {
    /// Opens the database, starts the uplink, the API, the health reporter and the telemetry
    /// intake. The link comes up in the background; records are accepted from the start.
    pub async fn start(config: AgentConfig) -> Result<Self, AgentError> {
        Self::start_with_clock(config, SystemClock::shared()).await
    }

    /// [`Agent::start`] with the clock every record, job and state message is stamped by (a
    /// simulation passes its compressed one).
    pub async fn start_with_clock(
        config: AgentConfig,
        clock: SharedClock,
    ) -> Result<Self, AgentError> {
        config.validate()?;
        let device = config.device()?;
        let started = Instant::now();
        if !config.signing.required {
            tracing::warn!(
                signs = config.signing.key.is_some(),
                "signing.required is off: acks and jobs the gateway did not sign are acted on, so \
                 anyone who can publish on this device's topics can make it delete records or \
                 show a crew a false job. Only while migrating"
            );
        }

        // Store → outbox → jobs (one database; opening reads every record, so off the runtime).
        let dir = config.data_dir.clone();
        let outbox_config = config.outbox_config();
        let outbox = tokio::task::spawn_blocking(move || Outbox::open(&dir, outbox_config))
            .await?
            .map_err(|source| AgentError::Outbox {
                dir: config.data_dir.clone(),
                source,
            })?;
        let jobs = JobStore::open(&outbox)?;
        let boot = jobs.next_boot()?;
        outbox.sync().await.map_err(AgentError::Flush)?;
        // Records made from here on carry this boot and their time since it began.
        let stamp = Stamp::with_clock(boot, started, clock.clone());
        outbox
            .stamp_records(stamp.clone())
            .map_err(AgentError::Flush)?;

        // Settings the gateway can change: the file's, then whatever it pushed before.
        let tunables = Arc::new(Tunables::new(&config));
        if let Some(pushed) = jobs.config()? {
            tunables.apply(&pushed);
        }

        // Uplink, with the downlink on the same connection.
        let intake = Intake::new(outbox.clone(), clock.clone());
        let downlink = Downlink::new(
            jobs.clone(),
            outbox.clone(),
            Arc::clone(&tunables),
            clock.clone(),
        );
        let uplink = Uplink::start(
            &config,
            device.clone(),
            stamp,
            &intake,
            downlink,
            tunables.batching.subscribe(),
        )?;

        // Everything that accepts records stops on one token.
        let stop_intake = CancellationToken::new();
        let mut intake_tasks = JoinSet::new();

        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .map_err(|source| AgentError::Listen {
                addr: config.api.listen,
                source,
            })?;
        let api_addr = listener.local_addr().map_err(|source| AgentError::Listen {
            addr: config.api.listen,
            source,
        })?;
        // Sensor samples, from the boiler hub's source (if any) and from `telemetry_sink`.
        let (telemetry, samples) = mpsc::channel(TELEMETRY_QUEUE);
        intake_tasks.spawn(accept_telemetry(
            samples,
            intake.clone(),
            stop_intake.clone(),
        ));
        // The sampling interval follows the gateway's configuration pushes (`tunables.sample`).
        let source = match (&config.source, &config.asset) {
            (Some(source_config), Some(asset)) => {
                let running = source::spawn(
                    source_config.clone(),
                    asset.clone(),
                    tunables.sample.subscribe(),
                    telemetry.clone(),
                    stop_intake.clone(),
                )?;
                let (monitor, supervise) = SourceMonitor::watch(source_config, asset, running);
                intake_tasks.spawn(supervise);
                Some(monitor)
            }
            _ => None,
        };

        let app = api::router(
            ApiState {
                intake: intake.clone(),
                jobs: jobs.clone(),
                link: uplink.status(),
                device: device.clone(),
                boot,
                source: source.clone(),
            },
            &config.api,
        );
        let api_stop = stop_intake.clone();
        intake_tasks.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(api_stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "local API failed");
            }
        });

        // Not intake, but it writes to the same database and stops with it.
        intake_tasks.spawn(jobs::prune_periodically(
            jobs.clone(),
            config.keep_finished_jobs(),
            jobs::PRUNE_EVERY,
            clock,
            stop_intake.clone(),
        ));

        intake_tasks.spawn(health::run(
            intake.clone(),
            config.data_dir.clone(),
            tunables.health.subscribe(),
            uplink.status(),
            source.clone(),
            started,
            stop_intake.clone(),
        ));

        tracing::info!(%device, boot, %api_addr, "edge agent started");
        Ok(Self {
            api_addr,
            device,
            boot,
            intake,
            jobs,
            tunables,
            uplink,
            telemetry,
            source,
            stop_intake,
            intake_tasks,
            shutdown_deadline: config.shutdown_deadline(),
        })
    }

    /// Where sensor samples go: each is stored as a telemetry record, timestamped on arrival.
    pub fn telemetry_sink(&self) -> mpsc::Sender<Telemetry> {
        self.telemetry.clone()
    }

    /// The sampling interval, which follows the gateway's configuration pushes.
    pub fn sample_interval(&self) -> watch::Receiver<Duration> {
        self.tunables.sample.subscribe()
    }

    /// The boiler hub's sensor source, if one is configured.
    pub fn source(&self) -> Option<&SourceMonitor> {
        self.source.as_ref()
    }

    /// The link's state.
    pub fn link_status(&self) -> watch::Receiver<LinkStatus> {
        self.uplink.status()
    }

    /// Where records enter (the API and the sensors use it).
    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// The jobs and configuration received.
    pub fn jobs(&self) -> &JobStore {
        &self.jobs
    }

    /// Stops gracefully: stop accepting (the API finishes the requests it has), flush, send what
    /// the link allows within the shutdown deadline, announce offline and close the connection.
    pub async fn shutdown(mut self) {
        let deadline = tokio::time::Instant::now() + self.shutdown_deadline;
        tracing::info!("shutting down: no longer accepting records");
        self.stop_intake.cancel();
        drop(self.telemetry);
        let tasks = &mut self.intake_tasks;
        let stopped = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if stopped.is_err() {
            tracing::warn!("record intake still busy at the deadline; aborting it");
            self.intake_tasks.abort_all();
        }
        if let Err(e) = self.intake.outbox().sync().await {
            tracing::error!(error = %e, "final flush failed");
        }
        let all_acked = self.uplink.drain(deadline).await;
        let left = self.intake.outbox().stats().map(|s| s.depth).unwrap_or(0);
        tracing::info!(all_acked, left, "closing the link");
        self.uplink.close().await;
        tracing::info!("edge agent stopped");
    }
}

/// Runs the agent until `shutdown` resolves, then stops it gracefully.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let agent = Agent::start(config).await?;
    shutdown.await;
    agent.shutdown().await;
    Ok(())
}

/// Stores telemetry samples as they come, until stopped or every sender has gone; samples already
/// queued at a stop are still stored (they were taken).
async fn accept_telemetry(
    mut samples: mpsc::Receiver<Telemetry>,
    intake: Intake,
    stop: CancellationToken,
) {
    loop {
        let sample = tokio::select! {
            sample = samples.recv() => sample,
            _ = stop.cancelled() => {
                samples.close();
                samples.recv().await
            }
        };
        let Some(sample) = sample else { return };
        match intake
            .accept(intake.now_ms(), RecordBody::Telemetry(sample))
            .await
        {
            // The outbox logs its outages once, not once per sample.
            Ok(_) | Err(OutboxError::StorageDown(_)) => {}
            Err(e) => tracing::warn!(error = %e, "cannot store a telemetry sample"),
        }
    }
}
