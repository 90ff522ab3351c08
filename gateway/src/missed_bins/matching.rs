//! Matching a crew's confirmation to a property on the register: by UPRN when the record has one,
//! otherwise the nearest property on the record's round within a tolerance that allows for the
//! fix's reported accuracy.

use proto::Collection;
use serde::{Deserialize, Serialize};

use super::register::{LatLon, PropertyRegister};

/// How confirmations without a UPRN are placed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchConfig {
    /// How far (metres) a property may be from a perfect fix of the vehicle. UPRN coordinates sit
    /// on the building, the lorry in the road, so this is about a front garden and a carriageway.
    /// Default: 25.
    pub tolerance_m: f64,
    /// Fixes reporting a worse accuracy (metres) than this are not matched at all: they would
    /// land on a property by chance. Default: 50.
    pub max_accuracy_m: f64,
}

impl Default for MatchConfig {
    fn default() -> Self {
        Self {
            tolerance_m: 25.0,
            max_accuracy_m: 50.0,
        }
    }
}

impl MatchConfig {
    /// How far from a fix of this accuracy a property may be: the tolerance plus the accuracy,
    /// but never more than twice the tolerance. A fix that says it may be 8 m out earns 8 m more
    /// reach; one that says 40 m earns only the tolerance again, so a poor fix cannot claim a
    /// property several doors away.
    pub fn reach_m(&self, accuracy_m: f64) -> f64 {
        let accuracy = if accuracy_m.is_finite() {
            accuracy_m.max(0.0)
        } else {
            0.0
        };
        self.tolerance_m + accuracy.min(self.tolerance_m)
    }
}

/// Which property a confirmation is for, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum MatchOutcome {
    /// Matched to a property.
    Matched {
        /// The property's UPRN.
        uprn: u64,
        /// How.
        by: MatchedBy,
    },
    /// Not matched: kept and listed for supervisors.
    Unmatched {
        /// Why.
        reason: Unmatched,
    },
}

impl MatchOutcome {
    /// The matched UPRN, if any.
    pub fn uprn(&self) -> Option<u64> {
        match self {
            MatchOutcome::Matched { uprn, .. } => Some(*uprn),
            MatchOutcome::Unmatched { .. } => None,
        }
    }
}

/// How a confirmation was matched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum MatchedBy {
    /// The record carried the property's UPRN.
    Uprn,
    /// The nearest property on the round to the record's fix.
    Position {
        /// How far the fix was from the property, in metres.
        distance_m: f64,
    },
}

/// Why a confirmation matched no property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unmatched {
    /// The record's UPRN is not on the register. Not guessed from the position instead: a crew
    /// app sending unknown UPRNs means the register is out of date, which supervisors must see.
    UnknownUprn {
        /// The UPRN.
        uprn: u64,
    },
    /// The record's round has no properties (with positions) on the register.
    UnknownRound {
        /// The round.
        round: String,
    },
    /// The fix's accuracy was worse than [`MatchConfig::max_accuracy_m`].
    PoorAccuracy {
        /// The reported accuracy in metres.
        accuracy_m: f64,
    },
    /// The fix's coordinates are not a position.
    InvalidPosition,
    /// No property on the round that collects the stream lies within reach.
    NoPropertyWithin {
        /// The reach used, in metres ([`MatchConfig::reach_m`]).
        reach_m: f64,
    },
}

