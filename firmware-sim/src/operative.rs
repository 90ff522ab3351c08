//! A repairs operative working the jobs on their handheld, through its agent's local HTTP API:
//! polls `GET /v1/jobs` and takes each open job, earliest due first, through `accepted`,
//! `en_route`, `arrived` and `completed` (`POST /v1/jobs/{id}/status`), with simulated travel
//! and work between them. A job reported on before (the operative restarted) resumes from its
//! status; a job withdrawn meanwhile (HTTP 409) is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway::missed_bins::LatLon;
use proto::{JobKind, JobStatus, Position, TimestampMs};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SimClock;
use crate::crew::{gps_fix, post_retrying};
use crate::http::{HttpError, JsonClient};

/// The statuses an operative reports on a job that goes to plan, in order.
pub const PROGRESS: [JobStatus; 4] = [
    JobStatus::Accepted,
    JobStatus::EnRoute,
    JobStatus::Arrived,
    JobStatus::Completed,
];

/// A job as `GET /v1/jobs` lists it (the fields the operative needs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// Due by (UTC ms).
    pub due: TimestampMs,
    /// What to do.
    pub kind: JobKind,
    /// The latest status reported on the device.
    pub status: Option<JobStatus>,
    /// Set if the gateway withdrew it.
    pub cancelled: Option<serde_json::Value>,
}

impl JobView {
    /// Whether there is still something to report on it.
    pub fn is_open(&self) -> bool {
        self.cancelled.is_none()
            && matches!(
                self.status,
                None | Some(JobStatus::Accepted | JobStatus::EnRoute | JobStatus::Arrived)
            )
    }
}

/// The statuses still to report on a job whose latest status is `status`.
pub fn remaining(status: Option<JobStatus>) -> &'static [JobStatus] {
    match status {
        None => &PROGRESS,
        Some(JobStatus::Accepted) => &PROGRESS[1..],
        Some(JobStatus::EnRoute) => &PROGRESS[2..],
        Some(JobStatus::Arrived) => &PROGRESS[3..],
        Some(_) => &[],
    }
}

/// The open job to do next: the earliest due, then the lowest id.
pub fn next_job(jobs: &[JobView]) -> Option<&JobView> {
    jobs.iter()
        .filter(|job| job.is_open())
        .min_by(|a, b| a.due.cmp(&b.due).then_with(|| a.id.cmp(&b.id)))
}

/// How long, simulated, before reporting `status`: reading the job, driving there, the repair.
fn lead_time(status: JobStatus, rng: &mut impl Rng) -> Duration {
    let minutes = match status {
        JobStatus::Accepted => rng.gen_range(1.0..5.0),
        JobStatus::EnRoute => rng.gen_range(2.0..10.0),
        JobStatus::Arrived => rng.gen_range(10.0..40.0),
        _ => rng.gen_range(30.0..90.0),
    };
    Duration::from_secs_f64(minutes * 60.0)
}

/// An operative's settings.
#[derive(Debug, Clone, Default)]
pub struct OperativeConfig {
    /// Where each asset is, so that arrival and completion carry a fix. Jobs for other assets are
    /// reported without one.
    pub sites: HashMap<String, LatLon>,
    /// How often, simulated, to look for new jobs when there are none.
    pub poll: Duration,
    /// Seeds timings and fixes.
    pub seed: u64,
}

/// An operative's progress, shared with whoever reports on it.
#[derive(Debug, Default)]
pub struct OperativeStats {
    /// Statuses the agent accepted.
    pub updates: AtomicU64,
    /// Jobs completed.
    pub completed: AtomicU64,
    /// Jobs dropped because they were withdrawn or unknown.
    pub dropped: AtomicU64,
}

