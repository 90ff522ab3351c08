//! What the agent keeps beside its outbox, in a tree of the same database: the jobs the gateway
//! sent (with their local status), the latest configuration it pushed, and the boot counter.
//!
//! Writes become durable with the outbox's next flush ([`Outbox::sync`]); the downlink waits for
//! it before acknowledging a message. The rules (which revision wins, what a cancellation does,
//! how configurations merge) are plain functions over data, below the store.
//!
//! Layout, in tree `agent`: `job:{id}` → CBOR [`StoredJob`]; `config` → CBOR [`proto::Config`];
//! `boot` → 8 bytes big-endian.

use std::sync::{Arc, Mutex, PoisonError};

use proto::{Config, Job, JobCancel, JobStatus, TimestampMs, MAX_MESSAGE_BYTES};
use serde::{Deserialize, Serialize};

use crate::outbox::{Outbox, OutboxError};

const TREE: &str = "agent";
const JOB_PREFIX: &str = "job:";
const CONFIG_KEY: &[u8] = b"config";
const BOOT_KEY: &[u8] = b"boot";

/// A job as the device holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    /// The job as the gateway last sent it.
    pub job: Job,
    /// The latest status reported on this device, if any.
    #[serde(default)]
    pub status: Option<JobStatus>,
    /// Set once the gateway withdrew it.
    #[serde(default)]
    pub cancelled: Option<Cancelled>,
    /// When the device first received it (device clock, UTC ms).
    pub received: TimestampMs,
}

/// A withdrawn job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    /// The gateway's reason, for the crew or operative.
    pub reason: Option<String>,
    /// When the cancellation arrived (device clock, UTC ms).
    pub at: TimestampMs,
}

/// What a job message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// A job the device did not have.
    Added,
    /// A higher revision replaced the job (its local status is kept).
    Revised {
        /// The revision replaced.
        from: u32,
    },
    /// The same or an older revision: nothing changed (a redelivery, most likely).
    Unchanged,
    /// The job was cancelled before; cancellation is final, so nothing changed.
    IgnoredAfterCancel,
}

/// What a cancellation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelChange {
    /// The job is now cancelled.
    Cancelled,
    /// It was already: nothing changed.
    AlreadyCancelled,
    /// The device never had it: nothing changed.
    Unknown,
}

