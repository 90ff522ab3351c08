//! What the gateway sends down on `…/down`: jobs, cancellations and configuration. Each is stored
//! durably before the MQTT message is acknowledged (the persistent session redelivers anything
//! unacknowledged after a reconnect), and a redelivered or repeated message changes nothing.
//!
//! Configuration takes effect through [`Tunables`]: `watch` channels that the sensors, the health
//! reporter and the uplink's sender read.

use std::sync::Arc;
use std::time::Duration;

use proto::clock::SharedClock;
use proto::{Config, DecodeError, Down, DownBody, MAX_MESSAGE_BYTES};
use tokio::sync::watch;

use crate::config::AgentConfig;
use crate::jobs::{CancelChange, JobChange, JobStore, JobsError};
use crate::outbox::{Outbox, OutboxError};
use crate::uplink::Batching;

/// The settings the gateway can change at run time, each readable by whoever needs it.
#[derive(Debug)]
pub struct Tunables {
    /// The sensors' sampling interval.
    pub sample: watch::Sender<Duration>,
    /// The interval between health records.
    pub health: watch::Sender<Duration>,
    /// How the uplink batches.
    pub batching: watch::Sender<Batching>,
}

impl Tunables {
    /// The configured values, before anything from the gateway.
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            sample: watch::channel(secs(config.intervals.sample_s)).0,
            health: watch::channel(secs(config.intervals.health_s)).0,
            batching: watch::channel(Batching::from_config(&config.uplink)).0,
        }
    }

    /// Applies what a pushed configuration sets; absent fields keep their values. Only changed
    /// values notify their readers.
    pub fn apply(&self, config: &Config) {
        if let Some(s) = config.sample_s {
            self.sample
                .send_if_modified(|value| replace(value, secs(s)));
        }
        if let Some(s) = config.health_s {
            self.health
                .send_if_modified(|value| replace(value, secs(s)));
        }
        self.batching.send_if_modified(|batching| {
            let mut updated = *batching;
            if let Some(max) = config.batch_max {
                // Validated by `proto` (1 to MAX_BATCH_RECORDS) before it gets here.
                updated.max_records = max as usize;
            }
            if let Some(ms) = config.linger_ms {
                updated.linger = Duration::from_millis(ms.into());
            }
            replace(batching, updated)
        });
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(s.into())
}

fn replace<T: PartialEq>(value: &mut T, new: T) -> bool {
    let changed = *value != new;
    *value = new;
    changed
}

/// What a downlink message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A job.
    Job(JobChange),
    /// A cancellation.
    Cancel(CancelChange),
    /// A configuration: whether it was newer than the one held (and so applied).
    Config {
        /// It was newer, and took effect.
        applied: bool,
    },
}

