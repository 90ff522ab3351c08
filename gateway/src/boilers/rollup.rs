//! Hourly and daily rollups of one boiler's samples: min/mean/max of each reading, minutes with
//! the flame on, burner starts and hours, gas and heat used from counter deltas, and coverage
//! (the share of the period with data), so a gap shows as a gap, never as zeros.
//!
//! How a sample counts:
//! - its readings go to the hour it was taken in;
//! - it stands for the time until the next sample, at most one sample interval: that span is the
//!   hour's coverage, and flame-on time when its flame was on;
//! - the counters' change from it to the next sample (use, see [`counter_step`]) is spread over
//!   the hours between the two in proportion to time, unless they lie more than
//!   [`RollupConfig::max_counter_span_ms`] apart: use across a longer silence is not attributed
//!   (the hours show their low coverage instead of a spike).
//!
//! In-order samples (the common case) fold in incrementally: the few hours they touch are
//! updated in place. A late or out-of-order sample changes its neighbours' spans and deltas, so
//! the hours those touch are recomputed from raw samples; the result is the same whatever the
//! arrival order (a property test checks it). A resent sample (same asset and timestamp) counts
//! once: the [`TelemetryLog`] refuses it.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use super::periods::Level;
use super::sample::{widen, GapSpan, Sample};

/// One hour, in ms.
pub const HOUR_MS: i64 = 3_600_000;

/// Consecutive samples further apart than this many sample intervals do not count a flame
/// ignition between them: the flame may have gone out and come back several times.
const IGNITION_GAP_INTERVALS: i64 = 3;

/// The limits that tell a counter's real change from a reset, a wrap or garbage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CounterLimit {
    /// The most the counter can plausibly advance in an hour, in its unit.
    pub max_per_hour: f64,
    /// Added to the hourly allowance, for counters that step in whole units (one start, one
    /// hour) over a sample interval of a minute.
    pub slack: f64,
    /// Where the counter wraps to zero, if it does (OpenTherm's ids 116–123 are 16-bit).
    pub wrap_at: Option<f64>,
}

impl CounterLimit {
    fn allowance(self, elapsed_ms: i64) -> f64 {
        self.max_per_hour * elapsed_ms.max(0) as f64 / HOUR_MS as f64 + self.slack
    }
}

/// The counters' limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CounterLimits {
    /// Gas meter, m³: a 35 kW domestic boiler burns under 4 m³/h.
    pub gas_m3: CounterLimit,
    /// Heat meter, kWh.
    pub heat_kwh: CounterLimit,
    /// Burner starts (ids 116, 119, 113).
    pub starts: CounterLimit,
    /// Burner hours, h (ids 120, 123).
    pub hours_h: CounterLimit,
}

impl Default for CounterLimits {
    fn default() -> Self {
        Self {
            gas_m3: CounterLimit {
                max_per_hour: 10.0,
                slack: 0.01,
                wrap_at: None,
            },
            heat_kwh: CounterLimit {
                max_per_hour: 100.0,
                slack: 0.1,
                wrap_at: None,
            },
            starts: CounterLimit {
                max_per_hour: 240.0,
                slack: 2.0,
                wrap_at: Some(65_536.0),
            },
            hours_h: CounterLimit {
                max_per_hour: 1.0,
                slack: 1.0,
                wrap_at: Some(65_536.0),
            },
        }
    }
}

/// How rollups are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RollupConfig {
    /// How often hubs sample, in ms: the longest time one sample stands for.
    pub sample_interval_ms: i64,
    /// Counter changes between samples further apart than this are not attributed to any hour.
    pub max_counter_span_ms: i64,
    /// Samples taken longer ago than this (by the gateway's clock) are refused: their raw
    /// neighbours may have been purged, and recomputing from what is left would lose data.
    /// Keep it well inside the raw retention.
    pub max_lateness_ms: i64,
    /// Samples dated further than this ahead of the gateway's clock are refused: a hub whose
    /// clock is that wrong would put data in hours that have not happened.
    pub max_ahead_ms: i64,
    /// A reported gap counts for at most this long (a device whose clock jumped must not make
    /// the gateway recompute years of hours).
    pub max_gap_span_ms: i64,
    /// The counters' limits.
    pub counters: CounterLimits,
}

impl Default for RollupConfig {
    fn default() -> Self {
        Self {
            sample_interval_ms: 60_000,
            max_counter_span_ms: 2 * HOUR_MS,
            max_lateness_ms: 30 * 24 * HOUR_MS,
            max_ahead_ms: 24 * HOUR_MS,
            max_gap_span_ms: 31 * 24 * HOUR_MS,
            counters: CounterLimits::default(),
        }
    }
}

/// What a counter did between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CounterStep {
    /// It advanced by this much.
    Advanced(f64),
    /// It passed its wrap point and advanced by this much in all.
    Wrapped(f64),
    /// It went backwards (a reset: meter or boiler board replaced, memory cleared); this much is
    /// counted as used since the reset (its new value, when that is plausible; else nothing).
    Reset(f64),
    /// It jumped forward by more than could be used in the time: nothing is counted.
    Implausible,
}

impl CounterStep {
    /// The use counted: never negative, never more than the limit allows.
    pub fn used(self) -> f64 {
        match self {
            CounterStep::Advanced(used) | CounterStep::Wrapped(used) | CounterStep::Reset(used) => {
                used
            }
            CounterStep::Implausible => 0.0,
        }
    }
}

/// What a counter going from `before` to `after` in `elapsed_ms` means.
pub fn counter_step(before: f64, after: f64, elapsed_ms: i64, limit: CounterLimit) -> CounterStep {
    let allowance = limit.allowance(elapsed_ms);
    if after >= before {
        let used = after - before;
        return if used <= allowance {
            CounterStep::Advanced(used)
        } else {
            CounterStep::Implausible
        };
    }
    if let Some(wrap_at) = limit.wrap_at {
        let used = wrap_at - before + after;
        if before < wrap_at && (0.0..=allowance).contains(&used) {
            return CounterStep::Wrapped(used);
        }
    }
    CounterStep::Reset(if after <= allowance { after } else { 0.0 })
}

/// Min, mean and max of one reading over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// How many samples had the reading.
    pub count: u32,
    /// Their sum, for the mean and for merging periods.
    pub sum: f64,
    /// The lowest; `None` when `count` is 0.
    pub min: Option<f64>,
    /// The highest; `None` when `count` is 0.
    pub max: Option<f64>,
}

impl Stat {
    fn add(&mut self, value: Option<f32>) {
        if let Some(value) = value {
            let value = widen(value);
            self.count += 1;
            self.sum += value;
            self.min = Some(self.min.map_or(value, |min| min.min(value)));
            self.max = Some(self.max.map_or(value, |max| max.max(value)));
        }
    }

