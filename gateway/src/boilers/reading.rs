//! Plausibility checks per reading: a flow of 400 °C, a pressure of 20 bar or a negative meter
//! reading is flagged and removed from the sample, so it never reaches rollups, efficiency or
//! alerts as truth. The ranges live here, in one place, and are configurable.

use serde::{Deserialize, Serialize};

use super::sample::{widen, Sample};

/// The readings a sample can carry, by name, for flags, evidence and ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// Flow temperature, °C.
    FlowC,
    /// Return temperature, °C.
    ReturnC,
    /// Hot-water temperature, °C.
    DhwC,
    /// Outside temperature, °C.
    OutsideC,
    /// Exhaust temperature, °C.
    ExhaustC,
    /// Central-heating setpoint, °C.
    ChSetpointC,
    /// Room temperature, °C.
    RoomC,
    /// Water pressure, bar.
    PressureBar,
    /// Relative modulation, %.
    ModulationPct,
    /// Gas meter, m³.
    GasM3,
    /// Heat meter, kWh.
    HeatKwh,
}

impl Reading {
    /// The reading's name, as in JSON and evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            Reading::FlowC => "flow_c",
            Reading::ReturnC => "return_c",
            Reading::DhwC => "dhw_c",
            Reading::OutsideC => "outside_c",
            Reading::ExhaustC => "exhaust_c",
            Reading::ChSetpointC => "ch_setpoint_c",
            Reading::RoomC => "room_c",
            Reading::PressureBar => "pressure_bar",
            Reading::ModulationPct => "modulation_pct",
            Reading::GasM3 => "gas_m3",
            Reading::HeatKwh => "heat_kwh",
        }
    }

    /// The reading's unit, for people.
    pub fn unit(self) -> &'static str {
        match self {
            Reading::FlowC
            | Reading::ReturnC
            | Reading::DhwC
            | Reading::OutsideC
            | Reading::ExhaustC
            | Reading::ChSetpointC
            | Reading::RoomC => "°C",
            Reading::PressureBar => "bar",
            Reading::ModulationPct => "%",
            Reading::GasM3 => "m³",
            Reading::HeatKwh => "kWh",
        }
    }
}

/// An inclusive range of plausible values, in the reading's unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// The lowest plausible value.
    pub min: f64,
    /// The highest plausible value.
    pub max: f64,
}

impl Range {
    const fn new(min: f64, max: f64) -> Self {
        Self { min, max }
    }

    /// Whether `value` is finite and within the range.
    pub fn admits(self, value: f64) -> bool {
        value.is_finite() && value >= self.min && value <= self.max
    }
}

/// What a reading may plausibly be. The defaults are wide enough for every domestic boiler the
/// council runs and narrow enough to catch a sensor fault or a corrupted frame: a sealed system's
/// relief valve opens at 3 bar, so 4 bar cannot be read; a boiler's high limit stat trips near
/// 100 °C, so a flow of 110 °C cannot either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlausibleRanges {
    /// Flow temperature, °C.
    pub flow_c: Range,
    /// Return temperature, °C.
    pub return_c: Range,
    /// Hot-water temperature, °C.
    pub dhw_c: Range,
    /// Outside temperature, °C (UK record low −27 °C, high 40 °C).
    pub outside_c: Range,
    /// Exhaust temperature, °C (a non-condensing flue runs up to about 200 °C).
    pub exhaust_c: Range,
    /// Central-heating setpoint, °C (OpenTherm allows 0–100).
    pub ch_setpoint_c: Range,
    /// Room temperature, °C.
    pub room_c: Range,
    /// Water pressure, bar (0 is an empty system, which is real).
    pub pressure_bar: Range,
    /// Relative modulation, %.
    pub modulation_pct: Range,
    /// Gas meter reading, m³ (a counter: never negative).
    pub gas_m3: Range,
    /// Heat meter reading, kWh (a counter: never negative).
    pub heat_kwh: Range,
}

impl Default for PlausibleRanges {
    fn default() -> Self {
        Self {
            flow_c: Range::new(-10.0, 110.0),
            return_c: Range::new(-10.0, 110.0),
            dhw_c: Range::new(-10.0, 100.0),
            outside_c: Range::new(-40.0, 50.0),
            exhaust_c: Range::new(-10.0, 250.0),
            ch_setpoint_c: Range::new(0.0, 100.0),
            room_c: Range::new(-10.0, 45.0),
            pressure_bar: Range::new(0.0, 4.0),
            modulation_pct: Range::new(0.0, 100.0),
            gas_m3: Range::new(0.0, 1.0e9),
            heat_kwh: Range::new(0.0, 1.0e10),
        }
    }
}

impl PlausibleRanges {
    /// The range for `reading`.
    pub fn range(&self, reading: Reading) -> Range {
        match reading {
            Reading::FlowC => self.flow_c,
            Reading::ReturnC => self.return_c,
            Reading::DhwC => self.dhw_c,
            Reading::OutsideC => self.outside_c,
            Reading::ExhaustC => self.exhaust_c,
            Reading::ChSetpointC => self.ch_setpoint_c,
            Reading::RoomC => self.room_c,
            Reading::PressureBar => self.pressure_bar,
            Reading::ModulationPct => self.modulation_pct,
            Reading::GasM3 => self.gas_m3,
            Reading::HeatKwh => self.heat_kwh,
        }
    }
}

