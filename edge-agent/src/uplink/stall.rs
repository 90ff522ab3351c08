//! Noticing a link that has stopped forwarding without closing (a cab in a coverage hole that
//! keeps the TCP connection, a NAT that drops state): the gateway's acks stop coming while batches
//! are in flight. MQTT's keep-alive would notice only after one and a half keep-alive periods
//! (~50 s); the ack timing notices within a few round trips. No I/O: time comes in as arguments.
//!
//! Each published batch is remembered with its last sequence number and when it went; an ack
//! through N retires every batch up to N and gives a round-trip sample. The bound is TCP's
//! retransmission timeout over those samples (smoothed round trip plus four deviations, RFC 6298),
//! doubled for the gateway's own pauses, and kept within [`MIN_BOUND`] and [`MAX_BOUND`]. The link
//! is stalled when the oldest unacked batch has waited longer than the bound, counted from when it
//! was sent or from the last ack, whichever is later (a backlog queued behind a slow window is not
//! a stall while acks keep coming).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The shortest stall bound by default (`uplink.stall_min_ms`): a few round trips of a slow 4G
/// link.
pub const MIN_BOUND: Duration = Duration::from_secs(2);
/// The longest: under MQTT's keep-alive, which would notice anyway.
pub const MAX_BOUND: Duration = Duration::from_secs(20);
/// The bound before any round trip has been seen.
pub const INITIAL_BOUND: Duration = Duration::from_secs(5);
/// Batches remembered at most (the MQTT in-flight window is far smaller; the rest are acked).
const MAX_OUTSTANDING: usize = 1024;

/// A link that has stopped acking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// How long the oldest batch has waited without an ack.
    pub waited: Duration,
    /// The bound it passed.
    pub bound: Duration,
    /// Batches in flight.
    pub batches: usize,
}

/// The ack timing of one connection.
#[derive(Debug)]
pub struct StallDetector {
    /// The shortest bound.
    min: Duration,
    /// Published batches not yet acked: (last sequence number, when sent).
    outstanding: VecDeque<(u64, Instant)>,
    /// When the last ack that retired a batch arrived.
    last_progress: Option<Instant>,
    /// Smoothed round trip and its mean deviation, once sampled.
    srtt: Option<(Duration, Duration)>,
}

impl Default for StallDetector {
    fn default() -> Self {
        Self::new(MIN_BOUND)
    }
}

impl StallDetector {
    /// A detector whose bound is never below `min` (nor above `max(min, MAX_BOUND)`).
    pub fn new(min: Duration) -> Self {
        Self {
            min,
            outstanding: VecDeque::new(),
            last_progress: None,
            srtt: None,
        }
    }

    /// A batch ending at `last_seq` was published at `now`.
    pub fn on_published(&mut self, last_seq: u64, now: Instant) {
        if self.outstanding.len() == MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((last_seq, now));
    }

    /// An ack through `thru` arrived at `now`.
    pub fn on_ack(&mut self, thru: u64, now: Instant) {
        let mut newest_sent = None;
        while let Some(&(last_seq, sent)) = self.outstanding.front() {
            if last_seq > thru {
                break;
            }
            self.outstanding.pop_front();
            newest_sent = Some(sent);
        }
        if let Some(sent) = newest_sent {
            self.sample(now.saturating_duration_since(sent));
            self.last_progress = Some(now);
        }
    }

    /// A new connection: nothing is in flight on it yet; round trips learnt so far still hold.
    pub fn reset(&mut self) {
        self.outstanding.clear();
        self.last_progress = None;
    }

    /// How long a batch may wait for its ack before the link counts as stalled.
    pub fn bound(&self) -> Duration {
        let max = MAX_BOUND.max(self.min);
        match self.srtt {
            None => INITIAL_BOUND.clamp(self.min, max),
            Some((srtt, rttvar)) => (srtt + rttvar * 4).saturating_mul(2).clamp(self.min, max),
        }
    }

