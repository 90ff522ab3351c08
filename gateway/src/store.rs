//! The gateway's durable store: devices' records (once each), per-device progress for acks, the
//! device registry, the boots' clock anchors and the quarantine. Behind the [`Store`] trait so
//! that a PostgreSQL backend can later serve several gateway replicas; [`SledStore`] is the
//! embedded default. [`keys`] gives every key's layout, [`migrate`] upgrades older stores and
//! [`quarantine`] keeps what was refused, bounded.
//!
//! Every method is synchronous and durable on return (sled's `flush` is the fsync): the ingest
//! loop calls them from a blocking thread and publishes acks only afterwards.

pub mod keys;
pub mod migrate;
pub mod quarantine;

use std::collections::HashMap;
use std::path::Path;

use proto::{DeviceId, Health, Record, RecordBody, Refusal, State, TimestampMs};
use serde::{Deserialize, Serialize};

use crate::progress::SeqRanges;
use crate::record_time::{self, BatchClock, PlacedTime, RecordClock, TimeBasis};
use keys::{DEVICE, PROGRESS};
pub use migrate::Migrated;
use quarantine::Quarantine;
pub use quarantine::{QuarantineEntry, QuarantineLimits, QuarantineUsage, Refused};

/// What a store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (disk full, I/O error, corruption).
    #[error("storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// A stored value could not be read back.
    #[error("stored value under {key} is unreadable: {reason}")]
    Corrupt {
        /// Which key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("could not encode a value for storage: {0}")]
    Encode(#[from] proto::EncodeError),
    /// The store was written by a newer gateway, in a format this build cannot read.
    #[error(
        "the store is in format {found}, written by a newer gateway; this build reads up to \
         format {supported}: run the newer gateway, or restore a backup"
    )]
    NewerFormat {
        /// The store's format.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
}

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
    fn clock(&self) -> BatchClock {
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
    /// Records stored from it whose time could not be placed ([`TimeBasis::Uncorrected`]).
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

    /// How many records are stored for `device`.
    fn record_count(&self, device: &DeviceId) -> Result<u64, StoreError>;

    /// Crews' evidence (collection and round records) received at or after `since` (gateway
    /// clock), oldest first, with the device that sent each: what the missed-bin rules replay at
    /// start-up without reading every boiler's telemetry.
    fn evidence_since(
        &self,
        since: TimestampMs,
    ) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError>;
}

/// The embedded store on sled: one tree of records, evidence, anchors, progress and registry
/// entries under prefixed keys (so one batch updates them atomically), and the quarantine's.
pub struct SledStore {
    db: sled::Db,
    main: sled::Tree,
    quarantine: Quarantine,
    max_clock_skew_ms: i64,
    /// Serialises read-modify-write of progress: sled batches are atomic but not conditional.
    write_lock: std::sync::Mutex<()>,
}

