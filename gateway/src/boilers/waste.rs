//! Gas wasted against each boiler's own condensing potential: what it burnt beyond what it
//! would have needed to deliver the same heat with its return below the condensing target, in
//! kWh, £ and kg CO₂e per month and per year; the words that say what would recover it; and the
//! estate ranked by it, so that a manager knows which visits save most.

use std::cmp::Ordering;

use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use super::efficiency::{efficiency, gas_kwh, Basis, Efficiency, EfficiencyConfig, Meters};
use super::periods::rollup_over;
use super::rollup::{Rollup, TelemetryLog};

/// How waste is valued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WasteConfig {
    /// The return temperature, °C, a boiler should be brought below: its potential is the
    /// condensing curve's efficiency there.
    pub target_return_c: f64,
    /// What the council pays for gas, pence per kWh. Default: Ofgem's price cap unit rate for
    /// gas, 1 July – 30 September 2024, direct debit (5.48 p/kWh); set the council's contract
    /// rate.
    pub tariff_p_per_kwh: f64,
    /// Greenhouse gases per kWh of gas burnt, kg CO₂e per kWh (gross CV). Default: the UK
    /// Government's conversion factors for company reporting, 2025, Fuels › Natural gas ›
    /// kWh (Gross CV), total kg CO₂e: 0.18231 (check it against the year's published
    /// spreadsheet on gov.uk when reporting).
    pub co2e_kg_per_kwh: f64,
    /// Without a gas meter, the gas burnt is estimated from the rated output, the firing time
    /// and the modulation; where modulation is not reported, this mean modulation, %, is assumed.
    pub assumed_modulation_pct: f64,
    /// Periods with less coverage than this are not ranked: too little is known.
    pub min_coverage_to_rank: f64,
}

impl Default for WasteConfig {
    fn default() -> Self {
        Self {
            target_return_c: 50.0,
            tariff_p_per_kwh: 5.48,
            co2e_kg_per_kwh: 0.18231,
            assumed_modulation_pct: 50.0,
            min_coverage_to_rank: 0.1,
        }
    }
}

/// What a boiler wasted over one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waste {
    /// The period's start (UTC ms).
    pub start_ms: TimestampMs,
    /// The period's end (UTC ms, exclusive).
    pub end_ms: TimestampMs,
    /// The efficiency it ran at.
    pub efficiency: Efficiency,
    /// What it could run at with its return below the target, % (gross).
    pub potential_pct: f64,
    /// Gas burnt over the period, kWh gross: metered, or estimated (see `gas_basis`).
    pub gas_kwh: f64,
    /// Whether `gas_kwh` came from a gas meter or from firing time and rated output.
    pub gas_basis: Basis,
    /// Gas burnt beyond what the same heat needed at the potential, kWh.
    pub wasted_kwh: f64,
    /// Its cost, £.
    pub wasted_gbp: f64,
    /// Its emissions, kg CO₂e.
    pub wasted_co2e_kg: f64,
    /// The share of its gas a fix would save, %.
    pub saving_pct: f64,
    /// The share of the period with data, 0 to 1: the figures cover only that share.
    pub coverage: f64,
    /// What would recover it, in words; `None` when nothing is wasted.
    pub advice: Option<String>,
}

impl Waste {
    /// `wasted_kwh` scaled up to the whole period by its coverage: what ranks boilers with
    /// different amounts of data fairly.
    pub fn wasted_kwh_whole_period(&self) -> f64 {
        if self.coverage > 0.0 {
            self.wasted_kwh / self.coverage
        } else {
            0.0
        }
    }
}

/// What a boiler is, for valuing its waste.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoilerFacts {
    /// Its meters.
    pub meters: Meters,
    /// Its rated heat output, kW.
    pub rated_output_kw: f64,
}

/// What the boiler wasted over `period` (a month or a year of merged rollups); `None` when its
/// efficiency cannot be told or nothing is known of the gas it burnt.
pub fn waste(
    period: &Rollup,
    boiler: BoilerFacts,
    efficiency_config: &EfficiencyConfig,
    config: &WasteConfig,
) -> Option<Waste> {
    let efficiency = efficiency(period, boiler.meters, efficiency_config)?;
    let curve_potential = efficiency_config
        .curve
        .efficiency_pct(config.target_return_c)?;
    // A boiler already better than the curve's target wastes nothing against it.
    let potential_pct = curve_potential.max(efficiency.pct);
    let (gas_kwh, gas_basis) =
        gas_burnt_kwh(period, boiler, efficiency.pct, efficiency_config, config)?;
    let saving_share = 1.0 - efficiency.pct / potential_pct;
    let wasted_kwh = gas_kwh * saving_share;
    let advice = advice(period, &efficiency, potential_pct, saving_share, config);
    Some(Waste {
        start_ms: period.start_ms,
        end_ms: period.end_ms,
        efficiency,
        potential_pct,
        gas_kwh,
        gas_basis,
        wasted_kwh,
        wasted_gbp: wasted_kwh * config.tariff_p_per_kwh / 100.0,
        wasted_co2e_kg: wasted_kwh * config.co2e_kg_per_kwh,
        saving_pct: 100.0 * saving_share,
        coverage: period.coverage(),
        advice,
    })
}

