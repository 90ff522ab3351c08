//! What the Open311 layer exchanges with the rest of the gateway: the [`Open311Backend`] seam,
//! the requests it takes and returns, the updates FixMyStreet polls for ([`RequestUpdate`]), and
//! the catalogue of services (one per bin stream, and tenants' heating faults).
//!
//! Nothing here knows about HTTP or formats, so that the backend (over the reports store) and
//! its tests need neither.

use chrono::{DateTime, Utc};
use proto::BinStream;

/// What the Open311 endpoints need from the gateway: check an api_key, create a report, read
/// reports back, and list what happened to them.
///
/// The methods are synchronous on purpose: the store behind them (sled, later PostgreSQL through
/// a blocking pool) does blocking I/O, and the router calls every method through
/// `tokio::task::spawn_blocking`, so an implementation may block without stalling the runtime
/// and needs no async machinery (no boxed futures, no `async fn` in a trait object).
pub trait Open311Backend: Send + Sync + 'static {
    /// Whether `key` may create service requests. Called before anything else in a POST; compare
    /// in constant time if keys are secrets worth guarding against timing.
    fn api_key_accepted(&self, key: &str) -> bool;

    /// Stores a new report. The request is already validated for form (service known, location
    /// in range, lengths capped); whether the property exists is the backend's to say, with
    /// [`BackendError::UnknownAddress`].
    fn create(&self, request: NewServiceRequest) -> Result<CreatedRequest, BackendError>;

    /// One report by its id, or `None` if there is none. The router only asks for ids of the
    /// form the backend hands out ([`is_valid_request_id`]).
    fn get(&self, id: &str) -> Result<Option<ServiceRequest>, BackendError>;

    /// The reports that match `filter`, newest `requested` first, at most
    /// [`RequestSearch::limit`] for a search.
    fn list(&self, filter: &RequestFilter) -> Result<Vec<ServiceRequest>, BackendError>;

    /// Every change to any report whose [`RequestUpdate::updated`] lies in
    /// `search.from..=search.to`, whenever the report was filed, oldest first (ties by report id,
    /// then in the report's own order), at most [`UpdateSearch::limit`]. The answer to
    /// FixMyStreet's `GET servicerequestupdates`.
    fn updates(&self, search: &UpdateSearch) -> Result<Vec<RequestUpdate>, BackendError>;

    /// Keeps a resident's comment on a report (FixMyStreet's `POST servicerequestupdates`) and
    /// says its id; the same id again when the client sent the same `update_id` for that report
    /// before, keeping it once. [`BackendError::UnknownRequest`] when there is no such report.
    fn add_update(&self, update: NewRequestUpdate) -> Result<PostedUpdate, BackendError>;
}

/// How the endpoint answers, from the gateway's configuration (`[open311]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Whether `GET requests` shows FixMyStreet's extended statuses rather than only `open` and
    /// `closed` (see [`ServiceRequest::listed_status`]).
    pub extended_statuses: bool,
    /// The one `jurisdiction_id` served; a request naming another is refused with 404. `None`:
    /// any value is accepted (and ignored).
    pub jurisdiction_id: Option<String>,
    /// Whether every service's keywords include `waste_only`, which FixMyStreet reads as "show
    /// this service only on the waste (WasteWorks) pages, not on the map".
    pub waste_only: bool,
}

/// Why the backend could not do what was asked. Each maps to an Open311 error: the first two to
/// 400 with their text shown to the resident, the last to a general service error whose detail is
/// logged, not shown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The location is not a property the council collects from. The text is the plain-English
    /// description the client shows, e.g. "address_id 100021999999 is not a property we collect
    /// from".
    #[error("{0}")]
    UnknownAddress(String),
    /// A field is well-formed but not acceptable (a stream the property does not have, say).
    #[error("{field}: {message}")]
    Invalid {
        /// The Open311 field name.
        field: String,
        /// Why, in plain English.
        message: String,
    },
    /// No report has this id: 404.
    #[error("service_request_id {0} was not found")]
    UnknownRequest(String),
    /// The store or something behind it failed; the client should try again later.
    #[error("the reports store is unavailable: {0}")]
    Unavailable(String),
}

/// What a request is about: its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A missed collection of this bin.
    MissedBin(BinStream),
    /// A tenant's heating or hot-water fault ([`HEATING_CODE`]).
    Heating,
}

