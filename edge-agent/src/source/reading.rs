//! One value from a boiler, as a source delivers it: OpenTherm gives one data id per frame, so
//! readings are partial and the [`Sampler`](super::Sampler) assembles them into samples.

use proto::{Telemetry, Validate};

/// One value of one [`Telemetry`] field. Temperatures in °C, pressure in bar.
///
/// The variants mirror `Telemetry`'s fields one to one, except the answers to data ids
/// ([`Reading::Answer`]), one per id, which make the `inval` and `unsup` lists.
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
    /// The manufacturer's fault code (`oem`, id 5 low byte, or a JSON line's `oem`).
    OemFault(u16),
    /// The manufacturer's diagnostic code (`odiag`, id 115), kept apart from the fault code.
    OemDiagnostic(u16),
    /// Burner starts counter (`starts`, id 116).
    BurnerStarts(u32),
    /// Burner operation hours counter (`hours`, id 120).
    BurnerHours(u32),
    /// Gas meter reading in m³ (`gas`).
    Gas(f64),
    /// Heat meter reading in kWh (`heat`).
    Heat(f64),
    /// The boiler's whole status byte (`sflags`, id 0 low byte, bits 4–7 included).
    StatusFlags(u8),
    /// Diagnostic (service) indication (`diag`, id 0 bit 6).
    Diagnostic(bool),
    /// Slave configuration flags (`scfg`, id 3 high byte).
    SlaveConfig(u8),
    /// Slave member id (`smem`, id 3 low byte).
    SlaveMember(u8),
    /// Maximum boiler capacity in kW (`max_kw`, id 15 high byte).
    MaxCapacity(u8),
    /// Minimum modulation level in % (`min_modu`, id 15 low byte).
    MinModulation(u8),
    /// Hot-water flow rate in l/min (`dhw_flow`, id 19).
    DhwFlow(f32),
    /// Room temperature (`room`, id 24, from the thermostat).
    Room(f32),
    /// Hot-water setpoint (`dhw_setp`, id 56).
    DhwSetpoint(f32),
    /// Maximum central-heating setpoint (`max_setp`, id 57).
    MaxSetpoint(f32),
    /// Unsuccessful burner starts (`fail_starts`, id 113).
    FailedStarts(u32),
    /// Flame signal too low (`flame_low`, id 114).
    FlameLow(u32),
    /// Central-heating pump starts (`pump_starts`, id 117).
    PumpStarts(u32),
    /// Hot-water pump or valve starts (`dhw_pump_starts`, id 118).
    DhwPumpStarts(u32),
    /// Burner starts for hot water (`dhw_starts`, id 119).
    DhwStarts(u32),
    /// Central-heating pump hours (`pump_hours`, id 121).
    PumpHours(u32),
    /// Hot-water pump or valve hours (`dhw_pump_hours`, id 122).
    DhwPumpHours(u32),
    /// Burner hours for hot water (`dhw_hours`, id 123).
    DhwHours(u32),
    /// How the boiler last answered a data id (`inval`, `unsup`): one slot per id, so that a
    /// sensor that recovers drops out of `inval` at its next valid answer.
    Answer(u8, Answer),
}

/// How the boiler answered a data id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// With a value (after an earlier refusal).
    Valid,
    /// Data-Invalid: the id is known but its value is invalid now (a failed sensor).
    Invalid,
    /// Unknown-DataId: the id is not supported.
    Unsupported,
}

/// The slots of the fields; [`Reading::Answer`]s take one each after them, per data id.
const FIELD_SLOTS: usize = 37;

/// How many distinct [`Reading::slot`]s there are.
pub(crate) const SLOTS: usize = FIELD_SLOTS + 256;

/// Adds `id` to an ascending list of distinct ids (at most 256 long).
fn insert_id(ids: &mut Vec<u8>, id: u8) {
    if let Err(at) = ids.binary_search(&id) {
        ids.insert(at, id);
    }
}

/// The asset id used only to run proto's checks on a lone value; never sent.
const CHECK_ASSET: &str = "check";

