//! The report desk seen through Open311: residents' requests become reports, and reports are
//! shown back with their status in Open311's two words (open, closed) and their history in
//! plain English, and each change as a FixMyStreet `servicerequestupdates` update (the status
//! mapping is explained in [`crate::open311`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use proto::TimestampMs;

use super::desk::{DeskError, NewReport, NewUnplaced, ReportDesk};
use crate::access::{AccessRegistry, Refusal};
use crate::clock::SharedClock;
use crate::missed_bins::{
    self, CommentAdded, LatLon, NewComment, NotPlaced, Reason, Report, ReportError, ReportPlace,
    ReportStatus, Transition,
};
use crate::open311::{
    BackendError, Contact, CreatedRequest, Location, NewRequestUpdate, NewServiceRequest,
    Open311Backend, Open311Status, PostedUpdate, RequestFilter, RequestUpdate, ServiceRequest,
    Subject, UpdateSearch, UpdateStatus,
};

/// Who residents are told deals with their report.
const AGENCY: &str = "Waste Services";

/// Open311 over the report desk.
pub struct DeskOpen311 {
    desk: Arc<ReportDesk>,
    access: AccessRegistry,
    clock: SharedClock,
}

impl DeskOpen311 {
    /// Open311 over `desk`, creating requests for the integrations `access` has issued an
    /// api_key (`gateway integrations add`).
    pub fn new(desk: Arc<ReportDesk>, access: AccessRegistry, clock: SharedClock) -> Self {
        Self {
            desk,
            access,
            clock,
        }
    }

    /// The property a request is about: its UPRN if on the register, else a property near its
    /// pin, else one its address names ([`missed_bins::matching::place_report`]).
    fn property_for(
        &self,
        location: &Location,
        stream: proto::BinStream,
    ) -> Result<u64, Vec<NotPlaced>> {
        let place = ReportPlace {
            uprn: location.address_id,
            pin: location.position.map(|p| LatLon {
                lat: p.lat,
                lon: p.long,
            }),
            address: location.address_string.as_deref(),
        };
        self.desk.with_missed(|missed| {
            missed_bins::matching::place_report(
                missed.register(),
                &place,
                stream,
                missed.matching(),
            )
            .map(|(uprn, _)| uprn)
        })
    }

    fn view(&self, report: &Report) -> ServiceRequest {
        let notes = self.desk.status_notes(report).join(" ");
        let (property, expected) = self.desk.with_missed(|missed| {
            let property = report
                .uprn
                .and_then(|uprn| missed.register().get(uprn))
                .cloned();
            (property, expected_by(missed, report))
        });
        ServiceRequest {
            id: report.id.clone(),
            status: open311_status(report.status),
            extended_status: report
                .history
                .last()
                .map_or(update_status(report.status), transition_status),
            status_notes: notes,
            subject: Subject::MissedBin(report.stream),
            description: report.description.clone(),
            agency_responsible: Some(AGENCY.to_owned()),
            service_notice: Some(notice(report).to_owned()),
            requested: utc(report.created_at),
            updated: utc(report.history.last().map_or(report.created_at, |t| t.at)),
            expected: expected.map(utc),
            zipcode: property
                .as_ref()
                .and_then(|p| missed_bins::bin_days::postcode_of(&p.address)),
            address: property.as_ref().map(|p| p.address.clone()),
            address_id: report.uprn,
            // The property's position, or where the resident put the pin while it has none.
            lat: property
                .as_ref()
                .map(|p| p.position)
                .or(report.pin)
                .map(|at| at.lat),
            long: property
                .as_ref()
                .map(|p| p.position)
                .or(report.pin)
                .map(|at| at.lon),
            media_url: None,
        }
    }
}

impl Open311Backend for DeskOpen311 {
    fn api_key_accepted(&self, key: &str) -> bool {
        // The key's name finds its hash; the secret is checked against it in constant time.
        match self.access.integration(key) {
            Ok(_) => true,
            Err(Refusal::Store(e)) => {
                tracing::error!(error = %e, "cannot read the integrations' keys; refusing");
                false
            }
            Err(_) => false,
        }
    }

