//! Records the gateway refused (named in its ack's `rej`), kept aside instead of deleted: the ack
//! moves past them so the records behind them go on, and an operator can still see what was
//! refused and why (`GET /v1/status`) and recover it from the device's disk.
//!
//! The list is bounded by count ([`MAX_DEAD_LETTERS`]; records are at most
//! [`super::MAX_RECORD_BYTES`], so it holds a few MiB at most). Past the bound the oldest letter
//! goes, loudly: a WARN naming it, and a durable count of evictions shown beside the list. This
//! module decides and encodes; `store` keeps the letters in sled.

use proto::{Record, TimestampMs, MAX_MESSAGE_BYTES};
use serde::Serialize;

/// The most dead letters kept.
pub const MAX_DEAD_LETTERS: u64 = 1000;
/// How many of the newest letters the status shows.
pub const NEWEST_SHOWN: usize = 5;

/// One refused record, as kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Its sequence number.
    pub seq: u64,
    /// Its kind (`collection`, `telemetry`, …); `None` if the stored copy cannot be decoded.
    pub kind: Option<&'static str>,
    /// Its own timestamp (device clock, UTC ms), if decodable.
    pub ts: Option<TimestampMs>,
    /// Why the gateway refused it.
    pub why: String,
    /// When the agent moved it here (device clock, UTC ms).
    pub at: TimestampMs,
}

/// The dead-letter list at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeadLetters {
    /// Letters kept.
    pub count: u64,
    /// Letters dropped, oldest first, to stay within [`MAX_DEAD_LETTERS`] (each logged).
    pub evicted: u64,
    /// The newest few, newest first.
    pub newest: Vec<DeadLetter>,
}

/// What the outbox keeps in memory about the list, so the status need not count sled's tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub count: u64,
    pub evicted: u64,
}

impl Tally {
    /// How many of the oldest letters must go so that the list is within its bound again.
    pub fn excess(&self) -> u64 {
        self.count.saturating_sub(MAX_DEAD_LETTERS)
    }
}

/// The stored value: `at` (8 bytes, big-endian), the reason's length (2 bytes, big-endian), the
/// reason (UTF-8), then the record exactly as the outbox held it (CBOR).
pub(super) fn encode(at: TimestampMs, why: &str, record: &[u8]) -> Vec<u8> {
    // Reasons come from the gateway within proto's 256-byte limit; cut anything longer rather
    // than fail to keep the record.
    let mut end = why.len().min(usize::from(u16::MAX));
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    let why = &why[..end];
    let mut value = Vec::with_capacity(10 + why.len() + record.len());
    value.extend_from_slice(&at.to_be_bytes());
    // `end` fits: it was bounded by u16::MAX above.
    value.extend_from_slice(&u16::try_from(why.len()).unwrap_or(u16::MAX).to_be_bytes());
    value.extend_from_slice(why.as_bytes());
    value.extend_from_slice(record);
    value
}

/// Reads a stored value back; `None` if it is too short to be one.
pub(super) fn decode(seq: u64, value: &[u8]) -> Option<DeadLetter> {
    let (at, rest) = value.split_first_chunk::<8>()?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return None;
    }
    let (why, record) = rest.split_at(len);
    let record: Option<Record> = proto::decode_value(record, MAX_MESSAGE_BYTES).ok();
    Some(DeadLetter {
        seq,
        kind: record.as_ref().map(|record| record.body.kind().as_str()),
        ts: record.as_ref().map(|record| record.ts),
        why: String::from_utf8_lossy(why).into_owned(),
        at: TimestampMs::from_be_bytes(*at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_keeps_the_record_whole_with_its_reason_and_time() {
        let record = proto::examples::telemetry_batch(1).recs.remove(0);
        let bytes = proto::encode_value(&record).unwrap();
        let value = encode(1_764_000_000_000, "asset: not provisioned", &bytes);
        let letter = decode(record.seq, &value).unwrap();
        assert_eq!(letter.seq, record.seq);
        assert_eq!(letter.kind, Some("telemetry"));
        assert_eq!(letter.ts, Some(record.ts));
        assert_eq!(letter.why, "asset: not provisioned");
        assert_eq!(letter.at, 1_764_000_000_000);
        assert!(
            value.ends_with(&bytes),
            "the record is kept as it was stored"
        );
    }

    #[test]
    fn a_short_or_odd_value_is_not_misread() {
        assert_eq!(decode(1, &[0; 9]), None);
        let mut value = encode(5, "why", b"");
        value.truncate(12);
        assert_eq!(decode(1, &value), None);
        // A record that no longer decodes is still listed, with its reason.
        let letter = decode(3, &encode(5, "bad", b"\xff\x00")).unwrap();
        assert_eq!((letter.kind, letter.why.as_str()), (None, "bad"));
    }

    #[test]
    fn the_list_is_bounded_by_evicting_its_excess() {
        let tally = Tally {
            count: MAX_DEAD_LETTERS + 3,
            evicted: 0,
        };
        assert_eq!(tally.excess(), 3);
        assert_eq!(Tally::default().excess(), 0);
    }
}
