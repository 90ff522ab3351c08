//! Missed bins: the property register, matching crews' confirmations to properties, and the
//! rules that decide residents' reports. Pure logic: no I/O but reading the register's CSV, no
//! async, no store. The gateway persists reports and the register, dispatches return jobs, and
//! feeds records in; everything here is a function of what it was given.
//!
//! - [`calendar`]: the council's time zone, working days, bank holidays and round end.
//! - [`schedule`]: a property's collection days (weekly or fortnightly).
//! - [`register`]: properties by UPRN, with an R-tree of positions per round.
//! - [`import`]: the register's CSV format and import, with errors by line.
//! - [`matching`]: a confirmation to a property, by UPRN or nearest position.
//! - [`evidence`]: what crews recorded, by property and local day; idempotent.
//! - [`rules`]: refused, rejected with evidence, or accepted.
//! - [`report`]: a report's statuses and transitions; [`notes`]: them in plain English;
//!   [`comment`]: what residents send on about their reports.
//! - [`round_progress`]: a round's day for supervisors; [`bin_days`]: a property's bin days
//!   for residents.
//!
//! [`MissedBins`] holds the register, the evidence and the calendar together for the gateway.

pub mod bin_days;
pub mod calendar;
pub mod comment;
pub mod evidence;
pub mod import;
pub mod matching;
pub mod notes;
pub mod register;
pub mod report;
pub mod retention;
pub mod round_progress;
pub mod rules;
pub mod schedule;

use std::io::Read;

use chrono::NaiveDate;
use proto::{Collection, Job, JobKind, Position, ReturnCollectionJob, RoundEvent, TimestampMs};

pub use calendar::CouncilCalendar;
pub use comment::{Comment, CommentAdded, NewComment};
pub use evidence::{Confirmation, EvidenceIndex, EvidenceRef};
pub use import::{ImportError, ImportReport, RowError};
pub use matching::{
    MatchConfig, MatchOutcome, MatchedBy, NotPlaced, PlacedBy, ReportPlace, Unmatched,
};
pub use register::{LatLon, Property, PropertyRegister};
pub use report::{Contact, Reason, Report, ReportKey, ReportStatus, Transition, TransitionError};
pub use round_progress::RoundProgress;
pub use rules::{Decision, Refusal, ReportError, ReportRequest};
pub use schedule::{Frequency, Schedule};

/// The register, the crews' evidence and the calendar, with the operations the gateway needs.
///
/// Persistence and dispatch stay with the caller: it stores the register and reports, replays
/// stored collection and round records through the `observe_*` methods at start-up (observing a
/// record twice changes nothing), publishes return jobs, and enforces one report per
/// [`ReportKey`] (a case, to which later reports of it are linked) with an atomic insert in its
/// store. That check belongs with the store
/// because several gateway replicas may share one.
#[derive(Debug)]
pub struct MissedBins {
    register: PropertyRegister,
    evidence: EvidenceIndex,
    calendar: CouncilCalendar,
    matching: MatchConfig,
}

/// What observing a collection record produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The record as evidence, with its match: check open reports against it with
    /// [`Report::should_close`].
    pub confirmation: Confirmation,
    /// False when the record had already been observed.
    pub fresh: bool,
}

impl MissedBins {
    /// Missed bins with an empty register.
    pub fn new(calendar: CouncilCalendar, matching: MatchConfig) -> Self {
        Self::with_register(PropertyRegister::new(), calendar, matching)
    }

    /// Missed bins with a register (loaded from the store, say).
    pub fn with_register(
        register: PropertyRegister,
        calendar: CouncilCalendar,
        matching: MatchConfig,
    ) -> Self {
        Self {
            register,
            evidence: EvidenceIndex::new(calendar.tz),
            calendar,
            matching,
        }
    }

    /// The property register.
    pub fn register(&self) -> &PropertyRegister {
        &self.register
    }

    /// The property register, to add or remove properties.
    pub fn register_mut(&mut self) -> &mut PropertyRegister {
        &mut self.register
    }

    /// The council calendar.
    pub fn calendar(&self) -> &CouncilCalendar {
        &self.calendar
    }

    /// The crews' evidence.
    pub fn evidence(&self) -> &EvidenceIndex {
        &self.evidence
    }

    /// The matching settings.
    pub fn matching(&self) -> &MatchConfig {
        &self.matching
    }

    /// Imports properties from CSV into the register (see [`import`] for the format).
    pub fn import_properties(&mut self, reader: impl Read) -> Result<ImportReport, ImportError> {
        self.register.import_csv(reader)
    }

