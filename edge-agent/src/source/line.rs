//! The JSON line source: one JSON object per line, with any of [`proto::Telemetry`]'s fields, from
//! stdin, a file or a FIFO (any [`LineInput`]). For boilers read by other means than an OTGW: a
//! vendor's tool, a Modbus script, a test harness.
//!
//! ```text
//! {"flow": 58.5, "ret": 45.0, "bar": 1.5, "flame": true}
//! {"starts": 6699, "hours": 3900}
//! ```
//!
//! Field names and units are the wire names in `proto` (`flow`, `ret`, `dhw`, `out`, `exh`,
//! `setp`, `bar`, `modu`, `flame`, `ch`, `dhw_on`, `fault`, `fflags`, `oem`, `starts`, `hours`,
//! `gas`, `heat`). An `asset` field is accepted and ignored, so that serialized `Telemetry` works
//! as input; the hub's configured asset id is the one sent. A line is taken whole or not at all:
//! an unknown field (a typo), a value proto refuses, a line that is not a JSON object, or a line
//! over [`MAX_LINE_BYTES`](super::lines::MAX_LINE_BYTES) is logged, counted and skipped, and
//! reading carries on. Blank lines are ignored.

use std::collections::VecDeque;

use proto::{Telemetry, Validate};
use serde::Deserialize;
use tracing::warn;

use super::lines::{LineInput, RawLine};
use super::stats::{Counter, SourceStats};
use super::{Reading, Source, SourceError};

/// Readings from JSON lines.
#[derive(Debug)]
pub struct LineSource<L> {
    lines: L,
    stats: SourceStats,
    /// Readings of the last line not yet handed out (a line usually carries several).
    pending: VecDeque<Reading>,
    /// Lines read so far, to say which one was refused.
    line_no: u64,
}

/// One line's fields. Mirrors `Telemetry` but with every field optional and unknown fields
/// refused, which `Telemetry` itself (forward compatible on the wire) must not do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    #[serde(default)]
    #[allow(dead_code)] // Accepted so that serialized `Telemetry` is valid input; not used.
    asset: Option<String>,
    flow: Option<f32>,
    ret: Option<f32>,
    dhw: Option<f32>,
    out: Option<f32>,
    exh: Option<f32>,
    setp: Option<f32>,
    bar: Option<f32>,
    modu: Option<f32>,
    flame: Option<bool>,
    ch: Option<bool>,
    dhw_on: Option<bool>,
    fault: Option<bool>,
    fflags: Option<u8>,
    oem: Option<u16>,
    starts: Option<u32>,
    hours: Option<u32>,
    gas: Option<f64>,
    heat: Option<f64>,
    sflags: Option<u8>,
    diag: Option<bool>,
    odiag: Option<u16>,
    scfg: Option<u8>,
    smem: Option<u8>,
    max_kw: Option<u8>,
    min_modu: Option<u8>,
    dhw_flow: Option<f32>,
    room: Option<f32>,
    dhw_setp: Option<f32>,
    max_setp: Option<f32>,
    fail_starts: Option<u32>,
    flame_low: Option<u32>,
    pump_starts: Option<u32>,
    dhw_pump_starts: Option<u32>,
    dhw_starts: Option<u32>,
    pump_hours: Option<u32>,
    dhw_pump_hours: Option<u32>,
    dhw_hours: Option<u32>,
    #[serde(default)]
    inval: Vec<u8>,
    #[serde(default)]
    unsup: Vec<u8>,
}

impl From<JsonLine> for Telemetry {
    fn from(line: JsonLine) -> Self {
        Telemetry {
            // A placeholder that passes validation; the sampler stamps the real asset id.
            asset: "line".to_owned(),
            flow: line.flow,
            ret: line.ret,
            dhw: line.dhw,
            out: line.out,
            exh: line.exh,
            setp: line.setp,
            bar: line.bar,
            modu: line.modu,
            flame: line.flame,
            ch: line.ch,
            dhw_on: line.dhw_on,
            fault: line.fault,
            fflags: line.fflags,
            oem: line.oem,
            starts: line.starts,
            hours: line.hours,
            gas: line.gas,
            heat: line.heat,
            sflags: line.sflags,
            diag: line.diag,
            odiag: line.odiag,
            scfg: line.scfg,
            smem: line.smem,
            max_kw: line.max_kw,
            min_modu: line.min_modu,
            dhw_flow: line.dhw_flow,
            room: line.room,
            dhw_setp: line.dhw_setp,
            max_setp: line.max_setp,
            fail_starts: line.fail_starts,
            flame_low: line.flame_low,
            pump_starts: line.pump_starts,
            dhw_pump_starts: line.dhw_pump_starts,
            dhw_starts: line.dhw_starts,
            pump_hours: line.pump_hours,
            dhw_pump_hours: line.dhw_pump_hours,
            dhw_hours: line.dhw_hours,
            inval: line.inval,
            unsup: line.unsup,
        }
    }
}

/// Why a line was refused.
#[derive(Debug, thiserror::Error)]
enum LineError {
    #[error("line is longer than the limit")]
    TooLong,
    #[error("not a JSON object of telemetry fields: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Invalid(#[from] proto::Invalid),
}

