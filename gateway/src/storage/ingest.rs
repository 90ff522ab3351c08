//! What the ingest stores: devices' records (once each), per-device progress for acks, the
//! device registry, the boots' clock anchors and the quarantine, behind the [`Store`] trait so
//! that a PostgreSQL backend can later serve several gateway replicas
//! ([`super::embedded::SledStore`] is the embedded default).
//!
//! Every method is synchronous and durable on return: the ingest loop calls them from a blocking
//! thread and publishes acks only afterwards.

use proto::{DeviceId, Health, Record, Refusal, State, TimestampMs};
use serde::{Deserialize, Serialize};

use super::quarantine::{QuarantineEntry, QuarantineLimits, QuarantineUsage, Refused};
use super::StoreError;
use crate::record_time::{BatchClock, PlacedTime};

/// One decoded batch from one device, as received.
#[derive(Debug, Clone)]
pub struct IncomingBatch {
    /// The sending device (already checked against the topic).
    pub device: DeviceId,
    /// The topic it came on, for the quarantine entries of records refused.
    pub topic: String,
    /// The message as received, for the quarantine entries of records refused (a prefix and a
    /// hash of it are kept, never the whole).
    pub payload: bytes::Bytes,
    /// When the gateway received it (gateway clock).
    pub received: TimestampMs,
    /// When the device says it sent it (device clock).
    pub sent: TimestampMs,
    /// The device's boot that sent it, if the device says.
    pub boot: Option<u64>,
    /// The device's monotonic clock (ms since that boot) when it sent it, if the device says.
    pub mono: Option<u64>,
    /// The records that decoded.
    pub records: Vec<Record>,
    /// The records the decoder refused, by sequence, with the reason.
    pub refused: Vec<Refusal>,
}

impl IncomingBatch {
    /// The batch's times, as [`crate::record_time`] reads them.
    pub(crate) fn clock(&self) -> BatchClock {
        BatchClock {
            received: self.received,
            sent: self.sent,
            boot: self.boot,
            mono: self.mono,
        }
    }
}

/// What storing one batch did.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// The device.
    pub device: DeviceId,
    /// Records stored for the first time, in the batch's order, as stored.
    pub stored: Vec<StoredRecord>,
    /// Records that were already held (replays, resends).
    pub duplicates: usize,
    /// The batch's records that are refused, now or on an earlier delivery, and why: the device
    /// is told so in its ack, every time it sends them.
    pub refused: Vec<Refusal>,
    /// How many of `refused` were refused for the first time (and quarantined).
    pub newly_refused: usize,
    /// The device's cumulative ack after this batch.
    pub acked_through: u64,
    /// When the gateway received the batch (gateway clock).
    pub received: TimestampMs,
    /// When the device says it sent the batch (device clock): with `received`, the device's
    /// clock offset.
    pub sent: TimestampMs,
    /// Whether the device is not in the registry of provisioned devices.
    pub unknown_device: bool,
}

/// A record as the gateway holds it: with the gateway's receive time beside the device's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// When the gateway received it (gateway clock, UTC ms).
    pub received: TimestampMs,
    /// When the device sent its batch (device clock, UTC ms): `received - sent` is how far the
    /// device's clock was behind, give or take the link's delay.
    pub sent: TimestampMs,
    /// The record as the device sent it (its `ts` is the device's own time).
    pub record: Record,
    /// When it happened by the gateway's reckoning, and how that was worked out
    /// ([`crate::record_time`]). Absent on records stored before the gateway placed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed: Option<PlacedTime>,
}

/// What the gateway knows of a device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceInfo {
    /// Whether the device was provisioned; records from others are kept but flagged.
    pub provisioned: bool,
    /// First time the gateway heard from it.
    pub first_seen: Option<TimestampMs>,
    /// Last time the gateway heard from it (records or state).
    pub last_seen: Option<TimestampMs>,
    /// Online or offline, from its retained state message.
    pub online: Option<bool>,
    /// The agent's boot counter from its last state message.
    pub boot: Option<u64>,
    /// The last health record.
    pub health: Option<Health>,
    /// The device clock minus the gateway clock at the last batch, in ms.
    pub clock_skew_ms: Option<i64>,
    /// Records stored from it.
    pub records: u64,
    /// Records refused from it.
    pub refused: u64,
    /// Records stored from it whose time could not be placed ([`crate::record_time::TimeBasis::Uncorrected`]).
    pub uncorrected_times: u64,
}