    fn create(&self, request: NewServiceRequest) -> Result<CreatedRequest, BackendError> {
        let now = self.clock.now_ms();
        let Some(stream) = request.subject.stream() else {
            return Err(BackendError::Invalid {
                field: "service_code".into(),
                message: "is not a missed-bin service".into(),
            });
        };
        let placed = self.property_for(&request.location, stream);
        let filed = match placed {
            Ok(uprn) => self.desk.file(
                NewReport {
                    uprn,
                    stream,
                    description: request.description,
                    contact: Some(contact(&request.contact)),
                },
                now,
            ),
            // A pin that is nowhere near a property we collect from: kept for staff to place,
            // since refusing it would have FixMyStreet send it again at every run, for ever.
            Err(why)
                if why
                    .iter()
                    .any(|w| matches!(w, NotPlaced::NoPropertyNearPin { .. })) =>
            {
                let pin = request.location.position.map(|p| LatLon {
                    lat: p.lat,
                    lon: p.long,
                });
                self.desk.file_unplaced(
                    NewUnplaced {
                        stream,
                        pin,
                        description: request.description,
                        contact: Some(contact(&request.contact)),
                    },
                    now,
                )
            }
            Err(why) => return Err(BackendError::UnknownAddress(not_placed_text(&why))),
        };
        let report = filed.map_err(|e| match e {
            DeskError::Report(ReportError::UnknownProperty { uprn }) => {
                BackendError::UnknownAddress(format!(
                    "address_id {uprn} is not a property we collect from"
                ))
            }
            other => BackendError::Unavailable(other.to_string()),
        })?;
        Ok(CreatedRequest {
            id: report.id.clone(),
            service_notice: Some(notice(&report).to_owned()),
            account_id: request.contact.account_id,
        })
    }

    fn get(&self, id: &str) -> Result<Option<ServiceRequest>, BackendError> {
        let report = self.desk.report(id).map_err(unavailable)?;
        Ok(report.map(|report| self.view(&report)))
    }

    fn list(&self, filter: &RequestFilter) -> Result<Vec<ServiceRequest>, BackendError> {
        match filter {
            RequestFilter::Ids(ids) => {
                let mut found = Vec::new();
                for id in ids {
                    if let Some(request) = self.get(id)? {
                        found.push(request);
                    }
                }
                Ok(found)
            }
            RequestFilter::Search(search) => {
                let mut reports = self
                    .desk
                    .reports_since(search.from.timestamp_millis())
                    .map_err(unavailable)?;
                reports.retain(|report| {
                    report.created_at <= search.to.timestamp_millis()
                        && search.subjects.contains(&Subject::MissedBin(report.stream))
                        && search.statuses.contains(&open311_status(report.status))
                });
                reports.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
                reports.truncate(search.limit);
                Ok(reports.iter().map(|report| self.view(report)).collect())
            }
        }
    }

    fn add_update(&self, update: NewRequestUpdate) -> Result<PostedUpdate, BackendError> {
        let (request_id, comment) = comment_of(update);
        let added = self
            .desk
            .comment(&request_id, comment, self.clock.now_ms())
            .map_err(unavailable)?;
        posted(request_id, added)
    }

    fn updates(&self, search: &UpdateSearch) -> Result<Vec<RequestUpdate>, BackendError> {
        // Every report, however long ago it was filed: a bin can be collected days after the
        // report. The store reads every report to answer `reports_since` whatever the bound, so
        // a look-back bound would save nothing and could miss a late change.
        let reports = self
            .desk
            .reports_since(TimestampMs::MIN)
            .map_err(unavailable)?;
        let mut updates = Vec::new();
        for report in &reports {
            let times = update_times(report);
            if !times.iter().any(|at| within(search, *at)) {
                continue;
            }
            let notes = self.desk.status_notes(report);
            updates.extend(report_updates(report, &times, notes, search));
        }
        // Stable, so one report's updates at the same second stay in the report's order.
        updates.sort_by(|a, b| {
            a.updated
                .cmp(&b.updated)
                .then_with(|| a.request_id.cmp(&b.request_id))
        });
        updates.truncate(search.limit);
        Ok(updates)
    }
}