/// The most a stored value may be when read back: a format 1 quarantined message up to the
/// broker's packet limit, with room for its topic and reason (a record is far smaller).
const MAX_VALUE_BYTES: usize = 2 * proto::MAX_MESSAGE_BYTES;
/// The most boots' anchors kept per device: boots further below its newest are forgotten, and
/// their records placed as if never anchored. Bounds what a device sending ever new boots costs.
/// How long [`open_when_unlocked`] waits for a store closed in this process to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled, waiting up to [`LOCK_WAIT`] for the directory's lock. sled 0.34 releases it only
/// when its thread pool lets go of the file, shortly after the last handle drops, so opening again
/// straight after closing (a gateway restarted within one process, and the tests) can find it
/// still held. A lock held by another process is still refused, after the wait.
fn open_when_unlocked(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // sled 0.34 reports a held lock only in the message of an `Other` I/O error.
            Err(error) if error.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(error);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

const MAX_ANCHORED_BOOTS: u64 = 64;

impl SledStore {
    /// The underlying database, for stores of other parts of the gateway (reports, the
    /// register) that share its directory and its flush.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Opens (or creates) the store in `dir`, with a page cache of `cache_bytes` and default
    /// settings otherwise.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(
            dir,
            StoreSettings {
                cache_bytes,
                ..StoreSettings::default()
            },
        )
    }

    /// Opens (or creates) the store in `dir`, migrating an older format (see [`migrate`]).
    pub fn open_with(dir: &Path, settings: StoreSettings) -> Result<Self, StoreError> {
        let db = open_when_unlocked(
            &sled::Config::new()
                .path(dir)
                .cache_capacity(settings.cache_bytes)
                // Durability comes from the explicit flush before every ack, not a timer.
                .flush_every_ms(None),
        )?;
        let main = db.open_tree("ingest")?;
        let quarantine = Quarantine::open(&db, settings.quarantine)?;
        migrate::migrate(&db, &main, &quarantine)?;
        Ok(Self {
            db,
            main,
            quarantine,
            max_clock_skew_ms: settings.max_clock_skew_ms,
            write_lock: std::sync::Mutex::new(()),
        })
    }

    fn get_value<T: serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        tree.get(key)?
            .map(|bytes| decode_stored(key, &bytes))
            .transpose()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic elsewhere while holding the lock leaves no partial state (batches are atomic).
        self.write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A boot's anchor as stored.
    fn stored_anchor(&self, device: &DeviceId, boot: u64) -> Result<Option<i64>, StoreError> {
        self.get_value(&self.main, &keys::anchor_key(device, boot))
    }

    /// Whether a new boot's anchor is worth keeping, and which older ones to forget: only the
    /// newest [`MAX_ANCHORED_BOOTS`] boots of a device keep theirs.
    fn admit_boot(
        &self,
        device: &DeviceId,
        boot: u64,
        writes: &mut sled::Batch,
    ) -> Result<bool, StoreError> {
        let prefix = keys::anchor_key(device, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut boots = Vec::new();
        for item in self.main.scan_prefix(prefix) {
            let (key, _) = item?;
            let tail: Option<[u8; 8]> = key.get(prefix.len()..).and_then(|t| t.try_into().ok());
            if let Some(tail) = tail {
                boots.push(u64::from_be_bytes(tail));
            }
        }
        let newest = boots.iter().copied().max().unwrap_or(boot).max(boot);
        let floor = newest.saturating_sub(MAX_ANCHORED_BOOTS - 1);
        for old in boots.into_iter().filter(|b| *b < floor) {
            writes.remove(keys::anchor_key(device, old));
        }
        Ok(boot >= floor)
    }
}

pub(crate) fn decode_stored<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    proto::decode_value(bytes, MAX_VALUE_BYTES).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// One group's working state in [`SledStore::ingest`]: several batches from one device may be
/// in a group, so its progress, registry entry and anchors carry across them.
#[derive(Default)]
struct GroupState {
    progress: HashMap<DeviceId, SeqRanges>,
    devices: HashMap<DeviceId, DeviceInfo>,
    /// Anchors by (device, boot), as loaded or improved; `true` when changed.
    anchors: HashMap<(DeviceId, u64), (Option<i64>, bool)>,
    /// Records refused in this group (not yet readable from the refused tree's index).
    refusals: HashMap<(DeviceId, u64), String>,
    /// Whether the refused tree held anything when the group began: if not, no record needs
    /// looking up in it (the common case, kept off the hot path).
    stored_refusals: bool,
}

/// What one batch came to, as it is worked through.
#[derive(Default)]
struct BatchTally {
    stored: Vec<StoredRecord>,
    duplicates: usize,
    refused: Vec<Refusal>,
    newly_refused: usize,
}

