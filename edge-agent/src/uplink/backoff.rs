//! Reconnection delays: exponential, capped, with jitter. rumqttc reconnects in a tight loop by
//! itself; a fleet of devices that lost the same broker must neither hammer it nor come back in
//! step, so each delay is drawn at random from its upper half ("equal jitter").

use std::time::Duration;

use rand::Rng;

/// The delay before each reconnection attempt. No I/O: the caller sleeps.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// The ceiling for the next delay; doubles after each failure, up to `max`.
    ceiling: Duration,
}

impl Backoff {
    /// Delays from `min`, doubling up to `max` (`max` is raised to `min` if below it).
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            ceiling: min,
        }
    }

    /// The delay before the next attempt: between half the current ceiling and the ceiling, never
    /// below `min`. The ceiling then doubles.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = ceiling.saturating_mul(2).min(self.max);
        let floor = (ceiling / 2).max(self.min).min(ceiling);
        if floor == ceiling {
            return ceiling;
        }
        rng.gen_range(floor..=ceiling)
    }

    /// Back to the shortest delay, after a successful connection.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(MIN, MAX);
        let mut ceiling = MIN;
        for _ in 0..20 {
            let delay = backoff.next_delay(&mut rng);
            assert!(delay <= ceiling, "{delay:?} over {ceiling:?}");
            assert!(
                delay >= (ceiling / 2).max(MIN),
                "{delay:?} under half of {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(MAX);
        }
        assert_eq!(ceiling, MAX);
    }

    #[test]
    fn jitter_spreads_a_fleet() {
        let delays: std::collections::BTreeSet<Duration> = (0..50)
            .map(|seed| {
                let mut backoff = Backoff::new(MIN, MAX);
                let mut rng = StdRng::seed_from_u64(seed);
                (0..6).map(|_| backoff.next_delay(&mut rng)).last().unwrap()
            })
            .collect();
        assert!(delays.len() > 40, "only {} distinct delays", delays.len());
    }

    #[test]
    fn reset_starts_again_from_the_minimum() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut backoff = Backoff::new(MIN, MAX);
        for _ in 0..10 {
            backoff.next_delay(&mut rng);
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(&mut rng), MIN);
    }
}
