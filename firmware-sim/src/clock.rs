//! Compressed simulated time. The simulated world (boilers' days, crews' rounds, operatives' jobs)
//! runs `speed` times faster than the wall clock, from a chosen start. It is a
//! [`proto::clock::Clock`], so that the demo's agents stamp their records, and its gateway judges
//! them, on the same simulated time as the models that made them: an hour of a boiler's firing is
//! an hour of records, not a minute.

use std::time::Duration;

use chrono::{DateTime, Utc};
use proto::clock::{Clock, SharedClock};
use proto::TimestampMs;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Maps real elapsed time to simulated time. Cheap to copy; every simulated device shares one.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    /// The real instant at which simulated time began.
    origin: Instant,
    /// The simulated time at `origin`.
    sim_origin: DateTime<Utc>,
    /// Simulated seconds per real second.
    speed: f64,
}

impl SimClock {
    /// A clock starting now, at the present UTC time, running `speed` times faster than real time
    /// (values below 0.001 are raised to it).
    pub fn start(speed: f64) -> Self {
        Self::starting_at(Utc::now(), speed)
    }

    /// A clock starting now, at simulated time `sim_origin`.
    pub fn starting_at(sim_origin: DateTime<Utc>, speed: f64) -> Self {
        Self {
            origin: Instant::now(),
            sim_origin,
            speed: if speed.is_finite() {
                speed.max(0.001)
            } else {
                1.0
            },
        }
    }

    /// Simulated seconds per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The simulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.at(Instant::now())
    }

    /// The simulated time at real instant `instant`.
    pub fn at(&self, instant: Instant) -> DateTime<Utc> {
        let real = instant.saturating_duration_since(self.origin);
        let sim = real.as_secs_f64() * self.speed;
        let sim = chrono::Duration::milliseconds((sim * 1000.0).min(i64::MAX as f64 / 2.0) as i64);
        self.sim_origin + sim
    }

    /// Simulated time elapsed since the clock started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64((self.origin.elapsed().as_secs_f64() * self.speed).min(1e12))
    }

    /// The real time that `sim` of simulated time takes.
    pub fn real(&self, sim: Duration) -> Duration {
        Duration::from_secs_f64((sim.as_secs_f64() / self.speed).min(1e9))
    }

    /// This clock, shared, for the agents and the gateway.
    pub fn shared(&self) -> SharedClock {
        std::sync::Arc::new(*self)
    }

    /// Waits for `sim` of simulated time; false if `stop` came first.
    pub async fn sleep(&self, sim: Duration, stop: &CancellationToken) -> bool {
        tokio::select! {
            () = stop.cancelled() => false,
            () = tokio::time::sleep(self.real(sim)) => true,
        }
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> TimestampMs {
        self.now().timestamp_millis()
    }

    fn monotonic_ms(&self, earlier: std::time::Instant, later: std::time::Instant) -> u64 {
        let real = later.saturating_duration_since(earlier).as_secs_f64();
        // Saturates at u64::MAX, as a real clock's reading does.
        (real * self.speed * 1000.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn simulated_time_runs_speed_times_faster() {
        let origin = DateTime::parse_from_rfc3339("2026-01-13T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = SimClock::starting_at(origin, 60.0);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clock.now(), origin + chrono::Duration::minutes(10));
        assert_eq!(clock.now_ms(), clock.now().timestamp_millis());
        let earlier = std::time::Instant::now();
        assert_eq!(
            clock.monotonic_ms(earlier, earlier + Duration::from_secs(2)),
            120_000
        );
        assert_eq!(clock.elapsed(), Duration::from_secs(600));
        assert_eq!(clock.real(Duration::from_secs(120)), Duration::from_secs(2));
        assert!(
            clock
                .sleep(Duration::from_secs(60), &CancellationToken::new())
                .await
        );
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(!clock.sleep(Duration::from_secs(60), &stop).await);
    }
}
