//! Write-back of one ingested group's boiler telemetry: the samples and hourly rollups a group
//! changes are held in memory and written once, together, at its end, with the days and months
//! they change ([`crate::boilers::periods`]), instead of one store round trip per sample and per
//! hour touched.
//!
//! Rollups ask the log, for every sample, whether it is a resend, which samples are its
//! neighbours, and what its hours hold (see [`crate::boilers::rollup`]). For the common case,
//! a sample newer than every sample of its boiler, the answers are known without the store from
//! each boiler's [`Tails`] (its newest sample and the one before), which the desk keeps across
//! groups. Any other question (a late sample, a range) is asked of the store and answered with the
//! group's pending writes over its answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Bound, RangeBounds};

use chrono_tz::Tz;
use proto::TimestampMs;

use super::{BoilerStore, StoreError};
use crate::boilers::periods::{periods_to_write, Level, StoredPeriods};
use crate::boilers::{GapSpan, Rollup, Sample, TelemetryLog};

/// What is known of one boiler's newest samples, stored or pending.
#[derive(Debug, Clone)]
struct Tail {
    /// The newest sample, if the boiler has any.
    newest: Option<Sample>,
    /// The sample before `newest`, when known (`Some(None)`: there is none).
    before: Option<Option<Sample>>,
}

/// Each boiler's newest samples, kept by the boiler desk between groups: one entry per boiler
/// on the register that sent samples since start (only registered boilers' samples are folded).
/// Emptied when raw samples are purged, and after a group that failed, so it never claims a
/// sample the store does not hold.
#[derive(Debug, Default)]
pub struct Tails(HashMap<String, Tail>);

impl Tails {
    /// Forgets every boiler's tail: they are read from the store again when next needed.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// One group's pending telemetry writes over a [`BoilerStore`]; [`GroupWrites::log`] gives each
/// boiler's [`TelemetryLog`]. [`GroupWrites::commit`] writes what is pending; dropped without it
/// (an error, a panic), nothing pending is written and the tails are forgotten.
pub struct GroupWrites<'a> {
    store: &'a dyn BoilerStore,
    tails: &'a mut Tails,
    /// The council's time zone, whose days and months are stored.
    tz: Tz,
    samples: BTreeMap<(String, TimestampMs), Sample>,
    hours: BTreeMap<(String, TimestampMs), Rollup>,
    committed: bool,
}

impl<'a> GroupWrites<'a> {
    /// A group over `store`, answering from and updating `tails`, keeping `tz`'s days and
    /// months.
    pub fn new(store: &'a dyn BoilerStore, tails: &'a mut Tails, tz: Tz) -> Self {
        Self {
            store,
            tails,
            tz,
            samples: BTreeMap::new(),
            hours: BTreeMap::new(),
            committed: false,
        }
    }

    /// `asset`'s telemetry as the rollups read and write it.
    pub fn log<'g>(&'g mut self, asset: &'g str) -> BufferedLog<'g, 'a> {
        BufferedLog { group: self, asset }
    }

    /// Writes every pending sample and hour, and the days and months they change, in one
    /// atomic write (durable at the store's next flush).
    pub fn commit(mut self) -> Result<(), StoreError> {
        if !self.samples.is_empty() || !self.hours.is_empty() {
            let periods = self.periods()?;
            let periods: Vec<(&str, Level, &Rollup)> = periods
                .iter()
                .map(|(asset, level, period)| (asset.as_str(), *level, period))
                .collect();
            let samples: Vec<(&str, &Sample)> = self
                .samples
                .iter()
                .map(|((asset, _), sample)| (asset.as_str(), sample))
                .collect();
            let hours: Vec<(&str, &Rollup)> = self
                .hours
                .iter()
                .map(|((asset, _), hour)| (asset.as_str(), hour))
                .collect();
            self.store.write_telemetry(&samples, &hours, &periods)?;
        }
        self.committed = true;
        Ok(())
    }

    /// The days and months to write with the group's hours, boiler by boiler.
    fn periods(&mut self) -> Result<Vec<(String, Level, Rollup)>, StoreError> {
        let mut touched: BTreeMap<String, BTreeSet<TimestampMs>> = BTreeMap::new();
        for (asset, start) in self.hours.keys() {
            touched.entry(asset.clone()).or_default().insert(*start);
        }
        let (store, tz) = (self.store, self.tz);
        let mut periods = Vec::new();
        for (asset, hours) in touched {
            let stored = StoreAsset {
                store,
                asset: &asset,
            };
            let log = self.log(&asset);
            for (level, period) in periods_to_write(&log, &stored, &hours, tz)? {
                periods.push((asset.clone(), level, period));
            }
        }
        Ok(periods)
    }

    /// `asset`'s tail, read from the store the first time it is asked for.
    fn tail(&mut self, asset: &str) -> Result<&mut Tail, StoreError> {
        if !self.tails.0.contains_key(asset) {
            let newest = self.store.sample_before(asset, TimestampMs::MAX)?;
            let before = if newest.is_none() { Some(None) } else { None };
            self.tails
                .0
                .insert(asset.to_owned(), Tail { newest, before });
        }
        // Inserted just above when it was missing.
        self.tails.0.get_mut(asset).ok_or(StoreError::Corrupt {
            key: asset.to_owned(),
            reason: "a boiler's tail went missing".into(),
        })
    }
}

