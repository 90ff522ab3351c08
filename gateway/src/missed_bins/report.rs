//! A resident's report of a missed collection and its life: filed with the rules' decision, then
//! dispatched as a return job and closed by the crew's confirmation. Every change is kept with
//! its time, its reason and the evidence record's reference, for the resident to see.
//!
//! ```text
//!            ┌─ Refused   (outside the window; final)
//! filed ─────┼─ Rejected  (the crew recorded why; final)
//!            └─ Open ──dispatch──> InProgress ──collected──> Closed
//!                 │                   │                        ▲
//!                 │                   └─not done on the job──> Rejected ──job collected──┘
//!                 └───────────────collected────────────────────┘
//! ```
//!
//! A second report of a bin already reported (the same [`ReportKey`]) is still a report of its
//! own, with its own id and its resident's contact details, but it is *linked* to the first, the
//! case ([`Report::link_to`]): it starts in the case's status and then follows every step of the
//! case ([`Report::follow`]), so one return job serves both and both residents hear of each step.

use std::fmt;

use chrono::NaiveDate;
use proto::{BinStream, Outcome, TimestampMs};
use serde::{Deserialize, Serialize};

use super::comment::Comment;
use super::evidence::{Confirmation, EvidenceRef};
use super::register::LatLon;
use super::rules::{Decision, Refusal, ReportRequest};

/// Where a report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Accepted; a return collection is being arranged.
    Open,
    /// Outside the report window or not a bin collected there; nothing more will happen.
    Refused,
    /// The crew recorded why the bin was not emptied; nothing more will happen.
    Rejected,
    /// A return job has been sent to a crew.
    InProgress,
    /// The bin has been collected.
    Closed,
}

impl ReportStatus {
    /// The wire name, as in Open311 and the staff API.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Open => "open",
            ReportStatus::Refused => "refused",
            ReportStatus::Rejected => "rejected",
            ReportStatus::InProgress => "in_progress",
            ReportStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for ReportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of a report for duplicates: one report per property, bin and collection day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReportKey {
    /// The property.
    pub uprn: u64,
    /// The bin.
    pub stream: BinStream,
    /// The collection day.
    pub collection_day: NaiveDate,
}

impl fmt::Display for ReportKey {
    /// `{uprn}/{stream}/{YYYY-MM-DD}`: sorts by property, and serves as a store key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.uprn,
            self.stream.as_str(),
            self.collection_day
        )
    }
}

/// How to reach the resident. Personal data: kept only on the report, never logged, and purged
/// after the retention period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Telephone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Why a report changed status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Refused by the rules.
    Refused {
        /// Why.
        refusal: Refusal,
    },
    /// Rejected: the crew recorded this outcome.
    CrewRecorded {
        /// What the crew found.
        outcome: Outcome,
        /// When the crew recorded it (UTC ms).
        at: TimestampMs,
    },
    /// Accepted by the rules.
    Accepted {
        /// When the crew had recorded the bin as emptied, if it had.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        crew_recorded_collected_at: Option<TimestampMs>,
    },
    /// A return job was sent to a crew.
    ReturnJobDispatched {
        /// The job's id.
        job: String,
        /// When the crew is to have done it by (UTC ms); absent in reports from before it was
        /// kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<TimestampMs>,
    },
    /// The crew went back on the return job but could not empty the bin, and recorded why.
    ReturnNotCompleted {
        /// What the crew found.
        outcome: Outcome,
        /// When the crew recorded it (UTC ms).
        at: TimestampMs,
    },
    /// A crew confirmed the bin emptied.
    Collected {
        /// When (UTC ms).
        at: TimestampMs,
    },
    /// The location named no property we collect from (a pin in a park, say): kept open for
    /// staff to find the property, rather than refused.
    Unplaced {
        /// How far from the pin we looked, in whole metres.
        reach_m: u32,
    },
    /// The report was added to a report of the same bin already made (the case), which was
    /// then as `case` says.
    Linked {
        /// The case's id.
        to: String,
        /// The case's latest transition when this report was added to it.
        case: Box<Transition>,
    },
}

/// One change of a report's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When the report changed (UTC ms, the gateway's clock).
    pub at: TimestampMs,
    /// The status it changed to.
    pub status: ReportStatus,
    /// Why.
    pub reason: Reason,
    /// The record that is the evidence, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceRef>,
}

