//! The rules that decide a resident's report of a missed collection: refused outside the report
//! window, rejected with the crew's evidence when the crew recorded why the bin was not emptied,
//! accepted otherwise. A pure function of the register, the evidence, the calendar and the time.
//!
//! The window follows how councils' waste front ends already decide:
//! - it opens on collection day once the crew has passed the property (a confirmation for it, or
//!   for a property after it on the round), the round is reported complete, or the round's
//!   scheduled end ([`CouncilCalendar::round_end`], 17:00 by default) has passed;
//! - it closes at the end of the [`CouncilCalendar::report_window_working_days`]th working day
//!   after collection day (two by default; weekends and bank holidays do not count).

use chrono::{Days, NaiveDate};
use proto::{BinStream, Outcome, TimestampMs};
use serde::{Deserialize, Serialize};

use super::calendar::CouncilCalendar;
use super::evidence::{Confirmation, EvidenceIndex};
use super::register::{Property, PropertyRegister};

/// A resident's report that a bin was not collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRequest {
    /// The property's UPRN.
    pub uprn: u64,
    /// Which bin.
    pub stream: BinStream,
}

/// What the rules decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Not a report the council can act on now; the reason says why and what to do.
    Refused {
        /// Why.
        reason: Refusal,
    },
    /// The crew recorded why the bin was not emptied (not presented, contaminated, blocked
    /// access…): the resident sees the outcome, the time, and that a crew was there.
    RejectedWithEvidence {
        /// The collection day the report is about.
        collection_day: NaiveDate,
        /// The crew's confirmation.
        evidence: Confirmation,
    },
    /// A return collection is due.
    Accepted {
        /// The collection day the report is about.
        collection_day: NaiveDate,
        /// The crew's confirmation when it recorded the bin as emptied: the report is accepted
        /// all the same (the resident's word against a tap on a screen), and the record is kept
        /// for supervisors.
        crew_recorded_collected: Option<Confirmation>,
    },
}

impl Decision {
    /// The collection day the report is about, when there is one.
    pub fn collection_day(&self) -> Option<NaiveDate> {
        match self {
            Decision::Refused { reason } => reason.collection_day(),
            Decision::RejectedWithEvidence { collection_day, .. }
            | Decision::Accepted { collection_day, .. } => Some(*collection_day),
        }
    }
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// It is collection day and the crew may still come.
    TooEarly {
        /// Today, the collection day.
        collection_day: NaiveDate,
        /// When reports open at the latest: the round's scheduled end (UTC ms).
        opens_by: TimestampMs,
    },
    /// The report window has closed.
    TooLate {
        /// The last collection day.
        collection_day: NaiveDate,
        /// The last local day on which it could have been reported.
        last_day: NaiveDate,
    },
    /// The council does not collect this bin at this property.
    StreamNotCollected {
        /// The bin.
        stream: BinStream,
    },
    /// The property's schedule has no collection day.
    NoCollectionDay,
}

impl Refusal {
    /// The collection day the refusal is about, when there is one.
    pub fn collection_day(&self) -> Option<NaiveDate> {
        match self {
            Refusal::TooEarly { collection_day, .. } | Refusal::TooLate { collection_day, .. } => {
                Some(*collection_day)
            }
            Refusal::StreamNotCollected { .. } | Refusal::NoCollectionDay => None,
        }
    }
}

/// A report the rules cannot decide at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The UPRN is not on the property register.
    #[error("no property with UPRN {uprn} is on the register; check the UPRN, or import the property first")]
    UnknownProperty {
        /// The UPRN.
        uprn: u64,
    },
}

