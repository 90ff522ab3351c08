//! The outbox's layout in sled, and the only code that touches it.
//!
//! One tree, `outbox`:
//! - `r` + the sequence number as 8 big-endian bytes → the CBOR-encoded [`proto::Record`]
//!   (big-endian so that keys sort in sequence order);
//! - `m:next_seq` → the next number to issue (8 bytes BE), written with every flush;
//! - `m:acked_through` → the gateway's ack watermark (8 bytes BE).
//!
//! And one tree, `idempotency`: an app's `Idempotency-Key` → the record it stored (see
//! `idempotency`), written before that record.
//!
//! And one tree, `dead_letters` (see `dead_letter`):
//! - `d` + the sequence number as 8 big-endian bytes → a record the gateway refused, with why and
//!   when, written before the ack that deletes it from `outbox`;
//! - `m:evicted` → how many letters were dropped to keep the list bounded (8 bytes BE).
//!
//! Every write is a single-key `insert` or `remove`, never a sled `Batch` or transaction: those
//! take sled's process-wide concurrency-control lock for writing, which waits for any flush in
//! progress and would stall every writer for the length of an fsync, defeating group commit.
//! Crash safety comes instead from the order of the writes (see the parent module).
//!
//! sled 0.34's `flush` writes its log with `sync_file_range` on Linux, which neither flushes the
//! drive's write cache nor commits file-size changes; [`Store::commit`] therefore also
//! `fdatasync`s the log file, so that a flushed record survives a power cut, not just a crash.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use proto::{Gap, Record, RecordBody, RecordKind, TimestampMs, MAX_MESSAGE_BYTES};

use super::idempotency::{IdempotencyKey, Remembered};
use super::OutboxError;

const TREE: &str = "outbox";
const KEYS_TREE: &str = "idempotency";
const DEAD_TREE: &str = "dead_letters";
const DEAD_PREFIX: u8 = b'd';
const EVICTED_KEY: &[u8] = b"m:evicted";
const RECORD_PREFIX: u8 = b'r';
const NEXT_SEQ_KEY: &[u8] = b"m:next_seq";
const ACKED_THROUGH_KEY: &[u8] = b"m:acked_through";
/// How long opening waits for a previous handle's lock to be released.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// The file sled 0.34 keeps its log in, inside the database directory.
const SLED_LOG_FILE: &str = "db";

/// The outbox's sled tree.
pub(super) struct Store {
    tree: sled::Tree,
    /// Idempotency keys.
    keys: sled::Tree,
    /// Records the gateway refused.
    dead: sled::Tree,
    /// sled's log file, opened again so that [`Store::commit`] can `fdatasync` it.
    log: File,
    /// Owns sled's page cache and its lock on the directory; dropped last.
    db: sled::Db,
}

/// What sled holds, as read on open.
#[derive(Debug)]
pub(super) struct Stored {
    /// The persisted next sequence number (0 if never written).
    pub next_seq: u64,
    /// The persisted ack watermark (0 if never written).
    pub acked_through: u64,
    /// Every readable record, in sequence order.
    pub records: Vec<StoredRecord>,
    /// Sequence numbers whose stored record cannot be decoded.
    pub unreadable: Vec<u64>,
}

/// What the outbox needs to know about a stored record, without its body.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StoredRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Its kind.
    pub kind: RecordKind,
    /// Its encoded size.
    pub bytes: u64,
    /// Its timestamp.
    pub ts: TimestampMs,
    /// What it reports, if it is a gap record.
    pub gap: Option<Gap>,
}

