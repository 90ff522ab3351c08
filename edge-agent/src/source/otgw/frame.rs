//! The OpenTherm frame and the OpenTherm Gateway (OTGW) line that carries it: parsing, parity,
//! message types, and encoding (for simulators and tests).
//!
//! An OTGW prints every frame it sees or sends as one line: an origin letter and the 32-bit frame
//! in 8 hex digits, e.g. `B40190A00`. Frame layout (OpenTherm 2.2, most significant bit first):
//!
//! | bits  | field                                             |
//! |-------|---------------------------------------------------|
//! | 31    | parity: even parity over all 32 bits              |
//! | 30–28 | message type ([`MsgType`])                        |
//! | 27–24 | spare (should be zero; ignored, see below)        |
//! | 23–16 | data id                                           |
//! | 15–0  | value: a high byte (HB) and a low byte (LB)       |
//!
//! Spare bits are not checked: they carry no meaning, a frame with them set still decodes the
//! same, and refusing it could silence a boiler whose firmware sets them.
//!
//! Besides frames, an OTGW prints command responses (`PR: A=OpenTherm Gateway 4.2.5`), its banner,
//! and line errors (`Error 03`). OpenTherm Monitor's log files put a time and a description around
//! the frame (`15:50:36.715894  B40191B00  Read-Ack  Boiler water temperature: 27.00`); both forms
//! parse, so a field capture can be replayed as it was saved.

use std::fmt;

/// Who put a frame on the wire, as the OTGW's origin letter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// `T`: a request the gateway received from the thermostat.
    Thermostat,
    /// `B`: an answer the gateway received from the boiler, including answers to the gateway's own
    /// requests.
    Boiler,
    /// `R`: a request the gateway sent to the boiler in place of, or besides, the thermostat's.
    GatewayRequest,
    /// `A`: an answer the gateway sent to the thermostat in place of the boiler's (an override, or
    /// a stand-in for an id the boiler does not support).
    GatewayAnswer,
}

impl Origin {
    /// Parses an origin letter.
    pub fn from_letter(letter: char) -> Option<Origin> {
        match letter {
            'T' => Some(Origin::Thermostat),
            'B' => Some(Origin::Boiler),
            'R' => Some(Origin::GatewayRequest),
            'A' => Some(Origin::GatewayAnswer),
            _ => None,
        }
    }

    /// The origin letter.
    pub fn letter(self) -> char {
        match self {
            Origin::Thermostat => 'T',
            Origin::Boiler => 'B',
            Origin::GatewayRequest => 'R',
            Origin::GatewayAnswer => 'A',
        }
    }

    /// Whether frames from this origin are requests (master to slave) rather than answers.
    pub fn sends_requests(self) -> bool {
        matches!(self, Origin::Thermostat | Origin::GatewayRequest)
    }
}

/// The message type, bits 30–28. Types 0–3 are the master's requests, 4–7 the slave's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// 0: the master asks for a value.
    ReadData,
    /// 1: the master sets a value.
    WriteData,
    /// 2: the master's value is not valid.
    InvalidData,
    /// 3: reserved for the master.
    Reserved,
    /// 4: the slave answers a read with the value.
    ReadAck,
    /// 5: the slave accepts a write (and echoes the value).
    WriteAck,
    /// 6: the slave knows the id but has no valid value now (a failed sensor, say).
    DataInvalid,
    /// 7: the slave does not support the id.
    UnknownDataId,
}

impl MsgType {
    /// The type encoded in three bits (higher bits are ignored).
    pub fn from_bits(bits: u8) -> MsgType {
        match bits & 0b111 {
            0 => MsgType::ReadData,
            1 => MsgType::WriteData,
            2 => MsgType::InvalidData,
            3 => MsgType::Reserved,
            4 => MsgType::ReadAck,
            5 => MsgType::WriteAck,
            6 => MsgType::DataInvalid,
            _ => MsgType::UnknownDataId,
        }
    }

    /// The three-bit code.
    pub fn bits(self) -> u8 {
        match self {
            MsgType::ReadData => 0,
            MsgType::WriteData => 1,
            MsgType::InvalidData => 2,
            MsgType::Reserved => 3,
            MsgType::ReadAck => 4,
            MsgType::WriteAck => 5,
            MsgType::DataInvalid => 6,
            MsgType::UnknownDataId => 7,
        }
    }

    /// Whether this is a request type (0–3), sent by the master.
    pub fn is_request(self) -> bool {
        self.bits() < 4
    }
}

/// One 32-bit OpenTherm frame, as received: the parity is not checked until asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame(u32);

impl Frame {
    /// A frame from its 32 bits, as received.
    pub const fn from_bits(bits: u32) -> Frame {
        Frame(bits)
    }

    /// Builds a frame with the parity bit set correctly and the spare bits zero.
    pub fn new(msg_type: MsgType, data_id: u8, value: u16) -> Frame {
        let bits =
            (u32::from(msg_type.bits()) << 28) | (u32::from(data_id) << 16) | u32::from(value);
        let parity = bits.count_ones() % 2;
        Frame(bits | (parity << 31))
    }

