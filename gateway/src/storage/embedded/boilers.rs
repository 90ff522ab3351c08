//! [`SledBoilerStore`]: the boiler domain's [`BoilerStore`] on sled.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `boiler_sample_hours` | len asset hour(8) | the hour's raw [`Sample`]s, in time order |
//! | `boiler_gaps` | len asset from(8) to(8) | a reported [`GapSpan`] |
//! | `boiler_hours` | len asset start(8) | an hour's [`Rollup`] |
//! | `boiler_days`, `boiler_months` | len asset start(8) | a local day's or month's [`Rollup`] |
//! | `boiler_periods` | `calendar` | the time zone the days and months follow, once built |
//! | `assets` | asset | an [`Asset`] on the register |
//! | `boiler_alerts` | asset | a boiler's [`BoilerAlerts`] |
//! | `boiler_alert_log` | len asset opened(8) kind | a closed [`Alert`] |
//!
//! Raw samples are kept an hour to a value (a hub's minute samples: 60 to a value), so that a
//! group of samples is a few writes rather than one per sample, and a day is 24 reads. Each
//! sample's asset id is left out of the stored hour (it is the key's) and put back when read.
//! Format 2 stores kept one sample per key in `boiler_samples`; they are gathered into hours
//! when opened.
//!
//! The asset id has a one-byte length before it, so one boiler's prefix holds no other's
//! (`B-1` and `B-10`), and times are big-endian with the sign bit flipped, so byte order is time
//! order: a time range of one boiler is one contiguous range scan.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use proto::TimestampMs;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{decode_stored, open_db};
use crate::boilers::periods::Level;
use crate::boilers::rollup::hour_of;
use crate::boilers::{Alert, Asset, BoilerAlerts, GapSpan, Rollup, Sample};
use crate::storage::{BoilerStore, StoreError};

/// Boiler telemetry, rollups, the register and alert state in sled.
#[derive(Debug, Clone)]
pub struct SledBoilerStore {
    db: sled::Db,
    /// Raw samples, an hour to a value.
    samples: sled::Tree,
    gaps: sled::Tree,
    hours: sled::Tree,
    days: sled::Tree,
    months: sled::Tree,
    /// The `calendar` key: see [`BoilerStore::periods_calendar`].
    periods: sled::Tree,
    /// `periods`' calendar, read once: every reader asks for it.
    calendar: Arc<RwLock<Option<String>>>,
    assets: sled::Tree,
    alerts: sled::Tree,
    alert_log: sled::Tree,
}

/// The key of [`SledBoilerStore::periods`] naming the calendar.
const CALENDAR: &[u8] = b"calendar";

/// `len asset`: one boiler's prefix in the keyed-by-time trees.
fn asset_prefix(asset: &str) -> Vec<u8> {
    let id = asset.as_bytes();
    // Registered asset ids are at most 64 bytes; the clamp keeps the length byte honest anyway.
    let id = &id[..id.len().min(usize::from(u8::MAX))];
    let mut key = Vec::with_capacity(1 + id.len() + 16);
    key.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(id);
    key
}

/// A time as 8 bytes whose order is the times' order, negative ones included.
fn time_bytes(at: TimestampMs) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

/// `len asset at(8)`.
fn timed_key(asset: &str, at: TimestampMs) -> Vec<u8> {
    let mut key = asset_prefix(asset);
    key.extend_from_slice(&time_bytes(at));
    key
}

/// The tree of raw samples, an hour to a value.
const SAMPLE_HOURS: &str = "boiler_sample_hours";
/// Format 2's tree of raw samples, one per key.
const OLD_SAMPLES: &str = "boiler_samples";

/// The asset id at the start of a key (after its length byte).
fn asset_of(key: &[u8]) -> Result<String, StoreError> {
    let len = key.first().map_or(0, |&len| usize::from(len));
    key.get(1..1 + len)
        .and_then(|id| std::str::from_utf8(id).ok())
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "not a boiler's key".into(),
        })
}