    fn merge(&mut self, other: &Stat) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = min_opt(self.min, other.min);
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The mean, if any sample had the reading.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One boiler's figures over one period (an hour, or a day or month merged from hours). Every
/// use is `None` when nothing was known about it in the period, never a made-up zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// The period's start (UTC ms, inclusive).
    pub start_ms: TimestampMs,
    /// The period's end (UTC ms, exclusive).
    pub end_ms: TimestampMs,
    /// Samples taken in the period.
    pub samples: u32,
    /// Time the samples stand for, ms.
    pub covered_ms: i64,
    /// Of that, time with a flame reading, ms.
    pub flame_known_ms: i64,
    /// Of that, time with the flame on, ms.
    pub flame_on_ms: i64,
    /// Time the hub reported dropping samples for (a [`proto::Gap`]), ms.
    pub gap_reported_ms: i64,
    /// Flow temperature, °C.
    pub flow_c: Stat,
    /// Return temperature, °C.
    pub return_c: Stat,
    /// Return temperature while the flame was on, °C: what decides condensing.
    pub return_c_firing: Stat,
    /// Return temperature while the flame was on for central heating (not hot water), °C: what
    /// a lower flow temperature would change.
    pub return_c_heating: Stat,
    /// Hot-water temperature, °C.
    pub dhw_c: Stat,
    /// Outside temperature, °C.
    pub outside_c: Stat,
    /// Exhaust temperature, °C.
    pub exhaust_c: Stat,
    /// Central-heating setpoint, °C.
    pub ch_setpoint_c: Stat,
    /// Room temperature, °C.
    pub room_c: Stat,
    /// Water pressure, bar.
    pub pressure_bar: Stat,
    /// Relative modulation, %.
    pub modulation_pct: Stat,
    /// Gas used, m³ (gas meter deltas).
    pub gas_used_m3: Option<f64>,
    /// Heat delivered, kWh (heat meter deltas).
    pub heat_out_kwh: Option<f64>,
    /// Gas used, m³, over only the intervals where the heat meter also counted: the denominator
    /// of measured efficiency.
    pub metered_gas_m3: Option<f64>,
    /// Heat delivered, kWh, over the same intervals as `metered_gas_m3`.
    pub metered_heat_kwh: Option<f64>,
    /// Burner starts, all (id 116).
    pub burner_starts: Option<f64>,
    /// Burner starts for hot water (id 119).
    pub dhw_burner_starts: Option<f64>,
    /// Burner starts for heating: id 116 less id 119, over intervals where both were reported.
    pub heating_starts: Option<f64>,
    /// Burner hours, h (id 120).
    pub burner_hours_h: Option<f64>,
    /// Burner hours for hot water, h (id 123).
    pub dhw_burner_hours_h: Option<f64>,
    /// Unsuccessful burner starts (id 113).
    pub failed_starts: Option<f64>,
    /// Flame off → on between consecutive samples: a lower bound on starts where the boiler has
    /// no starts counter.
    pub ignitions_seen: u32,
    /// Counters that went backwards (resets) in the period.
    pub counter_resets: u32,
    /// Samples that reported a fault.
    pub fault_samples: u32,
}

impl Rollup {
    /// An empty period: no data, coverage 0.
    pub fn empty(start_ms: TimestampMs, end_ms: TimestampMs) -> Self {
        Self {
            start_ms,
            end_ms,
            ..Self::default()
        }
    }

    /// The period's length, ms.
    pub fn length_ms(&self) -> i64 {
        (self.end_ms - self.start_ms).max(0)
    }

    /// The share of the period with data, 0 to 1.
    pub fn coverage(&self) -> f64 {
        match self.length_ms() {
            0 => 0.0,
            length => (self.covered_ms as f64 / length as f64).clamp(0.0, 1.0),
        }
    }

    /// Minutes with the flame on; `None` when no sample said.
    pub fn flame_on_min(&self) -> Option<f64> {
        (self.flame_known_ms > 0).then(|| self.flame_on_ms as f64 / 60_000.0)
    }

    /// Heating starts if the hub splits them from hot water's, else all burner starts, else the
    /// ignitions seen; with whether hot water's are excluded.
    pub fn heating_starts_best(&self) -> Option<(f64, bool)> {
        if let Some(heating) = self.heating_starts {
            return Some((heating, true));
        }
        if let Some(all) = self.burner_starts {
            return Some((all, false));
        }
        (self.flame_known_ms > 0).then_some((f64::from(self.ignitions_seen), false))
    }

    /// Adds another period's figures (an hour into its day, say). The periods should not
    /// overlap; the bounds grow to cover both.
    pub fn merge(&mut self, other: &Rollup) {
        self.start_ms = self.start_ms.min(other.start_ms);
        self.end_ms = self.end_ms.max(other.end_ms);
        self.samples += other.samples;
        self.covered_ms += other.covered_ms;
        self.flame_known_ms += other.flame_known_ms;
        self.flame_on_ms += other.flame_on_ms;
        self.gap_reported_ms += other.gap_reported_ms;
        for (mine, theirs) in self.stats_mut().into_iter().zip(other.stats()) {
            mine.merge(theirs);
        }
        for (mine, theirs) in self.uses_mut().into_iter().zip(other.uses()) {
            add_use(mine, theirs);
        }
        self.ignitions_seen += other.ignitions_seen;
        self.counter_resets += other.counter_resets;
        self.fault_samples += other.fault_samples;
    }

    fn stats(&self) -> [&Stat; 11] {
        [
            &self.flow_c,
            &self.return_c,
            &self.return_c_firing,
            &self.return_c_heating,
            &self.dhw_c,
            &self.outside_c,
            &self.exhaust_c,
            &self.ch_setpoint_c,
            &self.room_c,
            &self.pressure_bar,
            &self.modulation_pct,
        ]
    }

    fn stats_mut(&mut self) -> [&mut Stat; 11] {
        [
            &mut self.flow_c,
            &mut self.return_c,
            &mut self.return_c_firing,
            &mut self.return_c_heating,
            &mut self.dhw_c,
            &mut self.outside_c,
            &mut self.exhaust_c,
            &mut self.ch_setpoint_c,
            &mut self.room_c,
            &mut self.pressure_bar,
            &mut self.modulation_pct,
        ]
    }

    fn uses(&self) -> [Option<f64>; 10] {
        [
            self.gas_used_m3,
            self.heat_out_kwh,
            self.metered_gas_m3,
            self.metered_heat_kwh,
            self.burner_starts,
            self.dhw_burner_starts,
            self.heating_starts,
            self.burner_hours_h,
            self.dhw_burner_hours_h,
            self.failed_starts,
        ]
    }

