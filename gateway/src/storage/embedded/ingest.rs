//! [`SledStore`]: the ingest's [`Store`] on sled. One tree of records, evidence, anchors,
//! progress and registry entries under prefixed keys ([`super::keys`]), so one batch updates
//! them atomically, and the quarantine's trees ([`super::quarantine`]).

use std::collections::HashMap;
use std::path::Path;

use proto::{DeviceId, Record, RecordBody, Refusal, State, TimestampMs};

use super::keys::{self, DEVICE, PROGRESS, RUN};
use super::quarantine::Quarantine;
use super::{decode_stored, migrate, open_db, MAX_VALUE_BYTES};
use crate::progress::SeqRanges;
use crate::record_time::{self, RecordClock, TimeBasis};
use crate::storage::ingest::{
    BatchOutcome, DeviceInfo, IncomingBatch, Store, StoreSettings, StoredRecord,
};
use crate::storage::quarantine::{QuarantineEntry, QuarantineUsage, Refused};
use crate::storage::StoreError;

/// The ingest's store on sled: one tree of records, evidence, anchors, progress and registry
/// entries under prefixed keys (so one batch updates them atomically), and the quarantine's.
pub struct SledStore {
    db: sled::Db,
    main: sled::Tree,
    quarantine: Quarantine,
    max_clock_skew_ms: i64,
    /// Serialises read-modify-write of progress: sled batches are atomic but not conditional.
    write_lock: std::sync::Mutex<()>,
}

/// The most boots' anchors kept per device: boots further below its newest are forgotten, and
/// their records placed as if never anchored. Bounds what a device sending ever new boots costs.
const MAX_ANCHORED_BOOTS: u64 = 64;

impl SledStore {
    /// Opens (or creates) the store in `dir`, with a page cache of `cache_bytes` and default
    /// settings otherwise: the ingest's store alone, as tools and tests use it (the gateway
    /// opens every store at once with [`crate::storage::Storage::open_embedded`]).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(
            dir,
            StoreSettings {
                cache_bytes,
                ..StoreSettings::default()
            },
        )
    }

    /// Opens (or creates) the store in `dir`, migrating an older format (see [`migrate`]).
    pub fn open_with(dir: &Path, settings: StoreSettings) -> Result<Self, StoreError> {
        Self::on(open_db(dir, settings.cache_bytes)?, settings)
    }

    /// The ingest's store in an open database, migrated to the current format.
    pub(super) fn on(db: sled::Db, settings: StoreSettings) -> Result<Self, StoreError> {
        let main = db.open_tree("ingest")?;
        let quarantine = Quarantine::open(&db, settings.quarantine)?;
        migrate::migrate(&db, &main, &quarantine)?;
        Ok(Self {
            db,
            main,
            quarantine,
            max_clock_skew_ms: settings.max_clock_skew_ms,
            write_lock: std::sync::Mutex::new(()),
        })
    }

    /// The database this store is in, for the other stores that share its directory and flush.
    pub(super) fn db(&self) -> &sled::Db {
        &self.db
    }

    fn get_value<T: serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        tree.get(key)?
            .map(|bytes| decode_stored(key, &bytes))
            .transpose()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic elsewhere while holding the lock leaves no partial state (batches are atomic).
        self.write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The run of `device`'s records holding `seq`, as `(first, last)`, if one does.
    fn run_holding(&self, device: &DeviceId, seq: u64) -> Result<Option<(u64, u64)>, StoreError> {
        run_holding(&self.main, device, seq)
    }

    /// The records of `device`'s run `first..=last` (none if it is not stored).
    fn run(
        &self,
        device: &DeviceId,
        first: u64,
        last: u64,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        Ok(self
            .get_value(&self.main, &keys::run_key(RUN, device, first, last))?
            .unwrap_or_default())
    }

    /// A boot's anchor as stored.
    fn stored_anchor(&self, device: &DeviceId, boot: u64) -> Result<Option<i64>, StoreError> {
        self.get_value(&self.main, &keys::anchor_key(device, boot))
    }

    /// Whether a new boot's anchor is worth keeping, and which older ones to forget: only the
    /// newest [`MAX_ANCHORED_BOOTS`] boots of a device keep theirs.
    fn admit_boot(
        &self,
        device: &DeviceId,
        boot: u64,
        writes: &mut sled::Batch,
    ) -> Result<bool, StoreError> {
        let prefix = keys::anchor_key(device, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut boots = Vec::new();
        for item in self.main.scan_prefix(prefix) {
            let (key, _) = item?;
            let tail: Option<[u8; 8]> = key.get(prefix.len()..).and_then(|t| t.try_into().ok());
            if let Some(tail) = tail {
                boots.push(u64::from_be_bytes(tail));
            }
        }
        let newest = boots.iter().copied().max().unwrap_or(boot).max(boot);
        let floor = newest.saturating_sub(MAX_ANCHORED_BOOTS - 1);
        for old in boots.into_iter().filter(|b| *b < floor) {
            writes.remove(keys::anchor_key(device, old));
        }
        Ok(boot >= floor)
    }
}

