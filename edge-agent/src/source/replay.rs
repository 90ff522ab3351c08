//! Replaying a saved OTGW capture at the pace it was recorded, so that a log file gives one
//! sample per interval of the capture's own time, as the live boiler would have, rather than
//! every frame at once and one sample for the whole file.
//!
//! OpenTherm Monitor's logs start each line with the time of day it was received
//! (`15:50:36.715894  B40191B00 ...`): each frame line is handed out that long after the first
//! one (a time earlier than the last means the log crossed midnight). Lines without a time (a raw
//! serial capture) are spaced [`UNTIMED_STEP`] apart, about an OTGW's own rate. Lines that are not
//! frames (the banner, command responses) are not waited for.

use std::io;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::lines::{LineInput, RawLine};
use super::otgw::frame::{parse_line, Line};

/// The spacing of frame lines that carry no time: a thermostat's request and the boiler's answer
/// about every second.
pub const UNTIMED_STEP: Duration = Duration::from_millis(500);

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Lines from `L`, each frame line held back until its time in the capture.
#[derive(Debug)]
pub struct Paced<L> {
    lines: L,
    /// The replay's start and the capture's time then (since midnight, plus a day per wrap).
    origin: Option<(Instant, Duration)>,
    /// The capture's time of the last frame line.
    last: Duration,
    /// Midnights the capture has crossed.
    days: u32,
    /// A line read but not yet due; kept here so that a cancelled wait loses nothing.
    held: Option<(RawLine, Instant)>,
}

impl<L: LineInput> Paced<L> {
    /// Paces `lines`.
    pub fn new(lines: L) -> Self {
        Self {
            lines,
            origin: None,
            last: Duration::ZERO,
            days: 0,
            held: None,
        }
    }

    /// When `line` is due, or `None` for a line that is not a frame.
    fn due(&mut self, line: &RawLine) -> Option<Instant> {
        let text = std::str::from_utf8(&line.bytes).ok()?;
        if !matches!(parse_line(text), Line::Message(_)) {
            return None;
        }
        let at = match text.split_whitespace().next().and_then(time_of_day) {
            Some(time) => {
                // A time earlier than the last frame's: the log crossed midnight.
                let mut at = time + DAY * self.days;
                if at < self.last {
                    self.days += 1;
                    at += DAY;
                }
                at
            }
            None => self.last + UNTIMED_STEP,
        };
        let (start, first) = *self.origin.get_or_insert((Instant::now(), at));
        self.last = at;
        Some(start + at.saturating_sub(first))
    }
}

/// Parses `15:50:36.715894` (or without the fraction) into the time since midnight.
pub fn time_of_day(token: &str) -> Option<Duration> {
    let (hms, fraction) = token.split_once('.').unwrap_or((token, ""));
    let mut parts = hms.split(':');
    let mut field = |max: u64| -> Option<u64> {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok().filter(|v| *v < max)
    };
    let (h, m, s) = (field(24)?, field(60)?, field(60)?);
    if parts.next().is_some() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        let digits: u32 = fraction.parse().ok()?;
        // `fraction.len()` is at most 9, so the exponent is too.
        digits * 10u32.pow(9 - fraction.len() as u32)
    };
    Some(Duration::new(h * 3600 + m * 60 + s, nanos))
}

impl<L: LineInput> LineInput for Paced<L> {
    async fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        if self.held.is_none() {
            let Some(line) = self.lines.next_line().await? else {
                return Ok(None);
            };
            match self.due(&line) {
                Some(at) => self.held = Some((line, at)),
                None => return Ok(Some(line)),
            }
        }
        if let Some((_, at)) = &self.held {
            sleep_until(*at).await;
        }
        Ok(self.held.take().map(|(line, _)| line))
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::source::lines::LineReader;
    use crate::source::otgw::decode::to_f88;
    use crate::source::otgw::frame::{Frame, Message, MsgType, Origin};
    use crate::source::{run, OtgwSource, Sampler, SourceStats};

    /// Five minutes of a captured log: the boiler's flow every 10 s from 12:00:05, rising a
    /// degree each time, with the thermostat's requests between.
    fn five_minutes() -> String {
        let mut log = String::from("12:00:00.100000  OpenTherm Gateway 4.2.5\n");
        for i in 0u16..30 {
            let secs = 5 + 10 * u32::from(i);
            let time = format!("12:{:02}:{:02}", secs / 60, secs % 60);
            let flow = Message {
                origin: Origin::Boiler,
                frame: Frame::new(MsgType::ReadAck, 25, to_f88(40.0 + f32::from(i))),
            };
            log.push_str(&format!("{time}.000000  T80190000  Read-Data\n"));
            log.push_str(&format!("{time}.100000  {flow}  Read-Ack\n"));
        }
        log
    }

    #[tokio::test(start_paused = true)]
    async fn a_replayed_capture_samples_at_its_own_pace() {
        let log = five_minutes();
        let stats = SourceStats::default();
        let lines = Paced::new(LineReader::new(log.as_bytes()));
        let source = OtgwSource::new(lines, stats.clone());
        let (_interval_tx, interval) = watch::channel(Duration::from_secs(60));
        let (sink, mut samples) = mpsc::channel(16);
        let t0 = Instant::now();
        run(
            source,
            Sampler::new("B-1").unwrap(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        // The capture spans 4 min 50.1 s from its first frame: four interval samples, and the
        // end of the file samples what came after the last.
        assert_eq!(t0.elapsed(), Duration::from_millis(290_100));
        let mut flows = Vec::new();
        while let Ok(sample) = samples.try_recv() {
            flows.push(sample.flow.unwrap());
        }
        assert_eq!(flows, vec![45.0, 51.0, 57.0, 63.0, 69.0]);
        assert_eq!(stats.snapshot().samples, 5);
    }

    #[test]
    fn parses_times_of_day() {
        assert_eq!(
            time_of_day("15:50:36.715894"),
            Some(Duration::new(15 * 3600 + 50 * 60 + 36, 715_894_000))
        );
        assert_eq!(time_of_day("00:00:01"), Some(Duration::from_secs(1)));
        for bad in [
            "24:00:00",
            "12:60:00",
            "1:2",
            "12:00:00:00",
            "ab:00:00",
            "12:00:00.x",
        ] {
            assert_eq!(time_of_day(bad), None, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn frames_come_at_their_logged_times_across_midnight() {
        let log = b"23:59:58.5  B40190A00\nOpenTherm Gateway 4.2.5\n23:59:59.5  BC01A3A80\n00:00:01.0  B40190A00\nB40190A00\n";
        let mut lines = Paced::new(LineReader::new(&log[..]));
        let t0 = Instant::now();
        let mut at = Vec::new();
        while let Some(_line) = lines.next_line().await.unwrap() {
            at.push(t0.elapsed().as_millis());
        }
        // The banner is not waited for; the untimed last frame comes half a second later.
        assert_eq!(at, vec![0, 0, 1000, 2500, 3000]);
    }
}
