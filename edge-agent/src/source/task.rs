//! The sampling task: reads a [`Source`], keeps a [`Sampler`], and hands one sample per interval
//! to the sink until shutdown. Also the configuration that picks the source.
//!
//! The interval comes from a `watch` channel, so that the agent's configuration sets it and a
//! downlink [`proto::Config`] (`sample_s`, see [`sample_interval`]) can change it while running. A
//! change applies from the last sample: shortening it makes the next sample come sooner (at once
//! if already due), lengthening it delays the next one. Ticks missed while the sink was slow are
//! skipped, not made up in a burst.
//!
//! When the source ends (a replayed file, stdin closed) the readings since the last sample are
//! sampled once more, so that nothing read is lost, and the task returns. At shutdown the task
//! returns without a last sample: the interval was not complete.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::{Telemetry, Validate};
use serde::{Deserialize, Serialize};
use tokio::fs::File;
use tokio::io::BufReader;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::command::OtgwCommands;
use super::lines::{LineReader, TcpLines, TcpOptions};
use super::replay::Paced;
use super::serial::{Backoff, ReopenLines};
use super::stats::{Counter, SourceStats};
use super::{LineSource, OtgwSource, Reading, Sampler, Source, SourceError};

/// The sampling interval when configuration says nothing: one minute, as the design asks of
/// boiler hubs.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The shortest interval honoured; shorter ones (including zero, which would spin) are raised to
/// it. OpenTherm itself moves about one frame a second.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Which source a boiler hub reads, in the agent's TOML:
///
/// ```toml
/// [source]
/// kind = "otgw_tcp"          # or "stdin", "line", "otgw_file"
/// addr = "otgw.local:25238"  # otgw_tcp: host:port
/// # path = "/dev/ttyUSB0"    # line, otgw_file: a file, FIFO or tty
///
/// [source.commands]          # otgw_tcp and a serial otgw_file: what the agent sends the OTGW
/// summary_off = true         # PS=0 on every connection
/// poll = [116, 117, 118, 119, 120, 121, 122, 123, 113, 114, 15, 3]  # PM=id, one at a time
/// poll_every_s = 300
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// JSON lines on standard input.
    Stdin,
    /// JSON lines from a file or FIFO.
    Line {
        /// The file or FIFO.
        path: PathBuf,
    },
    /// An OTGW over TCP (ser2net, or the ESP firmware's port), reconnected whenever it drops.
    OtgwTcp {
        /// `host:port`.
        addr: String,
        /// What to send the OTGW over the connection.
        #[serde(default)]
        commands: OtgwCommands,
    },
    /// An OTGW on a serial port (a tty set to 9600 8N1 raw beforehand), reopened with backoff
    /// whenever it fails (a USB adapter unplugged); or a saved capture (a regular file), replayed
    /// at the pace its times give (see `replay`) and then ended; or a FIFO, read until its writer
    /// closes it.
    OtgwFile {
        /// The tty or file.
        path: PathBuf,
        /// What to send the OTGW over a serial port (a capture or a FIFO cannot be written to,
        /// and these are ignored for them).
        #[serde(default)]
        commands: OtgwCommands,
    },
}

impl SourceConfig {
    /// The `kind` name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Stdin => "stdin",
            SourceConfig::Line { .. } => "line",
            SourceConfig::OtgwTcp { .. } => "otgw_tcp",
            SourceConfig::OtgwFile { .. } => "otgw_file",
        }
    }
}

/// The interval a downlink configuration asks for, if it sets one.
pub fn sample_interval(config: &proto::Config) -> Option<Duration> {
    config
        .sample_s
        .map(|seconds| Duration::from_secs(seconds.into()).max(MIN_INTERVAL))
}

/// A spawned sampling task.
#[derive(Debug)]
pub struct RunningSource {
    /// The task; it ends with the source, at shutdown, or on an error.
    pub task: JoinHandle<Result<(), SourceError>>,
    /// Its counters.
    pub stats: SourceStats,
}

