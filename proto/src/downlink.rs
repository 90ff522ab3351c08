//! What the gateway sends down: cumulative [`Ack`]s on `…/ack`, [`Down`] messages (jobs,
//! cancellations, configuration) on `…/down`, and the retained [`State`] on `…/state`, which the
//! device itself publishes (online) and leaves as its MQTT Last Will (offline).

use serde::{Deserialize, Serialize};

use crate::{BinStream, Position, TimestampMs};

/// "Every record of yours through sequence `thru` is stored durably": cumulative, so a lost ack is
/// repaired by the next one and a duplicate is harmless.
///
/// `rej` lists records of the device's the gateway refused (they broke the contract) and why:
/// `thru` moves past them as past stored ones, so one bad record never holds up those behind it,
/// and the device keeps the refused ones aside rather than deleting them unseen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The schema version.
    pub v: u16,
    /// The highest sequence number below which (inclusive) the gateway holds or has refused every
    /// record.
    pub thru: u64,
    /// Records the gateway refused, at most [`crate::MAX_BATCH_RECORDS`]; absent when none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::record::bounded"
    )]
    pub rej: Vec<Refusal>,
}

/// The longest reason a [`Refusal`] may give, in bytes.
pub const MAX_REFUSAL_REASON_LEN: usize = 256;

/// One record the gateway refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The refused record's sequence number.
    pub seq: u64,
    /// Why, for people: non-empty, at most [`MAX_REFUSAL_REASON_LEN`] bytes, no control characters.
    pub why: String,
}

impl Refusal {
    /// A refusal of record `seq` for `reason`, made fit for the wire: control characters become
    /// spaces, the text is cut to [`MAX_REFUSAL_REASON_LEN`] bytes on a character boundary, and an
    /// empty reason says so. Reasons often quote what the device sent, so they cannot be trusted
    /// to be valid as they are.
    pub fn new(seq: u64, reason: impl std::fmt::Display) -> Self {
        let mut why = String::new();
        for c in reason.to_string().chars() {
            let c = if c.is_control() { ' ' } else { c };
            if why.len() + c.len_utf8() > MAX_REFUSAL_REASON_LEN {
                break;
            }
            why.push(c);
        }
        let why = why.trim().to_owned();
        Self {
            seq,
            why: if why.is_empty() {
                "refused without a reason".to_owned()
            } else {
                why
            },
        }
    }
}

/// A message on a device's `down` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Down {
    /// The schema version.
    pub v: u16,
    /// When the gateway sent it (gateway clock, UTC ms).
    pub sent: TimestampMs,
    /// The message.
    pub body: DownBody,
}

/// The kinds of downlink message, encoded as a one-entry map from tag to fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DownBody {
    /// A new job, or a new revision of one the device has.
    #[serde(rename = "job")]
    Job(Job),
    /// Withdraw a job.
    #[serde(rename = "cancel")]
    JobCancel(JobCancel),
    /// New settings for the agent.
    #[serde(rename = "config")]
    Config(Config),
}

/// A job for a crew or an operative. Re-sending the same id and revision is harmless; a higher
/// revision replaces the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id, unique across the gateway.
    pub id: String,
    /// Revision, starting at 1.
    pub rev: u32,
    /// Due by (UTC ms).
    pub due: TimestampMs,
    /// What to do.
    pub kind: JobKind,
}

/// What a job asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobKind {
    /// Go back for a missed bin.
    #[serde(rename = "return")]
    ReturnCollection(ReturnCollectionJob),
    /// Repair a council home's asset (a boiler, say).
    #[serde(rename = "repair")]
    Repair(RepairJob),
}

/// Go back for a bin a resident reported missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnCollectionJob {
    /// The resident's report this job answers.
    pub report: String,
    /// The property's UPRN.
    pub uprn: u64,
    /// The property's address, for the crew.
    pub addr: String,
    /// The property's position.
    pub pos: Position,
    /// Which bin.
    pub stream: BinStream,
}

/// How soon a repair must be done, in the usual social-housing bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Danger to health or property: attend within 24 hours.
    Emergency,
    /// Within a few working days.
    Urgent,
    /// Within the routine target (often 28 days).
    Routine,
    /// Planned maintenance.
    Planned,
}

/// A repair on a council home's asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairJob {
    /// The asset's id (a boiler's, say).
    pub asset: String,
    /// The property's address.
    pub addr: String,
    /// What is wrong.
    pub desc: String,
    /// How soon.
    pub prio: Priority,
}

/// Withdraw a job; cancelling one the device does not have, or has already cancelled, is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCancel {
    /// The job's id.
    pub id: String,
    /// Why, for the crew or operative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Settings the gateway pushes to an agent. A revision no higher than the one applied is ignored;
/// absent fields keep the agent's current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Revision; higher wins.
    pub rev: u64,
    /// Seconds between sensor samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_s: Option<u32>,
    /// Seconds between health records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_s: Option<u32>,
    /// Most records per uplink batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_max: Option<u32>,
    /// Milliseconds a batch waits to fill before it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger_ms: Option<u32>,
}

/// A device's presence, retained on `…/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The schema version.
    pub v: u16,
    /// Online (published at connect) or offline (the Last Will, or a clean shutdown).
    pub online: bool,
    /// How many times the agent has started; tells a restart from a reconnect.
    pub boot: u64,
    /// When the device set this state (device clock, UTC ms).
    pub ts: TimestampMs,
}