impl Store {
    /// Opens (or creates) the outbox's database in the directory `path`.
    pub(super) fn open(path: &Path, cache_bytes: u64) -> Result<Self, OutboxError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            // The outbox flushes when its writers need it (group commit); sled's own timer would
            // only add fsyncs competing with them.
            .flush_every_ms(None);
        let db = open_when_unlocked(&config)?;
        let tree = db.open_tree(TREE)?;
        let keys = db.open_tree(KEYS_TREE)?;
        let dead = db.open_tree(DEAD_TREE)?;
        let log = File::options()
            .write(true)
            .open(path.join(SLED_LOG_FILE))
            .map_err(sled::Error::Io)?;
        Ok(Self {
            tree,
            keys,
            dead,
            log,
            db,
        })
    }

    /// Opens another tree in the same database, for state kept beside the outbox. Its writes ride
    /// on the outbox's flushes (sled's flush and the log's `fdatasync` cover every tree).
    pub(super) fn open_tree(&self, name: &str) -> Result<sled::Tree, OutboxError> {
        if name == TREE || name == KEYS_TREE || name == DEAD_TREE {
            return Err(OutboxError::ReservedTree(name.to_owned()));
        }
        Ok(self.db.open_tree(name)?)
    }

    /// Reads the metadata and every record.
    pub(super) fn load(&self) -> Result<Stored, OutboxError> {
        let mut stored = Stored {
            next_seq: self.read_u64(NEXT_SEQ_KEY)?,
            acked_through: self.read_u64(ACKED_THROUGH_KEY)?,
            records: Vec::new(),
            unreadable: Vec::new(),
        };
        for entry in self.tree.scan_prefix([RECORD_PREFIX]) {
            let (key, value) = entry?;
            let Some(seq) = seq_of(&key) else {
                tracing::warn!(key = ?key, "ignoring a key the outbox does not use");
                continue;
            };
            match decode(seq, &value) {
                Ok(record) => stored.records.push(StoredRecord {
                    seq,
                    kind: record.body.kind(),
                    bytes: value.len() as u64,
                    ts: record.ts,
                    gap: match record.body {
                        RecordBody::Gap(gap) => Some(gap),
                        _ => None,
                    },
                }),
                Err(error) => {
                    tracing::error!(seq, %error, "stored record is unreadable");
                    stored.unreadable.push(seq);
                }
            }
        }
        Ok(stored)
    }

    /// Writes (or overwrites) the record numbered `seq`.
    pub(super) fn put(&self, seq: u64, encoded: &[u8]) -> Result<(), OutboxError> {
        self.tree.insert(record_key(seq), encoded)?;
        Ok(())
    }

    /// Deletes the record numbered `seq`, if present.
    pub(super) fn remove(&self, seq: u64) -> Result<(), OutboxError> {
        self.tree.remove(record_key(seq))?;
        Ok(())
    }

    /// Reads the record numbered `seq`; `None` if it has been deleted.
    pub(super) fn read(&self, seq: u64) -> Result<Option<Record>, OutboxError> {
        match self.tree.get(record_key(seq))? {
            Some(value) => decode(seq, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Every idempotency key stored; unreadable entries are skipped (their requests are then
    /// stored again if repeated, as for a forgotten key).
    pub(super) fn load_keys(&self) -> Result<Vec<(IdempotencyKey, Remembered)>, OutboxError> {
        let mut keys = Vec::new();
        for entry in &self.keys {
            let (key, value) = entry?;
            let parsed = std::str::from_utf8(&key)
                .ok()
                .and_then(|text| IdempotencyKey::parse(text).ok());
            match (parsed, Remembered::decode(&value)) {
                (Some(key), Some(remembered)) => keys.push((key, remembered)),
                _ => tracing::warn!(key = ?key, "ignoring an unreadable idempotency key"),
            }
        }
        Ok(keys)
    }

    /// Stores an idempotency key.
    pub(super) fn put_key(
        &self,
        key: &IdempotencyKey,
        remembered: &Remembered,
    ) -> Result<(), OutboxError> {
        self.keys.insert(key.as_str(), &remembered.encode())?;
        Ok(())
    }

    /// Forgets an idempotency key.
    pub(super) fn remove_key(&self, key: &IdempotencyKey) -> Result<(), OutboxError> {
        self.keys.remove(key.as_str())?;
        Ok(())
    }

    /// Reads the record numbered `seq` as stored; `None` if it has been deleted.
    pub(super) fn read_raw(&self, seq: u64) -> Result<Option<sled::IVec>, OutboxError> {
        Ok(self.tree.get(record_key(seq))?)
    }

    /// Keeps a dead letter (see `dead_letter::encode`); returns whether it is new (a record
    /// refused again after a crash overwrites its letter).
    pub(super) fn put_dead(&self, seq: u64, value: &[u8]) -> Result<bool, OutboxError> {
        Ok(self.dead.insert(dead_key(seq), value)?.is_none())
    }

    /// How many dead letters there are, and how many were evicted.
    pub(super) fn dead_tally(&self) -> Result<(u64, u64), OutboxError> {
        let count = self.dead.scan_prefix([DEAD_PREFIX]).count() as u64;
        let evicted = match self.dead.get(EVICTED_KEY)? {
            Some(value) => <[u8; 8]>::try_from(value.as_ref()).map_or(0, u64::from_be_bytes),
            None => 0,
        };
        Ok((count, evicted))
    }

    /// The newest `n` dead letters (highest sequence first), as stored.
    pub(super) fn newest_dead(&self, n: usize) -> Result<Vec<(u64, sled::IVec)>, OutboxError> {
        self.dead_entries(n, true)
    }

    /// The oldest `n` dead letters (lowest sequence first), as stored.
    pub(super) fn oldest_dead(&self, n: usize) -> Result<Vec<(u64, sled::IVec)>, OutboxError> {
        self.dead_entries(n, false)
    }

    /// Drops the dead letter `seq` and persists the eviction count `evicted`, in that order, so
    /// that a crash between them undercounts by one at worst rather than hiding a letter.
    pub(super) fn evict_dead(&self, seq: u64, evicted: u64) -> Result<(), OutboxError> {
        self.dead.remove(dead_key(seq))?;
        self.dead.insert(EVICTED_KEY, &evicted.to_be_bytes())?;
        Ok(())
    }

    fn dead_entries(&self, n: usize, newest: bool) -> Result<Vec<(u64, sled::IVec)>, OutboxError> {
        let entries = self.dead.scan_prefix([DEAD_PREFIX]);
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if newest {
            Box::new(entries.rev())
        } else {
            Box::new(entries)
        };
        let mut out = Vec::with_capacity(n);
        for entry in entries.take(n) {
            let (key, value) = entry?;
            if let [DEAD_PREFIX, seq @ ..] = key.as_ref() {
                if let Ok(seq) = <[u8; 8]>::try_from(seq) {
                    out.push((u64::from_be_bytes(seq), value));
                }
            }
        }
        Ok(out)
    }

    /// Persists the ack watermark.
    pub(super) fn set_acked_through(&self, thru: u64) -> Result<(), OutboxError> {
        self.tree.insert(ACKED_THROUGH_KEY, &thru.to_be_bytes())?;
        Ok(())
    }

    /// Persists `next_seq` and makes it and every earlier write durable: sled's flush, then an
    /// `fdatasync` of its log file. `next_seq` must not exceed the number after the highest
    /// record written so far, so that a restart never skips a number.
    pub(super) fn commit(&self, next_seq: u64) -> io::Result<()> {
        self.tree
            .insert(NEXT_SEQ_KEY, &next_seq.to_be_bytes())
            .map_err(io::Error::from)?;
        self.tree.flush().map_err(io::Error::from)?;
        self.log.sync_data()
    }

    fn read_u64(&self, key: &[u8]) -> Result<u64, OutboxError> {
        let Some(value) = self.tree.get(key)? else {
            return Ok(0);
        };
        match <[u8; 8]>::try_from(value.as_ref()) {
            Ok(bytes) => Ok(u64::from_be_bytes(bytes)),
            Err(_) => {
                // Only a lower bound among several (see `Sequence::recovered`); losing it is safe.
                tracing::warn!(key = ?String::from_utf8_lossy(key), "ignoring malformed metadata");
                Ok(0)
            }
        }
    }
}

/// Opens sled, waiting up to [`LOCK_WAIT`] for the directory's lock. sled 0.34 releases it only
/// when its thread pool lets go of the file, shortly after the last handle drops, so opening again
/// straight after closing (a restart within the process, and the tests) can find it still held.
fn open_when_unlocked(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // sled 0.34 reports a held lock only in the message of an `Other` I/O error.
            Err(error) if error.to_string().contains("could not acquire lock") => {
                if Instant::now() >= deadline {
                    return Err(error);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

fn record_key(seq: u64) -> [u8; 9] {
    let mut key = [RECORD_PREFIX; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn dead_key(seq: u64) -> [u8; 9] {
    let mut key = [DEAD_PREFIX; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(key: &[u8]) -> Option<u64> {
    match key {
        [RECORD_PREFIX, seq @ ..] => Some(u64::from_be_bytes(seq.try_into().ok()?)),
        _ => None,
    }
}

/// Decodes a stored record, checking that it is the one its key names.
fn decode(seq: u64, value: &[u8]) -> Result<Record, OutboxError> {
    let record: Record = proto::decode_value(value, MAX_MESSAGE_BYTES)
        .map_err(|source| OutboxError::Corrupt { seq, source })?;
    if record.seq != seq {
        let source = proto::DecodeError::Schema(format!("key {seq} holds record {}", record.seq));
        return Err(OutboxError::Corrupt { seq, source });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_sort_in_sequence_order_and_parse_back() {
        let keys: Vec<[u8; 9]> = [1, 255, 256, 70_000, u64::MAX].map(record_key).to_vec();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(seq_of(&record_key(70_000)), Some(70_000));
        assert_eq!(seq_of(NEXT_SEQ_KEY), None);
        assert_eq!(seq_of(&[RECORD_PREFIX, 1, 2]), None);
    }
}