/// Starts the source `config` names, sampling for boiler `asset` every `interval`, sending samples
/// to `sink` until `shutdown`. Must be called within a tokio runtime.
///
/// Files are opened in the task, because opening a FIFO waits for its writer; a path that cannot
/// be opened ends the task with [`SourceError::Open`]. Reading stdin, a file or a tty goes through
/// tokio's blocking pool: a read blocked there holds the runtime's shutdown until it returns, so
/// the agent should shut its runtime down with a timeout.
pub fn spawn(
    config: SourceConfig,
    asset: String,
    interval: watch::Receiver<Duration>,
    sink: mpsc::Sender<Telemetry>,
    shutdown: CancellationToken,
) -> Result<RunningSource, SourceError> {
    let wiring = Wiring::new(asset, interval, sink, shutdown)?;
    let stats = SourceStats::default();
    info!(kind = config.kind(), "starting the sensor source");
    let task = match config {
        SourceConfig::Stdin => {
            let reader = LineReader::new(BufReader::new(tokio::io::stdin()));
            launch(ready(LineSource::new(reader, stats.clone())), wiring)
        }
        SourceConfig::Line { path } => {
            let stats = stats.clone();
            let open = async move {
                let reader = LineReader::new(BufReader::new(open(&path).await?));
                Ok(LineSource::new(reader, stats))
            };
            launch(open, wiring)
        }
        SourceConfig::OtgwTcp { addr, commands } => {
            let lines = TcpLines::new(addr, TcpOptions::default(), stats.clone())
                .with_greeting(commands.greeting());
            let source = OtgwSource::new(lines, stats.clone()).with_poller(commands.poller());
            launch(ready(source), wiring)
        }
        SourceConfig::OtgwFile { path, commands } => {
            let stats = stats.clone();
            let open = async move { otgw_file(path, commands, stats).await };
            launch(open, wiring)
        }
    };
    Ok(RunningSource { task, stats })
}

/// Starts a sampling task over a source built by the caller (a [`ChannelSource`](super::ChannelSource)
/// for the simulator and tests); otherwise as [`spawn`].
pub fn spawn_with<S: Source + 'static>(
    source: S,
    asset: String,
    interval: watch::Receiver<Duration>,
    sink: mpsc::Sender<Telemetry>,
    shutdown: CancellationToken,
) -> Result<RunningSource, SourceError> {
    let wiring = Wiring::new(asset, interval, sink, shutdown)?;
    let stats = source.stats().clone();
    let task = launch(ready(source), wiring);
    Ok(RunningSource { task, stats })
}

/// Everything the task needs besides its source.
struct Wiring {
    sampler: Sampler,
    interval: watch::Receiver<Duration>,
    sink: mpsc::Sender<Telemetry>,
    shutdown: CancellationToken,
}

impl Wiring {
    /// Checks the asset id before anything is spawned, so that a bad configuration fails at once.
    fn new(
        asset: String,
        interval: watch::Receiver<Duration>,
        sink: mpsc::Sender<Telemetry>,
        shutdown: CancellationToken,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            sampler: Sampler::new(asset).map_err(SourceError::Asset)?,
            interval,
            sink,
            shutdown,
        })
    }
}

fn ready<S>(source: S) -> impl Future<Output = Result<S, SourceError>> {
    std::future::ready(Ok(source))
}

/// What an `otgw_file` path is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// A character device: a serial OTGW, reopened whenever it fails or ends.
    Tty,
    /// A regular file: a saved capture, replayed at its own pace and then ended.
    Capture,
    /// Anything else (a FIFO): read as it comes, ended with its writer.
    Stream,
}

fn file_kind(metadata: &std::fs::Metadata) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_char_device() {
        FileKind::Tty
    } else if kind.is_file() {
        FileKind::Capture
    } else {
        FileKind::Stream
    }
}

/// An [`OtgwSource`] for `path`, read as its [`FileKind`] says; `commands` go to a tty only.
async fn otgw_file(
    path: PathBuf,
    commands: OtgwCommands,
    stats: SourceStats,
) -> Result<OtgwFile, SourceError> {
    let metadata = tokio::fs::metadata(&path)
        .await
        .map_err(|source| SourceError::Open {
            path: path.clone(),
            source,
        })?;
    let kind = file_kind(&metadata);
    if kind != FileKind::Tty && !commands.poll.is_empty() {
        info!("source.commands.poll is ignored: a capture or FIFO cannot be written to");
    }
    Ok(match kind {
        FileKind::Tty => {
            let lines = ReopenLines::tty(path, Backoff::default(), stats.clone())
                .with_greeting(commands.greeting());
            OtgwFile::Tty(OtgwSource::new(lines, stats).with_poller(commands.poller()))
        }
        FileKind::Capture => {
            let reader = LineReader::new(BufReader::new(open(&path).await?));
            OtgwFile::Capture(OtgwSource::new(Paced::new(reader), stats))
        }
        FileKind::Stream => {
            let file = open(&path).await?;
            OtgwFile::Stream(OtgwSource::from_reader(BufReader::new(file), stats))
        }
    })
}

