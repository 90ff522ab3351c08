//! [`SledBoilerStore`]: the boiler domain's [`BoilerStore`] on sled.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `boiler_samples` | len asset at(8) | a raw [`Sample`] |
//! | `boiler_gaps` | len asset from(8) to(8) | a reported [`GapSpan`] |
//! | `boiler_hours` | len asset start(8) | an hour's [`Rollup`] |
//! | `assets` | asset | an [`Asset`] on the register |
//! | `boiler_alerts` | asset | a boiler's [`BoilerAlerts`] |
//! | `boiler_alert_log` | len asset opened(8) kind | a closed [`Alert`] |
//!
//! The asset id has a one-byte length before it, so one boiler's prefix holds no other's
//! (`B-1` and `B-10`), and times are big-endian with the sign bit flipped, so byte order is time
//! order: a time range of one boiler is one contiguous range scan.

use std::path::Path;

use proto::TimestampMs;

use super::{decode_stored, open_db};
use crate::boilers::{Alert, Asset, BoilerAlerts, GapSpan, Rollup, Sample};
use crate::storage::{BoilerStore, StoreError};

/// Boiler telemetry, rollups, the register and alert state in sled.
#[derive(Debug, Clone)]
pub struct SledBoilerStore {
    db: sled::Db,
    samples: sled::Tree,
    gaps: sled::Tree,
    hours: sled::Tree,
    assets: sled::Tree,
    alerts: sled::Tree,
    alert_log: sled::Tree,
}

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
        Ok(Self {
            db: db.clone(),
            samples: db.open_tree("boiler_samples")?,
            gaps: db.open_tree("boiler_gaps")?,
            hours: db.open_tree("boiler_hours")?,
            assets: db.open_tree("assets")?,
            alerts: db.open_tree("boiler_alerts")?,
            alert_log: db.open_tree("boiler_alert_log")?,
        })
    }

    /// The boiler store alone in `dir` (tools and tests; the gateway opens every store at once
    /// with [`crate::storage::Storage::open_embedded`]).
    pub fn open_dir(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open(&open_db(dir, cache_bytes)?)
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
        let value = proto::encode_value(sample)?;
        let swapped = self.samples.compare_and_swap(
            timed_key(asset, sample.at_ms),
            None::<&[u8]>,
            Some(value),
        )?;
        Ok(swapped.is_ok())
    }

    fn samples_in(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Sample>, StoreError> {
        Self::range(&self.samples, asset, from_ms, to_ms)
    }

    fn sample_before(&self, asset: &str, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        let found = self
            .samples
            .range(asset_prefix(asset)..timed_key(asset, at_ms))
            .next_back()
            .transpose()?;
        found
            .map(|(key, value)| decode_stored(&key, &value))
            .transpose()
    }

    fn sample_after(&self, asset: &str, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        let Some(from) = at_ms.checked_add(1) else {
            return Ok(None);
        };
        let found = self
            .samples
            .range(timed_key(asset, from)..after_prefix(&asset_prefix(asset)))
            .next()
            .transpose()?;
        found
            .map(|(key, value)| decode_stored(&key, &value))
            .transpose()
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

    fn hours_in(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError> {
        Self::range(&self.hours, asset, from_ms, to_ms)
    }

    fn purge_raw_before(&self, before_ms: TimestampMs) -> Result<u64, StoreError> {
        let purged = purge_before(&self.samples, before_ms, |_, _| Ok(true))?;
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