    /// Matches a crew's confirmation recorded at `ts` to a property and records it as evidence.
    /// Pass the record's own time (when the bin was lifted) unless its clock is known to be
    /// wrong.
    pub fn observe_collection(
        &mut self,
        evidence: EvidenceRef,
        ts: TimestampMs,
        collection: &Collection,
    ) -> Observed {
        let matched = matching::match_collection(&self.register, collection, &self.matching);
        let confirmation = Confirmation::new(evidence.clone(), ts, collection, matched.clone());
        let fresh = self
            .evidence
            .observe_collection(evidence, ts, collection, matched);
        Observed {
            confirmation,
            fresh,
        }
    }

    /// Records a round's start or completion. Returns false when already observed.
    pub fn observe_round_event(
        &mut self,
        evidence: EvidenceRef,
        ts: TimestampMs,
        event: &RoundEvent,
    ) -> bool {
        self.evidence.observe_round_event(evidence, ts, event)
    }

    /// Decides a report at `now` without filing it.
    pub fn decide(
        &self,
        request: &ReportRequest,
        now: TimestampMs,
    ) -> Result<Decision, ReportError> {
        rules::decide(&self.register, &self.evidence, &self.calendar, request, now)
    }

    /// Files a resident's report at `now` under the id `id`: decided and ready to store. When
    /// [`Report::key`] is `Some` and the store already holds a report under that key, the store
    /// links this one to it instead ([`Report::link_to`]). An open report awaits
    /// [`Report::dispatch`] once its return job ([`Self::return_job`]) is published.
    pub fn file_report(
        &self,
        id: String,
        request: &ReportRequest,
        now: TimestampMs,
    ) -> Result<Report, ReportError> {
        let decision = self.decide(request, now)?;
        Ok(Report::file(id, request, decision, now))
    }

    /// The return job for an open report, due by the round end of the next working day.
    pub fn return_job(
        &self,
        report: &Report,
        job_id: String,
        now: TimestampMs,
    ) -> Result<Job, ReportError> {
        // An unplaced report has no property, so no return job (UPRN 0 is no one's).
        let uprn = report.uprn.unwrap_or_default();
        let property = self
            .register
            .get(uprn)
            .ok_or(ReportError::UnknownProperty { uprn })?;
        let next_working_day = self
            .calendar
            .add_working_days(self.calendar.local_date(now), 1);
        Ok(Job {
            id: job_id,
            rev: 1,
            due: self.calendar.round_end_on(next_working_day),
            kind: JobKind::ReturnCollection(ReturnCollectionJob {
                report: report.id.clone(),
                uprn: property.uprn,
                addr: property.address.clone(),
                pos: Position {
                    lat: property.position.lat,
                    lon: property.position.lon,
                    acc: 0.0,
                },
                stream: report.stream,
            }),
        })
    }

    /// A round's progress on a local day.
    pub fn round_progress(&self, round: &str, date: NaiveDate) -> RoundProgress {
        round_progress::round_progress(&self.register, &self.evidence, round, date)
    }

    /// The confirmations on a local day that matched no property, for supervisors.
    pub fn unmatched(&self, date: NaiveDate) -> Vec<&Confirmation> {
        self.evidence.unmatched(date).collect()
    }

