//! One value from a boiler, as a source delivers it: OpenTherm gives one data id per frame, so
//! readings are partial and the [`Sampler`](super::Sampler) assembles them into samples.

use proto::{Telemetry, Validate};

/// One value of one [`Telemetry`] field. Temperatures in °C, pressure in bar.
///
/// The variants mirror `Telemetry`'s fields one to one, except that the manufacturer's code has
/// two sources ([`Reading::OemFault`] and [`Reading::OemDiagnostic`]) that share `oem`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// Central-heating flow temperature (`flow`, OpenTherm id 25).
    Flow(f32),
    /// Return water temperature (`ret`, id 28).
    Return(f32),
    /// Domestic hot water temperature (`dhw`, id 26).
    Dhw(f32),
    /// Outside temperature (`out`, id 27).
    Outside(f32),
    /// Exhaust (flue) temperature (`exh`, id 33).
    Exhaust(f32),
    /// Central-heating control setpoint (`setp`, id 1).
    Setpoint(f32),
    /// Central-heating water pressure in bar (`bar`, id 18).
    Pressure(f32),
    /// Relative modulation level in % (`modu`, id 17).
    Modulation(f32),
    /// Flame on (`flame`, id 0 bit 3).
    Flame(bool),
    /// Central heating active (`ch`, id 0 bit 1).
    ChActive(bool),
    /// Hot water active (`dhw_on`, id 0 bit 2).
    DhwActive(bool),
    /// Fault indication (`fault`, id 0 bit 0).
    Fault(bool),
    /// Application-specific fault flags (`fflags`, id 5 high byte).
    FaultFlags(u8),
    /// The manufacturer's fault code (`oem`, id 5 low byte, or a JSON line's `oem`). When fresh it
    /// wins over [`Reading::OemDiagnostic`], because it is the code the boiler reports as its fault.
    OemFault(u16),
    /// The manufacturer's diagnostic code (`oem`, id 115), reported when no fresh
    /// [`Reading::OemFault`] is.
    OemDiagnostic(u16),
    /// Burner starts counter (`starts`, id 116).
    BurnerStarts(u32),
    /// Burner operation hours counter (`hours`, id 120).
    BurnerHours(u32),
    /// Gas meter reading in m³ (`gas`).
    Gas(f64),
    /// Heat meter reading in kWh (`heat`).
    Heat(f64),
}

/// How many distinct [`Reading::slot`]s there are.
pub(crate) const SLOTS: usize = 19;

/// The asset id used only to run proto's checks on a lone value; never sent.
const CHECK_ASSET: &str = "check";

impl Reading {
    /// Which field this reading fills, as an index below [`SLOTS`]. The order is the order in
    /// which the sampler applies readings: [`Reading::OemDiagnostic`] comes before
    /// [`Reading::OemFault`] so that a fresh fault code overwrites the diagnostic code.
    pub(crate) fn slot(&self) -> usize {
        match self {
            Reading::Flow(_) => 0,
            Reading::Return(_) => 1,
            Reading::Dhw(_) => 2,
            Reading::Outside(_) => 3,
            Reading::Exhaust(_) => 4,
            Reading::Setpoint(_) => 5,
            Reading::Pressure(_) => 6,
            Reading::Modulation(_) => 7,
            Reading::Flame(_) => 8,
            Reading::ChActive(_) => 9,
            Reading::DhwActive(_) => 10,
            Reading::Fault(_) => 11,
            Reading::FaultFlags(_) => 12,
            Reading::OemDiagnostic(_) => 13,
            Reading::OemFault(_) => 14,
            Reading::BurnerStarts(_) => 15,
            Reading::BurnerHours(_) => 16,
            Reading::Gas(_) => 17,
            Reading::Heat(_) => 18,
        }
    }

    /// Writes this value into its field of `sample`.
    pub fn apply(&self, sample: &mut Telemetry) {
        match *self {
            Reading::Flow(v) => sample.flow = Some(v),
            Reading::Return(v) => sample.ret = Some(v),
            Reading::Dhw(v) => sample.dhw = Some(v),
            Reading::Outside(v) => sample.out = Some(v),
            Reading::Exhaust(v) => sample.exh = Some(v),
            Reading::Setpoint(v) => sample.setp = Some(v),
            Reading::Pressure(v) => sample.bar = Some(v),
            Reading::Modulation(v) => sample.modu = Some(v),
            Reading::Flame(v) => sample.flame = Some(v),
            Reading::ChActive(v) => sample.ch = Some(v),
            Reading::DhwActive(v) => sample.dhw_on = Some(v),
            Reading::Fault(v) => sample.fault = Some(v),
            Reading::FaultFlags(v) => sample.fflags = Some(v),
            Reading::OemFault(v) | Reading::OemDiagnostic(v) => sample.oem = Some(v),
            Reading::BurnerStarts(v) => sample.starts = Some(v),
            Reading::BurnerHours(v) => sample.hours = Some(v),
            Reading::Gas(v) => sample.gas = Some(v),
            Reading::Heat(v) => sample.heat = Some(v),
        }
    }

