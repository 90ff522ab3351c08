//! What the drain and memory benchmarks share: a realistic telemetry backlog written into an
//! outbox, as a boiler hub would have after days without a link.

use std::path::Path;

use edge_agent::outbox::{Outbox, OutboxConfig};
use proto::{RecordBody, TimestampMs};

/// The backlog's budget: room for 100,000 full boiler samples (about 170 bytes each) and more.
pub const BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// Concurrent writers filling the backlog (they share flushes, so filling takes seconds).
const WRITERS: u64 = 32;

/// Where the backlog's samples start: 24 November 2025.
const FIRST_TS: TimestampMs = 1_764_000_000_000;

/// Writes `records` telemetry records into a fresh outbox in `dir`, then closes it.
pub async fn fill(dir: &Path, records: u64) -> anyhow::Result<()> {
    fill_for(dir, records, None, FIRST_TS).await
}

/// [`fill`] with the samples' boiler renamed `asset` (when given) and the first sample at
/// `first_ts`, one a minute after it. The writers run concurrently, so sequence order is
/// close to, not exactly, time order.
pub async fn fill_for(
    dir: &Path,
    records: u64,
    asset: Option<&str>,
    first_ts: TimestampMs,
) -> anyhow::Result<()> {
    let outbox = Outbox::open(
        dir,
        OutboxConfig {
            budget_bytes: BUDGET_BYTES,
            ..OutboxConfig::default()
        },
    )?;
    // A day of one-minute samples from `proto`'s example boiler, cycled.
    let day: Vec<RecordBody> = proto::examples::telemetry_batch(1440)
        .recs
        .into_iter()
        .map(|record| match (record.body, asset) {
            (RecordBody::Telemetry(telemetry), Some(asset)) => {
                RecordBody::Telemetry(proto::Telemetry {
                    asset: asset.to_owned(),
                    ..telemetry
                })
            }
            (body, _) => body,
        })
        .collect();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let outbox = outbox.clone();
        let day = day.clone();
        writers.spawn(async move {
            let mut i = writer;
            while i < records {
                let minute = usize::try_from(i % 1440).unwrap_or(0);
                let ts = first_ts + TimestampMs::try_from(i).unwrap_or(0) * 60_000;
                outbox.accept(ts, day[minute].clone()).await?;
                i += WRITERS;
            }
            anyhow::Ok(())
        });
    }
    while let Some(written) = writers.join_next().await {
        written??;
    }
    let stats = outbox.stats()?;
    anyhow::ensure!(
        stats.depth == records,
        "the backlog should hold {records} records: {stats:?}"
    );
    Ok(())
}

/// Runs `work` on the runtime the agent itself uses: two worker threads, whatever the cores.
pub fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(work)
}