/// Gas burnt, kWh gross: from the gas meter, or from heat out (rated output × modulation ×
/// covered time, the modulation being near zero while the flame is off) ÷ efficiency.
fn gas_burnt_kwh(
    period: &Rollup,
    boiler: BoilerFacts,
    efficiency_pct: f64,
    efficiency_config: &EfficiencyConfig,
    config: &WasteConfig,
) -> Option<(f64, Basis)> {
    if boiler.meters.gas {
        if let Some(gas_m3) = period.gas_used_m3 {
            return Some((
                gas_kwh(gas_m3, efficiency_config.calorific_value_mj_per_m3),
                Basis::Measured,
            ));
        }
    }
    if boiler.rated_output_kw <= 0.0 || efficiency_pct <= 0.0 {
        return None;
    }
    let heat_out_kwh = match period.modulation_pct.mean() {
        Some(modulation) => {
            boiler.rated_output_kw * modulation / 100.0 * period.covered_ms as f64 / 3.6e6
        }
        None => {
            boiler.rated_output_kw * config.assumed_modulation_pct / 100.0
                * period.flame_on_min()?
                / 60.0
        }
    };
    Some((heat_out_kwh * 100.0 / efficiency_pct, Basis::Estimated))
}

fn advice(
    period: &Rollup,
    efficiency: &Efficiency,
    potential_pct: f64,
    saving_share: f64,
    config: &WasteConfig,
) -> Option<String> {
    if saving_share <= 0.0005 {
        return None;
    }
    let (mean_return, while_) = match period.return_c_heating.mean() {
        Some(heating) => (heating, "while heating"),
        None => (period.return_c_firing.mean()?, "while firing"),
    };
    let target = config.target_return_c;
    Some(format!(
        "mean return {mean_return:.0} °C {while_}: a lower flow temperature bringing the return \
         below {target:.0} °C would save about {:.0} % of its gas ({} {:.0} % now, about \
         {potential_pct:.0} % then)",
        100.0 * saving_share,
        efficiency.basis.as_str(),
        efficiency.pct,
    ))
}

/// What the boiler wasted over `[start_ms, end_ms)` (a month from
/// [`super::efficiency::month_bounds`], a year from [`super::efficiency::year_bounds`]), from
/// its hourly rollups in `log`; with the period's rollup.
pub fn waste_over<L: TelemetryLog>(
    log: &L,
    start_ms: TimestampMs,
    end_ms: TimestampMs,
    boiler: BoilerFacts,
    efficiency_config: &EfficiencyConfig,
    config: &WasteConfig,
) -> Result<(Rollup, Option<Waste>), L::Error> {
    let period = rollup_over(log, start_ms, end_ms)?;
    let waste = waste(&period, boiler, efficiency_config, config);
    Ok((period, waste))
}

/// One boiler's place in the estate's ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// Its asset id.
    pub asset: String,
    /// What it wasted.
    pub waste: Waste,
}

