//! Brings a store written by an older gateway to the current format at open, or refuses one
//! written by a newer gateway. The format is a number under `format` in the `meta` tree; a store
//! without one is format 1 (or new and empty).
//!
//! Format 1 → 2: record and evidence keys get a length-prefixed device id (see [`super::keys`]),
//! and quarantined payloads are cut to a prefix and a hash.
//!
//! Format 2 → 3: records, one per key, are gathered into runs of consecutive sequences, one value
//! per run, and the per-record marks of records not yet fed to the boilers become marks of their
//! runs (see [`super::keys`]).
//!
//! Each step moves keys in chunks, each
//! chunk one atomic sled batch under new prefixes that the old ones cannot be confused with, so
//! a migration cut short by a crash resumes where it stopped at the next open.

use proto::DeviceId;

use super::decode_stored;
use super::ingest::{put_run, run_holding};
use super::keys::{self, OLD_EVIDENCE, OLD_RECORD};
use super::quarantine::{OldQuarantineEntry, Quarantine};
use crate::storage::quarantine::{QuarantineEntry, Refused};
use crate::storage::{StoreError, StoredRecord};

/// The format this build writes.
pub const FORMAT: u32 = 3;
const FORMAT_KEY: &[u8] = b"format";
/// Keys moved per atomic batch: bounded memory, whatever the store's size.
const CHUNK: usize = 1000;

/// What a migration did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The format found.
    pub from: u32,
    /// Records re-keyed.
    pub records: u64,
    /// Records gathered into runs (format 2 → 3).
    pub runs: u64,
    /// Evidence entries re-keyed.
    pub evidence: u64,
    /// Quarantine entries cut to a prefix and a hash.
    pub quarantined: u64,
}

/// Migrates `db` to [`FORMAT`] if it is older; refuses it if it is newer.
pub(super) fn migrate(
    db: &sled::Db,
    main: &sled::Tree,
    quarantine: &Quarantine,
) -> Result<Migrated, StoreError> {
    let meta = db.open_tree("meta")?;
    let found = match meta.get(FORMAT_KEY)? {
        Some(bytes) => {
            let bytes: [u8; 4] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: "meta/format".into(),
                reason: format!("{} bytes, not 4", bytes.len()),
            })?;
            u32::from_be_bytes(bytes)
        }
        None => 1,
    };
    let mut done = Migrated {
        from: found,
        ..Migrated::default()
    };
    if found > FORMAT {
        return Err(StoreError::NewerFormat {
            found,
            supported: FORMAT,
        });
    }
    if found == FORMAT {
        return Ok(done);
    }
    if found < 2 {
        done.records = rekey(main, OLD_RECORD, |key| {
            keys::parse_old_record_key(key).map(|(device, seq)| keys::record_key(&device, seq))
        })?;
        done.evidence = rekey(main, OLD_EVIDENCE, |key| {
            keys::parse_old_evidence_key(key)
                .map(|(received, device, seq)| keys::evidence_key(received, &device, seq))
        })?;
        done.quarantined = cut_payloads(quarantine)?;
        // Old quarantines were unbounded: bring this one within its caps now.
        quarantine.recount()?;
        quarantine.evict(proto::TimestampMs::MIN, 0)?;
    }
    done.runs = gather_runs(main)?;
    mark_runs_to_feed(main)?;
    meta.insert(FORMAT_KEY, &FORMAT.to_be_bytes())?;
    db.flush()?;
    if done.records + done.runs + done.evidence + done.quarantined > 0 {
        tracing::info!(
            from = found,
            to = FORMAT,
            records = done.records,
            runs = done.runs,
            evidence = done.evidence,
            quarantined = done.quarantined,
            "migrated the store"
        );
    }
    Ok(done)
}

