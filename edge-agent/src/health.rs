//! The device's own health record, every `intervals.health_s` (which the gateway can change):
//! outbox depth and bytes, uptime and version, so that the gateway sees a device that is alive but
//! falling behind, not just one that is silent.

use std::time::{Duration, Instant};

use proto::{Health, RecordBody};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::agent::now_ms;
use crate::outbox::OutboxStats;
use crate::uplink::Intake;

/// The agent's version, as health records report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sends a health record every interval until stopped.
pub async fn run(
    intake: Intake,
    mut interval: watch::Receiver<Duration>,
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
        let health = health(&stats, started.elapsed());
        if let Err(e) = intake.accept(now_ms(), RecordBody::Health(health)).await {
            tracing::warn!(error = %e, "cannot store a health record");
        }
    }
}

/// The health record for the outbox's `stats` after `up` running.
pub fn health(stats: &OutboxStats, up: Duration) -> Health {
    Health {
        // No battery or modem readings yet: the sources that could supply them are per device.
        batt: None,
        rssi: None,
        depth: stats.depth,
        bytes: stats.bytes,
        // Free disk needs statvfs, which std lacks; 0 means unknown until a crate provides it.
        free: 0,
        up: up.as_secs(),
        ver: VERSION.to_owned(),
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
        };
        let health = health(&stats, Duration::from_secs(3600));
        assert_eq!((health.depth, health.bytes, health.up), (12, 3400, 3600));
        health.validate().unwrap();
    }
}
