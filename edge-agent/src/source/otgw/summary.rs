//! The OTGW's `PS=1` summary line, read into the same [`Reading`]s as its frames.
//!
//! An OTGW sent `PS=1` stops printing frames and prints, each time it is asked (each further
//! `PS=1`), one line of comma-separated values: the last valid answer it saw for a fixed list of
//! data ids, in ascending order of id. The list comes from the firmware itself: `gateway.asm` of
//! the OpenTherm Gateway firmware (Schelte Bron, <https://otgw.tclcode.com/>, source at
//! <https://github.com/hvxl/otgw>) keeps the values it summarises in the table described above
//! `StoreFlagTable` and prints `SUMMARYFIELDS` (34) of them; firmware 4.x printed 25. The two
//! layouts, as pyotgw (<https://github.com/mvn23/pyotgw>, `get_status`) also reads them:
//!
//! | ids (firmware 5 and later, 34 fields)                        | firmware 4 (25 fields)   |
//! |--------------------------------------------------------------|--------------------------|
//! | 0 status `bbbbbbbb/bbbbbbbb` (master/slave)                  | same                     |
//! | 1 control setpoint                                           | same                     |
//! | 6 remote parameter flags `bbbbbbbb/bbbbbbbb`                 | same                     |
//! | 7 cooling control, 8 control setpoint CH2                    | absent                   |
//! | 14 maximum modulation, 15 capacity/minimum modulation `n/n`  | same                     |
//! | 16 room setpoint, 17 modulation, 18 pressure                 | same                     |
//! | 19 hot-water flow, 23 room setpoint CH2                      | absent                   |
//! | 24 room, 25 flow, 26 hot water, 27 outside, 28 return        | same                     |
//! | 31 flow CH2, 33 exhaust (whole degrees)                      | absent                   |
//! | 48, 49 hot-water and heating setpoint bounds `n/n`           | same                     |
//! | 56 hot-water setpoint, 57 maximum heating setpoint           | same                     |
//! | 70 ventilation status, 71 ventilation setpoint, 77 ventilation | absent                 |
//! | 116–123 starts and hours (integers)                          | same                     |
//!
//! Temperatures, setpoints, pressure and flow print with two decimals.
//!
//! # What a summary cannot say
//!
//! The firmware stores only valid answers (`StoreValue` skips Data-Invalid and Unknown-DataId) in
//! a table that starts at zero, so an id the boiler never answered prints as `0`, just as a real
//! zero does. Zero is therefore kept only where it is the ordinary idle value and harmless if it
//! means "never answered": the control setpoint (no demand), the modulation (flame off) and the
//! hot-water flow (no tap open). Everywhere else (temperatures, pressure, setpoints, capacity,
//! counters) a zero is taken as "not reported" and gives no reading: a false 0 bar or 0 °C would
//! raise alerts on a boiler that is fine. Ids 3, 5 (fault flags and OEM code) and 113–115 are not
//! in the summary at all, nor are Data-Invalid and Unknown-DataId answers; that is why the agent
//! prefers to switch the OTGW back to frames (`PS=0`) when it can write to it.

use super::frame::strip_time;
use crate::source::Reading;

/// Why a summary line gave no readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    /// Neither the 25 fields of firmware 4 nor the 34 of firmware 5 and later.
    #[error("a summary line of {0} fields, not 25 or 34")]
    FieldCount(usize),
    /// The status field is not two groups of eight binary digits.
    #[error("the summary's status field is malformed")]
    Status,
}

/// Where each reading sits in one of the two layouts (field indexes).
struct Layout {
    modulation: usize,
    pressure: usize,
    dhw_flow: Option<usize>,
    capacity: usize,
    room: usize,
    flow: usize,
    dhw: usize,
    outside: usize,
    ret: usize,
    exhaust: Option<usize>,
    dhw_setpoint: usize,
    max_setpoint: usize,
    /// Ids 116–123, in order.
    counters: usize,
}

/// Firmware 4.x: 25 fields.
const FIRMWARE_4: Layout = Layout {
    capacity: 4,
    modulation: 6,
    pressure: 7,
    dhw_flow: None,
    room: 8,
    flow: 9,
    dhw: 10,
    outside: 11,
    ret: 12,
    exhaust: None,
    dhw_setpoint: 15,
    max_setpoint: 16,
    counters: 17,
};

