//! The durable outbox: every record the agent accepts stays on disk until the gateway's ack covers
//! it, so that each reaches the gateway exactly once whatever happens to power or link.
//!
//! - [`Outbox`]: the handle the API, the sensors and the uplink share; it moves bytes between the
//!   parts below and sled.
//! - `sequence`: numbering and what an ack means. `index`: what to send next and what is in
//!   flight. `budget`: what to drop when the disk budget is reached. `recovery`: what to repair on
//!   open. `commit`: group commit. These decide; they do no I/O.
//! - `store`: the layout in sled, and the only code that touches it.
//! - `storage`: whether writes can be taken, and what to say when they cannot.
//!
//! # What the outbox promises
//!
//! - **Durable before accepted.** [`Outbox::accept`] returns once the record is on disk (sled's
//!   flush plus an `fdatasync`). Concurrent writers share one flush (group commit).
//! - **Numbers without holes.** Records are numbered from 1, device-wide, never reused or skipped:
//!   every number below [`OutboxStats::next_seq`] is acked, held here, or reported in a gap record.
//! - **Priorities.** Batches carry collections, job updates, round events and gap records first,
//!   then telemetry and health, each in sequence order.
//! - **A disk budget.** When it is reached the oldest telemetry and health records make room, and a
//!   gap record says which; critical records are never dropped: [`OutboxError::Full`] instead.
//!
//! # The contract the gateway must follow
//!
//! 1. Deduplicate by (device, seq) and store a batch atomically before acking it. Records arrive
//!    more than once (resent after a timeout or a reconnect) and out of order (the priority lane
//!    overtakes older telemetry).
//! 2. Ack `thru = N` only once every number from 1 to N is stored or accounted for. A gap record
//!    `Gap { from, to, .. }` accounts for every number in `from..=to`: all were dropped, and all are
//!    below the gap record's own number.
//! 3. Acks are cumulative: a repeated or older ack is harmless. Never ack a number the device has
//!    not sent; the device refuses it ([`OutboxError::AckAhead`]) and deletes nothing.
//!
//! An ack of N deletes every record numbered N or lower. So a critical record sent ahead of older
//! telemetry stays here until that telemetry reaches the gateway. If its ack is overdue it is sent
//! again, but only after records never sent, so that resends cannot starve the telemetry the ack
//! is waiting for.
//!
//! # Crash safety
//!
//! Writes reach sled one key at a time, in an order where every prefix is a consistent outbox: a
//! new record before the gap records it causes, gap records before the deletions they report, the
//! ack watermark before the deletions it allows. A record is offered to the uplink only once it is
//! durable, so the gateway never holds a record that a crash could take back. Opening repairs
//! whatever a crash interrupted or sled lost (`recovery`).
//!
//! # When the disk fails
//!
//! A full disk (or any other write error) takes the storage *down*: every write is refused at once
//! with [`OutboxError::StorageDown`] (HTTP 507 for a full disk), and [`OutboxStats::storage`] says
//! why and since when. sled keeps its first write error and returns it for ever after, so the
//! flusher thread reopens the database once there is room again ([`MIN_FREE_TO_REOPEN`], checked
//! every [`RECOVERY_RETRY`]): records whose writers were told their write failed are discarded if
//! sled kept them, everything durable is kept, and numbering resumes as after a restart. No number
//! given to a caller is ever given again; a number whose write failed was given to no one and
//! never sent, so it may be.
//!
//! # Use
//!
//! Any number of tasks may [`accept`](Outbox::accept). One uplink task loops:
//! [`next_batch`](Outbox::next_batch), publish, [`mark_sent`](Outbox::mark_sent); it calls
//! [`ack`](Outbox::ack) for each ack from the gateway and
//! [`reset_in_flight`](Outbox::reset_in_flight) after each reconnect.
//!
//! # Refused records
//!
//! An ack may name records the gateway refused ([`Outbox::ack_refusing`]): each is copied to the
//! dead-letter list (`dead_letter`) before the watermark moves past it and deletes it, so a crash
//! in between leaves it in both places (and the gateway refuses it again when it is resent).

mod budget;
mod commit;
mod config;
mod dead_letter;
mod error;
mod idempotency;
mod index;
mod recovery;
mod sequence;
mod storage;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::{Record, RecordBody, RecordKind, Refusal, TimestampMs, Validate};
use tokio::sync::watch;

use crate::stamp::Stamp;

pub use config::OutboxConfig;
pub use dead_letter::{DeadLetter, DeadLetters, MAX_DEAD_LETTERS, NEWEST_SHOWN};
pub use error::OutboxError;
pub use idempotency::{IdempotencyKey, InvalidKey, KEY_TTL, MAX_KEYS, MAX_KEY_BYTES};
pub use index::BatchLimits;
pub use storage::{StorageFault, StorageState};

use budget::{Budget, GapRecord, Room};
use commit::{Epoch, FlushReport, GroupCommit};
use dead_letter::Tally;
use idempotency::{Fingerprint, Keys, Lookup, Remembered};
use index::{Held, Index, Lane};
use recovery::Recovery;
use sequence::{AckEffect, Sequence};
use storage::{StorageHealth, Transition};
use store::Store;