/// Why a status cannot be recorded against a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusRefused {
    /// No such job on this device.
    #[error("no job {0:?} on this device")]
    Unknown(String),
    /// The gateway withdrew it.
    #[error("job {id:?} was cancelled{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Cancelled {
        /// The job's id.
        id: String,
        /// The gateway's reason.
        reason: Option<String>,
    },
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The database failed.
    #[error("job store failed: {0}")]
    Storage(#[from] sled::Error),
    /// The tree could not be opened.
    #[error("job store failed: {0}")]
    Outbox(#[from] OutboxError),
    /// A stored value cannot be read back.
    #[error("job store entry {key:?} is unreadable: {reason}")]
    Corrupt {
        /// The entry's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode a job store entry: {0}")]
    Encode(#[from] proto::EncodeError),
}

/// The durable store of jobs, configuration and boots; clones share it.
#[derive(Debug, Clone)]
pub struct JobStore {
    tree: sled::Tree,
    /// Serializes read-modify-write updates (the downlink and the API both update jobs).
    writes: Arc<Mutex<()>>,
}

impl JobStore {
    /// Opens the store in the outbox's database.
    pub fn open(outbox: &Outbox) -> Result<Self, JobsError> {
        Ok(Self {
            tree: outbox.open_tree(TREE)?,
            writes: Arc::new(Mutex::new(())),
        })
    }

    /// Applies a job from the gateway.
    pub fn apply_job(&self, job: Job, now: TimestampMs) -> Result<JobChange, JobsError> {
        let _writing = self.lock();
        let existing = self.get(&job.id)?;
        let change = judge_job(existing.as_ref(), &job);
        let stored = match (change, existing) {
            (JobChange::Added, _) => StoredJob {
                job,
                status: None,
                cancelled: None,
                received: now,
            },
            (JobChange::Revised { .. }, Some(existing)) => StoredJob { job, ..existing },
            _ => return Ok(change),
        };
        self.put_job(&stored)?;
        Ok(change)
    }

    /// Applies a cancellation from the gateway.
    pub fn apply_cancel(
        &self,
        cancel: &JobCancel,
        now: TimestampMs,
    ) -> Result<CancelChange, JobsError> {
        let _writing = self.lock();
        let Some(mut stored) = self.get(&cancel.id)? else {
            return Ok(CancelChange::Unknown);
        };
        if stored.cancelled.is_some() {
            return Ok(CancelChange::AlreadyCancelled);
        }
        stored.cancelled = Some(Cancelled {
            reason: cancel.reason.clone(),
            at: now,
        });
        self.put_job(&stored)?;
        Ok(CancelChange::Cancelled)
    }

    /// Checks that a status may be reported against job `id`: it exists and is not cancelled.
    pub fn check_status(&self, id: &str) -> Result<Result<StoredJob, StatusRefused>, JobsError> {
        Ok(match self.get(id)? {
            None => Err(StatusRefused::Unknown(id.to_owned())),
            Some(StoredJob {
                cancelled: Some(cancelled),
                ..
            }) => Err(StatusRefused::Cancelled {
                id: id.to_owned(),
                reason: cancelled.reason,
            }),
            Some(stored) => Ok(stored),
        })
    }

    /// Records the latest status reported on this device for job `id` (for display; the record
    /// sent to the gateway is the authority). A job deleted meanwhile is left alone.
    pub fn set_status(&self, id: &str, status: JobStatus) -> Result<(), JobsError> {
        let _writing = self.lock();
        if let Some(mut stored) = self.get(id)? {
            stored.status = Some(status);
            self.put_job(&stored)?;
        }
        Ok(())
    }

    /// The job `id`, if the device has it.
    pub fn get(&self, id: &str) -> Result<Option<StoredJob>, JobsError> {
        self.tree
            .get(job_key(id))?
            .map(|value| decode(id, &value))
            .transpose()
    }

    /// Every job, cancelled ones included (so the app can take them off its list), by id.
    pub fn list(&self) -> Result<Vec<StoredJob>, JobsError> {
        self.tree
            .scan_prefix(JOB_PREFIX.as_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                decode(&String::from_utf8_lossy(&key), &value)
            })
            .collect()
    }

    /// The configuration the gateway pushed, merged over its earlier pushes; `None` if it never did.
    pub fn config(&self) -> Result<Option<Config>, JobsError> {
        self.tree
            .get(CONFIG_KEY)?
            .map(|value| decode("config", &value))
            .transpose()
    }

    /// Applies a configuration from the gateway: returns the merged configuration if its revision
    /// is newer than the one held, `None` (and changes nothing) if not.
    pub fn apply_config(&self, incoming: &Config) -> Result<Option<Config>, JobsError> {
        let _writing = self.lock();
        let Some(merged) = merge_config(self.config()?.as_ref(), incoming) else {
            return Ok(None);
        };
        self.tree
            .insert(CONFIG_KEY, proto::encode_value(&merged)?)?;
        Ok(Some(merged))
    }

    /// Counts this start and returns its number (1 for the first). Durable after the next
    /// [`Outbox::sync`].
    pub fn next_boot(&self) -> Result<u64, JobsError> {
        let _writing = self.lock();
        let previous = match self.tree.get(BOOT_KEY)? {
            Some(value) => {
                let bytes =
                    <[u8; 8]>::try_from(value.as_ref()).map_err(|_| JobsError::Corrupt {
                        key: "boot".into(),
                        reason: "not 8 bytes".into(),
                    })?;
                u64::from_be_bytes(bytes)
            }
            None => 0,
        };
        let boot = previous.saturating_add(1);
        self.tree.insert(BOOT_KEY, &boot.to_be_bytes())?;
        Ok(boot)
    }

    fn put_job(&self, stored: &StoredJob) -> Result<(), JobsError> {
        self.tree
            .insert(job_key(&stored.job.id), proto::encode_value(stored)?)?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot have left it inconsistent.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which way a job message goes: new, a newer revision, or nothing to do.
pub fn judge_job(existing: Option<&StoredJob>, incoming: &Job) -> JobChange {
    match existing {
        None => JobChange::Added,
        Some(stored) if stored.cancelled.is_some() => JobChange::IgnoredAfterCancel,
        Some(stored) if incoming.rev > stored.job.rev => JobChange::Revised {
            from: stored.job.rev,
        },
        Some(_) => JobChange::Unchanged,
    }
}

/// Merges a pushed configuration over the held one: a higher revision wins, and its absent fields
/// keep their held values. `None` if `incoming` is not newer.
pub fn merge_config(held: Option<&Config>, incoming: &Config) -> Option<Config> {
    let Some(held) = held else {
        return Some(incoming.clone());
    };
    if incoming.rev <= held.rev {
        return None;
    }
    Some(Config {
        rev: incoming.rev,
        sample_s: incoming.sample_s.or(held.sample_s),
        health_s: incoming.health_s.or(held.health_s),
        batch_max: incoming.batch_max.or(held.batch_max),
        linger_ms: incoming.linger_ms.or(held.linger_ms),
    })
}

fn job_key(id: &str) -> Vec<u8> {
    format!("{JOB_PREFIX}{id}").into_bytes()
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, JobsError> {
    proto::decode_value(value, MAX_MESSAGE_BYTES).map_err(|e| JobsError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use proto::{JobKind, Priority, RepairJob};

    use super::*;
    use crate::outbox::OutboxConfig;

    const NOW: TimestampMs = 1_764_000_000_000;

    fn job(id: &str, rev: u32) -> Job {
        Job {
            id: id.into(),
            rev,
            due: NOW + 86_400_000,
            kind: JobKind::Repair(RepairJob {
                asset: "B-1042".into(),
                addr: "1 High Street".into(),
                desc: "No heating".into(),
                prio: Priority::Urgent,
            }),
        }
    }

    fn cancel(id: &str) -> JobCancel {
        JobCancel {
            id: id.into(),
            reason: Some("resident cancelled".into()),
        }
    }

    #[test]
    fn revisions_replace_and_redeliveries_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        let jobs = JobStore::open(&outbox).unwrap();

        assert_eq!(
            jobs.apply_job(job("J-1", 1), NOW).unwrap(),
            JobChange::Added
        );
        assert_eq!(
            jobs.apply_job(job("J-1", 1), NOW).unwrap(),
            JobChange::Unchanged
        );
        jobs.set_status("J-1", JobStatus::Accepted).unwrap();
        assert_eq!(
            jobs.apply_job(job("J-1", 2), NOW + 1).unwrap(),
            JobChange::Revised { from: 1 }
        );
        assert_eq!(
            jobs.apply_job(job("J-1", 1), NOW).unwrap(),
            JobChange::Unchanged
        );
        let stored = jobs.get("J-1").unwrap().unwrap();
        assert_eq!(stored.job.rev, 2);
        assert_eq!(
            stored.status,
            Some(JobStatus::Accepted),
            "status survives a revision"
        );
        assert_eq!(stored.received, NOW);
    }

    #[test]
    fn cancellation_is_final_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        let jobs = JobStore::open(&outbox).unwrap();
        jobs.apply_job(job("J-1", 1), NOW).unwrap();

        assert_eq!(
            jobs.apply_cancel(&cancel("J-1"), NOW).unwrap(),
            CancelChange::Cancelled
        );
        assert_eq!(
            jobs.apply_cancel(&cancel("J-1"), NOW + 5).unwrap(),
            CancelChange::AlreadyCancelled
        );
        assert_eq!(
            jobs.apply_cancel(&cancel("J-9"), NOW).unwrap(),
            CancelChange::Unknown
        );
        assert_eq!(
            jobs.apply_job(job("J-1", 3), NOW).unwrap(),
            JobChange::IgnoredAfterCancel
        );
        let stored = jobs.get("J-1").unwrap().unwrap();
        assert_eq!(stored.cancelled.unwrap().at, NOW);
        assert!(matches!(
            jobs.check_status("J-1").unwrap(),
            Err(StatusRefused::Cancelled { .. })
        ));
        assert!(matches!(
            jobs.check_status("J-9").unwrap(),
            Err(StatusRefused::Unknown(_))
        ));
        assert_eq!(
            jobs.apply_cancel(&cancel("J-9"), NOW).unwrap(),
            CancelChange::Unknown
        );
        assert!(
            jobs.get("J-9").unwrap().is_none(),
            "no tombstone for an unknown job"
        );
    }

    #[test]
    fn jobs_config_and_boots_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        {
            let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
            let jobs = JobStore::open(&outbox).unwrap();
            assert_eq!(jobs.next_boot().unwrap(), 1);
            jobs.apply_job(job("J-1", 1), NOW).unwrap();
            let config = Config {
                rev: 4,
                sample_s: Some(30),
                ..Config::default()
            };
            jobs.apply_config(&config).unwrap().unwrap();
            runtime.block_on(outbox.sync()).unwrap();
        }
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        let jobs = JobStore::open(&outbox).unwrap();
        assert_eq!(jobs.next_boot().unwrap(), 2);
        assert_eq!(jobs.list().unwrap().len(), 1);
        assert_eq!(jobs.config().unwrap().unwrap().sample_s, Some(30));
    }

    #[test]
    fn configurations_merge_by_revision() {
        let first = Config {
            rev: 2,
            sample_s: Some(30),
            linger_ms: Some(100),
            ..Config::default()
        };
        assert_eq!(merge_config(None, &first), Some(first.clone()));
        let older = Config {
            rev: 2,
            sample_s: Some(5),
            ..Config::default()
        };
        assert_eq!(merge_config(Some(&first), &older), None);
        let newer = Config {
            rev: 3,
            health_s: Some(600),
            linger_ms: Some(50),
            ..Config::default()
        };
        assert_eq!(
            merge_config(Some(&first), &newer),
            Some(Config {
                rev: 3,
                sample_s: Some(30),
                health_s: Some(600),
                batch_max: None,
                linger_ms: Some(50),
            })
        );
    }

    #[test]
    fn the_outbox_tree_is_not_for_sharing() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        assert!(matches!(
            outbox.open_tree("outbox"),
            Err(OutboxError::ReservedTree(_))
        ));
    }
}