/// The three ways an `otgw_file` path is read, as one source.
#[derive(Debug)]
enum OtgwFile {
    Tty(OtgwSource<ReopenLines<File>>),
    Capture(OtgwSource<Paced<LineReader<BufReader<File>>>>),
    Stream(OtgwSource<LineReader<BufReader<File>>>),
}

impl Source for OtgwFile {
    async fn next_reading(&mut self) -> Result<Option<Reading>, SourceError> {
        match self {
            OtgwFile::Tty(source) => source.next_reading().await,
            OtgwFile::Capture(source) => source.next_reading().await,
            OtgwFile::Stream(source) => source.next_reading().await,
        }
    }

    fn stats(&self) -> &SourceStats {
        match self {
            OtgwFile::Tty(source) => source.stats(),
            OtgwFile::Capture(source) => source.stats(),
            OtgwFile::Stream(source) => source.stats(),
        }
    }
}

async fn open(path: &Path) -> Result<File, SourceError> {
    File::open(path).await.map_err(|source| SourceError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Spawns the task: opens the source (giving up at shutdown, since opening a FIFO can wait
/// forever), then runs it.
fn launch<S, F>(open: F, wiring: Wiring) -> JoinHandle<Result<(), SourceError>>
where
    S: Source + 'static,
    F: Future<Output = Result<S, SourceError>> + Send + 'static,
{
    tokio::spawn(async move {
        let Wiring {
            sampler,
            interval,
            sink,
            shutdown,
        } = wiring;
        let source = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            source = open => source?,
        };
        let result = run(source, sampler, interval, sink, shutdown).await;
        match &result {
            Ok(()) => info!("sensor source stopped"),
            Err(error) => error!(%error, "sensor source failed"),
        }
        result
    })
}

/// Reads `source` and sends `sampler`'s samples to `sink` every `interval` until the source ends,
/// `shutdown` is cancelled, or the sink closes ([`SourceError::SinkClosed`]).
///
/// Every reading is checked against proto's validation before it is kept; refused readings are
/// counted in [`StatsSnapshot::readings_invalid`](super::StatsSnapshot::readings_invalid).
pub async fn run<S: Source>(
    mut source: S,
    mut sampler: Sampler,
    mut interval: watch::Receiver<Duration>,
    sink: mpsc::Sender<Telemetry>,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    let stats = source.stats().clone();
    let mut period = interval.borrow_and_update().max(MIN_INTERVAL);
    // The watch's sender may go away (the agent's config task ended); the last interval stays.
    let mut interval_open = true;
    let mut last_tick = Instant::now();
    let mut next_tick = last_tick + period;
    loop {
        tokio::select! {
            // Shutdown first, then the timer before readings, so that a source that is always
            // ready (a file being replayed) cannot starve the samples.
            biased;
            () = shutdown.cancelled() => return Ok(()),
            changed = interval.changed(), if interval_open => {
                if changed.is_err() {
                    interval_open = false;
                    continue;
                }
                let requested = *interval.borrow_and_update();
                let new = requested.max(MIN_INTERVAL);
                if new != period {
                    info!(interval_s = new.as_secs_f64(), "sampling interval changed");
                    period = new;
                    next_tick = (last_tick + period).max(Instant::now());
                }
            }
            () = sleep_until(next_tick) => {
                let now = Instant::now();
                last_tick = next_tick;
                next_tick = last_tick + period;
                if next_tick <= now {
                    last_tick = now;
                    next_tick = now + period;
                }
                if !deliver(&mut sampler, now, period, &sink, &shutdown, &stats).await? {
                    return Ok(());
                }
            }
            reading = source.next_reading() => match reading? {
                Some(reading) => keep(&mut sampler, reading, &stats),
                None => {
                    if sampler.has_new() {
                        deliver(&mut sampler, Instant::now(), period, &sink, &shutdown, &stats)
                            .await?;
                    }
                    return Ok(());
                }
            },
        }
    }
}

fn keep(sampler: &mut Sampler, reading: Reading, stats: &SourceStats) {
    match reading.check() {
        Ok(()) => {
            stats.bump(Counter::Reading);
            sampler.record(reading, Instant::now());
        }
        Err(invalid) => {
            stats.bump(Counter::ReadingInvalid);
            warn!(%invalid, "sensor reading refused");
        }
    }
}

/// Samples and sends; `Ok(false)` if shutdown came first.
async fn deliver(
    sampler: &mut Sampler,
    now: Instant,
    period: Duration,
    sink: &mpsc::Sender<Telemetry>,
    shutdown: &CancellationToken,
    stats: &SourceStats,
) -> Result<bool, SourceError> {
    let Some(sample) = sampler.sample(now, period) else {
        debug!("no fresh readings; no sample");
        return Ok(true);
    };
    // Every reading was checked and the asset id too, so this cannot fail; if it ever does, the
    // outbox would refuse the sample anyway, and it is better dropped here with a log.
    if let Err(invalid) = sample.validate() {
        error!(%invalid, "sample refused");
        return Ok(true);
    }
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Ok(false),
        sent = sink.send(sample) => {
            sent.map_err(|_| SourceError::SinkClosed)?;
            stats.bump(Counter::Sample);
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::time::timeout;

    use super::*;
    use crate::source::channel;

    const MINUTE: Duration = Duration::from_secs(60);

    struct Harness {
        readings: mpsc::Sender<Reading>,
        interval: watch::Sender<Duration>,
        samples: mpsc::Receiver<Telemetry>,
        shutdown: CancellationToken,
        running: RunningSource,
    }

    fn start(period: Duration) -> Harness {
        let (readings, source) = channel(64);
        let (interval, interval_rx) = watch::channel(period);
        let (sink, samples) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let running =
            spawn_with(source, "B-1".into(), interval_rx, sink, shutdown.clone()).unwrap();
        Harness {
            readings,
            interval,
            samples,
            shutdown,
            running,
        }
    }

    impl Harness {
        async fn next_sample(&mut self) -> Telemetry {
            // Paused time jumps straight to the next timer, so this deadline costs nothing.
            timeout(Duration::from_secs(3600), self.samples.recv())
                .await
                .expect("a sample within the hour")
                .expect("the sink is open")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn emits_one_sample_per_interval() {
        let mut h = start(MINUTE);
        let t0 = Instant::now();
        h.readings.send(Reading::Flow(55.0)).await.unwrap();
        h.readings.send(Reading::Flame(true)).await.unwrap();
        let first = h.next_sample().await;
        assert_eq!(t0.elapsed(), MINUTE);
        assert_eq!(first.asset, "B-1");
        assert_eq!((first.flow, first.flame), (Some(55.0), Some(true)));
        h.readings.send(Reading::Flow(56.0)).await.unwrap();
        let second = h.next_sample().await;
        assert_eq!(t0.elapsed(), 2 * MINUTE);
        assert_eq!((second.flow, second.flame), (Some(56.0), Some(true)));
        assert_eq!(h.running.stats.snapshot().samples, 2);
        assert_eq!(h.running.stats.snapshot().readings, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_values_stop_and_silence_sends_nothing() {
        let mut h = start(MINUTE);
        let t0 = Instant::now();
        h.readings.send(Reading::Pressure(1.5)).await.unwrap();
        for n in 1..=3 {
            assert_eq!(h.next_sample().await.bar, Some(1.5));
            assert_eq!(t0.elapsed(), n * MINUTE);
        }
        // From four minutes on, the value is stale and there is nothing else: no sample.
        let silent = timeout(Duration::from_secs(570), h.samples.recv()).await;
        assert!(silent.is_err());
        // A new reading (at 12.5 min) brings samples back, on the same schedule.
        h.readings.send(Reading::Pressure(1.4)).await.unwrap();
        let back = h.next_sample().await;
        assert_eq!(back.bar, Some(1.4));
        assert_eq!(t0.elapsed(), 13 * MINUTE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_interval_change_applies_from_the_last_sample() {
        let mut h = start(MINUTE);
        let t0 = Instant::now();
        // A fresh reading before each sample: staleness follows the interval, and 10 s intervals
        // would make a minute-old value stale.
        let feed = |h: &Harness, value: f32| {
            let readings = h.readings.clone();
            async move { readings.send(Reading::Return(value)).await.unwrap() }
        };
        feed(&h, 40.0).await;
        h.next_sample().await;
        // Shorter: the next sample comes 10 s after the last one, then every 10 s.
        tokio::time::advance(Duration::from_secs(5)).await;
        h.interval.send(Duration::from_secs(10)).unwrap();
        feed(&h, 41.0).await;
        assert_eq!(h.next_sample().await.ret, Some(41.0));
        assert_eq!(t0.elapsed(), MINUTE + Duration::from_secs(10));
        feed(&h, 42.0).await;
        assert_eq!(h.next_sample().await.ret, Some(42.0));
        assert_eq!(t0.elapsed(), MINUTE + Duration::from_secs(20));
        // Already overdue: at once. (The reading goes first: at a tick, the timer is served
        // before readings waiting in the channel.)
        feed(&h, 43.0).await;
        tokio::time::advance(Duration::from_secs(3)).await;
        h.interval.send(Duration::from_secs(2)).unwrap();
        assert_eq!(h.next_sample().await.ret, Some(43.0));
        assert_eq!(t0.elapsed(), MINUTE + Duration::from_secs(23));
        // Longer: from the last sample.
        h.interval.send(MINUTE * 2).unwrap();
        feed(&h, 44.0).await;
        assert_eq!(h.next_sample().await.ret, Some(44.0));
        assert_eq!(t0.elapsed(), 3 * MINUTE + Duration::from_secs(23));
        // Zero is raised to the minimum rather than spinning.
        h.interval.send(Duration::ZERO).unwrap();
        feed(&h, 45.0).await;
        assert_eq!(h.next_sample().await.ret, Some(45.0));
        assert_eq!(t0.elapsed(), 3 * MINUTE + Duration::from_secs(24));
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_sampling_when_the_interval_sender_is_gone() {
        let mut h = start(MINUTE);
        let t0 = Instant::now();
        h.readings.send(Reading::Dhw(50.0)).await.unwrap();
        let sender = std::mem::replace(&mut h.interval, watch::channel(MINUTE).0);
        drop(sender);
        h.next_sample().await;
        h.next_sample().await;
        assert_eq!(t0.elapsed(), 2 * MINUTE);
    }

    #[tokio::test(start_paused = true)]
    async fn end_of_input_sends_what_is_new_then_stops() {
        let mut h = start(MINUTE);
        let t0 = Instant::now();
        h.readings.send(Reading::Outside(-2.5)).await.unwrap();
        drop(h.readings);
        let last = timeout(Duration::from_secs(1), h.samples.recv())
            .await
            .unwrap();
        assert_eq!(last.unwrap().out, Some(-2.5));
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert!(h.running.task.await.unwrap().is_ok());
        assert_eq!(h.samples.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_task() {
        let h = start(MINUTE);
        h.readings.send(Reading::Flow(50.0)).await.unwrap();
        h.shutdown.cancel();
        assert!(h.running.task.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_sink_is_an_error() {
        let h = start(MINUTE);
        h.readings.send(Reading::Flow(50.0)).await.unwrap();
        drop(h.samples);
        let result = h.running.task.await.unwrap();
        assert!(matches!(result, Err(SourceError::SinkClosed)));
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_readings_are_counted_and_dropped() {
        let mut h = start(MINUTE);
        h.readings.send(Reading::Pressure(300.0)).await.unwrap();
        h.readings.send(Reading::Flow(f32::NAN)).await.unwrap();
        h.readings.send(Reading::Modulation(40.0)).await.unwrap();
        let sample = h.next_sample().await;
        assert_eq!(
            (sample.bar, sample.flow, sample.modu),
            (None, None, Some(40.0))
        );
        let s = h.running.stats.snapshot();
        assert_eq!((s.readings, s.readings_invalid), (1, 2));
    }

    #[tokio::test]
    async fn refuses_a_bad_asset_id_before_spawning() {
        let (_, source) = channel(1);
        let (_, interval) = watch::channel(MINUTE);
        let (sink, _) = mpsc::channel(1);
        let result = spawn_with(
            source,
            String::new(),
            interval,
            sink,
            CancellationToken::new(),
        );
        assert!(matches!(result, Err(SourceError::Asset(_))));
    }

    #[tokio::test]
    async fn spawns_an_otgw_file_source_from_config() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"OpenTherm Gateway 4.2.5\r\nT80190000\r\nBC0193A80\r\nB4012019A\r\n")
            .unwrap();
        // Polling asked of a capture is ignored: it cannot be written to.
        let config = SourceConfig::OtgwFile {
            path: file.path().to_owned(),
            commands: OtgwCommands {
                poll: vec![116],
                ..OtgwCommands::default()
            },
        };
        let (_interval_tx, interval) = watch::channel(MINUTE);
        let (sink, mut samples) = mpsc::channel(4);
        let running = spawn(
            config,
            "B-9".into(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .unwrap();
        let sample = timeout(Duration::from_secs(10), samples.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sample.asset, "B-9");
        assert_eq!((sample.flow, sample.bar), (Some(58.5), Some(1.601_562_5)));
        running.task.await.unwrap().unwrap();
        let s = running.stats.snapshot();
        assert_eq!((s.lines, s.frames_decoded, s.samples), (4, 2, 1));
    }

    #[tokio::test]
    async fn spawns_a_line_source_from_config() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"{\"flow\": 50.0}\nnonsense\n{\"hours\": 12}\n")
            .unwrap();
        let config = SourceConfig::Line {
            path: file.path().to_owned(),
        };
        let (_interval_tx, interval) = watch::channel(MINUTE);
        let (sink, mut samples) = mpsc::channel(4);
        let running = spawn(
            config,
            "B-9".into(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .unwrap();
        let sample = timeout(Duration::from_secs(10), samples.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((sample.flow, sample.hours), (Some(50.0), Some(12)));
        running.task.await.unwrap().unwrap();
        assert_eq!(running.stats.snapshot().lines_rejected, 1);
    }

    #[tokio::test]
    async fn a_missing_file_ends_the_task_with_open() {
        let config = SourceConfig::Line {
            path: "/nonexistent/fieldsync/sensor".into(),
        };
        let (_interval_tx, interval) = watch::channel(MINUTE);
        let (sink, _samples) = mpsc::channel(4);
        let running = spawn(
            config,
            "B-9".into(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .unwrap();
        let result = running.task.await.unwrap();
        assert!(matches!(result, Err(SourceError::Open { .. })));
    }

    #[test]
    fn config_reads_from_toml() {
        #[derive(Deserialize)]
        struct File {
            source: SourceConfig,
        }
        let read = |text: &str| toml::from_str::<File>(text).map(|f| f.source);
        assert_eq!(
            read("[source]\nkind = \"otgw_tcp\"\naddr = \"otgw.local:25238\"").unwrap(),
            SourceConfig::OtgwTcp {
                addr: "otgw.local:25238".into(),
                commands: OtgwCommands::default(),
            }
        );
        assert_eq!(
            read("[source]\nkind = \"otgw_file\"\npath = \"/dev/ttyUSB0\"").unwrap(),
            SourceConfig::OtgwFile {
                path: "/dev/ttyUSB0".into(),
                commands: OtgwCommands::default(),
            }
        );
        assert_eq!(
            read(
                "[source]\nkind = \"otgw_tcp\"\naddr = \"otgw.local:25238\"\n\
                 [source.commands]\nsummary_off = false\npoll = [116, 3]\npoll_every_s = 600"
            )
            .unwrap(),
            SourceConfig::OtgwTcp {
                addr: "otgw.local:25238".into(),
                commands: OtgwCommands {
                    summary_off: false,
                    poll: vec![116, 3],
                    poll_every_s: 600,
                },
            }
        );
        assert!(read(
            "[source]\nkind = \"otgw_tcp\"\naddr = \"x:1\"\n[source.commands]\npol = [116]"
        )
        .is_err());
        assert_eq!(
            read("[source]\nkind = \"line\"\npath = \"/run/boiler.fifo\"").unwrap(),
            SourceConfig::Line {
                path: "/run/boiler.fifo".into()
            }
        );
        assert_eq!(
            read("[source]\nkind = \"stdin\"").unwrap(),
            SourceConfig::Stdin
        );
        assert!(read("[source]\nkind = \"modbus\"").is_err());
        assert!(read("[source]\nkind = \"otgw_tcp\"").is_err());
        assert!(read("[source]\nkind = \"otgw_tcp\"\naddr = \"x:1\"\nport = 2").is_err());
    }

    #[test]
    fn downlink_config_sets_the_interval() {
        let config = proto::Config {
            rev: 2,
            sample_s: Some(300),
            ..proto::Config::default()
        };
        assert_eq!(sample_interval(&config), Some(Duration::from_secs(300)));
        assert_eq!(sample_interval(&proto::Config::default()), None);
        let zero = proto::Config {
            sample_s: Some(0),
            ..proto::Config::default()
        };
        assert_eq!(sample_interval(&zero), Some(MIN_INTERVAL));
    }
}
