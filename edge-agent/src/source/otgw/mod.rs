//! The OpenTherm Gateway (OTGW) source: reads the lines an OTGW prints on its serial port, or
//! serves over TCP (ser2net, or the ESP firmware's port such as 25238), and turns the boiler's
//! answers into [`Reading`]s.
//!
//! - [`frame`]: the line format and the 32-bit OpenTherm frame (parity, message types).
//! - [`decode`]: which frames count, the data ids, f8.8 and the range checks.
//! - [`summary`]: the `PS=1` summary line and the readings it holds.
//!
//! A serial OTGW is read as a file (`/dev/ttyUSB0`): set the port to 9600 8N1 raw beforehand
//! (`stty -F /dev/ttyUSB0 9600 raw -echo`), since no serial-port crate is used. Lines that are not
//! frames (command responses, the banner, `Error NN`) are counted and skipped; nothing an OTGW
//! prints stops the source. An OTGW left in `PS=1` summary mode prints no frames at all, only a
//! summary line each time it is asked for one: those lines are read for what they hold (fewer
//! fields than frames give), counted apart, the source's state says `summary_mode`, and one
//! warning is logged each time it enters that mode, so that it is never silent.

pub mod decode;
pub mod frame;
pub mod summary;

use std::collections::VecDeque;

use tokio::io::AsyncBufRead;
use tracing::{debug, info, trace, warn};

pub use decode::Skip;
use frame::{parse_line, Line, Message, Origin};

use super::command::Poller;
use super::lines::{LineInput, LineReader, RawLine, TcpLines, TcpOptions};
use super::stats::{Counter, SourceStats};
use super::{Answer, Reading, Source, SourceError};

/// Readings from an OTGW's report lines.
#[derive(Debug)]
pub struct OtgwSource<L> {
    lines: L,
    stats: SourceStats,
    /// Readings of the last frame not yet handed out (status gives six).
    pending: VecDeque<Reading>,
    /// The data ids whose last answer from the boiler was a refusal; fixed size, one per id.
    refused: [bool; 256],
    /// Which ids to have the OTGW ask the boiler for (`PM=`), and when.
    poller: Option<Poller>,
}

impl<R: AsyncBufRead + Unpin + Send> OtgwSource<LineReader<R>> {
    /// Reads an OTGW's lines from a tty, a file, a FIFO or any other reader; ends with it.
    pub fn from_reader(reader: R, stats: SourceStats) -> Self {
        Self::new(LineReader::new(reader), stats)
    }
}

impl OtgwSource<TcpLines> {
    /// Reads an OTGW over TCP at `addr` (`host:port`), reconnecting whenever the connection drops;
    /// never ends.
    pub fn tcp(addr: impl Into<String>, options: TcpOptions, stats: SourceStats) -> Self {
        let lines = TcpLines::new(addr, options, stats.clone());
        Self::new(lines, stats)
    }
}

impl<L: LineInput> OtgwSource<L> {
    /// Reads an OTGW's lines from any line input.
    pub fn new(lines: L, stats: SourceStats) -> Self {
        Self {
            lines,
            stats,
            pending: VecDeque::new(),
            refused: [false; 256],
            poller: None,
        }
    }

    /// Has the OTGW poll ids the thermostat does not, by `PM=` commands over the input (which must
    /// be able to write: a TCP connection or a serial port). The answers come back as frames.
    pub fn with_poller(mut self, poller: Option<Poller>) -> Self {
        self.poller = poller;
        self
    }

    /// Sends the next `PM=` if one is due. Called at each line, about once a second from a live
    /// OTGW: no timer of its own is needed, and a silent OTGW is not asked for anything.
    fn poll(&mut self) {
        let Some(poller) = self.poller.as_mut() else {
            return;
        };
        if let Some(id) = poller.due(tokio::time::Instant::now()) {
            if self.lines.send(&format!("PM={id}")) {
                self.stats.bump(Counter::PollSent);
            } else {
                debug!(id, "no connection to ask the OTGW for a data id");
            }
        }
    }

