//! From a boiler's OpenTherm answer to [`Reading`]s: which frames count, the data ids and their
//! encodings (OpenTherm Protocol 2.2), and the range checks that keep a
//! garbled frame out of the telemetry.
//!
//! # Which frames become readings
//!
//! Only frames with origin `B`, the boiler's own answers, and of those only:
//! - Read-Acks, for every data id below;
//! - Write-Acks for id 1 (control setpoint): OpenTherm defines id 1 as write-only, the thermostat
//!   (or the gateway, overriding it) writes the setpoint and the boiler's Write-Ack confirms the
//!   value it now works to, so it is the only place the setpoint appears; likewise ids 56 and 57
//!   (hot-water and maximum heating setpoints), which a thermostat may write.
//!
//! One exception to the boiler's answers: the room temperature (id 24) is the thermostat's own
//! measurement, which it writes to the boiler (`T`, Write-Data); that frame is taken whatever the
//! boiler answers, since many boilers answer Unknown-DataId to it.
//!
//! `A` lines are skipped although the gateway sends them "on the boiler's behalf": they are what
//! the thermostat was told, not what the boiler measured. When the boiler answers Unknown-DataId
//! the gateway still answers the thermostat with a Read-Ack (zeros, or an override value such as
//! an outside temperature set with the `OT` command); taking those would report invented values as
//! the boiler's. `T` and `R` lines are requests and carry no measurement.
//!
//! # Checks, in order
//!
//! 1. Parity (even over the 32 bits).
//! 2. Message type against origin: a request type from `B`/`A`, or an answer type from `T`/`R`,
//!    means the frame is corrupt.
//! 3. Origin `B`, and an acknowledgement as above (Data-Invalid and Unknown-DataId answers are
//!    counted separately: they say what the boiler cannot report).
//! 4. A data id we decode.
//! 5. The value within the OpenTherm 2.2 range for the id **and** proto's validation. Parity only
//!    catches an odd number of flipped bits, so a frame with two can pass it; the ranges turn most
//!    such frames (a 26 bar pressure, a −100 °C flow) into a counted skip rather than telemetry.

use super::frame::{Message, MsgType, Origin};
use crate::source::Reading;

/// The OpenTherm 2.2 data ids this module decodes.
pub mod id {
    /// Master and slave status flags; the slave's in the low byte.
    pub const STATUS: u8 = 0;
    /// Control setpoint, °C (f8.8). Written by the master; the boiler's Write-Ack confirms it.
    pub const CONTROL_SETPOINT: u8 = 1;
    /// Slave configuration flags (high byte) and member id (low byte).
    pub const SLAVE_CONFIG: u8 = 3;
    /// Application-specific fault flags (high byte) and OEM fault code (low byte).
    pub const FAULT_FLAGS: u8 = 5;
    /// Maximum boiler capacity, kW (high byte), and minimum modulation, % (low byte).
    pub const CAPACITY: u8 = 15;
    /// Relative modulation level, % (f8.8).
    pub const REL_MODULATION: u8 = 17;
    /// Central-heating water pressure, bar (f8.8).
    pub const CH_PRESSURE: u8 = 18;
    /// Hot-water flow rate, l/min (f8.8).
    pub const DHW_FLOW: u8 = 19;
    /// Room temperature, °C (f8.8). Written by the thermostat.
    pub const ROOM_TEMP: u8 = 24;
    /// Boiler flow water temperature, °C (f8.8).
    pub const FLOW_TEMP: u8 = 25;
    /// Domestic hot water temperature, °C (f8.8).
    pub const DHW_TEMP: u8 = 26;
    /// Outside temperature, °C (f8.8).
    pub const OUTSIDE_TEMP: u8 = 27;
    /// Return water temperature, °C (f8.8).
    pub const RETURN_TEMP: u8 = 28;
    /// Exhaust temperature, °C (s16).
    pub const EXHAUST_TEMP: u8 = 33;
    /// Hot-water setpoint, °C (f8.8).
    pub const DHW_SETPOINT: u8 = 56;
    /// Maximum central-heating water setpoint, °C (f8.8).
    pub const MAX_CH_SETPOINT: u8 = 57;
    /// Unsuccessful burner starts (u16).
    pub const FAILED_STARTS: u8 = 113;
    /// Flame signal too low (u16).
    pub const FLAME_LOW: u8 = 114;
    /// OEM diagnostic code (u16).
    pub const OEM_DIAGNOSTIC: u8 = 115;
    /// Burner starts (u16).
    pub const BURNER_STARTS: u8 = 116;
    /// Central-heating pump starts (u16).
    pub const CH_PUMP_STARTS: u8 = 117;
    /// Hot-water pump or valve starts (u16).
    pub const DHW_PUMP_STARTS: u8 = 118;
    /// Burner starts for hot water (u16).
    pub const DHW_BURNER_STARTS: u8 = 119;
    /// Burner operation hours (u16).
    pub const BURNER_HOURS: u8 = 120;
    /// Central-heating pump operation hours (u16).
    pub const CH_PUMP_HOURS: u8 = 121;
    /// Hot-water pump or valve operation hours (u16).
    pub const DHW_PUMP_HOURS: u8 = 122;
    /// Burner operation hours for hot water (u16).
    pub const DHW_BURNER_HOURS: u8 = 123;
}