/// Matches a confirmation to a property. By position, only properties on the record's round that
/// collect the record's stream are candidates: a recycling lorry's lift sensor should not be
/// matched to the flats next door that only have communal refuse bins.
pub fn match_collection(
    register: &PropertyRegister,
    collection: &Collection,
    config: &MatchConfig,
) -> MatchOutcome {
    if let Some(uprn) = collection.uprn {
        return match register.get(uprn) {
            Some(_) => MatchOutcome::Matched {
                uprn,
                by: MatchedBy::Uprn,
            },
            None => MatchOutcome::Unmatched {
                reason: Unmatched::UnknownUprn { uprn },
            },
        };
    }
    let at = LatLon {
        lat: collection.pos.lat,
        lon: collection.pos.lon,
    };
    if !at.is_valid() {
        return unmatched(Unmatched::InvalidPosition);
    }
    let accuracy = f64::from(collection.pos.acc);
    // NaN or a negative accuracy is no accuracy at all.
    let usable = (0.0..=config.max_accuracy_m).contains(&accuracy);
    if !usable {
        return unmatched(Unmatched::PoorAccuracy {
            accuracy_m: accuracy,
        });
    }
    if !register.has_positions_on(&collection.round) {
        return unmatched(Unmatched::UnknownRound {
            round: collection.round.clone(),
        });
    }
    let reach = config.reach_m(accuracy);
    match register.nearest_on_round(&collection.round, at, reach, |p| {
        p.collects(collection.stream)
    }) {
        Some((property, distance_m)) => MatchOutcome::Matched {
            uprn: property.uprn,
            by: MatchedBy::Position { distance_m },
        },
        None => unmatched(Unmatched::NoPropertyWithin { reach_m: reach }),
    }
}