    /// Drops evidence from before `date` to bound memory. Keep at least the report window: a
    /// day is needed until its last report day has passed.
    pub fn forget_evidence_before(&mut self, date: NaiveDate) {
        self.evidence.forget_before(date);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{BinStream, Outcome, RoundPhase};

    const FIXTURE: &str = include_str!("../../tests/fixtures/properties.csv");

    /// 4 Swakeleys Road, Ickenham: order 2 on HIL-TUE-1 (Tuesdays).
    const UPRN: u64 = 100021445102;

    fn ms(d: u32, h: u32, mi: u32) -> TimestampMs {
        NaiveDate::from_ymd_opt(2026, 11, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn missed_bins() -> MissedBins {
        let mut mb = MissedBins::new(CouncilCalendar::default(), MatchConfig::default());
        let report = mb.import_properties(FIXTURE.as_bytes()).unwrap();
        assert!(report.errors.is_empty());
        mb
    }

    fn lift(
        uprn: Option<u64>,
        outcome: Outcome,
        lat: f64,
        lon: f64,
        job: Option<&str>,
    ) -> Collection {
        Collection {
            uprn,
            stream: BinStream::Refuse,
            outcome,
            pos: Position { lat, lon, acc: 5.0 },
            vehicle: "RCV07".to_owned(),
            round: "HIL-TUE-1".to_owned(),
            job: job.map(str::to_owned),
            photo: None,
            note: None,
        }
    }

    #[test]
    fn a_missed_bin_from_report_to_closure() {
        let mut mb = missed_bins();
        let request = ReportRequest {
            uprn: UPRN,
            stream: BinStream::Refuse,
        };
        // 09:00: too early.
        let early = mb
            .file_report("MB-1".to_owned(), &request, ms(24, 9, 0))
            .unwrap();
        assert_eq!(early.status, ReportStatus::Refused);
        assert_eq!(early.key(), None);

        // The lift sensor on the lorry confirms number 6 (order 3) by position only, 4 m off.
        let six = mb.register().get(100021445103).unwrap().position;
        let observed = mb.observe_collection(
            EvidenceRef::record("cab-rcv07", 41),
            ms(24, 9, 10),
            &lift(None, Outcome::Collected, six.lat + 0.00003, six.lon, None),
        );
        assert!(observed.fresh);
        assert_eq!(observed.confirmation.uprn(), Some(100021445103));

        // 09:30: the crew has passed number 4; accepted.
        let mut report = mb
            .file_report("MB-2".to_owned(), &request, ms(24, 9, 30))
            .unwrap();
        assert_eq!(report.status, ReportStatus::Open);
        let key = report.key().unwrap();
        // A second report the same day has the same key: the store returns the first.
        let again = mb
            .file_report("MB-3".to_owned(), &request, ms(24, 10, 0))
            .unwrap();
        assert_eq!(again.key(), Some(key));

        let job = mb
            .return_job(&report, "J-7".to_owned(), ms(24, 9, 30))
            .unwrap();
        assert_eq!(job.due, ms(25, 17, 0));
        match &job.kind {
            JobKind::ReturnCollection(ret) => {
                assert_eq!(ret.uprn, UPRN);
                assert_eq!(ret.report, "MB-2");
                assert!(ret.addr.contains("4 Swakeleys Road"));
            }
            other => panic!("{other:?}"),
        }
        report
            .dispatch(job.id.clone(), None, ms(24, 9, 31))
            .unwrap();

        // The crew returns and confirms the job.
        let observed = mb.observe_collection(
            EvidenceRef::record("cab-rcv07", 57),
            ms(24, 13, 5),
            &lift(
                Some(UPRN),
                Outcome::Collected,
                51.5624,
                -0.4462,
                Some("J-7"),
            ),
        );
        assert!(report.should_close(&observed.confirmation));
        report
            .close(&observed.confirmation, observed.confirmation.at)
            .unwrap();
        assert_eq!(report.status, ReportStatus::Closed);
        let notes = report.status_notes(mb.calendar());
        assert!(
            notes[2].contains("13:05 on Tuesday 24 November"),
            "{notes:?}"
        );

        // Replaying the records at start-up changes nothing.
        let replay = mb.observe_collection(
            EvidenceRef::record("cab-rcv07", 57),
            ms(24, 13, 5),
            &lift(
                Some(UPRN),
                Outcome::Collected,
                51.5624,
                -0.4462,
                Some("J-7"),
            ),
        );
        assert!(!replay.fresh);
        let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        assert_eq!(mb.evidence().on_day(date).len(), 2);
    }

    #[test]
    fn unknown_uprn_is_an_error_and_round_progress_lists_the_day() {
        let mut mb = missed_bins();
        let err = mb
            .file_report(
                "MB-1".to_owned(),
                &ReportRequest {
                    uprn: 1,
                    stream: BinStream::Refuse,
                },
                ms(24, 18, 0),
            )
            .unwrap_err();
        assert_eq!(err, ReportError::UnknownProperty { uprn: 1 });

        mb.observe_collection(
            EvidenceRef::record("cab-rcv07", 1),
            ms(24, 7, 42),
            &lift(Some(UPRN), Outcome::NotPresented, 51.5624, -0.4462, None),
        );
        // Far from every property: unmatched, and listed.
        mb.observe_collection(
            EvidenceRef::record("cab-rcv07", 2),
            ms(24, 7, 50),
            &lift(None, Outcome::Collected, 51.60, -0.40, None),
        );
        assert!(mb.observe_round_event(
            EvidenceRef::record("cab-rcv07", 3),
            ms(24, 12, 0),
            &RoundEvent {
                round: "HIL-TUE-1".to_owned(),
                vehicle: "RCV07".to_owned(),
                phase: RoundPhase::Completed,
            },
        ));
        let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let progress = mb.round_progress("HIL-TUE-1", date);
        assert_eq!(progress.scheduled, 15);
        assert_eq!(progress.done, vec![UPRN]);
        assert_eq!(progress.outstanding.len(), 14);
        assert_eq!(progress.exceptions["not_presented"].len(), 1);
        assert_eq!(progress.completed_at, Some(ms(24, 12, 0)));
        assert_eq!(mb.unmatched(date).len(), 1);

        // The crew's record rejects the resident's report, with evidence.
        let report = mb
            .file_report(
                "MB-2".to_owned(),
                &ReportRequest {
                    uprn: UPRN,
                    stream: BinStream::Refuse,
                },
                ms(24, 12, 30),
            )
            .unwrap();
        assert_eq!(report.status, ReportStatus::Rejected);
        assert_eq!(
            report.history[0].evidence,
            Some(EvidenceRef::new("cab-rcv07#1"))
        );
        mb.forget_evidence_before(date.succ_opt().unwrap());
        assert!(mb.evidence().on_day(date).is_empty());
    }
}