/// Why a frame did not become readings. Each has its own counter in
/// [`StatsSnapshot`](crate::source::StatsSnapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The parity bit is wrong: the frame was corrupted.
    Parity,
    /// The message type does not fit the origin (an answer type from the thermostat, a request
    /// type from the boiler) or is the reserved type: corrupted.
    MessageType,
    /// Not from the boiler (`T`, `R` or `A`; see the module's documentation).
    NotBoiler,
    /// The boiler answered Data-Invalid: it knows the id but has no valid value (a failed sensor).
    DataInvalid,
    /// The boiler answered Unknown-DataId: it does not support the id.
    Unsupported,
    /// A Write-Ack for an id whose value we only take from Read-Acks.
    NotReadAck,
    /// A data id we do not decode.
    UnusedId,
    /// The value is outside the id's OpenTherm range or proto's validation.
    OutOfRange,
}

/// An f8.8 value: a signed 16-bit number of 1/256ths.
pub fn f88(value: u16) -> f32 {
    f32::from(s16(value)) / 256.0
}

/// Encodes a value as f8.8, rounding to the nearest 1/256 and saturating at −128 and
/// 127.996 (for simulators and tests).
pub fn to_f88(value: f32) -> u16 {
    // `as` from f32 saturates (and maps NaN to 0), which is the clamping wanted here.
    let fixed = (value * 256.0).round() as i16;
    u16::from_be_bytes(fixed.to_be_bytes())
}

/// A signed 16-bit value (two's complement).
pub fn s16(value: u16) -> i16 {
    i16::from_be_bytes(value.to_be_bytes())
}

