//! Efficiency per hour, day and month, always labelled with its basis and coverage: measured
//! (heat out ÷ gas energy in) where the home has both a gas and a heat meter, else estimated from
//! the mean return temperature while the flame is on, on the condensing curve kept here.

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use super::periods::{daily_series, rollup_over};
use super::rollup::{day_bounds, Rollup, TelemetryLog};

/// The UK's standard correction of a metered volume to standard temperature and pressure, as
/// bills apply it (The Gas (Calculation of Thermal Energy) Regulations 1996).
pub const VOLUME_CORRECTION: f64 = 1.02264;

/// Megajoules in a kilowatt-hour.
pub const MJ_PER_KWH: f64 = 3.6;

/// The energy in `gas_m3` of gas, kWh gross (higher heating value), as UK bills state it:
/// m³ × calorific value (MJ/m³) × 1.02264 ÷ 3.6.
pub fn gas_kwh(gas_m3: f64, calorific_value_mj_per_m3: f64) -> f64 {
    gas_m3 * calorific_value_mj_per_m3 * VOLUME_CORRECTION / MJ_PER_KWH
}

/// A condensing boiler's efficiency, %, against its return temperature, °C, while firing:
/// straight lines between the points, flat beyond the first and last.
///
/// The default points follow the published shape of that curve: water vapour in the flue gas of
/// natural gas condenses only below a dew point of about 55 °C, so a boiler whose return stays
/// above it runs like a non-condensing one (about 86–87 %), and efficiency climbs as the return
/// falls below it. Sources: The Heating Hub, "Why our condensing boilers do not condense"
/// (2020): 87 % at a 54 °C return, 90 % and more only around 45 °C; Expert Energy, "When
/// condensing boilers don't" (2025): no condensing above about 55 °C, efficiency rising from
/// 88 % towards 100 % as the return falls; the Energy Saving Trust's CE30, "Domestic heating by
/// gas: boiler systems — guidance for installers and specifiers" (2008), §3.1, which shows the
/// same curve. Efficiencies are gross (on the higher calorific value), as SEDBUK and bills are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CondensingCurve {
    /// (return °C, efficiency %) in rising order of return temperature.
    pub points: Vec<(f64, f64)>,
}

impl Default for CondensingCurve {
    fn default() -> Self {
        Self {
            points: vec![
                (30.0, 95.0),
                (40.0, 92.0),
                (50.0, 89.0),
                (55.0, 87.0),
                (60.0, 86.0),
            ],
        }
    }
}

impl CondensingCurve {
    /// The efficiency, %, at a mean return of `return_c` °C while firing; `None` when the curve
    /// has no points or the temperature is not a number.
    pub fn efficiency_pct(&self, return_c: f64) -> Option<f64> {
        if !return_c.is_finite() {
            return None;
        }
        let (first, last) = (self.points.first()?, self.points.last()?);
        if return_c <= first.0 {
            return Some(first.1);
        }
        if return_c >= last.0 {
            return Some(last.1);
        }
        self.points.windows(2).find_map(|pair| {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            (return_c >= x0 && return_c <= x1 && x1 > x0)
                .then(|| y0 + (y1 - y0) * (return_c - x0) / (x1 - x0))
        })
    }
}

/// How efficiency is worked out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EfficiencyConfig {
    /// The gas's calorific value, MJ/m³ (gross). Bills state the month's; 39.5 is typical.
    pub calorific_value_mj_per_m3: f64,
    /// The curve for estimates.
    pub curve: CondensingCurve,
    /// Measured efficiency needs at least this much gas over the period, m³: a meter's last
    /// digit over a few minutes' firing would give a meaningless ratio.
    pub min_metered_gas_m3: f64,
    /// Estimated efficiency needs at least this many samples with the flame on and a return
    /// temperature.
    pub min_firing_samples: u32,
    /// A measured figure outside this range (%) means a meter is wrong: the estimate is used.
    pub plausible_measured_pct: (f64, f64),
}

impl Default for EfficiencyConfig {
    fn default() -> Self {
        Self {
            calorific_value_mj_per_m3: 39.5,
            curve: CondensingCurve::default(),
            min_metered_gas_m3: 0.05,
            min_firing_samples: 3,
            plausible_measured_pct: (40.0, 110.0),
        }
    }
}

/// Which meters a home has (from the asset register).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meters {
    /// A gas meter the hub reads.
    pub gas: bool,
    /// A heat meter the hub reads.
    pub heat: bool,
}

/// How an efficiency figure was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Heat meter ÷ gas meter.
    Measured,
    /// From the return temperature on the condensing curve.
    Estimated,
}

impl Basis {
    /// The label shown with the figure.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Measured => "measured",
            Basis::Estimated => "estimated",
        }
    }
}

/// One period's efficiency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Efficiency {
    /// The period's start (UTC ms).
    pub start_ms: TimestampMs,
    /// The period's end (UTC ms, exclusive).
    pub end_ms: TimestampMs,
    /// Efficiency, % (gross).
    pub pct: f64,
    /// Measured or estimated.
    pub basis: Basis,
    /// The share of the period that had data, 0 to 1.
    pub coverage: f64,
    /// The mean return temperature while firing, °C, when known.
    pub mean_return_firing_c: Option<f64>,
}