/// An hour's samples as stored: without their asset id (the key's), in time order; none if
/// the hour has none.
fn read_bare_hour(key: &[u8], value: Option<&[u8]>) -> Result<Vec<Sample>, StoreError> {
    value.map_or(Ok(Vec::new()), |value| decode_stored(key, value))
}

/// `sample` as an hour stores it: without its asset id.
fn bare(sample: &Sample) -> Sample {
    Sample {
        asset: String::new(),
        ..sample.clone()
    }
}

/// An hour's samples with their asset id put back.
fn read_hour(asset: &str, key: &[u8], value: Option<&[u8]>) -> Result<Vec<Sample>, StoreError> {
    let mut samples = read_bare_hour(key, value)?;
    for sample in &mut samples {
        sample.asset = asset.to_owned();
    }
    Ok(samples)
}

/// A transaction's failure, whose closure never aborts.
fn transaction_error(error: TransactionError<std::convert::Infallible>) -> StoreError {
    match error {
        TransactionError::Storage(error) => StoreError::from(error),
        TransactionError::Abort(never) => match never {},
    }
}

/// The first key after every key that starts with `prefix`.
fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    // Prefixes here start with a length byte below 0xff, so some byte can always be raised.
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            break;
        }
    }
    end
}

/// Drops, boiler by boiler, the keys of `tree` timed before `before_ms` that `drop` agrees to;
/// returns how many went. One seek per boiler plus one step per old key: the boilers are found
/// by skipping from one prefix to the next, not by reading every key.
fn purge_before(
    tree: &sled::Tree,
    before_ms: TimestampMs,
    drop: impl Fn(&[u8], &[u8]) -> Result<bool, StoreError>,
) -> Result<u64, StoreError> {
    let mut purged = 0;
    let mut cursor: Vec<u8> = Vec::new();
    while let Some(item) = tree.range(cursor.clone()..).next() {
        let (key, _) = item?;
        let len = key.first().map_or(0, |&len| usize::from(len));
        let prefix = key[..(1 + len).min(key.len())].to_vec();
        let mut end = prefix.clone();
        end.extend_from_slice(&time_bytes(before_ms));
        let mut batch = sled::Batch::default();
        for old in tree.range(prefix.clone()..end) {
            let (old_key, value) = old?;
            if drop(&old_key, &value)? {
                batch.remove(old_key);
                purged += 1;
            }
        }
        tree.apply_batch(batch)?;
        cursor = after_prefix(&prefix);
        if cursor.is_empty() {
            break;
        }
    }
    Ok(purged)
}