/// The largest encoded record the outbox stores. Records are a few hundred bytes; the cap keeps
/// sled's pages (up to 17 records) well below the 128 KiB at which sled 0.34 writes a page as a
/// separate blob file that its flush does not fsync.
pub const MAX_RECORD_BYTES: usize = 4096;

/// How often the flusher tries to reopen a database whose storage is down.
pub const RECOVERY_RETRY: Duration = Duration::from_secs(1);

/// The free space the file system must have before the flusher reopens the database: room for
/// sled to start a new log segment (512 KiB) twice over.
pub const MIN_FREE_TO_REOPEN: u64 = 1024 * 1024;

/// A record the outbox has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its sequence number.
    pub seq: u64,
}

/// What [`Outbox::accept_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Once {
    /// The record is new and now durable.
    Stored(Accepted),
    /// The key's request was made before: this is the record it stored (durable).
    Repeated(Accepted),
}

/// What a write did, before waiting for it to be durable.
enum Written {
    /// A new record, durable once this epoch is.
    New { seq: u64, epoch: Epoch },
    /// The key's earlier record.
    Repeat(u64),
}

/// What an ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The ack watermark after it.
    pub acked_through: u64,
    /// How many records it deleted (0 for an old or repeated ack).
    pub removed: usize,
    /// Of those, how many the gateway refused and the dead-letter list now holds.
    pub dead_lettered: usize,
}

/// The outbox at a glance, for the status API and the device's health records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records held (unacked).
    pub depth: u64,
    /// Of which in the priority lane (collections, job updates, round events, gaps).
    pub priority_depth: u64,
    /// Encoded bytes held; compare with `budget_bytes`.
    pub bytes: u64,
    /// The disk budget.
    pub budget_bytes: u64,
    /// Records sent and awaiting an ack.
    pub in_flight: u64,
    /// The timestamp of the oldest record never yet sent.
    pub oldest_unsent_ts: Option<TimestampMs>,
    /// The gateway's ack watermark.
    pub acked_through: u64,
    /// The number the next record will get.
    pub next_seq: u64,
    /// Flushes since the outbox opened; far fewer than records accepted when writers overlap.
    pub flushes: u64,
    /// Whether the storage takes writes now, or why not.
    pub storage: StorageState,
    /// Times the storage went down since the outbox opened.
    pub storage_faults: u64,
    /// Times it recovered without a restart.
    pub storage_recoveries: u64,
    /// Records the gateway refused, kept in the dead-letter list.
    pub dead_letters: u64,
    /// Dead letters dropped (oldest first, each logged) to keep the list within
    /// [`MAX_DEAD_LETTERS`].
    pub dead_letters_evicted: u64,
}

impl OutboxStats {
    /// How long the oldest unsent record has waited, by the device's clock at `now`; zero if the
    /// clock has been set back since.
    pub fn oldest_unsent_age(&self, now: TimestampMs) -> Option<Duration> {
        let waited = now.saturating_sub(self.oldest_unsent_ts?);
        Some(Duration::from_millis(u64::try_from(waited).unwrap_or(0)))
    }
}

