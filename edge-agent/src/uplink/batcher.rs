//! When to send and what a batch looks like: a part-filled batch lingers a little for company, a
//! full one goes at once; a batch is an [`Envelope`] of records, encoded within the message limit.
//! No I/O: time and counts come in as arguments.

use std::time::{Duration, Instant};

use proto::{
    DeviceId, EncodeError, Envelope, Record, TimestampMs, MAX_MESSAGE_BYTES, SCHEMA_VERSION,
};

use crate::config::UplinkConfig;
use crate::outbox::BatchLimits;
use crate::stamp::Stamp;

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

/// Encodes `records` as one batch from `device`, sent at `sent` (device clock) and, on the
/// monotonic clock, at `mono` ms into boot `stamp.boot`.
pub fn encode_batch(
    device: &DeviceId,
    sent: TimestampMs,
    stamp: Option<(&Stamp, Instant)>,
    records: Vec<Record>,
) -> Result<Vec<u8>, EncodeError> {
    let envelope = Envelope {
        v: SCHEMA_VERSION,
        dev: device.clone(),
        sent,
        recs: records,
        boot: stamp.map(|(stamp, _)| stamp.boot),
        mono: stamp.map(|(stamp, now)| stamp.mono_at(now)),
    };
    // Room for the signature: the signed message is what must fit the limit.
    proto::encode(
        &envelope,
        MAX_MESSAGE_BYTES - proto::signed::SIGNED_OVERHEAD,
    )
}

/// One message ready to publish: the records it carries and its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The records' sequence numbers.
    pub seqs: Vec<u64>,
    /// The envelope, at most [`MAX_MESSAGE_BYTES`].
    pub payload: Vec<u8>,
}

/// What [`encode_within_limit`] made of a batch.
#[derive(Debug, Default)]
pub struct Split {
    /// Messages within the limit, in record order.
    pub messages: Vec<Encoded>,
    /// Records that cannot be sent even alone, and why.
    pub unsendable: Vec<(u64, EncodeError)>,
}

/// Encodes `records` as few envelopes as fit [`MAX_MESSAGE_BYTES`]: one, unless the batch is too
/// large, when each half is tried in turn. The outbox's byte limit keeps batches within the limit,
/// so a split is a guard (against envelope overhead growing, say), never the plan; without it an
/// oversized batch would be refused every time it was sent, for ever. A record that cannot be
/// encoded even alone is returned apart, so that it cannot hold up the others.
pub fn encode_within_limit(
    device: &DeviceId,
    sent: TimestampMs,
    stamp: Option<(&Stamp, Instant)>,
    records: Vec<Record>,
) -> Split {
    let mut split = Split::default();
    let mut pending = vec![records];
    while let Some(records) = pending.pop() {
        let seqs: Vec<u64> = records.iter().map(|record| record.seq).collect();
        match encode_batch(device, sent, stamp, records.clone()) {
            Ok(payload) => split.messages.push(Encoded { seqs, payload }),
            Err(EncodeError::TooLarge { .. }) if records.len() > 1 => {
                let mut first = records;
                let second = first.split_off(first.len() / 2);
                // Popped last first: the first half goes out first.
                pending.push(second);
                pending.push(first);
            }
            Err(error) if records.len() == 1 => split.unsendable.push((seqs[0], error)),
            Err(_) => {
                // Not a size problem: find the record to blame by sending each alone.
                pending.extend(records.into_iter().rev().map(|record| vec![record]));
            }
        }
    }
    split
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
        let stamp = Stamp::new(u64::MAX, Instant::now());
        let now = Some((&stamp, Instant::now()));
        assert!(encode_batch(&device, 1_764_000_000_000, now, records).is_ok());
    }

    #[test]
    fn an_oversized_batch_is_split_within_the_message_limit_in_order() {
        use proto::{BinStream, Collection, Outcome, Position, RecordBody};
        let device = DeviceId::new("x".repeat(64)).unwrap();
        // Collections with the longest ids and note, stamped with the largest boot and mono: a
        // full batch of them is four times the limit.
        let record = |seq| Record {
            seq,
            ts: i64::MAX,
            body: RecordBody::Collection(Collection {
                uprn: Some(u64::MAX),
                stream: BinStream::Refuse,
                outcome: Outcome::Other,
                pos: Position {
                    lat: 51.5,
                    lon: -0.14,
                    acc: 4.0,
                },
                vehicle: "v".repeat(64),
                round: "r".repeat(64),
                job: Some("j".repeat(64)),
                photo: Some("0".repeat(64)),
                note: Some("n".repeat(1000)),
            }),
            boot: Some(u64::MAX),
            mono: Some(u64::MAX),
        };
        let records: Vec<Record> = (1..=proto::MAX_BATCH_RECORDS as u64).map(record).collect();
        let total: usize = records
            .iter()
            .map(|r| proto::encode_value(r).unwrap().len())
            .sum();
        let stamp = Stamp::new(u64::MAX, Instant::now());
        let now = Some((&stamp, Instant::now()));
        assert!(total > 4 * MAX_MESSAGE_BYTES, "{total}");
        assert!(encode_batch(&device, 0, now, records.clone()).is_err());
        let split = encode_within_limit(&device, 0, now, records);
        assert!(split.unsendable.is_empty());
        assert!(split
            .messages
            .iter()
            .all(|m| m.payload.len() <= MAX_MESSAGE_BYTES));
        let sent: Vec<u64> = split.messages.iter().flat_map(|m| m.seqs.clone()).collect();
        assert_eq!(
            sent,
            (1..=proto::MAX_BATCH_RECORDS as u64).collect::<Vec<_>>()
        );
        let first: Envelope = proto::decode(&split.messages[0].payload, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(
            (first.boot, first.recs[0].boot),
            (Some(u64::MAX), Some(u64::MAX))
        );
    }
}