    /// Checks the value against proto's validation, the same check the outbox makes, so that a
    /// value the outbox would refuse never reaches a sample.
    pub fn check(&self) -> Result<(), proto::Invalid> {
        // Reuses proto's rules rather than copying its bounds here, so the two cannot drift.
        let mut sample = Telemetry {
            asset: CHECK_ASSET.to_owned(),
            ..Telemetry::default()
        };
        self.apply(&mut sample);
        sample.validate()
    }

    /// Splits a whole or partial sample into readings, one for each field present; the sample's
    /// asset id is not a reading and is ignored. A simulator or a JSON line source uses this to
    /// feed samples through the same path as OpenTherm frames.
    pub fn from_telemetry(sample: &Telemetry) -> Vec<Reading> {
        let Telemetry {
            asset: _,
            flow,
            ret,
            dhw,
            out,
            exh,
            setp,
            bar,
            modu,
            flame,
            ch,
            dhw_on,
            fault,
            fflags,
            oem,
            starts,
            hours,
            gas,
            heat,
        } = *sample;
        // The destructuring above is exhaustive on purpose: a field added to `Telemetry` fails to
        // compile here until it has a reading.
        [
            flow.map(Reading::Flow),
            ret.map(Reading::Return),
            dhw.map(Reading::Dhw),
            out.map(Reading::Outside),
            exh.map(Reading::Exhaust),
            setp.map(Reading::Setpoint),
            bar.map(Reading::Pressure),
            modu.map(Reading::Modulation),
            flame.map(Reading::Flame),
            ch.map(Reading::ChActive),
            dhw_on.map(Reading::DhwActive),
            fault.map(Reading::Fault),
            fflags.map(Reading::FaultFlags),
            oem.map(Reading::OemFault),
            starts.map(Reading::BurnerStarts),
            hours.map(Reading::BurnerHours),
            gas.map(Reading::Gas),
            heat.map(Reading::Heat),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips_through_readings() {
        let sample = Telemetry {
            asset: "B-1".into(),
            flow: Some(58.5),
            ret: Some(45.0),
            dhw: Some(48.0),
            out: Some(-2.5),
            exh: Some(65.0),
            setp: Some(60.0),
            bar: Some(1.5),
            modu: Some(50.0),
            flame: Some(true),
            ch: Some(true),
            dhw_on: Some(false),
            fault: Some(false),
            fflags: Some(0x04),
            oem: Some(133),
            starts: Some(6699),
            hours: Some(3900),
            gas: Some(1234.5),
            heat: Some(9876.0),
        };
        let readings = Reading::from_telemetry(&sample);
        assert_eq!(readings.len(), 18);
        let mut rebuilt = Telemetry {
            asset: "B-1".into(),
            ..Telemetry::default()
        };
        for reading in &readings {
            assert!(reading.check().is_ok(), "{reading:?}");
            reading.apply(&mut rebuilt);
        }
        assert_eq!(rebuilt, sample);
    }

    #[test]
    fn slots_are_distinct_and_in_range() {
        let all = [
            Reading::Flow(0.0),
            Reading::Return(0.0),
            Reading::Dhw(0.0),
            Reading::Outside(0.0),
            Reading::Exhaust(0.0),
            Reading::Setpoint(0.0),
            Reading::Pressure(0.0),
            Reading::Modulation(0.0),
            Reading::Flame(false),
            Reading::ChActive(false),
            Reading::DhwActive(false),
            Reading::Fault(false),
            Reading::FaultFlags(0),
            Reading::OemFault(0),
            Reading::OemDiagnostic(0),
            Reading::BurnerStarts(0),
            Reading::BurnerHours(0),
            Reading::Gas(0.0),
            Reading::Heat(0.0),
        ];
        let mut seen = [false; SLOTS];
        for reading in all {
            let slot = reading.slot();
            assert!(!seen[slot], "slot {slot} used twice");
            seen[slot] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn check_uses_proto_bounds() {
        assert!(Reading::Pressure(2.0).check().is_ok());
        assert_eq!(Reading::Pressure(26.0).check().unwrap_err().field, "bar");
        assert_eq!(Reading::Modulation(-1.0).check().unwrap_err().field, "modu");
        assert_eq!(Reading::Flow(f32::NAN).check().unwrap_err().field, "flow");
        assert_eq!(Reading::Gas(-1.0).check().unwrap_err().field, "gas");
    }
}