/// Decodes a frame from an OTGW line into readings, or says why it is skipped.
///
/// Status (id 0) gives six readings, ids 3, 5 and 15 two each; every other id gives one.
pub fn decode(message: Message) -> Result<Vec<Reading>, Skip> {
    let Message { origin, frame } = message;
    if !frame.parity_ok() {
        return Err(Skip::Parity);
    }
    let msg_type = frame.msg_type();
    if msg_type.is_request() != origin.sends_requests() || msg_type == MsgType::Reserved {
        return Err(Skip::MessageType);
    }
    let data_id = frame.data_id();
    if origin == Origin::Thermostat && msg_type == MsgType::WriteData && data_id == id::ROOM_TEMP {
        return Ok(vec![Reading::Room(temperature(frame.value())?)]);
    }
    if origin != Origin::Boiler {
        return Err(Skip::NotBoiler);
    }
    match msg_type {
        MsgType::ReadAck => {}
        MsgType::WriteAck
            if matches!(
                data_id,
                id::CONTROL_SETPOINT | id::DHW_SETPOINT | id::MAX_CH_SETPOINT
            ) => {}
        MsgType::WriteAck => return Err(Skip::NotReadAck),
        MsgType::DataInvalid => return Err(Skip::DataInvalid),
        // Request types were refused above; Unknown-DataId is all that is left.
        _ => return Err(Skip::Unsupported),
    }
    let value = frame.value();
    let readings = match data_id {
        id::STATUS => {
            let flags = frame.lb();
            vec![
                Reading::Fault(flags & 0b0001 != 0),
                Reading::ChActive(flags & 0b0010 != 0),
                Reading::DhwActive(flags & 0b0100 != 0),
                Reading::Flame(flags & 0b1000 != 0),
                // Bits 4–7 (cooling, CH2, diagnostic, reserved) travel whole in the byte.
                Reading::StatusFlags(flags),
                Reading::Diagnostic(flags & 0b0100_0000 != 0),
            ]
        }
        id::SLAVE_CONFIG => vec![
            Reading::SlaveConfig(frame.hb()),
            Reading::SlaveMember(frame.lb()),
        ],
        id::CAPACITY => vec![
            Reading::MaxCapacity(frame.hb()),
            Reading::MinModulation(frame.lb()),
        ],
        id::DHW_FLOW => vec![Reading::DhwFlow(ranged(f88(value), 0.0, 16.0)?)],
        id::DHW_SETPOINT => vec![Reading::DhwSetpoint(ranged(f88(value), 0.0, 127.0)?)],
        id::MAX_CH_SETPOINT => vec![Reading::MaxSetpoint(ranged(f88(value), 0.0, 127.0)?)],
        id::FAILED_STARTS => vec![Reading::FailedStarts(u32::from(value))],
        id::FLAME_LOW => vec![Reading::FlameLow(u32::from(value))],
        id::CH_PUMP_STARTS => vec![Reading::PumpStarts(u32::from(value))],
        id::DHW_PUMP_STARTS => vec![Reading::DhwPumpStarts(u32::from(value))],
        id::DHW_BURNER_STARTS => vec![Reading::DhwStarts(u32::from(value))],
        id::CH_PUMP_HOURS => vec![Reading::PumpHours(u32::from(value))],
        id::DHW_PUMP_HOURS => vec![Reading::DhwPumpHours(u32::from(value))],
        id::DHW_BURNER_HOURS => vec![Reading::DhwHours(u32::from(value))],
        id::CONTROL_SETPOINT => vec![Reading::Setpoint(ranged(f88(value), 0.0, 100.0)?)],
        id::FAULT_FLAGS => vec![
            Reading::FaultFlags(frame.hb()),
            Reading::OemFault(u16::from(frame.lb())),
        ],
        id::REL_MODULATION => vec![Reading::Modulation(ranged(f88(value), 0.0, 100.0)?)],
        id::CH_PRESSURE => vec![Reading::Pressure(ranged(f88(value), 0.0, 5.0)?)],
        id::FLOW_TEMP => vec![Reading::Flow(temperature(value)?)],
        id::DHW_TEMP => vec![Reading::Dhw(temperature(value)?)],
        id::OUTSIDE_TEMP => vec![Reading::Outside(temperature(value)?)],
        id::RETURN_TEMP => vec![Reading::Return(temperature(value)?)],
        id::EXHAUST_TEMP => vec![Reading::Exhaust(ranged(
            f32::from(s16(value)),
            -40.0,
            500.0,
        )?)],
        id::OEM_DIAGNOSTIC => vec![Reading::OemDiagnostic(value)],
        id::BURNER_STARTS => vec![Reading::BurnerStarts(u32::from(value))],
        id::BURNER_HOURS => vec![Reading::BurnerHours(u32::from(value))],
        _ => return Err(Skip::UnusedId),
    };
    // proto's bounds are the outbox's: a value outside them would be refused there, whatever
    // OpenTherm allows (exhaust may reach 500 °C by the protocol, 400 °C by proto).
    if readings.iter().any(|reading| reading.check().is_err()) {
        return Err(Skip::OutOfRange);
    }
    Ok(readings)
}

/// An f8.8 temperature in OpenTherm's −40 to 127 °C range.
fn temperature(value: u16) -> Result<f32, Skip> {
    ranged(f88(value), -40.0, 127.0)
}

