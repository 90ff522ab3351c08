//! Matching to a property on the register: a crew's confirmation ([`match_collection`]) by UPRN
//! when the record has one, otherwise the nearest property on the record's round within a
//! tolerance that allows for the fix's reported accuracy; and a resident's report
//! ([`place_report`]) by UPRN, pin or address, preferring a property that has the missed bin.

use proto::{BinStream, Collection};
use serde::{Deserialize, Serialize};

use super::register::{LatLon, Property, PropertyRegister};

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

/// Where a resident says a report is about, as a front end sent it: any of the three, tried in
/// this order, the first that names one property winning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportPlace<'a> {
    /// The property's UPRN (Open311 `address_id`, or FixMyStreet's `attribute[uprn]`).
    pub uprn: Option<u64>,
    /// The resident's pin.
    pub pin: Option<LatLon>,
    /// The address the resident typed or chose (Open311 `address_string`).
    pub address: Option<&'a str>,
}

/// How a report was placed on a property.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlacedBy {
    /// Its UPRN is on the register.
    Uprn,
    /// The pin: the nearest property within reach that collects the stream, or, if none does,
    /// the nearest property (whose report the rules will then refuse with the reason).
    Pin {
        /// How far the pin was from the property, in metres.
        distance_m: f64,
        /// Whether the property collects the report's stream.
        collects_stream: bool,
    },
    /// The address matched this property alone.
    Address,
}

/// Why one of a report's locations named no property.
#[derive(Debug, Clone, PartialEq)]
pub enum NotPlaced {
    /// The UPRN is not on the register.
    UnknownUprn {
        /// The UPRN.
        uprn: u64,
    },
    /// No property lies within reach of the pin.
    NoPropertyNearPin {
        /// The reach, in metres ([`MatchConfig::report_reach_m`]).
        reach_m: f64,
    },
    /// The address matched no property.
    UnknownAddress,
    /// The address matched several properties and none stands out.
    AmbiguousAddress {
        /// How many it matched (counted up to [`MAX_ADDRESS_CANDIDATES`]).
        matches: usize,
    },
    /// No location at all.
    NoLocation,
}

/// How many properties an address is compared against before it is called ambiguous.
pub const MAX_ADDRESS_CANDIDATES: usize = 20;

impl MatchConfig {
    /// How far from a resident's pin a property may be: twice the tolerance (50 m by default),
    /// as a pin dropped on the pavement or the road is as far out as a lorry's fix.
    pub fn report_reach_m(&self) -> f64 {
        2.0 * self.tolerance_m
    }
}

