//! A serial OTGW (`/dev/ttyUSB0`) that is reopened whenever it goes away: a USB adapter unplugged
//! or reset makes reads fail with `EIO` (or end), and the device node may vanish and come back.
//! Like [`TcpLines`](super::lines::TcpLines) it never ends, it waits with a doubling backoff, and
//! it says in [`SourceStats`] whether the link is up, so that the agent shows a hub that lost its
//! OTGW instead of running silent. Commands to the OTGW (`PS=0`, `PM=`) go out over a second
//! handle on the same port (see [`Port`]).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, BufReader};
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use super::command::CommandLink;
use super::lines::{LineInput, LineReader, RawLine};
use super::stats::{Counter, Link, SourceStats};

/// An opened port: what to read, and where commands go if it could be opened for writing too.
///
/// A tty is opened twice, once to read and once to write, rather than once for both: tokio's
/// `File` runs one operation at a time, and a write issued while a read waits for the line would
/// take over the read's result and seek back over it, which a tty cannot do (`ESPIPE`).
pub struct Port<R> {
    /// The reading side.
    pub reader: R,
    /// The writing side, if there is one.
    pub writer: Option<Box<dyn AsyncWrite + Unpin + Send>>,
}

/// Opens the port afresh; boxed so that tests can hand out scripted ports.
pub type Opener<R> =
    Box<dyn FnMut() -> Pin<Box<dyn Future<Output = io::Result<Port<R>>> + Send>> + Send>;

/// Backoff between reopening attempts: from `min`, doubling to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First wait. Default 1 s.
    pub min: Duration,
    /// Longest wait. Default 30 s: an adapter plugged back in is read within half a minute.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Lines from a port reopened whenever it fails or ends. [`LineInput::next_line`] never returns
/// `Ok(None)` or an error.
pub struct ReopenLines<R> {
    name: String,
    open: Opener<R>,
    backoff: Backoff,
    stats: SourceStats,
    conn: Option<LineReader<BufReader<R>>>,
    /// The port's writing side, for commands to the OTGW.
    commands: CommandLink,
    retry_at: Option<Instant>,
    wait: Duration,
    /// The current port has given a line: only then does the backoff start again from `min`.
    proven: bool,
}