impl Drop for GroupWrites<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // The tails may count samples that were never written.
            self.tails.clear();
        }
    }
}

/// One boiler's telemetry within a [`GroupWrites`]: the store's, with the group's pending
/// writes over it.
pub struct BufferedLog<'g, 'a> {
    group: &'g mut GroupWrites<'a>,
    asset: &'g str,
}

impl BufferedLog<'_, '_> {
    /// The boiler's pending samples in `range` of times.
    fn pending(
        &self,
        range: impl RangeBounds<TimestampMs>,
    ) -> impl DoubleEndedIterator<Item = &Sample> {
        let key = |bound: Bound<&TimestampMs>| match bound {
            Bound::Included(&at) => Bound::Included((self.asset.to_owned(), at)),
            Bound::Excluded(&at) => Bound::Excluded((self.asset.to_owned(), at)),
            Bound::Unbounded => Bound::Included((self.asset.to_owned(), TimestampMs::MIN)),
        };
        let end = match range.end_bound() {
            Bound::Unbounded => Bound::Included((self.asset.to_owned(), TimestampMs::MAX)),
            bound => key(bound),
        };
        self.group
            .samples
            .range((key(range.start_bound()), end))
            .map(|(_, sample)| sample)
    }

    fn tail(&self) -> Option<&Tail> {
        self.group.tails.0.get(self.asset)
    }
}

impl TelemetryLog for BufferedLog<'_, '_> {
    type Error = StoreError;

    fn insert_sample(&mut self, sample: &Sample) -> Result<bool, StoreError> {
        let asset = self.asset;
        let at = sample.at_ms;
        let tail = self.group.tail(asset)?;
        let newest = tail.newest.as_ref().is_none_or(|n| at > n.at_ms);
        if newest {
            tail.before = Some(tail.newest.replace(sample.clone()));
        } else {
            // Older than the newest: a resend, or a late sample that may be the new second.
            let held = self.pending(at..=at).next().is_some()
                || !self
                    .group
                    .store
                    .samples_in(asset, at, at.saturating_add(1))?
                    .is_empty();
            if held {
                return Ok(false);
            }
            let tail = self.group.tail(asset)?;
            if let Some(before) = &mut tail.before {
                if before.as_ref().is_none_or(|b| at > b.at_ms) {
                    *before = Some(sample.clone());
                }
            }
        }
        self.group
            .samples
            .insert((asset.to_owned(), at), sample.clone());
        Ok(true)
    }

    fn samples_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Sample>, StoreError> {
        let mut samples = self.group.store.samples_in(self.asset, from_ms, to_ms)?;
        if to_ms > from_ms {
            samples.extend(self.pending(from_ms..to_ms).cloned());
            // Pending samples are never stored ones: a stable sort by time merges the two.
            samples.sort_by_key(|s| s.at_ms);
        }
        Ok(samples)
    }