impl<L: LineInput> LineSource<L> {
    /// Reads JSON lines from `lines`, counting into `stats`.
    pub fn new(lines: L, stats: SourceStats) -> Self {
        Self {
            lines,
            stats,
            pending: VecDeque::new(),
            line_no: 0,
        }
    }

    fn take(&mut self, line: RawLine) {
        self.line_no += 1;
        self.stats.bump(Counter::Line);
        match parse(&line) {
            Ok(Some(readings)) => self.pending.extend(readings),
            Ok(None) => self.stats.bump(Counter::LineIgnored),
            Err(error) => {
                self.stats.bump(Counter::LineRejected);
                // The error, not the line: the line may be long, and it is not ours to log.
                warn!(line = self.line_no, %error, "sensor line refused");
            }
        }
    }
}

/// A line's readings, `None` for a blank line.
fn parse(line: &RawLine) -> Result<Option<Vec<Reading>>, LineError> {
    if line.too_long {
        return Err(LineError::TooLong);
    }
    if line.bytes.trim_ascii().is_empty() {
        return Ok(None);
    }
    // `from_slice` also refuses bytes that are not UTF-8.
    let fields: JsonLine = serde_json::from_slice(&line.bytes)?;
    let sample = Telemetry::from(fields);
    sample.validate()?;
    Ok(Some(Reading::from_telemetry(&sample)))
}

impl<L: LineInput> Source for LineSource<L> {
    async fn next_reading(&mut self) -> Result<Option<Reading>, SourceError> {
        loop {
            if let Some(reading) = self.pending.pop_front() {
                return Ok(Some(reading));
            }
            match self.lines.next_line().await.map_err(SourceError::Read)? {
                Some(line) => self.take(line),
                None => return Ok(None),
            }
        }
    }

    fn stats(&self) -> &SourceStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::lines::LineReader;

    async fn read_all(input: &[u8]) -> (Vec<Reading>, SourceStats) {
        let stats = SourceStats::default();
        let mut source = LineSource::new(LineReader::new(input), stats.clone());
        let mut readings = Vec::new();
        while let Some(reading) = source.next_reading().await.unwrap() {
            readings.push(reading);
        }
        (readings, stats)
    }

    #[tokio::test]
    async fn reads_fields_from_each_line() {
        let input =
            b"{\"flow\": 58.5, \"ret\": 45.0, \"flame\": true}\r\n{\"starts\": 6699, \"oem\": 133}";
        let (readings, stats) = read_all(input).await;
        assert_eq!(
            readings,
            vec![
                Reading::Flow(58.5),
                Reading::Return(45.0),
                Reading::Flame(true),
                Reading::OemFault(133),
                Reading::BurnerStarts(6699),
            ]
        );
        let s = stats.snapshot();
        assert_eq!((s.lines, s.lines_rejected, s.lines_ignored), (2, 0, 0));
    }

    #[tokio::test]
    async fn accepts_serialized_telemetry() {
        let sample = Telemetry {
            asset: "B-7".into(),
            bar: Some(1.25),
            out: Some(-3.0),
            odiag: Some(258),
            dhw_starts: Some(12),
            inval: vec![28],
            ..Telemetry::default()
        };
        let mut input = serde_json::to_vec(&sample).unwrap();
        input.push(b'\n');
        let (readings, _) = read_all(&input).await;
        assert_eq!(
            readings,
            vec![
                Reading::Outside(-3.0),
                Reading::Pressure(1.25),
                Reading::OemDiagnostic(258),
                Reading::DhwStarts(12),
                Reading::Answer(28, crate::source::Answer::Invalid),
            ]
        );
    }

    #[tokio::test]
    async fn skips_bad_lines_and_carries_on() {
        let mut input = Vec::new();
        for line in [
            "{\"flow\": 50.0}",
            "not json",
            "{\"flw\": 50.0}",
            "{\"bar\": 300.0}",
            "{\"flow\": 1e400}",
            "[1, 2]",
            "42",
            "{\"flame\": \"yes\"}",
            "{\"fflags\": 256}",
            "{\"flow\": 51.0",
            "",
            "   ",
            "{\"asset\": \"\\u0000\", \"dhw\": 60.0}",
        ] {
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
        }
        input.extend_from_slice(b"{\"flow\": \"\xff\"}\n");
        input.extend(vec![b' '; crate::source::lines::MAX_LINE_BYTES + 10]);
        input.extend_from_slice(b"\n{\"ret\": 40.0}\n");
        let (readings, stats) = read_all(&input).await;
        // The asset field is ignored, whatever it holds.
        assert_eq!(
            readings,
            vec![
                Reading::Flow(50.0),
                Reading::Dhw(60.0),
                Reading::Return(40.0)
            ]
        );
        let s = stats.snapshot();
        assert_eq!(s.lines, 16);
        assert_eq!(s.lines_rejected, 11);
        assert_eq!(s.lines_ignored, 2);
    }

    #[tokio::test]
    async fn an_empty_object_is_a_line_without_readings() {
        let (readings, stats) = read_all(b"{}\n").await;
        assert!(readings.is_empty());
        assert_eq!(stats.snapshot().lines_rejected, 0);
    }
}
