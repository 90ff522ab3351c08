//! The quarantine: what the gateway refused (whole messages, and single records of batches whose
//! other records it stored), kept for staff as a prefix and a SHA-256 of the payload, never the
//! payload whole, within a count, a byte budget and a retention, the oldest evicted first. What
//! outsiders send can therefore never fill the disk or the page cache.
//!
//! Refused records also have an entry in the `refused` tree, by (device, seq), so that a resent
//! batch gets the same refusal again. Evicting an entry drops that too: a record refused longer
//! ago than the retention (or beyond the caps) is then answered as held, which its device's ack
//! already says it is.

use proto::{DeviceId, TimestampMs};
use serde::{Deserialize, Serialize};

use super::keys::refused_key;
use super::{decode_stored, StoreError};

/// How much the quarantine keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineLimits {
    /// The most entries kept.
    pub max_entries: u64,
    /// The most bytes the entries take (keys and encoded values).
    pub max_bytes: u64,
    /// Entries older than this (gateway clock, ms) are dropped.
    pub retention_ms: i64,
    /// How many bytes of each payload are kept.
    pub prefix_bytes: usize,
}

impl Default for QuarantineLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 16 * 1024 * 1024,
            retention_ms: 30 * 24 * 60 * 60 * 1000,
            prefix_bytes: 256,
        }
    }
}

/// The most of a topic or a reason kept: MQTT allows 64 KiB topics, and reasons quote input.
const MAX_TEXT_BYTES: usize = 256;

/// A refused message or record, as staff see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// Its id, increasing with arrival.
    pub id: u64,
    /// The MQTT topic it came on (at most 256 bytes of it).
    pub topic: String,
    /// Why it was refused.
    pub reason: String,
    /// When it arrived (gateway clock).
    pub received: TimestampMs,
    /// The device and sequence when one record of a batch was refused and the rest stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// See `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The payload's length in bytes.
    pub size: u64,
    /// The payload's SHA-256.
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    /// The payload's first bytes.
    #[serde(with = "serde_bytes")]
    pub prefix: Vec<u8>,
}

/// Format 1's entry, which held the whole payload: read once, by the migration.
#[derive(Debug, Deserialize)]
pub(super) struct OldQuarantineEntry {
    pub id: u64,
    pub topic: String,
    pub reason: String,
    pub received: TimestampMs,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Something to quarantine.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// The topic it came on.
    pub topic: &'a str,
    /// Why.
    pub reason: &'a str,
    /// The message's payload (the whole batch, for a refused record).
    pub payload: &'a [u8],
    /// When it arrived.
    pub received: TimestampMs,
    /// The device and sequence, for one refused record of a batch.
    pub record: Option<(&'a DeviceId, u64)>,
}

/// The `refused` tree's value: why a record was refused, and its quarantine entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RefusedRecord {
    /// The quarantine entry's id.
    pub id: u64,
    /// Why it was refused.
    pub reason: String,
}

/// How full the quarantine is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuarantineUsage {
    /// Entries held.
    pub entries: u64,
    /// Bytes they take.
    pub bytes: u64,
    /// Entries evicted since the store was opened.
    pub evicted: u64,
}

/// The quarantine's trees and its running totals (kept in memory, counted at open).
pub(super) struct Quarantine {
    entries: sled::Tree,
    refused: sled::Tree,
    limits: QuarantineLimits,
    usage: std::sync::Mutex<QuarantineUsage>,
}