impl<R> std::fmt::Debug for ReopenLines<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReopenLines")
            .field("name", &self.name)
            .field("open", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl ReopenLines<tokio::fs::File> {
    /// A tty at `path`, reopened with `backoff`.
    pub fn tty(path: PathBuf, backoff: Backoff, stats: SourceStats) -> Self {
        let name = path.display().to_string();
        let open: Opener<tokio::fs::File> = Box::new(move || {
            let path = path.clone();
            Box::pin(async move {
                let reader = tokio::fs::File::open(&path).await?;
                // Commands go back over the same port; without write permission it is only read.
                let writer = match tokio::fs::OpenOptions::new().write(true).open(&path).await {
                    Ok(file) => Some(Box::new(file) as Box<dyn AsyncWrite + Unpin + Send>),
                    Err(error) => {
                        warn!(port = %path.display(), %error, "cannot write to the serial OTGW");
                        None
                    }
                };
                Ok(Port { reader, writer })
            })
        });
        Self::new(name, open, backoff, stats)
    }
}

impl<R: AsyncRead + Unpin + Send> ReopenLines<R> {
    /// Lines from whatever `open` returns, named `name` in logs.
    pub fn new(name: String, open: Opener<R>, backoff: Backoff, stats: SourceStats) -> Self {
        Self {
            name,
            open,
            wait: backoff.min,
            backoff,
            stats,
            conn: None,
            commands: CommandLink::default(),
            retry_at: None,
            proven: false,
        }
    }

    /// Sends `greeting` (commands such as `PS=0`) each time the port is opened.
    pub fn with_greeting(mut self, greeting: Vec<String>) -> Self {
        self.commands = CommandLink::new(greeting);
        self
    }

    fn schedule_retry(&mut self) {
        if std::mem::take(&mut self.proven) {
            self.wait = self.backoff.min;
        }
        self.retry_at = Some(Instant::now() + self.wait);
        self.wait = (self.wait * 2).min(self.backoff.max);
    }

    fn lost(&mut self, why: &str) {
        self.conn = None;
        self.commands.detach();
        self.stats.bump(Counter::Disconnect);
        self.stats.set_link(Link::Down);
        warn!(port = %self.name, why, "serial OTGW lost; reopening");
        self.schedule_retry();
    }

    async fn reopen(&mut self) {
        if let Some(at) = self.retry_at {
            sleep_until(at).await;
        }
        match (self.open)().await {
            Ok(port) => {
                info!(port = %self.name, "serial OTGW opened");
                self.stats.bump(Counter::Connect);
                self.stats.set_link(Link::Up);
                self.conn = Some(LineReader::new(BufReader::new(port.reader)));
                if let Some(writer) = port.writer {
                    self.commands.attach(writer);
                }
                self.retry_at = None;
            }
            Err(error) => {
                self.stats.bump(Counter::ConnectFailure);
                self.stats.set_link(Link::Down);
                warn!(port = %self.name, %error, "cannot open the serial OTGW");
                self.schedule_retry();
            }
        }
    }
}

impl<R: AsyncRead + Unpin + Send> LineInput for ReopenLines<R>
where
    BufReader<R>: AsyncBufRead,
{
    async fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                self.reopen().await;
                continue;
            };
            match conn.next_line().await {
                Ok(Some(line)) => {
                    self.proven = true;
                    return Ok(Some(line));
                }
                // A tty ends only when its device went away (a hang-up).
                Ok(None) => self.lost("the port ended"),
                Err(error) => self.lost(&error.to_string()),
            }
        }
    }

    fn send(&mut self, command: &str) -> bool {
        self.commands.send(command)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use tokio::io::{AsyncReadExt, ReadBuf};

    use super::*;

    /// A reader that fails with `EIO` once its bytes are read, as a tty does when its USB
    /// adapter is pulled.
    struct Unplugged;

    impl AsyncRead for Unplugged {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::from_raw_os_error(5)))
        }
    }

    type Reader = Box<dyn AsyncRead + Unpin + Send>;

    /// A port that reads from `reader` and cannot be written to.
    fn port(reader: impl AsyncRead + Unpin + Send + 'static) -> Port<Reader> {
        Port {
            reader: Box::new(reader),
            writer: None,
        }
    }

    fn scripted(script: Vec<io::Result<Port<Reader>>>) -> Opener<Reader> {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        Box::new(move || {
            let next = script.lock().ok().and_then(|mut s| s.pop_front());
            Box::pin(async move {
                next.unwrap_or_else(|| Err(io::Error::from(io::ErrorKind::NotFound)))
            })
        })
    }

    fn text(line: &RawLine) -> &str {
        std::str::from_utf8(&line.bytes).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn eio_reopens_with_backoff_and_says_so() {
        let unplug = port((&b"B40190A00\r\n"[..]).chain(Unplugged));
        let gone = || Err(io::Error::from(io::ErrorKind::NotFound));
        let back = port(&b"BC01A3A80\r\n"[..]);
        let stats = SourceStats::default();
        let backoff = Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(4),
        };
        let open = scripted(vec![Ok(unplug), gone(), gone(), Ok(back)]);
        let mut lines = ReopenLines::new("ttyUSB0".into(), open, backoff, stats.clone());
        let t0 = Instant::now();
        assert_eq!(
            text(&lines.next_line().await.unwrap().unwrap()),
            "B40190A00\r"
        );
        assert_eq!(stats.link(), Link::Up);
        // EIO, then the node is missing twice: waits of 1 s (reset by the good port), 2 s, 4 s.
        assert_eq!(
            text(&lines.next_line().await.unwrap().unwrap()),
            "BC01A3A80\r"
        );
        assert_eq!(t0.elapsed(), Duration::from_secs(7));
        let s = stats.snapshot();
        assert_eq!((s.connects, s.connect_failures, s.disconnects), (2, 2, 1));
        assert_eq!(stats.link(), Link::Up);
        // The port then ends (a hang-up): down, and retried rather than ending the source.
        let waited = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        assert!(waited.is_err(), "the source never ends");
        assert_eq!(stats.link(), Link::Down);
        assert!(stats.snapshot().connect_failures >= 3);
    }

    /// Each opening of the port is greeted (`PS=0`), and commands go out over the same port.
    #[tokio::test(start_paused = true)]
    async fn each_opening_is_greeted_and_commands_go_out() {
        let (first_out, mut first_device) = tokio::io::duplex(64);
        let (second_out, mut second_device) = tokio::io::duplex(64);
        let port = |bytes: &'static [u8], writer| Port {
            reader: Box::new(bytes.chain(Unplugged)) as Reader,
            writer: Some(Box::new(writer) as Box<dyn AsyncWrite + Unpin + Send>),
        };
        let first = port(b"B40190A00\r\n", first_out);
        let second = port(b"BC01A3A80\r\n", second_out);
        let stats = SourceStats::default();
        let open = scripted(vec![Ok(first), Ok(second)]);
        let mut lines = ReopenLines::new("ttyUSB0".into(), open, Backoff::default(), stats)
            .with_greeting(vec!["PS=0".into()]);
        assert!(!lines.send("PM=116"), "nothing open yet");
        lines.next_line().await.unwrap().unwrap();
        assert!(lines.send("PM=116"));
        let mut sent = [0; 12];
        first_device.read_exact(&mut sent).await.unwrap();
        assert_eq!(&sent, b"PS=0\rPM=116\r");
        // EIO, reopened: greeted again on the new port.
        lines.next_line().await.unwrap().unwrap();
        let mut sent = [0; 5];
        second_device.read_exact(&mut sent).await.unwrap();
        assert_eq!(&sent, b"PS=0\r");
    }

    /// On a real tty (a pseudo-terminal), commands go out while lines keep coming in: the port is
    /// opened once to read and once to write, so a write never disturbs the read waiting on it.
    #[tokio::test]
    async fn a_tty_is_read_and_written_at_once() {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};

        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};

        use crate::source::command::Poller;
        use crate::source::{OtgwSource, Reading, Source};

        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let path = PathBuf::from(ptsname(&master, Vec::new()).unwrap().into_string().unwrap());
        // What `stty raw -echo` does for a real OTGW's port; the open keeps the setting.
        let slave = std::fs::File::open(&path).unwrap();
        let mut mode = tcgetattr(&slave).unwrap();
        mode.make_raw();
        tcsetattr(&slave, OptionalActions::Now, &mode).unwrap();

        // The OTGW: a flow frame every 20 ms, and whatever the agent writes, collected.
        let mut otgw = std::fs::File::from(master);
        let mut otgw_in = otgw.try_clone().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_writing = Arc::clone(&stop);
        let writer = std::thread::spawn(move || {
            while !stop_writing.load(Ordering::Relaxed) {
                if otgw.write_all(b"B40190A00\r\n").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let reader = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut buf = [0; 64];
            while !String::from_utf8_lossy(&sent).contains("PM=116\r") {
                match otgw_in.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sent.extend_from_slice(&buf[..n]),
                }
            }
            sent
        });

        let stats = SourceStats::default();
        let lines = ReopenLines::tty(path, Backoff::default(), stats.clone())
            .with_greeting(vec!["PS=0".into()]);
        let poller = Poller::new(vec![116], Duration::from_secs(60));
        let mut source = OtgwSource::new(lines, stats).with_poller(Some(poller));
        let deadline = Duration::from_secs(10);
        // Frames keep decoding before, while and after the commands go out.
        for _ in 0..20 {
            let reading = tokio::time::timeout(deadline, source.next_reading()).await;
            assert_eq!(reading.unwrap().unwrap(), Some(Reading::Flow(10.0)));
        }
        let sent = reader.join().unwrap();
        assert_eq!(String::from_utf8(sent).unwrap(), "PS=0\rPM=116\r");
        stop.store(true, Ordering::Relaxed);
        drop(source);
        drop(slave);
        writer.join().unwrap();
    }
}