/// Firmware 5.0 and later: 34 fields.
const FIRMWARE_5: Layout = Layout {
    capacity: 6,
    modulation: 8,
    pressure: 9,
    dhw_flow: Some(10),
    room: 12,
    flow: 13,
    dhw: 14,
    outside: 15,
    ret: 16,
    exhaust: Some(18),
    dhw_setpoint: 21,
    max_setpoint: 22,
    counters: 26,
};

/// The readings of one summary line (with or without OpenTherm Monitor's time in front).
///
/// A field that does not parse, is zero where zero means "not reported" (see the module), or is
/// outside proto's bounds gives no reading; the others still count.
pub fn parse(line: &str) -> Result<Vec<Reading>, SummaryError> {
    let fields: Vec<&str> = strip_time(line.trim()).split(',').map(str::trim).collect();
    let layout = match fields.len() {
        25 => &FIRMWARE_4,
        34 => &FIRMWARE_5,
        n => return Err(SummaryError::FieldCount(n)),
    };
    let slave = fields[0]
        .split_once('/')
        .map(|(_, slave)| slave)
        .filter(|slave| slave.len() == 8)
        .and_then(|slave| u8::from_str_radix(slave, 2).ok())
        .ok_or(SummaryError::Status)?;
    let mut readings = vec![
        Reading::Fault(slave & 0b0001 != 0),
        Reading::ChActive(slave & 0b0010 != 0),
        Reading::DhwActive(slave & 0b0100 != 0),
        Reading::Flame(slave & 0b1000 != 0),
        Reading::StatusFlags(slave),
        Reading::Diagnostic(slave & 0b0100_0000 != 0),
    ];
    let number = |at: usize| fields[at].parse::<f32>().ok().filter(|v| v.is_finite());
    let nonzero = |at: usize| number(at).filter(|&v| v != 0.0);
    let counter = |at: usize| fields[at].parse::<u32>().ok().filter(|&v| v != 0);
    readings.extend(number(1).map(Reading::Setpoint));
    readings.extend(number(layout.modulation).map(Reading::Modulation));
    readings.extend(layout.dhw_flow.and_then(number).map(Reading::DhwFlow));
    readings.extend(nonzero(layout.pressure).map(Reading::Pressure));
    if let Some((max_kw, min_modu)) = fields[layout.capacity].split_once('/') {
        if let (Ok(max_kw), Ok(min_modu)) = (max_kw.parse::<u8>(), min_modu.parse::<u8>()) {
            if (max_kw, min_modu) != (0, 0) {
                readings.push(Reading::MaxCapacity(max_kw));
                readings.push(Reading::MinModulation(min_modu));
            }
        }
    }
    readings.extend(nonzero(layout.room).map(Reading::Room));
    readings.extend(nonzero(layout.flow).map(Reading::Flow));
    readings.extend(nonzero(layout.dhw).map(Reading::Dhw));
    readings.extend(nonzero(layout.outside).map(Reading::Outside));
    readings.extend(nonzero(layout.ret).map(Reading::Return));
    readings.extend(layout.exhaust.and_then(nonzero).map(Reading::Exhaust));
    readings.extend(nonzero(layout.dhw_setpoint).map(Reading::DhwSetpoint));
    readings.extend(nonzero(layout.max_setpoint).map(Reading::MaxSetpoint));
    let counters: [fn(u32) -> Reading; 8] = [
        Reading::BurnerStarts,
        Reading::PumpStarts,
        Reading::DhwPumpStarts,
        Reading::DhwStarts,
        Reading::BurnerHours,
        Reading::PumpHours,
        Reading::DhwPumpHours,
        Reading::DhwHours,
    ];
    for (at, reading) in (layout.counters..).zip(counters) {
        readings.extend(counter(at).map(reading));
    }
    // proto's bounds, as for frames: a value the outbox would refuse is dropped here.
    readings.retain(|reading| reading.check().is_ok());
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use proto::Telemetry;

    use super::*;

    fn sample(readings: &[Reading]) -> Telemetry {
        let mut sample = Telemetry::default();
        for reading in readings {
            reading.apply(&mut sample);
        }
        sample
    }

    /// A summary printed by firmware 4.0, as posted by a user (Remeha Calenta, hot water idle)
    /// to the OTGW forum (domoticaforum.eu, "Opentherm Gateway 4.0 alpha/beta testers wanted").
    const FIRMWARE_4_LINE: &str = "00000000/00000000,20.00,00000011/00000011,100.00,0/0,19.00,0.00,1.10,20.70,29.80,0.00,17.80,0.00,65/40,66/20,50.00,30.00,4328,5264,2064,3520,618,684,5404,113";

    #[test]
    fn reads_a_firmware_4_summary() {
        let readings = parse(FIRMWARE_4_LINE).unwrap();
        assert_eq!(
            sample(&readings),
            Telemetry {
                fault: Some(false),
                ch: Some(false),
                dhw_on: Some(false),
                flame: Some(false),
                sflags: Some(0),
                diag: Some(false),
                setp: Some(20.0),
                modu: Some(0.0),
                bar: Some(1.1),
                room: Some(20.7),
                flow: Some(29.8),
                // Hot water 0.00 and return 0.00: never answered, not 0 °C.
                dhw: None,
                ret: None,
                out: Some(17.8),
                // Capacity 0/0: not reported.
                max_kw: None,
                min_modu: None,
                dhw_setp: Some(50.0),
                max_setp: Some(30.0),
                starts: Some(4328),
                pump_starts: Some(5264),
                dhw_pump_starts: Some(2064),
                dhw_starts: Some(3520),
                hours: Some(618),
                pump_hours: Some(684),
                dhw_pump_hours: Some(5404),
                dhw_hours: Some(113),
                ..Telemetry::default()
            }
        );
    }

    /// Firmware 6 while heating: flame on with the diagnostic indication, 24 kW at 20 % minimum,
    /// a frosty morning, an exhaust at 65 °C; hot-water flow 0.00 (no tap open) is kept.
    const FIRMWARE_6_LINE: &str = "00000011/01001010,60.00,00000011/00000011,0.00,0.00,100.00,24/20,20.50,50.00,1.60,0.00,0.00,19.50,58.50,48.00,-2.50,45.00,0.00,65,65/40,80/20,55.00,75.00,00000000/00000000,0,0,6699,20001,8000,5000,3900,7000,900,800";

    #[test]
    fn reads_a_firmware_6_summary() {
        let readings = parse(&format!("15:50:36.715894  {FIRMWARE_6_LINE}\r")).unwrap();
        assert_eq!(
            sample(&readings),
            Telemetry {
                fault: Some(false),
                ch: Some(true),
                dhw_on: Some(false),
                flame: Some(true),
                sflags: Some(0x4A),
                diag: Some(true),
                setp: Some(60.0),
                max_kw: Some(24),
                min_modu: Some(20),
                modu: Some(50.0),
                bar: Some(1.6),
                dhw_flow: Some(0.0),
                room: Some(19.5),
                flow: Some(58.5),
                dhw: Some(48.0),
                out: Some(-2.5),
                ret: Some(45.0),
                exh: Some(65.0),
                dhw_setp: Some(55.0),
                max_setp: Some(75.0),
                starts: Some(6699),
                pump_starts: Some(20001),
                dhw_pump_starts: Some(8000),
                dhw_starts: Some(5000),
                hours: Some(3900),
                pump_hours: Some(7000),
                dhw_pump_hours: Some(900),
                dhw_hours: Some(800),
                ..Telemetry::default()
            }
        );
    }

    #[test]
    fn bad_fields_drop_alone_and_bad_lines_say_why() {
        // Pressure 26 bar (beyond proto's bounds) and a garbled flow: both dropped, the rest kept.
        let line = FIRMWARE_6_LINE
            .replacen(",1.60,", ",26.00,", 1)
            .replacen(",58.50,", ",5x.50,", 1);
        let s = sample(&parse(&line).unwrap());
        assert_eq!((s.bar, s.flow, s.ret), (None, None, Some(45.0)));
        assert_eq!(
            parse("00000011/01001010,60.00,1,2,3,4,5,6,7,8,9"),
            Err(SummaryError::FieldCount(11))
        );
        let bad_status = FIRMWARE_4_LINE.replacen("00000000/00000000", "00000000/0000000", 1);
        assert_eq!(parse(&bad_status), Err(SummaryError::Status));
    }
}