/// The efficiency over `rollup`'s period; `None` when the boiler did not fire, or too little is
/// known to say.
pub fn efficiency(
    rollup: &Rollup,
    meters: Meters,
    config: &EfficiencyConfig,
) -> Option<Efficiency> {
    let mean_return = rollup.return_c_firing.mean();
    let labelled = |pct: f64, basis: Basis| Efficiency {
        start_ms: rollup.start_ms,
        end_ms: rollup.end_ms,
        pct,
        basis,
        coverage: rollup.coverage(),
        mean_return_firing_c: mean_return,
    };
    if let Some(measured) = measured_pct(rollup, meters, config) {
        return Some(labelled(measured, Basis::Measured));
    }
    if rollup.return_c_firing.count < config.min_firing_samples.max(1) {
        return None;
    }
    let estimated = config.curve.efficiency_pct(mean_return?)?;
    Some(labelled(estimated, Basis::Estimated))
}

fn measured_pct(rollup: &Rollup, meters: Meters, config: &EfficiencyConfig) -> Option<f64> {
    if !(meters.gas && meters.heat) {
        return None;
    }
    let gas_m3 = rollup.metered_gas_m3?;
    let heat_kwh = rollup.metered_heat_kwh?;
    if gas_m3 < config.min_metered_gas_m3 {
        return None;
    }
    let pct = 100.0 * heat_kwh / gas_kwh(gas_m3, config.calorific_value_mj_per_m3);
    let (low, high) = config.plausible_measured_pct;
    (pct.is_finite() && pct >= low && pct <= high).then_some(pct)
}

/// The UTC bounds of a local calendar month in `tz`.
pub fn month_bounds(year: i32, month: u32, tz: Tz) -> Option<(TimestampMs, TimestampMs)> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some((day_bounds(first, tz).0, day_bounds(next, tz).0))
}

/// The UTC bounds of a local calendar year in `tz`.
pub fn year_bounds(year: i32, tz: Tz) -> Option<(TimestampMs, TimestampMs)> {
    let first = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let next = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
    Some((day_bounds(first, tz).0, day_bounds(next, tz).0))
}

/// A local day's rollup and efficiency.
pub fn day_efficiency<L: TelemetryLog>(
    log: &L,
    date: NaiveDate,
    tz: Tz,
    meters: Meters,
    config: &EfficiencyConfig,
) -> Result<(Rollup, Option<Efficiency>), L::Error> {
    let (start, end) = day_bounds(date, tz);
    let day = rollup_over(log, start, end)?;
    let efficiency = efficiency(&day, meters, config);
    Ok((day, efficiency))
}

/// A local day, its rollup and its efficiency (none where the day had too little data).
pub type DayEfficiency = (NaiveDate, Rollup, Option<Efficiency>);

/// Each local day's rollup and efficiency from `first` to `last` inclusive, from one read of the
/// log's hours ([`daily_series`]).
pub fn daily_efficiency<L: TelemetryLog>(
    log: &L,
    first: NaiveDate,
    last: NaiveDate,
    tz: Tz,
    meters: Meters,
    config: &EfficiencyConfig,
) -> Result<Vec<DayEfficiency>, L::Error> {
    Ok(daily_series(log, first, last, tz)?
        .into_iter()
        .map(|(date, day)| {
            let efficiency = efficiency(&day, meters, config);
            (date, day, efficiency)
        })
        .collect())
}