/// The text cut to at most `max` bytes, at a character boundary.
fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// An entry's cost against the byte budget.
fn cost(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl Quarantine {
    pub fn open(db: &sled::Db, limits: QuarantineLimits) -> Result<Self, StoreError> {
        let quarantine = Self {
            entries: db.open_tree("quarantine")?,
            refused: db.open_tree("refused")?,
            limits,
            usage: std::sync::Mutex::default(),
        };
        quarantine.recount()?;
        Ok(quarantine)
    }

    /// Counts the entries and their bytes afresh (at open, and after a migration rewrote them).
    pub fn recount(&self) -> Result<(), StoreError> {
        let mut counted = QuarantineUsage::default();
        for item in self.entries.iter() {
            let (key, value) = item?;
            counted.entries += 1;
            counted.bytes += cost(&key, &value);
        }
        let mut usage = self.lock();
        usage.entries = counted.entries;
        usage.bytes = counted.bytes;
        Ok(())
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.entries
    }

    pub fn usage(&self) -> QuarantineUsage {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QuarantineUsage> {
        // The totals are only counters: a panic mid-update leaves them close enough.
        self.usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entry that `refused` describes, with id `id`, encoded.
    pub fn entry(&self, id: u64, refused: &Refused<'_>) -> QuarantineEntry {
        let digest = ring::digest::digest(&ring::digest::SHA256, refused.payload);
        QuarantineEntry {
            id,
            topic: clip(refused.topic, MAX_TEXT_BYTES),
            reason: clip(refused.reason, MAX_TEXT_BYTES),
            received: refused.received,
            device: refused.record.map(|(device, _)| device.clone()),
            seq: refused.record.map(|(_, seq)| seq),
            size: refused.payload.len() as u64,
            sha256: digest.as_ref().to_vec(),
            prefix: refused.payload[..refused.payload.len().min(self.limits.prefix_bytes)].to_vec(),
        }
    }

    /// Adds `entry` (not yet flushed: the caller flushes the database), evicting the oldest
    /// entries until it fits and any past the retention at `now`. For a refused record, `why`
    /// is what its device is told on every resend.
    pub fn insert(
        &self,
        entry: &QuarantineEntry,
        why: &str,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        let key = entry.id.to_be_bytes();
        let value = proto::encode_value(entry)?;
        let size = cost(&key, &value);
        self.evict(now, size)?;
        if let (Some(device), Some(seq)) = (&entry.device, entry.seq) {
            let index = RefusedRecord {
                id: entry.id,
                reason: why.to_owned(),
            };
            self.refused
                .insert(refused_key(device, seq), proto::encode_value(&index)?)?;
        }
        self.entries.insert(key, value)?;
        let mut usage = self.lock();
        usage.entries += 1;
        usage.bytes += size;
        Ok(())
    }

    /// Drops the oldest entries while any is past the retention, or while `room` more bytes and
    /// one more entry would not fit.
    pub fn evict(&self, now: TimestampMs, room: u64) -> Result<(), StoreError> {
        let cutoff = now.saturating_sub(self.limits.retention_ms);
        loop {
            let Some((key, value)) = self.entries.first()? else {
                return Ok(());
            };
            let oldest: Option<QuarantineEntry> = decode_stored(&key, &value).ok();
            let over = {
                let usage = self.lock();
                usage.entries + 1 > self.limits.max_entries
                    || usage.bytes + room > self.limits.max_bytes
            };
            let expired = oldest.as_ref().is_some_and(|e| e.received < cutoff);
            // An entry that does not decode is dropped as if it were the oldest: it is of no use.
            if !(over || expired || oldest.is_none()) {
                return Ok(());
            }
            self.entries.remove(&key)?;
            if let Some(QuarantineEntry {
                device: Some(device),
                seq: Some(seq),
                ..
            }) = &oldest
            {
                self.refused.remove(refused_key(device, *seq))?;
            }
            let mut usage = self.lock();
            usage.entries = usage.entries.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(cost(&key, &value));
            usage.evicted += 1;
        }
    }

    /// Whether any refused record is remembered.
    pub fn holds_refusals(&self) -> Result<bool, StoreError> {
        Ok(self.refused.first()?.is_some())
    }

    /// Why `device`'s record `seq` was refused, if it was (and is still remembered).
    pub fn refusal(&self, device: &DeviceId, seq: u64) -> Result<Option<String>, StoreError> {
        let key = refused_key(device, seq);
        match self.refused.get(&key)? {
            Some(value) => {
                let index: RefusedRecord = decode_stored(&key, &value)?;
                Ok(Some(index.reason))
            }
            None => Ok(None),
        }
    }

    /// The newest `limit` entries with ids below `before` (all, if `None`), newest first. Each
    /// entry is small (a prefix, not the payload), so this reads at most `limit` small values.
    pub fn newest(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        let end = before.unwrap_or(u64::MAX);
        let range = match before {
            Some(_) => self.entries.range(..end.to_be_bytes()),
            None => self.entries.iter(),
        };
        range
            .rev()
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                decode_stored(&key, &value)
            })
            .collect()
    }
}
