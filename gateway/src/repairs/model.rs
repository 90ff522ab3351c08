//! A repair job as the gateway keeps it: the asset and home, what is wrong and how soon, where it
//! came from (staff, an alert, a tenant), which operative has it and whether their handheld has
//! been sent it, its status as the operative reports it, and its history. Tenants' heating
//! reports are kept beside the jobs they follow.

use proto::{JobStatus, Priority, TimestampMs};
use serde::{Deserialize, Serialize};

use crate::boilers::{Alert, AlertKind};
use crate::missed_bins::{Comment, Contact};

/// A job keeps at most this many transitions: an operative's updates are bounded by it, so a
/// device repeating itself cannot grow a job without bound.
pub const MAX_HISTORY: usize = 200;
/// A job remembers at most this many of the records it was moved by, to apply each once.
pub const MAX_SEEN_UPDATES: usize = 200;
/// A job links at most this many tenants' reports; more are still kept, linked to the job, but
/// the job lists only the first.
pub const MAX_LINKED_REPORTS: usize = 100;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairStatus {
    /// Raised, waiting for an operative (none configured fits, or none was reachable).
    Raised,
    /// Given to an operative, on its way to (or on) their handheld.
    Dispatched,
    /// The operative took it.
    Accepted,
    /// On the way.
    EnRoute,
    /// At the home.
    Arrived,
    /// Needs parts: another visit will follow.
    PartsNeeded,
    /// Could not get in: another visit will follow.
    NoAccess,
    /// The operative reported it done.
    Completed,
    /// Withdrawn by staff.
    Cancelled,
}

impl RepairStatus {
    /// The status's name, as in JSON and the API's filters.
    pub fn as_str(self) -> &'static str {
        match self {
            RepairStatus::Raised => "raised",
            RepairStatus::Dispatched => "dispatched",
            RepairStatus::Accepted => "accepted",
            RepairStatus::EnRoute => "en_route",
            RepairStatus::Arrived => "arrived",
            RepairStatus::PartsNeeded => "parts_needed",
            RepairStatus::NoAccess => "no_access",
            RepairStatus::Completed => "completed",
            RepairStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job is still to be done (not completed, not cancelled).
    pub fn is_open(self) -> bool {
        !matches!(self, RepairStatus::Completed | RepairStatus::Cancelled)
    }
}

/// The alert a job answers: its asset, kind and opening time name it for good.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertRef {
    /// The boiler.
    pub asset: String,
    /// What the alert is about.
    pub kind: AlertKind,
    /// When it opened (UTC ms).
    pub opened_at_ms: TimestampMs,
}

impl AlertRef {
    /// The reference to `alert`.
    pub fn of(alert: &Alert) -> Self {
        Self {
            asset: alert.asset.clone(),
            kind: alert.kind,
            opened_at_ms: alert.opened_at_ms,
        }
    }

    /// The alert's id as the staff API shows it: asset, kind and opening time, `:`-separated.
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.asset,
            self.kind.as_str(),
            self.opened_at_ms
        )
    }

    /// Whether this names `alert`.
    pub fn names(&self, alert: &Alert) -> bool {
        self.asset == alert.asset
            && self.kind == alert.kind
            && self.opened_at_ms == alert.opened_at_ms
    }
}

/// Who or what raised a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Origin {
    /// A member of staff, through the API.
    Staff {
        /// The name of the staff token used (`gateway staff add NAME`).
        name: String,
    },
    /// A critical alert, by itself (`repairs.auto_raise`).
    Alert,
    /// A tenant's heating report.
    Tenant {
        /// The report's id.
        report: String,
    },
}

/// The job as handed to an operative's handheld: which device, which revision, and whether the
/// MQTT client has taken it. Stored before it is sent, so a job is never lost between deciding
/// and sending, and marked sent after, so a restart does not send it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// The operative's device.
    pub device: String,
    /// The job's revision on it.
    pub rev: u32,
    /// When it was given to the device (UTC ms).
    pub at: TimestampMs,
    /// When the MQTT client took it; `None` while it is still to send.
    pub sent_at: Option<TimestampMs>,
}

/// What moved a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Happened {
    /// Raised.
    Raised,
    /// Given to an operative.
    Dispatched {
        /// Their device.
        device: String,
    },
    /// Taken from an operative whose device stayed offline too long, and given to another (or
    /// left waiting for one).
    Reassigned {
        /// The device it was taken from.
        from: String,
        /// How long that device had been offline (ms).
        offline_ms: i64,
    },
    /// No operative fits or none is configured: it waits.
    Waiting,
    /// The operative's report from their handheld.
    Update {
        /// What they reported.
        status: JobStatus,
        /// Their note.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// The device and the record's sequence number: the evidence.
        device: String,
        /// The record's sequence number.
        seq: u64,
    },
    /// A tenant's report was linked to it.
    TenantReport {
        /// The report's id.
        report: String,
    },
    /// The alert it answers cleared: after completion, the proof that the repair worked.
    AlertCleared,
    /// The alert it answers had not cleared this long after the job was completed.
    NeedsAttention {
        /// How long after completion (ms).
        after_ms: i64,
    },
    /// Withdrawn by staff.
    Cancelled,
}