/// Works the jobs on the agent at `api` until `stop`; sends each completed repair's asset id on
/// `completed`, if given (the demo puts that boiler right).
pub async fn run(
    api: JsonClient,
    config: OperativeConfig,
    clock: SimClock,
    stats: Arc<OperativeStats>,
    completed: Option<mpsc::UnboundedSender<String>>,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(config.seed);
    // The agent may still be starting; real time, so that a slow poll does not hold up a test.
    let poll = clock
        .real(config.poll)
        .clamp(Duration::from_millis(50), Duration::from_secs(10));
    loop {
        let jobs = match api.get::<Vec<JobView>>("/v1/jobs").await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::debug!(%error, "cannot list jobs yet");
                Vec::new()
            }
        };
        let Some(job) = next_job(&jobs).cloned() else {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(poll) => continue,
            }
        };
        let site = match &job.kind {
            JobKind::Repair(repair) => config.sites.get(&repair.asset).copied(),
            JobKind::ReturnCollection(_) => None,
        };
        tracing::info!(job = %job.id, "working a job");
        for &status in remaining(job.status) {
            if !clock.sleep(lead_time(status, &mut rng), &stop).await {
                return;
            }
            let mut body = json!({ "status": status });
            if let (Some(site), JobStatus::Arrived | JobStatus::Completed) = (site, status) {
                let fix: Position = gps_fix(site, &mut rng);
                body["pos"] = json!(fix);
            }
            if status == JobStatus::Completed {
                body["note"] = json!("Attended; fault cleared and appliance tested.");
            }
            let path = format!("/v1/jobs/{}/status", job.id);
            match post_retrying(&api, &path, &body, &stop).await {
                None => return,
                Some(Ok(_)) => {
                    stats.updates.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(HttpError::Status {
                    status: 404 | 409, ..
                })) => {
                    tracing::info!(job = %job.id, "job withdrawn; dropping it");
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, job = %job.id, "status refused; dropping the job");
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            if status == JobStatus::Completed {
                stats.completed.fetch_add(1, Ordering::Relaxed);
                if let (Some(completed), JobKind::Repair(repair)) = (&completed, &job.kind) {
                    let _ = completed.send(repair.asset.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::{Priority, RepairJob};

    use super::*;

    fn job(id: &str, due: TimestampMs, status: Option<JobStatus>, cancelled: bool) -> JobView {
        JobView {
            id: id.into(),
            due,
            kind: JobKind::Repair(RepairJob {
                asset: "B-1".into(),
                addr: "Flat 1".into(),
                desc: "No heating".into(),
                prio: Priority::Urgent,
            }),
            status,
            cancelled: cancelled.then(|| json!({"reason": null, "at": 0})),
        }
    }

    #[test]
    fn takes_the_earliest_due_open_job() {
        let jobs = [
            job("A", 30, None, false),
            job("B", 10, Some(JobStatus::Completed), false),
            job("C", 20, None, true),
            job("D", 25, Some(JobStatus::EnRoute), false),
        ];
        assert_eq!(next_job(&jobs).map(|j| j.id.as_str()), Some("D"));
        assert_eq!(next_job(&jobs[..3]).map(|j| j.id.as_str()), Some("A"));
        assert_eq!(next_job(&jobs[1..3]), None);
    }

    #[test]
    fn resumes_from_the_last_status() {
        assert_eq!(remaining(None), PROGRESS);
        assert_eq!(
            remaining(Some(JobStatus::EnRoute)),
            [JobStatus::Arrived, JobStatus::Completed]
        );
        assert!(remaining(Some(JobStatus::Completed)).is_empty());
        assert!(remaining(Some(JobStatus::NoAccess)).is_empty());
    }

    #[test]
    fn reads_the_agents_job_listing() {
        let listing = json!([{
            "id": "R-1", "rev": 1, "due": 1_764_000_000_000i64,
            "kind": {"repair": {"asset": "B-1", "addr": "Flat 1", "desc": "No heat", "prio": "urgent"}},
            "status": "accepted", "cancelled": null, "received": 1_764_000_000_000i64
        }]);
        let jobs: Vec<JobView> = serde_json::from_value(listing).unwrap();
        assert_eq!(jobs[0].status, Some(JobStatus::Accepted));
        assert!(jobs[0].is_open());
    }
}