/// A handle to the outbox; clones share it. Dropping the last one finishes any pending flush and
/// closes the database (blocking for at most one flush).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// Owns the flusher thread, which it stops when the last handle goes.
struct Inner {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

/// What the handles and the flusher thread share.
struct Shared {
    /// The database's directory, to reopen it after a storage failure.
    path: PathBuf,
    /// sled, replaced by a fresh handle when the storage recovers; `None` while it is reopened.
    /// Taken (the `Arc` cloned) for each operation, never held across one.
    store: RwLock<Option<Arc<Store>>>,
    config: OutboxConfig,
    state: Mutex<State>,
    /// Wakes the flusher when a write finds it idle, or when the outbox closes.
    work: Condvar,
    /// Tells waiting writers how each flush ended.
    reports: watch::Sender<FlushReport>,
    /// The storage's state, for those who wait for it to change (it also lives in [`State`]).
    storage: watch::Sender<StorageState>,
}

/// Everything the outbox knows in memory. Guarded by one mutex, held for microseconds and never
/// across an await or an fsync.
struct State {
    index: Index,
    sequence: Sequence,
    /// The newest gap record while it is unsent, so later drops can grow it.
    open_gap: Option<GapRecord>,
    commit: GroupCommit,
    /// Whether writes are taken.
    storage: StorageHealth,
    /// The idempotency keys remembered.
    keys: Keys,
    /// The dead-letter list's size and evictions.
    dead: Tally,
    /// Boot and start time to stamp each record with, once the agent knows its boot.
    stamp: Option<Stamp>,
    /// The last handle has gone: the flusher finishes pending work and exits.
    stopping: bool,
}

/// What the flusher thread does next.
enum Work {
    /// Flush this epoch, persisting this next sequence number with it.
    Flush { epoch: Epoch, next_seq: u64 },
    /// Try to reopen the database whose storage is down.
    Recover,
    /// The outbox has closed.
    Stop,
}

/// A record ready to write, with the room made for it.
struct Planned {
    seq: u64,
    held: Held,
    encoded: Vec<u8>,
    room: Room,
}

impl Outbox {
    /// Opens the outbox in the directory `path` (created if missing), repairing whatever a crash
    /// interrupted. Blocking: it reads every record to rebuild the index.
    pub fn open(path: impl AsRef<Path>, config: OutboxConfig) -> Result<Self, OutboxError> {
        let path = path.as_ref().to_owned();
        let (store, recovery, keys) = load(&path, &config, &[])?;
        let dead = tally_of(&store)?;
        let index = index_of(&recovery);
        tracing::info!(
            depth = index.len(),
            bytes = index.bytes(),
            next_seq = recovery.sequence.next(),
            acked_through = recovery.sequence.acked_through(),
            dead_letters = dead.count,
            "outbox opened"
        );
        let state = State {
            index,
            sequence: recovery.sequence,
            open_gap: None,
            commit: GroupCommit::new(),
            storage: StorageHealth::new(),
            keys,
            dead,
            stamp: None,
            stopping: false,
        };
        let shared = Arc::new(Shared {
            path,
            store: RwLock::new(Some(Arc::new(store))),
            config,
            state: Mutex::new(state),
            work: Condvar::new(),
            reports: watch::channel(FlushReport::default()).0,
            storage: watch::channel(StorageState::Ok).0,
        });
        let flusher = std::thread::Builder::new()
            .name("outbox-flusher".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || shared.run_flusher()
            })
            .map_err(OutboxError::Spawn)?;
        let inner = Inner {
            shared,
            flusher: Some(flusher),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Numbers the record, stores it and returns once it is on disk. If the disk budget is
    /// reached, the oldest telemetry and health records make room; if that is not enough, nothing
    /// is written and the error is [`OutboxError::Full`].
    ///
    /// If the future is dropped before it completes, the record may or may not be kept.
    pub async fn accept(&self, ts: TimestampMs, body: RecordBody) -> Result<Accepted, OutboxError> {
        if body.kind() == RecordKind::Gap {
            return Err(OutboxError::ReservedKind(RecordKind::Gap));
        }
        let shared = &self.inner.shared;
        let (seq, epoch) = match shared.write_record(ts, body, None)? {
            Written::New { seq, epoch } => (seq, epoch),
            // Only a keyed write can be a repeat.
            Written::Repeat(seq) => return Ok(Accepted { seq }),
        };
        commit::wait_durable(shared.reports.subscribe(), epoch)
            .await
            .map_err(|error| shared.explain(error))?;
        Ok(Accepted { seq })
    }

    /// [`Self::accept`] once per idempotency key: the first request with `key` stores the record,
    /// and a repeat of it gets the same record back, once that is durable, without storing
    /// anything. A key already used for a different record is refused
    /// ([`OutboxError::KeyReused`]). The key is written before the record and flushed with it, so
    /// it survives whatever the record survives.
    pub async fn accept_once(
        &self,
        key: &IdempotencyKey,
        ts: TimestampMs,
        body: RecordBody,
    ) -> Result<Once, OutboxError> {
        if body.kind() == RecordKind::Gap {
            return Err(OutboxError::ReservedKind(RecordKind::Gap));
        }
        let print = idempotency::fingerprint(&proto::encode_value(&body)?);
        let shared = &self.inner.shared;
        match shared.write_record(ts, body, Some((key, print)))? {
            Written::New { seq, epoch } => {
                commit::wait_durable(shared.reports.subscribe(), epoch)
                    .await
                    .map_err(|error| shared.explain(error))?;
                Ok(Once::Stored(Accepted { seq }))
            }
            Written::Repeat(seq) => {
                // The first request may still be waiting for its flush: answer once it is done.
                self.sync().await?;
                Ok(Once::Repeated(Accepted { seq }))
            }
        }
    }

    /// The record an earlier request with `key` stored, once durable; `None` if the key is new (or
    /// forgotten). For checks that a repeat must skip (the job was cancelled since, say).
    pub async fn recall(&self, key: &IdempotencyKey) -> Result<Option<Accepted>, OutboxError> {
        let Some(seq) = self.inner.shared.lock()?.keys.recall(key) else {
            return Ok(None);
        };
        self.sync().await?;
        Ok(Some(Accepted { seq }))
    }

    /// The next records to publish, at most `limits`: the priority lane before the bulk lane,
    /// never-sent records before overdue ones, each in sequence order. Records in flight whose
    /// ack is not yet due (see [`OutboxConfig::resend_after`]) are left out; so are records not yet
    /// on disk. Call [`Self::mark_sent`] once they are published.
    pub fn next_batch(
        &self,
        now: Instant,
        limits: BatchLimits,
    ) -> Result<Vec<Record>, OutboxError> {
        let shared = &self.inner.shared;
        let seqs = {
            let mut state = shared.lock()?;
            let State {
                index,
                commit,
                open_gap,
                ..
            } = &mut *state;
            let seqs = index.select(now, limits, |epoch| commit.is_durable(epoch));
            // Once the gateway may have a gap record, it must not change: stop growing it.
            if open_gap.as_ref().is_some_and(|gap| seqs.contains(&gap.seq)) {
                *open_gap = None;
            }
            seqs
        };
        // Read outside the lock; a record acked or dropped meanwhile is simply left out. While the
        // database is being reopened there is nothing to read: the index is rebuilt after.
        let Some(store) = shared.current_store()? else {
            return Ok(Vec::new());
        };
        let mut batch = Vec::with_capacity(seqs.len());
        for seq in seqs {
            match store.read(seq) {
                Ok(record) => batch.extend(record),
                Err(error) => return Err(shared.fail_with(error)),
            }
        }
        Ok(batch)
    }

    /// Notes that the records numbered `seqs` were published at `now`: they are not offered again
    /// until [`OutboxConfig::resend_after`] has passed without an ack covering them.
    pub fn mark_sent(&self, seqs: &[u64], now: Instant) -> Result<(), OutboxError> {
        let shared = &self.inner.shared;
        // A timeout beyond the clock's range cannot be honoured; resending soon is the safe side.
        let deadline = now.checked_add(shared.config.resend_after).unwrap_or(now);
        let mut state = shared.lock()?;
        for &seq in seqs {
            state.index.mark_sent(seq, deadline);
        }
        if state
            .open_gap
            .as_ref()
            .is_some_and(|gap| seqs.contains(&gap.seq))
        {
            state.open_gap = None;
        }
        Ok(())
    }

    /// Makes every unacked record eligible again, in priority order. Call after a reconnect: the
    /// MQTT client dropped whatever it had not delivered, and the gateway may have any of it.
    pub fn reset_in_flight(&self) -> Result<(), OutboxError> {
        self.inner.shared.lock()?.index.reset_in_flight();
        Ok(())
    }

    /// Applies the gateway's cumulative ack: deletes every record numbered `thru` or lower and
    /// persists the watermark, returning once that is on disk. An old or repeated ack does nothing.
    pub async fn ack(&self, thru: u64) -> Result<Acked, OutboxError> {
        self.ack_refusing(thru, &[], 0).await
    }

    /// [`Self::ack`] for an ack that names records the gateway refused: each refused record it
    /// covers that the outbox still holds is first kept in the dead-letter list, with its reason
    /// and `now` (device clock), then deleted with the rest. Refusals beyond `thru`, or of records
    /// already gone, change nothing. Beyond [`MAX_DEAD_LETTERS`] the oldest letters are dropped,
    /// each with a WARN, and counted.
    pub async fn ack_refusing(
        &self,
        thru: u64,
        refused: &[Refusal],
        now: TimestampMs,
    ) -> Result<Acked, OutboxError> {
        let shared = &self.inner.shared;
        let (acked, epoch) = shared.write_ack(thru, refused, now)?;
        if let Some(epoch) = epoch {
            commit::wait_durable(shared.reports.subscribe(), epoch)
                .await
                .map_err(|error| shared.explain(error))?;
        }
        Ok(acked)
    }

    /// Opens (or creates) the tree `name` in the outbox's database, for state the agent keeps beside
    /// its records (jobs, configuration). One database means one page cache and one flush: writes
    /// to the tree become durable with the outbox's next flush, which [`Self::sync`] waits for.
    ///
    /// After the storage recovers from a failure the database is a new one: take the tree afresh
    /// for each use rather than keeping it (a kept tree would also keep the failed database open).
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, OutboxError> {
        let shared = &self.inner.shared;
        match shared.current_store()? {
            Some(store) => store.open_tree(name),
            None => Err(shared.down_error()),
        }
    }

    /// Returns once every write made so far, to the outbox or to a tree from [`Self::open_tree`],
    /// is on disk. Shares its flush with concurrent writers (group commit).
    pub async fn sync(&self) -> Result<(), OutboxError> {
        let shared = &self.inner.shared;
        let joined = {
            let mut state = shared.lock()?;
            if let Some(fault) = state.storage.fault() {
                return Err(OutboxError::StorageDown(fault.clone()));
            }
            state.commit.join()
        };
        if joined.wake_flusher {
            shared.work.notify_one();
        }
        commit::wait_durable(shared.reports.subscribe(), joined.epoch)
            .await
            .map_err(|error| shared.explain(error))
    }

    /// The dead-letter list: its size, evictions and newest `newest` letters (newest first).
    pub fn dead_letters(&self, newest: usize) -> Result<DeadLetters, OutboxError> {
        let shared = &self.inner.shared;
        let tally = shared.lock()?.dead;
        let Some(store) = shared.current_store()? else {
            return Err(shared.down_error());
        };
        let newest = store
            .newest_dead(newest)
            .map_err(|error| shared.fail_with(error))?
            .into_iter()
            .filter_map(|(seq, value)| dead_letter::decode(seq, &value))
            .collect();
        Ok(DeadLetters {
            count: tally.count,
            evicted: tally.evicted,
            newest,
        })
    }

    /// Stamps every record accepted from now on with `stamp`'s boot and its monotonic time at
    /// acceptance (see [`crate::stamp`]). Gap records, which only account for numbers, are not
    /// stamped.
    pub fn stamp_records(&self, stamp: Stamp) -> Result<(), OutboxError> {
        self.inner.shared.lock()?.stamp = Some(stamp);
        Ok(())
    }

    /// The storage's state as it changes: [`StorageState::Down`] on a write failure, back to
    /// [`StorageState::Ok`] once the database has been reopened.
    pub fn storage_changes(&self) -> watch::Receiver<StorageState> {
        self.inner.shared.storage.subscribe()
    }

    /// Depth, size, age and watermarks.
    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let shared = &self.inner.shared;
        let state = shared.lock()?;
        let (storage_faults, storage_recoveries) = state.storage.counts();
        Ok(OutboxStats {
            depth: state.index.len() as u64,
            priority_depth: state.index.priority_len() as u64,
            bytes: state.index.bytes(),
            budget_bytes: shared.config.budget_bytes,
            in_flight: state.index.in_flight() as u64,
            oldest_unsent_ts: state.index.oldest_unsent_ts(),
            acked_through: state.sequence.acked_through(),
            next_seq: state.sequence.next(),
            flushes: state.commit.flushes(),
            storage: state.storage.state().clone(),
            storage_faults,
            storage_recoveries,
            dead_letters: state.dead.count,
            dead_letters_evicted: state.dead.evicted,
        })
    }
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, State>, OutboxError> {
        self.state.lock().map_err(|_| OutboxError::Poisoned)
    }

