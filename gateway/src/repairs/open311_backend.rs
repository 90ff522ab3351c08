//! Tenants' heating reports seen through Open311 (the `heating_fault` service): a report is
//! matched to the home's boiler by its UPRN (`address_id`) and follows the repair job for that
//! boiler ([`RepairDesk::file_heating_report`]); it is shown with the job's status and, in its
//! `status_notes` and the updates feed, the job's progress in plain English ([`super::notes`]),
//! so the tenant contacts the council once and sees the repair through.
//!
//! Updates: the filing is `{report}-0`; every later change to the job that a tenant hears of is
//! `{report}-{n}`, `n` its place in the job's history plus one (the history only grows, so an id
//! names one change for good), its time never before the previous update's.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use proto::TimestampMs;

use super::desk::{NewHeatingReport, RepairDesk, RepairError};
use super::model::{HeatingReport, Repair};
use super::notes;
use crate::clock::SharedClock;
use crate::missed_bins;
use crate::missed_bins::bin_days::postcode_of;
use crate::open311::{
    BackendError, CreatedRequest, NewRequestUpdate, NewServiceRequest, Open311Backend,
    PostedUpdate, RequestFilter, RequestUpdate, ServiceRequest, Subject, UpdateSearch,
};
use crate::reports::open311_backend::{comment_of, contact, posted, utc};

/// Who tenants are told deals with their report.
const AGENCY: &str = "Housing Repairs";
/// What a tenant is told will happen.
const NOTICE: &str = "An engineer will be booked to repair your heating; emergencies are \
                      attended within 24 hours.";

/// Open311 over the repairs desk, for the heating service only; behind
/// [`crate::open311::ByService`], which checks api_keys.
pub struct HeatingOpen311 {
    desk: Arc<RepairDesk>,
    clock: SharedClock,
    tz: Tz,
}

impl HeatingOpen311 {
    /// Heating reports over `desk`, times in `tz`.
    pub fn new(desk: Arc<RepairDesk>, clock: SharedClock, tz: Tz) -> Self {
        Self { desk, clock, tz }
    }

    fn job_of(&self, report: &HeatingReport) -> Result<Repair, BackendError> {
        self.desk
            .job(&report.job)
            .map_err(unavailable)?
            .ok_or_else(|| BackendError::Unavailable(format!("report {} names no job", report.id)))
    }

    fn view(&self, report: &HeatingReport, job: &Repair) -> ServiceRequest {
        let updated = job
            .history
            .last()
            .map_or(report.filed_at, |t| t.at)
            .max(report.filed_at);
        ServiceRequest {
            id: report.id.clone(),
            status: notes::open311_status(job.status),
            extended_status: notes::update_status(job.status),
            status_notes: notes::status_notes(report, job, self.tz),
            subject: Subject::Heating,
            description: report.description.clone(),
            agency_responsible: Some(AGENCY.to_owned()),
            service_notice: Some(NOTICE.to_owned()),
            requested: utc(report.filed_at),
            updated: utc(updated),
            expected: job.status.is_open().then(|| utc(job.due)),
            address: Some(job.address.clone()),
            address_id: Some(report.uprn),
            zipcode: postcode_of(&job.address),
            lat: None,
            long: None,
            media_url: None,
        }
    }

    /// `report`'s updates, oldest first: its filing, then each change to its job since that a
    /// tenant hears of.
    fn report_updates(&self, report: &HeatingReport, job: &Repair) -> Vec<RequestUpdate> {
        let seconds = |ms: TimestampMs| utc(ms.div_euclid(1000).saturating_mul(1000));
        let mut latest = report.filed_at;
        let mut updates = vec![RequestUpdate {
            update_id: format!("{}-0", report.id),
            request_id: report.id.clone(),
            status: notes::update_status(status_at(job, report.filed_at)),
            updated: seconds(latest),
            description: notes::linked_note(report, job),
            external_status_code: Some(status_at(job, report.filed_at).as_str().to_owned()),
            media_url: None,
        }];
        for (index, transition) in job.history.iter().enumerate() {
            if transition.at < report.filed_at {
                continue;
            }
            let Some(note) = notes::note(transition, job, self.tz) else {
                continue;
            };
            latest = latest.max(transition.at);
            updates.push(RequestUpdate {
                update_id: format!("{}-{}", report.id, index + 1),
                request_id: report.id.clone(),
                status: notes::update_status(transition.status),
                updated: seconds(latest),
                description: note,
                external_status_code: Some(transition.status.as_str().to_owned()),
                media_url: None,
            });
        }
        updates
    }
}

