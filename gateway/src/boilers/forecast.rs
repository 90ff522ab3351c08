//! A pressure forecast: from the trend of each day's lowest pressure, the date a slowly leaking
//! sealed system will fall below 1 bar, so that a repair can be booked before the boiler locks
//! out.
//!
//! Pressure rises by a few tenths of a bar each time the system heats up, so the daily heating
//! cycle would swamp a leak of a few hundredths a day. Each day's minimum is the cold-system
//! reading, which the cycle does not move; the trend is the Theil–Sen slope through the minima
//! (the median of the slopes between every pair of days), which a day of odd readings does not
//! drag. A refill (the minimum jumping up) starts the trend afresh.

use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use super::rollup::Rollup;

/// One day in ms.
const DAY_MS: i64 = 24 * 3_600_000;

/// How the forecast is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForecastConfig {
    /// The pressure to forecast reaching, bar.
    pub threshold_bar: f64,
    /// Days of minima needed (since the last refill) before forecasting.
    pub min_days: usize,
    /// Only the latest this many days are used.
    pub window_days: usize,
    /// A fall slower than this, bar per day, is not a leak (sensor drift, seasons).
    pub min_leak_bar_per_day: f64,
    /// A rise of the daily minimum by this much, bar, is a refill.
    pub refill_rise_bar: f64,
    /// A day needs this share of its time with data for its minimum to count.
    pub min_day_coverage: f64,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            threshold_bar: 1.0,
            min_days: 7,
            window_days: 28,
            min_leak_bar_per_day: 0.005,
            refill_rise_bar: 0.2,
            min_day_coverage: 0.5,
        }
    }
}

/// A day's lowest pressure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DailyMinimum {
    /// The day's start (UTC ms).
    pub day_start_ms: TimestampMs,
    /// The lowest pressure read that day, bar.
    pub min_bar: f64,
}

/// The daily minima of days with enough data, from daily rollups in time order.
pub fn daily_minima(days: &[Rollup], config: &ForecastConfig) -> Vec<DailyMinimum> {
    days.iter()
        .filter(|day| day.coverage() >= config.min_day_coverage)
        .filter_map(|day| {
            Some(DailyMinimum {
                day_start_ms: day.start_ms,
                min_bar: day.pressure_bar.min?,
            })
        })
        .collect()
}

/// A leak's forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PressureForecast {
    /// The trend, bar per day (negative: falling).
    pub slope_bar_per_day: f64,
    /// When the trend crosses the threshold (UTC ms); in the past if it already has.
    pub below_threshold_at_ms: TimestampMs,
    /// The trend's value at the latest day, bar.
    pub latest_trend_bar: f64,
    /// How many days of minima it rests on.
    pub days_used: usize,
}

impl PressureForecast {
    /// Whole days from `now_ms` until the crossing (0 if already crossed).
    pub fn days_until(&self, now_ms: TimestampMs) -> i64 {
        ((self.below_threshold_at_ms - now_ms).max(0) + DAY_MS - 1) / DAY_MS
    }
}