impl Reading {
    /// Which field this reading fills, as an index below [`SLOTS`]; answers take one per id.
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
            Reading::StatusFlags(_) => 19,
            Reading::Diagnostic(_) => 20,
            Reading::SlaveConfig(_) => 21,
            Reading::SlaveMember(_) => 22,
            Reading::MaxCapacity(_) => 23,
            Reading::MinModulation(_) => 24,
            Reading::DhwFlow(_) => 25,
            Reading::Room(_) => 26,
            Reading::DhwSetpoint(_) => 27,
            Reading::MaxSetpoint(_) => 28,
            Reading::FailedStarts(_) => 29,
            Reading::FlameLow(_) => 30,
            Reading::PumpStarts(_) => 31,
            Reading::DhwPumpStarts(_) => 32,
            Reading::DhwStarts(_) => 33,
            Reading::PumpHours(_) => 34,
            Reading::DhwPumpHours(_) => 35,
            Reading::DhwHours(_) => 36,
            Reading::Answer(id, _) => FIELD_SLOTS + usize::from(*id),
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
            Reading::OemFault(v) => sample.oem = Some(v),
            Reading::OemDiagnostic(v) => sample.odiag = Some(v),
            Reading::BurnerStarts(v) => sample.starts = Some(v),
            Reading::BurnerHours(v) => sample.hours = Some(v),
            Reading::Gas(v) => sample.gas = Some(v),
            Reading::Heat(v) => sample.heat = Some(v),
            Reading::StatusFlags(v) => sample.sflags = Some(v),
            Reading::Diagnostic(v) => sample.diag = Some(v),
            Reading::SlaveConfig(v) => sample.scfg = Some(v),
            Reading::SlaveMember(v) => sample.smem = Some(v),
            Reading::MaxCapacity(v) => sample.max_kw = Some(v),
            Reading::MinModulation(v) => sample.min_modu = Some(v),
            Reading::DhwFlow(v) => sample.dhw_flow = Some(v),
            Reading::Room(v) => sample.room = Some(v),
            Reading::DhwSetpoint(v) => sample.dhw_setp = Some(v),
            Reading::MaxSetpoint(v) => sample.max_setp = Some(v),
            Reading::FailedStarts(v) => sample.fail_starts = Some(v),
            Reading::FlameLow(v) => sample.flame_low = Some(v),
            Reading::PumpStarts(v) => sample.pump_starts = Some(v),
            Reading::DhwPumpStarts(v) => sample.dhw_pump_starts = Some(v),
            Reading::DhwStarts(v) => sample.dhw_starts = Some(v),
            Reading::PumpHours(v) => sample.pump_hours = Some(v),
            Reading::DhwPumpHours(v) => sample.dhw_pump_hours = Some(v),
            Reading::DhwHours(v) => sample.dhw_hours = Some(v),
            Reading::Answer(_, Answer::Valid) => {}
            Reading::Answer(id, Answer::Invalid) => insert_id(&mut sample.inval, id),
            Reading::Answer(id, Answer::Unsupported) => insert_id(&mut sample.unsup, id),
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
            sflags,
            diag,
            odiag,
            ref inval,
            ref unsup,
            scfg,
            smem,
            max_kw,
            min_modu,
            dhw_flow,
            room,
            dhw_setp,
            max_setp,
            fail_starts,
            flame_low,
            pump_starts,
            dhw_pump_starts,
            dhw_starts,
            pump_hours,
            dhw_pump_hours,
            dhw_hours,
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
            sflags.map(Reading::StatusFlags),
            diag.map(Reading::Diagnostic),
            odiag.map(Reading::OemDiagnostic),
            scfg.map(Reading::SlaveConfig),
            smem.map(Reading::SlaveMember),
            max_kw.map(Reading::MaxCapacity),
            min_modu.map(Reading::MinModulation),
            dhw_flow.map(Reading::DhwFlow),
            room.map(Reading::Room),
            dhw_setp.map(Reading::DhwSetpoint),
            max_setp.map(Reading::MaxSetpoint),
            fail_starts.map(Reading::FailedStarts),
            flame_low.map(Reading::FlameLow),
            pump_starts.map(Reading::PumpStarts),
            dhw_pump_starts.map(Reading::DhwPumpStarts),
            dhw_starts.map(Reading::DhwStarts),
            pump_hours.map(Reading::PumpHours),
            dhw_pump_hours.map(Reading::DhwPumpHours),
            dhw_hours.map(Reading::DhwHours),
        ]
        .into_iter()
        .flatten()
        .chain(inval.iter().map(|&id| Reading::Answer(id, Answer::Invalid)))
        .chain(
            unsup
                .iter()
                .map(|&id| Reading::Answer(id, Answer::Unsupported)),
        )
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
            sflags: Some(0x4A),
            diag: Some(true),
            odiag: Some(258),
            inval: vec![18, 28],
            unsup: vec![27],
            scfg: Some(0x01),
            smem: Some(11),
            max_kw: Some(24),
            min_modu: Some(20),
            dhw_flow: Some(7.5),
            room: Some(19.5),
            dhw_setp: Some(55.0),
            max_setp: Some(75.0),
            fail_starts: Some(3),
            flame_low: Some(1),
            pump_starts: Some(20_000),
            dhw_pump_starts: Some(8_000),
            dhw_starts: Some(5_000),
            pump_hours: Some(7_000),
            dhw_pump_hours: Some(900),
            dhw_hours: Some(800),
        };
        let readings = Reading::from_telemetry(&sample);
        assert_eq!(readings.len(), 18 + 19 + 3);
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
            Reading::StatusFlags(0),
            Reading::Diagnostic(false),
            Reading::SlaveConfig(0),
            Reading::SlaveMember(0),
            Reading::MaxCapacity(0),
            Reading::MinModulation(0),
            Reading::DhwFlow(0.0),
            Reading::Room(0.0),
            Reading::DhwSetpoint(0.0),
            Reading::MaxSetpoint(0.0),
            Reading::FailedStarts(0),
            Reading::FlameLow(0),
            Reading::PumpStarts(0),
            Reading::DhwPumpStarts(0),
            Reading::DhwStarts(0),
            Reading::PumpHours(0),
            Reading::DhwPumpHours(0),
            Reading::DhwHours(0),
        ]
        .into_iter()
        .chain((0..=255).map(|id| Reading::Answer(id, Answer::Invalid)));
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
        assert_eq!(
            Reading::MinModulation(101).check().unwrap_err().field,
            "min_modu"
        );
        assert!(Reading::Answer(9, Answer::Unsupported).check().is_ok());
    }
}
