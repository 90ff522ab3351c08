//! What the quarantine holds, as every backend keeps it: what the gateway refused (whole
//! messages, and single records of batches whose other records it stored), as a prefix and a
//! SHA-256 of the payload, never the payload whole, within a count, a byte budget and a
//! retention. The embedded backend's trees are in [`super::embedded::quarantine`].

use proto::{DeviceId, TimestampMs};
use serde::{Deserialize, Serialize};

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