/// The forecast from daily minima in time order; `None` when the system is not leaking or there
/// is too little data to say.
pub fn forecast(minima: &[DailyMinimum], config: &ForecastConfig) -> Option<PressureForecast> {
    let window = &minima[minima.len().saturating_sub(config.window_days.max(2))..];
    // Only the days since the last refill.
    let since_refill = window
        .windows(2)
        .rposition(|pair| pair[1].min_bar - pair[0].min_bar >= config.refill_rise_bar)
        .map_or(0, |i| i + 1);
    let days = &window[since_refill..];
    if days.len() < config.min_days.max(2) {
        return None;
    }
    let x = |d: &DailyMinimum| (d.day_start_ms - days[0].day_start_ms) as f64 / DAY_MS as f64;
    let mut slopes = Vec::with_capacity(days.len() * (days.len() - 1) / 2);
    for (i, a) in days.iter().enumerate() {
        for b in &days[i + 1..] {
            let dx = x(b) - x(a);
            if dx > 0.0 {
                slopes.push((b.min_bar - a.min_bar) / dx);
            }
        }
    }
    let slope = median(&mut slopes)?;
    // `median` returned a finite slope.
    if slope > -config.min_leak_bar_per_day {
        return None;
    }
    let mut intercepts: Vec<f64> = days.iter().map(|d| d.min_bar - slope * x(d)).collect();
    let intercept = median(&mut intercepts)?;
    let crossing_days = (config.threshold_bar - intercept) / slope;
    let last = days.last()?;
    Some(PressureForecast {
        slope_bar_per_day: slope,
        below_threshold_at_ms: days[0].day_start_ms + (crossing_days * DAY_MS as f64) as i64,
        latest_trend_bar: intercept + slope * x(last),
        days_used: days.len(),
    })
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boilers::rollup::tests::{sample, T0};
    use crate::boilers::rollup::{merge_period, MemoryLog, Roller, RollupConfig, TelemetryLog};
    use crate::boilers::sample::Sample;

    /// Days of samples every 10 minutes: a cold pressure of `start_bar` falling `leak` bar a
    /// day, plus 0.4 bar while the heating runs (06:00–09:00 and 16:00–22:00) and a wobble.
    fn daily_rollups(days: i64, start_bar: f64, leak: f64, refill_on: Option<i64>) -> Vec<Rollup> {
        let roller = Roller::new(RollupConfig {
            sample_interval_ms: 600_000,
            ..RollupConfig::default()
        });
        let mut log = MemoryLog::new();
        let day0 = T0 - 10 * 3_600_000; // midnight UTC
        for i in 0..days * 144 {
            let at = day0 + i * 600_000;
            let day = i / 144;
            let hour = (i % 144) / 6;
            let heating = (6..9).contains(&hour) || (16..22).contains(&hour);
            let refilled = refill_on.is_some_and(|d| day >= d);
            let cold = if refilled {
                1.6 - leak * (day - refill_on.unwrap_or(0)) as f64
            } else {
                start_bar - leak * day as f64
            };
            let wobble = 0.01 * ((i % 7) as f64 - 3.0) / 3.0;
            let bar = cold + if heating { 0.4 } else { 0.0 } + wobble.abs();
            let s = Sample {
                pressure_bar: Some(bar as f32),
                ..sample(at)
            };
            roller.fold(&mut log, &s, at).unwrap();
        }
        (0..days)
            .map(|d| {
                let start = day0 + d * DAY_MS;
                merge_period(
                    start,
                    start + DAY_MS,
                    &log.hours_in(start, start + DAY_MS).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_slow_leak_is_forecast_to_cross_1_bar_on_the_right_day() {
        // 1.8 bar falling 0.03 bar a day: 1 bar after 26.7 days.
        let config = ForecastConfig::default();
        let days = daily_rollups(14, 1.8, 0.03, None);
        let f = forecast(&daily_minima(&days, &config), &config).unwrap();
        assert!((f.slope_bar_per_day + 0.03).abs() < 0.002, "{f:?}");
        let expected = days[0].start_ms + (26.67 * DAY_MS as f64) as i64;
        assert!(
            (f.below_threshold_at_ms - expected).abs() < DAY_MS / 2,
            "{f:?}"
        );
        assert_eq!(f.days_used, 14);
        let now = days[13].end_ms;
        assert_eq!(f.days_until(now), 13);
    }

    #[test]
    fn a_tight_system_and_too_few_days_give_no_forecast() {
        let config = ForecastConfig::default();
        let tight = daily_rollups(14, 1.5, 0.0, None);
        assert_eq!(forecast(&daily_minima(&tight, &config), &config), None);
        let short = daily_rollups(5, 1.8, 0.05, None);
        assert_eq!(forecast(&daily_minima(&short, &config), &config), None);
        assert_eq!(forecast(&[], &config), None);
    }

    #[test]
    fn a_refill_restarts_the_trend() {
        let config = ForecastConfig::default();
        // Leaking 0.05 a day; refilled to 1.6 bar on day 10; 9 days since.
        let days = daily_rollups(19, 1.5, 0.05, Some(10));
        let f = forecast(&daily_minima(&days, &config), &config).unwrap();
        assert_eq!(f.days_used, 9);
        assert!((f.slope_bar_per_day + 0.05).abs() < 0.002, "{f:?}");
        let expected = days[10].start_ms + 12 * DAY_MS;
        assert!(
            (f.below_threshold_at_ms - expected).abs() < DAY_MS / 2,
            "{f:?}"
        );
    }
}
