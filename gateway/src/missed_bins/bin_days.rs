//! A property's bin days as residents and their front ends ask for them ("check my bin day"):
//! each bin's last and next collection day and, for today, whether the crew has been and what it
//! recorded. Nothing personal: the register's addresses and the crews' outcomes only, never a
//! report or a resident.

use chrono::NaiveDate;
use proto::{BinStream, Outcome, TimestampMs};
use serde::Serialize;

use super::notes::bin_name;
use super::register::{Property, PropertyRegister};
use super::MissedBins;

/// The most properties one postcode lookup answers (a UK postcode holds about 15 addresses, the
/// largest a few hundred).
pub const MAX_PROPERTIES: usize = 500;

/// One property's bin days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyBinDays {
    /// The property's UPRN.
    pub uprn: u64,
    /// Its address, as on the register.
    pub address: String,
    /// The postcode at the end of the address, if there is one.
    pub postcode: Option<String>,
    /// Each bin collected there, in the register's order.
    pub bins: Vec<BinDays>,
}

/// One bin's days at a property.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinDays {
    /// The bin stream (also the Open311 `service_code` for reporting it missed).
    pub stream: BinStream,
    /// What residents call it.
    pub name: &'static str,
    /// The latest collection day before today.
    pub last_collection_day: Option<NaiveDate>,
    /// The next collection day after today.
    pub next_collection_day: Option<NaiveDate>,
    /// Whether today is a collection day.
    pub collection_today: bool,
    /// What the crews recorded of this bin today, if anything (on a return visit too).
    pub today: Option<TodayRecord>,
}

/// The crew's latest record of a bin today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TodayRecord {
    /// Whether it was emptied.
    pub collected: bool,
    /// What the crew recorded (`collected`, `not_presented`, `blocked_access`, …).
    pub outcome: Outcome,
    /// When (UTC ms).
    pub at: TimestampMs,
}

/// The properties whose address ends in `postcode` (compared without spaces or case), at most
/// [`MAX_PROPERTIES`], in address order.
pub fn by_postcode<'r>(register: &'r PropertyRegister, postcode: &str) -> Vec<&'r Property> {
    let wanted = squash(postcode);
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<&Property> = register
        .iter()
        .filter(|p| postcode_of(&p.address).is_some_and(|code| squash(&code) == wanted))
        .take(MAX_PROPERTIES)
        .collect();
    found.sort_by(|a, b| a.address.cmp(&b.address).then(a.uprn.cmp(&b.uprn)));
    found
}

/// `property`'s bin days as of the council's local day `today`.
pub fn bin_days(missed: &MissedBins, property: &Property, today: NaiveDate) -> PropertyBinDays {
    let schedule = &property.schedule;
    let last = today
        .pred_opt()
        .and_then(|yesterday| schedule.last_collection_on_or_before(yesterday));
    let next = today
        .succ_opt()
        .and_then(|tomorrow| schedule.next_collection_on_or_after(tomorrow));
    let bins = property
        .streams
        .iter()
        .map(|&stream| BinDays {
            stream,
            name: bin_name(stream),
            last_collection_day: last,
            next_collection_day: next,
            collection_today: schedule.is_collection_day(today),
            today: missed
                .evidence()
                .latest(property.uprn, stream, today)
                .map(|record| TodayRecord {
                    collected: record.outcome == Outcome::Collected,
                    outcome: record.outcome,
                    at: record.at,
                }),
        })
        .collect();
    PropertyBinDays {
        uprn: property.uprn,
        address: property.address.clone(),
        postcode: postcode_of(&property.address),
        bins,
    }
}

/// The UK postcode at the end of an address ("…, Uxbridge UB10 8BE" → "UB10 8BE"), if any.
pub fn postcode_of(address: &str) -> Option<String> {
    let mut words = address.split_whitespace().rev();
    let inward = words.next()?;
    let outward = words.next()?;
    let inward_ok = inward.len() == 3
        && inward.starts_with(|c: char| c.is_ascii_digit())
        && inward[1..].chars().all(|c| c.is_ascii_uppercase());
    let outward_ok = (2..=4).contains(&outward.len())
        && outward.starts_with(|c: char| c.is_ascii_uppercase())
        && outward.chars().all(|c| c.is_ascii_alphanumeric())
        && outward.chars().any(|c| c.is_ascii_digit());
    (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
}

fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::{CouncilCalendar, EvidenceRef, MatchConfig};
    use proto::{Collection, Position};

    const FIXTURE: &str = include_str!("../../tests/fixtures/properties.csv");

    fn missed_bins() -> MissedBins {
        let mut mb = MissedBins::new(CouncilCalendar::default(), MatchConfig::default());
        mb.import_properties(FIXTURE.as_bytes()).unwrap();
        mb
    }

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn finds_a_postcodes_properties_however_it_is_written() {
        let mb = missed_bins();
        let found = by_postcode(mb.register(), "ub108be");
        assert!(found.len() > 1);
        assert!(found.iter().all(|p| p.address.ends_with("UB10 8BE")));
        assert_eq!(by_postcode(mb.register(), " UB10  8BE ").len(), found.len());
        assert!(by_postcode(mb.register(), "SW1A 1AA").is_empty());
        assert!(by_postcode(mb.register(), "").is_empty());
        assert_eq!(
            postcode_of("2 Swakeleys Road, Ickenham, Uxbridge UB10 8BE").as_deref(),
            Some("UB10 8BE")
        );
        assert_eq!(
            postcode_of("1 High St, W1A 1AA").as_deref(),
            Some("W1A 1AA")
        );
        assert_eq!(postcode_of("Flat 3, The Maltings"), None);
    }

    #[test]
    fn last_next_and_what_the_crew_recorded_today() {
        let mut mb = missed_bins();
        const UPRN: u64 = 100021445102;
        // Tuesday 24 November, a collection day on a weekly Tuesday round.
        let at = CouncilCalendar::default()
            .to_utc(date(24), chrono::NaiveTime::from_hms_opt(7, 42, 0).unwrap());
        mb.observe_collection(
            EvidenceRef::record("cab-rcv07", 1),
            at,
            &Collection {
                uprn: Some(UPRN),
                stream: BinStream::Refuse,
                outcome: Outcome::NotPresented,
                pos: Position {
                    lat: 51.5624,
                    lon: -0.44595,
                    acc: 4.0,
                },
                vehicle: "RCV07".into(),
                round: "HIL-TUE-1".into(),
                job: None,
                photo: None,
                note: None,
            },
        );
        let property = mb.register().get(UPRN).unwrap().clone();
        let days = bin_days(&mb, &property, date(24));
        assert_eq!(days.postcode.as_deref(), Some("UB10 8BE"));
        let refuse = days
            .bins
            .iter()
            .find(|b| b.stream == BinStream::Refuse)
            .unwrap();
        assert_eq!(refuse.last_collection_day, Some(date(17)));
        assert_eq!(
            refuse.next_collection_day,
            Some(date(24).checked_add_days(chrono::Days::new(7)).unwrap())
        );
        assert!(refuse.collection_today);
        assert_eq!(
            refuse.today,
            Some(TodayRecord {
                collected: false,
                outcome: Outcome::NotPresented,
                at
            })
        );
        let recycling = days
            .bins
            .iter()
            .find(|b| b.stream == BinStream::Recycling)
            .unwrap();
        assert_eq!(recycling.today, None);
        // On Wednesday: not a collection day, Tuesday was the last.
        let wednesday = bin_days(&mb, &property, date(25));
        assert!(!wednesday.bins[0].collection_today);
        assert_eq!(wednesday.bins[0].last_collection_day, Some(date(24)));
    }
}
