//! The embedded backend's quarantine trees: the entries by id, and the `refused` tree by
//! (device, seq) so that a resent batch gets the same refusal again. The oldest entries are
//! evicted first, so what outsiders send can never fill the disk or the page cache. Evicting an
//! entry drops its refusal too: a record refused longer ago than the retention (or beyond the
//! caps) is then answered as held, which its device's ack already says it is.

use proto::{DeviceId, TimestampMs};
use serde::{Deserialize, Serialize};

use super::decode_stored;
use super::keys::refused_key;
use crate::storage::quarantine::{QuarantineEntry, QuarantineLimits, QuarantineUsage, Refused};
use crate::storage::StoreError;

/// The most of a topic or a reason kept: MQTT allows 64 KiB topics, and reasons quote input.
const MAX_TEXT_BYTES: usize = 256;

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

/// The `refused` tree's value: why a record was refused, and its quarantine entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RefusedRecord {
    /// The quarantine entry's id.
    pub id: u64,
    /// Why it was refused.
    pub reason: String,
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