    /// Writes a record (and the room made for it) to sled; returns its number and the epoch to
    /// wait for.
    fn write_record(
        &self,
        ts: TimestampMs,
        body: RecordBody,
        key: Option<(&IdempotencyKey, Fingerprint)>,
    ) -> Result<Written, OutboxError> {
        let mut state = self.lock()?;
        if let Some(fault) = state.storage.refuse() {
            return Err(OutboxError::StorageDown(fault));
        }
        if let Some((key, print)) = key {
            match state.keys.lookup(key, print) {
                Lookup::New => {}
                Lookup::Repeat(seq) => return Ok(Written::Repeat(seq)),
                Lookup::Reused => return Err(OutboxError::KeyReused(key.as_str().to_owned())),
            }
        }
        let Some(store) = self.current_store()? else {
            return Err(self.down_error());
        };
        let planned = state.plan(ts, body, self.config.budget_bytes)?;
        let joined = state.commit.join();
        let written = self
            .write_keyed(&store, &mut state, planned, joined.epoch, key)
            .map_err(|error| self.fail(&mut state, error));
        drop(state);
        // Even after a failed write: the flusher must learn of the epoch it was told about.
        if joined.wake_flusher {
            self.work.notify_one();
        }
        written.map(|seq| Written::New {
            seq,
            epoch: joined.epoch,
        })
    }