/// Why a downlink message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum DownlinkError {
    /// The message is malformed or of another version: it never will apply.
    #[error("undecodable downlink message: {0}")]
    Decode(#[from] DecodeError),
    /// Storing it failed; a redelivery may succeed.
    #[error(transparent)]
    Store(#[from] JobsError),
    /// Making it durable failed; a redelivery may succeed.
    #[error("cannot make a downlink message durable: {0}")]
    Sync(#[from] OutboxError),
}

impl DownlinkError {
    /// Whether retrying the same message cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, DownlinkError::Decode(_))
    }
}

/// Applies downlink messages; clones share the store.
#[derive(Debug, Clone)]
pub struct Downlink {
    jobs: JobStore,
    outbox: Outbox,
    tunables: Arc<Tunables>,
    clock: SharedClock,
}

impl Downlink {
    /// A downlink storing into `jobs`, made durable through `outbox`'s flushes; what it receives
    /// is dated by `clock`.
    pub fn new(
        jobs: JobStore,
        outbox: Outbox,
        tunables: Arc<Tunables>,
        clock: SharedClock,
    ) -> Self {
        Self {
            jobs,
            outbox,
            tunables,
            clock,
        }
    }

    /// Decodes and applies one message; returns once its effect is on disk.
    pub async fn handle(&self, payload: &[u8]) -> Result<Applied, DownlinkError> {
        let down: Down = proto::decode(payload, MAX_MESSAGE_BYTES)?;
        self.apply(down).await
    }

    /// Applies one decoded message; returns once its effect is on disk.
    pub async fn apply(&self, down: Down) -> Result<Applied, DownlinkError> {
        let now = self.clock.now_ms();
        let applied = match down.body {
            DownBody::Job(job) => Applied::Job(self.jobs.apply_job(job, now)?),
            DownBody::JobCancel(cancel) => Applied::Cancel(self.jobs.apply_cancel(&cancel, now)?),
            DownBody::Config(config) => match self.jobs.apply_config(&config)? {
                Some(merged) => {
                    // Durable first, so a restart comes back with what is already in effect.
                    self.outbox.sync().await?;
                    self.tunables.apply(&merged);
                    return Ok(Applied::Config { applied: true });
                }
                None => Applied::Config { applied: false },
            },
        };
        if changed(applied) {
            self.outbox.sync().await?;
        }
        Ok(applied)
    }
}

/// Whether anything was written that must reach the disk.
fn changed(applied: Applied) -> bool {
    match applied {
        Applied::Job(change) => matches!(change, JobChange::Added | JobChange::Revised { .. }),
        Applied::Cancel(change) => change == CancelChange::Cancelled,
        Applied::Config { applied } => applied,
    }
}

#[cfg(test)]
mod tests {
    use proto::{JobCancel, SCHEMA_VERSION};

    use super::*;
    use crate::outbox::OutboxConfig;

    fn agent_config() -> AgentConfig {
        AgentConfig {
            device_id: "hub-1".into(),
            ..AgentConfig::default()
        }
    }

    fn down(body: DownBody) -> Vec<u8> {
        let down = Down {
            v: SCHEMA_VERSION,
            sent: 1_764_000_000_000,
            body,
        };
        proto::encode(&down, MAX_MESSAGE_BYTES).unwrap()
    }

    #[tokio::test]
    async fn applies_jobs_cancellations_and_newer_configuration_once() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        let jobs = JobStore::open(&outbox).unwrap();
        let tunables = Arc::new(Tunables::new(&agent_config()));
        let downlink = Downlink::new(
            jobs.clone(),
            outbox,
            Arc::clone(&tunables),
            proto::clock::SystemClock::shared(),
        );
        let mut sample = tunables.sample.subscribe();

        let DownBody::Job(job) = proto::examples::down_job_repair().body else {
            panic!("the example is a job");
        };
        let id = job.id.clone();
        let message = down(DownBody::Job(job));
        assert_eq!(
            downlink.handle(&message).await.unwrap(),
            Applied::Job(JobChange::Added)
        );
        assert_eq!(
            downlink.handle(&message).await.unwrap(),
            Applied::Job(JobChange::Unchanged)
        );
        let cancel = down(DownBody::JobCancel(JobCancel { id, reason: None }));
        assert_eq!(
            downlink.handle(&cancel).await.unwrap(),
            Applied::Cancel(CancelChange::Cancelled)
        );
        assert_eq!(
            downlink.handle(&cancel).await.unwrap(),
            Applied::Cancel(CancelChange::AlreadyCancelled)
        );

        let config = |rev, sample_s| {
            down(DownBody::Config(Config {
                rev,
                sample_s: Some(sample_s),
                linger_ms: Some(5),
                ..Config::default()
            }))
        };
        assert_eq!(
            downlink.handle(&config(7, 15)).await.unwrap(),
            Applied::Config { applied: true }
        );
        assert!(sample.has_changed().unwrap());
        assert_eq!(*sample.borrow_and_update(), Duration::from_secs(15));
        assert_eq!(tunables.batching.borrow().linger, Duration::from_millis(5));
        assert_eq!(
            downlink.handle(&config(6, 99)).await.unwrap(),
            Applied::Config { applied: false }
        );
        assert!(!sample.has_changed().unwrap());

        let garbage = downlink.handle(b"\xff\x00").await.unwrap_err();
        assert!(garbage.is_permanent());
    }
}
