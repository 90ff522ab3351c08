//! What the resident reads: each of a report's transitions in plain English, with days and
//! times in the council's local time ("Our crew visited at 07:42 on Tuesday 24 November and
//! recorded that your general waste bin was not put out for collection.").

use chrono::{NaiveDate, NaiveTime, Timelike};
use proto::{BinStream, Outcome, TimestampMs};

use super::calendar::CouncilCalendar;
use super::report::{Reason, Report, Transition};
use super::rules::Refusal;

impl Report {
    /// One note per transition, oldest first, for the resident (Open311 `status_notes` takes the
    /// last one).
    pub fn status_notes(&self, calendar: &CouncilCalendar) -> Vec<String> {
        self.history
            .iter()
            .map(|transition| note(self, transition, calendar))
            .collect()
    }
}

fn note(report: &Report, transition: &Transition, calendar: &CouncilCalendar) -> String {
    let bin = bin_name(report.stream);
    match &transition.reason {
        Reason::Refused { refusal } => refusal_note(refusal, bin, calendar),
        Reason::CrewRecorded { outcome, at } => format!(
            "Our crew visited at {} and recorded that {}, so we will not return for it before \
             your next collection day.",
            when(*at, calendar),
            outcome_phrase(*outcome, bin)
        ),
        Reason::Accepted {
            crew_recorded_collected_at,
        } => {
            let day = report
                .collection_day
                .map_or_else(|| "your collection day".to_owned(), day_name);
            let accepted = format!(
                "We have accepted your report that your {bin} was not collected on {day}, and \
                 will send a crew back for it."
            );
            match crew_recorded_collected_at {
                Some(at) => format!(
                    "Our crew recorded your {bin} as emptied at {}, but we have accepted your \
                     report all the same. {accepted}",
                    when(*at, calendar)
                ),
                None => accepted,
            }
        }
        Reason::ReturnJobDispatched { due, .. } => {
            let sent = format!(
                "A crew was sent to collect your {bin} at {}.",
                when(transition.at, calendar)
            );
            match due {
                Some(due) => format!(
                    "{sent} It should be emptied by {}; we will tell you when it has been.",
                    deadline(*due, calendar)
                ),
                None => sent,
            }
        }
        Reason::ReturnNotCompleted { outcome, at } => format!(
            "Our crew went back at {} but could not empty it: they recorded that {}. We will not \
             go back again before your next collection day; please put your {bin} out then, or \
             contact us if it cannot wait.",
            when(*at, calendar),
            outcome_phrase(*outcome, bin)
        ),
        Reason::Collected { at } => format!(
            "Our crew collected your {bin} at {}. This report is now closed.",
            when(*at, calendar)
        ),
        Reason::Unplaced { reach_m } => format!(
            "We could not find a property we collect from within {reach_m} m of where you put \
             the pin, so a member of our staff will look at your report, find the address and \
             tell you what happens next. You do not need to report it again."
        ),
        Reason::Linked { case, .. } => {
            let day = report
                .collection_day
                .map_or_else(|| "your collection day".to_owned(), day_name);
            let linked = format!(
                "Your {bin} not collected on {day} had already been reported, so we have added \
                 your report to that one: you will hear of every step."
            );
            match &case.reason {
                // The case's own words, unless it is the earlier report's acceptance, which
                // would repeat what this sentence says.
                Reason::Accepted { .. } => {
                    format!("{linked} We will send a crew back for it.")
                }
                _ => format!("{linked} {}", note(report, case, calendar)),
            }
        }
    }
}

fn refusal_note(refusal: &Refusal, bin: &str, calendar: &CouncilCalendar) -> String {
    match refusal {
        Refusal::TooEarly {
            collection_day,
            opens_by,
        } => {
            let end = clock(calendar.local(*opens_by).time());
            format!(
                "Too early: collections on your street run until {end} on collection day \
                 ({}). If your {bin} has not been emptied by then, please report it after {end}.",
                day_name(*collection_day)
            )
        }
        Refusal::TooLate {
            collection_day,
            last_day,
        } => {
            let n = calendar.report_window_working_days;
            let days = if n == 1 { "day" } else { "days" };
            format!(
                "Too late: a missed collection must be reported within {n} working {days} of \
                 collection day. Your last collection day was {}, so reports closed at the end \
                 of {}. Please put your {bin} out on your next collection day.",
                day_name(*collection_day),
                day_name(*last_day)
            )
        }
        Refusal::StreamNotCollected { .. } => format!(
            "We do not collect a {bin} at this address. If you think this is wrong, please \
             contact us."
        ),
        Refusal::NoCollectionDay => "This address has no collection day on our records. Please \
                                     contact us so that we can put it right."
            .to_owned(),
    }
}