/// One group's working state in [`SledStore::ingest`]: several batches from one device may be
/// in a group, so its progress, registry entry and anchors carry across them.
#[derive(Default)]
struct GroupState {
    progress: HashMap<DeviceId, SeqRanges>,
    devices: HashMap<DeviceId, DeviceInfo>,
    /// Anchors by (device, boot), as loaded or improved; `true` when changed.
    anchors: HashMap<(DeviceId, u64), (Option<i64>, bool)>,
    /// Records refused in this group (not yet readable from the refused tree's index).
    refusals: HashMap<(DeviceId, u64), String>,
    /// Whether the refused tree held anything when the group began: if not, no record needs
    /// looking up in it (the common case, kept off the hot path).
    stored_refusals: bool,
}

/// What one batch came to, as it is worked through.
#[derive(Default)]
struct BatchTally {
    stored: Vec<StoredRecord>,
    duplicates: usize,
    refused: Vec<Refusal>,
    newly_refused: usize,
}

impl SledStore {
    fn anchor(
        &self,
        group: &mut GroupState,
        device: &DeviceId,
        boot: u64,
    ) -> Result<Option<i64>, StoreError> {
        let key = (device.clone(), boot);
        if let Some((anchor, _)) = group.anchors.get(&key) {
            return Ok(*anchor);
        }
        let anchor = self.stored_anchor(device, boot)?;
        group.anchors.insert(key, (anchor, false));
        Ok(anchor)
    }

    /// Why `device`'s record `seq` was refused, if it was: in this group or before.
    fn known_refusal(
        &self,
        group: &GroupState,
        device: &DeviceId,
        seq: u64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(why) = group.refusals.get(&(device.clone(), seq)) {
            return Ok(Some(why.clone()));
        }
        if !group.stored_refusals {
            return Ok(None);
        }
        self.quarantine.refusal(device, seq)
    }

    /// Loads the device's progress and registry entry into the group, once per group.
    fn load_device(&self, group: &mut GroupState, device: &DeviceId) -> Result<(), StoreError> {
        if !group.progress.contains_key(device) {
            let held = self
                .get_value(&self.main, &keys::device_key(PROGRESS, device))?
                .unwrap_or_default();
            group.progress.insert(device.clone(), held);
        }
        if !group.devices.contains_key(device) {
            let info = self
                .get_value(&self.main, &keys::device_key(DEVICE, device))?
                .unwrap_or_default();
            group.devices.insert(device.clone(), info);
        }
        Ok(())
    }

