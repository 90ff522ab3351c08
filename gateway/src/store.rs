//! The gateway's durable store: devices' records (once each), per-device progress for acks, the
//! device registry and the quarantine. Behind the [`Store`] trait so that a PostgreSQL backend can
//! later serve several gateway replicas; [`SledStore`] is the embedded default.
//!
//! Every method is synchronous and durable on return (sled's `flush` is the fsync): the ingest
//! loop calls them from a blocking thread and publishes acks only afterwards.

use std::path::Path;

use proto::{DeviceId, Health, Record, State, TimestampMs};
use serde::{Deserialize, Serialize};

use crate::progress::SeqRanges;

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
}

/// One decoded batch from one device, as received.
#[derive(Debug, Clone)]
pub struct IncomingBatch {
    /// The sending device (already checked against the topic).
    pub device: DeviceId,
    /// When the gateway received it (gateway clock).
    pub received: TimestampMs,
    /// When the device says it sent it (device clock).
    pub sent: TimestampMs,
    /// The records.
    pub records: Vec<Record>,
}

/// What storing one batch did.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// The device.
    pub device: DeviceId,
    /// Records stored for the first time, in the batch's order.
    pub stored: Vec<Record>,
    /// Records that were already held (replays, resends).
    pub duplicates: usize,
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
    /// The record as the device sent it.
    pub record: Record,
}

/// What the gateway knows of a device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
}

/// A message the gateway could not accept, kept for staff to inspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// Its id, increasing with arrival.
    pub id: u64,
    /// The MQTT topic it came on.
    pub topic: String,
    /// Why it was refused.
    pub reason: String,
    /// When it arrived (gateway clock).
    pub received: TimestampMs,
    /// The payload as received.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The gateway's storage.
pub trait Store: Send + Sync + 'static {
    /// Stores `batches` atomically and durably, each record once per (device, sequence); updates
    /// each device's progress and registry entry. Returns one outcome per batch, in order.
    fn ingest(&self, batches: &[IncomingBatch]) -> Result<Vec<BatchOutcome>, StoreError>;

    /// Records a device's retained state message.
    fn record_state(
        &self,
        device: &DeviceId,
        state: &State,
        received: TimestampMs,
    ) -> Result<(), StoreError>;

    /// Keeps a refused message, durably; returns its id.
    fn quarantine(
        &self,
        topic: &str,
        reason: &str,
        payload: &[u8],
        received: TimestampMs,
    ) -> Result<u64, StoreError>;

    /// The newest `limit` quarantined messages, newest first.
    fn quarantined(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StoreError>;

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

/// The embedded store on sled: one tree of records, progress and registry entries under prefixed
/// keys (so one batch updates them atomically), and one tree for the quarantine.
pub struct SledStore {
    db: sled::Db,
    main: sled::Tree,
    quarantine: sled::Tree,
    /// Serialises read-modify-write of progress: sled batches are atomic but not conditional.
    write_lock: std::sync::Mutex<()>,
}

const RECORD: u8 = b'r';
const PROGRESS: u8 = b'p';
const DEVICE: u8 = b'd';
/// `e{received BE}{device}/{seq BE}`: a copy of each crew record, in arrival order.
const EVIDENCE: u8 = b'e';
/// The most a stored value may be when read back: a quarantined message up to the broker's packet
/// limit, with room for its topic and reason (a record is far smaller).
const MAX_VALUE_BYTES: usize = 2 * proto::MAX_MESSAGE_BYTES;

fn device_key(prefix: u8, device: &DeviceId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + device.as_str().len());
    key.push(prefix);
    key.extend_from_slice(device.as_str().as_bytes());
    key
}

/// Device ids never contain `/`, so `r{device}/` is a prefix of that device's records only.
fn record_prefix(device: &DeviceId) -> Vec<u8> {
    let mut key = device_key(RECORD, device);
    key.push(b'/');
    key
}