    fn uses_mut(&mut self) -> [&mut Option<f64>; 10] {
        [
            &mut self.gas_used_m3,
            &mut self.heat_out_kwh,
            &mut self.metered_gas_m3,
            &mut self.metered_heat_kwh,
            &mut self.burner_starts,
            &mut self.dhw_burner_starts,
            &mut self.heating_starts,
            &mut self.burner_hours_h,
            &mut self.dhw_burner_hours_h,
            &mut self.failed_starts,
        ]
    }

    fn add_readings(&mut self, sample: &Sample) {
        self.samples += 1;
        self.flow_c.add(sample.flow_c);
        self.return_c.add(sample.return_c);
        if sample.flame == Some(true) {
            self.return_c_firing.add(sample.return_c);
            if sample.ch_active == Some(true) && sample.dhw_active != Some(true) {
                self.return_c_heating.add(sample.return_c);
            }
        }
        self.dhw_c.add(sample.dhw_c);
        self.outside_c.add(sample.outside_c);
        self.exhaust_c.add(sample.exhaust_c);
        self.ch_setpoint_c.add(sample.ch_setpoint_c);
        self.room_c.add(sample.room_c);
        self.pressure_bar.add(sample.pressure_bar);
        self.modulation_pct.add(sample.modulation_pct);
        if sample.reports_fault() {
            self.fault_samples += 1;
        }
    }

    fn add_span(&mut self, ms: i64, flame: Option<bool>) {
        self.covered_ms += ms;
        if let Some(on) = flame {
            self.flame_known_ms += ms;
            if on {
                self.flame_on_ms += ms;
            }
        }
    }

    fn add_pair_use(&mut self, pair: &PairUse, share: f64) {
        for (mine, used) in self.uses_mut().into_iter().zip(pair.uses) {
            add_use(mine, used.map(|used| used * share));
        }
    }
}

fn add_use(total: &mut Option<f64>, used: Option<f64>) {
    if let Some(used) = used {
        *total = Some(total.unwrap_or(0.0) + used);
    }
}

/// The start of the UTC hour holding `at_ms`.
pub fn hour_of(at_ms: TimestampMs) -> TimestampMs {
    // Saturating, so the extremes of a range (`i64::MIN`) floor without overflow.
    at_ms.saturating_sub(at_ms.rem_euclid(HOUR_MS))
}

/// What two consecutive samples say about use between them, in [`Rollup::uses`] order.
#[derive(Debug, Clone, Copy)]
struct PairUse {
    uses: [Option<f64>; 10],
    resets: u32,
    ignition: bool,
}

fn pair_use(a: &Sample, b: &Sample, config: &RollupConfig) -> PairUse {
    let elapsed = b.at_ms - a.at_ms;
    let limits = &config.counters;
    let mut resets = 0;
    let mut step = |before: Option<f64>, after: Option<f64>, limit: CounterLimit| {
        let step = counter_step(before?, after?, elapsed, limit);
        if matches!(step, CounterStep::Reset(_)) {
            resets += 1;
        }
        Some(step.used())
    };
    let count = |value: Option<u32>| value.map(f64::from);
    let gas = step(a.gas_m3, b.gas_m3, limits.gas_m3);
    let heat = step(a.heat_kwh, b.heat_kwh, limits.heat_kwh);
    let starts = step(
        count(a.burner_starts),
        count(b.burner_starts),
        limits.starts,
    );
    let dhw_starts = step(
        count(a.dhw_burner_starts),
        count(b.dhw_burner_starts),
        limits.starts,
    );
    let hours = step(
        count(a.burner_hours_h),
        count(b.burner_hours_h),
        limits.hours_h,
    );
    let dhw_hours = step(
        count(a.dhw_burner_hours_h),
        count(b.dhw_burner_hours_h),
        limits.hours_h,
    );
    let failed = step(
        count(a.failed_starts),
        count(b.failed_starts),
        limits.starts,
    );
    let heating_starts = starts
        .zip(dhw_starts)
        .map(|(all, dhw)| (all - dhw).max(0.0));
    let (metered_gas, metered_heat) = gas.zip(heat).unzip();
    PairUse {
        uses: [
            gas,
            heat,
            metered_gas,
            metered_heat,
            starts,
            dhw_starts,
            heating_starts,
            hours,
            dhw_hours,
            failed,
        ],
        resets,
        ignition: a.flame == Some(false)
            && b.flame == Some(true)
            && elapsed <= IGNITION_GAP_INTERVALS * config.sample_interval_ms,
    }
}

/// One piece of what a sample contributes, for the hour it lands in.
#[derive(Debug, Clone, Copy)]
enum Part<'a> {
    Readings(&'a Sample),
    Span { ms: i64, flame: Option<bool> },
    PairUse { pair: PairUse, share: f64 },
    PairEvents(PairUse),
}

impl Rollup {
    fn apply(&mut self, part: &Part<'_>) {
        match part {
            Part::Readings(sample) => self.add_readings(sample),
            Part::Span { ms, flame } => self.add_span(*ms, *flame),
            Part::PairUse { pair, share } => self.add_pair_use(pair, *share),
            Part::PairEvents(pair) => {
                self.counter_resets += pair.resets;
                if pair.ignition {
                    self.ignitions_seen += 1;
                }
            }
        }
    }
}

/// Calls `each` with every hour that `[from, to)` overlaps and the overlap in ms.
fn split_by_hour(from: TimestampMs, to: TimestampMs, mut each: impl FnMut(TimestampMs, i64)) {
    let mut hour = hour_of(from);
    while hour < to {
        let overlap = to.min(hour + HOUR_MS) - from.max(hour);
        if overlap > 0 {
            each(hour, overlap);
        }
        hour += HOUR_MS;
    }
}

/// How long `a` stands for, given the sample after it.
fn span_of(a: &Sample, next: Option<&Sample>, config: &RollupConfig) -> i64 {
    let interval = config.sample_interval_ms.max(1);
    next.map_or(interval, |next| (next.at_ms - a.at_ms).clamp(0, interval))
}

/// The pieces of `a` covering `span_ms` from its time, `sign` +1 to add or −1 to take back.
fn span_parts<'a>(
    a: &'a Sample,
    span_ms: i64,
    sign: i64,
    each: &mut impl FnMut(TimestampMs, Part<'a>),
) {
    split_by_hour(a.at_ms, a.at_ms + span_ms, |hour, ms| {
        each(
            hour,
            Part::Span {
                ms: ms * sign,
                flame: a.flame,
            },
        );
    });
}