/// A change the report's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// Not from this status.
    #[error("report {id} is {from}; it cannot become {to}")]
    Illegal {
        /// The report.
        id: String,
        /// Its status.
        from: ReportStatus,
        /// The status asked for.
        to: ReportStatus,
    },
    /// The confirmation does not show this report's bin emptied after the report.
    #[error("record {evidence} does not show report {id}'s bin collected")]
    NotEvidence {
        /// The report.
        id: String,
        /// The record.
        evidence: EvidenceRef,
    },
}

/// A resident's report of a missed collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The report's id, as the gateway issued it (the Open311 `service_request_id`).
    pub id: String,
    /// The property; none for a report whose location named no property, which waits for staff
    /// to place it ([`Report::unplaced`]).
    pub uprn: Option<u64>,
    /// Where the resident put the pin, kept for staff when it named no property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<LatLon>,
    /// The bin.
    pub stream: BinStream,
    /// The collection day it is about; none when refused for a reason that has no day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_day: Option<NaiveDate>,
    /// When it was filed (UTC ms, the gateway's clock).
    pub created_at: TimestampMs,
    /// Where it stands: the last transition's status.
    pub status: ReportStatus,
    /// Every change, oldest first; never empty.
    pub history: Vec<Transition>,
    /// The return job, once dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// How to reach the resident, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// The resident's words, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The case this report was added to, when its bin had already been reported: it then has no
    /// return job of its own and follows the case's transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_to: Option<String>,
    /// The reports added to this one (other residents reporting the same bin), oldest first, at
    /// most [`MAX_LINKED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<String>,
    /// What residents sent on about it through their front end, oldest first, at most
    /// [`super::comment::MAX_COMMENTS`]; for staff only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
    /// When the resident's personal data was taken out, the set time after the report closed
    /// ([`super::retention`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_purged_at: Option<TimestampMs>,
}

/// The most reports one case takes in. Every change of a case is written to each of them, so
/// the number is bounded whatever residents send; a report beyond it is answered with the case
/// itself, as before linking existed.
pub const MAX_LINKED: usize = 100;

impl Report {
    /// A report filed at `now` with the rules' decision: refused, rejected, or open.
    pub fn file(id: String, request: &ReportRequest, decision: Decision, now: TimestampMs) -> Self {
        let collection_day = decision.collection_day();
        let transition = match decision {
            Decision::Refused { reason } => Transition {
                at: now,
                status: ReportStatus::Refused,
                reason: Reason::Refused { refusal: reason },
                evidence: None,
            },
            Decision::RejectedWithEvidence { evidence, .. } => Transition {
                at: now,
                status: ReportStatus::Rejected,
                reason: Reason::CrewRecorded {
                    outcome: evidence.outcome,
                    at: evidence.at,
                },
                evidence: Some(evidence.evidence),
            },
            Decision::Accepted {
                crew_recorded_collected,
                ..
            } => Transition {
                at: now,
                status: ReportStatus::Open,
                reason: Reason::Accepted {
                    crew_recorded_collected_at: crew_recorded_collected.as_ref().map(|c| c.at),
                },
                evidence: crew_recorded_collected.map(|c| c.evidence),
            },
        };
        Self::first(
            id,
            Some(request.uprn),
            None,
            request.stream,
            collection_day,
            now,
            transition,
        )
    }

    /// A report whose location named no property: open, for staff to place
    /// ([`Self::place`]), with the resident's pin kept. No return job is sent for it meanwhile.
    pub fn unplaced(
        id: String,
        stream: BinStream,
        pin: Option<LatLon>,
        reach_m: f64,
        now: TimestampMs,
    ) -> Self {
        let transition = Transition {
            at: now,
            status: ReportStatus::Open,
            reason: Reason::Unplaced {
                // A setting of tens of metres: whole metres say it.
                reach_m: reach_m.clamp(0.0, f64::from(u32::MAX)).round() as u32,
            },
            evidence: None,
        };
        Self::first(id, None, pin, stream, None, now, transition)
    }

    /// A new report whose history is its first transition.
    fn first(
        id: String,
        uprn: Option<u64>,
        pin: Option<LatLon>,
        stream: BinStream,
        collection_day: Option<NaiveDate>,
        now: TimestampMs,
        transition: Transition,
    ) -> Self {
        Self {
            id,
            uprn,
            pin,
            stream,
            collection_day,
            created_at: now,
            status: transition.status,
            history: vec![transition],
            job_id: None,
            contact: None,
            description: None,
            linked_to: None,
            linked: Vec::new(),
            comments: Vec::new(),
            contact_purged_at: None,
        }
    }

