//! Reading what clients send: the urlencoded bodies of `POST requests` and `POST
//! servicerequestupdates` and the queries of `GET requests` and `GET servicerequestupdates`, as
//! (name, value) pairs, into validated [`NewServiceRequest`]s, [`NewRequestUpdate`]s,
//! [`RequestFilter`]s and [`UpdateSearch`]es. Plain functions over data,
//! so every rule is tested without HTTP.
//!
//! Following the specification's "Optional Arguments": an empty value is the same as no value
//! (FixMyStreet sends `last_name=` for one-word names). Fields we do not know, such as most
//! `attribute[…]`, are ignored; `jurisdiction_id` is checked by [`jurisdiction`] where one is
//! configured.
//!
//! What FixMyStreet may send and would retry for ever if refused is accepted where it can be:
//! every location it gives is passed on for the backend to try in turn (an unknown UPRN falls
//! back to the pin, the pin to the address), and a description over
//! [`MAX_DESCRIPTION_CHARS`] is shortened in the middle rather than refused, keeping its end
//! (where FixMyStreet puts the report's URL).

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use proto::BinStream;

use super::dates::{parse_client_time, parse_w3c, Bound};
use super::error::FieldError;
use super::model::{
    is_valid_request_id, Contact, LatLong, Location, NewRequestUpdate, NewServiceRequest,
    Open311Status, RequestFilter, RequestSearch, Subject, UpdateSearch,
    DEFAULT_UPDATE_WINDOW_HOURS, MAX_DESCRIPTION_CHARS, MAX_REQUEST_IDS, MAX_RESULTS,
    MAX_UPDATE_WINDOW_DAYS, MAX_WINDOW_DAYS, MISSED_COLLECTION_CODE,
};

/// Form or query fields in the order they came.
pub type Pairs = Vec<(String, String)>;

/// Longest values accepted for the short fields; generous, but bounded so one report cannot
/// fill the store.
const MAX_NAME_CHARS: usize = 100;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_PHONE_CHARS: usize = 40;
const MAX_ID_CHARS: usize = 128;
const MAX_ADDRESS_CHARS: usize = 500;
const MAX_URL_CHARS: usize = 2048;
const MAX_MEDIA_URLS: usize = 10;
/// How many bad ids one error answer lists.
const MAX_ID_ERRORS: usize = 10;
/// A UPRN has at most 12 digits.
const MAX_UPRN_DIGITS: usize = 12;

/// The fields of one form or query.
struct Fields<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Fields<'a> {
    /// The non-empty values of `name`, in order.
    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The one non-empty value of `name`, if any; an error if there are several.
    fn single(&self, name: &'static str) -> Result<Option<&'a str>, FieldError> {
        let mut values = self.all(name);
        let first = values.next();
        match values.next() {
            Some(_) => Err(FieldError::Repeated { field: name }),
            None => Ok(first),
        }
    }

    /// The values of a field that may be repeated and comma-separated (`status=open,closed`).
    fn list(&self, name: &str) -> Vec<&'a str> {
        self.all(name)
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }
}

/// How the missed-collection service's bin attribute
/// ([`super::model::MISSED_COLLECTION_ATTRIBUTE`]) arrives in a form.
const STREAM_ATTRIBUTE_FIELD: &str = "attribute[service_id]";

/// The call that creates a request, as named in api_key errors.
pub const CREATE_REQUEST: &str = "create_request";

/// The call that lists updates, as named in api_key errors.
pub const GET_UPDATES: &str = "get_service_request_updates";

/// The call that posts a comment, as named in api_key errors.
pub const POST_UPDATE: &str = "post_service_request_update";

/// The longest `status` word kept from a comment (FixMyStreet's longest is
/// `NOT_COUNCILS_RESPONSIBILITY`).
const MAX_STATUS_CHARS: usize = 40;