impl SledStore {
    fn anchor(
        &self,
        group: &mut GroupState,
        device: &DeviceId,
        boot: u64,
    ) -> Result<Option<i64>, StoreError> {
        let key = (device.clone(), boot);
        if let Some((anchor, _)) = group.anchors.get(&key) {
            return Ok(*anchor);
        }
        let anchor = self.stored_anchor(device, boot)?;
        group.anchors.insert(key, (anchor, false));
        Ok(anchor)
    }

    /// Why `device`'s record `seq` was refused, if it was: in this group or before.
    fn known_refusal(
        &self,
        group: &GroupState,
        device: &DeviceId,
        seq: u64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(why) = group.refusals.get(&(device.clone(), seq)) {
            return Ok(Some(why.clone()));
        }
        if !group.stored_refusals {
            return Ok(None);
        }
        self.quarantine.refusal(device, seq)
    }

    /// Loads the device's progress and registry entry into the group, once per group.
    fn load_device(&self, group: &mut GroupState, device: &DeviceId) -> Result<(), StoreError> {
        if !group.progress.contains_key(device) {
            let held = self
                .get_value(&self.main, &keys::device_key(PROGRESS, device))?
                .unwrap_or_default();
            group.progress.insert(device.clone(), held);
        }
        if !group.devices.contains_key(device) {
            let info = self
                .get_value(&self.main, &keys::device_key(DEVICE, device))?
                .unwrap_or_default();
            group.devices.insert(device.clone(), info);
        }
        Ok(())
    }

    /// Lets the batch's own reading improve its boot's anchor, before its records are placed.
    fn improve_anchor(
        &self,
        group: &mut GroupState,
        writes: &mut sled::Batch,
        batch: &IncomingBatch,
    ) -> Result<(), StoreError> {
        let (Some(boot), Some(estimate)) =
            (batch.boot, record_time::anchor_estimate(&batch.clock()))
        else {
            return Ok(());
        };
        let known = self.anchor(group, &batch.device, boot)?;
        let better = record_time::better_anchor(known, Some(estimate));
        if better != known && (known.is_some() || self.admit_boot(&batch.device, boot, writes)?) {
            group
                .anchors
                .insert((batch.device.clone(), boot), (better, true));
        }
        Ok(())
    }

    /// Refuses record `seq` of `batch` for `why`: quarantined and counted in the progress the
    /// first time; answered with the first reason on every resend; never refused after it was
    /// stored good.
    fn refuse(
        &self,
        group: &mut GroupState,
        tally: &mut BatchTally,
        batch: &IncomingBatch,
        seq: u64,
        why: &str,
    ) -> Result<(), StoreError> {
        let device = &batch.device;
        let earlier = self.known_refusal(group, device, seq)?;
        let held = group.progress.entry(device.clone()).or_default();
        if let Some(earlier) = earlier {
            held.insert(seq);
            tally.refused.push(Refusal { seq, why: earlier });
            return Ok(());
        }
        if held.contains(seq) {
            // Stored before as a good record: a corrupted resend changes nothing.
            return Ok(());
        }
        held.insert(seq);
        // Fit for the wire (length, no control characters): reasons quote input.
        let refusal = Refusal::new(seq, why);
        let id = self.db.generate_id()?;
        let entry = self.quarantine.entry(
            id,
            &Refused {
                topic: &batch.topic,
                reason: &format!("record {seq}: {}", refusal.why),
                payload: &batch.payload,
                received: batch.received,
                record: Some((device, seq)),
            },
        );
        // Written before the batch's progress: if the process dies before the flush, a resend
        // finds the refusal here and answers the same.
        self.quarantine
            .insert(&entry, &refusal.why, batch.received)?;
        group
            .refusals
            .insert((device.clone(), seq), refusal.why.clone());
        tally.refused.push(refusal);
        tally.newly_refused += 1;
        Ok(())
    }

