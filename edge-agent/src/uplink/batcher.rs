//! When to send and what a batch looks like: a part-filled batch lingers a little for company, a
//! full one goes at once; a batch is an [`Envelope`] of records, encoded within the message limit.
//! No I/O: time and counts come in as arguments.

use std::time::{Duration, Instant};

use proto::{
    DeviceId, EncodeError, Envelope, Record, TimestampMs, MAX_MESSAGE_BYTES, SCHEMA_VERSION,
};

use crate::config::UplinkConfig;
use crate::outbox::BatchLimits;

/// How batches are made; the gateway can change `max_records` and `linger` (a downlink `config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// The most records in a batch.
    pub max_records: usize,
    /// The most bytes of encoded records in a batch.
    pub max_bytes: usize,
    /// How long a part-filled batch waits for more records.
    pub linger: Duration,
}

impl Batching {
    /// The configured batching.
    pub fn from_config(uplink: &UplinkConfig) -> Self {
        Self {
            max_records: uplink.batch_max_records as usize,
            max_bytes: uplink.batch_max_bytes,
            linger: Duration::from_millis(uplink.linger_ms),
        }
    }

    /// The outbox's limits for one batch.
    pub fn limits(&self) -> BatchLimits {
        BatchLimits {
            records: self.max_records.max(1),
            bytes: self.max_bytes,
        }
    }
}

/// What the sender should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing waits to be sent.
    Idle,
    /// Send every batch there is.
    Send,
    /// A part-filled batch is lingering: look again at this instant.
    WaitUntil(Instant),
}

/// The linger clock: when the oldest unsent record began to wait for company.
#[derive(Debug, Clone, Default)]
pub struct Linger {
    since: Option<Instant>,
}

impl Linger {
    /// Decides, given how many records wait unsent. `hurry` (shutdown) skips lingering.
    pub fn decide(
        &mut self,
        now: Instant,
        unsent: u64,
        batching: &Batching,
        hurry: bool,
    ) -> Decision {
        if unsent == 0 {
            self.since = None;
            return Decision::Idle;
        }
        let full = unsent >= batching.max_records as u64;
        let since = *self.since.get_or_insert(now);
        let due = since.checked_add(batching.linger).unwrap_or(now);
        if full || hurry || now >= due {
            self.since = None;
            return Decision::Send;
        }
        Decision::WaitUntil(due)
    }
}

/// Encodes `records` as one batch from `device`, sent at `sent` (device clock).
pub fn encode_batch(
    device: &DeviceId,
    sent: TimestampMs,
    records: Vec<Record>,
) -> Result<Vec<u8>, EncodeError> {
    let envelope = Envelope {
        v: SCHEMA_VERSION,
        dev: device.clone(),
        sent,
        recs: records,
        boot: None,
        mono: None,
    };
    proto::encode(&envelope, MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCHING: Batching = Batching {
        max_records: 10,
        max_bytes: 64 * 1024,
        linger: Duration::from_millis(200),
    };

    #[test]
    fn a_part_filled_batch_lingers_then_goes() {
        let start = Instant::now();
        let mut linger = Linger::default();
        assert_eq!(linger.decide(start, 0, &BATCHING, false), Decision::Idle);
        let due = start + BATCHING.linger;
        assert_eq!(
            linger.decide(start, 3, &BATCHING, false),
            Decision::WaitUntil(due)
        );
        // More records arriving do not restart the clock.
        let later = start + Duration::from_millis(150);
        assert_eq!(
            linger.decide(later, 5, &BATCHING, false),
            Decision::WaitUntil(due)
        );
        assert_eq!(linger.decide(due, 5, &BATCHING, false), Decision::Send);
        // The next part-filled batch starts a new clock.
        assert_eq!(
            linger.decide(due, 1, &BATCHING, false),
            Decision::WaitUntil(due + BATCHING.linger)
        );
    }

    #[test]
    fn a_full_batch_or_a_hurry_goes_at_once() {
        let now = Instant::now();
        assert_eq!(
            Linger::default().decide(now, 10, &BATCHING, false),
            Decision::Send
        );
        assert_eq!(
            Linger::default().decide(now, 1, &BATCHING, true),
            Decision::Send
        );
    }

    #[test]
    fn a_full_batch_of_the_largest_records_encodes_within_the_limit() {
        use proto::{RecordBody, Telemetry};
        let device = DeviceId::new("x".repeat(64)).unwrap();
        let record = |seq| Record {
            seq,
            ts: 1_764_000_000_000,
            body: RecordBody::Telemetry(Telemetry {
                asset: "a".repeat(64),
                flow: Some(1.0),
                gas: Some(1.0e12),
                ..Telemetry::default()
            }),
            boot: None,
            mono: None,
        };
        let encoded = proto::encode_value(&record(1)).unwrap().len();
        let max_bytes = MAX_MESSAGE_BYTES - crate::config::ENVELOPE_OVERHEAD;
        let count = (max_bytes / encoded).min(proto::MAX_BATCH_RECORDS);
        let records: Vec<Record> = (1..=count as u64).map(record).collect();
        assert!(encode_batch(&device, 1_764_000_000_000, records).is_ok());
    }
}