fn unmatched(reason: Unmatched) -> MatchOutcome {
    MatchOutcome::Unmatched { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::register::tests::property;
    use proto::{BinStream, Outcome, Position};

    const LAT: f64 = 51.5620;
    const LON: f64 = -0.4470;
    /// Degrees of latitude per metre, near enough for placing test fixes.
    const PER_M: f64 = 1.0 / 111_195.0;

    fn register() -> PropertyRegister {
        let mut flats = property(3, "R1", 3, LAT + 200.0 * PER_M, LON);
        flats.streams = vec![BinStream::Refuse];
        PropertyRegister::from_properties([
            property(1, "R1", 1, LAT, LON),
            property(2, "R1", 2, LAT + 100.0 * PER_M, LON),
            flats,
            property(9, "R2", 1, LAT + 10.0 * PER_M, LON),
        ])
    }

    fn fix(north_m: f64, acc: f32, uprn: Option<u64>, round: &str) -> Collection {
        Collection {
            uprn,
            stream: BinStream::Refuse,
            outcome: Outcome::Collected,
            pos: Position {
                lat: LAT + north_m * PER_M,
                lon: LON,
                acc,
            },
            vehicle: "RCV07".to_owned(),
            round: round.to_owned(),
            job: None,
            photo: None,
            note: None,
        }
    }

    fn distance(outcome: &MatchOutcome) -> f64 {
        match outcome {
            MatchOutcome::Matched {
                by: MatchedBy::Position { distance_m },
                ..
            } => *distance_m,
            other => panic!("not matched by position: {other:?}"),
        }
    }

    #[test]
    fn by_uprn_when_the_record_has_one_even_far_away() {
        let outcome = match_collection(
            &register(),
            &fix(5000.0, 3.0, Some(2), "R1"),
            &MatchConfig::default(),
        );
        assert_eq!(
            outcome,
            MatchOutcome::Matched {
                uprn: 2,
                by: MatchedBy::Uprn
            }
        );
    }

    #[test]
    fn unknown_uprn_is_unmatched_not_guessed() {
        let outcome = match_collection(
            &register(),
            &fix(0.0, 3.0, Some(77), "R1"),
            &MatchConfig::default(),
        );
        assert_eq!(outcome, unmatched(Unmatched::UnknownUprn { uprn: 77 }));
    }

    #[test]
    fn nearest_on_the_round_within_tolerance() {
        let config = MatchConfig::default();
        let outcome = match_collection(&register(), &fix(20.0, 0.0, None, "R1"), &config);
        assert_eq!(outcome.uprn(), Some(1));
        assert!((distance(&outcome) - 20.0).abs() < 0.5);
        // 30 m away with a perfect fix: beyond 25 m.
        let outcome = match_collection(&register(), &fix(-30.0, 0.0, None, "R1"), &config);
        assert_eq!(
            outcome,
            unmatched(Unmatched::NoPropertyWithin { reach_m: 25.0 })
        );
    }

    #[test]
    fn accuracy_extends_the_reach_up_to_twice_the_tolerance() {
        let config = MatchConfig::default();
        // 30 m away, fix accurate to 8 m: reach 33 m.
        let outcome = match_collection(&register(), &fix(-30.0, 8.0, None, "R1"), &config);
        assert_eq!(outcome.uprn(), Some(1));
        // 45 m away, fix accurate to 40 m: reach capped at 50 m, so matched...
        let outcome = match_collection(&register(), &fix(-45.0, 40.0, None, "R1"), &config);
        assert_eq!(outcome.uprn(), Some(1));
        // ...but 55 m is beyond even that.
        let outcome = match_collection(&register(), &fix(-55.0, 40.0, None, "R1"), &config);
        assert_eq!(
            outcome,
            unmatched(Unmatched::NoPropertyWithin { reach_m: 50.0 })
        );
        assert_eq!(config.reach_m(f64::NAN), 25.0);
        assert_eq!(config.reach_m(-3.0), 25.0);
    }

    #[test]
    fn very_poor_or_missing_accuracy_is_not_matched() {
        let config = MatchConfig::default();
        let outcome = match_collection(&register(), &fix(0.0, 120.0, None, "R1"), &config);
        assert_eq!(
            outcome,
            unmatched(Unmatched::PoorAccuracy { accuracy_m: 120.0 })
        );
        let outcome = match_collection(&register(), &fix(0.0, f32::NAN, None, "R1"), &config);
        assert!(matches!(
            outcome,
            MatchOutcome::Unmatched {
                reason: Unmatched::PoorAccuracy { .. }
            }
        ));
        let outcome = match_collection(&register(), &fix(0.0, -1.0, None, "R1"), &config);
        assert!(matches!(
            outcome,
            MatchOutcome::Unmatched {
                reason: Unmatched::PoorAccuracy { .. }
            }
        ));
    }

    #[test]
    fn only_properties_on_the_records_round() {
        let config = MatchConfig::default();
        // Property 9 on R2 is 1 m from this fix, but the record is from round R1, whose nearest
        // property is 9 m away.
        let outcome = match_collection(&register(), &fix(9.0, 0.0, None, "R1"), &config);
        assert_eq!(outcome.uprn(), Some(1));
        let outcome = match_collection(&register(), &fix(10.0, 0.0, None, "R2"), &config);
        assert_eq!(outcome.uprn(), Some(9));
        // The same fix from a round that is not on the register.
        let outcome = match_collection(&register(), &fix(10.0, 0.0, None, "R3"), &config);
        assert_eq!(
            outcome,
            unmatched(Unmatched::UnknownRound {
                round: "R3".to_owned()
            })
        );
        // R2 has nothing near property 2.
        let outcome = match_collection(&register(), &fix(100.0, 0.0, None, "R2"), &config);
        assert!(outcome.uprn().is_none());
    }

    #[test]
    fn only_properties_that_collect_the_stream() {
        let config = MatchConfig::default();
        let mut recycling = fix(200.0, 0.0, None, "R1");
        recycling.stream = BinStream::Recycling;
        // Property 3 (refuse only) is right there; property 2 is 100 m away.
        assert!(match_collection(&register(), &recycling, &config)
            .uprn()
            .is_none());
        let refuse = fix(200.0, 0.0, None, "R1");
        assert_eq!(
            match_collection(&register(), &refuse, &config).uprn(),
            Some(3)
        );
    }

    #[test]
    fn invalid_coordinates_are_not_matched() {
        let mut record = fix(0.0, 3.0, None, "R1");
        record.pos.lat = 95.0;
        assert_eq!(
            match_collection(&register(), &record, &MatchConfig::default()),
            unmatched(Unmatched::InvalidPosition)
        );
    }
}
