//! One boiler sample as the boiler domain reads it: [`proto::Telemetry`] with units in its field
//! names, room for what hubs will soon report, and the time span a [`proto::Gap`] stands for.

use proto::{GapReason, Telemetry, TimestampMs};
use serde::{Deserialize, Serialize};

/// One sample of one boiler, taken at `at_ms` by the hub's clock. Every reading is optional:
/// boilers and interfaces differ, and a reading that failed its plausibility check
/// ([`super::reading`]) is removed before the sample reaches rollups.
///
/// The fields after `gas_m3`/`heat_kwh` come from proto's revision 1.1 fields (`diag`, `room`,
/// `dhw_starts`, `dhw_hours`, `fail_starts`, `flame_low`); hubs before it leave them `None`. Absent readings are left out when a
/// sample is stored: most hubs report a dozen of its fields, and a sample is stored per minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The boiler's asset id in the council's asset register. Left out when empty: a store that
    /// keys samples by boiler keeps them without it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub asset: String,
    /// When the hub took the sample (UTC ms, the record's own timestamp).
    pub at_ms: TimestampMs,
    /// Central-heating flow temperature, °C (OpenTherm id 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_c: Option<f32>,
    /// Return temperature, °C (id 28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_c: Option<f32>,
    /// Domestic hot-water temperature, °C (id 26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_c: Option<f32>,
    /// Outside temperature, °C (id 27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_c: Option<f32>,
    /// Exhaust (flue) temperature, °C (id 33).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhaust_c: Option<f32>,
    /// Central-heating setpoint, °C (id 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ch_setpoint_c: Option<f32>,
    /// Central-heating water pressure, bar (id 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_bar: Option<f32>,
    /// Relative modulation level, % (id 17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulation_pct: Option<f32>,
    /// Flame on (id 0, bit 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flame: Option<bool>,
    /// Central heating active (id 0, bit 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ch_active: Option<bool>,
    /// Hot water active (id 0, bit 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_active: Option<bool>,
    /// Fault indication (id 0, bit 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<bool>,
    /// Application-specific fault flags (id 5, high byte); see [`FaultFlags`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_flags: Option<u8>,
    /// The manufacturer's fault code (id 5 low byte, or id 115).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oem_code: Option<u16>,
    /// Burner starts counter, all starts (id 116).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burner_starts: Option<u32>,
    /// Burner operation hours counter, h, all firing (id 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burner_hours_h: Option<u32>,
    /// Gas meter reading, m³ (a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_m3: Option<f64>,
    /// Heat meter reading, kWh (a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heat_kwh: Option<f64>,
    /// The boiler's diagnostic (service) indication (id 0, bit 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<bool>,
    /// Room temperature, °C (id 24, from the thermostat's frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_c: Option<f32>,
    /// Burner starts for hot water (id 119); heating starts are id 116 less these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_burner_starts: Option<u32>,
    /// Burner hours for hot water, h (id 123).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_burner_hours_h: Option<u32>,
    /// Unsuccessful burner starts counter (id 113).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_starts: Option<u32>,
    /// Times the flame signal was too low (id 114).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flame_low: Option<u32>,
}

impl Sample {
    /// The domain's view of a telemetry record taken at `at_ms` (the record's `ts`).
    pub fn from_telemetry(telemetry: &Telemetry, at_ms: TimestampMs) -> Self {
        Self {
            asset: telemetry.asset.clone(),
            at_ms,
            flow_c: telemetry.flow,
            return_c: telemetry.ret,
            dhw_c: telemetry.dhw,
            outside_c: telemetry.out,
            exhaust_c: telemetry.exh,
            ch_setpoint_c: telemetry.setp,
            pressure_bar: telemetry.bar,
            modulation_pct: telemetry.modu,
            flame: telemetry.flame,
            ch_active: telemetry.ch,
            dhw_active: telemetry.dhw_on,
            fault: telemetry.fault,
            fault_flags: telemetry.fflags,
            oem_code: telemetry.oem,
            burner_starts: telemetry.starts,
            burner_hours_h: telemetry.hours,
            gas_m3: telemetry.gas,
            heat_kwh: telemetry.heat,
            diagnostic: telemetry.diag,
            room_c: telemetry.room,
            dhw_burner_starts: telemetry.dhw_starts,
            dhw_burner_hours_h: telemetry.dhw_hours,
            failed_starts: telemetry.fail_starts,
            flame_low: telemetry.flame_low,
        }
    }

    /// Whether the boiler reported a fault: the fault bit, a lockout or gas/flame flag, or a
    /// non-zero manufacturer's code.
    pub fn reports_fault(&self) -> bool {
        let flags = FaultFlags(self.fault_flags.unwrap_or(0));
        self.fault == Some(true)
            || flags.lockout()
            || flags.gas_flame()
            || self.oem_code.is_some_and(|code| code != 0)
    }
}

/// A reading widened to f64 as the decimal the hub meant: `2.4_f32` is 2.4000000953… in
/// binary, which would fail a `<= 2.4` test and print oddly. Readings are at most 1/256
/// resolution (OpenTherm's f8.8), so rounding to a millionth keeps every one of them.
pub fn widen(value: f32) -> f64 {
    (f64::from(value) * 1e6).round() / 1e6
}