    fn sample_before(&self, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        if let Some(tail) = self.tail() {
            match &tail.newest {
                None => return Ok(None),
                Some(newest) if at_ms > newest.at_ms => return Ok(Some(newest.clone())),
                Some(newest) if at_ms == newest.at_ms => {
                    if let Some(before) = &tail.before {
                        return Ok(before.clone());
                    }
                }
                Some(_) => {}
            }
        }
        let stored = self.group.store.sample_before(self.asset, at_ms)?;
        let pending = self.pending(..at_ms).next_back();
        Ok(latest(stored, pending.cloned()))
    }

    fn sample_after(&self, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        if let Some(tail) = self.tail() {
            if tail.newest.as_ref().is_none_or(|n| at_ms >= n.at_ms) {
                return Ok(None);
            }
        }
        let stored = self.group.store.sample_after(self.asset, at_ms)?;
        let pending = self
            .pending((Bound::Excluded(at_ms), Bound::Unbounded))
            .next();
        Ok(earliest(stored, pending.cloned()))
    }

    fn insert_gap(&mut self, gap: &GapSpan) -> Result<bool, StoreError> {
        // Gaps are rare: written at once (durable with the group's flush).
        self.group.store.insert_gap(self.asset, gap)
    }

    fn gaps_overlapping(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<GapSpan>, StoreError> {
        self.group
            .store
            .gaps_overlapping(self.asset, from_ms, to_ms)
    }

    fn hour(&self, start_ms: TimestampMs) -> Result<Option<Rollup>, StoreError> {
        match self.group.hours.get(&(self.asset.to_owned(), start_ms)) {
            Some(pending) => Ok(Some(pending.clone())),
            None => self.group.store.hour(self.asset, start_ms),
        }
    }

    fn put_hour(&mut self, rollup: &Rollup) -> Result<(), StoreError> {
        self.group
            .hours
            .insert((self.asset.to_owned(), rollup.start_ms), rollup.clone());
        Ok(())
    }

    fn hours_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError> {
        let mut hours: BTreeMap<TimestampMs, Rollup> = self
            .group
            .store
            .hours_in(self.asset, from_ms, to_ms)?
            .into_iter()
            .map(|hour| (hour.start_ms, hour))
            .collect();
        if to_ms > from_ms {
            let range = (self.asset.to_owned(), from_ms)..(self.asset.to_owned(), to_ms);
            for ((_, start), hour) in self.group.hours.range(range) {
                hours.insert(*start, hour.clone());
            }
        }
        Ok(hours.into_values().collect())
    }
}

/// One boiler's days and months as stored before the group.
struct StoreAsset<'s> {
    store: &'s dyn BoilerStore,
    asset: &'s str,
}

impl StoredPeriods for StoreAsset<'_> {
    type Error = StoreError;

    fn stored(
        &self,
        level: Level,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError> {
        self.store.periods_in(self.asset, level, from_ms, to_ms)
    }
}