    /// Places an unplaced report on property `uprn` at `now` with the rules' `decision` for it
    /// there, as if it had been filed so: refused, rejected with the crew's evidence, or open for
    /// a return job. False, changing nothing, when the report already has a property.
    pub fn place(&mut self, uprn: u64, decision: Decision, now: TimestampMs) -> bool {
        if self.uprn.is_some() {
            return false;
        }
        let request = ReportRequest {
            uprn,
            stream: self.stream,
        };
        let filed = Report::file(self.id.clone(), &request, decision, now);
        self.uprn = Some(uprn);
        self.collection_day = filed.collection_day;
        // The decision's own transition: its words (accepted, too late, the crew's record) are
        // what the resident needs; that staff placed it shows in the history before it.
        for transition in filed.history {
            self.push(transition);
        }
        true
    }

    /// Makes this newly filed (or newly placed) report one of `case`'s, a report of the same
    /// bin made earlier:
    /// it takes the case's status now, with a transition saying so, and `case` lists it. False,
    /// changing nothing, when `case` already has [`MAX_LINKED`] reports or is itself linked.
    pub fn link_to(&mut self, case: &mut Report) -> bool {
        let Some(latest) = case.history.last() else {
            return false;
        };
        if case.linked.len() >= MAX_LINKED || case.linked_to.is_some() {
            return false;
        }
        let transition = Transition {
            at: self.created_at,
            status: case.status,
            reason: Reason::Linked {
                to: case.id.clone(),
                case: Box::new(latest.clone()),
            },
            evidence: latest.evidence.clone(),
        };
        // The transition the rules decided (the only one of a report just filed, the last of
        // one staff have just placed) gives way to the case's.
        self.history.pop();
        self.push(transition);
        self.collection_day = case.collection_day;
        self.job_id = None;
        self.linked_to = Some(case.id.clone());
        case.linked.push(self.id.clone());
        true
    }

    /// Takes the case's latest `transition` (this report being one of its linked ones): the
    /// same status, reason and evidence, so the resident hears what the case's resident hears.
    /// Taking the same transition twice changes nothing.
    pub fn follow(&mut self, transition: &Transition) {
        if self.history.last() != Some(transition) {
            self.push(transition.clone());
        }
    }

    /// The key under which a duplicate would be found: none for a refused report, so that a
    /// resident refused as too early can report again once the window opens.
    pub fn key(&self) -> Option<ReportKey> {
        match (self.status, self.collection_day) {
            (ReportStatus::Refused, _) | (_, None) => None,
            (_, Some(collection_day)) => Some(ReportKey {
                uprn: self.uprn?,
                stream: self.stream,
                collection_day,
            }),
        }
    }

    /// Whether a crew is still to act on it (open or in progress).
    pub fn is_open(&self) -> bool {
        matches!(self.status, ReportStatus::Open | ReportStatus::InProgress)
    }

    /// Records that return job `job`, due by `due`, was sent to a crew at `at`. Allowed when
    /// open, and again when in progress (the job was reassigned to another crew).
    pub fn dispatch(
        &mut self,
        job: String,
        due: Option<TimestampMs>,
        at: TimestampMs,
    ) -> Result<(), TransitionError> {
        self.check(ReportStatus::InProgress)?;
        self.job_id = Some(job.clone());
        self.push(Transition {
            at,
            status: ReportStatus::InProgress,
            reason: Reason::ReturnJobDispatched { job, due },
            evidence: None,
        });
        Ok(())
    }

    /// Whether `confirmation` is the crew's record of this report's return job not done: the
    /// report is in progress and the crew recorded, on its job, anything but `collected`
    /// (access blocked, the bin not out, …).
    pub fn return_failed_by(&self, confirmation: &Confirmation) -> bool {
        self.status == ReportStatus::InProgress
            && confirmation.outcome != Outcome::Collected
            && self.job_id.is_some()
            && confirmation.job == self.job_id
    }