/// Places a resident's report on a property: the UPRN if it is on the register; else the pin,
/// preferring within reach a property that collects `stream` over a nearer one that does not
/// (houses are about 20 m apart, a pin in the road is as near the neighbour); else the address
/// if it names one property (or one among several that collects `stream`). On failure, why each
/// location given named no property, in that order.
pub fn place_report(
    register: &PropertyRegister,
    place: &ReportPlace<'_>,
    stream: BinStream,
    config: &MatchConfig,
) -> Result<(u64, PlacedBy), Vec<NotPlaced>> {
    let mut why = Vec::new();
    if let Some(uprn) = place.uprn {
        if register.get(uprn).is_some() {
            return Ok((uprn, PlacedBy::Uprn));
        }
        why.push(NotPlaced::UnknownUprn { uprn });
    }
    if let Some(pin) = place.pin.filter(|pin| pin.is_valid()) {
        let reach = config.report_reach_m();
        let with_stream = register.nearest_where(pin, reach, |p| p.collects(stream));
        let nearest = with_stream.or_else(|| register.nearest(pin, reach));
        if let Some((property, distance_m)) = nearest {
            let placed = PlacedBy::Pin {
                distance_m,
                collects_stream: property.collects(stream),
            };
            return Ok((property.uprn, placed));
        }
        why.push(NotPlaced::NoPropertyNearPin { reach_m: reach });
    }
    if let Some(address) = place.address {
        let found = register.find_by_address(address, MAX_ADDRESS_CANDIDATES);
        let collecting: Vec<&Property> = found
            .iter()
            .copied()
            .filter(|p| p.collects(stream))
            .collect();
        match (found.as_slice(), collecting.as_slice()) {
            ([only], _) | (_, [only]) => return Ok((only.uprn, PlacedBy::Address)),
            ([], _) => why.push(NotPlaced::UnknownAddress),
            (several, _) => why.push(NotPlaced::AmbiguousAddress {
                matches: several.len(),
            }),
        }
    }
    if why.is_empty() {
        why.push(NotPlaced::NoLocation);
    }
    Err(why)
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

    fn place(uprn: Option<u64>, north_m: Option<f64>, address: Option<&str>) -> ReportPlace<'_> {
        ReportPlace {
            uprn,
            pin: north_m.map(|m| LatLon {
                lat: LAT + m * PER_M,
                lon: LON,
            }),
            address,
        }
    }

    #[test]
    fn a_report_by_a_known_uprn_wherever_the_pin() {
        let placed = place_report(
            &register(),
            &place(Some(2), Some(5000.0), None),
            BinStream::Refuse,
            &MatchConfig::default(),
        );
        assert_eq!(placed, Ok((2, PlacedBy::Uprn)));
    }

    #[test]
    fn an_unknown_uprn_falls_back_to_the_pin_then_the_address() {
        let config = MatchConfig::default();
        let by_pin = place_report(
            &register(),
            &place(Some(77), Some(3.0), None),
            BinStream::Refuse,
            &config,
        )
        .unwrap();
        assert_eq!(by_pin.0, 1);
        let by_address = place_report(
            &register(),
            &place(Some(77), Some(5000.0), Some("2 Test Road")),
            BinStream::Refuse,
            &config,
        );
        assert_eq!(by_address, Ok((2, PlacedBy::Address)));
        let nowhere = place_report(
            &register(),
            &place(Some(77), Some(5000.0), Some("9 Nowhere Lane")),
            BinStream::Refuse,
            &config,
        );
        assert_eq!(
            nowhere,
            Err(vec![
                NotPlaced::UnknownUprn { uprn: 77 },
                NotPlaced::NoPropertyNearPin { reach_m: 50.0 },
                NotPlaced::UnknownAddress,
            ])
        );
        assert_eq!(
            place_report(
                &register(),
                &place(None, None, None),
                BinStream::Refuse,
                &config
            ),
            Err(vec![NotPlaced::NoLocation])
        );
    }

    #[test]
    fn a_pin_prefers_a_property_with_the_bin_over_a_nearer_one_without() {
        let config = MatchConfig::default();
        // Flats (3, refuse only) at 200 m; a recycling report pinned 20 m from them and 25 m
        // from a house that has recycling on its round.
        let mut house = property(4, "R1", 4, LAT + 245.0 * PER_M, LON);
        house.streams = vec![BinStream::Recycling];
        let mut with_house = register();
        with_house.insert(house);
        let recycling = place_report(
            &with_house,
            &place(None, Some(220.0), None),
            BinStream::Recycling,
            &config,
        )
        .unwrap();
        assert_eq!(recycling.0, 4);
        assert!(matches!(
            recycling.1,
            PlacedBy::Pin {
                collects_stream: true,
                ..
            }
        ));
        // Refuse goes to the flats, which are nearer and have it.
        let refuse = place_report(
            &with_house,
            &place(None, Some(220.0), None),
            BinStream::Refuse,
            &config,
        );
        assert_eq!(refuse.unwrap().0, 3);
        // With no property within reach that has the bin, the nearest: the rules refuse it
        // with the reason, which tells the resident more than an error would.
        let garden = place_report(
            &with_house,
            &place(None, Some(220.0), None),
            BinStream::Garden,
            &config,
        )
        .unwrap();
        assert_eq!(garden.0, 3);
        assert!(matches!(
            garden.1,
            PlacedBy::Pin {
                collects_stream: false,
                ..
            }
        ));
    }

    #[test]
    fn a_pin_beyond_reach_of_every_property_is_not_placed() {
        let placed = place_report(
            &register(),
            &place(None, Some(-60.0), None),
            BinStream::Refuse,
            &MatchConfig::default(),
        );
        assert_eq!(
            placed,
            Err(vec![NotPlaced::NoPropertyNearPin { reach_m: 50.0 }])
        );
    }

    #[test]
    fn an_address_alone_must_name_one_property_or_one_with_the_bin() {
        let config = MatchConfig::default();
        let ambiguous = place_report(
            &register(),
            &place(None, None, Some("Test Road, Ickenham")),
            BinStream::Refuse,
            &config,
        );
        // Properties 1, 2, 3 and 9 are all on Test Road and all have refuse.
        assert_eq!(
            ambiguous,
            Err(vec![NotPlaced::AmbiguousAddress { matches: 4 }])
        );
        // One Test Road property has glass: a glass report with that street is its.
        let mut glass = property(5, "R1", 5, LAT, LON);
        glass.address = "5 Test Road, Ickenham".into();
        glass.streams = vec![BinStream::Glass];
        let mut with_glass = register();
        with_glass.insert(glass);
        assert_eq!(
            place_report(
                &with_glass,
                &place(None, None, Some("Test Road")),
                BinStream::Glass,
                &config,
            ),
            Ok((5, PlacedBy::Address))
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