/// The job's status as it stood at `at`.
fn status_at(job: &Repair, at: TimestampMs) -> super::RepairStatus {
    job.history
        .iter()
        .take_while(|t| t.at <= at)
        .last()
        .map_or(job.status, |t| t.status)
}

fn unavailable(e: RepairError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

fn within(search: &UpdateSearch, at: DateTime<Utc>) -> bool {
    (search.from..=search.to).contains(&at)
}

impl Open311Backend for HeatingOpen311 {
    /// Keys are checked in front of this backend ([`crate::open311::ByService`]).
    fn api_key_accepted(&self, _key: &str) -> bool {
        false
    }

    fn create(&self, request: NewServiceRequest) -> Result<CreatedRequest, BackendError> {
        let Some(uprn) = request.location.address_id else {
            return Err(BackendError::UnknownAddress(
                "a heating report needs the home's UPRN as address_id".into(),
            ));
        };
        let given = contact(&request.contact);
        let new = NewHeatingReport {
            uprn,
            description: request.description,
            contact: (given != missed_bins::Contact::default()).then_some(given),
        };
        let (report, _job) = self
            .desk
            .file_heating_report(new, self.clock.now_ms())
            .map_err(|e| match e {
                RepairError::UnknownHome(uprn) => BackendError::UnknownAddress(format!(
                    "address_id {uprn} is not a council home whose boiler we look after"
                )),
                other => unavailable(other),
            })?;
        Ok(CreatedRequest {
            id: report.id,
            service_notice: Some(NOTICE.to_owned()),
            account_id: request.contact.account_id,
        })
    }

    fn get(&self, id: &str) -> Result<Option<ServiceRequest>, BackendError> {
        let Some(report) = self.desk.report(id).map_err(unavailable)? else {
            return Ok(None);
        };
        let job = self.job_of(&report)?;
        Ok(Some(self.view(&report, &job)))
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
                if !search.subjects.contains(&Subject::Heating) {
                    return Ok(Vec::new());
                }
                let mut found = Vec::new();
                for report in self.desk.reports().map_err(unavailable)? {
                    let filed = utc(report.filed_at);
                    if !(search.from..=search.to).contains(&filed) {
                        continue;
                    }
                    let view = self.view(&report, &self.job_of(&report)?);
                    if search.statuses.contains(&view.status) {
                        found.push(view);
                    }
                }
                found.sort_by(|a, b| b.requested.cmp(&a.requested).then(b.id.cmp(&a.id)));
                found.truncate(search.limit);
                Ok(found)
            }
        }
    }

    fn updates(&self, search: &UpdateSearch) -> Result<Vec<RequestUpdate>, BackendError> {
        let mut updates = Vec::new();
        for report in self.desk.reports().map_err(unavailable)? {
            let job = self.job_of(&report)?;
            updates.extend(
                self.report_updates(&report, &job)
                    .into_iter()
                    .filter(|u| within(search, u.updated)),
            );
        }
        updates.sort_by(|a, b| {
            a.updated
                .cmp(&b.updated)
                .then_with(|| a.request_id.cmp(&b.request_id))
        });
        updates.truncate(search.limit);
        Ok(updates)
    }

    fn add_update(&self, update: NewRequestUpdate) -> Result<PostedUpdate, BackendError> {
        let (request_id, comment) = comment_of(update);
        let added = self
            .desk
            .comment(&request_id, comment, self.clock.now_ms())
            .map_err(unavailable)?;
        posted(request_id, added)
    }
}
