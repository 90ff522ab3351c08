//! The time source both ends of the contract read, in the contract's unit ([`TimestampMs`]).
//!
//! Devices and the gateway stamp what they record with a [`Clock`] rather than the machine's
//! clock directly, so that tests pass a fixed one and never depend on the day they run, and so
//! that a simulation can run every device and the gateway on one compressed clock.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::TimestampMs;

/// A source of the current time (`Debug` so that what holds one can derive it).
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch (UTC).
    fn now_ms(&self) -> TimestampMs;

    /// Milliseconds of this clock's time from `earlier` to `later`, two readings of the machine's
    /// monotonic clock (0 if `later` is before `earlier`): what a device's monotonic stamp counts.
    /// Real time, unless the clock runs at another rate (a compressed simulation).
    fn monotonic_ms(&self, earlier: Instant, later: Instant) -> u64 {
        u64::try_from(later.saturating_duration_since(earlier).as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock shared by the parts that read it.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The machine's clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> TimestampMs {
        // A clock set before 1970 reads as the epoch; one past i64 milliseconds cannot be set.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            TimestampMs::try_from(d.as_millis()).unwrap_or(TimestampMs::MAX)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_after_this_was_written() {
        // 2026-11-01T00:00:00Z.
        assert!(SystemClock.now_ms() > 1_793_491_200_000);
    }
}
