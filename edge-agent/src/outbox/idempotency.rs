//! Idempotency keys: an app that got no answer (the agent was killed mid-request, the link to the
//! handheld dropped) sends the same request again with the same `Idempotency-Key`, and gets the
//! first answer (the same sequence number) instead of storing the record twice. No I/O: the outbox
//! writes each key into sled *before* its record, in the same flush, so that no crash can keep the
//! record without its key; opening forgets keys whose record did not survive (`reconcile`), so that
//! a retry then stores it.
//!
//! Keys are bounded: each is remembered for [`KEY_TTL`] after its first use, and at most
//! [`MAX_KEYS`] are kept (the oldest go first). An app retries within minutes; a day is far more
//! than it needs.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hasher;
use std::time::Duration;

use proto::TimestampMs;
use siphasher::sip128::{Hasher128, SipHasher13};

/// How long a key is remembered after its first use.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most keys remembered; beyond it the oldest are forgotten.
pub const MAX_KEYS: usize = 10_000;
/// The longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// A client's idempotency key: 1 to [`MAX_KEY_BYTES`] visible ASCII characters (a UUID, say).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters")]
pub struct InvalidKey;

impl IdempotencyKey {
    /// Parses a header value: a bare token or, as the IETF draft writes it, a quoted string.
    pub fn parse(value: &str) -> Result<Self, InvalidKey> {
        let key = value
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(value);
        let visible = |b: &u8| (0x21..=0x7e).contains(b) && *b != b'"';
        if key.is_empty() || key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| visible(&b)) {
            return Err(InvalidKey);
        }
        Ok(Self(key.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request is, for telling a true repeat from a key reused for another request: a hash of
/// the record's encoded body (what the request asked to store, whatever its timestamp).
pub(super) type Fingerprint = u128;

/// The fingerprint of an encoded record body.
pub(super) fn fingerprint(encoded_body: &[u8]) -> Fingerprint {
    // Fixed keys: fingerprints are stored, so they must not change between runs.
    let mut hasher = SipHasher13::new_with_keys(0x6669_656c_6473_796e, 0x6964_656d_706f_7465);
    hasher.write(encoded_body);
    hasher.finish128().as_u128()
}

/// What the outbox remembers of a key's first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Remembered {
    /// The record it stored.
    pub seq: u64,
    /// When (device clock, UTC ms).
    pub at: TimestampMs,
    /// What it stored.
    pub fingerprint: Fingerprint,
}

impl Remembered {
    /// The stored form: seq, at, fingerprint, big-endian.
    pub(super) fn encode(&self) -> [u8; 32] {
        let mut bytes = [0; 32];
        bytes[..8].copy_from_slice(&self.seq.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.at.to_be_bytes());
        bytes[16..].copy_from_slice(&self.fingerprint.to_be_bytes());
        bytes
    }

    /// Reads the stored form back; `None` if it is not one.
    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 32] = bytes.try_into().ok()?;
        Some(Self {
            seq: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            at: TimestampMs::from_be_bytes(bytes[8..16].try_into().ok()?),
            fingerprint: u128::from_be_bytes(bytes[16..].try_into().ok()?),
        })
    }
}

/// What a key means for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Never seen (or forgotten): store the record.
    New,
    /// A repeat of the request that stored this record: answer as the first time.
    Repeat(u64),
    /// The key stored a different record: refuse.
    Reused,
}

/// The keys remembered, by key and by age.
#[derive(Debug, Default)]
pub(super) struct Keys {
    by_key: HashMap<IdempotencyKey, Remembered>,
    by_age: BTreeSet<(TimestampMs, IdempotencyKey)>,
}

impl Keys {
    /// What `key` means for a request to store a record with `fingerprint`.
    pub(super) fn lookup(&self, key: &IdempotencyKey, fingerprint: Fingerprint) -> Lookup {
        match self.by_key.get(key) {
            None => Lookup::New,
            Some(first) if first.fingerprint == fingerprint => Lookup::Repeat(first.seq),
            Some(_) => Lookup::Reused,
        }
    }

    /// The record `key` stored, whatever the request.
    pub(super) fn recall(&self, key: &IdempotencyKey) -> Option<u64> {
        self.by_key.get(key).map(|first| first.seq)
    }

    /// Remembers `key`; returns the keys to forget now: expired at `now` (by [`KEY_TTL`]) or
    /// beyond [`MAX_KEYS`], oldest first.
    pub(super) fn insert(
        &mut self,
        key: IdempotencyKey,
        remembered: Remembered,
        now: TimestampMs,
    ) -> Vec<IdempotencyKey> {
        if let Some(previous) = self.by_key.insert(key.clone(), remembered) {
            self.by_age.remove(&(previous.at, key.clone()));
        }
        self.by_age.insert((remembered.at, key));
        self.evict(now)
    }