    /// Takes one decoded record of `batch`: refused, a duplicate, or placed in time and staged
    /// in `writes` (with its evidence copy if it is a crew's).
    fn take(
        &self,
        group: &mut GroupState,
        writes: &mut sled::Batch,
        tally: &mut BatchTally,
        batch: &IncomingBatch,
        record: &Record,
    ) -> Result<(), StoreError> {
        let (device, seq) = (&batch.device, record.seq);
        if self.known_refusal(group, device, seq)?.is_some() {
            // Never stored later as good, whatever a resend holds.
            return self.refuse(group, tally, batch, seq, "");
        }
        let held = group.progress.entry(device.clone()).or_default();
        let inserted = match &record.body {
            _ if held.contains(seq) => Ok(false),
            RecordBody::Gap(gap) => held.insert_gap(seq, gap.from, gap.to),
            _ => Ok(held.insert(seq)),
        };
        match inserted {
            Ok(true) => {}
            Ok(false) => {
                tally.duplicates += 1;
                return Ok(());
            }
            Err(e) => return self.refuse(group, tally, batch, seq, &e.to_string()),
        }
        let anchor = match record.boot {
            Some(boot) => self.anchor(group, device, boot)?,
            None => None,
        };
        let placed = record_time::place(
            &RecordClock {
                ts: record.ts,
                boot: record.boot,
                mono: record.mono,
            },
            &batch.clock(),
            anchor,
            self.max_clock_skew_ms,
        );
        let info = group.devices.entry(device.clone()).or_default();
        if let RecordBody::Health(health) = &record.body {
            info.health = Some(health.clone());
        }
        if placed.basis == TimeBasis::Uncorrected {
            info.uncorrected_times += 1;
        }
        let value = StoredRecord {
            received: batch.received,
            sent: batch.sent,
            record: record.clone(),
            placed: Some(placed),
        };
        let encoded = proto::encode_value(&value)?;
        if matches!(
            record.body,
            RecordBody::Collection(_) | RecordBody::RoundEvent(_)
        ) {
            writes.insert(
                keys::evidence_key(batch.received, device, seq),
                encoded.clone(),
            );
        }
        writes.insert(keys::record_key(device, seq), encoded);
        tally.stored.push(value);
        Ok(())
    }

    /// Works one batch into the group and `writes`.
    fn ingest_batch(
        &self,
        group: &mut GroupState,
        writes: &mut sled::Batch,
        batch: &IncomingBatch,
    ) -> Result<BatchOutcome, StoreError> {
        let device = &batch.device;
        self.load_device(group, device)?;
        self.improve_anchor(group, writes, batch)?;
        let mut tally = BatchTally::default();
        for refusal in &batch.refused {
            self.refuse(group, &mut tally, batch, refusal.seq, &refusal.why)?;
        }
        for record in &batch.records {
            self.take(group, writes, &mut tally, batch, record)?;
        }
        let acked_through = group
            .progress
            .get(device)
            .map_or(0, SeqRanges::acked_through);
        let info = group.devices.entry(device.clone()).or_default();
        info.first_seen.get_or_insert(batch.received);
        info.last_seen = Some(batch.received);
        info.clock_skew_ms = Some(batch.sent.saturating_sub(batch.received));
        info.records += tally.stored.len() as u64;
        info.refused += tally.newly_refused as u64;
        Ok(BatchOutcome {
            device: device.clone(),
            stored: tally.stored,
            duplicates: tally.duplicates,
            refused: tally.refused,
            newly_refused: tally.newly_refused,
            acked_through,
            received: batch.received,
            sent: batch.sent,
            unknown_device: !info.provisioned,
        })
    }
}