/// Decides a resident's report at `now`.
///
/// The report is about the latest collection day on or before today (local). One exception:
/// on a collection day whose window has not opened yet, a report about the previous collection
/// day is still heard if that day's window is open (a property collected on Mondays and
/// Tuesdays whose Monday bin was missed can report it on Tuesday morning).
pub fn decide(
    register: &PropertyRegister,
    evidence: &EvidenceIndex,
    calendar: &CouncilCalendar,
    request: &ReportRequest,
    now: TimestampMs,
) -> Result<Decision, ReportError> {
    let property = register
        .get(request.uprn)
        .ok_or(ReportError::UnknownProperty { uprn: request.uprn })?;
    if !property.collects(request.stream) {
        return Ok(refused(Refusal::StreamNotCollected {
            stream: request.stream,
        }));
    }
    let today = calendar.local_date(now);
    let Some(latest) = property.schedule.last_collection_on_or_before(today) else {
        return Ok(refused(Refusal::NoCollectionDay));
    };
    let collection_day =
        if latest == today && !window_open(register, evidence, calendar, property, today, now) {
            let previous = today
                .checked_sub_days(Days::new(1))
                .and_then(|yesterday| property.schedule.last_collection_on_or_before(yesterday))
                .filter(|day| today <= calendar.last_report_day(*day));
            match previous {
                Some(day) => day,
                None => {
                    return Ok(refused(Refusal::TooEarly {
                        collection_day: today,
                        opens_by: calendar.round_end_on(today),
                    }))
                }
            }
        } else {
            latest
        };
    let last_day = calendar.last_report_day(collection_day);
    if today > last_day {
        return Ok(refused(Refusal::TooLate {
            collection_day,
            last_day,
        }));
    }
    Ok(
        match evidence.latest(request.uprn, request.stream, collection_day) {
            Some(confirmation) if confirmation.outcome != Outcome::Collected => {
                Decision::RejectedWithEvidence {
                    collection_day,
                    evidence: confirmation.clone(),
                }
            }
            crew_recorded_collected => Decision::Accepted {
                collection_day,
                crew_recorded_collected: crew_recorded_collected.cloned(),
            },
        },
    )
}

fn refused(reason: Refusal) -> Decision {
    Decision::Refused { reason }
}

/// Whether residents may report a missed bin at `property` on its collection day `day` at `now`.
pub fn window_open(
    register: &PropertyRegister,
    evidence: &EvidenceIndex,
    calendar: &CouncilCalendar,
    property: &Property,
    day: NaiveDate,
    now: TimestampMs,
) -> bool {
    now >= calendar.round_end_on(day)
        || evidence
            .round_times(&property.round, day)
            .completed_at
            .is_some()
        || crew_passed(register, evidence, property, day)
}

