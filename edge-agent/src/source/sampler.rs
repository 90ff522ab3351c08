//! The sampler: keeps the latest value of each field and makes one [`Telemetry`] sample when
//! asked. Pure state over explicit instants, so its rules are tested without a clock; the task in
//! `run` decides when to ask.
//!
//! # Rules
//!
//! - Each field carries its latest value into every sample, whatever kind of value it is
//!   (temperatures, flags, counters): an OpenTherm thermostat polls some ids only every minute or
//!   so, and a sample should not lose them between polls.
//! - A value older than [`STALE_AFTER_INTERVALS`] sampling intervals is stale and left out
//!   (`None`): the gateway then sees that the boiler stopped reporting it (a sensor failed, the
//!   OTGW link dropped) instead of a frozen value. A value exactly that old is still included.
//! - A sample with no fresh value at all is not made: silence shows as missing samples, which the
//!   gateway alerts on, and the hub's health records show the hub itself is alive.
//! - `inval` and `unsup` list the data ids whose latest fresh answer was Data-Invalid or
//!   Unknown-DataId; a valid answer after a refusal takes the id off.

use std::time::Duration;

use proto::Telemetry;
use tokio::time::Instant;

use super::reading::SLOTS;
use super::Reading;

/// How many sampling intervals a value stays fresh.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// The latest value of each field, and when it arrived.
#[derive(Debug, Clone)]
pub struct Sampler {
    asset: String,
    latest: [Option<(Reading, Instant)>; SLOTS],
    /// A reading arrived since the last sample.
    new: bool,
}

impl Sampler {
    /// A sampler for the boiler `asset`; refuses an id proto would refuse.
    pub fn new(asset: impl Into<String>) -> Result<Self, proto::Invalid> {
        let asset = asset.into();
        proto::validate::check_id("asset", &asset)?;
        Ok(Self {
            asset,
            latest: [None; SLOTS],
            new: false,
        })
    }

    /// The asset id samples carry.
    pub fn asset(&self) -> &str {
        &self.asset
    }

    /// Keeps `reading` as its field's latest value, received at `at`.
    pub fn record(&mut self, reading: Reading, at: Instant) {
        self.latest[reading.slot()] = Some((reading, at));
        self.new = true;
    }

    /// Whether a reading arrived since the last [`Sampler::sample`].
    pub fn has_new(&self) -> bool {
        self.new
    }

    /// A sample of every value received within [`STALE_AFTER_INTERVALS`] × `interval` before
    /// `now`; `None` if there is none. Stale values are forgotten.
    pub fn sample(&mut self, now: Instant, interval: Duration) -> Option<Telemetry> {
        let max_age = interval.saturating_mul(STALE_AFTER_INTERVALS);
        let mut sample = Telemetry {
            asset: self.asset.clone(),
            ..Telemetry::default()
        };
        let mut any = false;
        for slot in &mut self.latest {
            if let Some((reading, at)) = slot {
                if now.saturating_duration_since(*at) <= max_age {
                    reading.apply(&mut sample);
                    any = true;
                } else {
                    *slot = None;
                }
            }
        }
        self.new = false;
        any.then_some(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_latest_value_of_each_field_wins() {
        let t0 = Instant::now();
        let mut sampler = Sampler::new("B-1").unwrap();
        sampler.record(Reading::Flow(50.0), t0);
        sampler.record(Reading::Flame(true), t0);
        sampler.record(Reading::Flow(55.0), t0 + Duration::from_secs(5));
        sampler.record(Reading::BurnerStarts(10), t0 + Duration::from_secs(6));
        let sample = sampler.sample(t0 + MINUTE, MINUTE).unwrap();
        assert_eq!(
            sample,
            Telemetry {
                asset: "B-1".into(),
                flow: Some(55.0),
                flame: Some(true),
                starts: Some(10),
                ..Telemetry::default()
            }
        );
    }

    #[test]
    fn values_carry_until_stale() {
        let t0 = Instant::now();
        let mut sampler = Sampler::new("B-1").unwrap();
        sampler.record(Reading::Pressure(1.5), t0);
        sampler.record(Reading::BurnerHours(3900), t0 + MINUTE);
        assert!(sampler.has_new());
        let first = sampler.sample(t0 + MINUTE, MINUTE).unwrap();
        assert!(!sampler.has_new());
        assert_eq!((first.bar, first.hours), (Some(1.5), Some(3900)));
        // Exactly three intervals old: still carried.
        let third = sampler.sample(t0 + 3 * MINUTE, MINUTE).unwrap();
        assert_eq!((third.bar, third.hours), (Some(1.5), Some(3900)));
        // Older: left out, while the newer counter is still carried.
        let fourth = sampler.sample(t0 + 3 * MINUTE + Duration::from_millis(1), MINUTE);
        let fourth = fourth.unwrap();
        assert_eq!((fourth.bar, fourth.hours), (None, Some(3900)));
        // Nothing fresh: no sample.
        assert_eq!(sampler.sample(t0 + 10 * MINUTE, MINUTE), None);
        // And forgotten: a longer interval does not bring it back.
        assert_eq!(sampler.sample(t0 + 10 * MINUTE, 10 * MINUTE), None);
    }

    #[test]
    fn staleness_follows_the_current_interval() {
        let t0 = Instant::now();
        let mut sampler = Sampler::new("B-1").unwrap();
        sampler.record(Reading::Return(40.0), t0);
        let at = t0 + Duration::from_secs(40);
        assert_eq!(sampler.clone().sample(at, Duration::from_secs(10)), None);
        assert!(sampler.sample(at, Duration::from_secs(15)).is_some());
    }

    #[test]
    fn fault_and_diagnostic_codes_are_apart() {
        let t0 = Instant::now();
        let mut sampler = Sampler::new("B-1").unwrap();
        sampler.record(Reading::OemDiagnostic(258), t0);
        sampler.record(Reading::OemFault(133), t0);
        let sample = sampler.sample(t0, MINUTE).unwrap();
        assert_eq!((sample.oem, sample.odiag), (Some(133), Some(258)));
    }

    #[test]
    fn answers_list_invalid_and_unsupported_ids_until_valid_or_stale() {
        use crate::source::Answer;
        let t0 = Instant::now();
        let mut sampler = Sampler::new("B-1").unwrap();
        sampler.record(Reading::Answer(28, Answer::Invalid), t0);
        sampler.record(Reading::Answer(18, Answer::Invalid), t0);
        sampler.record(Reading::Answer(27, Answer::Unsupported), t0);
        let sample = sampler.sample(t0, MINUTE).unwrap();
        assert_eq!((sample.inval, sample.unsup), (vec![18, 28], vec![27]));
        // The return sensor recovers: off the list at once.
        sampler.record(Reading::Answer(28, Answer::Valid), t0 + MINUTE);
        sampler.record(Reading::Return(45.0), t0 + MINUTE);
        let sample = sampler.sample(t0 + MINUTE, MINUTE).unwrap();
        assert_eq!((sample.inval, sample.ret), (vec![18], Some(45.0)));
        // Refusals not repeated for longer than the staleness go too.
        let sample = sampler.sample(t0 + 4 * MINUTE, MINUTE).unwrap();
        assert!(sample.inval.is_empty() && sample.unsup.is_empty());
    }

    #[test]
    fn refuses_an_invalid_asset_id() {
        assert_eq!(Sampler::new("").unwrap_err().field, "asset");
        assert!(Sampler::new("x".repeat(65)).is_err());
        assert_eq!(Sampler::new("B-1").unwrap().asset(), "B-1");
    }
}
