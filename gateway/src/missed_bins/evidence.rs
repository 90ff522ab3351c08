//! What crews recorded, indexed for the report rules: confirmations by property and local day,
//! round start and completion times, and the confirmations that matched no property.
//!
//! Fed by the gateway as records are stored, and again from the store at start-up; observing the
//! same record twice changes nothing, so replays are harmless.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::NaiveDate;
use chrono_tz::Tz;
use proto::{BinStream, Collection, Outcome, RoundEvent, RoundPhase, TimestampMs};
use serde::{Deserialize, Serialize};

use super::calendar::local_in;
use super::matching::MatchOutcome;

/// An opaque reference to the stored record that serves as evidence, such as `cab-rcv07#123`
/// (the device id and the record's sequence number): enough for staff to find the record, and
/// unique, so that observing it twice is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EvidenceRef(String);

impl EvidenceRef {
    /// A reference from any unique text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The reference of a device's record: `{device}#{seq}`.
    pub fn record(device: &str, seq: u64) -> Self {
        Self(format!("{device}#{seq}"))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EvidenceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A crew's confirmation as evidence: what, where on the register, when, and which record.
/// The crew's free-text note is left out: it may name people, and evidence is shown to residents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The record it came from.
    pub evidence: EvidenceRef,
    /// When the crew recorded it (UTC ms).
    pub at: TimestampMs,
    /// The property it was matched to, or why none.
    pub matched: MatchOutcome,
    /// Which bin.
    pub stream: BinStream,
    /// What the crew found.
    pub outcome: Outcome,
    /// The round the crew was working.
    pub round: String,
    /// The vehicle.
    pub vehicle: String,
    /// The return job it answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The photo's content hash, if one was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
}

impl Confirmation {
    /// The evidence of a collection record.
    pub fn new(
        evidence: EvidenceRef,
        at: TimestampMs,
        collection: &Collection,
        matched: MatchOutcome,
    ) -> Self {
        Self {
            evidence,
            at,
            matched,
            stream: collection.stream,
            outcome: collection.outcome,
            round: collection.round.clone(),
            vehicle: collection.vehicle.clone(),
            job: collection.job.clone(),
            photo: collection.photo.clone(),
        }
    }

    /// The matched property's UPRN.
    pub fn uprn(&self) -> Option<u64> {
        self.matched.uprn()
    }
}

/// When a round started and completed on a day, from the crews' round events. When several
/// vehicles report, the earliest start and the earliest completion count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundTimes {
    /// The first start.
    pub started_at: Option<TimestampMs>,
    /// The first completion.
    pub completed_at: Option<TimestampMs>,
}

/// One local day's evidence.
#[derive(Debug, Default)]
struct Day {
    /// Records already observed, so that replays change nothing.
    seen: HashSet<EvidenceRef>,
    confirmations: Vec<Confirmation>,
    /// Indices into `confirmations`, per matched UPRN.
    by_uprn: HashMap<u64, Vec<usize>>,
    rounds: HashMap<String, RoundTimes>,
}

/// The index of crews' evidence, by the council's local day.
#[derive(Debug)]
pub struct EvidenceIndex {
    /// The council's time zone, which decides what "a day" is.
    tz: Tz,
    days: BTreeMap<NaiveDate, Day>,
}