impl Subject {
    /// The `service_code`.
    pub fn code(self) -> &'static str {
        match self {
            Subject::MissedBin(stream) => stream.as_str(),
            Subject::Heating => HEATING_CODE,
        }
    }

    /// The subject whose `service_code` is `code` (matched exactly), if any.
    pub fn parse(code: &str) -> Option<Self> {
        if code == HEATING_CODE {
            return Some(Subject::Heating);
        }
        BinStream::parse(code).map(Subject::MissedBin)
    }

    /// Every subject, in the services' order: the bin streams, then heating.
    pub fn all() -> Vec<Self> {
        let mut all: Vec<Self> = BinStream::ALL.into_iter().map(Subject::MissedBin).collect();
        all.push(Subject::Heating);
        all
    }

    /// The bin, for a missed collection.
    pub fn stream(self) -> Option<BinStream> {
        match self {
            Subject::MissedBin(stream) => Some(stream),
            Subject::Heating => None,
        }
    }
}

/// A resident's new report, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewServiceRequest {
    /// What it is about (the Open311 `service_code`).
    pub subject: Subject,
    /// Where: every location the client gave, for the backend to try in turn.
    pub location: Location,
    /// What the resident wrote, at most [`MAX_DESCRIPTION_CHARS`] characters (a longer one is
    /// shortened in the middle, see [`crate::open311::form`]).
    pub description: Option<String>,
    /// Who to tell; personal data, so it lives only on the report (never in logs).
    pub contact: Contact,
    /// Photos or other media, as http(s) URLs (FixMyStreet sends one `media_url` per photo).
    pub media_urls: Vec<String>,
}

/// The longest `description` kept. The specification says 4,000 characters; FixMyStreet frames
/// a resident's 4,000 with a title, the report's URL and "Submitted via FixMyStreet" (about 100
/// characters more, more with a long title), and a refused report is retried by it for ever, so
/// we keep twice the specification's.
pub const MAX_DESCRIPTION_CHARS: usize = 8000;

/// Where a report is about: every location a client sent (at least one), which the backend tries
/// in this order: the UPRN, then the pin, then the address (see
/// [`crate::missed_bins::matching::place_report`]). FixMyStreet sends a pin always and
/// `attribute[uprn]` from its waste pages, and `address_string` (the postcode searched for)
/// when the resident did not use the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// A property by its Unique Property Reference Number (the Open311 `address_id`, or
    /// FixMyStreet's `attribute[uprn]`).
    pub address_id: Option<u64>,
    /// A WGS84 position (`lat`, `long`), matched to a nearby property.
    pub position: Option<LatLong>,
    /// The client's `address_string`, matched against the register's addresses.
    pub address_string: Option<String>,
}

/// A WGS84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLong {
    /// Latitude in degrees, −90 to 90.
    pub lat: f64,
    /// Longitude in degrees, −180 to 180.
    pub long: f64,
}

impl Location {
    /// A location by UPRN alone.
    pub fn uprn(uprn: u64) -> Self {
        Self {
            address_id: Some(uprn),
            position: None,
            address_string: None,
        }
    }

    /// A location by position alone.
    pub fn lat_long(lat: f64, long: f64) -> Self {
        Self {
            address_id: None,
            position: Some(LatLong { lat, long }),
            address_string: None,
        }
    }
}

/// The resident's contact details, as the client sent them (all optional in Open311).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// Email address, lightly checked (one `@`, no spaces).
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// The client's id for the resident's account.
    pub account_id: Option<String>,
    /// The client's id for the resident's device.
    pub device_id: Option<String>,
}

/// A resident's comment on a report, as FixMyStreet's `POST servicerequestupdates` sends it,
/// validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequestUpdate {
    /// The report it is about.
    pub request_id: String,
    /// The client's id for it (FixMyStreet's comment id), by which a resend is recognised.
    pub client_update_id: Option<String>,
    /// What the resident wrote (at most [`MAX_DESCRIPTION_CHARS`], shortened as a report's).
    pub description: Option<String>,
    /// The status the client shows the report in, upper-cased (`OPEN`, `CLOSED`, `FIXED`,
    /// `REOPEN`…): kept for staff, it does not change the report.
    pub status: Option<String>,
    /// When the resident made it.
    pub updated: Option<DateTime<Utc>>,
    /// Who made it; personal data, kept only with the comment.
    pub contact: Contact,
    /// A photo.
    pub media_url: Option<String>,
}

/// What the backend says about a comment it has kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedUpdate {
    /// Our id for the comment, of the form [`is_valid_request_id`] accepts; FixMyStreet stores
    /// it as the comment's external id.
    pub update_id: String,
}

/// What the backend says about a report it has just created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedRequest {
    /// The new report's id (see [`is_valid_request_id`] for its form).
    pub id: String,
    /// What will happen next, in plain English ("A crew will return within two working days").
    pub service_notice: Option<String>,
    /// The account id to echo back, if any.
    pub account_id: Option<String>,
}