    /// Lets the batch's own reading improve its boot's anchor, before its records are placed.
    fn improve_anchor(
        &self,
        group: &mut GroupState,
        writes: &mut sled::Batch,
        batch: &IncomingBatch,
    ) -> Result<(), StoreError> {
        let (Some(boot), Some(estimate)) =
            (batch.boot, record_time::anchor_estimate(&batch.clock()))
        else {
            return Ok(());
        };
        let known = self.anchor(group, &batch.device, boot)?;
        let better = record_time::better_anchor(known, Some(estimate));
        if better != known && (known.is_some() || self.admit_boot(&batch.device, boot, writes)?) {
            group
                .anchors
                .insert((batch.device.clone(), boot), (better, true));
        }
        Ok(())
    }

    /// Refuses record `seq` of `batch` for `why`: quarantined and counted in the progress the
    /// first time; answered with the first reason on every resend; never refused after it was
    /// stored good.
    fn refuse(
        &self,
        group: &mut GroupState,
        tally: &mut BatchTally,
        batch: &IncomingBatch,
        seq: u64,
        why: &str,
    ) -> Result<(), StoreError> {
        let device = &batch.device;
        let earlier = self.known_refusal(group, device, seq)?;
        let held = group.progress.entry(device.clone()).or_default();
        if let Some(earlier) = earlier {
            held.insert(seq);
            tally.refused.push(Refusal { seq, why: earlier });
            return Ok(());
        }
        if held.contains(seq) {
            // Stored before as a good record: a corrupted resend changes nothing.
            return Ok(());
        }
        held.insert(seq);
        // Fit for the wire (length, no control characters): reasons quote input.
        let refusal = Refusal::new(seq, why);
        let id = self.db.generate_id()?;
        let entry = self.quarantine.entry(
            id,
            &Refused {
                topic: &batch.topic,
                reason: &format!("record {seq}: {}", refusal.why),
                payload: &batch.payload,
                received: batch.received,
                record: Some((device, seq)),
            },
        );
        // Written before the batch's progress: if the process dies before the flush, a resend
        // finds the refusal here and answers the same.
        self.quarantine
            .insert(&entry, &refusal.why, batch.received)?;
        group
            .refusals
            .insert((device.clone(), seq), refusal.why.clone());
        tally.refused.push(refusal);
        tally.newly_refused += 1;
        Ok(())
    }

    /// Takes one decoded record of `batch`: refused, a duplicate, or placed in time and staged
    /// in `writes` (with its evidence copy if it is a crew's).
    fn take(
        &self,
        group: &mut GroupState,
        writes: &mut sled::Batch,
        tally: &mut BatchTally,
        batch: &IncomingBatch,
        record: &Record,
    ) -> Result<(), StoreError> {
        let (device, seq) = (&batch.device, record.seq);
        if self.known_refusal(group, device, seq)?.is_some() {
            // Never stored later as good, whatever a resend holds.
            return self.refuse(group, tally, batch, seq, "");
        }
        let held = group.progress.entry(device.clone()).or_default();
        let inserted = match &record.body {
            _ if held.contains(seq) => Ok(false),
            RecordBody::Gap(gap) => held.insert_gap(seq, gap.from, gap.to),
            _ => Ok(held.insert(seq)),
        };
        match inserted {
            Ok(true) => {}
            Ok(false) => {
                tally.duplicates += 1;
                return Ok(());
            }
            Err(e) => return self.refuse(group, tally, batch, seq, &e.to_string()),
        }
        let anchor = match record.boot {
            Some(boot) => self.anchor(group, device, boot)?,
            None => None,
        };
        let placed = record_time::place(
            &RecordClock {
                ts: record.ts,
                boot: record.boot,
                mono: record.mono,
            },
            &batch.clock(),
            anchor,
            self.max_clock_skew_ms,
        );
        let info = group.devices.entry(device.clone()).or_default();
        if let RecordBody::Health(health) = &record.body {
            info.health = Some(health.clone());
        }
        if placed.basis == TimeBasis::Uncorrected {
            info.uncorrected_times += 1;
        }
        let value = StoredRecord {
            received: batch.received,
            sent: batch.sent,
            record: record.clone(),
            placed: Some(placed),
        };
        if matches!(
            record.body,
            RecordBody::Collection(_) | RecordBody::RoundEvent(_) | RecordBody::JobUpdate(_)
        ) {
            writes.insert(
                keys::evidence_key(batch.received, device, seq),
                proto::encode_value(&value)?,
            );
        }
        tally.stored.push(value);
        Ok(())
    }

