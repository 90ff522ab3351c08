//! A round's progress on a day, for supervisors (the staff API and the dashboard): which
//! properties are done and outstanding, the crew's exceptions by outcome, the confirmations that
//! matched no property, and when the round started and finished.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use proto::{Outcome, TimestampMs};
use serde::Serialize;

use super::evidence::{Confirmation, EvidenceIndex};
use super::register::PropertyRegister;

/// A round's progress on one local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundProgress {
    /// The round.
    pub round: String,
    /// The local day.
    pub date: NaiveDate,
    /// How many of the round's properties are due that day.
    pub scheduled: usize,
    /// The round's properties with at least one confirmation that day, in round order.
    pub done: Vec<u64>,
    /// The properties due that day with no confirmation yet, in round order.
    pub outstanding: Vec<u64>,
    /// The confirmations recording anything other than `collected`, by outcome
    /// (`not_presented`, `contaminated`…), each list in time order.
    pub exceptions: BTreeMap<String, Vec<Confirmation>>,
    /// Confirmations from crews on this round that matched no property.
    pub unmatched: Vec<Confirmation>,
    /// When the round started, if a crew said so.
    pub started_at: Option<TimestampMs>,
    /// When the round was completed, if a crew said so.
    pub completed_at: Option<TimestampMs>,
}

/// The progress of `round` on `date`. Properties belong to rounds by the register, so a crew
/// covering from another round still ticks them off.
pub fn round_progress(
    register: &PropertyRegister,
    evidence: &EvidenceIndex,
    round: &str,
    date: NaiveDate,
) -> RoundProgress {
    let properties = register.on_round(round);
    let confirmed: HashSet<u64> = evidence.confirmed_on(date).collect();
    let done = properties
        .iter()
        .filter(|p| confirmed.contains(&p.uprn))
        .map(|p| p.uprn)
        .collect();
    let due: Vec<u64> = properties
        .iter()
        .filter(|p| p.schedule.is_collection_day(date))
        .map(|p| p.uprn)
        .collect();
    let outstanding = due
        .iter()
        .copied()
        .filter(|uprn| !confirmed.contains(uprn))
        .collect();
    let on_round: HashSet<u64> = properties.iter().map(|p| p.uprn).collect();

    let mut day: Vec<&Confirmation> = evidence.on_day(date).iter().collect();
    day.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.evidence.cmp(&b.evidence)));
    let mut exceptions: BTreeMap<String, Vec<Confirmation>> = BTreeMap::new();
    for c in day
        .iter()
        .filter(|c| c.outcome != Outcome::Collected)
        .filter(|c| c.uprn().is_some_and(|uprn| on_round.contains(&uprn)))
    {
        exceptions
            .entry(c.outcome.as_str().to_owned())
            .or_default()
            .push((*c).clone());
    }
    let unmatched = day
        .iter()
        .filter(|c| c.uprn().is_none() && c.round == round)
        .map(|c| (*c).clone())
        .collect();
    let times = evidence.round_times(round, date);
    RoundProgress {
        round: round.to_owned(),
        date,
        scheduled: due.len(),
        done,
        outstanding,
        exceptions,
        unmatched,
        started_at: times.started_at,
        completed_at: times.completed_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::evidence::tests::{by_uprn, collection};
    use crate::missed_bins::evidence::EvidenceRef;
    use crate::missed_bins::matching::{MatchOutcome, Unmatched};
    use crate::missed_bins::register::tests::property;
    use proto::{BinStream, RoundEvent, RoundPhase};

    fn ms(d: u32, h: u32, mi: u32) -> TimestampMs {
        NaiveDate::from_ymd_opt(2026, 11, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn done_outstanding_exceptions_and_unmatched() {
        let register = PropertyRegister::from_properties(
            (1..=4).map(|i| property(i, "R1", i as u32, 51.56 + i as f64 * 0.0002, -0.447)),
        );
        let mut evidence = EvidenceIndex::new(chrono_tz::Europe::London);
        let mut seq = 0;
        let mut observe = |uprn: Option<u64>, outcome: Outcome, at: TimestampMs, round: &str| {
            seq += 1;
            let matched = uprn.map_or(
                MatchOutcome::Unmatched {
                    reason: Unmatched::NoPropertyWithin { reach_m: 25.0 },
                },
                by_uprn,
            );
            evidence.observe_collection(
                EvidenceRef::record("cab-rcv07", seq),
                at,
                &collection(uprn, BinStream::Refuse, outcome, round),
                matched,
            );
        };
        observe(Some(2), Outcome::NotPresented, ms(24, 7, 50), "R1");
        observe(Some(1), Outcome::Collected, ms(24, 7, 40), "R1");
        observe(None, Outcome::Collected, ms(24, 8, 0), "R1");
        observe(None, Outcome::Collected, ms(24, 8, 0), "R9");
        evidence.observe_round_event(
            EvidenceRef::new("cab-rcv07#100"),
            ms(24, 6, 30),
            &RoundEvent {
                round: "R1".to_owned(),
                vehicle: "RCV07".to_owned(),
                phase: RoundPhase::Started,
            },
        );
        let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let progress = round_progress(&register, &evidence, "R1", date);
        assert_eq!(progress.scheduled, 4);
        assert_eq!(progress.done, vec![1, 2]);
        assert_eq!(progress.outstanding, vec![3, 4]);
        assert_eq!(progress.exceptions.len(), 1);
        assert_eq!(progress.exceptions["not_presented"][0].uprn(), Some(2));
        assert_eq!(progress.unmatched.len(), 1);
        assert_eq!(progress.started_at, Some(ms(24, 6, 30)));
        assert_eq!(progress.completed_at, None);
        // Wednesday: nobody is due.
        let next = date.succ_opt().unwrap();
        let progress = round_progress(&register, &evidence, "R1", next);
        assert_eq!((progress.scheduled, progress.outstanding.len()), (0, 0));
        assert!(serde_json::to_string(&progress).is_ok());
    }
}