    /// Passes on how the boiler answered an id: every refusal, and a valid answer only after a
    /// refusal (to take the id off the sample's list), so that readings are not doubled.
    fn answered(&mut self, message: Message, answer: Answer) {
        if message.origin != Origin::Boiler {
            return;
        }
        let data_id = message.frame.data_id();
        let was_refused = &mut self.refused[usize::from(data_id)];
        let refused = answer != Answer::Valid;
        if refused || *was_refused {
            self.pending.push_back(Reading::Answer(data_id, answer));
        }
        *was_refused = refused;
    }

    fn take(&mut self, line: RawLine) {
        self.stats.bump(Counter::Line);
        let text = match std::str::from_utf8(&line.bytes) {
            Ok(text) if !line.too_long => text,
            _ => "",
        };
        let parsed = parse_line(text);
        if matches!(parsed, Line::Message(_)) && self.stats.set_summary_mode(false) {
            info!("the OTGW prints frames again");
        }
        match parsed {
            Line::Message(message) => match decode::decode(message) {
                Ok(readings) => {
                    self.stats.bump(Counter::FrameDecoded);
                    self.answered(message, Answer::Valid);
                    self.pending.extend(readings);
                }
                Err(skip) => {
                    match skip {
                        Skip::DataInvalid => self.answered(message, Answer::Invalid),
                        Skip::Unsupported => self.answered(message, Answer::Unsupported),
                        _ => {}
                    }
                    self.stats.bump(Counter::Skipped(skip));
                    // T frames alone are half the traffic: log skips only when asked.
                    trace!(%message, ?skip, "OpenTherm frame skipped");
                }
            },
            Line::GatewayError(code) => {
                self.stats.bump(Counter::GatewayError);
                debug!(code, "OTGW reports a malformed OpenTherm frame");
            }
            Line::Summary => {
                self.stats.bump(Counter::SummaryLine);
                // Once per spell in summary mode, not per line: it lasts until someone sends PS=0.
                if !self.stats.set_summary_mode(true) {
                    warn!(
                        "the OTGW is in PS=1 summary mode and prints no frames: reading its \
                         summary lines, which come only when asked for and hold fewer values; \
                         send it PS=0 for every frame"
                    );
                }
                match summary::parse(text) {
                    Ok(readings) => self.pending.extend(readings),
                    Err(error) => {
                        self.stats.bump(Counter::SummaryUnread);
                        debug!(%error, "OTGW summary line not read");
                    }
                }
            }
            Line::Other => self.stats.bump(Counter::LineIgnored),
        }
    }
}