    /// Works one batch into the group and `writes`.
    fn ingest_batch(
        &self,
        group: &mut GroupState,
        writes: &mut sled::Batch,
        batch: &IncomingBatch,
    ) -> Result<BatchOutcome, StoreError> {
        let device = &batch.device;
        self.load_device(group, device)?;
        self.improve_anchor(group, writes, batch)?;
        let mut tally = BatchTally::default();
        for refusal in &batch.refused {
            self.refuse(group, &mut tally, batch, refusal.seq, &refusal.why)?;
        }
        for record in &batch.records {
            self.take(group, writes, &mut tally, batch, record)?;
        }
        for run in tally
            .stored
            .chunk_by(|a, b| a.record.seq.checked_add(1) == Some(b.record.seq))
        {
            put_run(writes, device, run)?;
        }
        let acked_through = group
            .progress
            .get(device)
            .map_or(0, SeqRanges::acked_through);
        let info = group.devices.entry(device.clone()).or_default();
        info.first_seen.get_or_insert(batch.received);
        info.last_seen = Some(batch.received);
        info.clock_skew_ms = Some(batch.sent.saturating_sub(batch.received));
        info.records += tally.stored.len() as u64;
        info.refused += tally.newly_refused as u64;
        Ok(BatchOutcome {
            device: device.clone(),
            stored: tally.stored,
            duplicates: tally.duplicates,
            refused: tally.refused,
            newly_refused: tally.newly_refused,
            acked_through,
            received: batch.received,
            sent: batch.sent,
            unknown_device: !info.provisioned,
        })
    }
}

impl SledStore {
    /// Writes a group of batches in one atomic write, not yet flushed.
    fn write_group(&self, batches: &[IncomingBatch]) -> Result<Vec<BatchOutcome>, StoreError> {
        let _guard = self.lock();
        let mut writes = sled::Batch::default();
        let mut group = GroupState {
            stored_refusals: self.quarantine.holds_refusals()?,
            ..GroupState::default()
        };
        let outcomes = batches
            .iter()
            .map(|batch| self.ingest_batch(&mut group, &mut writes, batch))
            .collect::<Result<Vec<_>, _>>()?;
        for (device, held) in &group.progress {
            writes.insert(
                keys::device_key(PROGRESS, device),
                proto::encode_value(held)?,
            );
        }
        for (device, info) in &group.devices {
            writes.insert(keys::device_key(DEVICE, device), proto::encode_value(info)?);
        }
        for ((device, boot), (anchor, changed)) in &group.anchors {
            if let (Some(anchor), true) = (anchor, changed) {
                writes.insert(
                    keys::anchor_key(device, *boot),
                    proto::encode_value(anchor)?,
                );
            }
        }
        self.main.apply_batch(writes)?;
        Ok(outcomes)
    }
}

impl Store for SledStore {
    fn ingest(&self, batches: &[IncomingBatch]) -> Result<Vec<BatchOutcome>, StoreError> {
        let outcomes = self.write_group(batches)?;
        self.db.flush()?;
        Ok(outcomes)
    }

    fn ingest_then(
        &self,
        batches: &[IncomingBatch],
        also: &mut dyn FnMut(&[BatchOutcome]),
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let outcomes = self.write_group(batches)?;
        // The write lock is released: `also` may read records back.
        also(&outcomes);
        // One flush for both: an fsync costs milliseconds, more than storing a group.
        self.db.flush()?;
        Ok(outcomes)
    }