    /// The key first (so that no crash keeps the record without it), then the record, then the
    /// keys it pushes out of memory.
    fn write_keyed(
        &self,
        store: &Store,
        state: &mut State,
        planned: Planned,
        epoch: Epoch,
        key: Option<(&IdempotencyKey, Fingerprint)>,
    ) -> Result<u64, OutboxError> {
        let Some((key, fingerprint)) = key else {
            return self.write_planned(store, state, planned, epoch);
        };
        // Aged by the device's clock when first used, not by the record's own time (the app's).
        let now = wall_clock_ms();
        let remembered = Remembered {
            seq: planned.seq,
            at: now,
            fingerprint,
        };
        store.put_key(key, &remembered)?;
        let seq = self.write_planned(store, state, planned, epoch)?;
        for forgotten in state.keys.insert(key.clone(), remembered, now) {
            store.remove_key(&forgotten)?;
        }
        Ok(seq)
    }

    /// Writes in crash-safe order: the record, then the gap records reporting the drops, then the
    /// drops. Memory follows each write, so a failure midway leaves the two in agreement.
    fn write_planned(
        &self,
        store: &Store,
        state: &mut State,
        mut planned: Planned,
        epoch: Epoch,
    ) -> Result<u64, OutboxError> {
        put(
            store,
            state,
            planned.seq,
            planned.held,
            &planned.encoded,
            epoch,
        )?;
        for gap in &planned.room.gaps {
            put(store, state, gap.seq, gap_held(gap), &gap.encoded, epoch)?;
        }
        for &seq in &planned.room.drops {
            store.remove(seq)?;
            state.index.remove(seq);
        }
        if !planned.room.drops.is_empty() {
            tracing::info!(
                dropped = planned.room.drops.len(),
                "outbox at its disk budget: dropped the oldest telemetry"
            );
        }
        if let Some(newest) = planned.room.gaps.pop() {
            state.open_gap = Some(newest);
        }
        Ok(planned.seq)
    }