/// The resident's contact details as the report keeps them.
/// A resident's comment posted through `servicerequestupdates`, as a report keeps it, with the
/// id of the report it is on: the same for every service's backend.
pub(crate) fn comment_of(update: NewRequestUpdate) -> (String, NewComment) {
    let given = contact(&update.contact);
    let comment = NewComment {
        client_id: update.client_update_id,
        made_at: update.updated.map(|at| at.timestamp_millis()),
        text: update.description,
        front_end_status: update.status,
        contact: (given != missed_bins::Contact::default()).then_some(given),
        account_id: update.contact.account_id,
        media_url: update.media_url,
    };
    (update.request_id, comment)
}

/// What the front end is answered once a desk has taken (or not) the comment on `request_id`.
pub(crate) fn posted(
    request_id: String,
    added: Option<CommentAdded>,
) -> Result<PostedUpdate, BackendError> {
    match added {
        Some(CommentAdded::New(id) | CommentAdded::Again(id)) => Ok(PostedUpdate { update_id: id }),
        Some(CommentAdded::Full) => Err(BackendError::Invalid {
            field: "service_request_id".into(),
            message: format!(
                "report {request_id} has {} comments, as many as it keeps; please contact the \
                 council",
                missed_bins::comment::MAX_COMMENTS
            ),
        }),
        None => Err(BackendError::UnknownRequest(request_id)),
    }
}

pub(crate) fn contact(given: &Contact) -> missed_bins::Contact {
    let name = [&given.first_name, &given.last_name]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    missed_bins::Contact {
        name: (!name.is_empty()).then_some(name),
        email: given.email.clone(),
        phone: given.phone.clone(),
    }
}

fn within(search: &UpdateSearch, at: DateTime<Utc>) -> bool {
    (search.from..=search.to).contains(&at)
}

/// The time each of `report`'s transitions is shown with: its own, to the second, but never
/// before an earlier transition's. A crew's record can carry a time before the return job was
/// sent (a device clock behind ours, or a bin emptied before the job reached the cab), and
/// FixMyStreet ignores the status of an update older than the last one it applied, which would
/// leave a collected bin "action scheduled". The note keeps the crew's own time.
fn update_times(report: &Report) -> Vec<DateTime<Utc>> {
    let mut latest = TimestampMs::MIN;
    report
        .history
        .iter()
        .map(|transition| {
            latest = latest.max(transition.at);
            utc(latest.div_euclid(1000).saturating_mul(1000))
        })
        .collect()
}

/// `report`'s transitions shown at `times` within `search`'s window, each with its note from
/// `notes` (one per transition, same order), oldest first.
fn report_updates(
    report: &Report,
    times: &[DateTime<Utc>],
    notes: Vec<String>,
    search: &UpdateSearch,
) -> Vec<RequestUpdate> {
    report
        .history
        .iter()
        .zip(times)
        .zip(notes)
        .enumerate()
        .filter(|(_, ((_, at), _))| within(search, **at))
        .map(|(index, ((transition, at), note))| RequestUpdate {
            // History only grows, so a transition keeps its place, and this id, for good.
            update_id: format!("{}-{index}", report.id),
            request_id: report.id.clone(),
            status: transition_status(transition),
            updated: *at,
            description: note,
            external_status_code: Some(transition.status.as_str().to_owned()),
            media_url: None,
        })
        .collect()
}

/// Why a request's locations named no property, in one paragraph for the resident and the
/// front end's staff (FixMyStreet shows it in its list of reports that failed to send).
fn not_placed_text(why: &[NotPlaced]) -> String {
    let sentences: Vec<String> = why
        .iter()
        .map(|reason| match reason {
            NotPlaced::UnknownUprn { uprn } => {
                format!("address_id {uprn} is not a property we collect from.")
            }
            NotPlaced::NoPropertyNearPin { reach_m } => format!(
                "No property we collect from is within {reach_m:.0} m of the pin; move the pin \
                 to the property, or give its address_id (UPRN)."
            ),
            NotPlaced::UnknownAddress => {
                "address_string matches no property we collect from.".to_owned()
            }
            NotPlaced::AmbiguousAddress { matches } => format!(
                "address_string matches {}{matches} properties; give the house number or name, \
                 a pin, or the address_id (UPRN).",
                if *matches >= missed_bins::matching::MAX_ADDRESS_CANDIDATES {
                    "at least "
                } else {
                    ""
                }
            ),
            NotPlaced::NoLocation => "a location was not provided.".to_owned(),
        })
        .collect();
    sentences.join(" ")
}