/// A local month's rollup and efficiency; `None` for a month that does not exist.
pub fn month_efficiency<L: TelemetryLog>(
    log: &L,
    date_in_month: NaiveDate,
    tz: Tz,
    meters: Meters,
    config: &EfficiencyConfig,
) -> Result<Option<(Rollup, Option<Efficiency>)>, L::Error> {
    let Some((start, end)) = month_bounds(date_in_month.year(), date_in_month.month(), tz) else {
        return Ok(None);
    };
    let month = rollup_over(log, start, end)?;
    let efficiency = efficiency(&month, meters, config);
    Ok(Some((month, efficiency)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boilers::rollup::tests::{sample, MIN, T0};
    use crate::boilers::rollup::{MemoryLog, Roller, HOUR_MS};
    use crate::boilers::sample::Sample;

    fn within_half_a_point(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 0.5,
            "{actual:.3} % is not within 0.5 points of {expected} %"
        );
    }

    #[test]
    fn gas_energy_is_gross_as_bills_state_it() {
        // 100 m³ at 39.5 MJ/m³: 1,122.07 kWh, as a British Gas bill would print.
        assert!((gas_kwh(100.0, 39.5) - 1122.07).abs() < 0.01);
    }

    #[test]
    fn the_curve_is_read_between_its_points_and_flat_beyond() {
        let curve = CondensingCurve::default();
        for (return_c, pct) in [
            (20.0, 95.0),
            (30.0, 95.0),
            (35.0, 93.5),
            (40.0, 92.0),
            (45.0, 90.5),
            (50.0, 89.0),
            (55.0, 87.0),
            (57.5, 86.5),
            (62.0, 86.0),
            (80.0, 86.0),
        ] {
            let got = curve.efficiency_pct(return_c).unwrap();
            assert!((got - pct).abs() < 1e-9, "{return_c} °C: {got} not {pct}");
        }
        assert_eq!(curve.efficiency_pct(f64::NAN), None);
        assert_eq!(
            CondensingCurve { points: vec![] }.efficiency_pct(40.0),
            None
        );
    }

    /// Three hours of one-minute samples firing half of each hour, return `return_c` while
    /// firing; gas 0.02 m³ and heat `heat_per_min` kWh a firing minute.
    fn firing_hours(return_c: f32, heat_per_min: f64) -> MemoryLog {
        let roller = Roller::default();
        let mut log = MemoryLog::new();
        let (mut gas, mut heat) = (100.0, 2000.0);
        for i in 0..3 * 60 {
            let firing = i % 60 < 30;
            let s = Sample {
                flame: Some(firing),
                ch_active: Some(true),
                return_c: Some(if firing { return_c } else { 25.0 }),
                gas_m3: Some(gas),
                heat_kwh: Some(heat),
                ..sample(T0 + i * MIN)
            };
            if firing {
                gas += 0.02;
                heat += heat_per_min;
            }
            roller.fold(&mut log, &s, s.at_ms).unwrap();
        }
        log
    }

    #[test]
    fn measured_where_both_meters_exist() {
        // 0.02 m³ a minute is 0.2244 kWh of gas; 0.2 kWh of heat out is 89.1 %.
        let log = firing_hours(48.0, 0.2);
        let meters = Meters {
            gas: true,
            heat: true,
        };
        let config = EfficiencyConfig::default();
        let hour = log.hour(T0).unwrap().unwrap();
        let e = efficiency(&hour, meters, &config).unwrap();
        assert_eq!(e.basis, Basis::Measured);
        within_half_a_point(e.pct, 89.13);
        assert_eq!(e.coverage, 1.0);
        // Without a heat meter the same hour is estimated from the 48 °C return: 89.6 %.
        let e = efficiency(
            &hour,
            Meters {
                gas: true,
                heat: false,
            },
            &config,
        )
        .unwrap();
        assert_eq!(e.basis, Basis::Estimated);
        within_half_a_point(e.pct, 89.6);
        assert_eq!(e.mean_return_firing_c, Some(48.0));
    }

    #[test]
    fn estimated_from_the_return_while_firing() {
        let config = EfficiencyConfig::default();
        for (return_c, expected) in [(30.0, 95.0), (40.0, 92.0), (52.0, 88.2), (62.0, 86.0)] {
            let log = firing_hours(return_c, 0.0);
            let hour = log.hour(T0).unwrap().unwrap();
            let e = efficiency(&hour, Meters::default(), &config).unwrap();
            assert_eq!(e.basis, Basis::Estimated);
            within_half_a_point(e.pct, expected);
        }
    }

    #[test]
    fn a_meter_that_reads_nonsense_falls_back_to_the_estimate() {
        // Heat out twice the gas in: a heat meter fault.
        let log = firing_hours(40.0, 0.5);
        let hour = log.hour(T0).unwrap().unwrap();
        let e = efficiency(
            &hour,
            Meters {
                gas: true,
                heat: true,
            },
            &EfficiencyConfig::default(),
        )
        .unwrap();
        assert_eq!(e.basis, Basis::Estimated);
        within_half_a_point(e.pct, 92.0);
    }

    #[test]
    fn days_and_months_carry_their_coverage_and_idle_periods_have_none() {
        let tz: Tz = chrono_tz::Europe::London;
        let log = firing_hours(40.0, 0.0);
        let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let (day, e) =
            day_efficiency(&log, date, tz, Meters::default(), &Default::default()).unwrap();
        let e = e.unwrap();
        within_half_a_point(e.pct, 92.0);
        assert!((e.coverage - 3.0 / 24.0).abs() < 1e-9, "{}", e.coverage);
        assert_eq!(day.end_ms - day.start_ms, 24 * HOUR_MS);
        let (month, e) = month_efficiency(&log, date, tz, Meters::default(), &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(month.end_ms - month.start_ms, 30 * 24 * HOUR_MS);
        assert!((e.unwrap().coverage - 3.0 / 720.0).abs() < 1e-9);
        let (start, end) = year_bounds(2026, tz).unwrap();
        assert_eq!(end - start, 365 * 24 * HOUR_MS);
        // A day with no data has no efficiency, not 0 %.
        let series = daily_efficiency(
            &log,
            date.pred_opt().unwrap(),
            date.succ_opt().unwrap(),
            tz,
            Meters::default(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(series.len(), 3);
        for (day, rollup, e) in &series {
            let one =
                day_efficiency(&log, *day, tz, Meters::default(), &Default::default()).unwrap();
            assert_eq!((rollup, e), (&one.0, &one.1), "{day}");
        }
        let (_, none) = day_efficiency(
            &log,
            date.succ_opt().unwrap(),
            tz,
            Meters::default(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(none, None);
    }
}