/// The pieces of the pair `a` → `b`: use spread over the hours between, events in `b`'s
/// hour.
fn pair_parts<'a>(
    a: &'a Sample,
    b: &'a Sample,
    config: &RollupConfig,
    each: &mut impl FnMut(TimestampMs, Part<'a>),
) {
    let elapsed = b.at_ms - a.at_ms;
    if elapsed <= 0 || elapsed > config.max_counter_span_ms {
        return;
    }
    let pair = pair_use(a, b, config);
    split_by_hour(a.at_ms, b.at_ms, |hour, ms| {
        each(
            hour,
            Part::PairUse {
                pair,
                share: ms as f64 / elapsed as f64,
            },
        );
    });
    each(hour_of(b.at_ms), Part::PairEvents(pair));
}

/// Everything `a` contributes, given the sample after it.
fn sample_parts<'a>(
    a: &'a Sample,
    next: Option<&'a Sample>,
    config: &RollupConfig,
    each: &mut impl FnMut(TimestampMs, Part<'a>),
) {
    each(hour_of(a.at_ms), Part::Readings(a));
    span_parts(a, span_of(a, next, config), 1, each);
    if let Some(next) = next {
        pair_parts(a, next, config, each);
    }
}

/// Where one boiler's raw samples, reported gaps and hourly rollups are kept: the storage seam
/// as the boiler domain needs it. The gateway's store implements it; [`MemoryLog`] is for tests.
pub trait TelemetryLog {
    /// Why the store failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores a sample; false (and nothing stored) when one with its timestamp is there.
    fn insert_sample(&mut self, sample: &Sample) -> Result<bool, Self::Error>;
    /// The samples taken in `[from_ms, to_ms)`, in time order.
    fn samples_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Sample>, Self::Error>;
    /// The latest sample taken before `at_ms`.
    fn sample_before(&self, at_ms: TimestampMs) -> Result<Option<Sample>, Self::Error>;
    /// The earliest sample taken after `at_ms`.
    fn sample_after(&self, at_ms: TimestampMs) -> Result<Option<Sample>, Self::Error>;
    /// Stores a reported gap; false when the same span is there.
    fn insert_gap(&mut self, gap: &GapSpan) -> Result<bool, Self::Error>;
    /// The reported gaps overlapping `[from_ms, to_ms)`.
    fn gaps_overlapping(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<GapSpan>, Self::Error>;
    /// The rollup of the hour starting at `start_ms`, if it has one.
    fn hour(&self, start_ms: TimestampMs) -> Result<Option<Rollup>, Self::Error>;
    /// Stores an hour's rollup, replacing the one there.
    fn put_hour(&mut self, rollup: &Rollup) -> Result<(), Self::Error>;
    /// The hours with rollups that start in `[from_ms, to_ms)`, in time order.
    fn hours_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, Self::Error>;
    /// The stored days or months (see [`super::periods`]) starting in `[from_ms, to_ms)`, in
    /// time order; `None` when this log keeps only hours, so readers merge those.
    fn periods_in(
        &self,
        _level: Level,
        _from_ms: TimestampMs,
        _to_ms: TimestampMs,
    ) -> Result<Option<Vec<Rollup>>, Self::Error> {
        Ok(None)
    }
}

/// What folding a sample in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folded {
    /// A sample with this timestamp was already there: nothing changed (evaluate no alerts).
    Duplicate,
    /// Older than [`RollupConfig::max_lateness_ms`]: refused, nothing changed.
    TooLate,
    /// Further ahead of the gateway's clock than [`RollupConfig::max_ahead_ms`]: refused,
    /// nothing changed.
    TooFarAhead,
    /// The newest sample: folded in incrementally; these hours changed.
    InOrder {
        /// The hours (start, UTC ms) updated.
        hours: Vec<TimestampMs>,
    },
    /// A late or out-of-order sample: these hours were recomputed from raw samples.
    Recomputed {
        /// The hours (start, UTC ms) recomputed.
        hours: Vec<TimestampMs>,
    },
}

impl Folded {
    /// Whether the sample was new (so alerts should see it).
    pub fn is_fresh(&self) -> bool {
        matches!(self, Folded::InOrder { .. } | Folded::Recomputed { .. })
    }
}

/// Folds samples and gaps into hourly rollups.
#[derive(Debug, Clone, Default)]
pub struct Roller {
    config: RollupConfig,
}

impl Roller {
    /// A roller with these settings.
    pub fn new(config: RollupConfig) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &RollupConfig {
        &self.config
    }