/// How the store is set up.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// What the quarantine keeps.
    pub quarantine: QuarantineLimits,
    /// A batch offset beyond which records without a clock anchor are corrected by it (ms).
    pub max_clock_skew_ms: i64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            cache_bytes: 64 * 1024 * 1024,
            quarantine: QuarantineLimits::default(),
            max_clock_skew_ms: 300_000,
        }
    }
}

/// The gateway's storage.
pub trait Store: Send + Sync + 'static {
    /// Stores `batches` atomically and durably, each record once per (device, sequence); refuses
    /// the records that cannot be taken (into the quarantine, counted in the progress so the ack
    /// moves past them); updates each device's progress and registry entry. Returns one outcome
    /// per batch, in order.
    fn ingest(&self, batches: &[IncomingBatch]) -> Result<Vec<BatchOutcome>, StoreError>;

    /// [`Store::ingest`], calling `also` with the outcomes once the batches are written and
    /// before `ingest_then` returns, so that what `also` writes through the same store can be
    /// made durable by the same flush: a store that can do so (the embedded one) flushes once,
    /// after `also`; by default `also` runs after the ingest is durable. Durable on return
    /// either way. `also` cannot fail the ingest: the batches are stored whatever it does.
    fn ingest_then(
        &self,
        batches: &[IncomingBatch],
        also: &mut dyn FnMut(&[BatchOutcome]),
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let outcomes = self.ingest(batches)?;
        also(&outcomes);
        Ok(outcomes)
    }

    /// Records a device's retained state message.
    fn record_state(
        &self,
        device: &DeviceId,
        state: &State,
        received: TimestampMs,
    ) -> Result<(), StoreError>;

    /// Keeps refused messages (a prefix and a hash of each), durably, evicting the oldest
    /// entries beyond the limits; returns their ids.
    fn quarantine(&self, refused: &[Refused<'_>]) -> Result<Vec<u64>, StoreError>;

    /// The newest `limit` quarantine entries with ids below `before` (any, if `None`), newest
    /// first.
    fn quarantined(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<QuarantineEntry>, StoreError>;

    /// How full the quarantine is, and how many entries it evicted.
    fn quarantine_usage(&self) -> QuarantineUsage;

    /// Marks devices as provisioned (creating their registry entries).
    fn provision(&self, devices: &[DeviceId]) -> Result<(), StoreError>;

    /// Every device the gateway knows, with its info and cumulative ack.
    fn devices(&self) -> Result<Vec<(DeviceId, DeviceInfo, u64)>, StoreError>;

    /// One stored record.
    fn record(&self, device: &DeviceId, seq: u64) -> Result<Option<StoredRecord>, StoreError>;

    /// `device`'s stored records from sequence `from` on, in sequence order, at most `limit`.
    fn records(
        &self,
        device: &DeviceId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// How many records are stored for `device`.
    fn record_count(&self, device: &DeviceId) -> Result<u64, StoreError>;

    /// Telemetry and gap records stored but not yet marked [`Store::fed`] to the boilers, at
    /// most `limit`, with the device that sent each: what a crash (or a failure) between storing
    /// a batch and feeding it left behind, for the boiler desk to catch up on. Feeding twice is
    /// harmless: the boilers' telemetry keeps one sample per time and one gap per span.
    fn unfed(&self, limit: usize) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }

    /// Marks records as fed to the boilers. Need not be durable: a mark lost in a crash only
    /// means the record is fed again.
    fn fed(&self, records: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        let _ = records;
        Ok(())
    }

    /// Crews' and operatives' evidence (collection, round and job update records) received at
    /// or after `since` (gateway clock), oldest first, with the device that sent each: what the
    /// missed-bin rules and the repairs desk replay at start-up without reading every boiler's
    /// telemetry.
    fn evidence_since(
        &self,
        since: TimestampMs,
    ) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError>;
}
