//! Line input shared by the JSON and OTGW sources: a bounded, cancel-safe line reader over any
//! `AsyncBufRead` (stdin, a file, a FIFO, a tty), and a TCP client that reconnects with backoff.
//!
//! Cancel safety matters because the sampling task races `next_line` against its timer: when the
//! timer wins, the read is dropped mid-line, and the next call must carry on from the bytes
//! already read rather than lose them and parse the rest of the line as a line of its own.
//! tokio's `read_line` loses them; `fill_buf` and `consume` do not.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tracing::{info, warn};

use super::command::CommandLink;
use super::stats::{Counter, Link, SourceStats};

/// The longest line kept, in bytes. OTGW lines are about 10 bytes and a full JSON sample about
/// 400; a longer line is noise (or no newline at all) and is reported as [`RawLine::too_long`]
/// instead of growing memory.
pub const MAX_LINE_BYTES: usize = 4096;

/// One line, without its `\n` (a `\r` before it is left for the parser to trim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// The line's bytes; empty when [`RawLine::too_long`].
    pub bytes: Vec<u8>,
    /// The line exceeded [`MAX_LINE_BYTES`] and was discarded up to its end.
    pub too_long: bool,
}

/// Something that yields lines.
pub trait LineInput: Send {
    /// The next line, or `Ok(None)` once the input has ended for good. Cancel-safe: dropping the
    /// future loses nothing, and the next call continues the same line.
    fn next_line(&mut self) -> impl Future<Output = io::Result<Option<RawLine>>> + Send;

    /// Queues a command line for the device at the other end; false when this input cannot write
    /// to it (a file, a FIFO, stdin) or is not connected now. Never waits.
    fn send(&mut self, _command: &str) -> bool {
        false
    }
}

/// Lines from any `AsyncBufRead`.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    /// The line so far; kept in `self` so that a cancelled read resumes it.
    partial: Vec<u8>,
    /// The current line has exceeded the limit; drop bytes until its end.
    discarding: bool,
    /// Whether a last line without a newline counts at the end of input. True for files (a final
    /// newline is often missing), false for a TCP connection (the line was cut by the drop).
    keep_unterminated: bool,
}

impl<R: AsyncBufRead + Unpin + Send> LineReader<R> {
    /// Reads lines from `reader`; a last line without a newline counts.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            partial: Vec::new(),
            discarding: false,
            keep_unterminated: true,
        }
    }

    fn take_line(&mut self) -> RawLine {
        RawLine {
            bytes: std::mem::take(&mut self.partial),
            too_long: std::mem::take(&mut self.discarding),
        }
    }
}

impl<R: AsyncBufRead + Unpin + Send> LineInput for LineReader<R> {
    async fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        loop {
            // `fill_buf` consumes nothing, so a cancellation here loses nothing; everything after
            // it up to `consume` is synchronous.
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                let pending = !self.partial.is_empty() || self.discarding;
                if pending && self.keep_unterminated {
                    return Ok(Some(self.take_line()));
                }
                self.partial.clear();
                self.discarding = false;
                return Ok(None);
            }
            let (end, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (end, true),
                None => (available.len(), false),
            };
            if !self.discarding {
                if self.partial.len() + end > MAX_LINE_BYTES {
                    self.discarding = true;
                    self.partial = Vec::new();
                } else {
                    self.partial.extend_from_slice(&available[..end]);
                }
            }
            self.reader.consume(if complete { end + 1 } else { end });
            if complete {
                return Ok(Some(self.take_line()));
            }
        }
    }
}