    /// The stall at `now`, if the oldest unacked batch has waited past the bound.
    pub fn check(&self, now: Instant) -> Option<Stall> {
        let &(_, sent) = self.outstanding.front()?;
        let since = self
            .last_progress
            .map_or(sent, |progress| progress.max(sent));
        let waited = now.saturating_duration_since(since);
        let bound = self.bound();
        (waited > bound).then_some(Stall {
            waited,
            bound,
            batches: self.outstanding.len(),
        })
    }

    /// The smoothed round trip, once sampled.
    pub fn round_trip(&self) -> Option<Duration> {
        self.srtt.map(|(srtt, _)| srtt)
    }

    /// RFC 6298's estimator: alpha 1/8, beta 1/4.
    fn sample(&mut self, rtt: Duration) {
        self.srtt = Some(match self.srtt {
            None => (rtt, rtt / 2),
            Some((srtt, rttvar)) => {
                let deviation = srtt.abs_diff(rtt);
                (srtt * 7 / 8 + rtt / 8, rttvar * 3 / 4 + deviation / 4)
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn acks_that_keep_coming_are_no_stall_however_deep_the_backlog() {
        let start = Instant::now();
        let mut detector = StallDetector::default();
        for batch in 1..=100u64 {
            let now = start + ms(batch * 50);
            detector.on_published(batch * 10, now);
            // Each ack comes 40 ms after its batch, with three more batches queued behind.
            detector.on_ack(batch.saturating_sub(3) * 10, now + ms(40));
            assert_eq!(detector.check(now + ms(45)), None);
        }
        assert_eq!(detector.bound(), MIN_BOUND, "fast round trips: the floor");
    }

    #[test]
    fn no_ack_within_the_bound_is_a_stall() {
        let start = Instant::now();
        let mut detector = StallDetector::default();
        detector.on_published(10, start);
        detector.on_ack(10, start + ms(40));
        detector.on_published(20, start + ms(100));
        detector.on_published(30, start + ms(110));
        assert_eq!(detector.check(start + ms(100) + MIN_BOUND), None);
        let stall = detector.check(start + ms(101) + MIN_BOUND).unwrap();
        assert_eq!((stall.batches, stall.bound), (2, MIN_BOUND));
        // A reconnect forgets what was in flight.
        detector.reset();
        assert_eq!(detector.check(start + Duration::from_secs(60)), None);
    }

    #[test]
    fn slow_round_trips_widen_the_bound_up_to_its_cap() {
        let start = Instant::now();
        let mut detector = StallDetector::default();
        assert_eq!(detector.bound(), INITIAL_BOUND);
        for n in 0..20u64 {
            let sent = start + Duration::from_secs(n * 10);
            detector.on_published(n, sent);
            detector.on_ack(n, sent + Duration::from_secs(3));
        }
        let bound = detector.bound();
        assert!(
            bound >= Duration::from_secs(6) && bound <= MAX_BOUND,
            "{bound:?}"
        );
        assert!(detector.round_trip().unwrap() > Duration::from_millis(2_900));
        for n in 20..40u64 {
            let sent = start + Duration::from_secs(n * 100);
            detector.on_published(n, sent);
            detector.on_ack(n, sent + Duration::from_secs(60));
        }
        assert_eq!(detector.bound(), MAX_BOUND);
    }

    #[test]
    fn a_raised_floor_holds_before_and_after_round_trips_are_seen() {
        let start = Instant::now();
        let floor = Duration::from_secs(8);
        let mut detector = StallDetector::new(floor);
        assert_eq!(detector.bound(), floor, "above the initial bound");
        detector.on_published(10, start);
        detector.on_ack(10, start + ms(30));
        assert_eq!(detector.bound(), floor);
        detector.on_published(20, start + ms(100));
        assert_eq!(detector.check(start + ms(100) + MIN_BOUND * 2), None);
        assert!(detector.check(start + ms(101) + floor).is_some());
    }
}
