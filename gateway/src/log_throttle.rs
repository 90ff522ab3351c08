//! Rate-limited logging for what outsiders can repeat at will (refused messages, batches from
//! devices nobody provisioned): the first occurrence after a quiet spell is logged at once, then
//! at most one line per interval, each saying how many occurrences it stands for. A flood costs
//! a few lines a minute, not one per message. Pure bookkeeping over the caller's clock.

use std::collections::HashMap;
use std::hash::Hash;

use proto::TimestampMs;

/// One kind of event's throttle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttle {
    /// When the last logged occurrence was.
    last_logged: Option<TimestampMs>,
    /// Occurrences since then that were not logged.
    suppressed: u64,
}

impl Throttle {
    /// Notes an occurrence at `now`. `Some(n)` means log this one, standing for itself and the
    /// `n` before it that were not logged; `None` means stay quiet.
    pub fn hit(&mut self, now: TimestampMs, every_ms: i64) -> Option<u64> {
        match self.last_logged {
            Some(last) if now.saturating_sub(last) < every_ms => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// A throttle per key (a device, say), for at most `max_keys` keys: beyond that, keys share one
/// throttle, so that ever new keys cannot grow the map.
#[derive(Debug, Clone)]
pub struct KeyedThrottle<K> {
    every_ms: i64,
    max_keys: usize,
    keys: HashMap<K, Throttle>,
    overflow: Throttle,
}

impl<K: Eq + Hash + Clone> KeyedThrottle<K> {
    /// At most one line per key per `every_ms`, for up to `max_keys` keys.
    pub fn new(every_ms: i64, max_keys: usize) -> Self {
        Self {
            every_ms,
            max_keys,
            keys: HashMap::new(),
            overflow: Throttle::default(),
        }
    }

    /// Notes an occurrence for `key` at `now`; see [`Throttle::hit`].
    pub fn hit(&mut self, key: &K, now: TimestampMs) -> Option<u64> {
        if !self.keys.contains_key(key) && self.keys.len() >= self.max_keys {
            return self.overflow.hit(now, self.every_ms);
        }
        self.keys
            .entry(key.clone())
            .or_default()
            .hit(now, self.every_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_the_first_then_one_summary_per_interval() {
        let mut throttle = Throttle::default();
        let mut logged = Vec::new();
        // 2,000 occurrences over 3 s, 1.5 ms apart, with a one-second interval.
        for i in 0..2_000 {
            if let Some(before) = throttle.hit(i * 3 / 2, 1_000) {
                logged.push(before);
            }
        }
        assert_eq!(logged, [0, 666, 666]);
        // After a quiet spell the next one is logged at once, with what was left unlogged: every
        // occurrence is accounted for by some line.
        assert_eq!(throttle.hit(60_000, 1_000), Some(665));
    }

    #[test]
    fn keys_beyond_the_cap_share_a_throttle() {
        let mut throttle = KeyedThrottle::new(1_000, 2);
        assert_eq!(throttle.hit(&"a", 0), Some(0));
        assert_eq!(throttle.hit(&"b", 0), Some(0));
        assert_eq!(throttle.hit(&"a", 1), None);
        assert_eq!(throttle.hit(&"c", 2), Some(0));
        assert_eq!(throttle.hit(&"d", 3), None, "c and d share the overflow");
    }
}