/// OpenTherm id 5's high byte (OpenTherm Protocol 2.2, §5.3.2: "application-specific fault
/// flags").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultFlags(pub u8);

impl FaultFlags {
    /// Bit 0: service request.
    pub fn service_request(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Bit 1: lockout-reset (the boiler has locked out and needs a reset).
    pub fn lockout(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// Bit 2: low water pressure.
    pub fn low_water_pressure(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Bit 3: gas or flame fault.
    pub fn gas_flame(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Bit 4: air pressure fault.
    pub fn air_pressure(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Bit 5: water over-temperature.
    pub fn over_temperature(self) -> bool {
        self.0 & 0x20 != 0
    }
}

/// A stretch of time for which the hub reported dropping samples (a [`proto::Gap`] record),
/// so that rollups show it as missing data with its reason rather than as a quiet boiler.
///
/// A gap names sequence numbers, not times: the caller finds the times from the samples it holds
/// on either side (see [`GapSpan::between`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapSpan {
    /// Start of the missing stretch (UTC ms, inclusive).
    pub from_ms: TimestampMs,
    /// End of the missing stretch (UTC ms, exclusive).
    pub to_ms: TimestampMs,
    /// Why the hub dropped them.
    pub reason: GapReason,
}

impl GapSpan {
    /// The stretch between the last sample before the gap (`before_ms`) and the first after it
    /// (`after_ms`, or the gap record's own time when none has arrived yet). `None` when there is
    /// no sample before it to start from, or the stretch is empty.
    pub fn between(
        before_ms: Option<TimestampMs>,
        after_ms: Option<TimestampMs>,
        gap_record_ms: TimestampMs,
        reason: GapReason,
    ) -> Option<Self> {
        let from_ms = before_ms?;
        let to_ms = after_ms.unwrap_or(gap_record_ms);
        (to_ms > from_ms).then_some(Self {
            from_ms,
            to_ms,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_converts_field_by_field() {
        let telemetry = Telemetry {
            asset: "B-1".to_owned(),
            flow: Some(60.5),
            ret: Some(45.0),
            bar: Some(1.4),
            flame: Some(true),
            starts: Some(120),
            gas: Some(1234.5),
            ..Telemetry::default()
        };
        let sample = Sample::from_telemetry(&telemetry, 1_000);
        assert_eq!(sample.asset, "B-1");
        assert_eq!(sample.at_ms, 1_000);
        assert_eq!(sample.flow_c, Some(60.5));
        assert_eq!(sample.return_c, Some(45.0));
        assert_eq!(sample.pressure_bar, Some(1.4));
        assert_eq!(sample.flame, Some(true));
        assert_eq!(sample.burner_starts, Some(120));
        assert_eq!(sample.gas_m3, Some(1234.5));
        assert_eq!(sample.dhw_burner_starts, None);
    }

    #[test]
    fn revision_1_1_fields_fill_their_room() {
        let telemetry = Telemetry {
            asset: "B-1".to_owned(),
            diag: Some(true),
            room: Some(19.5),
            dhw_starts: Some(5_000),
            dhw_hours: Some(800),
            fail_starts: Some(3),
            flame_low: Some(1),
            ..Telemetry::default()
        };
        let sample = Sample::from_telemetry(&telemetry, 1_000);
        assert_eq!(sample.diagnostic, Some(true));
        assert_eq!(sample.room_c, Some(19.5));
        assert_eq!(
            (sample.dhw_burner_starts, sample.dhw_burner_hours_h),
            (Some(5_000), Some(800))
        );
        assert_eq!((sample.failed_starts, sample.flame_low), (Some(3), Some(1)));
    }

    #[test]
    fn faults_come_from_the_bit_the_flags_or_the_oem_code() {
        let quiet = Sample::default();
        assert!(!quiet.reports_fault());
        let service_only = Sample {
            fault_flags: Some(0x01),
            oem_code: Some(0),
            ..Sample::default()
        };
        assert!(!service_only.reports_fault());
        for faulty in [
            Sample {
                fault: Some(true),
                ..Sample::default()
            },
            Sample {
                fault_flags: Some(0x02),
                ..Sample::default()
            },
            Sample {
                oem_code: Some(133),
                ..Sample::default()
            },
        ] {
            assert!(faulty.reports_fault(), "{faulty:?}");
        }
    }

    #[test]
    fn readings_widen_to_the_decimal_meant() {
        assert_eq!(widen(2.4), 2.4);
        assert_eq!(widen(0.95), 0.95);
        assert_eq!(widen(45.003_906), 45.003906);
        assert!(widen(f32::NAN).is_nan());
    }

    #[test]
    fn a_gap_spans_the_samples_either_side() {
        let span = GapSpan::between(Some(100), Some(500), 900, GapReason::DiskBudget).unwrap();
        assert_eq!((span.from_ms, span.to_ms), (100, 500));
        let open = GapSpan::between(Some(100), None, 900, GapReason::Restart).unwrap();
        assert_eq!(open.to_ms, 900);
        assert!(GapSpan::between(None, Some(500), 900, GapReason::Restart).is_none());
        assert!(GapSpan::between(Some(500), Some(500), 900, GapReason::Restart).is_none());
    }
}