/// Whether the crew has been past `property` on `day`: a confirmation for it, or for a property
/// after it on its round. Rounds are keyed by the register, not by the record, so a crew
/// covering for another round still counts.
fn crew_passed(
    register: &PropertyRegister,
    evidence: &EvidenceIndex,
    property: &Property,
    day: NaiveDate,
) -> bool {
    evidence.confirmed_on(day).any(|uprn| {
        uprn == property.uprn
            || register
                .get(uprn)
                .is_some_and(|other| other.round == property.round && other.order > property.order)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::evidence::tests::{by_uprn, collection};
    use crate::missed_bins::evidence::EvidenceRef;
    use crate::missed_bins::register::tests::property;
    use crate::missed_bins::schedule::{Frequency, Schedule};
    use chrono::Weekday;
    use proto::{RoundEvent, RoundPhase};

    const LAT: f64 = 51.5624;
    const LON: f64 = -0.4462;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> TimestampMs {
        date(y, mo, d)
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn on(uprn: u64, round: &str, order: u32, schedule: Schedule) -> Property {
        let mut p = property(uprn, round, order, LAT, LON + f64::from(order) * 0.0003);
        p.schedule = schedule;
        p
    }

    fn weekly(days: &[Weekday]) -> Schedule {
        Schedule::new(days.iter().copied(), Frequency::Weekly)
    }

    /// Round R1 on Tuesdays: properties 1, 2, 3 in order. Property 20 on R2 on Fridays;
    /// 30 on R3 on Thursdays; 40 on R4 every other Wednesday from 7 January 2026; 50 on R5 on
    /// Mondays and Tuesdays; 60 on R6 on Mondays.
    struct World {
        register: PropertyRegister,
        evidence: EvidenceIndex,
        calendar: CouncilCalendar,
        next_seq: u64,
    }

    impl World {
        fn new() -> Self {
            let register = PropertyRegister::from_properties([
                on(1, "R1", 1, weekly(&[Weekday::Tue])),
                on(2, "R1", 2, weekly(&[Weekday::Tue])),
                on(3, "R1", 3, weekly(&[Weekday::Tue])),
                on(20, "R2", 1, weekly(&[Weekday::Fri])),
                on(30, "R3", 1, weekly(&[Weekday::Thu])),
                on(
                    40,
                    "R4",
                    1,
                    Schedule::new(
                        [Weekday::Wed],
                        Frequency::Fortnightly {
                            anchor: date(2026, 1, 7),
                        },
                    ),
                ),
                on(50, "R5", 1, weekly(&[Weekday::Mon, Weekday::Tue])),
                on(60, "R6", 1, weekly(&[Weekday::Mon])),
            ]);
            Self {
                register,
                evidence: EvidenceIndex::new(chrono_tz::Europe::London),
                calendar: CouncilCalendar::default(),
                next_seq: 1,
            }
        }

        fn crew(&mut self, uprn: u64, stream: BinStream, outcome: Outcome, at: TimestampMs) {
            let round = self.register.get(uprn).unwrap().round.clone();
            let record = collection(Some(uprn), stream, outcome, &round);
            let evidence = EvidenceRef::record("cab-rcv07", self.next_seq);
            self.next_seq += 1;
            self.evidence
                .observe_collection(evidence, at, &record, by_uprn(uprn));
        }

        fn round_completed(&mut self, round: &str, at: TimestampMs) {
            let event = RoundEvent {
                round: round.to_owned(),
                vehicle: "RCV07".to_owned(),
                phase: RoundPhase::Completed,
            };
            let evidence = EvidenceRef::record("cab-rcv07", self.next_seq);
            self.next_seq += 1;
            self.evidence.observe_round_event(evidence, at, &event);
        }

        fn decide(&self, uprn: u64, stream: BinStream, now: TimestampMs) -> Decision {
            decide(
                &self.register,
                &self.evidence,
                &self.calendar,
                &ReportRequest { uprn, stream },
                now,
            )
            .unwrap()
        }

        fn refuse(&self, uprn: u64, now: TimestampMs) -> Refusal {
            match self.decide(uprn, BinStream::Refuse, now) {
                Decision::Refused { reason } => reason,
                other => panic!("not refused: {other:?}"),
            }
        }

        fn accepted_day(&self, uprn: u64, now: TimestampMs) -> NaiveDate {
            match self.decide(uprn, BinStream::Refuse, now) {
                Decision::Accepted { collection_day, .. } => collection_day,
                other => panic!("not accepted: {other:?}"),
            }
        }
    }

    // Tuesday 24 November 2026 is a collection day for round R1 (GMT, so UTC = local).

    #[test]
    fn too_early_on_the_day_before_the_crew_has_passed() {
        let w = World::new();
        assert_eq!(
            w.refuse(2, ms(2026, 11, 24, 9, 0)),
            Refusal::TooEarly {
                collection_day: date(2026, 11, 24),
                opens_by: ms(2026, 11, 24, 17, 0)
            }
        );
    }

    #[test]
    fn a_confirmation_for_an_earlier_property_does_not_open_the_window() {
        let mut w = World::new();
        w.crew(
            1,
            BinStream::Refuse,
            Outcome::Collected,
            ms(2026, 11, 24, 8, 0),
        );
        assert!(matches!(
            w.refuse(2, ms(2026, 11, 24, 9, 0)),
            Refusal::TooEarly { .. }
        ));
    }

    #[test]
    fn open_once_a_later_property_on_the_round_is_confirmed() {
        let mut w = World::new();
        w.crew(
            3,
            BinStream::Recycling,
            Outcome::Collected,
            ms(2026, 11, 24, 8, 30),
        );
        assert_eq!(
            w.accepted_day(2, ms(2026, 11, 24, 9, 0)),
            date(2026, 11, 24)
        );
        // Property 3 itself: its own confirmation (another stream) shows the crew was there.
        assert_eq!(
            w.accepted_day(3, ms(2026, 11, 24, 9, 0)),
            date(2026, 11, 24)
        );
    }

    #[test]
    fn open_once_the_round_is_reported_complete() {
        let mut w = World::new();
        w.round_completed("R1", ms(2026, 11, 24, 13, 0));
        assert_eq!(
            w.accepted_day(1, ms(2026, 11, 24, 13, 30)),
            date(2026, 11, 24)
        );
        // Another round's completion does not open R2's window on Friday.
        w.round_completed("R1", ms(2026, 11, 27, 13, 0));
        assert!(matches!(
            w.refuse(20, ms(2026, 11, 27, 13, 30)),
            Refusal::TooEarly { .. }
        ));
        w.round_completed("R2", ms(2026, 11, 27, 14, 0));
        assert_eq!(
            w.accepted_day(20, ms(2026, 11, 27, 14, 30)),
            date(2026, 11, 27)
        );
    }

    #[test]
    fn open_from_the_rounds_scheduled_end() {
        let w = World::new();
        assert!(matches!(
            w.refuse(1, ms(2026, 11, 24, 16, 59)),
            Refusal::TooEarly { .. }
        ));
        assert_eq!(
            w.accepted_day(1, ms(2026, 11, 24, 17, 0)),
            date(2026, 11, 24)
        );
    }

    #[test]
    fn the_scheduled_end_is_local_time_in_summer() {
        // Tuesday 14 July 2026: 17:00 BST is 16:00 UTC.
        let w = World::new();
        assert!(matches!(
            w.refuse(1, ms(2026, 7, 14, 15, 59)),
            Refusal::TooEarly { .. }
        ));
        assert_eq!(w.accepted_day(1, ms(2026, 7, 14, 16, 0)), date(2026, 7, 14));
    }

    #[test]
    fn the_scheduled_end_is_configurable() {
        let mut w = World::new();
        w.calendar.round_end = chrono::NaiveTime::from_hms_opt(14, 30, 0).unwrap();
        assert_eq!(
            w.accepted_day(1, ms(2026, 11, 24, 14, 30)),
            date(2026, 11, 24)
        );
    }

    #[test]
    fn too_late_after_two_working_days() {
        let w = World::new();
        // Tuesday's collection may be reported until the end of Thursday.
        assert_eq!(
            w.accepted_day(1, ms(2026, 11, 26, 23, 59)),
            date(2026, 11, 24)
        );
        assert_eq!(
            w.refuse(1, ms(2026, 11, 27, 0, 0)),
            Refusal::TooLate {
                collection_day: date(2026, 11, 24),
                last_day: date(2026, 11, 26)
            }
        );
    }

    #[test]
    fn too_late_counts_working_days_across_a_weekend() {
        let w = World::new();
        // Friday 27 November: Saturday and Sunday do not count, Monday is 1, Tuesday 2.
        assert_eq!(
            w.accepted_day(20, ms(2026, 11, 28, 10, 0)),
            date(2026, 11, 27)
        );
        assert_eq!(
            w.accepted_day(20, ms(2026, 12, 1, 20, 0)),
            date(2026, 11, 27)
        );
        assert_eq!(
            w.refuse(20, ms(2026, 12, 2, 8, 0)),
            Refusal::TooLate {
                collection_day: date(2026, 11, 27),
                last_day: date(2026, 12, 1)
            }
        );
    }

    #[test]
    fn too_late_counts_working_days_across_bank_holidays() {
        let mut w = World::new();
        // Thursday 2 April 2026; Good Friday and Easter Monday do not count: Tuesday 7 is 1,
        // Wednesday 8 is 2.
        assert_eq!(w.accepted_day(30, ms(2026, 4, 8, 12, 0)), date(2026, 4, 2));
        // Without the bank holidays, Wednesday 8 is four working days on.
        w.calendar.bank_holidays.clear();
        assert_eq!(
            w.refuse(30, ms(2026, 4, 8, 12, 0)),
            Refusal::TooLate {
                collection_day: date(2026, 4, 2),
                last_day: date(2026, 4, 6)
            }
        );
    }

    #[test]
    fn fortnightly_off_week_refers_to_the_previous_collection() {
        let w = World::new();
        // Collections on Wednesdays 11 and 25 November 2026; 18 November is the off week.
        assert_eq!(
            w.refuse(40, ms(2026, 11, 18, 18, 0)),
            Refusal::TooLate {
                collection_day: date(2026, 11, 11),
                last_day: date(2026, 11, 13)
            }
        );
        assert_eq!(
            w.accepted_day(40, ms(2026, 11, 13, 9, 0)),
            date(2026, 11, 11)
        );
        assert_eq!(
            w.accepted_day(40, ms(2026, 11, 26, 9, 0)),
            date(2026, 11, 25)
        );
        assert!(matches!(
            w.refuse(40, ms(2026, 11, 25, 9, 0)),
            Refusal::TooEarly { .. }
        ));
    }

    #[test]
    fn on_a_twice_weekly_round_yesterdays_miss_can_be_reported_before_todays_window() {
        let w = World::new();
        // Property 50 is collected Mondays and Tuesdays; Tuesday 24 November at 09:00 the
        // report is about Monday 23.
        assert_eq!(
            w.accepted_day(50, ms(2026, 11, 24, 9, 0)),
            date(2026, 11, 23)
        );
        // After 17:00 it is about Tuesday.
        assert_eq!(
            w.accepted_day(50, ms(2026, 11, 24, 17, 0)),
            date(2026, 11, 24)
        );
    }

    #[test]
    fn the_day_is_the_councils_local_day_across_the_spring_clock_change() {
        let w = World::new();
        // 23:30 UTC on Sunday 29 March 2026 is 00:30 BST on Monday 30 March, a collection day
        // for property 60: too early, not a report about the Monday before.
        assert_eq!(
            w.refuse(60, ms(2026, 3, 29, 23, 30)),
            Refusal::TooEarly {
                collection_day: date(2026, 3, 30),
                opens_by: ms(2026, 3, 30, 16, 0)
            }
        );
    }

    #[test]
    fn the_day_is_the_councils_local_day_across_the_autumn_clock_change() {
        let w = World::new();
        // 23:30 UTC on Sunday 25 October 2026 is 23:30 GMT, still Sunday: the Monday 19
        // collection is four working days back, too late.
        assert_eq!(
            w.refuse(60, ms(2026, 10, 25, 23, 30)),
            Refusal::TooLate {
                collection_day: date(2026, 10, 19),
                last_day: date(2026, 10, 21)
            }
        );
        // 23:30 UTC the Sunday before the change was 00:30 BST on Monday 19.
        assert!(matches!(
            w.refuse(60, ms(2026, 10, 18, 23, 30)),
            Refusal::TooEarly { collection_day, .. } if collection_day == date(2026, 10, 19)
        ));
    }

    #[test]
    fn rejected_with_evidence_when_the_crew_recorded_why() {
        let mut w = World::new();
        w.crew(
            2,
            BinStream::Refuse,
            Outcome::NotPresented,
            ms(2026, 11, 24, 7, 42),
        );
        // Before 17:00: the crew's own record shows it has been.
        match w.decide(2, BinStream::Refuse, ms(2026, 11, 24, 9, 0)) {
            Decision::RejectedWithEvidence {
                collection_day,
                evidence,
            } => {
                assert_eq!(collection_day, date(2026, 11, 24));
                assert_eq!(evidence.outcome, Outcome::NotPresented);
                assert_eq!(evidence.at, ms(2026, 11, 24, 7, 42));
                assert_eq!(evidence.evidence.as_str(), "cab-rcv07#1");
            }
            other => panic!("{other:?}"),
        }
        // The recycling bin has no such record: accepted (after the window opens).
        assert!(matches!(
            w.decide(2, BinStream::Recycling, ms(2026, 11, 24, 18, 0)),
            Decision::Accepted {
                crew_recorded_collected: None,
                ..
            }
        ));
    }

    #[test]
    fn accepted_when_the_crew_recorded_collected() {
        let mut w = World::new();
        w.crew(
            2,
            BinStream::Refuse,
            Outcome::Collected,
            ms(2026, 11, 24, 7, 42),
        );
        match w.decide(2, BinStream::Refuse, ms(2026, 11, 24, 10, 0)) {
            Decision::Accepted {
                collection_day,
                crew_recorded_collected: Some(evidence),
            } => {
                assert_eq!(collection_day, date(2026, 11, 24));
                assert_eq!(evidence.outcome, Outcome::Collected);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_later_collection_overrides_an_earlier_exception() {
        let mut w = World::new();
        w.crew(
            2,
            BinStream::Refuse,
            Outcome::BlockedAccess,
            ms(2026, 11, 24, 7, 42),
        );
        w.crew(
            2,
            BinStream::Refuse,
            Outcome::Collected,
            ms(2026, 11, 24, 11, 5),
        );
        assert!(matches!(
            w.decide(2, BinStream::Refuse, ms(2026, 11, 25, 9, 0)),
            Decision::Accepted {
                crew_recorded_collected: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn evidence_from_another_day_does_not_count() {
        let mut w = World::new();
        w.crew(
            2,
            BinStream::Refuse,
            Outcome::NotPresented,
            ms(2026, 11, 17, 7, 42),
        );
        assert_eq!(
            w.accepted_day(2, ms(2026, 11, 25, 9, 0)),
            date(2026, 11, 24)
        );
    }

    #[test]
    fn unknown_uprn_is_a_clear_error() {
        let w = World::new();
        let err = decide(
            &w.register,
            &w.evidence,
            &w.calendar,
            &ReportRequest {
                uprn: 999,
                stream: BinStream::Refuse,
            },
            ms(2026, 11, 24, 18, 0),
        )
        .unwrap_err();
        assert_eq!(err, ReportError::UnknownProperty { uprn: 999 });
        assert!(err.to_string().contains("999"));
    }

    #[test]
    fn refused_when_the_bin_is_not_collected_there() {
        let w = World::new();
        assert_eq!(
            w.decide(1, BinStream::Garden, ms(2026, 11, 24, 18, 0)),
            Decision::Refused {
                reason: Refusal::StreamNotCollected {
                    stream: BinStream::Garden
                }
            }
        );
    }

    #[test]
    fn refused_when_the_property_has_no_collection_day() {
        let mut w = World::new();
        w.register.insert(on(70, "R7", 1, weekly(&[])));
        assert_eq!(
            w.refuse(70, ms(2026, 11, 24, 18, 0)),
            Refusal::NoCollectionDay
        );
    }
}
