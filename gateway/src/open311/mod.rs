//! Open311 GeoReport v2, the interface residents' front ends (FixMyStreet and other Open311
//! clients) already speak, for reporting missed bins and following them to the end.
//!
//! [`router`] serves the specification's resources, relative to the endpoint (the gateway nests
//! it under `/open311/v2`), each as `.json` and `.xml`:
//!
//! | method and path | answer |
//! |---|---|
//! | `GET services.json` | one service per bin stream (`refuse`, `recycling`, …), group "Missed bin" |
//! | `GET services/{code}.json` | the service definition: no attributes (`metadata` is false) |
//! | `POST requests.json` | `[{service_request_id, service_notice, account_id}]`; needs `api_key` |
//! | `GET requests.json` | reports by `service_request_id`, or by `service_code`, `status`, `start_date`, `end_date` |
//! | `GET requests/{id}.json` | one report, as a one-element array |
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
//!   `address_string` alone is refused, since free text cannot be matched to a property reliably;
//! - `GET requests` keeps the specification's window: the last 90 days by default, at most 90
//!   days, at most 1000 requests; a date without a time is a whole local day;
//! - absent values are `null` in JSON and left out of XML.
//!
//! Not implemented: `tokens/{token}` (every service is `realtime`, so there are no tokens),
//! service discovery, and FixMyStreet's `servicerequestupdates` extension.

pub mod dates;
pub mod error;
pub mod form;
pub mod format;
mod handlers;
pub mod model;

#[cfg(test)]
mod tests;

pub use error::{FieldError, Open311Error};
pub use handlers::{router, MAX_BODY_BYTES};
pub use model::{
    BackendError, Contact, CreatedRequest, Location, NewServiceRequest, Open311Backend,
    Open311Status, RequestFilter, RequestSearch, Service, ServiceRequest,
};