/// Moves every key under `old_prefix` to the key `new_key` gives it, in atomic chunks.
fn rekey(
    tree: &sled::Tree,
    old_prefix: u8,
    new_key: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<u64, StoreError> {
    let mut moved = 0;
    loop {
        let mut batch = sled::Batch::default();
        let mut in_chunk = 0;
        for item in tree.scan_prefix([old_prefix]).take(CHUNK) {
            let (key, value) = item?;
            let new = new_key(&key).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "a format 1 key that does not parse; the store cannot be migrated".into(),
            })?;
            batch.remove(key);
            batch.insert(new, value);
            in_chunk += 1;
        }
        if in_chunk == 0 {
            return Ok(moved);
        }
        tree.apply_batch(batch)?;
        moved += in_chunk;
    }
}

/// Gathers format 2's records (one per key, `R`) into runs of consecutive sequences, a chunk at a
/// time, each chunk one atomic batch; returns how many records moved.
fn gather_runs(main: &sled::Tree) -> Result<u64, StoreError> {
    let mut moved = 0;
    loop {
        let mut batch = sled::Batch::default();
        let mut records: Vec<(DeviceId, StoredRecord)> = Vec::new();
        for item in main.scan_prefix([keys::RECORD]).take(CHUNK) {
            let (key, value) = item?;
            let (device, _) = keys::parse_record_key(&key).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "a format 2 record key that does not parse; the store cannot be migrated"
                    .into(),
            })?;
            records.push((device, decode_stored(&key, &value)?));
            batch.remove(key);
        }
        if records.is_empty() {
            return Ok(moved);
        }
        moved += records.len() as u64;
        for run in records.chunk_by(|(da, a), (db, b)| {
            da == db && a.record.seq.checked_add(1) == Some(b.record.seq)
        }) {
            let device = run[0].0.clone();
            let run: Vec<StoredRecord> = run.iter().map(|(_, s)| s.clone()).collect();
            put_run(&mut batch, &device, &run)?;
        }
        main.apply_batch(batch)?;
    }
}

/// Replaces format 2's per-record marks of records not yet fed to the boilers with marks of the
/// runs that hold them (run marks are written by [`put_run`] too, so a mark may already be there).
fn mark_runs_to_feed(main: &sled::Tree) -> Result<(), StoreError> {
    loop {
        let mut batch = sled::Batch::default();
        let mut seen = 0;
        for item in main.scan_prefix([keys::TO_FEED]) {
            let (key, _) = item?;
            let Some((device, seq)) = keys::parse_old_feed_key(&key) else {
                continue; // a run's mark
            };
            if let Some((first, last)) = run_holding(main, &device, seq)? {
                batch.insert(keys::run_key(keys::TO_FEED, &device, first, last), &[][..]);
            }
            batch.remove(key);
            seen += 1;
            if seen == CHUNK {
                break;
            }
        }
        if seen == 0 {
            return Ok(());
        }
        main.apply_batch(batch)?;
    }
}

/// Rewrites every format 1 quarantine entry (whole payload) as a prefix and a hash.
fn cut_payloads(quarantine: &Quarantine) -> Result<u64, StoreError> {
    let tree = quarantine.tree();
    let mut cut = 0;
    let mut next: Vec<u8> = Vec::new();
    loop {
        let mut batch = sled::Batch::default();
        let mut seen = 0;
        for item in tree.range(next.clone()..).take(CHUNK) {
            let (key, value) = item?;
            seen += 1;
            next = key.to_vec();
            next.push(0);
            if decode_stored::<QuarantineEntry>(&key, &value).is_ok() {
                continue;
            }
            let old: OldQuarantineEntry = decode_stored(&key, &value)?;
            let entry = quarantine.entry(
                old.id,
                &Refused {
                    topic: &old.topic,
                    reason: &old.reason,
                    payload: &old.payload,
                    received: old.received,
                    record: None,
                },
            );
            batch.insert(key, proto::encode_value(&entry)?);
            cut += 1;
        }
        if seen == 0 {
            break;
        }
        tree.apply_batch(batch)?;
    }
    Ok(cut)
}