    /// Forgets `key`.
    pub(super) fn remove(&mut self, key: &IdempotencyKey) {
        if let Some(first) = self.by_key.remove(key) {
            self.by_age.remove(&(first.at, key.clone()));
        }
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The keys whose record is gone without being acked (`kept` says whether a record is held;
    /// acked records are deleted, so `acked_through` covers those): lost before they were
    /// durable, so their request was never answered and a retry must store it again.
    pub(super) fn orphans(
        &self,
        acked_through: u64,
        kept: impl Fn(u64) -> bool,
    ) -> Vec<IdempotencyKey> {
        let mut orphans: Vec<IdempotencyKey> = self
            .by_key
            .iter()
            .filter(|(_, first)| first.seq > acked_through && !kept(first.seq))
            .map(|(key, _)| key.clone())
            .collect();
        orphans.sort();
        orphans
    }

    fn evict(&mut self, now: TimestampMs) -> Vec<IdempotencyKey> {
        let ttl = TimestampMs::try_from(KEY_TTL.as_millis()).unwrap_or(TimestampMs::MAX);
        let oldest_kept = now.saturating_sub(ttl);
        let mut evicted = Vec::new();
        while let Some((at, key)) = self.by_age.first().cloned() {
            if at >= oldest_kept && self.by_age.len() <= MAX_KEYS {
                break;
            }
            self.by_age.pop_first();
            self.by_key.remove(&key);
            evicted.push(key);
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimestampMs = 1_764_000_000_000;

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text).unwrap()
    }

    fn first(seq: u64, at: TimestampMs) -> Remembered {
        Remembered {
            seq,
            at,
            fingerprint: fingerprint(&seq.to_be_bytes()),
        }
    }

    #[test]
    fn keys_are_tokens_or_quoted_strings_of_visible_ascii() {
        assert_eq!(key("\"8e03978e-40d5\"").as_str(), "8e03978e-40d5");
        assert_eq!(key("abc_123").as_str(), "abc_123");
        for bad in ["", "\"\"", "a b", "é", "a\"b", &"k".repeat(256)] {
            assert_eq!(IdempotencyKey::parse(bad), Err(InvalidKey), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
    }

    #[test]
    fn a_repeat_is_told_from_a_key_reused_for_another_request() {
        let mut keys = Keys::default();
        let remembered = first(7, NOW);
        keys.insert(key("a"), remembered, NOW);
        assert_eq!(
            keys.lookup(&key("a"), remembered.fingerprint),
            Lookup::Repeat(7)
        );
        assert_eq!(keys.lookup(&key("a"), 1), Lookup::Reused);
        assert_eq!(keys.lookup(&key("b"), 1), Lookup::New);
        assert_eq!(keys.recall(&key("a")), Some(7));
    }

    #[test]
    fn keys_expire_after_a_day_and_beyond_the_cap_oldest_first() {
        let mut keys = Keys::default();
        keys.insert(key("old"), first(1, NOW), NOW);
        let day = TimestampMs::try_from(KEY_TTL.as_millis()).unwrap();
        assert!(keys
            .insert(key("new"), first(2, NOW + day), NOW + day)
            .is_empty());
        assert_eq!(
            keys.insert(key("newer"), first(3, NOW + day + 1), NOW + day + 1),
            vec![key("old")]
        );
        let mut keys = Keys::default();
        for n in 0..MAX_KEYS as u64 {
            keys.insert(key(&format!("k{n}")), first(n, NOW + n as i64), NOW);
        }
        let evicted = keys.insert(key("one-more"), first(99_999, NOW + 99_999), NOW);
        assert_eq!(evicted, vec![key("k0")]);
        assert_eq!(keys.len(), MAX_KEYS);
    }

    #[test]
    fn keys_whose_record_was_lost_are_orphans() {
        let mut keys = Keys::default();
        keys.insert(key("acked"), first(3, NOW), NOW);
        keys.insert(key("held"), first(5, NOW), NOW);
        keys.insert(key("lost"), first(6, NOW), NOW);
        assert_eq!(keys.orphans(4, |seq| seq == 5), vec![key("lost")]);
    }

    #[test]
    fn the_stored_form_reads_back() {
        let remembered = first(42, NOW);
        assert_eq!(Remembered::decode(&remembered.encode()), Some(remembered));
        assert_eq!(Remembered::decode(&[1, 2, 3]), None);
    }
}