impl SledBoilerStore {
    /// Opens the boiler trees in `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let periods = db.open_tree("boiler_periods")?;
        let calendar = periods
            .get(CALENDAR)?
            .map(|value| String::from_utf8_lossy(&value).into_owned());
        let store = Self {
            db: db.clone(),
            samples: db.open_tree(SAMPLE_HOURS)?,
            gaps: db.open_tree("boiler_gaps")?,
            hours: db.open_tree("boiler_hours")?,
            days: db.open_tree("boiler_days")?,
            months: db.open_tree("boiler_months")?,
            periods,
            calendar: Arc::new(RwLock::new(calendar)),
            assets: db.open_tree("assets")?,
            alerts: db.open_tree("boiler_alerts")?,
            alert_log: db.open_tree("boiler_alert_log")?,
        };
        store.gather_old_samples()?;
        Ok(store)
    }

    /// Moves format 2's samples (one per key, in `boiler_samples`) into hours, a chunk at a time,
    /// each chunk one transaction over both trees, so a move cut short resumes at the next open.
    fn gather_old_samples(&self) -> Result<(), StoreError> {
        if !self
            .db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == OLD_SAMPLES.as_bytes())
        {
            return Ok(());
        }
        let old = self.db.open_tree(OLD_SAMPLES)?;
        let mut moved = 0_u64;
        loop {
            let mut chunk: Vec<(sled::IVec, String, Sample)> = Vec::new();
            for item in old.iter().take(1000) {
                let (key, value) = item?;
                let sample: Sample = decode_stored(&key, &value)?;
                let asset = asset_of(&key)?;
                chunk.push((key, asset, sample));
            }
            if chunk.is_empty() {
                break;
            }
            moved += chunk.len() as u64;
            let samples: Vec<(&str, &Sample)> =
                chunk.iter().map(|(_, a, s)| (a.as_str(), s)).collect();
            let put = self.merged_hours(&samples, |key| Ok(self.samples.get(key)?))?;
            let mut gone = sled::Batch::default();
            for (key, _, _) in &chunk {
                gone.remove(key.clone());
            }
            (&old, &self.samples)
                .transaction(|(old, samples)| {
                    old.apply_batch(&gone)?;
                    samples.apply_batch(&put)?;
                    Ok::<(), ConflictableTransactionError<std::convert::Infallible>>(())
                })
                .map_err(transaction_error)?;
        }
        self.db.drop_tree(OLD_SAMPLES)?;
        self.db.flush()?;
        if moved > 0 {
            tracing::info!(samples = moved, "gathered boiler samples into hours");
        }
        Ok(())
    }

    /// The hours `samples` fall in, each as stored with `samples` merged in (a sample already
    /// there keeps its stored form), as a batch of writes. `stored` reads an hour as it is now.
    fn merged_hours(
        &self,
        samples: &[(&str, &Sample)],
        stored: impl Fn(&[u8]) -> Result<Option<sled::IVec>, StoreError>,
    ) -> Result<sled::Batch, StoreError> {
        // Hours as stored: each sample without its asset id.
        let mut hours: BTreeMap<Vec<u8>, Vec<Sample>> = BTreeMap::new();
        for (asset, sample) in samples {
            let key = timed_key(asset, hour_of(sample.at_ms));
            let hour = match hours.entry(key) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let held = read_bare_hour(entry.key(), stored(entry.key())?.as_deref())?;
                    entry.insert(held)
                }
            };
            if let Err(at) = hour.binary_search_by_key(&sample.at_ms, |s| s.at_ms) {
                hour.insert(at, bare(sample));
            }
        }
        let mut writes = sled::Batch::default();
        for (key, samples) in hours {
            writes.insert(key, proto::encode_value(&samples)?);
        }
        Ok(writes)
    }

    /// `asset`'s samples in the hours whose keys lie in `range`, in time order.
    fn hours_of_samples(
        &self,
        asset: &str,
        range: impl std::ops::RangeBounds<Vec<u8>>,
        reverse: bool,
        mut each: impl FnMut(Vec<Sample>) -> bool,
    ) -> Result<(), StoreError> {
        let mut iter = self.samples.range(range);
        loop {
            let item = if reverse {
                iter.next_back()
            } else {
                iter.next()
            };
            let Some(item) = item else { return Ok(()) };
            let (key, value) = item?;
            if !each(read_hour(asset, &key, Some(&value))?) {
                return Ok(());
            }
        }
    }

    /// The boiler store alone in `dir` (tools and tests; the gateway opens every store at once
    /// with [`crate::storage::Storage::open_embedded`]).
    pub fn open_dir(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open(&open_db(dir, cache_bytes)?)
    }

    fn period_tree(&self, level: Level) -> &sled::Tree {
        match level {
            Level::Day => &self.days,
            Level::Month => &self.months,
        }
    }

    fn range<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<T>, StoreError> {
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        tree.range(timed_key(asset, from_ms)..timed_key(asset, to_ms))
            .map(|item| {
                let (key, value) = item?;
                decode_stored(&key, &value)
            })
            .collect()
    }
}

impl BoilerStore for SledBoilerStore {
    fn insert_sample(&self, asset: &str, sample: &Sample) -> Result<bool, StoreError> {
        let key = timed_key(asset, hour_of(sample.at_ms));
        let held = self.samples.get(&key)?;
        let mut hour = read_bare_hour(&key, held.as_deref())?;
        let Err(at) = hour.binary_search_by_key(&sample.at_ms, |s| s.at_ms) else {
            return Ok(false);
        };
        hour.insert(at, bare(sample));
        // Only this boiler's desk writes its samples, under the desk's lock: no race.
        self.samples.insert(key, proto::encode_value(&hour)?)?;
        Ok(true)
    }