    /// Applies an ack in memory and in sled; returns what it did and, if it wrote anything, the
    /// epoch to wait for.
    fn write_ack(
        &self,
        thru: u64,
        refused: &[Refusal],
        now: TimestampMs,
    ) -> Result<(Acked, Option<Epoch>), OutboxError> {
        let mut state = self.lock()?;
        if let Some(fault) = state.storage.fault() {
            return Err(OutboxError::StorageDown(fault.clone()));
        }
        if state.sequence.judge_ack(thru)? == AckEffect::Stale {
            let acked_through = state.sequence.acked_through();
            let nothing = Acked {
                acked_through,
                removed: 0,
                dead_lettered: 0,
            };
            return Ok((nothing, None));
        }
        let Some(store) = self.current_store()? else {
            return Err(self.down_error());
        };
        let joined = state.commit.join();
        let written = self
            .dead_letter(&store, &mut state, thru, refused, now)
            .and_then(|dead_lettered| {
                let removed = self.delete_through(&store, &mut state, thru)?;
                Ok((removed, dead_lettered))
            })
            .map_err(|error| self.fail(&mut state, error));
        drop(state);
        if joined.wake_flusher {
            self.work.notify_one();
        }
        let (removed, dead_lettered) = written?;
        let acked = Acked {
            acked_through: thru,
            removed,
            dead_lettered,
        };
        Ok((acked, Some(joined.epoch)))
    }

    /// Copies the records of `refused` that the ack through `thru` is about to delete to the
    /// dead-letter list, then evicts its oldest letters beyond the bound. Returns how many records
    /// were copied.
    fn dead_letter(
        &self,
        store: &Store,
        state: &mut State,
        thru: u64,
        refused: &[Refusal],
        now: TimestampMs,
    ) -> Result<usize, OutboxError> {
        let acked_through = state.sequence.acked_through();
        let mut kept = 0;
        for refusal in refused {
            if refusal.seq <= acked_through || refusal.seq > thru {
                continue;
            }
            let Some(record) = store.read_raw(refusal.seq)? else {
                continue;
            };
            let value = dead_letter::encode(now, &refusal.why, &record);
            if store.put_dead(refusal.seq, &value)? {
                state.dead.count += 1;
            }
            kept += 1;
            tracing::warn!(
                seq = refusal.seq,
                why = %refusal.why,
                "the gateway refused a record: kept in the dead-letter list"
            );
        }
        let excess = state.dead.excess();
        if excess > 0 {
            let excess = usize::try_from(excess).unwrap_or(usize::MAX);
            for (seq, value) in store.oldest_dead(excess)? {
                state.dead.evicted += 1;
                store.evict_dead(seq, state.dead.evicted)?;
                state.dead.count = state.dead.count.saturating_sub(1);
                let why = dead_letter::decode(seq, &value).map(|letter| letter.why);
                tracing::warn!(
                    seq,
                    why = why.as_deref().unwrap_or("unreadable"),
                    evicted = state.dead.evicted,
                    limit = MAX_DEAD_LETTERS,
                    "dead-letter list full: dropped its oldest letter"
                );
            }
        }
        Ok(kept)
    }

    /// The watermark first: if a crash cuts the deletions short, opening finishes them.
    fn delete_through(
        &self,
        store: &Store,
        state: &mut State,
        thru: u64,
    ) -> Result<usize, OutboxError> {
        store.set_acked_through(thru)?;
        state.sequence.advance_ack(thru);
        let acked = state.index.seqs_through(thru);
        for &seq in &acked {
            store.remove(seq)?;
            state.index.remove(seq);
        }
        if state.open_gap.as_ref().is_some_and(|gap| gap.seq <= thru) {
            state.open_gap = None;
        }
        Ok(acked.len())
    }

    /// The flusher thread: flushes while there are writes waiting, reopens the database while
    /// its storage is down, sleeps otherwise, and exits once the outbox closes and nothing is
    /// pending.
    fn run_flusher(&self) {
        let _report_exit = ReportStopOnExit(&self.reports);
        loop {
            match self.next_work() {
                Work::Flush { epoch, next_seq } => self.flush(epoch, next_seq),
                Work::Recover => self.try_recover(),
                Work::Stop => return,
            }
        }
    }

    fn flush(&self, epoch: Epoch, next_seq: u64) {
        let result = match self.current_store() {
            Ok(Some(store)) => store.commit(next_seq),
            _ => Err(std::io::Error::other(
                "the outbox's database is being reopened",
            )),
        };
        if let Ok(mut state) = self.state.lock() {
            state.commit.finish_flush(epoch, result.is_ok());
            if let Err(error) = &result {
                self.mark_down(&mut state, StorageFault::of(error, wall_clock_ms()));
            }
        }
        self.reports
            .send_modify(|report| report.record(epoch, result));
    }

    /// Waits for work: an epoch to flush (with the next sequence number to persist with it), a
    /// retry of a down storage, or the end.
    fn next_work(&self) -> Work {
        let Ok(mut state) = self.state.lock() else {
            return Work::Stop;
        };
        loop {
            if let Some(epoch) = state.commit.begin_flush() {
                if let Some(fault) = state.storage.fault() {
                    // Down: sled would refuse the flush anyway; tell its writers without I/O.
                    let error = std::io::Error::other(fault.error.clone());
                    state.commit.finish_flush(epoch, false);
                    self.reports
                        .send_modify(|report| report.record(epoch, Err(error)));
                    continue;
                }
                // Every record below `next` was written before this point, so persisting it
                // with this flush can never make a restart skip a number.
                return Work::Flush {
                    epoch,
                    next_seq: state.sequence.next(),
                };
            }
            if state.stopping {
                return Work::Stop;
            }
            if state.storage.fault().is_none() {
                state = match self.work.wait(state) {
                    Ok(state) => state,
                    Err(_) => return Work::Stop,
                };
                continue;
            }
            if let Some(refused) = state.storage.summary_due(Instant::now()) {
                tracing::warn!(
                    refused,
                    "outbox storage still down: records refused in the last minute"
                );
            }
            let (guard, waited) = match self.work.wait_timeout(state, RECOVERY_RETRY) {
                Ok(woken) => woken,
                Err(_) => return Work::Stop,
            };
            state = guard;
            if waited.timed_out() && !state.stopping && state.storage.fault().is_some() {
                return Work::Recover;
            }
        }
    }