    /// Stores `sample` (already checked: see [`super::reading::check`]) in `log` and brings the
    /// hours it changes up to date. `now_ms` is the gateway's clock.
    pub fn fold<L: TelemetryLog>(
        &self,
        log: &mut L,
        sample: &Sample,
        now_ms: TimestampMs,
    ) -> Result<Folded, L::Error> {
        if sample.at_ms < now_ms.saturating_sub(self.config.max_lateness_ms) {
            return Ok(Folded::TooLate);
        }
        // Also keeps every time the arithmetic below sees far from overflow.
        if sample.at_ms > now_ms.saturating_add(self.config.max_ahead_ms) {
            return Ok(Folded::TooFarAhead);
        }
        if !log.insert_sample(sample)? {
            return Ok(Folded::Duplicate);
        }
        let before = log.sample_before(sample.at_ms)?;
        let after = log.sample_after(sample.at_ms)?;
        match after {
            None => self.append(log, before.as_ref(), sample),
            Some(after) => {
                let mut hours = BTreeSet::new();
                let mut touched = |hour: TimestampMs, _: Part<'_>| {
                    hours.insert(hour);
                };
                if let Some(before) = &before {
                    // What `before` contributed with `after` as its neighbour, and will with
                    // `sample`.
                    sample_parts(before, Some(&after), &self.config, &mut touched);
                    sample_parts(before, Some(sample), &self.config, &mut touched);
                }
                sample_parts(sample, Some(&after), &self.config, &mut touched);
                self.recompute_hours(log, &hours)?;
                Ok(Folded::Recomputed {
                    hours: hours.into_iter().collect(),
                })
            }
        }
    }

    /// The in-order case: only the hours `sample` and its predecessor's new span touch.
    fn append<'a, L: TelemetryLog>(
        &self,
        log: &mut L,
        before: Option<&'a Sample>,
        sample: &'a Sample,
    ) -> Result<Folded, L::Error> {
        let mut changes: BTreeMap<TimestampMs, Vec<Part<'a>>> = BTreeMap::new();
        {
            let mut record = |hour: TimestampMs, part: Part<'a>| {
                changes.entry(hour).or_default().push(part);
            };
            if let Some(before) = before {
                // `before` stood for a whole interval while it was the newest; now its span ends
                // at `sample` at the latest.
                span_parts(before, span_of(before, None, &self.config), -1, &mut record);
                span_parts(
                    before,
                    span_of(before, Some(sample), &self.config),
                    1,
                    &mut record,
                );
                pair_parts(before, sample, &self.config, &mut record);
            }
            sample_parts(sample, None, &self.config, &mut record);
        }
        let hours: Vec<TimestampMs> = changes.keys().copied().collect();
        for (hour, parts) in changes {
            let mut rollup = log
                .hour(hour)?
                .unwrap_or_else(|| Rollup::empty(hour, hour + HOUR_MS));
            for part in &parts {
                rollup.apply(part);
            }
            log.put_hour(&rollup)?;
        }
        Ok(Folded::InOrder { hours })
    }

    /// Stores a reported gap and recomputes the hours it overlaps. Returns those hours (none
    /// when the gap was already there). The gap is clipped to the times samples are accepted
    /// for at `now_ms`, and to [`RollupConfig::max_gap_span_ms`].
    pub fn fold_gap<L: TelemetryLog>(
        &self,
        log: &mut L,
        gap: &GapSpan,
        now_ms: TimestampMs,
    ) -> Result<Vec<TimestampMs>, L::Error> {
        let from_ms = gap
            .from_ms
            .max(now_ms.saturating_sub(self.config.max_lateness_ms));
        let to_ms = gap
            .to_ms
            .min(now_ms.saturating_add(self.config.max_ahead_ms))
            .min(from_ms.saturating_add(self.config.max_gap_span_ms));
        let gap = GapSpan {
            from_ms,
            to_ms,
            ..*gap
        };
        if gap.to_ms <= gap.from_ms || !log.insert_gap(&gap)? {
            return Ok(Vec::new());
        }
        let mut hours = BTreeSet::new();
        split_by_hour(gap.from_ms, gap.to_ms, |hour, _| {
            hours.insert(hour);
        });
        self.recompute_hours(log, &hours)?;
        Ok(hours.into_iter().collect())
    }

    fn recompute_hours<L: TelemetryLog>(
        &self,
        log: &mut L,
        hours: &BTreeSet<TimestampMs>,
    ) -> Result<(), L::Error> {
        for &hour in hours {
            let rollup = self.recompute_hour(log, hour)?;
            log.put_hour(&rollup)?;
        }
        Ok(())
    }

    /// The hour starting at `hour` computed afresh from raw samples and reported gaps.
    pub fn recompute_hour<L: TelemetryLog>(
        &self,
        log: &L,
        hour: TimestampMs,
    ) -> Result<Rollup, L::Error> {
        let end = hour + HOUR_MS;
        // Every sample whose span or pair can reach into the hour.
        let reach = self
            .config
            .sample_interval_ms
            .max(self.config.max_counter_span_ms);
        let mut samples = log.samples_in(hour - reach, end)?;
        if let Some(next) = log.sample_after(end - 1)? {
            samples.push(next);
        }
        let mut rollup = Rollup::empty(hour, end);
        for (i, a) in samples.iter().enumerate() {
            if a.at_ms >= end {
                break;
            }
            sample_parts(a, samples.get(i + 1), &self.config, &mut |at, part| {
                if at == hour {
                    rollup.apply(&part);
                }
            });
        }
        for gap in log.gaps_overlapping(hour, end)? {
            rollup.gap_reported_ms += gap.to_ms.min(end) - gap.from_ms.max(hour);
        }
        rollup.gap_reported_ms = rollup.gap_reported_ms.min(HOUR_MS);
        Ok(rollup)
    }
}

/// Merges hourly rollups into one period `[start_ms, end_ms)`: a day, a month. Hours without a
/// rollup count as no data.
pub fn merge_period(start_ms: TimestampMs, end_ms: TimestampMs, hours: &[Rollup]) -> Rollup {
    let mut period = Rollup::empty(start_ms, end_ms);
    for hour in hours
        .iter()
        .filter(|h| h.start_ms >= start_ms && h.start_ms < end_ms)
    {
        period.merge(hour);
    }
    period.start_ms = start_ms;
    period.end_ms = end_ms;
    period
}

/// The UTC bounds of a local calendar day in `tz`: 23 or 25 hours on the days clocks change.
pub fn day_bounds(date: NaiveDate, tz: Tz) -> (TimestampMs, TimestampMs) {
    let start = |date: NaiveDate| {
        // Midnight exists in UK time every day (the clocks change at 01:00 and 02:00).
        tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map_or_else(
                || {
                    date.and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_millis()
                },
                |t| t.timestamp_millis(),
            )
    };
    let next = date.succ_opt().unwrap_or(date);
    (start(date), start(next))
}

/// Every hour in `[from_ms, to_ms)`, those without data as empty rollups (coverage 0), so a
/// chart shows the gap. One entry per hour: the caller bounds the range (a year is 8,760).
pub fn hourly_series<L: TelemetryLog>(
    log: &L,
    from_ms: TimestampMs,
    to_ms: TimestampMs,
) -> Result<Vec<Rollup>, L::Error> {
    let mut stored = log
        .hours_in(hour_of(from_ms), to_ms)?
        .into_iter()
        .peekable();
    let mut series = Vec::new();
    let mut hour = hour_of(from_ms);
    while hour < to_ms {
        match stored.peek() {
            Some(rollup) if rollup.start_ms == hour => {
                series.extend(stored.next());
            }
            _ => series.push(Rollup::empty(hour, hour + HOUR_MS)),
        }
        hour += HOUR_MS;
    }
    Ok(series)
}

/// A [`TelemetryLog`] in memory: for tests, and as the reference the storage seam must match.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    samples: BTreeMap<TimestampMs, Sample>,
    gaps: Vec<GapSpan>,
    hours: BTreeMap<TimestampMs, Rollup>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored hour, in time order.
    pub fn all_hours(&self) -> impl Iterator<Item = &Rollup> {
        self.hours.values()
    }
}

impl TelemetryLog for MemoryLog {
    type Error = Infallible;

    fn insert_sample(&mut self, sample: &Sample) -> Result<bool, Infallible> {
        if self.samples.contains_key(&sample.at_ms) {
            return Ok(false);
        }
        self.samples.insert(sample.at_ms, sample.clone());
        Ok(true)
    }

    fn samples_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Sample>, Infallible> {
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        Ok(self
            .samples
            .range(from_ms..to_ms)
            .map(|(_, s)| s.clone())
            .collect())
    }

    fn sample_before(&self, at_ms: TimestampMs) -> Result<Option<Sample>, Infallible> {
        Ok(self
            .samples
            .range(..at_ms)
            .next_back()
            .map(|(_, s)| s.clone()))
    }