/// Settings of the TCP client; the defaults suit an OTGW on the local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOptions {
    /// First wait before reconnecting. Default 1 s.
    pub backoff_min: Duration,
    /// Longest wait before reconnecting; each failure doubles the wait up to this. Default 60 s.
    pub backoff_max: Duration,
    /// How long a connection attempt may take. Default 10 s; without it a silently dropped SYN
    /// would hold the source for the operating system's two minutes.
    pub connect_timeout: Duration,
    /// With no complete line for this long the connection is presumed dead and replaced. An OTGW
    /// reports a frame about every second while a thermostat or the gateway itself polls, so a
    /// silent minute means a half-open connection (the ESP rebooted, Wi-Fi dropped) that TCP
    /// alone would not notice for hours. Default 60 s.
    pub idle_timeout: Duration,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Lines from a TCP server (`host:port`, such as an OTGW's ser2net or ESP firmware port), over a
/// connection that is re-established whenever it drops. It never ends: [`LineInput::next_line`]
/// returns only lines.
///
/// No jitter is added to the backoff: one hub talks to one gateway on its own network, so there
/// is no herd of clients to spread out.
#[derive(Debug)]
pub struct TcpLines {
    addr: String,
    options: TcpOptions,
    stats: SourceStats,
    conn: Option<LineReader<BufReader<OwnedReadHalf>>>,
    /// The connection's writing side, for commands to the device.
    commands: CommandLink,
    /// No connection attempt before this.
    retry_at: Option<Instant>,
    /// The next wait after a failure.
    backoff: Duration,
    /// When the current connection last gave a line (or was made).
    last_line: Instant,
    /// The current connection has given a line: only then is the backoff reset, so that a server
    /// that accepts and closes at once is not hammered.
    proven: bool,
}

impl TcpLines {
    /// Lines from `addr` (`host:port`; the name is resolved on every connection attempt, so a
    /// changed address is picked up).
    pub fn new(addr: impl Into<String>, options: TcpOptions, stats: SourceStats) -> Self {
        let backoff = options.backoff_min;
        Self {
            addr: addr.into(),
            options,
            stats,
            conn: None,
            commands: CommandLink::default(),
            retry_at: None,
            backoff,
            last_line: Instant::now(),
            proven: false,
        }
    }

    /// Sends `greeting` (commands such as `PS=0`) on every connection.
    pub fn with_greeting(mut self, greeting: Vec<String>) -> Self {
        self.commands = CommandLink::new(greeting);
        self
    }

    fn lost(&mut self, why: &str) {
        self.conn = None;
        self.commands.detach();
        self.stats.bump(Counter::Disconnect);
        self.stats.set_link(Link::Down);
        warn!(addr = %self.addr, why, "sensor connection lost; reconnecting");
        self.schedule_retry();
    }

    fn schedule_retry(&mut self) {
        if self.proven {
            self.backoff = self.options.backoff_min;
            self.proven = false;
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.options.backoff_max);
    }

    async fn connect(&mut self) {
        if let Some(at) = self.retry_at {
            sleep_until(at).await;
        }
        match timeout(self.options.connect_timeout, TcpStream::connect(&self.addr)).await {
            Ok(Ok(stream)) => {
                info!(addr = %self.addr, "sensor connected");
                self.stats.bump(Counter::Connect);
                self.stats.set_link(Link::Up);
                let (read, write) = stream.into_split();
                let mut reader = LineReader::new(BufReader::new(read));
                reader.keep_unterminated = false;
                self.conn = Some(reader);
                self.commands.attach(write);
                self.retry_at = None;
                self.last_line = Instant::now();
            }
            Ok(Err(error)) => {
                self.stats.bump(Counter::ConnectFailure);
                self.stats.set_link(Link::Down);
                warn!(addr = %self.addr, %error, "cannot connect to the sensor");
                self.schedule_retry();
            }
            Err(_) => {
                self.stats.bump(Counter::ConnectFailure);
                self.stats.set_link(Link::Down);
                warn!(addr = %self.addr, "connecting to the sensor timed out");
                self.schedule_retry();
            }
        }
    }
}

impl LineInput for TcpLines {
    async fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        loop {
            let deadline = self.last_line + self.options.idle_timeout;
            let Some(conn) = self.conn.as_mut() else {
                self.connect().await;
                continue;
            };
            match timeout_at(deadline, conn.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.last_line = Instant::now();
                    self.proven = true;
                    return Ok(Some(line));
                }
                Ok(Ok(None)) => self.lost("closed by the peer"),
                Ok(Err(error)) => self.lost(&error.to_string()),
                Err(_) => self.lost("no line within the idle timeout"),
            }
        }
    }

    fn send(&mut self, command: &str) -> bool {
        self.commands.send(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn all_lines(input: &[u8], capacity: usize) -> Vec<RawLine> {
        let mut reader = LineReader::new(BufReader::with_capacity(capacity, input));
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.push(line);
        }
        lines
    }

    fn ok(text: &str) -> RawLine {
        RawLine {
            bytes: text.as_bytes().to_vec(),
            too_long: false,
        }
    }

    #[tokio::test]
    async fn splits_lines_across_small_reads() {
        let lines = all_lines(b"B40190A00\r\nT80190000\n\nlast", 3).await;
        assert_eq!(
            lines,
            vec![ok("B40190A00\r"), ok("T80190000"), ok(""), ok("last")]
        );
    }

    #[tokio::test]
    async fn discards_a_line_that_is_too_long_and_carries_on() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 1];
        input.extend_from_slice(b"\nB40190A00\n");
        input.extend(vec![b'y'; MAX_LINE_BYTES * 2]);
        let lines = all_lines(&input, 64).await;
        let too_long = RawLine {
            bytes: Vec::new(),
            too_long: true,
        };
        assert_eq!(lines, vec![too_long.clone(), ok("B40190A00"), too_long]);
        // Exactly at the limit is fine.
        let mut input = vec![b'z'; MAX_LINE_BYTES];
        input.push(b'\n');
        assert_eq!(all_lines(&input, 64).await[0].bytes.len(), MAX_LINE_BYTES);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_read_keeps_the_partial_line() {
        let (mut writer, read_half) = tokio::io::duplex(64);
        let mut reader = LineReader::new(BufReader::new(read_half));
        writer.write_all(b"B4019").await.unwrap();
        // Nothing else to do, so paused time jumps to the timeout: the read is dropped mid-line.
        let cancelled = timeout(Duration::from_millis(10), reader.next_line()).await;
        assert!(cancelled.is_err());
        writer.write_all(b"0A00\n").await.unwrap();
        assert_eq!(reader.next_line().await.unwrap(), Some(ok("B40190A00")));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_to_its_cap_and_resets_after_a_good_connection() {
        let options = TcpOptions {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
            ..TcpOptions::default()
        };
        let mut lines = TcpLines::new("127.0.0.1:9", options, SourceStats::default());
        let mut waits = Vec::new();
        for _ in 0..5 {
            let now = Instant::now();
            lines.schedule_retry();
            waits.push(lines.retry_at.unwrap() - now);
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![1, 2, 4, 5, 5]);
        lines.proven = true;
        let now = Instant::now();
        lines.schedule_retry();
        assert_eq!(lines.retry_at.unwrap() - now, Duration::from_secs(1));
    }
}
