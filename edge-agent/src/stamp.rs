//! What places a record on the gateway's clock whatever the device's wall clock did: the agent's
//! boot counter and milliseconds since this start on a monotonic clock. Each record carries the
//! pair from when it was accepted and each envelope the pair from when it was sent, so the gateway
//! can date a record by its own receipt time less the monotonic time between the two, even if the
//! wall clock jumped, or was hours wrong, meanwhile (see `docs/ARCHITECTURE.md`).

use std::time::Instant;

use proto::clock::{SharedClock, SystemClock};

/// This start's boot number and the instant it began.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// The boot counter (1 for the agent's first start).
    pub boot: u64,
    /// When this start began, on the monotonic clock.
    pub started: Instant,
    /// Counts the milliseconds since: real ones, or a simulation's compressed ones, so that a
    /// record's monotonic time agrees with its timestamp.
    clock: SharedClock,
}

impl Stamp {
    /// The stamp of boot `boot`, which began at `started`, counting real time.
    pub fn new(boot: u64, started: Instant) -> Self {
        Self::with_clock(boot, started, SystemClock::shared())
    }

    /// The stamp of boot `boot`, which began at `started`, counting `clock`'s time.
    pub fn with_clock(boot: u64, started: Instant, clock: SharedClock) -> Self {
        Self {
            boot,
            started,
            clock,
        }
    }

    /// Milliseconds since the start at `now` (0 for an instant before it).
    pub fn mono_at(&self, now: Instant) -> u64 {
        self.clock.monotonic_ms(self.started, now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn mono_counts_milliseconds_from_the_start() {
        let started = Instant::now();
        let stamp = Stamp::new(4, started);
        assert_eq!(stamp.mono_at(started + Duration::from_millis(1_500)), 1_500);
        assert_eq!(
            stamp.mono_at(
                started
                    .checked_sub(Duration::from_secs(1))
                    .unwrap_or(started)
            ),
            0
        );
    }
}