/// Validates FixMyStreet's `POST servicerequestupdates` fields into a comment, reporting every
/// problem at once. What it sends: `service_request_id`, `update_id` (its comment's id),
/// `description`, `status` (upper case), `updated_datetime`, `first_name`, `last_name` (`-` when
/// it has none), `email`, `phone`, `media_url`, `account_id`, with `api_key` and
/// `jurisdiction_id` (checked before); others (`title`, `email_alerts_requested`,
/// `public_anonymity_required`, `service_request_id_ext`…) are ignored.
pub fn new_update(pairs: &[(String, String)], tz: Tz) -> Result<NewRequestUpdate, Vec<FieldError>> {
    let fields = Fields { pairs };
    let mut errors = Vec::new();
    let mut take = |result: Result<Option<String>, FieldError>| match result {
        Ok(value) => value,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let request_id = take(text(&fields, "service_request_id", MAX_ID_CHARS));
    let client_update_id = take(text(&fields, "update_id", MAX_ID_CHARS));
    let description = take(description(&fields));
    let status = take(text(&fields, "status", MAX_STATUS_CHARS));
    let updated = take(text(&fields, "updated_datetime", MAX_ID_CHARS));
    // FixMyStreet sends `-` for a resident it knows by one name only.
    let last_name = take(text(&fields, "last_name", MAX_NAME_CHARS)).filter(|name| name != "-");
    let contact = Contact {
        email: take(email(&fields)),
        first_name: take(text(&fields, "first_name", MAX_NAME_CHARS)),
        last_name,
        phone: take(phone(&fields)),
        account_id: take(text(&fields, "account_id", MAX_ID_CHARS)),
        device_id: None,
    };
    let media_url = match media_urls(&fields) {
        Ok(urls) if urls.len() > 1 => {
            errors.push(FieldError::Repeated { field: "media_url" });
            None
        }
        Ok(urls) => urls.into_iter().next(),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let status = status.and_then(|status| {
        if status
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b' ')
        {
            Some(status.to_ascii_uppercase())
        } else {
            errors.push(FieldError::invalid(
                "status",
                "must be a status word such as OPEN, CLOSED or FIXED",
            ));
            None
        }
    });
    let updated = updated.and_then(|text| match parse_client_time(&text, tz) {
        Ok(at) => Some(at),
        Err(e) => {
            errors.push(FieldError::invalid("updated_datetime", e.to_string()));
            None
        }
    });
    let request_id = match request_id {
        Some(id) if is_valid_request_id(&id) => Some(id),
        Some(_) => {
            errors.push(FieldError::invalid(
                "service_request_id",
                "is not one of ours: ids are letters, digits, - and _",
            ));
            None
        }
        None => {
            errors.push(FieldError::Missing {
                field: "service_request_id",
            });
            None
        }
    };
    if description.is_none() && media_url.is_none() {
        errors.push(FieldError::Missing {
            field: "description",
        });
    }
    match request_id {
        Some(request_id) if errors.is_empty() => Ok(NewRequestUpdate {
            request_id,
            client_update_id,
            description,
            status,
            updated,
            contact,
            media_url,
        }),
        _ => Err(errors),
    }
}

/// The `api_key` that `call` ([`CREATE_REQUEST`] or [`GET_UPDATES`]) needs: 403 when absent, as
/// the specification says.
pub fn api_key<'a>(
    pairs: &'a [(String, String)],
    call: &'static str,
) -> Result<&'a str, FieldError> {
    Fields { pairs }
        .single("api_key")?
        .ok_or(FieldError::MissingApiKey { call })
}