/// What residents call each bin.
pub fn bin_name(stream: BinStream) -> &'static str {
    match stream {
        BinStream::Refuse => "general waste bin",
        BinStream::Recycling => "recycling bin",
        BinStream::Garden => "garden waste bin",
        BinStream::Food => "food waste caddy",
        BinStream::Glass => "glass box",
        BinStream::Bulky => "bulky waste",
        BinStream::Clinical => "clinical waste",
        BinStream::Other => "waste",
    }
}

fn outcome_phrase(outcome: Outcome, bin: &str) -> String {
    match outcome {
        Outcome::Collected => format!("your {bin} was emptied"),
        Outcome::NotPresented => format!("your {bin} was not put out for collection"),
        Outcome::Contaminated => {
            format!("your {bin} had the wrong things in it, so it was tagged and left")
        }
        Outcome::BlockedAccess => format!("they could not get to your {bin}: access was blocked"),
        Outcome::DamagedBin => format!("your {bin} was too damaged to empty safely"),
        Outcome::Overweight => format!("your {bin} was too heavy to lift safely"),
        Outcome::Other => format!("your {bin} could not be emptied"),
    }
}

/// "07:42 on Tuesday 24 November", local time.
fn when(at: TimestampMs, calendar: &CouncilCalendar) -> String {
    let local = calendar.local(at);
    format!(
        "{} on {}",
        local.format("%H:%M"),
        day_name(local.date_naive())
    )
}

/// "5pm on Wednesday 25 November", local time: how a due time reads.
fn deadline(at: TimestampMs, calendar: &CouncilCalendar) -> String {
    let local = calendar.local(at);
    format!(
        "{} on {}",
        clock(local.time()),
        day_name(local.date_naive())
    )
}

/// "Tuesday 24 November".
fn day_name(day: NaiveDate) -> String {
    day.format("%A %-d %B").to_string()
}

