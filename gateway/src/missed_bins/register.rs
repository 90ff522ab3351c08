//! The property register: every property the council collects from, by UPRN, with an R-tree of
//! positions per round so that a confirmation without a UPRN finds its nearest property quickly.

use std::collections::{BTreeMap, HashMap};

use geo::{Distance, Haversine, Point};
use proto::BinStream;
use rstar::primitives::GeomWithData;
use rstar::{RTree, AABB};
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;

/// A WGS84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude, −90 to 90.
    pub lat: f64,
    /// Longitude, −180 to 180.
    pub lon: f64,
}

impl LatLon {
    /// Whether both coordinates are finite and in range.
    pub fn is_valid(self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }

    /// The great-circle (haversine) distance to `other`, in metres.
    pub fn distance_m(self, other: LatLon) -> f64 {
        Haversine.distance(self.point(), other.point())
    }

    fn point(self) -> Point<f64> {
        Point::new(self.lon, self.lat)
    }
}

/// One property on the register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Property {
    /// Unique Property Reference Number (up to 12 digits).
    pub uprn: u64,
    /// The postal address, for crews and residents.
    pub address: String,
    /// Where the property is (the UPRN's coordinates).
    pub position: LatLon,
    /// The round that collects it.
    pub round: String,
    /// Its place on the round: the crew reaches lower numbers first. Properties may share a
    /// number (flats in one block).
    pub order: u32,
    /// Its collection days.
    pub schedule: Schedule,
    /// The bins collected there.
    pub streams: Vec<BinStream>,
}

impl Property {
    /// Whether the council collects `stream` at this property.
    pub fn collects(&self, stream: BinStream) -> bool {
        self.streams.contains(&stream)
    }
}

/// A property's position in a round's R-tree: `[lon, lat]` in degrees, with its UPRN.
type Located = GeomWithData<[f64; 2], u64>;

/// The register: properties by UPRN, and an R-tree of positions per round.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Property>", into = "Vec<Property>")]
pub struct PropertyRegister {
    /// Ordered so that listings and the persisted form are stable.
    by_uprn: BTreeMap<u64, Property>,
    /// The positions of each round's properties. A property whose position is invalid is left
    /// out, so it can be matched only by UPRN.
    rounds: HashMap<String, RTree<Located>>,
}

/// Metres in one degree of latitude on the sphere that `Haversine` uses (GRS80 mean radius).
const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

impl PropertyRegister {
    /// An empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// A register holding `properties`; a later property with the same UPRN replaces an earlier.
    pub fn from_properties(properties: impl IntoIterator<Item = Property>) -> Self {
        let mut register = Self::new();
        for property in properties {
            register.insert(property);
        }
        register
    }

    /// Adds a property, or replaces the one with its UPRN (which may have moved round or
    /// position); returns the replaced one.
    pub fn insert(&mut self, property: Property) -> Option<Property> {
        let replaced = self.remove(property.uprn);
        if property.position.is_valid() {
            self.rounds
                .entry(property.round.clone())
                .or_default()
                .insert(located(&property));
        }
        self.by_uprn.insert(property.uprn, property);
        replaced
    }

    /// Removes a property; returns it if it was there.
    pub fn remove(&mut self, uprn: u64) -> Option<Property> {
        let old = self.by_uprn.remove(&uprn)?;
        // Only valid positions went into a tree (see `insert`).
        if let Some(tree) = self
            .rounds
            .get_mut(&old.round)
            .filter(|_| old.position.is_valid())
        {
            tree.remove(&located(&old));
            if tree.size() == 0 {
                self.rounds.remove(&old.round);
            }
        }
        Some(old)
    }

    /// The property with this UPRN.
    pub fn get(&self, uprn: u64) -> Option<&Property> {
        self.by_uprn.get(&uprn)
    }

    /// How many properties the register holds.
    pub fn len(&self) -> usize {
        self.by_uprn.len()
    }

    /// Whether the register is empty.
    pub fn is_empty(&self) -> bool {
        self.by_uprn.is_empty()
    }