    /// Reopens the database if the file system has room again: sled's copy of the failure is
    /// dropped with the old handle, records whose writers were told they failed are discarded,
    /// and the index and numbering are rebuilt from what is durable, as on a restart.
    fn try_recover(&self) {
        match fs2::available_space(&self.path) {
            Ok(free) if free < MIN_FREE_TO_REOPEN => return,
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "cannot measure free disk; reopening anyway"),
        }
        let undurable = match self.state.lock() {
            Ok(state) => state
                .index
                .undurable(|epoch| state.commit.is_durable(epoch)),
            Err(_) => return,
        };
        // Let go of the failed database, and so of its lock on the directory, before reopening.
        match self.store.write() {
            Ok(mut slot) => *slot = None,
            Err(_) => return,
        }
        let (store, recovery, keys) = match load(&self.path, &self.config, &undurable) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::debug!(%error, "outbox storage still down; retrying");
                return;
            }
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.index = index_of(&recovery);
        state.sequence = recovery.sequence;
        state.open_gap = None;
        state.keys = keys;
        match tally_of(&store) {
            Ok(dead) => state.dead = dead,
            Err(error) => tracing::warn!(%error, "cannot count the dead-letter list"),
        }
        match self.store.write() {
            Ok(mut slot) => *slot = Some(Arc::new(store)),
            Err(_) => return,
        }
        if let Some(Transition::Recovered { refused }) = state.storage.recover() {
            tracing::info!(
                refused,
                discarded = undurable.len(),
                depth = state.index.len(),
                next_seq = state.sequence.next(),
                "outbox storage recovered: storing records again"
            );
        }
        self.storage.send_replace(StorageState::Ok);
    }

    /// The current database, or `None` while it is being reopened.
    fn current_store(&self) -> Result<Option<Arc<Store>>, OutboxError> {
        let slot = self.store.read().map_err(|_| OutboxError::Poisoned)?;
        Ok(slot.as_ref().map(Arc::clone))
    }

    /// The error for a write refused while the storage is down.
    fn down_error(&self) -> OutboxError {
        match &*self.storage.borrow() {
            StorageState::Down(fault) => OutboxError::StorageDown(fault.clone()),
            StorageState::Ok => OutboxError::FlusherStopped,
        }
    }

    /// `error`, or the storage fault it caused when it was one: a writer whose flush failed is
    /// told that the disk is full rather than how sled said so.
    fn explain(&self, error: OutboxError) -> OutboxError {
        match (&error, &*self.storage.borrow()) {
            (OutboxError::Flush(_), StorageState::Down(fault)) => {
                OutboxError::StorageDown(fault.clone())
            }
            _ => error,
        }
    }

    /// [`Self::fail`], taking the state lock.
    fn fail_with(&self, error: OutboxError) -> OutboxError {
        match self.lock() {
            Ok(mut state) => self.fail(&mut state, error),
            Err(poisoned) => poisoned,
        }
    }

    /// Takes the storage down if `error` is a storage failure; returns what to tell the caller.
    fn fail(&self, state: &mut State, error: OutboxError) -> OutboxError {
        let fault = match &error {
            OutboxError::Storage(sled::Error::Io(io)) => StorageFault::of(io, wall_clock_ms()),
            OutboxError::Storage(other) => StorageFault {
                disk_full: false,
                error: other.to_string(),
                since: wall_clock_ms(),
            },
            OutboxError::Flush(io) => StorageFault::of(io, wall_clock_ms()),
            _ => return error,
        };
        OutboxError::StorageDown(self.mark_down(state, fault))
    }

    /// Takes the storage down (once per outage, logged once); returns the outage's fault.
    fn mark_down(&self, state: &mut State, fault: StorageFault) -> StorageFault {
        if let Some(Transition::WentDown(fault)) = state.storage.fail(fault.clone(), Instant::now())
        {
            tracing::error!(
                disk_full = fault.disk_full,
                error = %fault.error,
                "outbox storage down: refusing records until it is reopened"
            );
            self.storage.send_replace(StorageState::Down(fault));
        }
        state.storage.fault().cloned().unwrap_or(fault)
    }
}

/// Writes one record and notes it in memory.
fn put(
    store: &Store,
    state: &mut State,
    seq: u64,
    held: Held,
    encoded: &[u8],
    epoch: Epoch,
) -> Result<(), OutboxError> {
    store.put(seq, encoded)?;
    state.index.put(seq, held, epoch);
    state.sequence.mark_written(seq);
    Ok(())
}