    fn samples_in(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Sample>, StoreError> {
        let mut found = Vec::new();
        if to_ms <= from_ms {
            return Ok(found);
        }
        let range = timed_key(asset, hour_of(from_ms))..timed_key(asset, to_ms);
        self.hours_of_samples(asset, range, false, |hour| {
            found.extend(
                hour.into_iter()
                    .filter(|s| s.at_ms >= from_ms && s.at_ms < to_ms),
            );
            true
        })?;
        Ok(found)
    }

    fn sample_before(&self, asset: &str, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        let mut found = None;
        let range = asset_prefix(asset)..=timed_key(asset, hour_of(at_ms));
        self.hours_of_samples(asset, range, true, |hour| {
            found = hour.into_iter().rev().find(|s| s.at_ms < at_ms);
            found.is_none()
        })?;
        Ok(found)
    }

    fn sample_after(&self, asset: &str, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        let mut found = None;
        let range = timed_key(asset, hour_of(at_ms))..after_prefix(&asset_prefix(asset));
        self.hours_of_samples(asset, range, false, |hour| {
            found = hour.into_iter().find(|s| s.at_ms > at_ms);
            found.is_none()
        })?;
        Ok(found)
    }

    fn insert_gap(&self, asset: &str, gap: &GapSpan) -> Result<bool, StoreError> {
        let mut key = timed_key(asset, gap.from_ms);
        key.extend_from_slice(&time_bytes(gap.to_ms));
        let swapped =
            self.gaps
                .compare_and_swap(key, None::<&[u8]>, Some(proto::encode_value(gap)?))?;
        Ok(swapped.is_ok())
    }

    fn gaps_overlapping(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<GapSpan>, StoreError> {
        // Keyed by start: every gap starting before `to_ms`, kept if it ends after `from_ms`.
        // Gaps are rare and the old ones purged with the raw samples, so the scan stays short.
        let mut found = Vec::new();
        for item in self
            .gaps
            .range(asset_prefix(asset)..timed_key(asset, to_ms))
        {
            let (key, value) = item?;
            let gap: GapSpan = decode_stored(&key, &value)?;
            if gap.to_ms > from_ms && gap.from_ms < to_ms {
                found.push(gap);
            }
        }
        Ok(found)
    }

    fn hour(&self, asset: &str, start_ms: TimestampMs) -> Result<Option<Rollup>, StoreError> {
        let key = timed_key(asset, start_ms);
        self.hours
            .get(&key)?
            .map(|value| decode_stored(&key, &value))
            .transpose()
    }

    fn put_hour(&self, asset: &str, rollup: &Rollup) -> Result<(), StoreError> {
        self.hours.insert(
            timed_key(asset, rollup.start_ms),
            proto::encode_value(rollup)?,
        )?;
        Ok(())
    }

    fn write_telemetry(
        &self,
        samples: &[(&str, &Sample)],
        hours: &[(&str, &Rollup)],
        periods: &[(&str, Level, &Rollup)],
    ) -> Result<(), StoreError> {
        let sample_writes = self.merged_hours(samples, |key| Ok(self.samples.get(key)?))?;
        let mut hour_writes = sled::Batch::default();
        for (asset, hour) in hours {
            hour_writes.insert(timed_key(asset, hour.start_ms), proto::encode_value(hour)?);
        }
        let (mut day_writes, mut month_writes) = (sled::Batch::default(), sled::Batch::default());
        for (asset, level, period) in periods {
            let batch = match level {
                Level::Day => &mut day_writes,
                Level::Month => &mut month_writes,
            };
            batch.insert(
                timed_key(asset, period.start_ms),
                proto::encode_value(*period)?,
            );
        }
        // One transaction over the four trees: sled applies each batch atomically, and the
        // transaction makes them so together.
        (&self.samples, &self.hours, &self.days, &self.months)
            .transaction(|(samples, hours, days, months)| {
                samples.apply_batch(&sample_writes)?;
                hours.apply_batch(&hour_writes)?;
                days.apply_batch(&day_writes)?;
                months.apply_batch(&month_writes)?;
                Ok::<(), ConflictableTransactionError<std::convert::Infallible>>(())
            })
            .map_err(transaction_error)
    }

    fn periods_in(
        &self,
        asset: &str,
        level: Level,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError> {
        Self::range(self.period_tree(level), asset, from_ms, to_ms)
    }

    fn replace_periods(&self, asset: &str, periods: &[(Level, Rollup)]) -> Result<(), StoreError> {
        let prefix = asset_prefix(asset);
        let (mut day_writes, mut month_writes) = (sled::Batch::default(), sled::Batch::default());
        for (tree, batch) in [
            (&self.days, &mut day_writes),
            (&self.months, &mut month_writes),
        ] {
            for item in tree.scan_prefix(&prefix) {
                batch.remove(item?.0);
            }
        }
        for (level, period) in periods {
            let batch = match level {
                Level::Day => &mut day_writes,
                Level::Month => &mut month_writes,
            };
            batch.insert(
                timed_key(asset, period.start_ms),
                proto::encode_value(period)?,
            );
        }
        (&self.days, &self.months)
            .transaction(|(days, months)| {
                days.apply_batch(&day_writes)?;
                months.apply_batch(&month_writes)?;
                Ok::<(), ConflictableTransactionError<std::convert::Infallible>>(())
            })
            .map_err(transaction_error)
    }

    fn periods_calendar(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .calendar
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone())
    }

    fn set_periods_calendar(&self, calendar: Option<&str>) -> Result<(), StoreError> {
        match calendar {
            Some(calendar) => self.periods.insert(CALENDAR, calendar.as_bytes())?,
            None => self.periods.remove(CALENDAR)?,
        };
        self.db.flush()?;
        *self
            .calendar
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = calendar.map(str::to_owned);
        Ok(())
    }

    fn hours_in(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError> {
        Self::range(&self.hours, asset, from_ms, to_ms)
    }

    fn purge_raw_before(&self, before_ms: TimestampMs) -> Result<u64, StoreError> {
        // Whole hours only: an hour goes once it has ended by the cut.
        let purged = std::cell::Cell::new(0);
        purge_before(&self.samples, hour_of(before_ms), |key, value| {
            let hour = read_bare_hour(key, Some(value))?;
            purged.set(purged.get() + hour.len() as u64);
            Ok(true)
        })?;
        let purged = purged.get();
        // A gap is dropped only once it has ended before the cut.
        purge_before(&self.gaps, before_ms, |key, value| {
            Ok(decode_stored::<GapSpan>(key, value)?.to_ms < before_ms)
        })?;
        self.db.flush()?;
        Ok(purged)
    }

    fn save_assets(&self, assets: &[&Asset]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for asset in assets {
            batch.insert(asset.asset.as_bytes(), proto::encode_value(asset)?);
        }
        self.assets.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn assets(&self) -> Result<Vec<Asset>, StoreError> {
        self.assets
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_stored(&key, &value)
            })
            .collect()
    }

    fn save_alerts(&self, asset: &str, alerts: &BoilerAlerts) -> Result<(), StoreError> {
        self.alerts
            .insert(asset.as_bytes(), proto::encode_value(alerts)?)?;
        Ok(())
    }

    fn alert_states(&self) -> Result<Vec<(String, BoilerAlerts)>, StoreError> {
        self.alerts
            .iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    decode_stored(&key, &value)?,
                ))
            })
            .collect()
    }

    fn save_closed_alert(&self, asset: &str, alert: &Alert) -> Result<(), StoreError> {
        let mut key = timed_key(asset, alert.opened_at_ms);
        key.extend_from_slice(alert.kind.as_str().as_bytes());
        self.alert_log.insert(key, proto::encode_value(alert)?)?;
        Ok(())
    }

    fn closed_alerts(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Alert>, StoreError> {
        Self::range(&self.alert_log, asset, from_ms, to_ms)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boilers::register::tests::asset;
    use crate::boilers::rollup::tests::{
        arb_arrivals, incremental_equals_recomputed, sample, telemetry_log_tests, FreshLog, T0,
    };
    use crate::boilers::{AlertKind, Boilers, BoilersConfig, Folded, TelemetryLog, HOUR_MS};
    use crate::storage::AssetLog;

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * HOUR_MS;

    /// One boiler's log in a sled store of its own, in a temporary directory.
    pub(crate) struct TempLog {
        store: SledBoilerStore,
        _dir: tempfile::TempDir,
    }

    impl TempLog {
        fn log(&self) -> AssetLog<'_> {
            AssetLog::new(&self.store, "B-1")
        }
    }

    impl FreshLog for TempLog {
        fn fresh() -> Self {
            let dir = tempfile::tempdir().unwrap();
            Self {
                store: SledBoilerStore::open_dir(dir.path(), 8 << 20).unwrap(),
                _dir: dir,
            }
        }
    }

    impl TelemetryLog for TempLog {
        type Error = StoreError;

        fn insert_sample(&mut self, sample: &Sample) -> Result<bool, StoreError> {
            self.log().insert_sample(sample)
        }
        fn samples_in(
            &self,
            from: TimestampMs,
            to: TimestampMs,
        ) -> Result<Vec<Sample>, StoreError> {
            self.log().samples_in(from, to)
        }
        fn sample_before(&self, at: TimestampMs) -> Result<Option<Sample>, StoreError> {
            self.log().sample_before(at)
        }
        fn sample_after(&self, at: TimestampMs) -> Result<Option<Sample>, StoreError> {
            self.log().sample_after(at)
        }
        fn insert_gap(&mut self, gap: &GapSpan) -> Result<bool, StoreError> {
            self.log().insert_gap(gap)
        }
        fn gaps_overlapping(
            &self,
            from: TimestampMs,
            to: TimestampMs,
        ) -> Result<Vec<GapSpan>, StoreError> {
            self.log().gaps_overlapping(from, to)
        }
        fn hour(&self, start: TimestampMs) -> Result<Option<Rollup>, StoreError> {
            self.log().hour(start)
        }
        fn put_hour(&mut self, rollup: &Rollup) -> Result<(), StoreError> {
            self.log().put_hour(rollup)
        }
        fn hours_in(&self, from: TimestampMs, to: TimestampMs) -> Result<Vec<Rollup>, StoreError> {
            self.log().hours_in(from, to)
        }
    }

    // The rollups' tests, word for word, on sled.
    telemetry_log_tests!(TempLog);

    proptest::proptest! {
        // Fewer cases than on `MemoryLog`: each opens a sled database.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        #[test]
        fn incremental_equals_recomputed_for_any_arrival_order_on_sled(
            (samples, order, resends) in arb_arrivals()
        ) {
            incremental_equals_recomputed::<TempLog>(&samples, &order, &resends)?;
        }
    }

    #[test]
    fn the_demo_estates_faulty_boilers_raise_their_alerts_on_sled_too() {
        crate::boilers::tests::the_faulty_boilers_raise_their_alerts::<TempLog>();
    }

    fn store() -> (tempfile::TempDir, SledBoilerStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledBoilerStore::open_dir(dir.path(), 8 << 20).unwrap();
        (dir, store)
    }

    fn at(asset: &str, at_ms: TimestampMs) -> Sample {
        Sample {
            asset: asset.to_owned(),
            ..sample(at_ms)
        }
    }

    #[test]
    fn one_boilers_range_holds_no_other_boilers_samples_and_is_in_time_order() {
        let (_dir, store) = store();
        // `B-1` is a prefix of `B-10`'s id: the length byte keeps them apart. Times on both
        // sides of 1970 sort as times.
        for (asset, t) in [
            ("B-10", 5),
            ("B-1", -3 * MIN),
            ("B-1", 2 * MIN),
            ("B-10", -1),
        ] {
            assert!(store.insert_sample(asset, &at(asset, t)).unwrap());
        }
        assert!(!store.insert_sample("B-1", &at("B-1", 2 * MIN)).unwrap());
        let times = |samples: Vec<Sample>| samples.iter().map(|s| s.at_ms).collect::<Vec<_>>();
        assert_eq!(
            times(store.samples_in("B-1", i64::MIN, i64::MAX).unwrap()),
            vec![-3 * MIN, 2 * MIN]
        );
        assert_eq!(
            times(store.samples_in("B-10", -10, 10).unwrap()),
            vec![-1, 5]
        );
        assert_eq!(store.sample_before("B-10", -1).unwrap(), None);
        assert_eq!(store.sample_after("B-1", 2 * MIN).unwrap(), None);
        assert_eq!(
            store
                .sample_after("B-1", i64::MIN)
                .unwrap()
                .map(|s| s.at_ms),
            Some(-3 * MIN)
        );
        assert_eq!(
            store
                .sample_before("B-1", i64::MAX)
                .unwrap()
                .map(|s| s.at_ms),
            Some(2 * MIN)
        );
    }

    #[test]
    fn the_register_and_alert_state_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let hub = proto::DeviceId::new("hub-1").unwrap();
        let opened = {
            let store = SledBoilerStore::open_dir(dir.path(), 8 << 20).unwrap();
            store
                .save_assets(&[&asset("B-1", "hub-1"), &asset("B-2", "hub-2")])
                .unwrap();
            // Imported again with a new hub: replaced, not duplicated.
            store.save_assets(&[&asset("B-2", "hub-3")]).unwrap();
            let mut boilers = Boilers::new(BoilersConfig::default());
            boilers.register_mut().insert(asset("B-1", "hub-1"));
            let telemetry = proto::Telemetry {
                asset: "B-1".into(),
                bar: Some(0.4),
                ..proto::Telemetry::default()
            };
            let mut log = AssetLog::new(&store, "B-1");
            let mut events = Vec::new();
            for minute in 0..5 {
                let t = T0 + minute * MIN;
                let observed = boilers
                    .observe_sample(&mut log, &hub, &telemetry, t, t)
                    .unwrap();
                assert!(matches!(observed.folded, Some(Folded::InOrder { .. })));
                events.extend(observed.alerts);
            }
            assert_eq!(events.len(), 1, "{events:?}");
            let alerts = boilers.alerts("B-1").unwrap();
            store.save_alerts("B-1", alerts).unwrap();
            let closed = alerts.get(AlertKind::PressureLow).unwrap().clone();
            store.save_closed_alert("B-1", &closed).unwrap();
            store.flush().unwrap();
            closed
        };
        let store = SledBoilerStore::open_dir(dir.path(), 8 << 20).unwrap();
        let assets = store.assets().unwrap();
        assert_eq!(assets.len(), 2);
        assert_eq!(assets[1].hub.as_str(), "hub-3");
        let states = store.alert_states().unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].0, "B-1");
        assert_eq!(states[0].1.get(AlertKind::PressureLow), Some(&opened));
        let opened_at = opened.opened_at_ms;
        assert_eq!(
            store
                .closed_alerts("B-1", opened_at, opened_at + 1)
                .unwrap(),
            vec![opened]
        );
        assert_eq!(store.closed_alerts("B-1", T0, opened_at).unwrap(), vec![]);
    }

    #[test]
    fn purging_drops_old_raw_samples_of_every_boiler_and_keeps_rollups() {
        let (_dir, store) = store();
        let ids = ["B-1", "B-10", "B-2"];
        for asset in ids {
            for day in 0..5 {
                store
                    .insert_sample(asset, &at(asset, T0 + day * DAY))
                    .unwrap();
                store
                    .put_hour(
                        asset,
                        &Rollup::empty(T0 + day * DAY, T0 + day * DAY + HOUR_MS),
                    )
                    .unwrap();
            }
            for (from, to) in [(T0 + MIN, T0 + 2 * MIN), (T0 + 2 * DAY, T0 + 4 * DAY)] {
                let gap = GapSpan {
                    from_ms: from,
                    to_ms: to,
                    reason: proto::GapReason::DiskBudget,
                };
                assert!(store.insert_gap(asset, &gap).unwrap());
                assert!(!store.insert_gap(asset, &gap).unwrap());
            }
        }
        let cut = T0 + 3 * DAY;
        assert_eq!(store.purge_raw_before(cut).unwrap(), 3 * 3);
        for asset in ids {
            let left = store.samples_in(asset, i64::MIN, i64::MAX).unwrap();
            assert_eq!(left.len(), 2, "{asset}");
            assert!(left.iter().all(|s| s.at_ms >= cut && s.asset == asset));
            assert_eq!(store.hours_in(asset, i64::MIN, i64::MAX).unwrap().len(), 5);
            // The gap still running at the cut stays; the one over before it goes.
            let gaps = store.gaps_overlapping(asset, i64::MIN, i64::MAX).unwrap();
            assert_eq!(gaps.len(), 1);
            assert_eq!(gaps[0].to_ms, T0 + 4 * DAY);
        }
        assert_eq!(store.purge_raw_before(cut).unwrap(), 0);
    }

    #[test]
    fn format_two_samples_one_per_key_are_gathered_into_hours_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let times: Vec<TimestampMs> = (0..2_500).map(|n| T0 - 7 * MIN + n * MIN).collect();
        {
            let db = sled::open(dir.path()).unwrap();
            let old = db.open_tree(OLD_SAMPLES).unwrap();
            for asset in ["B-1", "B-10"] {
                for &t in &times {
                    old.insert(
                        timed_key(asset, t),
                        proto::encode_value(&at(asset, t)).unwrap(),
                    )
                    .unwrap();
                }
            }
            db.flush().unwrap();
        }
        let store = SledBoilerStore::open_dir(dir.path(), 8 << 20).unwrap();
        assert!(!store
            .db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == OLD_SAMPLES.as_bytes()));
        for asset in ["B-1", "B-10"] {
            let all = store.samples_in(asset, i64::MIN, i64::MAX).unwrap();
            assert_eq!(all.iter().map(|s| s.at_ms).collect::<Vec<_>>(), times);
            assert!(all.iter().all(|s| s.asset == asset));
            let middle = times[1_000];
            assert_eq!(
                store.sample_before(asset, middle).unwrap().unwrap().at_ms,
                middle - MIN
            );
            assert_eq!(
                store.sample_after(asset, middle).unwrap().unwrap().at_ms,
                middle + MIN
            );
        }
        // 2,500 minutes of two boilers: about 42 hours each, not 5,000 keys.
        assert!(store.samples.len() <= 2 * 43, "{}", store.samples.len());
    }

    #[test]
    fn a_typical_sample_is_stored_in_under_200_bytes() {
        // What a hub on OpenTherm reports today: a dozen readings, the rest absent.
        let typical = Sample {
            flow_c: Some(55.0),
            return_c: Some(42.0),
            dhw_c: Some(48.0),
            pressure_bar: Some(1.5),
            modulation_pct: Some(30.0),
            flame: Some(true),
            ch_active: Some(true),
            dhw_active: Some(false),
            fault: Some(false),
            fault_flags: Some(0),
            oem_code: Some(0),
            burner_starts: Some(12_345),
            ..at("HIL-B-0001", T0)
        };
        let (_dir, store) = store();
        store.insert_sample("HIL-B-0001", &typical).unwrap();
        let (key, value) = store.samples.iter().next().unwrap().unwrap();
        assert!(
            key.len() + value.len() < 200,
            "{} + {}",
            key.len(),
            value.len()
        );
        assert_eq!(
            store.samples_in("HIL-B-0001", T0, T0 + 1).unwrap(),
            vec![typical]
        );
    }
}