    /// Every property, by UPRN.
    pub fn iter(&self) -> impl Iterator<Item = &Property> {
        self.by_uprn.values()
    }

    /// The rounds that have at least one property, sorted.
    pub fn rounds(&self) -> Vec<&str> {
        let mut rounds: Vec<&str> = self.iter().map(|p| p.round.as_str()).collect();
        rounds.sort_unstable();
        rounds.dedup();
        rounds
    }

    /// Whether the round has at least one property with a valid position, that is, one that a
    /// position could match. Cheaper than [`Self::on_round`].
    pub fn has_positions_on(&self, round: &str) -> bool {
        self.rounds.contains_key(round)
    }

    /// The properties of a round, in the order the crew reaches them (then by UPRN).
    pub fn on_round(&self, round: &str) -> Vec<&Property> {
        let mut properties: Vec<&Property> = self.iter().filter(|p| p.round == round).collect();
        properties.sort_by_key(|p| (p.order, p.uprn));
        properties
    }

    /// The property on `round` nearest to `at` among those `eligible` accepts, if one lies within
    /// `within_m` metres; with its distance in metres. Ties go to the lower UPRN, so the answer
    /// does not depend on the tree's layout.
    pub fn nearest_on_round(
        &self,
        round: &str,
        at: LatLon,
        within_m: f64,
        eligible: impl Fn(&Property) -> bool,
    ) -> Option<(&Property, f64)> {
        let tree = self.rounds.get(round)?;
        self.nearest_in(tree, at, within_m, &eligible)
    }

    /// The property on any round nearest to `at`, within `within_m` metres.
    pub fn nearest(&self, at: LatLon, within_m: f64) -> Option<(&Property, f64)> {
        self.nearest_where(at, within_m, |_| true)
    }

    /// The property on any round nearest to `at` among those `eligible` accepts, within
    /// `within_m` metres; ties to the lower UPRN.
    pub fn nearest_where(
        &self,
        at: LatLon,
        within_m: f64,
        eligible: impl Fn(&Property) -> bool,
    ) -> Option<(&Property, f64)> {
        self.rounds
            .values()
            .filter_map(|tree| self.nearest_in(tree, at, within_m, &eligible))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.uprn.cmp(&b.0.uprn)))
    }

    /// The properties whose address contains `query` as whole words, ignoring case,
    /// punctuation and spacing ("2 swakeleys rd" does not find "12 Swakeleys Road", nor does
    /// "2 Swakeleys Road" find "22 Swakeleys Road"), by UPRN, at most `limit` of them. A scan of
    /// the register: it serves the rare report that gives only an address, and a register of
    /// 100,000 properties is scanned in milliseconds.
    pub fn find_by_address(&self, query: &str, limit: usize) -> Vec<&Property> {
        let wanted = normalize_address(query);
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for property in self.iter() {
            if found.len() >= limit {
                break;
            }
            let address = normalize_address(&property.address);
            if contains_words(&address, &wanted) {
                found.push(property);
            }
        }
        found
    }

    /// Looks in the box of degrees that surely holds the circle of `within_m` around `at`, then
    /// measures each candidate properly: degrees of longitude shrink with latitude, so the tree's
    /// own (planar, degree) nearest-neighbour order would not be the order in metres.
    fn nearest_in(
        &self,
        tree: &RTree<Located>,
        at: LatLon,
        within_m: f64,
        eligible: &dyn Fn(&Property) -> bool,
    ) -> Option<(&Property, f64)> {
        if !at.is_valid() || !within_m.is_finite() || within_m < 0.0 {
            return None;
        }
        // 10 % margin for the sphere's curvature; the exact test is the haversine distance.
        let dlat = within_m * 1.1 / METRES_PER_DEGREE;
        let cos_lat = at.lat.to_radians().cos();
        let dlon = if cos_lat > 1e-6 {
            (dlat / cos_lat).min(360.0)
        } else {
            360.0
        };
        let window = AABB::from_corners(
            [at.lon - dlon, at.lat - dlat],
            [at.lon + dlon, at.lat + dlat],
        );
        tree.locate_in_envelope(&window)
            .filter_map(|candidate| self.by_uprn.get(&candidate.data))
            .filter(|property| eligible(property))
            .map(|property| (property, at.distance_m(property.position)))
            .filter(|(_, distance)| *distance <= within_m)
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.uprn.cmp(&b.0.uprn)))
    }
}