impl Store for SledStore {
    fn ingest(&self, batches: &[IncomingBatch]) -> Result<Vec<BatchOutcome>, StoreError> {
        let _guard = self.lock();
        let mut writes = sled::Batch::default();
        let mut group = GroupState {
            stored_refusals: self.quarantine.holds_refusals()?,
            ..GroupState::default()
        };
        let outcomes = batches
            .iter()
            .map(|batch| self.ingest_batch(&mut group, &mut writes, batch))
            .collect::<Result<Vec<_>, _>>()?;
        for (device, held) in &group.progress {
            writes.insert(
                keys::device_key(PROGRESS, device),
                proto::encode_value(held)?,
            );
        }
        for (device, info) in &group.devices {
            writes.insert(keys::device_key(DEVICE, device), proto::encode_value(info)?);
        }
        for ((device, boot), (anchor, changed)) in &group.anchors {
            if let (Some(anchor), true) = (anchor, changed) {
                writes.insert(
                    keys::anchor_key(device, *boot),
                    proto::encode_value(anchor)?,
                );
            }
        }
        self.main.apply_batch(writes)?;
        self.db.flush()?;
        Ok(outcomes)
    }

    fn record_state(
        &self,
        device: &DeviceId,
        state: &State,
        received: TimestampMs,
    ) -> Result<(), StoreError> {
        let _guard = self.lock();
        let key = keys::device_key(DEVICE, device);
        let mut info: DeviceInfo = self.get_value(&self.main, &key)?.unwrap_or_default();
        info.online = Some(state.online);
        info.boot = Some(state.boot);
        info.first_seen.get_or_insert(received);
        info.last_seen = Some(received);
        self.main.insert(key, proto::encode_value(&info)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn quarantine(&self, refused: &[Refused<'_>]) -> Result<Vec<u64>, StoreError> {
        if refused.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = self.lock();
        let mut ids = Vec::with_capacity(refused.len());
        for item in refused {
            let id = self.db.generate_id()?;
            let entry = self.quarantine.entry(id, item);
            self.quarantine.insert(&entry, item.reason, item.received)?;
            ids.push(id);
        }
        self.db.flush()?;
        Ok(ids)
    }

    fn quarantined(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.quarantine.newest(limit, before)
    }

    fn quarantine_usage(&self) -> QuarantineUsage {
        self.quarantine.usage()
    }

    fn provision(&self, devices: &[DeviceId]) -> Result<(), StoreError> {
        let _guard = self.lock();
        for device in devices {
            let key = keys::device_key(DEVICE, device);
            let mut info: DeviceInfo = self.get_value(&self.main, &key)?.unwrap_or_default();
            if !info.provisioned {
                info.provisioned = true;
                self.main.insert(key, proto::encode_value(&info)?)?;
            }
        }
        self.db.flush()?;
        Ok(())
    }

    fn devices(&self) -> Result<Vec<(DeviceId, DeviceInfo, u64)>, StoreError> {
        let mut devices = Vec::new();
        for item in self.main.scan_prefix([DEVICE]) {
            let (key, value) = item?;
            let corrupt = |reason: String| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason,
            };
            let id = std::str::from_utf8(&key[1..])
                .map_err(|e| corrupt(e.to_string()))
                .and_then(|id| DeviceId::new(id).map_err(|e| corrupt(e.to_string())))?;
            let info: DeviceInfo = decode_stored(&key, &value)?;
            let held: SeqRanges = self
                .get_value(&self.main, &keys::device_key(PROGRESS, &id))?
                .unwrap_or_default();
            devices.push((id, info, held.acked_through()));
        }
        Ok(devices)
    }

    fn record(&self, device: &DeviceId, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        self.get_value(&self.main, &keys::record_key(device, seq))
    }

    fn record_count(&self, device: &DeviceId) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.main.scan_prefix(keys::record_prefix(device)) {
            item?;
            count += 1;
        }
        Ok(count)
    }

    fn evidence_since(
        &self,
        since: TimestampMs,
    ) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        let start = keys::evidence_from(since);
        let mut found = Vec::new();
        for item in self.main.range(start..vec![keys::EVIDENCE + 1]) {
            let (key, value) = item?;
            let (device, _) =
                keys::parse_evidence_key(&key).ok_or_else(|| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: "not an evidence key".into(),
                })?;
            found.push((device, decode_stored(&key, &value)?));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests;