/// A reading that failed its check: what was sent, and what would have been plausible.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Implausible {
    /// Which reading.
    pub reading: Reading,
    /// The value the hub sent, in the reading's unit.
    pub value: f64,
    /// The plausible range it fell outside.
    pub range: Range,
}

/// A sample after its checks: the plausible readings, and the flags for the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The sample with every implausible reading removed: this is what rollups, efficiency and
    /// alerts see.
    pub sample: Sample,
    /// One flag per reading removed, in [`Reading`] order; empty when all were plausible.
    pub flagged: Vec<Implausible>,
}

/// Checks every reading of `sample` against `ranges`.
pub fn check(mut sample: Sample, ranges: &PlausibleRanges) -> Checked {
    let mut flagged = Vec::new();
    let mut check_f32 = |reading: Reading, slot: &mut Option<f32>| {
        if let Some(value) = *slot {
            let range = ranges.range(reading);
            if !range.admits(widen(value)) {
                flagged.push(Implausible {
                    reading,
                    value: widen(value),
                    range,
                });
                *slot = None;
            }
        }
    };
    check_f32(Reading::FlowC, &mut sample.flow_c);
    check_f32(Reading::ReturnC, &mut sample.return_c);
    check_f32(Reading::DhwC, &mut sample.dhw_c);
    check_f32(Reading::OutsideC, &mut sample.outside_c);
    check_f32(Reading::ExhaustC, &mut sample.exhaust_c);
    check_f32(Reading::ChSetpointC, &mut sample.ch_setpoint_c);
    check_f32(Reading::RoomC, &mut sample.room_c);
    check_f32(Reading::PressureBar, &mut sample.pressure_bar);
    check_f32(Reading::ModulationPct, &mut sample.modulation_pct);
    for (reading, slot) in [
        (Reading::GasM3, &mut sample.gas_m3),
        (Reading::HeatKwh, &mut sample.heat_kwh),
    ] {
        if let Some(value) = *slot {
            let range = ranges.range(reading);
            if !range.admits(value) {
                flagged.push(Implausible {
                    reading,
                    value,
                    range,
                });
                *slot = None;
            }
        }
    }
    Checked { sample, flagged }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plausible() -> Sample {
        Sample {
            asset: "B-1".to_owned(),
            at_ms: 0,
            flow_c: Some(60.0),
            return_c: Some(45.0),
            pressure_bar: Some(1.5),
            modulation_pct: Some(40.0),
            gas_m3: Some(1200.0),
            heat_kwh: Some(9000.0),
            ..Sample::default()
        }
    }

    #[test]
    fn plausible_readings_pass_untouched() {
        let checked = check(plausible(), &PlausibleRanges::default());
        assert!(checked.flagged.is_empty());
        assert_eq!(checked.sample, plausible());
    }

    #[test]
    fn absurd_readings_are_flagged_and_removed_one_by_one() {
        let sample = Sample {
            flow_c: Some(400.0),
            pressure_bar: Some(20.0),
            gas_m3: Some(-3.0),
            return_c: Some(f32::NAN),
            ..plausible()
        };
        let checked = check(sample, &PlausibleRanges::default());
        let flagged: Vec<Reading> = checked.flagged.iter().map(|f| f.reading).collect();
        assert_eq!(
            flagged,
            vec![
                Reading::FlowC,
                Reading::ReturnC,
                Reading::PressureBar,
                Reading::GasM3
            ]
        );
        assert_eq!(checked.flagged[0].value, 400.0);
        assert_eq!(checked.flagged[2].range.max, 4.0);
        assert_eq!(checked.sample.flow_c, None);
        assert_eq!(checked.sample.pressure_bar, None);
        assert_eq!(checked.sample.gas_m3, None);
        // The plausible readings of the same sample are kept.
        assert_eq!(checked.sample.modulation_pct, Some(40.0));
        assert_eq!(checked.sample.heat_kwh, Some(9000.0));
    }

    #[test]
    fn ranges_are_configurable_and_inclusive() {
        let ranges = PlausibleRanges {
            pressure_bar: Range::new(0.5, 3.0),
            ..PlausibleRanges::default()
        };
        let at_edge = Sample {
            pressure_bar: Some(3.0),
            ..plausible()
        };
        assert!(check(at_edge, &ranges).flagged.is_empty());
        let low = Sample {
            pressure_bar: Some(0.4),
            ..plausible()
        };
        assert_eq!(check(low, &ranges).flagged[0].reading, Reading::PressureBar);
        let parsed: PlausibleRanges = toml::from_str("[flow_c]\nmin = 0.0\nmax = 95.0\n").unwrap();
        assert_eq!(parsed.flow_c.max, 95.0);
        assert_eq!(parsed.pressure_bar, PlausibleRanges::default().pressure_bar);
        assert_eq!(Reading::PressureBar.unit(), "bar");
    }
}