/// A report as residents see it: the fields of GeoReport v2 `GET requests`. No contact details:
/// these lists are public.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRequest {
    /// The report's id.
    pub id: String,
    /// Open or closed.
    pub status: Open311Status,
    /// The same in FixMyStreet's extended statuses, shown as `status` where the endpoint is set
    /// to them ([`Settings::extended_statuses`]): what tells a rejection from a collection.
    pub extended_status: UpdateStatus,
    /// Why it is in this state, with the crew's evidence, in plain English ("Your bin was not out
    /// when the crew passed at 07:42; photo taken").
    pub status_notes: String,
    /// What it is about (gives `service_code` and `service_name`).
    pub subject: Subject,
    /// What the resident wrote.
    pub description: Option<String>,
    /// Who deals with it ("Waste Services").
    pub agency_responsible: Option<String>,
    /// What will happen next.
    pub service_notice: Option<String>,
    /// When it was reported.
    pub requested: DateTime<Utc>,
    /// When it last changed (for a closed report, when it was closed).
    pub updated: DateTime<Utc>,
    /// When it should be dealt with by.
    pub expected: Option<DateTime<Utc>>,
    /// The property's address, most specific part first.
    pub address: Option<String>,
    /// The property's UPRN.
    pub address_id: Option<u64>,
    /// The postcode.
    pub zipcode: Option<String>,
    /// Latitude (WGS84).
    pub lat: Option<f64>,
    /// Longitude (WGS84).
    pub long: Option<f64>,
    /// A photo or other media.
    pub media_url: Option<String>,
}

impl ServiceRequest {
    /// The `status` `GET requests` shows. Basic: `open` or `closed`, as GeoReport v2 has them.
    /// Extended: `closed` only for a request done as asked (a bin emptied), since FixMyStreet's
    /// reading of `GET requests` marks a report fixed on `closed` and leaves it as it is on any
    /// other value (showing the status notes); the rest in FixMyStreet's extended statuses, as
    /// the updates feed has them (`open`, `action_scheduled`, `no_further_action`, …), so a
    /// rejection is never shown as fixed.
    pub fn listed_status(&self, extended: bool) -> &'static str {
        match (extended, self.status, self.extended_status) {
            (false, status, _) => status.as_str(),
            (true, Open311Status::Closed, UpdateStatus::Fixed | UpdateStatus::Closed) => "closed",
            (true, _, status) => status.as_str(),
        }
    }
}

/// The two statuses GeoReport v2 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Open311Status {
    /// Reported and not yet resolved.
    Open,
    /// Resolved: collected on a return visit, or rejected with the crew's evidence.
    Closed,
}

impl Open311Status {
    /// The wire value, `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Open311Status::Open => "open",
            Open311Status::Closed => "closed",
        }
    }
}

/// Which reports `GET requests` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestFilter {
    /// These ids, whatever their dates or status (the specification: `service_request_id`
    /// "overrides all other arguments"). Unknown ids are left out of the answer.
    Ids(Vec<String>),
    /// A search.
    Search(RequestSearch),
}

/// A search over reports by stream, status and time reported.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSearch {
    /// The services to include; never empty (all of them when the client names none).
    pub subjects: Vec<Subject>,
    /// The statuses to include; never empty.
    pub statuses: Vec<Open311Status>,
    /// Earliest `requested` to include (inclusive).
    pub from: DateTime<Utc>,
    /// Latest `requested` to include (inclusive); at most [`MAX_WINDOW_DAYS`] after `from`.
    pub to: DateTime<Utc>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// The specification's widest date window for `GET requests`, and the default one.
pub const MAX_WINDOW_DAYS: i64 = 90;

/// The specification's "first 1000 requests returned".
pub const MAX_RESULTS: usize = 1000;

/// The most ids one `GET requests?service_request_id=…` may list. FixMyStreet asks for all of a
/// body's open reports in one call, so the specification's 1,000 would fail its whole run; ten
/// times that bounds the work of one call. In practice the URI gives out first: the HTTP server
/// (hyper) answers 414 to a URI over 64 KiB, about 5,900 ids of our form (`MB-12345`, with
/// FixMyStreet's `%2C` between them).
pub const MAX_REQUEST_IDS: usize = 10_000;

/// Which updates `GET servicerequestupdates` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateSearch {
    /// Earliest [`RequestUpdate::updated`] to include (inclusive).
    pub from: DateTime<Utc>,
    /// Latest [`RequestUpdate::updated`] to include (inclusive); at most
    /// [`MAX_UPDATE_WINDOW_DAYS`] after `from`.
    pub to: DateTime<Utc>,
    /// At most this many, oldest first.
    pub limit: usize,
}