/// An address as lower-case words separated by single spaces, without punctuation, so that
/// "2, Swakeleys Road" and "2 swakeleys  road" compare equal.
fn normalize_address(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Whether `haystack` contains `needle` starting and ending at word boundaries (both
/// normalized).
fn contains_words(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(start, _)| {
        let end = start + needle.len();
        let starts_word = start == 0 || haystack.as_bytes()[start - 1] == b' ';
        let ends_word = end == haystack.len() || haystack.as_bytes()[end] == b' ';
        starts_word && ends_word
    })
}

fn located(property: &Property) -> Located {
    GeomWithData::new(
        [property.position.lon, property.position.lat],
        property.uprn,
    )
}

impl From<Vec<Property>> for PropertyRegister {
    fn from(properties: Vec<Property>) -> Self {
        Self::from_properties(properties)
    }
}

impl From<PropertyRegister> for Vec<Property> {
    fn from(register: PropertyRegister) -> Self {
        register.by_uprn.into_values().collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::missed_bins::schedule::Frequency;
    use chrono::Weekday;

    /// A property for tests: weekly on Tuesdays, refuse and recycling.
    pub(crate) fn property(uprn: u64, round: &str, order: u32, lat: f64, lon: f64) -> Property {
        Property {
            uprn,
            address: format!("{order} Test Road, Ickenham"),
            position: LatLon { lat, lon },
            round: round.to_owned(),
            order,
            schedule: Schedule::new([Weekday::Tue], Frequency::Weekly),
            streams: vec![BinStream::Refuse, BinStream::Recycling],
        }
    }

    /// About 1.11 m of latitude per 0.00001°.
    const LAT: f64 = 51.5620;
    const LON: f64 = -0.4470;

    fn street() -> PropertyRegister {
        PropertyRegister::from_properties((0..10).map(|i| {
            property(
                100 + u64::from(i),
                "R1",
                i + 1,
                LAT + f64::from(i) * 0.00018, // about 20 m apart
                LON,
            )
        }))
    }

    #[test]
    fn nearest_on_round_within_tolerance() {
        let register = street();
        let at = LatLon {
            lat: LAT + 3.0 * 0.00018 + 0.00002,
            lon: LON + 0.0001,
        };
        let (p, d) = register.nearest_on_round("R1", at, 25.0, |_| true).unwrap();
        assert_eq!(p.uprn, 103);
        assert!(d > 5.0 && d < 10.0, "{d}");
        assert!(register
            .nearest_on_round("R2", at, 25.0, |_| true)
            .is_none());
        assert!(register.nearest_on_round("R1", at, 5.0, |_| true).is_none());
        // The eligibility filter skips the nearest.
        let (p, _) = register
            .nearest_on_round("R1", at, 25.0, |p| p.uprn != 103)
            .unwrap();
        assert!(p.uprn == 102 || p.uprn == 104);
    }

    #[test]
    fn nearest_measures_metres_not_degrees() {
        // Two properties: one 0.0003° east (about 21 m at this latitude), one 0.0002° north
        // (about 22 m). In degrees the northern one is nearer; in metres the eastern one is.
        let register = PropertyRegister::from_properties([
            property(1, "R1", 1, LAT, LON + 0.0003),
            property(2, "R1", 2, LAT + 0.0002, LON),
        ]);
        let at = LatLon { lat: LAT, lon: LON };
        let (p, d) = register.nearest_on_round("R1", at, 25.0, |_| true).unwrap();
        assert_eq!(p.uprn, 1, "{d}");
    }

    #[test]
    fn reinsert_replaces_and_moves_rounds() {
        let mut register = street();
        assert_eq!(register.len(), 10);
        let moved = property(103, "R2", 1, LAT + 0.01, LON);
        let old = register.insert(moved).unwrap();
        assert_eq!(old.round, "R1");
        assert_eq!(register.len(), 10);
        assert_eq!(register.on_round("R1").len(), 9);
        assert_eq!(register.rounds(), vec!["R1", "R2"]);
        let at = LatLon {
            lat: LAT + 3.0 * 0.00018,
            lon: LON,
        };
        let (p, _) = register.nearest_on_round("R1", at, 25.0, |_| true).unwrap();
        assert_ne!(p.uprn, 103);
        let (p, _) = register
            .nearest(
                LatLon {
                    lat: LAT + 0.01,
                    lon: LON,
                },
                5.0,
            )
            .unwrap();
        assert_eq!(p.uprn, 103);
        register.remove(103);
        assert_eq!(register.rounds(), vec!["R1"]);
    }

    #[test]
    fn round_listing_is_in_round_order() {
        let register = street();
        let orders: Vec<u32> = register.on_round("R1").iter().map(|p| p.order).collect();
        assert_eq!(orders, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn serde_round_trip_rebuilds_the_trees() {
        let register = street();
        let json = serde_json::to_string(&register).unwrap();
        let back: PropertyRegister = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), 10);
        let at = LatLon { lat: LAT, lon: LON };
        assert_eq!(
            back.nearest_on_round("R1", at, 1.0, |_| true)
                .unwrap()
                .0
                .uprn,
            100
        );
    }

    #[test]
    fn addresses_match_as_whole_words() {
        let mut two = property(2, "R1", 1, LAT, LON);
        two.address = "2 Swakeleys Road, Ickenham, Uxbridge UB10 8BE".into();
        let mut twelve = property(12, "R1", 2, LAT, LON);
        twelve.address = "12 Swakeleys Road, Ickenham, Uxbridge UB10 8BE".into();
        let mut twenty_two = property(22, "R1", 3, LAT, LON);
        twenty_two.address = "22 Swakeleys Road, Ickenham, Uxbridge UB10 8BF".into();
        let register = PropertyRegister::from_properties([two, twelve, twenty_two]);
        let uprns = |query: &str| -> Vec<u64> {
            register
                .find_by_address(query, 10)
                .iter()
                .map(|p| p.uprn)
                .collect()
        };
        assert_eq!(uprns("2 swakeleys road"), vec![2]);
        assert_eq!(uprns("2, Swakeleys  Road, Ickenham"), vec![2]);
        assert_eq!(uprns("ub10 8be"), vec![2, 12]);
        assert_eq!(uprns("Swakeleys Road"), vec![2, 12, 22]);
        assert_eq!(register.find_by_address("Swakeleys Road", 2).len(), 2);
        assert!(uprns("Swakeleys Rd").is_empty());
        assert!(uprns(" ,. ").is_empty());
    }

    #[test]
    fn nearest_where_skips_ineligible_properties_on_every_round() {
        let register = PropertyRegister::from_properties([
            property(1, "R1", 1, LAT, LON),
            property(2, "R2", 1, LAT + 0.00018, LON),
        ]);
        let at = LatLon { lat: LAT, lon: LON };
        let (p, _) = register.nearest_where(at, 50.0, |p| p.uprn != 1).unwrap();
        assert_eq!(p.uprn, 2);
        assert!(register.nearest_where(at, 10.0, |p| p.uprn != 1).is_none());
    }

    #[test]
    fn invalid_positions_are_kept_but_never_nearest() {
        let mut register = PropertyRegister::new();
        register.insert(property(1, "R1", 1, f64::NAN, LON));
        assert!(register.get(1).is_some());
        let at = LatLon { lat: LAT, lon: LON };
        assert!(register.nearest_on_round("R1", at, 1e6, |_| true).is_none());
        assert!(register
            .nearest_on_round(
                "R1",
                LatLon {
                    lat: f64::NAN,
                    lon: 0.0
                },
                25.0,
                |_| true
            )
            .is_none());
    }
}