fn latest(a: Option<Sample>, b: Option<Sample>) -> Option<Sample> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.at_ms > a.at_ms { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn earliest(a: Option<Sample>, b: Option<Sample>) -> Option<Sample> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.at_ms < a.at_ms { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boilers::periods::rollup_over;
    use crate::boilers::rollup::hour_of;
    use crate::boilers::rollup::tests::{arb_arrivals, assert_same, sample, MIN, T0};
    use crate::boilers::{merge_period, MemoryLog, Roller, HOUR_MS};
    use crate::storage::embedded::SledBoilerStore;
    use crate::storage::AssetLog;
    use chrono_tz::Europe::London;
    use proptest::prelude::*;

    fn store() -> (tempfile::TempDir, SledBoilerStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledBoilerStore::open_dir(dir.path(), 8 << 20).unwrap();
        (dir, store)
    }

    /// Folds `arrivals` in groups of `group` through [`GroupWrites`] over `store`, keeping the
    /// tails between groups as the desk does.
    fn fold_in_groups(
        store: &SledBoilerStore,
        tails: &mut Tails,
        arrivals: &[Sample],
        group: usize,
    ) {
        let roller = Roller::default();
        let now = T0 + 30 * HOUR_MS;
        for chunk in arrivals.chunks(group) {
            let mut writes = GroupWrites::new(store, tails, London);
            for sample in chunk {
                roller.fold(&mut writes.log("B-1"), sample, now).unwrap();
            }
            writes.commit().unwrap();
        }
    }

    proptest! {
        // Each case opens a sled database.
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whatever the arrival order and however arrivals fall into groups, the hours written
        /// back are those of the same arrivals folded one store call at a time, and those
        /// recomputed from the raw samples stored.
        #[test]
        fn group_writes_leave_the_hours_one_write_at_a_time_would(
            (samples, order, resends) in arb_arrivals(),
            group in 1usize..40,
        ) {
            let arrivals: Vec<Sample> =
                order.iter().chain(&resends).map(|&i| samples[i].clone()).collect();
            let (_dir, store) = store();
            fold_in_groups(&store, &mut Tails::default(), &arrivals, group);

            let roller = Roller::default();
            let now = T0 + 30 * HOUR_MS;
            let mut one_by_one = MemoryLog::new();
            for sample in &arrivals {
                roller.fold(&mut one_by_one, sample, now).unwrap();
            }
            let log = AssetLog::new(&store, "B-1");
            let written = log.hours_in(TimestampMs::MIN, TimestampMs::MAX).unwrap();
            let expected = one_by_one.hours_in(TimestampMs::MIN, TimestampMs::MAX).unwrap();
            prop_assert_eq!(
                written.iter().map(|h| h.start_ms).collect::<Vec<_>>(),
                expected.iter().map(|h| h.start_ms).collect::<Vec<_>>()
            );
            for (written, expected) in written.iter().zip(&expected) {
                assert_same(written, expected);
                assert_same(written, &roller.recompute_hour(&log, written.start_ms).unwrap());
            }
            let stored = log.samples_in(TimestampMs::MIN, TimestampMs::MAX).unwrap();
            prop_assert_eq!(stored.len(), samples.len());
        }
    }

    /// Samples from 20 October 2026 on (before the clocks go back, and two month ends),
    /// `steps[i]` minutes apart, with readings and counters that move.
    fn spread(steps: &[i64]) -> Vec<Sample> {
        let mut at = T0 - 36 * 24 * HOUR_MS;
        steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                at += step * MIN;
                Sample {
                    pressure_bar: Some(1.0 + (i % 17) as f32 / 100.0),
                    return_c: Some(40.0 + (i % 23) as f32),
                    flame: Some(i % 3 != 0),
                    gas_m3: Some(1000.0 + i as f64 * 0.05),
                    heat_kwh: Some(5000.0 + i as f64 * 0.4),
                    ..sample(at)
                }
            })
            .collect()
    }

    proptest! {
        // Each case opens a sled database.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// However samples arrive over weeks (across month ends and a change of the clocks),
        /// every stored day and month is the merge of its hours, and any span read from the
        /// stored periods is the span's hours merged.
        #[test]
        fn stored_days_and_months_always_equal_their_hours(
            steps in proptest::collection::vec(prop_oneof![8 => 1i64..90, 1 => 600i64..2000], 40..160),
            swaps in proptest::collection::vec((0usize..160, 0usize..160), 0..30),
            group in 1usize..30,
            spans in proptest::collection::vec((0i64..60 * 24, 1i64..40 * 24), 1..6),
        ) {
            let samples = spread(&steps);
            let mut arrivals = samples.clone();
            for (a, b) in swaps {
                let n = arrivals.len();
                arrivals.swap(a % n, b % n);
            }
            let (_dir, store) = store();
            store.set_periods_calendar(Some(London.name())).unwrap();
            let end = samples.last().unwrap().at_ms;
            let roller = Roller::default();
            let mut tails = Tails::default();
            for chunk in arrivals.chunks(group) {
                let mut writes = GroupWrites::new(&store, &mut tails, London);
                for sample in chunk {
                    roller.fold(&mut writes.log("B-1"), sample, end + HOUR_MS).unwrap();
                }
                writes.commit().unwrap();
            }
            let log = AssetLog::new(&store, "B-1");
            for level in [Level::Day, Level::Month] {
                for period in store.periods_in("B-1", level, TimestampMs::MIN, TimestampMs::MAX).unwrap() {
                    let hours = log.hours_in(period.start_ms, period.end_ms).unwrap();
                    assert_same(&period, &merge_period(period.start_ms, period.end_ms, &hours));
                }
            }
            for (from_h, len_h) in spans {
                let from = hour_of(T0) - 36 * 24 * HOUR_MS + from_h * HOUR_MS - 7 * HOUR_MS;
                let to = from + len_h * HOUR_MS;
                let hours = log.hours_in(from, to).unwrap();
                assert_same(&rollup_over(&log, from, to).unwrap(), &merge_period(from, to, &hours));
            }
        }
    }

    #[test]
    fn a_resend_within_the_group_and_across_groups_counts_once() {
        let (_dir, store) = store();
        let mut tails = Tails::default();
        let roller = Roller::default();
        let now = T0 + 2 * HOUR_MS;
        let mut writes = GroupWrites::new(&store, &mut tails, London);
        let mut log = writes.log("B-1");
        assert!(roller.fold(&mut log, &sample(T0), now).unwrap().is_fresh());
        assert!(roller
            .fold(&mut log, &sample(T0 + MIN), now)
            .unwrap()
            .is_fresh());
        assert!(!roller.fold(&mut log, &sample(T0), now).unwrap().is_fresh());
        assert!(!roller
            .fold(&mut log, &sample(T0 + MIN), now)
            .unwrap()
            .is_fresh());
        writes.commit().unwrap();
        let mut writes = GroupWrites::new(&store, &mut tails, London);
        assert!(!roller
            .fold(&mut writes.log("B-1"), &sample(T0), now)
            .unwrap()
            .is_fresh());
        writes.commit().unwrap();
        let hour = AssetLog::new(&store, "B-1").hour(T0).unwrap().unwrap();
        assert_eq!(hour.samples, 2);
    }

    #[test]
    fn a_group_dropped_without_commit_writes_nothing_and_forgets_the_tails() {
        let (_dir, store) = store();
        let mut tails = Tails::default();
        let roller = Roller::default();
        let now = T0 + 2 * HOUR_MS;
        {
            let mut writes = GroupWrites::new(&store, &mut tails, London);
            roller
                .fold(&mut writes.log("B-1"), &sample(T0), now)
                .unwrap();
        }
        assert!(tails.0.is_empty());
        let log = AssetLog::new(&store, "B-1");
        assert!(log
            .samples_in(TimestampMs::MIN, TimestampMs::MAX)
            .unwrap()
            .is_empty());
        assert!(log.hour(T0).unwrap().is_none());
        // The next group reads the store again and takes the sample as new.
        let mut writes = GroupWrites::new(&store, &mut tails, London);
        assert!(roller
            .fold(&mut writes.log("B-1"), &sample(T0), now)
            .unwrap()
            .is_fresh());
        writes.commit().unwrap();
        assert_eq!(log.hour(T0).unwrap().unwrap().samples, 1);
    }

    #[test]
    fn tails_read_from_a_store_written_before_answer_like_it() {
        let (_dir, store) = store();
        fold_in_groups(
            &store,
            &mut Tails::default(),
            &[sample(T0), sample(T0 + 2 * MIN)],
            1,
        );
        // A new desk (after a restart): the tails start empty; a sample between the two stored
        // ones and one after both fold as they would one write at a time.
        let mut tails = Tails::default();
        fold_in_groups(
            &store,
            &mut tails,
            &[sample(T0 + MIN), sample(T0 + 3 * MIN)],
            2,
        );
        let log = AssetLog::new(&store, "B-1");
        let hour = log.hour(T0).unwrap().unwrap();
        assert_same(&hour, &Roller::default().recompute_hour(&log, T0).unwrap());
        assert_eq!(hour.samples, 4);
    }
}