/// The widest window `GET servicerequestupdates` answers. FixMyStreet asks for the last two hours
/// every few minutes; a week lets an operator catch up after an outage, in one-week slices if
/// need be, without one request reading and sending months of history.
pub const MAX_UPDATE_WINDOW_DAYS: i64 = 7;

/// The window `GET servicerequestupdates` answers when the client names neither end.
pub const DEFAULT_UPDATE_WINDOW_HOURS: i64 = 24;

/// One change to a report, as FixMyStreet's `servicerequestupdates` extension carries it: the
/// report's status after the change and what happened, in plain English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUpdate {
    /// Identifies the change for good: FixMyStreet stores it and skips an update it has already
    /// seen, so the same change must keep the same id on every poll. Of the form
    /// [`is_valid_request_id`] accepts.
    pub update_id: String,
    /// The report it changed.
    pub request_id: String,
    /// The report's status after the change.
    pub status: UpdateStatus,
    /// When it changed, in whole seconds (what the answer shows, so that a client checking the
    /// time against its window agrees with ours).
    pub updated: DateTime<Utc>,
    /// What happened, for the resident ("Our crew collected your general waste bin at 11:05 on
    /// Wednesday 25 November. This report is now closed.").
    pub description: String,
    /// The backend's own finer status, which FixMyStreet keeps beside its own and can choose
    /// response templates by.
    pub external_status_code: Option<String>,
    /// A photo of what happened.
    pub media_url: Option<String>,
}

/// The statuses FixMyStreet's `servicerequestupdates` extension understands (its "extended
/// statuses"). FixMyStreet lower-cases the value, reads `_` as a space, and maps `open` to its
/// "confirmed", `fixed` to "fixed - council", `no_further_action` to "unable to fix",
/// `not_councils_responsibility` to "not responsible", and `closed` to "closed" only where the
/// body has extended statuses switched on (to "fixed - council" otherwise); the rest keep their
/// names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateStatus {
    /// Reported and accepted; nothing done yet.
    Open,
    /// Being looked into.
    Investigating,
    /// Work has been arranged.
    ActionScheduled,
    /// Work is under way.
    InProgress,
    /// Done.
    Fixed,
    /// Closed without saying how (shown as fixed by bodies without extended statuses).
    Closed,
    /// The same as another report.
    Duplicate,
    /// Someone else's to deal with.
    NotCouncilsResponsibility,
    /// Could not be done.
    UnableToFix,
    /// Nothing more will be done.
    NoFurtherAction,
    /// Passed to another team.
    InternalReferral,
}

impl UpdateStatus {
    /// The wire value, e.g. `action_scheduled`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Open => "open",
            UpdateStatus::Investigating => "investigating",
            UpdateStatus::ActionScheduled => "action_scheduled",
            UpdateStatus::InProgress => "in_progress",
            UpdateStatus::Fixed => "fixed",
            UpdateStatus::Closed => "closed",
            UpdateStatus::Duplicate => "duplicate",
            UpdateStatus::NotCouncilsResponsibility => "not_councils_responsibility",
            UpdateStatus::UnableToFix => "unable_to_fix",
            UpdateStatus::NoFurtherAction => "no_further_action",
            UpdateStatus::InternalReferral => "internal_referral",
        }
    }
}

/// Whether `id` has the form of a report id: 1 to 64 characters from `[A-Za-z0-9_-]`. The
/// router refuses other ids before the backend sees them, so backends must hand out ids of this
/// form. Commas and dots are excluded because `GET requests` separates ids with commas and the
/// path `requests/{id}.json` ends with the format.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One Open311 service: a type of report a resident can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// What it is about; its code is the `service_code`.
    pub subject: Subject,
    /// Human-readable name.
    pub name: &'static str,
    /// A short description.
    pub description: &'static str,
    /// Comma-separated synonyms, for clients' search boxes.
    pub keywords: &'static str,
    /// The group it is listed in.
    pub group: &'static str,
}

/// The group every missed-bin service belongs to.
pub const SERVICE_GROUP: &str = "Missed bin";

/// The service for tenants' heating and hot-water faults in council homes: a service of its
/// own, answered by the repairs desk, matched to the home's boiler by its UPRN (`address_id`).
pub const HEATING_CODE: &str = "heating_fault";

/// The heating service's group.
pub const HEATING_GROUP: &str = "Heating and hot water";

