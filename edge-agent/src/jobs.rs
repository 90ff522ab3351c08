//! What the agent keeps beside its outbox, in a tree of the same database: the jobs the gateway
//! sent (with their local status), the latest configuration it pushed, and the boot counter.
//!
//! Writes become durable with the outbox's next flush ([`Outbox::sync`]); the downlink waits for
//! it before acknowledging a message. The rules (which revision wins, what a cancellation does,
//! how configurations merge, when a finished job may go) are plain functions over data, below the
//! store.
//!
//! Finished jobs (completed on the device, or withdrawn by the gateway) are kept for
//! `jobs.keep_finished_days` so that the app can still show them, then pruned
//! ([`prune_periodically`]), so that a handheld's store does not grow for ever. The gateway holds
//! the record of them; it does not send a finished job again, and if it ever did, the device would
//! take it as new.
//!
//! Layout, in tree `agent`: `job:{id}` → CBOR [`StoredJob`]; `config` → CBOR [`proto::Config`];
//! `boot` → 8 bytes big-endian.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::clock::SharedClock;
use proto::{Config, Job, JobCancel, JobStatus, TimestampMs, MAX_MESSAGE_BYTES};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

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
    /// When that status was reported (device clock, UTC ms). Absent in entries written before it
    /// was kept; [`finished_at`] then falls back to `received`.
    #[serde(default)]
    pub status_at: Option<TimestampMs>,
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
    /// The database; the tree is taken from it for each use, since after a storage failure the
    /// outbox reopens the database and a tree kept from before would be the failed one.
    outbox: Outbox,
    /// Serializes read-modify-write updates (the downlink and the API both update jobs).
    writes: Arc<Mutex<()>>,
}