/// The boilers ranked by gas wasted over the period (scaled to the whole period by coverage),
/// most first; ties by asset id. Boilers with too little data are left out: a manager should
/// not send a visit on a guess.
pub fn rank(
    boilers: impl IntoIterator<Item = (String, Waste)>,
    config: &WasteConfig,
) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = boilers
        .into_iter()
        .filter(|(_, waste)| waste.coverage >= config.min_coverage_to_rank)
        .map(|(asset, waste)| Ranked { asset, waste })
        .collect();
    ranked.sort_by(|a, b| {
        b.waste
            .wasted_kwh_whole_period()
            .partial_cmp(&a.waste.wasted_kwh_whole_period())
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.asset.cmp(&b.asset))
    });
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boilers::rollup::{Stat, HOUR_MS};

    /// A month of 720 hours, all covered, 100 hours firing with the return at `return_c`
    /// (while heating), burning `gas_m3`.
    fn month(return_c: f64, gas_m3: f64, coverage: f64) -> Rollup {
        let firing = Stat {
            count: 6000,
            sum: 6000.0 * return_c,
            min: Some(return_c),
            max: Some(return_c),
        };
        let length = 720 * HOUR_MS;
        Rollup {
            start_ms: 0,
            end_ms: length,
            covered_ms: (length as f64 * coverage) as i64,
            flame_known_ms: (length as f64 * coverage) as i64,
            flame_on_ms: 100 * HOUR_MS,
            return_c_firing: firing,
            return_c_heating: firing,
            gas_used_m3: Some(gas_m3),
            ..Rollup::default()
        }
    }

    fn metered() -> BoilerFacts {
        BoilerFacts {
            meters: Meters {
                gas: true,
                heat: false,
            },
            rated_output_kw: 24.0,
        }
    }

    #[test]
    fn a_hot_return_wastes_against_the_boilers_own_potential() {
        // 200 m³ is 2,244.1 kWh; at 86 % against a potential of 89 % it wastes 3.37 %: 75.6 kWh,
        // £4.14 at 5.48 p, 13.8 kg CO₂e.
        let w = waste(
            &month(62.0, 200.0, 1.0),
            metered(),
            &EfficiencyConfig::default(),
            &WasteConfig::default(),
        )
        .unwrap();
        assert_eq!(w.efficiency.basis, Basis::Estimated);
        assert_eq!(w.gas_basis, Basis::Measured);
        assert!((w.gas_kwh - 2244.14).abs() < 0.05, "{}", w.gas_kwh);
        assert!((w.saving_pct - 3.371).abs() < 0.01, "{}", w.saving_pct);
        assert!((w.wasted_kwh - 75.64).abs() < 0.05, "{}", w.wasted_kwh);
        assert!((w.wasted_gbp - 4.145).abs() < 0.005, "{}", w.wasted_gbp);
        assert!(
            (w.wasted_co2e_kg - 13.79).abs() < 0.01,
            "{}",
            w.wasted_co2e_kg
        );
        assert_eq!(
            w.advice.as_deref(),
            Some(
                "mean return 62 °C while heating: a lower flow temperature bringing the return \
                 below 50 °C would save about 3 % of its gas (estimated 86 % now, about 89 % then)"
            )
        );
    }

    #[test]
    fn a_condensing_boiler_wastes_nothing_and_needs_no_advice() {
        let w = waste(
            &month(42.0, 200.0, 1.0),
            metered(),
            &EfficiencyConfig::default(),
            &WasteConfig::default(),
        )
        .unwrap();
        assert_eq!(w.wasted_kwh, 0.0);
        assert_eq!(w.advice, None);
    }

    #[test]
    fn without_a_gas_meter_gas_is_estimated_from_firing_time() {
        // 24 kW × 50 % × 100 h = 1,200 kWh of heat; at 86 %, 1,395.3 kWh of gas.
        let boiler = BoilerFacts {
            meters: Meters::default(),
            rated_output_kw: 24.0,
        };
        let w = waste(
            &month(62.0, 0.0, 1.0),
            boiler,
            &EfficiencyConfig::default(),
            &WasteConfig::default(),
        )
        .unwrap();
        assert_eq!(w.gas_basis, Basis::Estimated);
        assert!((w.gas_kwh - 1395.35).abs() < 0.05, "{}", w.gas_kwh);
    }

    #[test]
    fn a_month_and_a_year_are_valued_from_the_hours_in_the_log() {
        use crate::boilers::efficiency::{month_bounds, year_bounds};
        use crate::boilers::rollup::{MemoryLog, TelemetryLog};
        let tz = chrono_tz::Europe::London;
        let (start, end) = month_bounds(2026, 11, tz).unwrap();
        let mut log = MemoryLog::new();
        // The same hour each day of November: 0.5 m³ at a 62 °C return.
        for day in 0..30 {
            let hour_start = start + day * 24 * HOUR_MS;
            let mut hour = month(62.0, 0.5, 1.0);
            hour.start_ms = hour_start;
            hour.end_ms = hour_start + HOUR_MS;
            hour.covered_ms = HOUR_MS;
            log.put_hour(&hour).unwrap();
        }
        let (e, w) = (EfficiencyConfig::default(), WasteConfig::default());
        let (period, month_waste) = waste_over(&log, start, end, metered(), &e, &w).unwrap();
        assert!((period.gas_used_m3.unwrap() - 15.0).abs() < 1e-9);
        let month_waste = month_waste.unwrap();
        assert!((month_waste.coverage - 30.0 / 720.0).abs() < 1e-9);
        let (start, end) = year_bounds(2026, tz).unwrap();
        let (_, year_waste) = waste_over(&log, start, end, metered(), &e, &w).unwrap();
        let year_waste = year_waste.unwrap();
        assert!((year_waste.wasted_kwh - month_waste.wasted_kwh).abs() < 1e-9);
        assert!(year_waste.coverage < month_waste.coverage);
    }

    #[test]
    fn the_estate_is_ranked_by_waste_over_the_whole_period() {
        let config = WasteConfig::default();
        let e = EfficiencyConfig::default();
        let of = |r: f64, gas: f64, coverage: f64| {
            waste(&month(r, gas, coverage), metered(), &e, &config).unwrap()
        };
        let ranked = rank(
            [
                ("B-small".to_owned(), of(62.0, 100.0, 1.0)),
                ("B-half-data".to_owned(), of(62.0, 150.0, 0.5)),
                ("B-good".to_owned(), of(40.0, 400.0, 1.0)),
                ("B-big".to_owned(), of(60.0, 250.0, 1.0)),
                ("B-unknown".to_owned(), of(62.0, 900.0, 0.05)),
            ],
            &config,
        );
        let order: Vec<&str> = ranked.iter().map(|r| r.asset.as_str()).collect();
        // The half-covered boiler's 150 m³ stands for 300 m³ over the month.
        assert_eq!(order, vec!["B-half-data", "B-big", "B-small", "B-good"]);
    }
}