    /// The 32 bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether the parity bit makes the number of one bits even, as OpenTherm requires. It catches
    /// any odd number of flipped bits, not an even number: hence the range checks in decoding.
    pub fn parity_ok(self) -> bool {
        self.0.count_ones() % 2 == 0
    }

    /// The message type.
    pub fn msg_type(self) -> MsgType {
        // The mask makes the narrowing exact.
        MsgType::from_bits(((self.0 >> 28) & 0b111) as u8)
    }

    /// The spare bits 27–24.
    pub fn spare(self) -> u8 {
        ((self.0 >> 24) & 0xF) as u8
    }

    /// The data id.
    pub fn data_id(self) -> u8 {
        ((self.0 >> 16) & 0xFF) as u8
    }

    /// The 16-bit value.
    pub fn value(self) -> u16 {
        (self.0 & 0xFFFF) as u16
    }

    /// The value's high byte.
    pub fn hb(self) -> u8 {
        self.value().to_be_bytes()[0]
    }

    /// The value's low byte.
    pub fn lb(self) -> u8 {
        self.value().to_be_bytes()[1]
    }
}

/// A frame and who sent it: one OTGW report line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message {
    /// Who sent it.
    pub origin: Origin,
    /// The frame.
    pub frame: Frame,
}

impl fmt::Display for Message {
    /// The OTGW's form: `B40190A00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:08X}", self.origin.letter(), self.frame.bits())
    }
}

/// What one line of OTGW output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A frame report.
    Message(Message),
    /// `Error NN`: the gateway saw a malformed frame on the OpenTherm wire (bad timing, stop bit,
    /// parity…). Worth counting: many of them mean a wiring or interference problem.
    GatewayError(u8),
    /// A `PS=1` summary line: the gateway was told to print, when asked, one line of
    /// comma-separated values (`00000011/00001010,60.00,...`) instead of the frames. It starts
    /// with the status as two groups of 8 binary digits; no frames follow until `PS=0` is sent to
    /// the OTGW. [`summary`](super::summary) reads it.
    Summary,
    /// Anything else: command responses, the banner, blank lines, noise.
    Other,
}

/// Classifies one line of OTGW output (with or without its line ending).
pub fn parse_line(line: &str) -> Line {
    let rest = strip_time(line.trim());
    if let Some(code) = rest.strip_prefix("Error ") {
        return code.trim().parse().map_or(Line::Other, Line::GatewayError);
    }
    if is_summary(rest) {
        return Line::Summary;
    }
    let token = rest.split(char::is_whitespace).next().unwrap_or_default();
    parse_message(token).map_or(Line::Other, Line::Message)
}

/// The line without the time OpenTherm Monitor's logs start with (`15:50:36.715894  B40190A00`).
pub(crate) fn strip_time(line: &str) -> &str {
    match line.split_once(char::is_whitespace) {
        Some((first, after)) if is_time(first) => after.trim_start(),
        _ => line,
    }
}

/// Parses `B40190A00`: exactly an origin letter and 8 hex digits.
fn parse_message(token: &str) -> Option<Message> {
    let mut chars = token.chars();
    let origin = Origin::from_letter(chars.next()?)?;
    let hex = chars.as_str();
    // `from_str_radix` alone would accept a leading `+`, and a short token.
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bits = u32::from_str_radix(hex, 16).ok()?;
    Some(Message {
        origin,
        frame: Frame::from_bits(bits),
    })
}

/// The fewest comma-separated fields a `PS=1` line has. The firmware prints 25 (34 from version
/// 5); a short line of this shape is more likely noise.
const SUMMARY_MIN_FIELDS: usize = 10;

/// Whether a line looks like a `PS=1` summary: `bbbbbbbb/bbbbbbbb,` then enough fields.
fn is_summary(line: &str) -> bool {
    let Some((status, _)) = line.split_once(',') else {
        return false;
    };
    let binary = |part: &str| part.len() == 8 && part.bytes().all(|b| b == b'0' || b == b'1');
    let status_ok = status
        .split_once('/')
        .is_some_and(|(master, slave)| binary(master) && binary(slave));
    status_ok && line.split(',').count() >= SUMMARY_MIN_FIELDS
}