/// Checks the `jurisdiction_id` against the one served, if one is configured: absent is
/// accepted (a client serving one jurisdiction need not send it), another is 404.
pub fn jurisdiction(pairs: &[(String, String)], served: Option<&str>) -> Result<(), FieldError> {
    let Some(served) = served else {
        return Ok(());
    };
    match (Fields { pairs }).single("jurisdiction_id")? {
        Some(given) if given != served => Err(FieldError::UnknownJurisdiction {
            given: shorten(given),
            served: served.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Validates a POST's fields into a new request, reporting every problem at once.
pub fn new_request(pairs: &[(String, String)]) -> Result<NewServiceRequest, Vec<FieldError>> {
    let fields = Fields { pairs };
    let mut errors = Vec::new();
    let subject = match fields.single("service_code") {
        // The one missed-collection service: the bin is in its attribute.
        Ok(Some(MISSED_COLLECTION_CODE)) => match fields.single(STREAM_ATTRIBUTE_FIELD) {
            Ok(Some(code)) => {
                let stream = BinStream::parse(code);
                if stream.is_none() {
                    errors.push(FieldError::invalid(
                        STREAM_ATTRIBUTE_FIELD,
                        "must be one of the bin streams' codes (services.json lists them)",
                    ));
                }
                stream.map(Subject::MissedBin)
            }
            Ok(None) => {
                errors.push(FieldError::Missing {
                    field: STREAM_ATTRIBUTE_FIELD,
                });
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Ok(Some(code)) => {
            let subject = Subject::parse(code);
            if subject.is_none() {
                errors.push(FieldError::UnknownService {
                    code: shorten(code),
                });
            }
            subject
        }
        Ok(None) => {
            errors.push(FieldError::Missing {
                field: "service_code",
            });
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let mut take = |result: Result<Option<String>, FieldError>| match result {
        Ok(value) => value,
        Err(e) => {
            errors.push(e);
            None
        }
    };

    let description = take(description(&fields));
    let address_string = take(text(&fields, "address_string", MAX_ADDRESS_CHARS));
    let contact = Contact {
        email: take(email(&fields)),
        first_name: take(text(&fields, "first_name", MAX_NAME_CHARS)),
        last_name: take(text(&fields, "last_name", MAX_NAME_CHARS)),
        phone: take(phone(&fields)),
        account_id: take(text(&fields, "account_id", MAX_ID_CHARS)),
        device_id: take(text(&fields, "device_id", MAX_ID_CHARS)),
    };
    let location = match location(&fields, address_string) {
        Ok(location) => Some(location),
        Err(mut location_errors) => {
            errors.append(&mut location_errors);
            None
        }
    };
    let media_urls = match media_urls(&fields) {
        Ok(urls) => urls,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };

    match (subject, location) {
        (Some(subject), Some(location)) if errors.is_empty() => Ok(NewServiceRequest {
            subject,
            location,
            description,
            contact,
            media_urls,
        }),
        _ => Err(errors),
    }
}

/// The location: `address_id` (a UPRN), else `attribute[uprn]` (how FixMyStreet's waste
/// pages send it), `lat` and `long`, and `address_string`, all kept for the backend to try in
/// that order. Every location field given is checked, so that a client learns of a bad value
/// rather than having it silently ignored.
fn location(
    fields: &Fields<'_>,
    address_string: Option<String>,
) -> Result<Location, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut uprn = |name: &'static str| match fields.single(name) {
        Ok(Some(text)) => match parse_uprn(name, text) {
            Ok(uprn) => Some(uprn),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let address_id = uprn("address_id");
    let attribute_uprn = uprn("attribute[uprn]");

    let coordinate = |name: &'static str, limit: f64| -> Result<Option<f64>, FieldError> {
        let Some(text) = fields.single(name)? else {
            return Ok(None);
        };
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() && value.abs() <= limit => Ok(Some(value)),
            Ok(value) if value.is_finite() => Err(FieldError::invalid(
                name,
                format!("must be between -{limit} and {limit} degrees (WGS84)"),
            )),
            _ => Err(FieldError::invalid(
                name,
                "must be a decimal number of degrees (WGS84)",
            )),
        }
    };
    let lat = coordinate("lat", 90.0).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let long = coordinate("long", 180.0).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let lat_given = fields.all("lat").next().is_some();
    let long_given = fields.all("long").next().is_some();
    if lat_given != long_given {
        errors.push(FieldError::Missing {
            field: if lat_given { "long" } else { "lat" },
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let location = Location {
        address_id: address_id.or(attribute_uprn),
        position: lat.zip(long).map(|(lat, long)| LatLong { lat, long }),
        address_string,
    };
    if location.address_id.is_none()
        && location.position.is_none()
        && location.address_string.is_none()
    {
        return Err(vec![FieldError::Location(
            "a location was not provided; send address_id (the property's UPRN), lat and long, \
             or address_string",
        )]);
    }
    Ok(location)
}

fn parse_uprn(field: &'static str, text: &str) -> Result<u64, FieldError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u64>() {
        Ok(uprn) if digits_only && uprn > 0 && text.len() <= MAX_UPRN_DIGITS => Ok(uprn),
        _ => Err(FieldError::invalid(
            field,
            "must be a UPRN: a number of up to 12 digits",
        )),
    }
}

/// A one-line text field: at most `max` characters, no control characters (the description,
/// which may have line breaks, has [`description`]).
fn text(fields: &Fields<'_>, name: &'static str, max: usize) -> Result<Option<String>, FieldError> {
    let Some(value) = fields.single(name)? else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(FieldError::invalid(
            name,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::invalid(
            name,
            "must be a single line without control characters",
        ));
    }
    Ok(Some(value.to_owned()))
}

/// The description: up to [`MAX_DESCRIPTION_CHARS`] characters kept whole; a longer one is
/// shortened in the middle, keeping its start (the resident's words) and its last
/// [`DESCRIPTION_TAIL_CHARS`] (where FixMyStreet puts the report's URL), since refusing it
/// would have FixMyStreet retry the same report for ever.
fn description(fields: &Fields<'_>) -> Result<Option<String>, FieldError> {
    let Some(value) = fields.single("description")? else {
        return Ok(None);
    };
    let length = value.chars().count();
    let kept = if length > MAX_DESCRIPTION_CHARS {
        let head = MAX_DESCRIPTION_CHARS - DESCRIPTION_TAIL_CHARS - CUT_MARK.chars().count();
        let mut short: String = value.chars().take(head).collect();
        short.push_str(CUT_MARK);
        short.extend(value.chars().skip(length - DESCRIPTION_TAIL_CHARS));
        short
    } else {
        value.to_owned()
    };
    let allowed = |c: char| !c.is_control() || matches!(c, '\n' | '\r' | '\t');
    if !kept.chars().all(allowed) {
        return Err(FieldError::invalid(
            "description",
            "contains control characters",
        ));
    }
    Ok(Some(kept))
}

/// How much of the end of an over-long description is kept.
pub const DESCRIPTION_TAIL_CHARS: usize = 500;

/// What marks the cut in an over-long description.
const CUT_MARK: &str = "\n[…]\n";

/// A light check: the client's own validation is the real one, and a strict grammar would
/// refuse real addresses.
fn email(fields: &Fields<'_>) -> Result<Option<String>, FieldError> {
    let Some(value) = text(fields, "email", MAX_EMAIL_CHARS)? else {
        return Ok(None);
    };
    let plausible = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if plausible {
        Ok(Some(value))
    } else {
        Err(FieldError::invalid(
            "email",
            "does not look like an email address",
        ))
    }
}

fn phone(fields: &Fields<'_>) -> Result<Option<String>, FieldError> {
    let Some(value) = text(fields, "phone", MAX_PHONE_CHARS)? else {
        return Ok(None);
    };
    let plausible = value.chars().any(|c| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if plausible {
        Ok(Some(value))
    } else {
        Err(FieldError::invalid(
            "phone",
            "must be a phone number (digits, spaces, + - ( ) .)",
        ))
    }
}

fn media_urls(fields: &Fields<'_>) -> Result<Vec<String>, FieldError> {
    let urls: Vec<&str> = fields.all("media_url").collect();
    if urls.len() > MAX_MEDIA_URLS {
        return Err(FieldError::invalid(
            "media_url",
            format!("was given more than {MAX_MEDIA_URLS} times"),
        ));
    }
    urls.into_iter()
        .map(|url| {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if scheme_ok && clean && url.len() <= MAX_URL_CHARS {
                Ok(url.to_owned())
            } else {
                Err(FieldError::invalid(
                    "media_url",
                    format!("must be an http or https URL of at most {MAX_URL_CHARS} characters"),
                ))
            }
        })
        .collect()
}

/// Reads `GET requests`' query into a filter. `now` and `tz` set the default window: the last
/// [`MAX_WINDOW_DAYS`] days, as the specification says.
pub fn request_filter(
    pairs: &[(String, String)],
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<RequestFilter, Vec<FieldError>> {
    let fields = Fields { pairs };

    let ids = fields.list("service_request_id");
    if !ids.is_empty() {
        if ids.len() > MAX_REQUEST_IDS {
            return Err(vec![FieldError::invalid(
                "service_request_id",
                format!(
                    "may list at most {MAX_REQUEST_IDS} ids ({} were given); ask in several calls",
                    ids.len()
                ),
            )]);
        }
        // A set, so that a long list costs one pass, not a comparison of every pair.
        let mut seen: HashSet<&str> = HashSet::with_capacity(ids.len());
        let mut wanted: Vec<String> = Vec::with_capacity(ids.len());
        let mut errors = Vec::new();
        for id in ids {
            if !is_valid_request_id(id) {
                // One error per bad id would echo a whole list back; a few say enough.
                if errors.len() < MAX_ID_ERRORS {
                    errors.push(FieldError::invalid(
                        "service_request_id",
                        format!("{} is not a valid id", shorten(id)),
                    ));
                }
            } else if seen.insert(id) {
                wanted.push(id.to_owned());
            }
        }
        return if errors.is_empty() {
            Ok(RequestFilter::Ids(wanted))
        } else {
            Err(errors)
        };
    }

    let mut errors = Vec::new();
    let mut subjects = Vec::new();
    for code in fields.list("service_code") {
        match Subject::parse(code) {
            Some(subject) if !subjects.contains(&subject) => subjects.push(subject),
            Some(_) => {}
            None => errors.push(FieldError::invalid(
                "service_code",
                format!(
                    "{} is not a service we offer; services.json lists them",
                    shorten(code)
                ),
            )),
        }
    }
    if subjects.is_empty() {
        subjects = Subject::all();
    }

    let mut statuses = Vec::new();
    for status in fields.list("status") {
        let parsed = if status.eq_ignore_ascii_case("open") {
            Some(Open311Status::Open)
        } else if status.eq_ignore_ascii_case("closed") {
            Some(Open311Status::Closed)
        } else {
            None
        };
        match parsed {
            Some(s) if !statuses.contains(&s) => statuses.push(s),
            Some(_) => {}
            None => errors.push(FieldError::invalid(
                "status",
                "must be open or closed (or both, comma-separated)",
            )),
        }
    }
    if statuses.is_empty() {
        statuses = vec![Open311Status::Open, Open311Status::Closed];
    }

    let mut date = |name: &'static str, bound: Bound| {
        date_field(&fields, name, tz, bound).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let start = date("start_date", Bound::Start);
    let end = date("end_date", Bound::End);
    let window = Duration::days(MAX_WINDOW_DAYS);
    let (from, to) = match (start, end) {
        (Some(from), Some(to)) => (from, to),
        (Some(from), None) => (from, from + window),
        (None, Some(to)) => (to - window, to),
        (None, None) => (now - window, now),
    };
    if to < from {
        errors.push(FieldError::invalid(
            "end_date",
            "is before start_date".to_owned(),
        ));
    } else if to - from > window {
        errors.push(FieldError::invalid(
            "end_date",
            format!("may be at most {MAX_WINDOW_DAYS} days after start_date"),
        ));
    }

    if errors.is_empty() {
        Ok(RequestFilter::Search(RequestSearch {
            subjects,
            statuses,
            from,
            to,
            limit: MAX_RESULTS,
        }))
    } else {
        Err(errors)
    }
}

/// Reads `GET servicerequestupdates`' query (its `start_date` and `end_date`; the api_key is
/// checked before) into a search. Both dates given: that window, at most
/// [`MAX_UPDATE_WINDOW_DAYS`] long (FixMyStreet always sends both). Only `start_date`: from then
/// until `now`, so also at most that long. Only `end_date`: the [`DEFAULT_UPDATE_WINDOW_HOURS`]
/// before it. Neither: the [`DEFAULT_UPDATE_WINDOW_HOURS`] before `now`. A date without a time
/// is a whole local day, as in [`request_filter`].
pub fn update_search(
    pairs: &[(String, String)],
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<UpdateSearch, Vec<FieldError>> {
    let fields = Fields { pairs };
    let mut errors = Vec::new();
    let mut date = |name: &'static str, bound: Bound| {
        date_field(&fields, name, tz, bound).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let start = date("start_date", Bound::Start);
    let end = date("end_date", Bound::End);
    if !errors.is_empty() {
        return Err(errors);
    }
    let default = Duration::hours(DEFAULT_UPDATE_WINDOW_HOURS);
    let (from, to) = match (start, end) {
        (Some(from), Some(to)) => (from, to),
        // A start a little ahead of our clock is an empty window, not a mistake.
        (Some(from), None) => (from, now.max(from)),
        (None, Some(to)) => (to - default, to),
        (None, None) => (now - default, now),
    };
    if to < from {
        return Err(vec![FieldError::invalid(
            "end_date",
            "is before start_date",
        )]);
    }
    if to - from > Duration::days(MAX_UPDATE_WINDOW_DAYS) {
        return Err(vec![FieldError::invalid(
            "end_date",
            format!(
                "may be at most {MAX_UPDATE_WINDOW_DAYS} days after start_date (end_date is now \
                 when not given); ask for a longer period a week at a time"
            ),
        )]);
    }
    Ok(UpdateSearch {
        from,
        to,
        limit: MAX_RESULTS,
    })
}

/// The one date-time in `name`, if given.
fn date_field(
    fields: &Fields<'_>,
    name: &'static str,
    tz: Tz,
    bound: Bound,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    match fields.single(name)? {
        Some(text) => parse_w3c(text, tz, bound)
            .map(Some)
            .map_err(|e| FieldError::invalid(name, e.to_string())),
        None => Ok(None),
    }
}

/// A client's value, cut short for echoing in an error.
fn shorten(value: &str) -> String {
    const MAX_ECHO_CHARS: usize = 40;
    let mut short: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ECHO_CHARS)
        .collect();
    if value.chars().count() > MAX_ECHO_CHARS {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono_tz::Europe::London;

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn descriptions(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_full_form_with_a_uprn() {
        let form = pairs(&[
            ("api_key", "k"),
            ("jurisdiction_id", "example.gov.uk"),
            ("service_code", "garden"),
            ("address_id", "100021234567"),
            ("lat", "51.5"),
            ("long", "-0.12"),
            ("email", "a.resident@example.org"),
            ("first_name", "Ann"),
            ("last_name", ""),
            ("phone", "+44 (0)20 7946 0000"),
            ("description", "Not emptied.\r\nSecond week running."),
            ("media_url", "https://example.org/1.jpg"),
            ("media_url", "https://example.org/2.jpg"),
            ("attribute[colour]", "green"),
        ]);
        let request = new_request(&form).unwrap();
        assert_eq!(request.subject, Subject::MissedBin(BinStream::Garden));
        assert_eq!(request.location.address_id, Some(100_021_234_567));
        assert_eq!(
            request.location.position,
            Some(LatLong {
                lat: 51.5,
                long: -0.12
            })
        );
        assert_eq!(request.contact.first_name.as_deref(), Some("Ann"));
        assert_eq!(request.contact.last_name, None);
        assert_eq!(request.media_urls.len(), 2);
        assert_eq!(api_key(&form, CREATE_REQUEST), Ok("k"));
    }

    #[test]
    fn lat_long_and_fixmystreet_uprn_attribute() {
        let by_position = new_request(&pairs(&[
            ("service_code", "refuse"),
            ("lat", "51.5"),
            ("long", "-0.12"),
        ]))
        .unwrap();
        assert_eq!(by_position.location, Location::lat_long(51.5, -0.12));
        let by_attribute = new_request(&pairs(&[
            ("service_code", "refuse"),
            ("lat", "51.5"),
            ("long", "-0.12"),
            ("attribute[uprn]", "42"),
        ]))
        .unwrap();
        assert_eq!(by_attribute.location.address_id, Some(42));
        assert!(by_attribute.location.position.is_some());
    }

    #[test]
    fn reports_every_problem_at_once() {
        let errors = new_request(&pairs(&[
            ("lat", "NaN"),
            ("description", "bad\u{7}"),
            ("email", "not an email"),
        ]))
        .unwrap_err();
        assert_eq!(
            descriptions(&errors),
            vec![
                "service_code was not provided",
                "description contains control characters",
                "email does not look like an email address",
                "lat must be a decimal number of degrees (WGS84)",
                "long was not provided",
            ]
        );
    }

    #[test]
    fn location_rules() {
        let check = |list: &[(&str, &str)]| {
            let mut form = pairs(&[("service_code", "refuse")]);
            form.extend(pairs(list));
            descriptions(&new_request(&form).unwrap_err())
        };
        assert_eq!(
            check(&[("address_id", "12a")]),
            vec!["address_id must be a UPRN: a number of up to 12 digits"]
        );
        assert_eq!(
            check(&[("address_id", "1234567890123")]),
            vec!["address_id must be a UPRN: a number of up to 12 digits"]
        );
        assert_eq!(
            check(&[("address_id", "-5")]),
            vec!["address_id must be a UPRN: a number of up to 12 digits"]
        );
        assert_eq!(
            check(&[("lat", "91"), ("long", "0")]),
            vec!["lat must be between -90 and 90 degrees (WGS84)"]
        );
        assert_eq!(
            check(&[("lat", "51"), ("long", "inf")]),
            vec!["long must be a decimal number of degrees (WGS84)"]
        );
        assert_eq!(
            check(&[]),
            vec![
                "a location was not provided; send address_id (the property's UPRN), lat and \
                 long, or address_string"
            ]
        );
        assert_eq!(
            check(&[("address_id", "1"), ("address_id", "2")]),
            vec!["address_id was given more than once"]
        );
    }

    #[test]
    fn an_address_string_alone_is_a_location() {
        let request = new_request(&pairs(&[
            ("service_code", "refuse"),
            ("address_string", "UB10 8BE"),
        ]))
        .unwrap();
        assert_eq!(
            request.location,
            Location {
                address_id: None,
                position: None,
                address_string: Some("UB10 8BE".into()),
            }
        );
    }

    #[test]
    fn a_long_description_is_shortened_in_the_middle_keeping_its_end() {
        let framed = format!(
            "title: Bin not emptied\n\ndetail: {}\n\nurl: https://www.fixmystreet.com/report/42\n\n\
             Submitted via FixMyStreet\n",
            "é".repeat(MAX_DESCRIPTION_CHARS)
        );
        let request = new_request(&pairs(&[
            ("service_code", "refuse"),
            ("address_id", "1"),
            ("description", &framed),
        ]))
        .unwrap();
        let kept = request.description.unwrap();
        assert_eq!(kept.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(kept.starts_with("title: Bin not emptied\n\ndetail: éé"));
        assert!(kept.contains("\n[…]\n"));
        assert!(kept
            .ends_with("url: https://www.fixmystreet.com/report/42\n\nSubmitted via FixMyStreet"));
        // Up to the limit, kept whole.
        let whole = "x".repeat(MAX_DESCRIPTION_CHARS);
        let request = new_request(&pairs(&[
            ("service_code", "refuse"),
            ("address_id", "1"),
            ("description", &whole),
        ]))
        .unwrap();
        assert_eq!(request.description.as_deref(), Some(whole.as_str()));
    }

    #[test]
    fn jurisdiction_is_checked_only_when_configured() {
        let given = pairs(&[("jurisdiction_id", "hillingdon.gov.uk")]);
        assert_eq!(jurisdiction(&given, None), Ok(()));
        assert_eq!(jurisdiction(&given, Some("hillingdon.gov.uk")), Ok(()));
        assert_eq!(jurisdiction(&[], Some("hillingdon.gov.uk")), Ok(()));
        let other = jurisdiction(&given, Some("ealing.gov.uk")).unwrap_err();
        assert_eq!(other.status(), axum::http::StatusCode::NOT_FOUND);
        assert_eq!(
            other.to_string(),
            "jurisdiction_id hillingdon.gov.uk was not found; this endpoint serves ealing.gov.uk"
        );
    }

    #[test]
    fn unknown_service_is_not_found() {
        let errors =
            new_request(&pairs(&[("service_code", "potholes"), ("address_id", "1")])).unwrap_err();
        assert_eq!(
            errors,
            vec![FieldError::UnknownService {
                code: "potholes".into()
            }]
        );
    }

    #[test]
    fn api_key_is_required() {
        assert_eq!(
            api_key(&pairs(&[("api_key", "")]), GET_UPDATES),
            Err(FieldError::MissingApiKey { call: GET_UPDATES })
        );
        assert_eq!(
            api_key(
                &pairs(&[("api_key", "a"), ("api_key", "b")]),
                CREATE_REQUEST
            ),
            Err(FieldError::Repeated { field: "api_key" })
        );
    }

    #[test]
    fn control_characters_and_bad_media_are_refused() {
        let errors = new_request(&pairs(&[
            ("service_code", "refuse"),
            ("address_id", "1"),
            ("first_name", "A\nB"),
            ("description", "ok\u{0}"),
            ("media_url", "javascript:alert(1)"),
        ]))
        .unwrap_err();
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn default_window_is_the_last_90_days() {
        let now = utc("2026-11-24T12:00:00Z");
        let RequestFilter::Search(search) = request_filter(&[], now, London).unwrap() else {
            panic!("expected a search");
        };
        assert_eq!(search.to, now);
        assert_eq!(search.from, now - Duration::days(90));
        assert_eq!(search.subjects, Subject::all());
        assert_eq!(search.statuses.len(), 2);
        assert_eq!(search.limit, MAX_RESULTS);
    }

    #[test]
    fn filters_parse_lists_and_dates() {
        let now = utc("2026-11-24T12:00:00Z");
        let query = pairs(&[
            ("service_code", "refuse,glass"),
            ("service_code", "refuse"),
            ("status", "OPEN"),
            ("start_date", "2026-11-01"),
            ("end_date", "2026-11-20T00:00:00Z"),
            ("jurisdiction_id", "ignored"),
        ]);
        let RequestFilter::Search(search) = request_filter(&query, now, London).unwrap() else {
            panic!("expected a search");
        };
        assert_eq!(
            search.subjects,
            vec![
                Subject::MissedBin(BinStream::Refuse),
                Subject::MissedBin(BinStream::Glass)
            ]
        );
        assert_eq!(search.statuses, vec![Open311Status::Open]);
        assert_eq!(search.from, utc("2026-11-01T00:00:00Z"));
        assert_eq!(search.to, utc("2026-11-20T00:00:00Z"));

        let only_start = pairs(&[("start_date", "2026-01-01T00:00:00Z")]);
        let RequestFilter::Search(search) = request_filter(&only_start, now, London).unwrap()
        else {
            panic!("expected a search");
        };
        assert_eq!(search.to, utc("2026-04-01T00:00:00Z"));
    }

    #[test]
    fn ids_override_everything_else() {
        let query = pairs(&[
            ("service_request_id", "a1, b2,a1"),
            ("status", "bogus"),
            ("start_date", "bogus"),
        ]);
        assert_eq!(
            request_filter(&query, utc("2026-11-24T12:00:00Z"), London),
            Ok(RequestFilter::Ids(vec!["a1".into(), "b2".into()]))
        );
        let bad = pairs(&[("service_request_id", "a1,../x")]);
        assert_eq!(
            descriptions(&request_filter(&bad, utc("2026-11-24T12:00:00Z"), London).unwrap_err()),
            vec!["service_request_id ../x is not a valid id"]
        );
    }

    #[test]
    fn id_lists_as_long_as_fixmystreet_sends_are_read_in_one_pass() {
        let now = utc("2026-11-24T12:00:00Z");
        let ids: Vec<String> = (1..=MAX_REQUEST_IDS).map(|i| format!("MB-{i}")).collect();
        let query = pairs(&[("service_request_id", &ids.join(","))]);
        let Ok(RequestFilter::Ids(wanted)) = request_filter(&query, now, London) else {
            panic!("expected ids");
        };
        assert_eq!(wanted.len(), MAX_REQUEST_IDS);
        assert_eq!(wanted[0], "MB-1");

        let too_many = format!("{},MB-0", ids.join(","));
        let errors =
            request_filter(&pairs(&[("service_request_id", &too_many)]), now, London).unwrap_err();
        assert_eq!(
            descriptions(&errors),
            vec![
                "service_request_id may list at most 10000 ids (10001 were given); ask in \
                 several calls"
            ]
        );
        let bad: Vec<String> = (0..50).map(|i| format!("x.{i}")).collect();
        let errors = request_filter(
            &pairs(&[("service_request_id", &bad.join(","))]),
            now,
            London,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 10);
    }

    #[test]
    fn bad_filters_are_refused() {
        let now = utc("2026-11-24T12:00:00Z");
        let check = |list: &[(&str, &str)]| {
            descriptions(&request_filter(&pairs(list), now, London).unwrap_err())
        };
        assert_eq!(
            check(&[("status", "pending")]),
            vec!["status must be open or closed (or both, comma-separated)"]
        );
        assert_eq!(
            check(&[("service_code", "potholes")]),
            vec!["service_code potholes is not a service we offer; services.json lists them"]
        );
        assert_eq!(
            check(&[("start_date", "2026-01-01"), ("end_date", "2026-06-01")]),
            vec!["end_date may be at most 90 days after start_date"]
        );
        assert_eq!(
            check(&[("start_date", "2026-06-01"), ("end_date", "2026-01-01")]),
            vec!["end_date is before start_date"]
        );
        assert!(check(&[("start_date", "2026-06-01T00:00:00")])[0]
            .starts_with("start_date must be a W3C date-time"));
    }

    #[test]
    fn update_windows_default_to_the_last_day_and_are_capped_at_a_week() {
        let now = utc("2026-11-24T12:00:00Z");
        let search = |list: &[(&str, &str)]| update_search(&pairs(list), now, London);

        let default = search(&[]).unwrap();
        assert_eq!((default.from, default.to), (now - Duration::hours(24), now));
        assert_eq!(default.limit, MAX_RESULTS);

        // What FixMyStreet sends: both ends, in UTC, and the key (checked elsewhere).
        let both = search(&[
            ("api_key", "k"),
            ("jurisdiction_id", "example.gov.uk"),
            ("start_date", "2026-11-24T10:00:00Z"),
            ("end_date", "2026-11-24T12:00:00Z"),
        ])
        .unwrap();
        assert_eq!(both.from, utc("2026-11-24T10:00:00Z"));
        assert_eq!(both.to, now);

        let since = search(&[("start_date", "2026-11-20T00:00:00+00:00")]).unwrap();
        assert_eq!((since.from, since.to), (utc("2026-11-20T00:00:00Z"), now));
        let ahead = search(&[("start_date", "2026-11-24T12:00:05Z")]).unwrap();
        assert_eq!(ahead.from, ahead.to);
        let until = search(&[("end_date", "2026-11-01")]).unwrap();
        assert_eq!(until.to, utc("2026-11-01T23:59:59.999999999Z"));
        assert_eq!(until.from, until.to - Duration::hours(24));

        // A week exactly is allowed; a moment more is not, nor a start over a week ago alone.
        assert!(search(&[
            ("start_date", "2026-11-17T12:00:00Z"),
            ("end_date", "2026-11-24T12:00:00Z")
        ])
        .is_ok());
        let errors = |list: &[(&str, &str)]| descriptions(&search(list).unwrap_err());
        let too_long = vec![
            "end_date may be at most 7 days after start_date (end_date is now when not given); \
             ask for a longer period a week at a time",
        ];
        assert_eq!(
            errors(&[
                ("start_date", "2026-11-17T11:59:59Z"),
                ("end_date", "2026-11-24T12:00:00Z")
            ]),
            too_long
        );
        assert_eq!(errors(&[("start_date", "2026-11-01")]), too_long);
        assert_eq!(
            errors(&[
                ("start_date", "2026-11-24T12:00:00Z"),
                ("end_date", "2026-11-24T11:00:00Z")
            ]),
            vec!["end_date is before start_date"]
        );
        let bad = errors(&[
            ("start_date", "yesterday"),
            ("end_date", "2026-11-24T12:00:00"),
        ]);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].starts_with("start_date must be a W3C date-time"));
        assert!(bad[1].starts_with("end_date must be a W3C date-time"));
    }
}
