//! A serial OTGW (`/dev/ttyUSB0`) that is reopened whenever it goes away: a USB adapter unplugged
//! or reset makes reads fail with `EIO` (or end), and the device node may vanish and come back.
//! Like [`TcpLines`](super::lines::TcpLines) it never ends, it waits with a doubling backoff, and
//! it says in [`SourceStats`] whether the link is up, so that the agent shows a hub that lost its
//! OTGW instead of running silent.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufRead, BufReader};
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use super::lines::{LineInput, LineReader, RawLine};
use super::stats::{Counter, Link, SourceStats};

/// Opens the port afresh; boxed so that tests can hand out scripted readers.
pub type Opener<R> = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = io::Result<R>> + Send>> + Send>;

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
            Box::pin(async move { tokio::fs::File::open(path).await })
        });
        Self::new(name, open, backoff, stats)
    }
}

impl<R: tokio::io::AsyncRead + Unpin + Send> ReopenLines<R> {
    /// Lines from whatever `open` returns, named `name` in logs.
    pub fn new(name: String, open: Opener<R>, backoff: Backoff, stats: SourceStats) -> Self {
        Self {
            name,
            open,
            wait: backoff.min,
            backoff,
            stats,
            conn: None,
            retry_at: None,
            proven: false,
        }
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
                self.conn = Some(LineReader::new(BufReader::new(port)));
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

impl<R: tokio::io::AsyncRead + Unpin + Send> LineInput for ReopenLines<R>
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
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

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

    type Port = Box<dyn AsyncRead + Unpin + Send>;

    fn scripted(script: Vec<io::Result<Port>>) -> Opener<Port> {
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
        let unplug: Port = Box::new((&b"B40190A00\r\n"[..]).chain(Unplugged));
        let gone = || Err(io::Error::from(io::ErrorKind::NotFound));
        let back: Port = Box::new(&b"BC01A3A80\r\n"[..]);
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
}
