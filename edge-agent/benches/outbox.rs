//! Durable accepts per second through the outbox, with 1 and with 32 concurrent writers, and the
//! latency of each accept (which includes its share of a flush: sled's write-out plus fdatasync).
//!
//! Three runs: one writer; 32 writers; 32 writers with the disk budget already reached, so that
//! every accept also drops the oldest telemetry and grows a gap record. After each, the time to
//! reopen the outbox (reading every record to rebuild the index) is printed too.
//!
//! `cargo bench -p edge-agent --bench outbox`. The database lives in a fresh directory under the
//! system temporary directory (set `TMPDIR` to measure another disk). Targets on the 2-core
//! development machine: at least 20,000 records/s with 32 writers, p99 at most 25 ms.

use std::time::{Duration, Instant};

use edge_agent::outbox::{Outbox, OutboxConfig};
use proto::{BinStream, Collection, Outcome, Position, RecordBody, Telemetry, TimestampMs};

/// Records per run.
const RECORDS: usize = 20_000;
const TS: TimestampMs = 1_764_000_000_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "outbox: {RECORDS} durable accepts per run, in {}",
        std::env::temp_dir().display()
    );
    println!(
        "scenario                    records/s  p50 ms  p99 ms  max ms  records/flush  reopen ms"
    );
    let scenarios = [
        Scenario {
            name: "1 writer",
            writers: 1,
            full: false,
        },
        Scenario {
            name: "32 writers",
            writers: 32,
            full: false,
        },
        Scenario {
            name: "32 writers, budget full",
            writers: 32,
            full: true,
        },
    ];
    for scenario in scenarios {
        let run = runtime.block_on(run(&scenario))?;
        println!(
            "{:<26}  {:>9.0}  {:>6.2}  {:>6.2}  {:>6.2}  {:>13.1}  {:>9.1}",
            scenario.name,
            run.records as f64 / run.elapsed.as_secs_f64(),
            millis(run.percentile(0.50)),
            millis(run.percentile(0.99)),
            millis(run.percentile(1.0)),
            run.records as f64 / run.flushes.max(1) as f64,
            millis(run.reopen),
        );
    }
    Ok(())
}

struct Scenario {
    name: &'static str,
    writers: usize,
    /// Start with the disk budget reached (telemetry only, so there is always something to drop).
    full: bool,
}

struct Run {
    records: usize,
    elapsed: Duration,
    /// Every accept's latency, sorted.
    latencies: Vec<Duration>,
    flushes: u64,
    /// How long reopening took afterwards.
    reopen: Duration,
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let rank = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(rank).copied().unwrap_or_default()
    }
}

/// `RECORDS` accepts shared among the scenario's writers on a fresh outbox, then a reopen.
async fn run(scenario: &Scenario) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let config = OutboxConfig {
        budget_bytes: if scenario.full {
            FULL_BUDGET_BYTES
        } else {
            // Room for the whole run: this measures accepting, not dropping.
            64 * 1024 * 1024
        },
        ..OutboxConfig::default()
    };
    let outbox = Outbox::open(dir.path(), config.clone())?;
    if scenario.full {
        fill(&outbox).await?;
    }
    let flushes_before = outbox.stats()?.flushes;
    let per_writer = RECORDS / scenario.writers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..scenario.writers)
        .map(|writer| {
            let mix = if scenario.full {
                Mix::TelemetryOnly
            } else {
                Mix::OneInFourCollections
            };
            tokio::spawn(write(outbox.clone(), writer, per_writer, mix))
        })
        .collect();
    let mut latencies = Vec::with_capacity(RECORDS);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let flushes = outbox.stats()?.flushes - flushes_before;
    drop(outbox);

    let reopening = Instant::now();
    let reopened = Outbox::open(dir.path(), config)?;
    let reopen = reopening.elapsed();
    drop(reopened);
    Ok(Run {
        records: latencies.len(),
        elapsed,
        latencies,
        flushes,
        reopen,
    })
}

/// The budget of the "budget full" run: about 6,000 telemetry records.
const FULL_BUDGET_BYTES: u64 = 1024 * 1024;

/// Fills the outbox to its budget with telemetry, through 32 writers.
async fn fill(outbox: &Outbox) -> anyhow::Result<()> {
    let tasks: Vec<_> = (0..32)
        .map(|writer| tokio::spawn(write(outbox.clone(), writer, 250, Mix::TelemetryOnly)))
        .collect();
    for task in tasks {
        task.await??;
    }
    let stats = outbox.stats()?;
    anyhow::ensure!(
        stats.bytes + 2_000 > stats.budget_bytes,
        "the outbox should be at its budget: {stats:?}"
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Mix {
    /// A cab's and a hub's records together.
    OneInFourCollections,
    /// A boiler hub's.
    TelemetryOnly,
}

/// One writer: `count` accepts in a row, each timed.
async fn write(
    outbox: Outbox,
    writer: usize,
    count: usize,
    mix: Mix,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let body = match mix {
            Mix::OneInFourCollections if i % 4 == 0 => collection(writer, i),
            _ => telemetry(writer, i),
        };
        let started = Instant::now();
        outbox.accept(TS + i as i64 * 1_000, body).await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// A boiler sample as a hub reads it over OpenTherm.
fn telemetry(writer: usize, i: usize) -> RecordBody {
    RecordBody::Telemetry(Telemetry {
        asset: format!("B-{:05}", writer * 100 + i % 100),
        flow: Some(55.0 + (i % 20) as f32 * 0.5),
        ret: Some(41.0 + (i % 10) as f32 * 0.25),
        dhw: Some(48.5),
        out: Some(7.25),
        setp: Some(60.0),
        bar: Some(1.45),
        modu: Some((i % 100) as f32),
        flame: Some(i % 3 != 0),
        ch: Some(true),
        dhw_on: Some(false),
        fault: Some(false),
        starts: Some(10_000 + i as u32),
        hours: Some(3_000),
        ..Telemetry::default()
    })
}

/// A crew's confirmation from the cab.
fn collection(writer: usize, i: usize) -> RecordBody {
    RecordBody::Collection(Collection {
        uprn: Some(100_023_000_000 + i as u64),
        stream: BinStream::Recycling,
        outcome: if i % 40 == 0 {
            Outcome::NotPresented
        } else {
            Outcome::Collected
        },
        pos: Position {
            lat: 51.45 + (i % 1000) as f64 * 1e-5,
            lon: -0.97 - (writer % 10) as f64 * 1e-4,
            acc: 4.5,
        },
        vehicle: format!("RCV-{:02}", writer % 40),
        round: "TUE-RECYCLING-3".into(),
        job: None,
        photo: None,
        note: None,
    })
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