    fn record_state(
        &self,
        device: &DeviceId,
        state: &State,
        received: TimestampMs,
    ) -> Result<(), StoreError> {
        let _guard = self.lock();
        let key = keys::device_key(DEVICE, device);
        let mut info: DeviceInfo = self.get_value(&self.main, &key)?.unwrap_or_default();
        info.online = Some(state.online);
        info.boot = Some(state.boot);
        info.first_seen.get_or_insert(received);
        info.last_seen = Some(received);
        self.main.insert(key, proto::encode_value(&info)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn quarantine(&self, refused: &[Refused<'_>]) -> Result<Vec<u64>, StoreError> {
        if refused.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = self.lock();
        let mut ids = Vec::with_capacity(refused.len());
        for item in refused {
            let id = self.db.generate_id()?;
            let entry = self.quarantine.entry(id, item);
            self.quarantine.insert(&entry, item.reason, item.received)?;
            ids.push(id);
        }
        self.db.flush()?;
        Ok(ids)
    }

    fn quarantined(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.quarantine.newest(limit, before)
    }

    fn quarantine_usage(&self) -> QuarantineUsage {
        self.quarantine.usage()
    }

    fn provision(&self, devices: &[DeviceId]) -> Result<(), StoreError> {
        let _guard = self.lock();
        for device in devices {
            let key = keys::device_key(DEVICE, device);
            let mut info: DeviceInfo = self.get_value(&self.main, &key)?.unwrap_or_default();
            if !info.provisioned {
                info.provisioned = true;
                self.main.insert(key, proto::encode_value(&info)?)?;
            }
        }
        self.db.flush()?;
        Ok(())
    }

    fn devices(&self) -> Result<Vec<(DeviceId, DeviceInfo, u64)>, StoreError> {
        let mut devices = Vec::new();
        for item in self.main.scan_prefix([DEVICE]) {
            let (key, value) = item?;
            let corrupt = |reason: String| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason,
            };
            let id = std::str::from_utf8(&key[1..])
                .map_err(|e| corrupt(e.to_string()))
                .and_then(|id| DeviceId::new(id).map_err(|e| corrupt(e.to_string())))?;
            let info: DeviceInfo = decode_stored(&key, &value)?;
            let held: SeqRanges = self
                .get_value(&self.main, &keys::device_key(PROGRESS, &id))?
                .unwrap_or_default();
            devices.push((id, info, held.acked_through()));
        }
        Ok(devices)
    }

    fn record(&self, device: &DeviceId, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        let Some((first, last)) = self.run_holding(device, seq)? else {
            return Ok(None);
        };
        let run = self.run(device, first, last)?;
        let at = usize::try_from(seq - first).unwrap_or(usize::MAX);
        Ok(run.into_iter().nth(at).filter(|s| s.record.seq == seq))
    }

    fn records(
        &self,
        device: &DeviceId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let first = self
            .run_holding(device, from)?
            .map_or(from, |(first, _)| first);
        let prefix = keys::run_prefix(RUN, device);
        let mut found = Vec::new();
        for item in self.main.range(keys::run_key(RUN, device, first, 0)..) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || found.len() >= limit {
                break;
            }
            let run: Vec<StoredRecord> = decode_stored(&key, &value)?;
            found.extend(run.into_iter().filter(|s| s.record.seq >= from));
        }
        found.truncate(limit);
        Ok(found)
    }

    fn record_count(&self, device: &DeviceId) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.main.scan_prefix(keys::run_prefix(RUN, device)) {
            let (key, _) = item?;
            let (_, first, last) = parse_run(RUN, &key)?;
            count += last - first + 1;
        }
        Ok(count)
    }