fn ranged(value: f32, min: f32, max: f32) -> Result<f32, Skip> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Skip::OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::otgw::frame::{parse_line, Frame, Line};

    fn boiler(msg_type: MsgType, data_id: u8, value: u16) -> Message {
        Message {
            origin: Origin::Boiler,
            frame: Frame::new(msg_type, data_id, value),
        }
    }

    fn read_ack(data_id: u8, value: u16) -> Result<Vec<Reading>, Skip> {
        decode(boiler(MsgType::ReadAck, data_id, value))
    }

    fn line(text: &str) -> Result<Vec<Reading>, Skip> {
        match parse_line(text) {
            Line::Message(message) => decode(message),
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn f88_values() {
        assert_eq!(f88(0x3A80), 58.5);
        assert_eq!(f88(0x0A00), 10.0);
        assert_eq!(f88(0x0180), 1.5);
        assert_eq!(f88(0xFD80), -2.5);
        assert_eq!(f88(0xFF00), -1.0);
        assert_eq!(f88(0x8000), -128.0);
        assert_eq!(f88(0x7FFF), 32767.0 / 256.0);
        for v in [58.5, -2.5, 0.0, 1.5, -40.0, 100.0] {
            assert_eq!(f88(to_f88(v)), v);
        }
        assert_eq!(to_f88(1000.0), 0x7FFF);
        assert_eq!(to_f88(-1000.0), 0x8000);
    }

    #[test]
    fn status_flags() {
        // LB 0x0A: CH active and flame on.
        assert_eq!(
            line("BC000030A").unwrap(),
            vec![
                Reading::Fault(false),
                Reading::ChActive(true),
                Reading::DhwActive(false),
                Reading::Flame(true),
                Reading::StatusFlags(0x0A),
                Reading::Diagnostic(false),
            ]
        );
        assert_eq!(
            read_ack(id::STATUS, 0x0305).unwrap(),
            vec![
                Reading::Fault(true),
                Reading::ChActive(false),
                Reading::DhwActive(true),
                Reading::Flame(false),
                Reading::StatusFlags(0x05),
                Reading::Diagnostic(false),
            ]
        );
        // Bits above 3 (cooling, CH2, diagnostic) do not leak into the four flags; they travel
        // in the whole byte, and bit 6 as the diagnostic indication.
        assert_eq!(
            read_ack(id::STATUS, 0x00F0).unwrap(),
            vec![
                Reading::Fault(false),
                Reading::ChActive(false),
                Reading::DhwActive(false),
                Reading::Flame(false),
                Reading::StatusFlags(0xF0),
                Reading::Diagnostic(true),
            ]
        );
        // Captured: CH on, flame on, diagnostic indication (LB 0x4A).
        let readings = line("B4000034A").unwrap();
        assert_eq!(
            readings[4..],
            [Reading::StatusFlags(0x4A), Reading::Diagnostic(true)]
        );
    }

    #[test]
    fn control_setpoint_from_the_boilers_write_ack_or_read_ack() {
        // From a real capture: the thermostat writes 29 °C, the boiler acknowledges it.
        assert_eq!(line("BD0011D00").unwrap(), vec![Reading::Setpoint(29.0)]);
        assert_eq!(read_ack(1, 0x3C00).unwrap(), vec![Reading::Setpoint(60.0)]);
        assert_eq!(
            decode(boiler(MsgType::WriteAck, 1, 0x6500)),
            Err(Skip::OutOfRange)
        );
    }

    #[test]
    fn fault_flags_and_oem_code() {
        // Low water pressure (HB bit 2) with OEM code 133.
        assert_eq!(
            read_ack(id::FAULT_FLAGS, 0x0485).unwrap(),
            vec![Reading::FaultFlags(0x04), Reading::OemFault(133)]
        );
        assert_eq!(
            read_ack(id::OEM_DIAGNOSTIC, 0x0201).unwrap(),
            vec![Reading::OemDiagnostic(513)]
        );
    }

    #[test]
    fn modulation_and_pressure() {
        assert_eq!(
            read_ack(17, 0x3200).unwrap(),
            vec![Reading::Modulation(50.0)]
        );
        assert_eq!(
            read_ack(17, 0x0000).unwrap(),
            vec![Reading::Modulation(0.0)]
        );
        assert_eq!(read_ack(18, 0x0180).unwrap(), vec![Reading::Pressure(1.5)]);
        assert_eq!(
            read_ack(18, 0x019A).unwrap(),
            vec![Reading::Pressure(1.601_562_5)]
        );
    }

    #[test]
    fn temperatures() {
        assert_eq!(line("B40191B00").unwrap(), vec![Reading::Flow(27.0)]);
        // 0x1A is data id 26, and 0x3A80 is 58.5 in f8.8.
        assert_eq!(line("BC01A3A80").unwrap(), vec![Reading::Dhw(58.5)]);
        assert_eq!(read_ack(28, 0x2D00).unwrap(), vec![Reading::Return(45.0)]);
        assert_eq!(read_ack(27, 0x0C80).unwrap(), vec![Reading::Outside(12.5)]);
    }

    #[test]
    fn negative_outside_temperature() {
        assert_eq!(read_ack(27, 0xFD80).unwrap(), vec![Reading::Outside(-2.5)]);
        assert_eq!(read_ack(27, 0xF600).unwrap(), vec![Reading::Outside(-10.0)]);
        assert_eq!(read_ack(27, 0xD800).unwrap(), vec![Reading::Outside(-40.0)]);
    }

    #[test]
    fn exhaust_is_a_signed_integer() {
        assert_eq!(read_ack(33, 65).unwrap(), vec![Reading::Exhaust(65.0)]);
        assert_eq!(read_ack(33, 0xFFFB).unwrap(), vec![Reading::Exhaust(-5.0)]);
        assert_eq!(read_ack(33, 250).unwrap(), vec![Reading::Exhaust(250.0)]);
    }

    #[test]
    fn counters() {
        assert_eq!(
            read_ack(116, 0x1A2B).unwrap(),
            vec![Reading::BurnerStarts(6699)]
        );
        assert_eq!(
            read_ack(116, 0xFFFF).unwrap(),
            vec![Reading::BurnerStarts(65535)]
        );
        assert_eq!(
            read_ack(120, 3900).unwrap(),
            vec![Reading::BurnerHours(3900)]
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        // 26 bar: beyond OpenTherm's 0–5 bar (and proto's 10).
        assert_eq!(read_ack(18, 0x1A00), Err(Skip::OutOfRange));
        // Negative pressure, modulation over 100 %.
        assert_eq!(read_ack(18, 0xFF00), Err(Skip::OutOfRange));
        assert_eq!(read_ack(17, 0x7800), Err(Skip::OutOfRange));
        // −100 °C flow passes proto (−128 °C) but not OpenTherm (−40 °C).
        assert_eq!(read_ack(25, to_f88(-100.0)), Err(Skip::OutOfRange));
        assert_eq!(read_ack(27, 0x8000), Err(Skip::OutOfRange));
        // 450 °C exhaust passes OpenTherm (500 °C) but not proto (400 °C).
        assert_eq!(read_ack(33, 450), Err(Skip::OutOfRange));
        assert_eq!(read_ack(33, 0xFF00), Err(Skip::OutOfRange));
    }

    #[test]
    fn bad_parity_is_refused_before_anything_else() {
        let good = Frame::new(MsgType::ReadAck, 25, 0x3A80);
        let flipped = Message {
            origin: Origin::Boiler,
            frame: Frame::from_bits(good.bits() ^ 1),
        };
        assert_eq!(decode(flipped), Err(Skip::Parity));
        assert_eq!(line("B40190A01"), Err(Skip::Parity));
        assert_eq!(line("T80190001"), Err(Skip::Parity));
    }

    #[test]
    fn message_type_must_fit_the_origin() {
        assert_eq!(
            decode(boiler(MsgType::ReadData, 25, 0x3A80)),
            Err(Skip::MessageType)
        );
        assert_eq!(
            decode(boiler(MsgType::Reserved, 25, 0x3A80)),
            Err(Skip::MessageType)
        );
        let thermostat_ack = Message {
            origin: Origin::Thermostat,
            frame: Frame::new(MsgType::ReadAck, 25, 0x3A80),
        };
        assert_eq!(decode(thermostat_ack), Err(Skip::MessageType));
    }

    #[test]
    fn only_the_boilers_answers_count() {
        assert_eq!(line("T80190000"), Err(Skip::NotBoiler));
        assert_eq!(line("T10011D00"), Err(Skip::NotBoiler));
        let request = Message {
            origin: Origin::GatewayRequest,
            frame: Frame::new(MsgType::ReadData, 27, 0),
        };
        assert_eq!(decode(request), Err(Skip::NotBoiler));
        // The gateway's stand-in answer after the boiler said Unknown-DataId.
        assert_eq!(line("AC0090000"), Err(Skip::NotBoiler));
        let answer = Message {
            origin: Origin::GatewayAnswer,
            frame: Frame::new(MsgType::ReadAck, 27, 0xFD80),
        };
        assert_eq!(decode(answer), Err(Skip::NotBoiler));
    }

    #[test]
    fn boiler_refusals_and_other_acks() {
        assert_eq!(line("BF0090000"), Err(Skip::Unsupported));
        assert_eq!(
            decode(boiler(MsgType::UnknownDataId, 27, 0)),
            Err(Skip::Unsupported)
        );
        assert_eq!(
            decode(boiler(MsgType::DataInvalid, 18, 0)),
            Err(Skip::DataInvalid)
        );
        assert_eq!(
            decode(boiler(MsgType::WriteAck, 25, 0x3A80)),
            Err(Skip::NotReadAck)
        );
        // Ids nobody reads (the date, say) are counted as unused.
        assert_eq!(read_ack(21, 0x0101), Err(Skip::UnusedId));
    }

    #[test]
    fn configuration_capacity_and_setpoints() {
        // Captured: hot water present, member id 11 (0x0B).
        assert_eq!(
            line("BC003010B").unwrap(),
            vec![Reading::SlaveConfig(0x01), Reading::SlaveMember(11)]
        );
        assert_eq!(
            read_ack(id::CAPACITY, 0x1814).unwrap(),
            vec![Reading::MaxCapacity(24), Reading::MinModulation(20)]
        );
        // A minimum modulation over 100 % is a garbled frame.
        assert_eq!(read_ack(id::CAPACITY, 0x18C8), Err(Skip::OutOfRange));
        assert_eq!(
            read_ack(id::DHW_FLOW, 0x0780).unwrap(),
            vec![Reading::DhwFlow(7.5)]
        );
        assert_eq!(read_ack(id::DHW_FLOW, 0x1400), Err(Skip::OutOfRange));
        assert_eq!(
            read_ack(id::DHW_SETPOINT, 0x3700).unwrap(),
            vec![Reading::DhwSetpoint(55.0)]
        );
        assert_eq!(
            decode(boiler(MsgType::WriteAck, id::MAX_CH_SETPOINT, 0x4B00)).unwrap(),
            vec![Reading::MaxSetpoint(75.0)]
        );
    }

    #[test]
    fn room_temperature_from_the_thermostats_write() {
        // The thermostat writes 19.5 °C; the boiler does not support it (B7018....).
        let t = Message {
            origin: Origin::Thermostat,
            frame: Frame::new(MsgType::WriteData, id::ROOM_TEMP, 0x1380),
        };
        assert_eq!(decode(t).unwrap(), vec![Reading::Room(19.5)]);
        assert_eq!(
            decode(boiler(MsgType::UnknownDataId, id::ROOM_TEMP, 0x1380)),
            Err(Skip::Unsupported)
        );
        // The thermostat reading it back, or the gateway's request, is not a measurement.
        let read = Message {
            origin: Origin::Thermostat,
            frame: Frame::new(MsgType::ReadData, id::ROOM_TEMP, 0),
        };
        assert_eq!(decode(read), Err(Skip::NotBoiler));
    }

    #[test]
    fn fault_counters_and_the_hot_water_split() {
        let cases = [
            (113, Reading::FailedStarts(3)),
            (114, Reading::FlameLow(3)),
            (117, Reading::PumpStarts(3)),
            (118, Reading::DhwPumpStarts(3)),
            (119, Reading::DhwStarts(3)),
            (121, Reading::PumpHours(3)),
            (122, Reading::DhwPumpHours(3)),
            (123, Reading::DhwHours(3)),
        ];
        for (data_id, reading) in cases {
            assert_eq!(read_ack(data_id, 3).unwrap(), vec![reading], "id {data_id}");
        }
    }

    #[test]
    fn spare_bits_are_ignored() {
        let bits = Frame::new(MsgType::ReadAck, 25, 0x3A80).bits() ^ (0b11 << 24);
        let message = Message {
            origin: Origin::Boiler,
            frame: Frame::from_bits(bits),
        };
        assert_eq!(message.frame.spare(), 0b11);
        assert_eq!(decode(message).unwrap(), vec![Reading::Flow(58.5)]);
    }
}