impl EvidenceIndex {
    /// An empty index whose days are local days in `tz` (the council calendar's zone).
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            days: BTreeMap::new(),
        }
    }

    /// Records a crew's confirmation at `ts`, matched (or not) to a property. Returns false when
    /// this record had already been observed.
    pub fn observe_collection(
        &mut self,
        evidence: EvidenceRef,
        ts: TimestampMs,
        collection: &Collection,
        matched: MatchOutcome,
    ) -> bool {
        let day = self
            .days
            .entry(local_in(self.tz, ts).date_naive())
            .or_default();
        if !day.seen.insert(evidence.clone()) {
            return false;
        }
        let confirmation = Confirmation::new(evidence, ts, collection, matched);
        if let Some(uprn) = confirmation.uprn() {
            day.by_uprn
                .entry(uprn)
                .or_default()
                .push(day.confirmations.len());
        }
        day.confirmations.push(confirmation);
        true
    }

    /// Records a round's start or completion at `ts`. Returns false when this record had already
    /// been observed.
    pub fn observe_round_event(
        &mut self,
        evidence: EvidenceRef,
        ts: TimestampMs,
        event: &RoundEvent,
    ) -> bool {
        let day = self
            .days
            .entry(local_in(self.tz, ts).date_naive())
            .or_default();
        if !day.seen.insert(evidence) {
            return false;
        }
        let times = day.rounds.entry(event.round.clone()).or_default();
        let slot = match event.phase {
            RoundPhase::Started => &mut times.started_at,
            RoundPhase::Completed => &mut times.completed_at,
        };
        *slot = Some(slot.map_or(ts, |earlier| earlier.min(ts)));
        true
    }

    /// Every confirmation matched to `uprn` on a local day, any stream, in the order observed.
    pub fn for_property(&self, uprn: u64, date: NaiveDate) -> impl Iterator<Item = &Confirmation> {
        self.days.get(&date).into_iter().flat_map(move |day| {
            day.by_uprn
                .get(&uprn)
                .into_iter()
                .flatten()
                .filter_map(|i| day.confirmations.get(*i))
        })
    }

    /// The latest confirmation for a property's stream on a local day. The latest decides,
    /// because a crew that came back and emptied a bin overrides its earlier "not presented".
    /// Equal times are settled by the evidence reference so the answer never depends on the
    /// order records arrived in.
    pub fn latest(&self, uprn: u64, stream: BinStream, date: NaiveDate) -> Option<&Confirmation> {
        self.for_property(uprn, date)
            .filter(|c| c.stream == stream)
            .max_by(|a, b| a.at.cmp(&b.at).then_with(|| a.evidence.cmp(&b.evidence)))
    }

    /// Every confirmation on a local day, matched or not, in the order observed.
    pub fn on_day(&self, date: NaiveDate) -> &[Confirmation] {
        self.days
            .get(&date)
            .map_or(&[][..], |day| day.confirmations.as_slice())
    }

    /// The UPRNs with at least one confirmation on a local day.
    pub fn confirmed_on(&self, date: NaiveDate) -> impl Iterator<Item = u64> + '_ {
        self.days
            .get(&date)
            .into_iter()
            .flat_map(|day| day.by_uprn.keys().copied())
    }

    /// The confirmations on a local day that matched no property: supervisors' list.
    pub fn unmatched(&self, date: NaiveDate) -> impl Iterator<Item = &Confirmation> {
        self.on_day(date).iter().filter(|c| c.uprn().is_none())
    }

    /// When a round started and completed on a local day.
    pub fn round_times(&self, round: &str, date: NaiveDate) -> RoundTimes {
        self.days
            .get(&date)
            .and_then(|day| day.rounds.get(round))
            .copied()
            .unwrap_or_default()
    }

    /// Drops every day before `date`, to bound memory: the rules look back no further than the
    /// report window, and the store keeps the records themselves.
    pub fn forget_before(&mut self, date: NaiveDate) {
        self.days = self.days.split_off(&date);
    }

    /// The local days held, earliest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.days.keys().copied()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::missed_bins::matching::{MatchedBy, Unmatched};
    use proto::Position;

    /// A collection record for tests.
    pub(crate) fn collection(
        uprn: Option<u64>,
        stream: BinStream,
        outcome: Outcome,
        round: &str,
    ) -> Collection {
        Collection {
            uprn,
            stream,
            outcome,
            pos: Position {
                lat: 51.5624,
                lon: -0.4462,
                acc: 4.0,
            },
            vehicle: "RCV07".to_owned(),
            round: round.to_owned(),
            job: None,
            photo: None,
            note: Some("resident shouted at us".to_owned()),
        }
    }

    pub(crate) fn by_uprn(uprn: u64) -> MatchOutcome {
        MatchOutcome::Matched {
            uprn,
            by: MatchedBy::Uprn,
        }
    }

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> TimestampMs {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn replaying_a_record_changes_nothing() {
        let mut index = EvidenceIndex::new(chrono_tz::Europe::London);
        let c = collection(Some(1), BinStream::Refuse, Outcome::Collected, "R1");
        let at = ms(2026, 11, 24, 8, 0);
        assert!(index.observe_collection(EvidenceRef::record("cab-rcv07", 5), at, &c, by_uprn(1)));
        assert!(!index.observe_collection(EvidenceRef::record("cab-rcv07", 5), at, &c, by_uprn(1)));
        assert_eq!(index.on_day(date(2026, 11, 24)).len(), 1);
        assert_eq!(index.for_property(1, date(2026, 11, 24)).count(), 1);
        let event = RoundEvent {
            round: "R1".to_owned(),
            vehicle: "RCV07".to_owned(),
            phase: RoundPhase::Completed,
        };
        assert!(index.observe_round_event(EvidenceRef::new("cab-rcv07#6"), at, &event));
        assert!(!index.observe_round_event(EvidenceRef::new("cab-rcv07#6"), at, &event));
        assert_eq!(
            index.round_times("R1", date(2026, 11, 24)).completed_at,
            Some(at)
        );
    }

    #[test]
    fn days_are_local_days() {
        let mut index = EvidenceIndex::new(chrono_tz::Europe::London);
        let c = collection(Some(1), BinStream::Refuse, Outcome::Collected, "R1");
        // 23:30 UTC on 30 June is 00:30 on 1 July in London.
        index.observe_collection(
            EvidenceRef::new("a#1"),
            ms(2026, 6, 30, 23, 30),
            &c,
            by_uprn(1),
        );
        assert!(index
            .latest(1, BinStream::Refuse, date(2026, 7, 1))
            .is_some());
        assert!(index
            .latest(1, BinStream::Refuse, date(2026, 6, 30))
            .is_none());
    }

    #[test]
    fn latest_decides_and_ties_do_not_depend_on_arrival() {
        let mut index = EvidenceIndex::new(chrono_tz::Europe::London);
        let not_out = collection(Some(1), BinStream::Refuse, Outcome::NotPresented, "R1");
        let emptied = collection(Some(1), BinStream::Refuse, Outcome::Collected, "R1");
        let recycling = collection(Some(1), BinStream::Recycling, Outcome::Contaminated, "R1");
        index.observe_collection(
            EvidenceRef::new("a#2"),
            ms(2026, 11, 24, 9, 0),
            &emptied,
            by_uprn(1),
        );
        index.observe_collection(
            EvidenceRef::new("a#1"),
            ms(2026, 11, 24, 7, 0),
            &not_out,
            by_uprn(1),
        );
        index.observe_collection(
            EvidenceRef::new("a#3"),
            ms(2026, 11, 24, 10, 0),
            &recycling,
            by_uprn(1),
        );
        let day = date(2026, 11, 24);
        assert_eq!(
            index.latest(1, BinStream::Refuse, day).unwrap().outcome,
            Outcome::Collected
        );
        assert_eq!(
            index.latest(1, BinStream::Recycling, day).unwrap().outcome,
            Outcome::Contaminated
        );
        assert!(index.latest(1, BinStream::Food, day).is_none());
        index.observe_collection(
            EvidenceRef::new("b#1"),
            ms(2026, 11, 24, 10, 0),
            &emptied,
            by_uprn(1),
        );
        assert_eq!(
            index
                .latest(1, BinStream::Recycling, day)
                .unwrap()
                .evidence
                .as_str(),
            "a#3"
        );
    }

    #[test]
    fn unmatched_are_kept_and_listed_without_the_crews_note() {
        let mut index = EvidenceIndex::new(chrono_tz::Europe::London);
        let c = collection(None, BinStream::Refuse, Outcome::Collected, "R1");
        let lost = MatchOutcome::Unmatched {
            reason: Unmatched::NoPropertyWithin { reach_m: 25.0 },
        };
        index.observe_collection(EvidenceRef::new("a#1"), ms(2026, 11, 24, 8, 0), &c, lost);
        let listed: Vec<&Confirmation> = index.unmatched(date(2026, 11, 24)).collect();
        assert_eq!(listed.len(), 1);
        let json = serde_json::to_string(listed[0]).unwrap();
        assert!(!json.contains("shouted"), "{json}");
        assert_eq!(index.confirmed_on(date(2026, 11, 24)).count(), 0);
    }

    #[test]
    fn round_times_keep_the_earliest_and_old_days_can_be_forgotten() {
        let mut index = EvidenceIndex::new(chrono_tz::Europe::London);
        let mut event = RoundEvent {
            round: "R1".to_owned(),
            vehicle: "RCV07".to_owned(),
            phase: RoundPhase::Started,
        };
        index.observe_round_event(EvidenceRef::new("a#2"), ms(2026, 11, 24, 7, 30), &event);
        index.observe_round_event(EvidenceRef::new("b#1"), ms(2026, 11, 24, 6, 45), &event);
        event.phase = RoundPhase::Completed;
        index.observe_round_event(EvidenceRef::new("a#3"), ms(2026, 11, 24, 14, 0), &event);
        let times = index.round_times("R1", date(2026, 11, 24));
        assert_eq!(times.started_at, Some(ms(2026, 11, 24, 6, 45)));
        assert_eq!(times.completed_at, Some(ms(2026, 11, 24, 14, 0)));
        assert_eq!(
            index.round_times("R2", date(2026, 11, 24)),
            RoundTimes::default()
        );
        index.forget_before(date(2026, 11, 25));
        assert_eq!(index.days().count(), 0);
    }
}