    fn unfed(&self, limit: usize) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        let mut found = Vec::new();
        for item in self.main.scan_prefix([keys::TO_FEED]) {
            if found.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let (device, first, last) = parse_run(keys::TO_FEED, &key)?;
            let run = self.run(&device, first, last)?;
            if run.is_empty() {
                // Nothing to feed: forget the mark.
                self.main.remove(key)?;
            }
            found.extend(
                run.into_iter()
                    .filter(|s| feeds_boilers(&s.record.body))
                    .map(|s| (device.clone(), s)),
            );
        }
        Ok(found)
    }

    fn fed(&self, records: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        let mut writes = sled::Batch::default();
        // Records come a run at a time: one lookup per run, not per record.
        let mut last_run: Option<(&DeviceId, u64, u64)> = None;
        for (device, seq) in records {
            if let Some((d, first, last)) = last_run {
                if d == device && (first..=last).contains(seq) {
                    continue;
                }
            }
            if let Some((first, last)) = self.run_holding(device, *seq)? {
                writes.remove(keys::run_key(keys::TO_FEED, device, first, last));
                last_run = Some((device, first, last));
            }
        }
        self.main.apply_batch(writes)?;
        Ok(())
    }

    fn evidence_since(
        &self,
        since: TimestampMs,
    ) -> Result<Vec<(DeviceId, StoredRecord)>, StoreError> {
        let start = keys::evidence_from(since);
        let mut found = Vec::new();
        for item in self.main.range(start..vec![keys::EVIDENCE + 1]) {
            let (key, value) = item?;
            let (device, _) =
                keys::parse_evidence_key(&key).ok_or_else(|| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: "not an evidence key".into(),
                })?;
            found.push((device, decode_stored(&key, &value)?));
        }
        Ok(found)
    }
}

/// Whether a record goes to the boiler desk (and its run is marked until it has).
pub(super) fn feeds_boilers(body: &RecordBody) -> bool {
    matches!(body, RecordBody::Telemetry(_) | RecordBody::Gap(_))
}

/// The run of `device`'s records in `main` holding `seq`, as `(first, last)`, if one does: the
/// last run starting at or below `seq` ([`keys`] says why).
pub(super) fn run_holding(
    main: &sled::Tree,
    device: &DeviceId,
    seq: u64,
) -> Result<Option<(u64, u64)>, StoreError> {
    let found = main
        .range(keys::run_prefix(RUN, device)..=keys::run_key(RUN, device, seq, u64::MAX))
        .next_back()
        .transpose()?;
    let Some((key, _)) = found else {
        return Ok(None);
    };
    let (_, first, last) = parse_run(RUN, &key)?;
    Ok((first..=last).contains(&seq).then_some((first, last)))
}

/// The device and sequences of a run key under `prefix`.
pub(super) fn parse_run(prefix: u8, key: &[u8]) -> Result<(DeviceId, u64, u64), StoreError> {
    keys::parse_run_key(prefix, key).ok_or_else(|| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "not a run key".into(),
    })
}

/// Writes `run` (consecutive sequences of one device, in order) as one value, marked for the
/// boilers when it holds telemetry or gaps. A run comes from one batch, itself within
/// [`proto::MAX_MESSAGE_BYTES`], so it fits a stored value; were it ever not to, it is split.
pub(super) fn put_run(
    writes: &mut sled::Batch,
    device: &DeviceId,
    run: &[StoredRecord],
) -> Result<(), StoreError> {
    let (Some(head), Some(tail)) = (run.first(), run.last()) else {
        return Ok(());
    };
    let value = proto::encode_value(&run)?;
    if value.len() > MAX_VALUE_BYTES && run.len() > 1 {
        let (a, b) = run.split_at(run.len() / 2);
        put_run(writes, device, a)?;
        return put_run(writes, device, b);
    }
    let (first, last) = (head.record.seq, tail.record.seq);
    if run.iter().any(|s| feeds_boilers(&s.record.body)) {
        writes.insert(keys::run_key(keys::TO_FEED, device, first, last), &[][..]);
    }
    writes.insert(keys::run_key(RUN, device, first, last), value);
    Ok(())
}