    /// Closes the report as rejected at `now` with the crew's record of its return job not done
    /// ([`Self::return_failed_by`]): nothing more will happen before the next collection day,
    /// and the resident is told why. Without this the report would stay in progress for ever.
    /// A later record of the same job emptied still closes it ([`Self::should_close`]).
    pub fn return_not_completed(
        &mut self,
        confirmation: &Confirmation,
        now: TimestampMs,
    ) -> Result<(), TransitionError> {
        if !self.return_failed_by(confirmation) {
            return Err(TransitionError::NotEvidence {
                id: self.id.clone(),
                evidence: confirmation.evidence.clone(),
            });
        }
        self.push(Transition {
            at: now.max(confirmation.at),
            status: ReportStatus::Rejected,
            reason: Reason::ReturnNotCompleted {
                outcome: confirmation.outcome,
                at: confirmation.at,
            },
            evidence: Some(confirmation.evidence.clone()),
        });
        Ok(())
    }

    /// Whether the report was rejected on its return visit (rather than when it was filed):
    /// the crew may still go back on the same job and empty the bin.
    fn rejected_on_return(&self) -> bool {
        self.status == ReportStatus::Rejected
            && self
                .history
                .last()
                .is_some_and(|t| matches!(t.reason, Reason::ReturnNotCompleted { .. }))
    }

    /// Whether this confirmation closes the report: the report is open or in progress, the crew
    /// recorded `collected`, and the confirmation answers the report's return job, or is for the
    /// report's property and bin and recorded after the report was filed (a crew passing by on
    /// its next round, or picking the bin up without the job).
    ///
    /// A report rejected on its return visit ([`Self::return_not_completed`]) is closed by a
    /// later record of the same job emptied: the crew went back again.
    pub fn should_close(&self, confirmation: &Confirmation) -> bool {
        if confirmation.outcome != Outcome::Collected {
            return false;
        }
        let answers_job = self.job_id.is_some() && confirmation.job == self.job_id;
        if self.rejected_on_return() {
            return answers_job;
        }
        if !self.is_open() {
            return false;
        }
        let same_bin_since = self.uprn.is_some()
            && confirmation.uprn() == self.uprn
            && confirmation.stream == self.stream
            && confirmation.at > self.created_at;
        answers_job || same_bin_since
    }

    /// Closes the report at `now` (the gateway's clock: when it learned of the collection) with
    /// the crew's confirmation as evidence; the reason keeps the confirmation's own time, when
    /// the bin was emptied. Stamping the transition when it happens here, not when the crew
    /// recorded it, keeps a late-arriving confirmation inside the windows that front ends poll.
    pub fn close(
        &mut self,
        confirmation: &Confirmation,
        now: TimestampMs,
    ) -> Result<(), TransitionError> {
        self.check(ReportStatus::Closed)?;
        if !self.should_close(confirmation) {
            return Err(TransitionError::NotEvidence {
                id: self.id.clone(),
                evidence: confirmation.evidence.clone(),
            });
        }
        self.push(Transition {
            at: now.max(confirmation.at),
            status: ReportStatus::Closed,
            reason: Reason::Collected {
                at: confirmation.at,
            },
            evidence: Some(confirmation.evidence.clone()),
        });
        Ok(())
    }

    fn check(&self, to: ReportStatus) -> Result<(), TransitionError> {
        let legal = match to {
            ReportStatus::InProgress => self.is_open(),
            ReportStatus::Closed => self.is_open() || self.rejected_on_return(),
            // Refusals, rejections and openings only happen when a report is filed.
            ReportStatus::Open | ReportStatus::Refused | ReportStatus::Rejected => false,
        };
        if legal {
            Ok(())
        } else {
            Err(TransitionError::Illegal {
                id: self.id.clone(),
                from: self.status,
                to,
            })
        }
    }

