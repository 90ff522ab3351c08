//! Open311 GeoReport v2, the interface residents' front ends (FixMyStreet and other Open311
//! clients) already speak, for reporting missed bins and following them to the end.
//!
//! [`router`] serves the specification's resources, relative to the endpoint (the gateway nests
//! it under `/open311/v2`), each as `.json` and `.xml`:
//!
//! | method and path | answer |
//! |---|---|
//! | `GET services.json` | one service per bin stream (`refuse`, `recycling`, …), group "Missed bin", and `missed_collection` |
//! | `GET services/{code}.json` | the service definition: no attributes for a stream; `missed_collection` has the bin as `service_id` |
//! | `POST requests.json` | `[{service_request_id, service_notice, account_id}]`; needs `api_key` |
//! | `GET requests.json` | reports by `service_request_id`, or by `service_code`, `status`, `start_date`, `end_date` |
//! | `GET requests/{id}.json` | one report, as a one-element array |
//! | `GET servicerequestupdates.json` | every change to a report in a window, oldest first; needs `api_key` |
//! | `POST servicerequestupdates.json` | a resident's comment on a report, kept for staff: `[{update_id}]`; needs `api_key` |
//!
//! The rest of the gateway plugs in through [`Open311Backend`]; [`model`] has the types it
//! exchanges, [`form`] reads and validates what clients send, [`format`](mod@format) writes JSON and XML,
//! [`dates`] the W3C date-times (in the council's offset), [`error`] the error answers.
//!
//! Decisions where the specification leaves room (each explained where it is made):
//! - a created request is answered with **200** (the specification gives no status; FixMyStreet
//!   accepts any 2xx, other clients check for 200);
//! - errors use the specification's statuses only: 403 for the api_key, 404 for unknown
//!   services, requests and paths, 400 for the rest, including an outage behind the API (whose
//!   body code is 503 so clients can tell it apart);
//! - `address_id` is the property's UPRN; FixMyStreet's `attribute[uprn]` is read as one too;
//!   every location given (UPRN, pin, `address_string`) is passed on and tried in that order, so
//!   an unknown UPRN falls back to the pin and a pin to the address
//!   ([`crate::missed_bins::matching::place_report`]);
//! - what FixMyStreet would retry for ever if refused is accepted where it can be: it retries
//!   every failed send at every run whatever the error, so a description over the
//!   specification's 4,000 characters is kept (shortened in the middle past 8,000), and
//!   `multipart/form-data` (its uploads) is read like a form, and a pin far from any property is
//!   kept for staff to place (the backend's choice); `docs/OPEN311.md` lists what is still
//!   refused and why;
//! - `GET requests` keeps the specification's window: the last 90 days by default, at most 90
//!   days, at most 1000 requests; a date without a time is a whole local day; by id, up to
//!   10,000 ids (FixMyStreet asks for all its open reports at once);
//! - `GET requests` shows FixMyStreet's extended statuses unless configured not to
//!   ([`Settings::extended_statuses`], [`ServiceRequest::listed_status`]): FixMyStreet marks a
//!   report fixed when that call says `closed`, so `closed` is kept for a bin emptied and a
//!   rejection is `no_further_action`;
//! - `jurisdiction_id` is checked only when one is configured (404 for another, as the
//!   specification says); absent is accepted;
//! - absent values are `null` in JSON and left out of XML.
//!
//! # FixMyStreet's `servicerequestupdates`
//!
//! GeoReport v2 can only say open or closed, and only when asked about a report; FixMyStreet
//! learns what happened to the reports it sent by polling its extension, `GET
//! servicerequestupdates.xml?api_key=…&start_date=…&end_date=…` (on a schedule, by default for
//! the last two hours), and shows each new `update_id` to the resident as an update from the
//! council, moving the report to the update's `status`. Decisions:
//! - **the api_key is required** (403 without it, as for a POST): FixMyStreet sends its key
//!   with this call, and the feed, every change to every report in bulk, is for the council's own
//!   front ends rather than the public lookups of `GET requests`;
//! - **every transition of a report is an update**, filing included (the acceptance, or the
//!   rejection or refusal that closes a report at once), with `update_id` `{report id}-{n}`, `n`
//!   its place in the report's history from 0: a report's history only grows, so ids never change
//!   and FixMyStreet never shows a change twice;
//! - the window is on `updated_datetime`: `start_date` and `end_date` as `GET requests` reads
//!   them, the last 24 hours when neither is given, `end_date` now when only `start_date` is, at
//!   most **7 days** (ask for a longer catch-up a week at a time); oldest first, at most 1000
//!   (a client wanting more continues from the last `updated_datetime`; a warning is logged);
//! - `updated_datetime` never goes backwards within a report: a crew's record can carry a time
//!   before the return job was sent (a device clock behind ours, or a crew emptying the bin
//!   before the job reached it), and FixMyStreet applies an update's status only if it is not
//!   older than the last one, so an out-of-order time would leave a collected bin "action
//!   scheduled". The description still gives the crew's own time;
//! - `description` is the plain-English note for that transition (the crew's evidence for a
//!   rejection), `external_status_code` our own status (`open`, `in_progress`, `closed`,
//!   `rejected`, `refused`) for councils that choose FixMyStreet response templates by it, and
//!   `media_url` is absent (no photos yet).
//!
//! Statuses: FixMyStreet reads the extended statuses of [`UpdateStatus`]. Ours map to the
//! nearest, following FixMyStreet's own waste integrations (Echo: "allocated to crew" → action
//! scheduled, "completed" → fixed, "not completed" → unable to fix):
//!
//! | report status | `status` | FixMyStreet shows |
//! |---|---|---|
//! | open (accepted, return to be arranged) | `open` | open |
//! | in_progress (return job sent to a crew) | `action_scheduled` | action scheduled |
//! | closed (a crew emptied the bin) | `fixed` | fixed |
//! | rejected (the crew recorded it not out, contaminated, blocked…, when it was reported or on the return visit) | `no_further_action` | no further action (closed) |
//! | refused (too early, too late, not a bin collected there) | `no_further_action` | no further action (closed) |
//!
//! `closed` is never sent in the feed: a FixMyStreet body without extended statuses reads it as
//! *fixed*, which would tell a resident whose bin was left that it had been emptied.
//!
//! # Residents' comments: `POST servicerequestupdates`
//!
//! FixMyStreet's one `send_comments` setting turns on both fetching updates and posting
//! residents' comments on sent reports, so refusing comments would have it retry each one every
//! run. A comment (its fields in [`form::new_update`]) is kept on the report for staff (the staff
//! API shows it), answered with our id for it (`{report id}-c{n}`, never one of the updates
//! feed's), and taken once per FixMyStreet `update_id`: a resend gets the same id. It does not
//! change the report (only the crews' evidence does), it is not an update in the feed (FixMyStreet
//! would show the resident's own words back as the council's), and nothing of it, least of all
//! the resident's contact details, appears in `GET requests`.
//!
//! Not implemented: `tokens/{token}` (every service is `realtime`, so there are no tokens) and
//! service discovery.

pub mod by_service;
pub mod dates;
pub mod error;
pub mod form;
pub mod format;
mod handlers;
pub mod model;

#[cfg(test)]
mod tests;

pub use by_service::ByService;
pub use error::{FieldError, Open311Error};
pub use handlers::{router, MAX_BODY_BYTES, MAX_MULTIPART_BYTES};
pub use model::{
    BackendError, Contact, CreatedRequest, LatLong, Location, NewRequestUpdate, NewServiceRequest,
    Open311Backend, Open311Status, PostedUpdate, RequestFilter, RequestSearch, RequestUpdate,
    Service, ServiceRequest, Settings, Subject, UpdateSearch, UpdateStatus, HEATING_CODE,
};