/// One change to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When (UTC ms, the gateway's clock).
    pub at: TimestampMs,
    /// The job's status after it.
    pub status: RepairStatus,
    /// What happened.
    pub happened: Happened,
}

/// A repair job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// The job's id (`RP-` and a number), also its `proto::Job` id.
    pub id: String,
    /// The asset (a boiler's id).
    pub asset: String,
    /// The home's UPRN.
    pub uprn: u64,
    /// The home's address, for the operative (never logged).
    pub address: String,
    /// What is wrong.
    pub description: String,
    /// How soon.
    pub priority: Priority,
    /// Due by (UTC ms).
    pub due: TimestampMs,
    /// When it was raised (UTC ms).
    pub raised_at: TimestampMs,
    /// Who or what raised it.
    pub origin: Origin,
    /// The alert it answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertRef>,
    /// The operative staff named for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named: Option<String>,
    /// Where it stands.
    pub status: RepairStatus,
    /// Its revision, as sent: a reassignment sends a higher one.
    pub rev: u32,
    /// The operative's device it is with, and whether it has been sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<Dispatch>,
    /// When the operative reported it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<TimestampMs>,
    /// When the gateway found its alert cleared (its clock, as for completion): after
    /// completion, the alert's evidence that the repair worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_cleared_at: Option<TimestampMs>,
    /// When it was flagged because its alert had not cleared after completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_at: Option<TimestampMs>,
    /// Tenants' reports following it, oldest first (at most [`MAX_LINKED_REPORTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenant_reports: Vec<String>,
    /// The (device, sequence) of the updates applied, newest last, bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<(String, u64)>,
    /// Every change, oldest first (at most [`MAX_HISTORY`]).
    pub history: Vec<Transition>,
}

/// A new job as staff, an alert or a tenant raise it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRepair {
    /// The asset.
    pub asset: String,
    /// What is wrong.
    pub description: String,
    /// How soon.
    pub priority: Priority,
    /// Due by; `None` for the priority's target ([`super::rules::due_by`]).
    pub due: Option<TimestampMs>,
    /// Who or what raised it.
    pub origin: Origin,
    /// The alert it answers, if any.
    pub alert: Option<AlertRef>,
    /// The operative staff name for it (their device id), for the `named` rule.
    pub named: Option<String>,
}

impl Repair {
    /// Moves the job to `status` at `at` because of `happened`. The history is bounded: past
    /// [`MAX_HISTORY`] the newest transition replaces the last kept one, so the first (raised)
    /// and the latest are always there.
    pub fn transition(&mut self, at: TimestampMs, status: RepairStatus, happened: Happened) {
        self.status = status;
        let transition = Transition {
            at,
            status,
            happened,
        };
        if self.history.len() < MAX_HISTORY {
            self.history.push(transition);
        } else if let Some(last) = self.history.last_mut() {
            *last = transition;
        }
    }

    /// Whether the update in record (`device`, `seq`) has already moved the job.
    pub fn has_applied(&self, device: &str, seq: u64) -> bool {
        self.applied.iter().any(|(d, s)| d == device && *s == seq)
    }

    /// Remembers that record (`device`, `seq`) moved the job, forgetting the oldest past the
    /// bound.
    pub fn note_applied(&mut self, device: &str, seq: u64) {
        if self.applied.len() >= MAX_SEEN_UPDATES {
            self.applied.remove(0);
        }
        self.applied.push((device.to_owned(), seq));
    }

    /// The device the job is with, if any.
    pub fn device(&self) -> Option<&str> {
        self.dispatch.as_ref().map(|d| d.device.as_str())
    }

    /// The devices whose operatives declined the job (cancelled it on their handheld).
    pub fn declined_by(&self) -> Vec<&str> {
        self.history
            .iter()
            .filter_map(|t| match &t.happened {
                Happened::Update {
                    status: JobStatus::Cancelled,
                    device,
                    ..
                } => Some(device.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The job for the operative's handheld, at its current revision.
    pub fn wire_job(&self) -> proto::Job {
        proto::Job {
            id: self.id.clone(),
            rev: self.rev,
            due: self.due,
            kind: proto::JobKind::Repair(proto::RepairJob {
                asset: self.asset.clone(),
                addr: self.address.clone(),
                desc: self.description.clone(),
                prio: self.priority,
            }),
        }
    }
}

/// How a tenant's report came to its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Linked {
    /// A job was already open for the boiler.
    OpenJob,
    /// An alert was already open for the boiler; the job was raised from it.
    OpenAlert,
    /// Nothing was open: the report raised the job.
    Raised,
}

/// A tenant's heating report, from Open311: the home's boiler and the job it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatingReport {
    /// The report's id (`HR-` and a number).
    pub id: String,
    /// The home's UPRN.
    pub uprn: u64,
    /// Its boiler.
    pub asset: String,
    /// What the tenant wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How to reach them: personal data, kept only here and never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// When it was filed (UTC ms).
    pub filed_at: TimestampMs,
    /// The job it follows.
    pub job: String,
    /// How it came to that job.
    pub linked: Linked,
    /// The alert that was open when it was filed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertRef>,
    /// The tenant's comments since (FixMyStreet's `POST servicerequestupdates`), for staff,
    /// kept as missed-bin reports keep residents' ([`crate::missed_bins::comment`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
}