/// "5pm", "5:30pm", "12pm": how councils write the end of the day on their websites.
fn clock(time: NaiveTime) -> String {
    let (pm, hour) = time.hour12();
    let suffix = if pm { "pm" } else { "am" };
    match time.minute() {
        0 => format!("{hour}{suffix}"),
        minute => format!("{hour}:{minute:02}{suffix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::evidence::tests::{by_uprn, collection};
    use crate::missed_bins::evidence::{Confirmation, EvidenceRef};
    use crate::missed_bins::rules::{Decision, ReportRequest};

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

    fn file(decision: Decision, now: TimestampMs) -> Report {
        let request = ReportRequest {
            uprn: 1,
            stream: BinStream::Refuse,
        };
        Report::file("MB-1".to_owned(), &request, decision, now)
    }

    fn evidence(outcome: Outcome, at: TimestampMs, seq: u64) -> Confirmation {
        let record = collection(Some(1), BinStream::Refuse, outcome, "R1");
        Confirmation::new(
            EvidenceRef::record("cab-rcv07", seq),
            at,
            &record,
            by_uprn(1),
        )
    }

    #[test]
    fn rejected_names_the_visit_and_the_outcome_in_local_time() {
        let cal = CouncilCalendar::default();
        let report = file(
            Decision::RejectedWithEvidence {
                collection_day: date(2026, 11, 24),
                evidence: evidence(Outcome::NotPresented, ms(2026, 11, 24, 7, 42), 1),
            },
            ms(2026, 11, 24, 9, 0),
        );
        assert_eq!(
            report.status_notes(&cal),
            vec![
                "Our crew visited at 07:42 on Tuesday 24 November and recorded that your general \
                  waste bin was not put out for collection, so we will not return for it before \
                  your next collection day."
                    .to_owned()
            ]
        );
        // In summer the time is BST: 06:42 UTC is 07:42.
        let summer = file(
            Decision::RejectedWithEvidence {
                collection_day: date(2026, 7, 14),
                evidence: evidence(Outcome::BlockedAccess, ms(2026, 7, 14, 6, 42), 2),
            },
            ms(2026, 7, 14, 9, 0),
        );
        let note = &summer.status_notes(&cal)[0];
        assert!(
            note.starts_with("Our crew visited at 07:42 on Tuesday 14 July"),
            "{note}"
        );
        assert!(note.contains("access was blocked"), "{note}");
    }

    #[test]
    fn too_early_says_when_reports_open() {
        let cal = CouncilCalendar::default();
        let report = file(
            Decision::Refused {
                reason: Refusal::TooEarly {
                    collection_day: date(2026, 11, 24),
                    opens_by: cal.round_end_on(date(2026, 11, 24)),
                },
            },
            ms(2026, 11, 24, 9, 0),
        );
        assert_eq!(
            report.status_notes(&cal)[0],
            "Too early: collections on your street run until 5pm on collection day (Tuesday 24 \
             November). If your general waste bin has not been emptied by then, please report it \
             after 5pm."
        );
        assert_eq!(clock(NaiveTime::from_hms_opt(16, 30, 0).unwrap()), "4:30pm");
        assert_eq!(clock(NaiveTime::from_hms_opt(12, 0, 0).unwrap()), "12pm");
        assert_eq!(clock(NaiveTime::from_hms_opt(9, 5, 0).unwrap()), "9:05am");
    }

    #[test]
    fn too_late_gives_the_rule_and_the_days() {
        let cal = CouncilCalendar::default();
        let report = file(
            Decision::Refused {
                reason: Refusal::TooLate {
                    collection_day: date(2026, 11, 24),
                    last_day: date(2026, 11, 26),
                },
            },
            ms(2026, 11, 27, 9, 0),
        );
        let note = &report.status_notes(&cal)[0];
        assert!(note.contains("within 2 working days"), "{note}");
        assert!(note.contains("Tuesday 24 November"), "{note}");
        assert!(note.contains("end of Thursday 26 November"), "{note}");
    }

    #[test]
    fn accepted_dispatched_and_closed_read_in_order() {
        let cal = CouncilCalendar::default();
        let mut report = file(
            Decision::Accepted {
                collection_day: date(2026, 11, 24),
                crew_recorded_collected: Some(evidence(
                    Outcome::Collected,
                    ms(2026, 11, 24, 7, 42),
                    1,
                )),
            },
            ms(2026, 11, 24, 18, 0),
        );
        report
            .dispatch("J-1".to_owned(), None, ms(2026, 11, 24, 18, 1))
            .unwrap();
        report
            .close(
                &evidence(Outcome::Collected, ms(2026, 11, 25, 11, 5), 2),
                ms(2026, 11, 25, 11, 5),
            )
            .unwrap();
        let notes = report.status_notes(&cal);
        assert_eq!(notes.len(), 3);
        assert!(notes[0].starts_with("Our crew recorded your general waste bin as emptied at 07:42 on Tuesday 24 November, but we have accepted"), "{}", notes[0]);
        assert!(
            notes[0].contains("not collected on Tuesday 24 November"),
            "{}",
            notes[0]
        );
        assert_eq!(
            notes[1],
            "A crew was sent to collect your general waste bin at 18:01 on Tuesday 24 November."
        );
        assert_eq!(
            notes[2],
            "Our crew collected your general waste bin at 11:05 on Wednesday 25 November. This report is now closed."
        );
    }

    #[test]
    fn a_dispatch_says_by_when_and_a_failed_return_what_next() {
        let cal = CouncilCalendar::default();
        let mut report = file(
            Decision::Accepted {
                collection_day: date(2026, 11, 24),
                crew_recorded_collected: None,
            },
            ms(2026, 11, 24, 18, 0),
        );
        report
            .dispatch(
                "J-1".to_owned(),
                Some(cal.round_end_on(date(2026, 11, 25))),
                ms(2026, 11, 24, 18, 1),
            )
            .unwrap();
        let mut blocked = evidence(Outcome::BlockedAccess, ms(2026, 11, 25, 10, 5), 2);
        blocked.job = Some("J-1".into());
        report
            .return_not_completed(&blocked, ms(2026, 11, 25, 10, 5))
            .unwrap();
        let notes = report.status_notes(&cal);
        assert_eq!(
            notes[1],
            "A crew was sent to collect your general waste bin at 18:01 on Tuesday 24 November. \
             It should be emptied by 5pm on Wednesday 25 November; we will tell you when it has \
             been."
        );
        assert_eq!(
            notes[2],
            "Our crew went back at 10:05 on Wednesday 25 November but could not empty it: they \
             recorded that they could not get to your general waste bin: access was blocked. We \
             will not go back again before your next collection day; please put your general \
             waste bin out then, or contact us if it cannot wait."
        );
    }

    #[test]
    fn every_outcome_and_refusal_has_words() {
        let cal = CouncilCalendar::default();
        for outcome in [
            Outcome::Contaminated,
            Outcome::DamagedBin,
            Outcome::Overweight,
            Outcome::Other,
        ] {
            let report = file(
                Decision::RejectedWithEvidence {
                    collection_day: date(2026, 11, 24),
                    evidence: evidence(outcome, ms(2026, 11, 24, 7, 42), 1),
                },
                ms(2026, 11, 24, 9, 0),
            );
            assert!(report.status_notes(&cal)[0].contains("your general waste bin"));
        }
        for refusal in [
            Refusal::StreamNotCollected {
                stream: BinStream::Refuse,
            },
            Refusal::NoCollectionDay,
        ] {
            let report = file(
                Decision::Refused { reason: refusal },
                ms(2026, 11, 24, 9, 0),
            );
            assert!(report.status_notes(&cal)[0].contains("contact us"));
        }
        for stream in BinStream::ALL {
            assert!(!bin_name(stream).is_empty());
        }
    }
}