fn record_key(device: &DeviceId, seq: u64) -> Vec<u8> {
    let mut key = record_prefix(device);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn evidence_key(received: TimestampMs, device: &DeviceId, seq: u64) -> Vec<u8> {
    let mut key = vec![EVIDENCE];
    // Times before 1970 are refused at decode, so the cast keeps the order.
    key.extend_from_slice(&(received.max(0) as u64).to_be_bytes());
    key.extend_from_slice(device.as_str().as_bytes());
    key.push(b'/');
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The device in an evidence key: between the time and the last `/`.
fn evidence_device(key: &[u8]) -> Option<DeviceId> {
    let rest = key.get(9..)?;
    let slash = rest.iter().rposition(|b| *b == b'/')?;
    let id = std::str::from_utf8(&rest[..slash]).ok()?;
    DeviceId::new(id).ok()
}

impl SledStore {
    /// The underlying database, for stores of other parts of the gateway (reports, the
    /// register) that share its directory and its flush.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Opens (or creates) the store in `dir`, with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Durability comes from the explicit flush before every ack, not a timer.
            .flush_every_ms(None)
            .open()?;
        let main = db.open_tree("ingest")?;
        let quarantine = db.open_tree("quarantine")?;
        Ok(Self {
            db,
            main,
            quarantine,
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
}

fn decode_stored<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    proto::decode_value(bytes, MAX_VALUE_BYTES).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl Store for SledStore {
    fn ingest(&self, batches: &[IncomingBatch]) -> Result<Vec<BatchOutcome>, StoreError> {
        let _guard = self.lock();
        let mut writes = sled::Batch::default();
        // Several batches from one device may be in one group: carry its state across them.
        let mut progress: std::collections::HashMap<DeviceId, SeqRanges> = Default::default();
        let mut devices: std::collections::HashMap<DeviceId, DeviceInfo> = Default::default();
        let mut outcomes = Vec::with_capacity(batches.len());

        for batch in batches {
            let held = match progress.entry(batch.device.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    self.get_value(&self.main, &device_key(PROGRESS, &batch.device))?
                        .unwrap_or_default(),
                ),
            };
            let info = match devices.entry(batch.device.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    self.get_value(&self.main, &device_key(DEVICE, &batch.device))?
                        .unwrap_or_default(),
                ),
            };

            let mut stored = Vec::new();
            let mut duplicates = 0;
            for record in &batch.records {
                if !held.insert(record.seq) {
                    duplicates += 1;
                    continue;
                }
                if let proto::RecordBody::Gap(gap) = &record.body {
                    // Gaps are exact (proto validates it): every number in one was dropped.
                    held.insert_range(gap.from, gap.to);
                }
                if let proto::RecordBody::Health(health) = &record.body {
                    info.health = Some(health.clone());
                }
                let value = proto::encode_value(&StoredRecord {
                    received: batch.received,
                    sent: batch.sent,
                    record: record.clone(),
                })?;
                if matches!(
                    record.body,
                    proto::RecordBody::Collection(_) | proto::RecordBody::RoundEvent(_)
                ) {
                    writes.insert(
                        evidence_key(batch.received, &batch.device, record.seq),
                        value.clone(),
                    );
                }
                writes.insert(record_key(&batch.device, record.seq), value);
                stored.push(record.clone());
            }

            info.first_seen.get_or_insert(batch.received);
            info.last_seen = Some(batch.received);
            info.clock_skew_ms = Some(batch.sent - batch.received);
            info.records += stored.len() as u64;
            outcomes.push(BatchOutcome {
                device: batch.device.clone(),
                stored,
                duplicates,
                acked_through: held.acked_through(),
                received: batch.received,
                sent: batch.sent,
                unknown_device: !info.provisioned,
            });
        }

        for (device, held) in &progress {
            writes.insert(device_key(PROGRESS, device), proto::encode_value(held)?);
        }
        for (device, info) in &devices {
            writes.insert(device_key(DEVICE, device), proto::encode_value(info)?);
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
        let key = device_key(DEVICE, device);
        let mut info: DeviceInfo = self.get_value(&self.main, &key)?.unwrap_or_default();
        info.online = Some(state.online);
        info.boot = Some(state.boot);
        info.first_seen.get_or_insert(received);
        info.last_seen = Some(received);
        self.main.insert(key, proto::encode_value(&info)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn quarantine(
        &self,
        topic: &str,
        reason: &str,
        payload: &[u8],
        received: TimestampMs,
    ) -> Result<u64, StoreError> {
        let id = self.db.generate_id()?;
        let entry = QuarantineEntry {
            id,
            topic: topic.to_owned(),
            reason: reason.to_owned(),
            received,
            payload: payload.to_vec(),
        };
        self.quarantine
            .insert(id.to_be_bytes(), proto::encode_value(&entry)?)?;
        self.db.flush()?;
        Ok(id)
    }

    fn quarantined(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.quarantine
            .iter()
            .rev()
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                decode_stored(&key, &value)
            })
            .collect()
    }

    fn provision(&self, devices: &[DeviceId]) -> Result<(), StoreError> {
        let _guard = self.lock();
        for device in devices {
            let key = device_key(DEVICE, device);
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
                .get_value(&self.main, &device_key(PROGRESS, &id))?
                .unwrap_or_default();
            devices.push((id, info, held.acked_through()));
        }
        Ok(devices)
    }

    fn record(&self, device: &DeviceId, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        self.get_value(&self.main, &record_key(device, seq))
    }

    fn record_count(&self, device: &DeviceId) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.main.scan_prefix(record_prefix(device)) {
            item?;
            count += 1;
        }
        Ok(count)
    }

    fn evidence_since(
        &self,
        since: TimestampMs,
    ) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        let mut start = vec![EVIDENCE];
        start.extend_from_slice(&(since.max(0) as u64).to_be_bytes());
        let mut found = Vec::new();
        for item in self.main.range(start..vec![EVIDENCE + 1]) {
            let (key, value) = item?;
            let device = evidence_device(&key).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "not an evidence key".into(),
            })?;
            found.push((device, decode_stored(&key, &value)?));
        }
        Ok(found)
    }
}