impl JobStore {
    /// Opens the store in the outbox's database.
    pub fn open(outbox: &Outbox) -> Result<Self, JobsError> {
        outbox.open_tree(TREE)?;
        Ok(Self {
            outbox: outbox.clone(),
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
                status_at: None,
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

    /// Records the latest status reported on this device for job `id`, reported `at` (for
    /// display, and for pruning once finished; the record sent to the gateway is the authority).
    /// A job deleted meanwhile is left alone.
    pub fn set_status(
        &self,
        id: &str,
        status: JobStatus,
        at: TimestampMs,
    ) -> Result<(), JobsError> {
        let _writing = self.lock();
        if let Some(mut stored) = self.get(id)? {
            stored.status = Some(status);
            stored.status_at = Some(at);
            self.put_job(&stored)?;
        }
        Ok(())
    }

    /// Deletes every job finished more than `keep` before `now` (see [`expired`]); returns how
    /// many. The deletions become durable with the outbox's next flush; a crash before it only
    /// means they are pruned again.
    pub fn prune(&self, now: TimestampMs, keep: Duration) -> Result<usize, JobsError> {
        let _writing = self.lock();
        let mut pruned = 0;
        for stored in self.list()? {
            if expired(&stored, now, keep) {
                self.tree()?.remove(job_key(&stored.job.id))?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// The job `id`, if the device has it.
    pub fn get(&self, id: &str) -> Result<Option<StoredJob>, JobsError> {
        self.tree()?
            .get(job_key(id))?
            .map(|value| decode(id, &value))
            .transpose()
    }

    /// Every job, cancelled ones included (so the app can take them off its list), by id.
    pub fn list(&self) -> Result<Vec<StoredJob>, JobsError> {
        self.tree()?
            .scan_prefix(JOB_PREFIX.as_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                decode(&String::from_utf8_lossy(&key), &value)
            })
            .collect()
    }

    /// The configuration the gateway pushed, merged over its earlier pushes; `None` if it never did.
    pub fn config(&self) -> Result<Option<Config>, JobsError> {
        self.tree()?
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
        self.tree()?
            .insert(CONFIG_KEY, proto::encode_value(&merged)?)?;
        Ok(Some(merged))
    }

    /// Counts this start and returns its number (1 for the first). Durable after the next
    /// [`Outbox::sync`].
    pub fn next_boot(&self) -> Result<u64, JobsError> {
        let _writing = self.lock();
        let previous = match self.tree()?.get(BOOT_KEY)? {
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
        self.tree()?.insert(BOOT_KEY, &boot.to_be_bytes())?;
        Ok(boot)
    }

    fn put_job(&self, stored: &StoredJob) -> Result<(), JobsError> {
        self.tree()?
            .insert(job_key(&stored.job.id), proto::encode_value(stored)?)?;
        Ok(())
    }

    /// The jobs' tree in the outbox's current database.
    fn tree(&self) -> Result<sled::Tree, JobsError> {
        Ok(self.outbox.open_tree(TREE)?)
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

/// When job `stored` was finished, if it is: when the gateway withdrew it, or when the device
/// reported it completed (or cancelled it). Other statuses (`no_access`, `parts_needed`…) leave
/// the job open: another visit follows.
pub fn finished_at(stored: &StoredJob) -> Option<TimestampMs> {
    if let Some(cancelled) = &stored.cancelled {
        return Some(cancelled.at);
    }
    match stored.status? {
        JobStatus::Completed | JobStatus::Cancelled => {
            Some(stored.status_at.unwrap_or(stored.received))
        }
        _ => None,
    }
}

/// Whether job `stored` finished more than `keep` before `now` and may be pruned.
pub fn expired(stored: &StoredJob, now: TimestampMs, keep: Duration) -> bool {
    let keep_ms = TimestampMs::try_from(keep.as_millis()).unwrap_or(TimestampMs::MAX);
    finished_at(stored).is_some_and(|at| now.saturating_sub(at) > keep_ms)
}

/// How often [`prune_periodically`] looks for finished jobs to delete.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Prunes jobs finished more than `keep` ago by `clock`, at once and then every `every`, until
/// `stop`.
pub async fn prune_periodically(
    jobs: JobStore,
    keep: Duration,
    every: Duration,
    clock: SharedClock,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // A handful of small entries: quick enough to run on the runtime.
        match jobs.prune(clock.now_ms(), keep) {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned finished jobs"),
            Err(e) => tracing::warn!(error = %e, "cannot prune finished jobs"),
        }
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

    use proto::clock::{Clock, SystemClock};

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
        jobs.set_status("J-1", JobStatus::Accepted, NOW).unwrap();
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

    const DAY: Duration = Duration::from_secs(86_400);
    const DAY_MS: TimestampMs = 86_400_000;

    #[test]
    fn finished_means_completed_or_cancelled() {
        let stored = |status: Option<JobStatus>, status_at, cancelled| StoredJob {
            job: job("J-1", 1),
            status,
            status_at,
            cancelled,
            received: NOW,
        };
        let withdrawn = Cancelled {
            reason: None,
            at: NOW + 5,
        };
        assert_eq!(finished_at(&stored(None, None, None)), None);
        for open in [
            JobStatus::Accepted,
            JobStatus::EnRoute,
            JobStatus::Arrived,
            JobStatus::NoAccess,
            JobStatus::PartsNeeded,
        ] {
            assert_eq!(finished_at(&stored(Some(open), Some(NOW + 9), None)), None);
        }
        let completed = stored(Some(JobStatus::Completed), Some(NOW + 9), None);
        assert_eq!(finished_at(&completed), Some(NOW + 9));
        let dropped = stored(Some(JobStatus::Cancelled), Some(NOW + 8), None);
        assert_eq!(finished_at(&dropped), Some(NOW + 8));
        // Written before the status time was kept: when it was received.
        let legacy = stored(Some(JobStatus::Completed), None, None);
        assert_eq!(finished_at(&legacy), Some(NOW));
        // Withdrawn by the gateway, whatever the device said.
        let withdrawn = stored(Some(JobStatus::Arrived), Some(NOW + 9), Some(withdrawn));
        assert_eq!(finished_at(&withdrawn), Some(NOW + 5));

        // Expired strictly after `keep`.
        assert!(!expired(&completed, NOW + 9 + 7 * DAY_MS, 7 * DAY));
        assert!(expired(&completed, NOW + 10 + 7 * DAY_MS, 7 * DAY));
        let open = stored(Some(JobStatus::Arrived), Some(NOW), None);
        assert!(!expired(&open, NOW + 365 * DAY_MS, 7 * DAY));
        // A clock set back does not expire anything.
        assert!(!expired(&completed, NOW - DAY_MS, Duration::ZERO));
    }

    #[test]
    fn prune_removes_only_jobs_finished_before_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        let jobs = JobStore::open(&outbox).unwrap();
        for id in [
            "done-old",
            "done-new",
            "gone-old",
            "gone-new",
            "open-old",
            "untouched",
        ] {
            jobs.apply_job(job(id, 1), NOW).unwrap();
        }
        jobs.set_status("done-old", JobStatus::Completed, NOW + DAY_MS)
            .unwrap();
        jobs.set_status("done-new", JobStatus::Completed, NOW + 6 * DAY_MS)
            .unwrap();
        jobs.apply_cancel(&cancel("gone-old"), NOW + DAY_MS)
            .unwrap();
        jobs.apply_cancel(&cancel("gone-new"), NOW + 6 * DAY_MS)
            .unwrap();
        jobs.set_status("open-old", JobStatus::PartsNeeded, NOW)
            .unwrap();
        jobs.apply_config(&Config {
            rev: 1,
            ..Config::default()
        })
        .unwrap();
        let boot = jobs.next_boot().unwrap();

        // Ten days on, with seven days' retention: the two finished on day 1 go.
        let now = NOW + 10 * DAY_MS;
        assert_eq!(jobs.prune(now, 7 * DAY).unwrap(), 2);
        let left: Vec<String> = jobs.list().unwrap().into_iter().map(|j| j.job.id).collect();
        assert_eq!(left, ["done-new", "gone-new", "open-old", "untouched"]);
        assert_eq!(jobs.prune(now, 7 * DAY).unwrap(), 0, "idempotent");
        // Configuration and the boot counter are not jobs.
        assert_eq!(jobs.config().unwrap().unwrap().rev, 1);
        assert_eq!(jobs.next_boot().unwrap(), boot + 1);
        // A day later still, the rest of the finished ones go too.
        assert_eq!(jobs.prune(now + 4 * DAY_MS, 7 * DAY).unwrap(), 2);
        let left: Vec<String> = jobs.list().unwrap().into_iter().map(|j| j.job.id).collect();
        assert_eq!(left, ["open-old", "untouched"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pruner_runs_at_once_then_periodically_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        let jobs = JobStore::open(&outbox).unwrap();
        let long_ago = SystemClock.now_ms() - 30 * DAY_MS;
        jobs.apply_job(job("J-1", 1), long_ago).unwrap();
        jobs.set_status("J-1", JobStatus::Completed, long_ago)
            .unwrap();
        let stop = CancellationToken::new();
        let pruner = tokio::spawn(prune_periodically(
            jobs.clone(),
            7 * DAY,
            PRUNE_EVERY,
            SystemClock::shared(),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(jobs.list().unwrap().is_empty(), "pruned at start");

        jobs.apply_job(job("J-2", 1), long_ago).unwrap();
        jobs.apply_cancel(&cancel("J-2"), long_ago).unwrap();
        tokio::time::sleep(PRUNE_EVERY).await;
        assert!(jobs.list().unwrap().is_empty(), "pruned an hour later");
        stop.cancel();
        pruner.await.unwrap();
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