fn unavailable(e: DeskError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

/// Open311's two statuses: a report is closed once nothing more will happen to it, whether the
/// bin was emptied, the crew's evidence explains it, or it could not be taken.
fn open311_status(status: ReportStatus) -> Open311Status {
    match status {
        ReportStatus::Open | ReportStatus::InProgress => Open311Status::Open,
        ReportStatus::Refused | ReportStatus::Rejected | ReportStatus::Closed => {
            Open311Status::Closed
        }
    }
}

/// The FixMyStreet status for a report that has just become `status`; the table and the reasons
/// are in [`crate::open311`]'s documentation. Never `closed`, which FixMyStreet bodies without
/// extended statuses read as fixed.
fn update_status(status: ReportStatus) -> UpdateStatus {
    match status {
        ReportStatus::Open => UpdateStatus::Open,
        ReportStatus::InProgress => UpdateStatus::ActionScheduled,
        ReportStatus::Closed => UpdateStatus::Fixed,
        ReportStatus::Rejected | ReportStatus::Refused => UpdateStatus::NoFurtherAction,
    }
}

/// The FixMyStreet status a transition shows: its report status's ([`update_status`]), but
/// `investigating` for a report waiting for staff to place it.
fn transition_status(transition: &Transition) -> UpdateStatus {
    match transition.reason {
        Reason::Unplaced { .. } => UpdateStatus::Investigating,
        _ => update_status(transition.status),
    }
}

/// What happens next, in a sentence.
fn notice(report: &Report) -> &'static str {
    if report.uprn.is_none() {
        return "We could not match the location to an address; our staff will look at it.";
    }
    match report.status {
        ReportStatus::Open => "We have accepted your report and will send a crew back.",
        ReportStatus::InProgress => {
            "A crew has been sent back to empty your bin by the end of the next working day."
        }
        ReportStatus::Closed => "Your bin has been emptied.",
        ReportStatus::Rejected => "Our crew recorded why the bin was not emptied; see the notes.",
        ReportStatus::Refused => "We could not take this report; see the notes for why.",
    }
}

/// When an accepted report's return job is due: the round end of the working day after it was
/// dispatched (the return job's own due time).
fn expected_by(missed: &missed_bins::MissedBins, report: &Report) -> Option<TimestampMs> {
    if report.status != ReportStatus::InProgress {
        return None;
    }
    let dispatched = report
        .history
        .iter()
        .rev()
        .find(|t| t.status == ReportStatus::InProgress)?;
    if let Reason::ReturnJobDispatched { due: Some(due), .. } = dispatched.reason {
        return Some(due);
    }
    // A report from before the due time was kept: as the job was made.
    let job_id = report.job_id.clone().unwrap_or_default();
    missed
        .return_job(report, job_id, dispatched.at)
        .ok()
        .map(|job| job.due)
}

