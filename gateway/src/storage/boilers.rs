//! What the boiler domain stores: each boiler's raw samples, reported gaps, hourly rollups and
//! the day and month rollups kept equal to them ([`crate::boilers::periods`]), the asset
//! register and each boiler's alert state, behind the [`BoilerStore`] trait
//! ([`super::embedded::SledBoilerStore`] on sled).
//!
//! [`AssetLog`] is one boiler's view of a [`BoilerStore`] as the domain's
//! [`TelemetryLog`], which is all the rollups need.
//!
//! Writes are durable once [`BoilerStore::flush`] returns: the boiler desk flushes once per
//! ingested group (not per sample), before the group's acks go out.

use proto::TimestampMs;

use super::StoreError;
use crate::boilers::periods::Level;
use crate::boilers::{Alert, Asset, BoilerAlerts, GapSpan, Rollup, Sample, TelemetryLog};

/// Raw samples, gaps and rollups per asset, the register and alert state.
pub trait BoilerStore: Send + Sync + 'static {
    /// Stores `asset`'s sample; false (and nothing stored) when one with its timestamp is there.
    fn insert_sample(&self, asset: &str, sample: &Sample) -> Result<bool, StoreError>;
    /// `asset`'s samples taken in `[from_ms, to_ms)`, in time order.
    fn samples_in(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Sample>, StoreError>;
    /// `asset`'s latest sample taken before `at_ms`.
    fn sample_before(&self, asset: &str, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError>;
    /// `asset`'s earliest sample taken after `at_ms`.
    fn sample_after(&self, asset: &str, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError>;
    /// Stores a reported gap; false when the same span is there.
    fn insert_gap(&self, asset: &str, gap: &GapSpan) -> Result<bool, StoreError>;
    /// `asset`'s reported gaps overlapping `[from_ms, to_ms)`.
    fn gaps_overlapping(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<GapSpan>, StoreError>;
    /// The rollup of `asset`'s hour starting at `start_ms`, if it has one.
    fn hour(&self, asset: &str, start_ms: TimestampMs) -> Result<Option<Rollup>, StoreError>;
    /// Stores an hour's rollup, replacing the one there.
    fn put_hour(&self, asset: &str, rollup: &Rollup) -> Result<(), StoreError>;
    /// Stores new samples (none with its asset and timestamp is there: the caller checked),
    /// hours' rollups and the days' and months' made from them (replacing those there), all or
    /// none: a crash leaves no sample stored without the hours, days and months it counts in.
    /// The write-back of [`super::write_back::GroupWrites`].
    fn write_telemetry(
        &self,
        samples: &[(&str, &Sample)],
        hours: &[(&str, &Rollup)],
        periods: &[(&str, Level, &Rollup)],
    ) -> Result<(), StoreError>;
    /// `asset`'s stored days or months starting in `[from_ms, to_ms)`, in time order.
    fn periods_in(
        &self,
        asset: &str,
        level: Level,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError>;
    /// Replaces all of `asset`'s stored days and months with `periods`, in one write.
    fn replace_periods(&self, asset: &str, periods: &[(Level, Rollup)]) -> Result<(), StoreError>;
    /// The time zone (IANA name) whose days and months are stored, once every boiler's are
    /// built from its hours; `None` before.
    fn periods_calendar(&self) -> Result<Option<String>, StoreError>;
    /// Records that every boiler's days and months are stored for `calendar`, or (`None`) that
    /// they are not to be read, while they are rebuilt.
    fn set_periods_calendar(&self, calendar: Option<&str>) -> Result<(), StoreError>;
    /// `asset`'s hours with rollups that start in `[from_ms, to_ms)`, in time order.
    fn hours_in(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError>;

    /// Drops every boiler's raw samples taken before `before_ms`, and the reported gaps that
    /// ended before it; rollups stay. Returns how many samples went.
    fn purge_raw_before(&self, before_ms: TimestampMs) -> Result<u64, StoreError>;

    /// Stores assets on the register, replacing any with the same id.
    fn save_assets(&self, assets: &[&Asset]) -> Result<(), StoreError>;
    /// Every asset on the register, in id order.
    fn assets(&self) -> Result<Vec<Asset>, StoreError>;

    /// Stores a boiler's alert state (open alerts with their acknowledgements, and what the
    /// hysteresis and streaks remember), replacing what was there.
    fn save_alerts(&self, asset: &str, alerts: &BoilerAlerts) -> Result<(), StoreError>;
    /// Every boiler's alert state, by asset id.
    fn alert_states(&self) -> Result<Vec<(String, BoilerAlerts)>, StoreError>;
    /// Keeps an alert that closed, for its history.
    fn save_closed_alert(&self, asset: &str, alert: &Alert) -> Result<(), StoreError>;
    /// `asset`'s closed alerts opened in `[from_ms, to_ms)`, oldest first.
    fn closed_alerts(
        &self,
        asset: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Alert>, StoreError>;

    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// One boiler's telemetry in a [`BoilerStore`], as the domain's
/// [`TelemetryLog`]. It offers the stored days and months only once the store says they are
/// built; before that, readers merge hours.
pub struct AssetLog<'a> {
    store: &'a dyn BoilerStore,
    asset: &'a str,
    periods: bool,
}

impl<'a> AssetLog<'a> {
    /// `asset`'s log in `store`.
    pub fn new(store: &'a dyn BoilerStore, asset: &'a str) -> Self {
        // Unreadable: read hours, which are the record of truth.
        let periods = store.periods_calendar().ok().flatten().is_some();
        Self {
            store,
            asset,
            periods,
        }
    }
}

impl TelemetryLog for AssetLog<'_> {
    type Error = StoreError;

    fn insert_sample(&mut self, sample: &Sample) -> Result<bool, StoreError> {
        self.store.insert_sample(self.asset, sample)
    }

    fn samples_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Sample>, StoreError> {
        self.store.samples_in(self.asset, from_ms, to_ms)
    }

    fn sample_before(&self, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        self.store.sample_before(self.asset, at_ms)
    }

    fn sample_after(&self, at_ms: TimestampMs) -> Result<Option<Sample>, StoreError> {
        self.store.sample_after(self.asset, at_ms)
    }

    fn insert_gap(&mut self, gap: &GapSpan) -> Result<bool, StoreError> {
        self.store.insert_gap(self.asset, gap)
    }

    fn gaps_overlapping(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<GapSpan>, StoreError> {
        self.store.gaps_overlapping(self.asset, from_ms, to_ms)
    }

    fn hour(&self, start_ms: TimestampMs) -> Result<Option<Rollup>, StoreError> {
        self.store.hour(self.asset, start_ms)
    }

    fn put_hour(&mut self, rollup: &Rollup) -> Result<(), StoreError> {
        self.store.put_hour(self.asset, rollup)
    }

    fn hours_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, StoreError> {
        self.store.hours_in(self.asset, from_ms, to_ms)
    }

    fn periods_in(
        &self,
        level: Level,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Option<Vec<Rollup>>, StoreError> {
        if !self.periods {
            return Ok(None);
        }
        self.store
            .periods_in(self.asset, level, from_ms, to_ms)
            .map(Some)
    }
}