    fn push(&mut self, transition: Transition) {
        self.status = transition.status;
        self.history.push(transition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::evidence::tests::{by_uprn, collection};

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

    fn request() -> ReportRequest {
        ReportRequest {
            uprn: 100021445102,
            stream: BinStream::Refuse,
        }
    }

    fn confirmation(
        seq: u64,
        outcome: Outcome,
        at: TimestampMs,
        job: Option<&str>,
    ) -> Confirmation {
        let mut record = collection(Some(100021445102), BinStream::Refuse, outcome, "HIL-TUE-1");
        record.job = job.map(str::to_owned);
        Confirmation::new(
            EvidenceRef::record("cab-rcv07", seq),
            at,
            &record,
            by_uprn(100021445102),
        )
    }

    fn accepted(now: TimestampMs) -> Report {
        Report::file(
            "MB-1".to_owned(),
            &request(),
            Decision::Accepted {
                collection_day: date(2026, 11, 24),
                crew_recorded_collected: None,
            },
            now,
        )
    }

    #[test]
    fn accepted_then_dispatched_then_closed_by_the_job() {
        let mut report = accepted(ms(2026, 11, 24, 18, 0));
        assert_eq!(report.status, ReportStatus::Open);
        report
            .dispatch("J-1".to_owned(), None, ms(2026, 11, 24, 18, 1))
            .unwrap();
        assert_eq!(report.status, ReportStatus::InProgress);
        // An earlier confirmation for another job does not close it.
        let other_job = confirmation(9, Outcome::Collected, ms(2026, 11, 24, 17, 0), Some("J-0"));
        assert!(!report.should_close(&other_job));
        let done = confirmation(10, Outcome::Collected, ms(2026, 11, 25, 11, 5), Some("J-1"));
        assert!(report.should_close(&done));
        report.close(&done, done.at).unwrap();
        assert_eq!(report.status, ReportStatus::Closed);
        let statuses: Vec<ReportStatus> = report.history.iter().map(|t| t.status).collect();
        assert_eq!(
            statuses,
            vec![
                ReportStatus::Open,
                ReportStatus::InProgress,
                ReportStatus::Closed
            ]
        );
        let last = report.history.last().unwrap();
        assert_eq!(last.at, ms(2026, 11, 25, 11, 5));
        assert_eq!(last.evidence, Some(EvidenceRef::new("cab-rcv07#10")));
        // Closed is final.
        assert!(!report.should_close(&done));
        assert!(matches!(
            report.close(&done, done.at),
            Err(TransitionError::Illegal {
                from: ReportStatus::Closed,
                ..
            })
        ));
        assert!(report
            .dispatch("J-2".to_owned(), None, ms(2026, 11, 26, 8, 0))
            .is_err());
    }

    #[test]
    fn closed_by_a_later_confirmation_for_the_same_bin_without_the_job() {
        let mut report = accepted(ms(2026, 11, 24, 18, 0));
        // Before the report: not evidence of a return.
        let before = confirmation(3, Outcome::Collected, ms(2026, 11, 24, 8, 0), None);
        assert!(!report.should_close(&before));
        assert!(matches!(
            report.close(&before, before.at),
            Err(TransitionError::NotEvidence { .. })
        ));
        // After it, but not emptied.
        let blocked = confirmation(4, Outcome::BlockedAccess, ms(2026, 11, 25, 9, 0), None);
        assert!(!report.should_close(&blocked));
        // Another bin at the property.
        let mut recycling = confirmation(5, Outcome::Collected, ms(2026, 11, 25, 9, 0), None);
        recycling.stream = BinStream::Recycling;
        assert!(!report.should_close(&recycling));
        // Open (not yet dispatched) reports close too.
        let after = confirmation(6, Outcome::Collected, ms(2026, 11, 25, 9, 30), None);
        assert!(report.should_close(&after));
        report.close(&after, after.at).unwrap();
        assert_eq!(report.status, ReportStatus::Closed);
    }

    #[test]
    fn rejected_and_refused_are_final() {
        let evidence = confirmation(2, Outcome::NotPresented, ms(2026, 11, 24, 7, 42), None);
        let mut rejected = Report::file(
            "MB-2".to_owned(),
            &request(),
            Decision::RejectedWithEvidence {
                collection_day: date(2026, 11, 24),
                evidence,
            },
            ms(2026, 11, 24, 9, 0),
        );
        assert_eq!(rejected.status, ReportStatus::Rejected);
        assert_eq!(
            rejected.history[0].reason,
            Reason::CrewRecorded {
                outcome: Outcome::NotPresented,
                at: ms(2026, 11, 24, 7, 42)
            }
        );
        assert_eq!(
            rejected.history[0].evidence,
            Some(EvidenceRef::new("cab-rcv07#2"))
        );
        assert!(rejected
            .dispatch("J-1".to_owned(), None, ms(2026, 11, 24, 9, 1))
            .is_err());
        let later = confirmation(3, Outcome::Collected, ms(2026, 12, 1, 9, 0), None);
        assert!(!rejected.should_close(&later));

        let mut refused = Report::file(
            "MB-3".to_owned(),
            &request(),
            Decision::Refused {
                reason: Refusal::StreamNotCollected {
                    stream: BinStream::Garden,
                },
            },
            ms(2026, 11, 24, 9, 0),
        );
        assert_eq!(refused.collection_day, None);
        let err = refused
            .dispatch("J-1".to_owned(), None, ms(2026, 11, 24, 9, 1))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "report MB-3 is refused; it cannot become in_progress"
        );
    }

    #[test]
    fn duplicate_key_is_property_stream_and_collection_day() {
        let first = accepted(ms(2026, 11, 24, 18, 0));
        let second = accepted(ms(2026, 11, 25, 9, 0));
        assert_eq!(first.key(), second.key());
        assert_eq!(
            first.key().unwrap().to_string(),
            "100021445102/refuse/2026-11-24"
        );
        let mut next_week = accepted(ms(2026, 12, 1, 18, 0));
        next_week.collection_day = Some(date(2026, 12, 1));
        assert_ne!(first.key(), next_week.key());
        let mut recycling = accepted(ms(2026, 11, 24, 18, 0));
        recycling.stream = BinStream::Recycling;
        assert_ne!(first.key(), recycling.key());
        // A refusal holds no key: the resident may report again once the window opens.
        let too_early = Report::file(
            "MB-4".to_owned(),
            &request(),
            Decision::Refused {
                reason: Refusal::TooEarly {
                    collection_day: date(2026, 11, 24),
                    opens_by: ms(2026, 11, 24, 17, 0),
                },
            },
            ms(2026, 11, 24, 9, 0),
        );
        assert_eq!(too_early.collection_day, Some(date(2026, 11, 24)));
        assert_eq!(too_early.key(), None);
    }

    #[test]
    fn redispatch_keeps_the_report_in_progress_with_the_new_job() {
        let mut report = accepted(ms(2026, 11, 24, 18, 0));
        report
            .dispatch("J-1".to_owned(), None, ms(2026, 11, 24, 18, 1))
            .unwrap();
        report
            .dispatch("J-2".to_owned(), None, ms(2026, 11, 25, 8, 0))
            .unwrap();
        assert_eq!(report.job_id.as_deref(), Some("J-2"));
        assert_eq!(report.history.len(), 3);
        let old_job = confirmation(7, Outcome::Collected, ms(2026, 11, 24, 17, 30), Some("J-1"));
        assert!(!report.should_close(&old_job));
    }

    #[test]
    fn a_return_visit_not_completed_rejects_the_report_until_the_job_is_done() {
        let mut report = accepted(ms(2026, 11, 24, 18, 0));
        let blocked_on = |job: Option<&str>| {
            confirmation(8, Outcome::BlockedAccess, ms(2026, 11, 25, 10, 5), job)
        };
        // Only on its own job, once dispatched.
        assert!(!report.return_failed_by(&blocked_on(Some("J-1"))));
        report
            .dispatch(
                "J-1".to_owned(),
                Some(ms(2026, 11, 25, 17, 0)),
                ms(2026, 11, 24, 18, 1),
            )
            .unwrap();
        assert!(!report.return_failed_by(&blocked_on(None)));
        assert!(!report.return_failed_by(&blocked_on(Some("J-0"))));
        let blocked = blocked_on(Some("J-1"));
        report
            .return_not_completed(&blocked, ms(2026, 11, 25, 10, 6))
            .unwrap();
        assert_eq!(report.status, ReportStatus::Rejected);
        let last = report.history.last().unwrap();
        assert_eq!(
            last.reason,
            Reason::ReturnNotCompleted {
                outcome: Outcome::BlockedAccess,
                at: ms(2026, 11, 25, 10, 5)
            }
        );
        assert_eq!(last.evidence, Some(EvidenceRef::new("cab-rcv07#8")));
        // Once only.
        assert!(report
            .return_not_completed(&blocked, ms(2026, 11, 25, 10, 7))
            .is_err());
        // The same bin emptied on the next round is no evidence of the job...
        let next_round = confirmation(9, Outcome::Collected, ms(2026, 12, 1, 9, 0), None);
        assert!(!report.should_close(&next_round));
        // ...but the crew going back on the job is.
        let done = confirmation(10, Outcome::Collected, ms(2026, 11, 25, 14, 0), Some("J-1"));
        assert!(report.should_close(&done));
        report.close(&done, done.at).unwrap();
        assert_eq!(report.status, ReportStatus::Closed);
    }

    #[test]
    fn serde_round_trip() {
        let mut report = accepted(ms(2026, 11, 24, 18, 0));
        report.contact = Some(Contact {
            email: Some("resident@example.org".to_owned()),
            ..Contact::default()
        });
        report
            .dispatch("J-1".to_owned(), None, ms(2026, 11, 24, 18, 1))
            .unwrap();
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    }
}