pub(crate) fn utc(ms: TimestampMs) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::missed_bins::{EvidenceRef, Refusal};
    use proto::{BinStream, Outcome};

    fn ms(text: &str) -> TimestampMs {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn transition(at: &str, status: ReportStatus, reason: Reason) -> Transition {
        Transition {
            at: ms(at),
            status,
            reason,
            evidence: None,
        }
    }

    fn report(id: &str, history: Vec<Transition>) -> Report {
        Report {
            id: id.to_owned(),
            uprn: Some(100_021_445_102),
            pin: None,
            stream: BinStream::Refuse,
            collection_day: None,
            created_at: history[0].at,
            status: history.last().unwrap().status,
            history,
            job_id: None,
            contact: None,
            description: None,
            linked_to: None,
            linked: Vec::new(),
            comments: Vec::new(),
            contact_purged_at: None,
        }
    }

    /// Filed, dispatched, then closed by a crew record stamped before the dispatch.
    fn returned() -> Report {
        report(
            "MB-7",
            vec![
                transition(
                    "2026-11-24T18:00:00.250Z",
                    ReportStatus::Open,
                    Reason::Accepted {
                        crew_recorded_collected_at: None,
                    },
                ),
                transition(
                    "2026-11-24T18:01:00.900Z",
                    ReportStatus::InProgress,
                    Reason::ReturnJobDispatched {
                        job: "RJ-MB-7".into(),
                        due: None,
                    },
                ),
                Transition {
                    evidence: Some(EvidenceRef::record("cab-rcv07", 5)),
                    ..transition(
                        "2026-11-24T18:00:30Z",
                        ReportStatus::Closed,
                        Reason::Collected {
                            at: ms("2026-11-24T18:00:30Z"),
                        },
                    )
                },
            ],
        )
    }

    fn window(from: &str, to: &str) -> UpdateSearch {
        UpdateSearch {
            from: utc(ms(from)),
            to: utc(ms(to)),
            limit: 10,
        }
    }

    fn notes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("note {i}")).collect()
    }

    #[test]
    fn update_times_are_whole_seconds_and_never_go_back() {
        let times: Vec<String> = update_times(&returned())
            .iter()
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            times,
            vec![
                "2026-11-24T18:00:00+00:00",
                "2026-11-24T18:01:00+00:00",
                // The crew's 18:00:30 would come before the dispatch.
                "2026-11-24T18:01:00+00:00",
            ]
        );
    }

    #[test]
    fn each_transition_is_an_update_with_a_stable_id_and_its_note() {
        let report = returned();
        let times = update_times(&report);
        let all = report_updates(
            &report,
            &times,
            notes(3),
            &window("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z"),
        );
        let summary: Vec<(&str, &str, &str, Option<&str>)> = all
            .iter()
            .map(|u| {
                (
                    u.update_id.as_str(),
                    u.status.as_str(),
                    u.description.as_str(),
                    u.external_status_code.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("MB-7-0", "open", "note 0", Some("open")),
                ("MB-7-1", "action_scheduled", "note 1", Some("in_progress")),
                ("MB-7-2", "fixed", "note 2", Some("closed")),
            ]
        );
        assert!(all.iter().all(|u| u.request_id == "MB-7"
            && u.media_url.is_none()
            && crate::open311::model::is_valid_request_id(&u.update_id)));

        // The window is inclusive at both ends and on the shown (whole-second) time.
        let later = report_updates(
            &report,
            &times,
            notes(3),
            &window("2026-11-24T18:01:00Z", "2026-11-24T18:01:00Z"),
        );
        let ids: Vec<&str> = later.iter().map(|u| u.update_id.as_str()).collect();
        assert_eq!(ids, vec!["MB-7-1", "MB-7-2"]);
        assert!(report_updates(
            &report,
            &times,
            notes(3),
            &window("2026-11-24T18:01:01Z", "2026-11-25T00:00:00Z"),
        )
        .is_empty());
    }

    #[test]
    fn rejections_and_refusals_close_with_no_further_action() {
        assert_eq!(update_status(ReportStatus::Open), UpdateStatus::Open);
        assert_eq!(
            update_status(ReportStatus::InProgress),
            UpdateStatus::ActionScheduled
        );
        assert_eq!(update_status(ReportStatus::Closed), UpdateStatus::Fixed);
        let rejected = report(
            "MB-8",
            vec![transition(
                "2026-11-24T09:00:00Z",
                ReportStatus::Rejected,
                Reason::CrewRecorded {
                    outcome: Outcome::NotPresented,
                    at: ms("2026-11-24T07:42:00Z"),
                },
            )],
        );
        let refused = report(
            "MB-9",
            vec![transition(
                "2026-11-24T09:00:00Z",
                ReportStatus::Refused,
                Reason::Refused {
                    refusal: Refusal::NoCollectionDay,
                },
            )],
        );
        for (report, code) in [(rejected, "rejected"), (refused, "refused")] {
            let updates = report_updates(
                &report,
                &update_times(&report),
                notes(1),
                &window("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z"),
            );
            assert_eq!(updates.len(), 1);
            assert_eq!(updates[0].status, UpdateStatus::NoFurtherAction);
            assert_eq!(updates[0].external_status_code.as_deref(), Some(code));
        }
    }
}