/// The one service for a missed collection of any bin, beside the per-stream ones, as
/// FixMyStreet's waste pages (WasteWorks) expect: the bin is in the attribute
/// [`MISSED_COLLECTION_ATTRIBUTE`], one of the streams' codes.
pub const MISSED_COLLECTION_CODE: &str = "missed_collection";

/// The attribute of [`MISSED_COLLECTION_CODE`] that names the bin, sent as
/// `attribute[service_id]` (the name FixMyStreet's Echo waste integration gives the bin's service
/// on its missed-collection category).
pub const MISSED_COLLECTION_ATTRIBUTE: &str = "service_id";

/// The missed-collection service's name, description and keywords.
pub const MISSED_COLLECTION: (&str, &str, &str) = (
    "Report missed collection",
    "A bin was not emptied on your collection day; say which in service_id.",
    "missed bin, missed collection",
);

impl Service {
    /// The `service_code`.
    pub fn code(&self) -> &'static str {
        self.subject.code()
    }

    /// The service for `stream`.
    pub fn for_stream(stream: BinStream) -> Self {
        let (name, description, keywords) = match stream {
            BinStream::Refuse => (
                "Missed refuse collection",
                "Your general waste bin was not emptied on your collection day.",
                "missed bin, refuse, general waste, rubbish, black bin",
            ),
            BinStream::Recycling => (
                "Missed recycling collection",
                "Your recycling bin or box was not emptied on your collection day.",
                "missed bin, recycling, dry mixed recycling",
            ),
            BinStream::Garden => (
                "Missed garden waste collection",
                "Your garden waste bin was not emptied on your collection day.",
                "missed bin, garden waste, green waste",
            ),
            BinStream::Food => (
                "Missed food waste collection",
                "Your food waste caddy was not emptied on your collection day.",
                "missed bin, food waste, caddy",
            ),
            BinStream::Glass => (
                "Missed glass collection",
                "Your glass box was not emptied on your collection day.",
                "missed bin, glass, bottles, jars",
            ),
            BinStream::Bulky => (
                "Missed bulky waste collection",
                "Items booked for a bulky waste collection were not taken on the booked day.",
                "missed collection, bulky waste, furniture, large items",
            ),
            BinStream::Clinical => (
                "Missed clinical waste collection",
                "Your clinical waste was not collected on your collection day.",
                "missed collection, clinical waste, sharps, medical waste",
            ),
            BinStream::Other => (
                "Missed collection (other)",
                "Another kind of collection was missed on your collection day.",
                "missed bin, missed collection",
            ),
        };
        Self {
            subject: Subject::MissedBin(stream),
            name,
            description,
            keywords,
            group: SERVICE_GROUP,
        }
    }

    /// The heating service.
    pub fn heating() -> Self {
        Self {
            subject: Subject::Heating,
            name: "No heating or hot water",
            description: "The heating or hot water in your council home is not working, or the \
                          boiler shows a fault. Give the home's UPRN as address_id.",
            keywords: "heating, hot water, boiler, radiators, repair",
            group: HEATING_GROUP,
        }
    }

    /// The service for `subject`.
    pub fn for_subject(subject: Subject) -> Self {
        match subject {
            Subject::MissedBin(stream) => Self::for_stream(stream),
            Subject::Heating => Self::heating(),
        }
    }

    /// The missed-bin services, one per bin stream, in [`BinStream::ALL`] order.
    pub fn bins() -> impl Iterator<Item = Service> {
        BinStream::ALL.into_iter().map(Self::for_stream)
    }

    /// Every service: the missed-bin ones, then heating.
    pub fn all() -> impl Iterator<Item = Service> {
        Self::bins().chain(std::iter::once(Self::heating()))
    }

    /// The service whose code is `code`, if any (codes are matched exactly).
    pub fn by_code(code: &str) -> Option<Self> {
        Subject::parse(code).map(Self::for_subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_is_a_service_with_its_wire_name_as_code() {
        let services: Vec<_> = Service::bins().collect();
        assert_eq!(services.len(), BinStream::ALL.len());
        for service in services {
            assert_eq!(Service::by_code(service.code()), Some(service));
            assert!(service.name.starts_with("Missed"));
        }
        assert_eq!(Service::by_code("heating_fault"), Some(Service::heating()));
        assert_eq!(Service::all().count(), BinStream::ALL.len() + 1);
        assert_eq!(Service::by_code("Refuse"), None);
    }

    #[test]
    fn request_ids_exclude_separators() {
        assert!(is_valid_request_id("R-2026_0001"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("a,b"));
        assert!(!is_valid_request_id("a.json"));
        assert!(!is_valid_request_id(&"x".repeat(65)));
    }
}