impl<L: LineInput> Source for OtgwSource<L> {
    async fn next_reading(&mut self) -> Result<Option<Reading>, SourceError> {
        loop {
            if let Some(reading) = self.pending.pop_front() {
                return Ok(Some(reading));
            }
            match self.lines.next_line().await.map_err(SourceError::Read)? {
                Some(line) => {
                    self.take(line);
                    self.poll();
                }
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
    use std::time::Duration;

    use proto::Telemetry;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;
    use tokio::time::{timeout, Instant};

    use super::*;
    use crate::source::stats::FrameSkips;
    use crate::source::Sampler;

    /// A boiler's OTGW traffic as OpenTherm Monitor logs it: one poll cycle of a thermostat, with
    /// the gateway's own request, its stand-in answer, a line error, a corrupted frame, an
    /// implausible value and a Data-Invalid answer among the good frames.
    const FIXTURE: &str = include_str!("../../../tests/otgw_fixture.txt");

    /// Every reading of `input` read into one sample, with the source's counters.
    async fn replay(input: &'static [u8]) -> (Telemetry, SourceStats) {
        let stats = SourceStats::default();
        let mut source = OtgwSource::from_reader(input, stats.clone());
        let mut sampler = Sampler::new("B-1").unwrap();
        let now = Instant::now();
        while let Some(reading) = source.next_reading().await.unwrap() {
            sampler.record(reading, now);
        }
        (sampler.sample(now, Duration::from_secs(60)).unwrap(), stats)
    }

    #[tokio::test]
    async fn replays_a_capture() {
        let (sample, stats) = replay(FIXTURE.as_bytes()).await;
        assert_eq!(
            sample,
            Telemetry {
                asset: "B-1".into(),
                // The later answer to the gateway's own request (R) wins.
                flow: Some(58.0),
                ret: Some(45.0),
                dhw: Some(48.0),
                // The boiler has no outside sensor; the gateway's stand-in answer is skipped.
                out: None,
                exh: Some(65.0),
                setp: Some(60.0),
                bar: Some(1.601_562_5),
                modu: Some(50.0),
                flame: Some(true),
                ch: Some(true),
                dhw_on: Some(false),
                fault: Some(false),
                fflags: Some(0),
                // Id 5's fault code and id 115's diagnostic code, each in its own field.
                oem: Some(0),
                odiag: Some(258),
                starts: Some(6699),
                hours: Some(3900),
                gas: None,
                heat: None,
                sflags: Some(0x0A),
                diag: Some(false),
                // The pressure sensor's Data-Invalid, after a valid answer, tells it failed; the
                // outside temperature is not supported at all.
                inval: vec![18],
                unsup: vec![27],
                // Id 3: hot water present, member id 0.
                scfg: Some(1),
                smem: Some(0),
                ..Telemetry::default()
            }
        );
        let s = stats.snapshot();
        assert_eq!(s.frames_decoded, 15);
        assert_eq!(
            s.frames_skipped,
            FrameSkips {
                parity: 1,
                message_type: 0,
                not_boiler: 20,
                data_invalid: 1,
                unsupported: 1,
                not_read_ack: 0,
                unused_id: 0,
                out_of_range: 1,
            }
        );
        assert_eq!(s.gateway_errors, 1);
        assert_eq!(s.lines_ignored, 2);
        assert_eq!(
            s.lines,
            s.frames_decoded + 24 + s.gateway_errors + s.lines_ignored
        );
    }

    #[tokio::test]
    async fn skips_non_frames_and_bad_bytes() {
        let input = b"OpenTherm Gateway 4.2.5\r\nPR: A=OpenTherm Gateway 4.2.5\r\n\xff\xfe\r\nError 02\r\nB40190A00\r\n";
        let stats = SourceStats::default();
        let mut source = OtgwSource::from_reader(&input[..], stats.clone());
        assert_eq!(
            source.next_reading().await.unwrap(),
            Some(Reading::Flow(10.0))
        );
        assert_eq!(source.next_reading().await.unwrap(), None);
        let s = stats.snapshot();
        assert_eq!((s.lines, s.lines_ignored, s.gateway_errors), (5, 3, 1));
    }

    #[tokio::test]
    async fn summary_mode_is_reported_not_silent() {
        // A line of a length no firmware prints: counted, reported, not read.
        let ps1 = "00000011/00001010,60.00,00000011/00000011,0.00,100.00,30.00,20.00,50.00,1.60,0.00,19.50,58.50";
        let input = format!("{ps1}\r\n{ps1}\r\n");
        let stats = SourceStats::default();
        let mut source = OtgwSource::from_reader(input.as_bytes(), stats.clone());
        assert_eq!(source.next_reading().await.unwrap(), None);
        let s = stats.snapshot();
        assert_eq!(
            (
                s.summary_lines,
                s.summary_unread,
                s.summary_mode,
                s.lines_ignored
            ),
            (2, 2, true, 0)
        );
        // PS=0 sent: frames again, and the state clears.
        let input = format!("{ps1}\r\nPS: 0\r\nB40190A00\r\n");
        let stats = SourceStats::default();
        let mut source = OtgwSource::from_reader(input.as_bytes(), stats.clone());
        assert_eq!(
            source.next_reading().await.unwrap(),
            Some(Reading::Flow(10.0))
        );
        assert!(!stats.snapshot().summary_mode);
    }

    /// In summary mode the summary lines become a sample, as frames would.
    #[tokio::test]
    async fn summary_lines_are_sampled() {
        let input = "PS: 1\r\n00000011/00001010,55.00,00000011/00000011,0.00,0.00,100.00,24/20,20.50,40.00,1.50,0.00,0.00,19.50,57.00,48.00,-2.50,44.00,0.00,60,65/40,80/20,55.00,75.00,00000000/00000000,0,0,6699,20001,8000,5000,3900,7000,900,800\r\n";
        let (sample, stats) = replay(input.as_bytes()).await;
        assert_eq!(
            (
                sample.flow,
                sample.ret,
                sample.bar,
                sample.flame,
                sample.starts
            ),
            (Some(57.0), Some(44.0), Some(1.5), Some(true), Some(6699))
        );
        let s = stats.snapshot();
        assert_eq!(
            (s.summary_lines, s.summary_unread, s.summary_mode),
            (1, 0, true)
        );
    }

    /// The TCP source reads from a server, survives the server dropping it, and reconnects.
    #[tokio::test]
    async fn tcp_source_reconnects_after_a_drop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // First connection: a frame, some chatter, then a drop mid-line.
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"PR: A=OpenTherm Gateway 4.2.5\r\nT80190000\r\nB40190A00\r\nB401A")
                .await
                .unwrap();
            drop(conn);
            // Second connection: the source is back.
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"BC01A3A80\r\n").await.unwrap();
            // Hold the connection until the test is done with it.
            let mut buf = [0u8; 1];
            let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut buf).await;
        });
        let options = TcpOptions {
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..TcpOptions::default()
        };
        let stats = SourceStats::default();
        let mut source = OtgwSource::tcp(addr.to_string(), options, stats.clone());
        let deadline = Duration::from_secs(10);
        let first = timeout(deadline, source.next_reading())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first, Some(Reading::Flow(10.0)));
        // The cut-off `B401A` is dropped with the connection, not parsed as a line.
        let second = timeout(deadline, source.next_reading())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second, Some(Reading::Dhw(58.5)));
        let s = stats.snapshot();
        assert_eq!((s.connects, s.disconnects), (2, 1));
        assert_eq!(s.lines_ignored, 1);
        assert_eq!(s.frames_skipped.not_boiler, 1);
        drop(source);
        server.await.unwrap();
    }

    /// Over TCP, the source greets each connection with `PS=0` and asks for the polled ids with
    /// `PM=`, one at a time; the boiler's answers decode as frames.
    #[tokio::test]
    async fn tcp_source_sends_ps0_and_polls() {
        use tokio::io::AsyncBufReadExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let (read, mut write) = conn.into_split();
            let mut commands = tokio::io::BufReader::new(read).split(b'\r');
            let mut received = Vec::new();
            // Answer each command as an OTGW would, then with the boiler's frame for a PM.
            while let Some(command) = commands.next_segment().await.unwrap() {
                let command = String::from_utf8(command).unwrap();
                let reply = match command.as_str() {
                    "PS=0" => "PS: 0\r\nB40190A00\r\n".to_owned(),
                    // Burner starts (id 116): 6699.
                    "PM=116" => "PM: 116\r\nR00740000\r\nB40741A2B\r\n".to_owned(),
                    other => format!("PM: {}\r\n", &other[3..]),
                };
                received.push(command);
                write.write_all(reply.as_bytes()).await.unwrap();
                if received.len() == 2 {
                    break;
                }
            }
            received
        });
        let stats = SourceStats::default();
        let lines = TcpLines::new(addr.to_string(), TcpOptions::default(), stats.clone())
            .with_greeting(vec!["PS=0".into()]);
        let poller = Poller::new(vec![116, 117], Duration::from_secs(60));
        let mut source = OtgwSource::new(lines, stats.clone()).with_poller(Some(poller));
        let deadline = Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < 2 {
            let reading = timeout(deadline, source.next_reading()).await.unwrap();
            got.push(reading.unwrap().unwrap());
        }
        assert_eq!(got, [Reading::Flow(10.0), Reading::BurnerStarts(6699)]);
        assert_eq!(server.await.unwrap(), ["PS=0", "PM=116"]);
        assert_eq!(stats.snapshot().polls_sent, 1);
    }

    /// With nothing listening, the source keeps trying (and counting) rather than failing.
    #[tokio::test]
    async fn tcp_source_retries_when_nothing_listens() {
        // Bind, learn the port, close: nothing listens there now.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let options = TcpOptions {
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(5),
            ..TcpOptions::default()
        };
        let stats = SourceStats::default();
        let mut source = OtgwSource::tcp(addr.to_string(), options, stats.clone());
        let waited = timeout(Duration::from_millis(200), source.next_reading()).await;
        assert!(waited.is_err(), "the source never ends or fails");
        assert!(stats.snapshot().connect_failures >= 2);
    }
}
