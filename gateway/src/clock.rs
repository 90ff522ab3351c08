//! The gateway's clock, in the protocol's unit (UTC milliseconds). Device clocks can be wrong;
//! this one is the reference the gateway stores beside them.
//!
//! Everything that needs the time takes a [`Clock`] (the contract's, shared with the devices), so
//! tests pass a [`FixedClock`] and never depend on the day they run (a test that asked for "the
//! last 7 days" from a fixed date broke on the first of the next month), and the demo runs the
//! gateway on the same compressed clock as its simulated devices.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
pub use proto::clock::{Clock, SharedClock, SystemClock};
use proto::TimestampMs;

/// A clock's reading as a UTC date-time.
pub trait ClockTime {
    /// Now, as a UTC date-time (the epoch if the clock reads past chrono's range).
    fn now(&self) -> DateTime<Utc>;
}

impl<C: Clock + ?Sized> ClockTime for C {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or(DateTime::UNIX_EPOCH)
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock reading `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(AtomicI64::new(at.timestamp_millis()))
    }

    /// A clock reading `at`, parsed from RFC 3339; the epoch if it does not parse.
    pub fn at_rfc3339(at: &str) -> Self {
        Self::at(
            DateTime::parse_from_rfc3339(at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(DateTime::UNIX_EPOCH),
        )
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> TimestampMs {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_reads_what_it_was_set_to_and_moves_when_told() {
        let clock = FixedClock::at_rfc3339("2026-11-24T12:00:00Z");
        assert_eq!(clock.now().to_rfc3339(), "2026-11-24T12:00:00+00:00");
        clock.advance(chrono::Duration::minutes(90));
        assert_eq!(clock.now().to_rfc3339(), "2026-11-24T13:30:00+00:00");
    }
}