impl State {
    /// Numbers, checks and encodes a record, and plans room for it. Changes nothing.
    fn plan(
        &self,
        ts: TimestampMs,
        body: RecordBody,
        budget_bytes: u64,
    ) -> Result<Planned, OutboxError> {
        let mut numbers = self.sequence;
        let record = Record {
            seq: numbers.issue()?,
            ts,
            body,
            boot: self.stamp.as_ref().map(|stamp| stamp.boot),
            mono: self
                .stamp
                .as_ref()
                .map(|stamp| stamp.mono_at(Instant::now())),
        };
        record.validate()?;
        let encoded = proto::encode_value(&record)?;
        if encoded.len() > MAX_RECORD_BYTES {
            return Err(OutboxError::RecordTooLarge {
                size: encoded.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        let held = Held {
            lane: Lane::of(record.body.kind()),
            bytes: encoded.len() as u64,
            ts,
        };
        let budget = Budget {
            limit: budget_bytes,
            held: self.index.bytes(),
        };
        let room = budget::make_room(
            budget,
            held.bytes,
            self.index.droppable_oldest_first(),
            self.open_gap.as_ref(),
            &mut numbers,
            ts,
        )?;
        Ok(Planned {
            seq: record.seq,
            held,
            encoded,
            room,
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopping = true;
        self.shared.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            if flusher.join().is_err() {
                tracing::error!("the outbox flusher thread panicked");
            }
        }
    }
}

/// Tells waiting writers that the flusher has gone, however it exits (even by a panic), so that
/// none waits for ever.
struct ReportStopOnExit<'a>(&'a watch::Sender<FlushReport>);

impl Drop for ReportStopOnExit<'_> {
    fn drop(&mut self) {
        self.0.send_modify(FlushReport::stop);
    }
}

/// Opens the database in `path` and decides and writes its repairs. `discard` lists records whose
/// writers were told their write failed: if sled kept any, they are deleted, so that nothing the
/// app was refused reaches the gateway. Idempotency keys whose record is gone unacked are
/// forgotten, so that a retry stores it.
fn load(
    path: &Path,
    config: &OutboxConfig,
    discard: &[u64],
) -> Result<(Store, Recovery, Keys), OutboxError> {
    let store = Store::open(path, config.cache_bytes)?;
    let mut stored = store.load()?;
    let discard: BTreeSet<u64> = discard.iter().copied().collect();
    let mut discarded = Vec::new();
    stored.records.retain(|record| {
        let keep = !discard.contains(&record.seq);
        if !keep {
            discarded.push(record.seq);
        }
        keep
    });
    let now = wall_clock_ms();
    let mut recovery = recovery::recover(stored, now)?;
    recovery.deletions.extend(discarded);
    let mut keys = Keys::default();
    let mut forgotten = Vec::new();
    for (key, remembered) in store.load_keys()? {
        forgotten.extend(keys.insert(key, remembered, now));
    }
    let kept: BTreeSet<u64> = recovery.kept.iter().map(|record| record.seq).collect();
    let orphans = keys.orphans(recovery.sequence.acked_through(), |seq| kept.contains(&seq));
    for key in &orphans {
        keys.remove(key);
    }
    forgotten.extend(orphans);
    for key in &forgotten {
        store.remove_key(key)?;
    }
    repair(&store, &recovery)?;
    Ok((store, recovery, keys))
}

/// The dead-letter list's size and evictions, as stored.
fn tally_of(store: &Store) -> Result<Tally, OutboxError> {
    let (count, evicted) = store.dead_tally()?;
    Ok(Tally { count, evicted })
}

/// Writes the repairs [`recovery::recover`] decided: gap records first, then deletions (the
/// crash-safe order), then a flush.
fn repair(store: &Store, recovery: &Recovery) -> Result<(), OutboxError> {
    if recovery.repair_gaps.is_empty() && recovery.deletions.is_empty() {
        return Ok(());
    }
    for gap in &recovery.repair_gaps {
        tracing::warn!(
            from = gap.gap.from,
            to = gap.gap.to,
            "records lost before a restart; reporting them as a gap"
        );
        store.put(gap.seq, &gap.encoded)?;
    }
    for &seq in &recovery.deletions {
        store.remove(seq)?;
    }
    store
        .commit(recovery.sequence.next())
        .map_err(|error| OutboxError::Flush(Arc::new(error)))
}

/// The index of what [`recovery::recover`] kept; everything in it is already durable (epoch 0).
fn index_of(recovery: &Recovery) -> Index {
    let mut index = Index::default();
    for record in &recovery.kept {
        let held = Held {
            lane: Lane::of(record.kind),
            bytes: record.bytes,
            ts: record.ts,
        };
        index.put(record.seq, held, 0);
    }
    for gap in &recovery.repair_gaps {
        index.put(gap.seq, gap_held(gap), 0);
    }
    index
}

/// What the index needs to know about a gap record.
fn gap_held(gap: &GapRecord) -> Held {
    Held {
        lane: Lane::of(RecordKind::Gap),
        bytes: gap.bytes(),
        ts: gap.ts,
    }
}

/// The device's wall clock, to date repair gaps: the one timestamp the outbox makes itself.
fn wall_clock_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            TimestampMs::try_from(since.as_millis()).unwrap_or(TimestampMs::MAX)
        })
}