    fn sample_after(&self, at_ms: TimestampMs) -> Result<Option<Sample>, Infallible> {
        Ok(self
            .samples
            .range(at_ms.saturating_add(1)..)
            .next()
            .map(|(_, s)| s.clone()))
    }

    fn insert_gap(&mut self, gap: &GapSpan) -> Result<bool, Infallible> {
        if self.gaps.contains(gap) {
            return Ok(false);
        }
        self.gaps.push(*gap);
        Ok(true)
    }

    fn gaps_overlapping(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<GapSpan>, Infallible> {
        Ok(self
            .gaps
            .iter()
            .filter(|g| g.from_ms < to_ms && g.to_ms > from_ms)
            .copied()
            .collect())
    }

    fn hour(&self, start_ms: TimestampMs) -> Result<Option<Rollup>, Infallible> {
        Ok(self.hours.get(&start_ms).cloned())
    }

    fn put_hour(&mut self, rollup: &Rollup) -> Result<(), Infallible> {
        self.hours.insert(rollup.start_ms, rollup.clone());
        Ok(())
    }

    fn hours_in(
        &self,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, Infallible> {
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        Ok(self
            .hours
            .range(from_ms..to_ms)
            .map(|(_, r)| r.clone())
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use proto::GapReason;

    /// 2026-11-24 10:00 UTC.
    pub(crate) const T0: TimestampMs = 1_795_514_400_000;
    pub(crate) const MIN: i64 = 60_000;

    pub(crate) fn sample(at_ms: TimestampMs) -> Sample {
        Sample {
            asset: "B-1".to_owned(),
            at_ms,
            ..Sample::default()
        }
    }

    /// A fresh, empty log of one implementation of [`TelemetryLog`]: the generic tests below
    /// run against [`MemoryLog`] here and against the storage's implementations in theirs.
    pub(crate) trait FreshLog: TelemetryLog + Sized {
        /// An empty log.
        fn fresh() -> Self;
    }

    impl FreshLog for MemoryLog {
        fn fresh() -> Self {
            MemoryLog::new()
        }
    }

    fn fold_all<L: FreshLog>(samples: &[Sample]) -> L {
        let roller = Roller::default();
        let mut log = L::fresh();
        for s in samples {
            roller.fold(&mut log, s, s.at_ms).unwrap();
        }
        log
    }

    fn hour<L: TelemetryLog>(log: &L, start: TimestampMs) -> Rollup {
        log.hour(start).unwrap().unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    fn close_opt(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => close(a, b),
            (None, None) => true,
            // A use that cancels out to zero may be absent one way and 0 the other: never so
            // here, since uses are only ever added.
            _ => false,
        }
    }

    pub(crate) fn assert_same(a: &Rollup, b: &Rollup) {
        let ints = |r: &Rollup| {
            (
                r.start_ms,
                r.end_ms,
                r.samples,
                r.covered_ms,
                r.flame_known_ms,
                r.flame_on_ms,
                r.gap_reported_ms,
                r.ignitions_seen,
                r.counter_resets,
                r.fault_samples,
            )
        };
        assert_eq!(ints(a), ints(b), "\n{a:#?}\n{b:#?}");
        for (x, y) in a.stats().into_iter().zip(b.stats()) {
            assert_eq!((x.count, x.min, x.max), (y.count, y.min, y.max));
            assert!(close(x.sum, y.sum), "{x:?} {y:?}");
        }
        for (x, y) in a.uses().into_iter().zip(b.uses()) {
            assert!(close_opt(x, y), "{x:?} {y:?}\n{a:#?}\n{b:#?}");
        }
    }

    /// An hour of one-minute samples: flame on for the first 30, gas +0.01 m³ and heat
    /// +0.1 kWh a minute while firing, flow 60 °C and return 40 °C while firing, else 30 °C.
    fn firing_hour() -> Vec<Sample> {
        let mut gas = 1000.0;
        let mut heat = 5000.0;
        (0..=60)
            .map(|i| {
                let firing = i < 30;
                let s = Sample {
                    flow_c: Some(if firing { 60.0 } else { 30.0 }),
                    return_c: Some(if firing { 40.0 } else { 30.0 }),
                    pressure_bar: Some(1.5),
                    flame: Some(firing),
                    gas_m3: Some(gas),
                    heat_kwh: Some(heat),
                    ..sample(T0 + i * MIN)
                };
                if firing {
                    gas += 0.01;
                    heat += 0.1;
                }
                s
            })
            .collect()
    }

    /// Run for every [`TelemetryLog`] by [`telemetry_log_tests`].
    pub(crate) fn an_hour_in_order_has_the_known_figures<L: FreshLog>() {
        let log = fold_all::<L>(&firing_hour());
        let h = hour(&log, T0);
        assert_eq!(h.samples, 60);
        assert_eq!(h.coverage(), 1.0);
        assert_eq!(h.flame_on_min(), Some(30.0));
        assert_eq!(h.flow_c.mean(), Some(45.0));
        assert_eq!(h.return_c_firing.mean(), Some(40.0));
        assert_eq!((h.flow_c.min, h.flow_c.max), (Some(30.0), Some(60.0)));
        assert!(close(h.gas_used_m3.unwrap(), 0.30), "{:?}", h.gas_used_m3);
        assert!(close(h.heat_out_kwh.unwrap(), 3.0), "{:?}", h.heat_out_kwh);
        assert_eq!(h.ignitions_seen, 0);
        assert_eq!(h.burner_starts, None, "no starts counter: no figure");
        // The next hour holds one sample so far, standing for one minute.
        let next = hour(&log, T0 + HOUR_MS);
        assert_eq!(next.samples, 1);
        assert_eq!(next.covered_ms, MIN);
    }

    #[test]
    fn counter_steps_advance_wrap_reset_and_refuse_garbage() {
        let gas = CounterLimits::default().gas_m3;
        let starts = CounterLimits::default().starts;
        assert_eq!(
            counter_step(10.0, 10.02, MIN, gas),
            CounterStep::Advanced(10.02 - 10.0)
        );
        assert_eq!(
            counter_step(10.0, 5000.0, MIN, gas),
            CounterStep::Implausible
        );
        assert_eq!(
            counter_step(10.0, 0.005, MIN, gas),
            CounterStep::Reset(0.005)
        );
        // A meter swapped for one reading 3 m³: a reset, but not 3 m³ used in a minute.
        assert_eq!(counter_step(10.0, 3.0, MIN, gas), CounterStep::Reset(0.0));
        assert_eq!(
            counter_step(65_535.0, 1.0, MIN, starts),
            CounterStep::Wrapped(2.0)
        );
        assert_eq!(
            counter_step(40_000.0, 1.0, MIN, starts),
            CounterStep::Reset(1.0)
        );
        for step in [
            counter_step(5.0, 1.0, MIN, gas),
            counter_step(1.0, 1e9, MIN, gas),
        ] {
            assert!(step.used() >= 0.0 && step.used() < 1.0, "{step:?}");
        }
    }

    /// Run for every [`TelemetryLog`] by [`telemetry_log_tests`].
    pub(crate) fn resets_and_wraps_never_count_negative_or_huge_use<L: FreshLog>() {
        let readings = [
            (1000.0, 65_534),
            (1000.01, 65_535),
            (0.02, 1),
            (0.03, 2),
            (9.0e5, 3),
        ];
        let samples: Vec<Sample> = readings
            .iter()
            .enumerate()
            .map(|(i, (gas, starts))| Sample {
                gas_m3: Some(*gas),
                burner_starts: Some(*starts),
                ..sample(T0 + i as i64 * MIN)
            })
            .collect();
        let h = hour(&fold_all::<L>(&samples), T0);
        // +0.01, then a reset counted from 0 (+0.02), +0.01, then a jump refused.
        assert!(close(h.gas_used_m3.unwrap(), 0.04), "{:?}", h.gas_used_m3);
        // 65534 → 65535 → wrap to 1 (2 starts) → 2 → 3.
        assert_eq!(h.burner_starts, Some(5.0));
        assert_eq!(h.counter_resets, 1);
    }

    /// Run for every [`TelemetryLog`] by [`telemetry_log_tests`].
    pub(crate) fn hot_water_starts_are_told_from_heating_starts<L: FreshLog>() {
        let counts = [(100, 40), (104, 41), (110, 41), (111, 42)];
        let samples: Vec<Sample> = counts
            .iter()
            .enumerate()
            .map(|(i, (all, dhw))| Sample {
                burner_starts: Some(*all),
                dhw_burner_starts: Some(*dhw),
                ..sample(T0 + i as i64 * MIN)
            })
            .collect();
        let h = hour(&fold_all::<L>(&samples), T0);
        assert_eq!(h.burner_starts, Some(11.0));
        assert_eq!(h.dhw_burner_starts, Some(2.0));
        assert_eq!(h.heating_starts, Some(9.0));
        assert_eq!(h.heating_starts_best(), Some((9.0, true)));
    }

    /// Run for every [`TelemetryLog`] by [`telemetry_log_tests`].
    pub(crate) fn resent_samples_count_once<L: FreshLog>() {
        let samples = firing_hour();
        let roller = Roller::default();
        let mut log = fold_all::<L>(&samples);
        let before = hour(&log, T0);
        for s in &samples[10..20] {
            assert_eq!(
                roller.fold(&mut log, s, s.at_ms).unwrap(),
                Folded::Duplicate
            );
        }
        assert_eq!(hour(&log, T0), before);
    }

    /// Run for every [`TelemetryLog`] by [`telemetry_log_tests`].
    pub(crate) fn late_samples_fold_in_as_if_they_had_come_in_order<L: FreshLog>() {
        let samples = firing_hour();
        let in_order = fold_all::<L>(&samples);
        // The hub's backlog arrives after the newer samples: every third one late, reversed.
        let (late, early): (Vec<_>, Vec<_>) = samples
            .iter()
            .cloned()
            .enumerate()
            .partition(|(i, _)| i % 3 == 1);
        let roller = Roller::default();
        let mut log = L::fresh();
        let now = T0 + 2 * HOUR_MS;
        for (_, s) in &early {
            roller.fold(&mut log, s, now).unwrap();
        }
        for (_, s) in late.iter().rev() {
            let folded = roller.fold(&mut log, s, now).unwrap();
            assert!(matches!(folded, Folded::Recomputed { .. }), "{folded:?}");
        }
        for start in [T0, T0 + HOUR_MS] {
            assert_same(&hour(&log, start), &hour(&in_order, start));
        }
        // Too late to fold in, or dated in the future or at the end of time: refused.
        let ancient = sample(now - 40 * 24 * HOUR_MS);
        assert_eq!(
            roller.fold(&mut log, &ancient, now).unwrap(),
            Folded::TooLate
        );
        for future in [now + 25 * HOUR_MS, i64::MAX] {
            assert_eq!(
                roller.fold(&mut log, &sample(future), now).unwrap(),
                Folded::TooFarAhead
            );
        }
        assert_eq!(
            roller.fold(&mut log, &sample(i64::MIN), now).unwrap(),
            Folded::TooLate
        );
        // A gap reported over the whole of time is clipped to what samples may fill: 30 days
        // back and one ahead.
        let endless = GapSpan {
            from_ms: i64::MIN,
            to_ms: i64::MAX,
            reason: proto::GapReason::Restart,
        };
        let hours = roller.fold_gap(&mut log, &endless, now).unwrap();
        assert_eq!(hours.len(), 31 * 24);
    }

    /// Run for every [`TelemetryLog`] by [`telemetry_log_tests`].
    pub(crate) fn silence_shows_as_a_gap_with_its_coverage_not_as_zeros<L: FreshLog>() {
        let mut samples = firing_hour();
        samples.truncate(30); // 10:00 to 10:29, firing
                              // The hub is silent until 12:30, then reports again.
        samples.push(Sample {
            flame: Some(false),
            gas_m3: Some(1000.5),
            ..sample(T0 + 150 * MIN)
        });
        let roller = Roller::default();
        let mut log = fold_all::<L>(&samples);
        let series = hourly_series(&log, T0, T0 + 3 * HOUR_MS).unwrap();
        assert_eq!(series.len(), 3);
        assert!(close(series[0].coverage(), 0.5));
        assert_eq!(series[1].coverage(), 0.0);
        assert_eq!(series[1].samples, 0);
        assert_eq!(series[1].flame_on_min(), None);
        assert_eq!(series[1].gas_used_m3, None);
        // Across a two-hour silence the gas used is not attributed to any hour.
        assert!(close(series[0].gas_used_m3.unwrap(), 0.29));
        assert_eq!(series[2].gas_used_m3, None);
        // The hub then reports it had dropped samples over the silence.
        let gap = GapSpan {
            from_ms: T0 + 29 * MIN,
            to_ms: T0 + 150 * MIN,
            reason: GapReason::DiskBudget,
        };
        let now = T0 + 3 * HOUR_MS;
        let hours = roller.fold_gap(&mut log, &gap, now).unwrap();
        assert_eq!(hours, vec![T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS]);
        assert_eq!(
            roller.fold_gap(&mut log, &gap, now).unwrap(),
            Vec::<i64>::new()
        );
        let series = hourly_series(&log, T0, T0 + 3 * HOUR_MS).unwrap();
        assert_eq!(series[1].gap_reported_ms, HOUR_MS);
        assert_eq!(series[1].coverage(), 0.0);
        assert_eq!(series[0].gap_reported_ms, 31 * MIN);
        assert!(
            close(series[0].coverage(), 0.5),
            "the gap leaves coverage as it was"
        );
    }

    /// Run for every [`TelemetryLog`] by [`telemetry_log_tests`].
    pub(crate) fn a_day_is_merged_from_local_hours_with_its_true_length<L: FreshLog>() {
        let tz: Tz = chrono_tz::Europe::London;
        // 25 October 2026: the clocks go back, so the day has 25 hours.
        let date = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        let (start, end) = day_bounds(date, tz);
        assert_eq!(end - start, 25 * HOUR_MS);
        let samples: Vec<Sample> = (0..25 * 60)
            .map(|i| Sample {
                pressure_bar: Some(1.2),
                flame: Some(i % 60 < 6),
                ..sample(start + i * MIN)
            })
            .collect();
        let log = fold_all::<L>(&samples);
        let day = crate::boilers::periods::day_rollup(&log, date, tz).unwrap();
        assert_eq!(day.samples, 1500);
        assert_eq!(day.coverage(), 1.0);
        assert_eq!(day.flame_on_min(), Some(150.0));
        assert_eq!(day.ignitions_seen, 24);
        assert!(close(day.pressure_bar.mean().unwrap(), 1.2));
        // A summer day is 24 hours and starts at 23:00 UTC the day before.
        let (start, end) = day_bounds(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(), tz);
        assert_eq!(end - start, 24 * HOUR_MS);
        assert_eq!(start % (24 * HOUR_MS), 23 * HOUR_MS);
    }

    /// `#[test]`s running every generic body above against the log type `$log`
    /// (a [`FreshLog`]): one test body, every implementation of the seam.
    macro_rules! telemetry_log_tests {
        ($log:ty) => {
            #[test]
            fn an_hour_in_order_has_the_known_figures() {
                $crate::boilers::rollup::tests::an_hour_in_order_has_the_known_figures::<$log>();
            }
            #[test]
            fn resets_and_wraps_never_count_negative_or_huge_use() {
                $crate::boilers::rollup::tests::resets_and_wraps_never_count_negative_or_huge_use::<$log>();
            }
            #[test]
            fn hot_water_starts_are_told_from_heating_starts() {
                $crate::boilers::rollup::tests::hot_water_starts_are_told_from_heating_starts::<$log>();
            }
            #[test]
            fn resent_samples_count_once() {
                $crate::boilers::rollup::tests::resent_samples_count_once::<$log>();
            }
            #[test]
            fn late_samples_fold_in_as_if_they_had_come_in_order() {
                $crate::boilers::rollup::tests::late_samples_fold_in_as_if_they_had_come_in_order::<$log>();
            }
            #[test]
            fn silence_shows_as_a_gap_with_its_coverage_not_as_zeros() {
                $crate::boilers::rollup::tests::silence_shows_as_a_gap_with_its_coverage_not_as_zeros::<$log>();
            }
            #[test]
            fn a_day_is_merged_from_local_hours_with_its_true_length() {
                $crate::boilers::rollup::tests::a_day_is_merged_from_local_hours_with_its_true_length::<$log>();
            }
        };
    }
    pub(crate) use telemetry_log_tests;

    mod memory_log {
        use super::MemoryLog;
        super::telemetry_log_tests!(MemoryLog);
    }

    /// A random stretch of samples: steps of 10 s to 5 min, sometimes a silence of up to 3 h;
    /// counters that advance, and sometimes reset.
    fn arb_samples() -> impl Strategy<Value = Vec<Sample>> {
        let step = prop_oneof![
            8 => 10_000i64..300_000,
            1 => 300_000i64..3 * HOUR_MS,
        ];
        proptest::collection::vec(
            (
                step,
                any::<bool>(),
                0u32..4,
                0.0f64..0.05,
                0u8..20,
                20.0f32..70.0,
            ),
            1..60,
        )
        .prop_map(|steps| {
            let mut at = T0 + 17_000;
            let mut starts = 65_530u32;
            let mut gas = 500.0;
            steps
                .into_iter()
                .map(|(step, flame, more_starts, more_gas, roll, ret)| {
                    at += step;
                    starts = (starts + more_starts) % 65_536;
                    gas += more_gas;
                    if roll == 0 {
                        gas = more_gas;
                    }
                    Sample {
                        flame: (roll != 1).then_some(flame),
                        return_c: Some(ret),
                        burner_starts: Some(starts),
                        gas_m3: (roll != 2).then_some(gas),
                        heat_kwh: Some(gas * 10.0),
                        ..sample(at)
                    }
                })
                .collect()
        })
    }

    /// Samples with an arrival order and some resends, for [`incremental_equals_recomputed`].
    pub(crate) fn arb_arrivals() -> impl Strategy<Value = (Vec<Sample>, Vec<usize>, Vec<usize>)> {
        arb_samples().prop_flat_map(|samples| {
            let n = samples.len();
            (
                Just(samples),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                proptest::collection::vec(0..n, 0..5),
            )
        })
    }

    /// Folded in `order` (then `resends`) into a fresh `L`, every hour equals the same hour
    /// recomputed from raw samples, and the hours of the samples folded in time order.
    pub(crate) fn incremental_equals_recomputed<L: FreshLog>(
        samples: &[Sample],
        order: &[usize],
        resends: &[usize],
    ) -> Result<(), TestCaseError> {
        let roller = Roller::default();
        let now = T0 + 30 * HOUR_MS;
        let mut log = L::fresh();
        for &i in order.iter().chain(resends) {
            roller.fold(&mut log, &samples[i], now).unwrap();
        }
        let in_order: MemoryLog = fold_all(samples);
        let hours: Vec<TimestampMs> = in_order.all_hours().map(|h| h.start_ms).collect();
        let arrived: Vec<TimestampMs> = log
            .hours_in(TimestampMs::MIN, TimestampMs::MAX)
            .unwrap()
            .iter()
            .map(|h| h.start_ms)
            .collect();
        prop_assert_eq!(&arrived, &hours);
        for start in hours {
            let recomputed = roller.recompute_hour(&log, start).unwrap();
            assert_same(&hour(&log, start), &recomputed);
            assert_same(&hour(&in_order, start), &recomputed);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn incremental_equals_recomputed_for_any_arrival_order(
            (samples, order, resends) in arb_arrivals()
        ) {
            incremental_equals_recomputed::<MemoryLog>(&samples, &order, &resends)?;
        }
    }
}
