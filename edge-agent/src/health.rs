//! The device's own health record, every `intervals.health_s` (which the gateway can change):
//! outbox depth and bytes, free disk, uptime and version, stalls and the acks and jobs ignored
//! for want of the gateway's signature, so that the gateway sees a device that
//! is alive but falling behind (or filling its disk), not just one that is silent; and on a boiler
//! hub the sensor source's state (`src`), so that a hub whose OTGW is unplugged, silent or in
//! summary mode shows as such rather than as a boiler that stopped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto::{Health, RecordBody, SourceHealth};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::outbox::{OutboxError, OutboxStats};
use crate::source::SourceMonitor;
use crate::uplink::{Intake, LinkStatus};

/// The agent's version, as health records report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sends a health record every interval until stopped; free disk is measured on the file system
/// that holds `data_dir`; `source`, a boiler hub's sensor source, is reported if there is one.
pub async fn run(
    intake: Intake,
    data_dir: PathBuf,
    mut interval: watch::Receiver<Duration>,
    link: watch::Receiver<LinkStatus>,
    source: Option<SourceMonitor>,
    started: Instant,
    stop: CancellationToken,
) {
    loop {
        let period = *interval.borrow_and_update();
        tokio::select! {
            _ = stop.cancelled() => return,
            // A new interval starts a new wait.
            changed = interval.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = tokio::time::sleep(period) => {}
        }
        let stats = match intake.outbox().stats() {
            Ok(stats) => stats,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox for a health record");
                continue;
            }
        };
        let free = free_disk(&data_dir).await;
        let (stalls, unverified) = {
            let link = link.borrow();
            (link.stalls, link.unverified)
        };
        let src = source.as_ref().map(SourceMonitor::report);
        let health = health(&stats, (stalls, unverified), started.elapsed(), free, src);
        match intake
            .accept(intake.now_ms(), RecordBody::Health(health))
            .await
        {
            // The outbox logs its outages once, not once per record.
            Ok(_) | Err(OutboxError::StorageDown(_)) => {}
            Err(e) => tracing::warn!(error = %e, "cannot store a health record"),
        }
    }
}

/// Bytes available to the agent on the file system holding `dir` (statvfs's `f_bavail`, so the
/// space reserved for root does not count); `None`, logged, if it cannot be measured. Off the
/// runtime, since a failing disk can make even statvfs slow.
pub async fn free_disk(dir: &Path) -> Option<u64> {
    let owned = dir.to_owned();
    match tokio::task::spawn_blocking(move || fs2::available_space(&owned)).await {
        Ok(Ok(free)) => Some(free),
        Ok(Err(e)) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot measure free disk");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot measure free disk");
            None
        }
    }
}

/// The health record for the outbox's `stats` and the link's stalls and unverified messages
/// after `up` running, with `free` bytes of disk (`None`: unknown, reported as 0) and the sensor
/// source's state `src`.
pub fn health(
    stats: &OutboxStats,
    (stalls, unverified): (u64, u64),
    up: Duration,
    free: Option<u64>,
    src: Option<SourceHealth>,
) -> Health {
    Health {
        // No battery or modem readings yet: the sources that could supply them are per device.
        batt: None,
        rssi: None,
        depth: stats.depth,
        bytes: stats.bytes,
        // The wire has no "unknown"; 0 says it, since a device with truly no free disk would
        // not be writing health records either.
        free: free.unwrap_or(0),
        up: up.as_secs(),
        ver: VERSION.to_owned(),
        dead: Some(stats.dead_letters),
        faults: Some(stats.storage_faults),
        stalls: Some(stalls),
        unverified: Some(unverified),
        src,
    }
}

#[cfg(test)]
mod tests {
    use proto::Validate;

    use super::*;

    #[test]
    fn a_health_record_reports_the_outbox_and_passes_validation() {
        let stats = OutboxStats {
            depth: 12,
            priority_depth: 2,
            bytes: 3400,
            budget_bytes: 1 << 24,
            in_flight: 4,
            oldest_unsent_ts: None,
            acked_through: 7,
            next_seq: 20,
            flushes: 9,
            storage: crate::outbox::StorageState::Ok,
            storage_faults: 0,
            storage_recoveries: 0,
            dead_letters: 0,
            dead_letters_evicted: 0,
        };
        let src = SourceHealth {
            st: proto::SourceStatus::Summary,
            why: Some("the OTGW is in PS=1 summary mode".into()),
        };
        let record = health(
            &stats,
            (2, 5),
            Duration::from_secs(3600),
            Some(5 << 30),
            Some(src.clone()),
        );
        assert_eq!((record.depth, record.bytes, record.up), (12, 3400, 3600));
        assert_eq!(record.free, 5 << 30);
        assert_eq!(record.src, Some(src));
        assert_eq!((record.stalls, record.unverified), (Some(2), Some(5)));
        record.validate().unwrap();
        let bare = health(&stats, (0, 0), Duration::ZERO, None, None);
        assert_eq!((bare.free, bare.src), (0, None), "unknown");
    }

    #[tokio::test]
    async fn free_disk_is_measured_where_the_data_lives() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_disk(dir.path()).await.unwrap();
        assert!(free > 0);
        assert_eq!(free_disk(&dir.path().join("missing")).await, None);
    }
}