/// Whether a token looks like `15:50:36.715894`.
fn is_time(token: &str) -> bool {
    token.contains(':')
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(line: &str) -> Message {
        match parse_line(line) {
            Line::Message(message) => message,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_a_boiler_read_ack() {
        let m = message("B40190A00");
        assert_eq!(m.origin, Origin::Boiler);
        assert!(m.frame.parity_ok());
        assert_eq!(m.frame.msg_type(), MsgType::ReadAck);
        assert_eq!(m.frame.spare(), 0);
        assert_eq!(m.frame.data_id(), 25);
        assert_eq!(m.frame.value(), 0x0A00);
        assert_eq!((m.frame.hb(), m.frame.lb()), (0x0A, 0x00));
        assert_eq!(m.to_string(), "B40190A00");
    }

    #[test]
    fn parses_each_origin_and_line_ending() {
        assert_eq!(message("T80190000\r\n").origin, Origin::Thermostat);
        assert_eq!(message("  B401A3A80").origin, Origin::Boiler);
        assert_eq!(message("R00190000").origin, Origin::GatewayRequest);
        assert_eq!(message("AC0090000").origin, Origin::GatewayAnswer);
        assert_eq!(message("B401a3a80").frame.data_id(), 0x1A);
    }

    #[test]
    fn reads_every_message_type_from_bits_30_to_28() {
        let types = [
            MsgType::ReadData,
            MsgType::WriteData,
            MsgType::InvalidData,
            MsgType::Reserved,
            MsgType::ReadAck,
            MsgType::WriteAck,
            MsgType::DataInvalid,
            MsgType::UnknownDataId,
        ];
        for (code, ty) in (0u8..).zip(types) {
            assert_eq!(MsgType::from_bits(code), ty);
            assert_eq!(ty.bits(), code);
            assert_eq!(ty.is_request(), code < 4);
            let frame = Frame::new(ty, 25, 0x1234);
            assert!(frame.parity_ok());
            assert_eq!(frame.msg_type(), ty);
            assert_eq!(frame.data_id(), 25);
            assert_eq!(frame.value(), 0x1234);
        }
        // Real frames from a capture: parity bit set or clear, each message type.
        assert_eq!(message("T00000300").frame.msg_type(), MsgType::ReadData);
        assert_eq!(message("T10011D00").frame.msg_type(), MsgType::WriteData);
        assert_eq!(message("BD0011D00").frame.msg_type(), MsgType::WriteAck);
        assert_eq!(message("B40191B00").frame.msg_type(), MsgType::ReadAck);
        assert_eq!(
            message("BF0090000").frame.msg_type(),
            MsgType::UnknownDataId
        );
        assert_eq!(
            message("B700E0000").frame.msg_type(),
            MsgType::UnknownDataId
        );
    }

    #[test]
    fn parity_catches_a_flipped_bit() {
        for line in [
            "T00000300",
            "B40000302",
            "T80190000",
            "BD0011D00",
            "BF0090000",
        ] {
            let frame = message(line).frame;
            assert!(frame.parity_ok(), "{line}");
            for bit in 0..32 {
                assert!(!Frame::from_bits(frame.bits() ^ (1 << bit)).parity_ok());
            }
        }
        assert!(!message("B40190A01").frame.parity_ok());
    }

    #[test]
    fn new_sets_the_parity_bit() {
        let frame = Frame::new(MsgType::ReadAck, 26, 0x3A80);
        // 0x401A3A80 has nine one bits, so the parity bit is set.
        assert_eq!(frame.bits(), 0xC01A_3A80);
        let line = Message {
            origin: Origin::Boiler,
            frame,
        };
        assert_eq!(line.to_string(), "BC01A3A80");
        assert_eq!(message(&line.to_string()), line);
    }

    #[test]
    fn parses_opentherm_monitor_logs() {
        let m = message("15:50:36.715894  B40191B00  Read-Ack    Boiler water temperature: 27.00");
        assert_eq!(
            (m.origin, m.frame.data_id(), m.frame.value()),
            (Origin::Boiler, 25, 0x1B00)
        );
        assert_eq!(
            parse_line("15:50:34.716807  Error 03"),
            Line::GatewayError(3)
        );
    }

    #[test]
    fn classifies_gateway_errors() {
        assert_eq!(parse_line("Error 01"), Line::GatewayError(1));
        assert_eq!(parse_line("Error 04\r"), Line::GatewayError(4));
        assert_eq!(parse_line("Error xx"), Line::Other);
    }

    #[test]
    fn recognises_summary_lines() {
        // PS=1 output of firmware 4.x (captured-style: status, setpoints, temperatures, counters).
        let ps1 = "00000011/01001010,60.00,00000011/00000011,0.00,100.00,30.00,20.00,50.00,1.60,0.00,19.50,58.50,48.00,-2.50,45.00,0.00,0.00,0.00,65,0/0,0/0,70/30,0.00,0.00,6699,0,0,0,3900,0,0,0";
        assert_eq!(parse_line(ps1), Line::Summary);
        assert_eq!(
            parse_line(&format!("15:50:36.715894  {ps1}")),
            Line::Summary
        );
        assert_eq!(
            parse_line("00000011/0100101x,60.00,1,2,3,4,5,6,7,8"),
            Line::Other
        );
    }

    #[test]
    fn skips_everything_else() {
        for line in [
            "",
            "   ",
            "PR: A=OpenTherm Gateway 4.2.5",
            "OpenTherm Gateway 4.2.5",
            "Thermostat disconnected",
            "NG",
            "SE",
            "B4019",
            "B40190A0G",
            "B40190A00FF",
            "B+0190A00",
            "X40190A00",
            "b40190a00",
            "40190A00",
            "00000011/00000011,20.00,00000011/00000011,100.00",
            "12:00:00 garbage",
            "B40190A\u{e9}0",
        ] {
            assert_eq!(parse_line(line), Line::Other, "{line:?}");
        }
    }
}
