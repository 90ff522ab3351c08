//! The HTTP handlers: each reads the request, asks the backend (on the blocking pool), and
//! writes the answer or the Open311 error in the format the path's extension names.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use chrono_tz::Tz;

use crate::clock::{ClockTime, SharedClock};

use super::error::{FieldError, Open311Error};
use super::form::{self, Pairs};
use super::format::{self, Format};
use super::model::{
    is_valid_request_id, BackendError, Open311Backend, RequestFilter, Service, Settings,
    UpdateSearch, MISSED_COLLECTION_CODE,
};

/// The largest urlencoded POST body accepted. A maximal report (8,000 four-byte characters,
/// all percent-encoded, plus contact fields and ten media URLs) stays under it.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// The largest multipart/form-data POST body accepted: FixMyStreet sends a report's photos in
/// it when its uploads are on. Photos are read through and dropped (the report keeps their
/// `media_url`s), never held, so this bounds time on the wire rather than memory.
pub const MAX_MULTIPART_BYTES: usize = 32 * 1024 * 1024;

/// The most parts one multipart body may have (fields and files together).
const MAX_MULTIPART_PARTS: usize = 200;

/// What every handler can reach.
#[derive(Clone)]
struct Open311State {
    backend: Arc<dyn Open311Backend>,
    settings: Arc<Settings>,
    tz: Tz,
    clock: SharedClock,
}

/// The Open311 GeoReport v2 routes, relative to the endpoint (the gateway nests them under
/// `/open311/v2`). `council_tz` is the zone date-times are written in.
pub fn router(
    backend: Arc<dyn Open311Backend>,
    settings: Settings,
    council_tz: Tz,
    clock: SharedClock,
) -> Router {
    let state = Open311State {
        backend,
        settings: Arc::new(settings),
        tz: council_tz,
        clock,
    };
    Router::new()
        .route("/services.json", get(|s, q| services(s, q, Format::Json)))
        .route("/services.xml", get(|s, q| services(s, q, Format::Xml)))
        .route("/services/:file", get(service_definition))
        .route(
            "/requests.json",
            get(|s, q| list_requests(s, q, Format::Json))
                .post(|s, r| create_request(s, Format::Json, r)),
        )
        .route(
            "/requests.xml",
            get(|s, q| list_requests(s, q, Format::Xml))
                .post(|s, r| create_request(s, Format::Xml, r)),
        )
        .route("/requests/:file", get(one_request))
        .route(
            "/servicerequestupdates.json",
            get(|s, q| list_updates(s, q, Format::Json))
                .post(|s, r| post_update(s, Format::Json, r)),
        )
        .route(
            "/servicerequestupdates.xml",
            get(|s, q| list_updates(s, q, Format::Xml)).post(|s, r| post_update(s, Format::Xml, r)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The larger, multipart, limit; urlencoded bodies are held to MAX_BODY_BYTES as read.
        .layer(DefaultBodyLimit::max(MAX_MULTIPART_BYTES))
        .with_state(state)
}

/// Runs `call` on the blocking pool, where a backend may do blocking I/O; a panic in the
/// backend becomes an outage for this request only.
async fn blocking<T, F>(state: &Open311State, call: F) -> Result<T, BackendError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Open311Backend) -> Result<T, BackendError> + Send + 'static,
{
    let backend = Arc::clone(&state.backend);
    tokio::task::spawn_blocking(move || call(backend.as_ref()))
        .await
        .unwrap_or_else(|e| {
            Err(BackendError::Unavailable(format!(
                "backend task failed: {e}"
            )))
        })
}

fn answer(format: Format, outcome: Result<String, Open311Error>) -> Response {
    match outcome {
        Ok(body) => format::respond(format, StatusCode::OK, body),
        Err(error) => format::error(format, &error),
    }
}

async fn services(
    State(state): State<Open311State>,
    query: Result<Query<Pairs>, QueryRejection>,
    format: Format,
) -> Response {
    let outcome = query.map_err(query_rejection).and_then(|Query(pairs)| {
        check_jurisdiction(&state, &pairs)?;
        Ok(format::services(format, state.settings.waste_only))
    });
    answer(format, outcome)
}

/// Refuses a `jurisdiction_id` other than the one configured (404).
fn check_jurisdiction(
    state: &Open311State,
    pairs: &[(String, String)],
) -> Result<(), Open311Error> {
    form::jurisdiction(pairs, state.settings.jurisdiction_id.as_deref()).map_err(Open311Error::from)
}

async fn service_definition(
    State(state): State<Open311State>,
    Path(file): Path<String>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let Some((code, format)) = Format::split(&file) else {
        return format::error(Format::of_path(&file), &unknown_format());
    };
    let outcome = query.map_err(query_rejection).and_then(|Query(pairs)| {
        check_jurisdiction(&state, &pairs)?;
        if code == MISSED_COLLECTION_CODE {
            return Ok(format::missed_collection_definition(format));
        }
        Service::by_code(code)
            .map(|service| format::service_definition(format, service))
            .ok_or_else(|| {
                Open311Error::not_found(format!(
                    "service_code {} was not found; services.json lists the services",
                    code.chars().take(40).collect::<String>()
                ))
            })
    });
    answer(format, outcome)
}

async fn create_request(
    State(state): State<Open311State>,
    format: Format,
    request: Request,
) -> Response {
    answer(format, create(&state, request, format).await)
}

async fn create(
    state: &Open311State,
    request: Request,
    format: Format,
) -> Result<String, Open311Error> {
    let pairs = read_fields(request).await?;
    // The key first: a client without one learns nothing about the rest of its request.
    check_api_key(state, &pairs, form::CREATE_REQUEST).await?;
    check_jurisdiction(state, &pairs)?;
    let request = form::new_request(&pairs).map_err(Open311Error::from_fields)?;
    let subject = request.subject;
    let created = blocking(state, move |backend| backend.create(request)).await?;
    tracing::info!(
        id = %created.id,
        service_code = subject.code(),
        "open311 service request created"
    );
    Ok(format::created(format, &created))
}

/// FixMyStreet's `POST servicerequestupdates`: a resident's comment on a report, kept for
/// staff. The api_key first, as for a report.
async fn post_update(
    State(state): State<Open311State>,
    format: Format,
    request: Request,
) -> Response {
    let outcome = async {
        let pairs = read_fields(request).await?;
        check_api_key(&state, &pairs, form::POST_UPDATE).await?;
        check_jurisdiction(&state, &pairs)?;
        let update = form::new_update(&pairs, state.tz).map_err(Open311Error::from_fields)?;
        let posted = blocking(&state, move |backend| backend.add_update(update)).await?;
        tracing::info!(update_id = %posted.update_id, "open311 comment kept");
        Ok(format::posted_update(format, &posted))
    }
    .await;
    answer(format, outcome)
}

/// A POST's fields, from `application/x-www-form-urlencoded` (what FixMyStreet sends without
/// uploads, held to [`MAX_BODY_BYTES`]) or `multipart/form-data` (with uploads on: its text
/// fields, the files read through and dropped).
async fn read_fields(request: Request) -> Result<Pairs, Open311Error> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if multipart {
        let multipart = Multipart::from_request(request, &()).await.map_err(|e| {
            Open311Error::bad_request(format!("The request body is not valid: {}", e.body_text()))
        })?;
        return multipart_fields(multipart).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large(MAX_BODY_BYTES))?;
    let request = Request::from_parts(parts, Body::from(bytes));
    let Form(pairs) = Form::<Pairs>::from_request(request, &())
        .await
        .map_err(form_rejection)?;
    Ok(pairs)
}

/// The text fields of a multipart body, in order; file parts (those with a file name) are read
/// through and dropped. The text is held to [`MAX_BODY_BYTES`] in all, as a urlencoded body is.
async fn multipart_fields(mut multipart: Multipart) -> Result<Pairs, Open311Error> {
    let invalid = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(MAX_MULTIPART_BYTES)
        } else {
            Open311Error::bad_request(format!("The request body is not valid: {}", e.body_text()))
        }
    };
    let mut pairs = Pairs::new();
    let mut text_bytes = 0usize;
    let mut parts = 0usize;
    while let Some(mut field) = multipart.next_field().await.map_err(invalid)? {
        parts += 1;
        if parts > MAX_MULTIPART_PARTS {
            return Err(Open311Error::bad_request(format!(
                "The request body has more than {MAX_MULTIPART_PARTS} parts"
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some() {
            while field.chunk().await.map_err(invalid)?.is_some() {}
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(invalid)? {
            text_bytes += chunk.len();
            if text_bytes + name.len() > MAX_BODY_BYTES {
                return Err(too_large(MAX_BODY_BYTES));
            }
            value.extend_from_slice(&chunk);
        }
        text_bytes += name.len();
        let value = String::from_utf8(value).map_err(|_| {
            Open311Error::bad_request(format!(
                "The field {} is not valid UTF-8",
                shorten_name(&name)
            ))
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn shorten_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(40).collect()
}

fn too_large(limit: usize) -> Open311Error {
    Open311Error::bad_request(format!("The request body is larger than {limit} bytes"))
}

/// Refuses `call` with 403 unless `pairs` hold an api_key the backend accepts.
async fn check_api_key(
    state: &Open311State,
    pairs: &[(String, String)],
    call: &'static str,
) -> Result<(), Open311Error> {
    let key = form::api_key(pairs, call)?.to_owned();
    let accepted = blocking(state, move |backend| Ok(backend.api_key_accepted(&key))).await?;
    if accepted {
        Ok(())
    } else {
        Err(FieldError::BadApiKey { call }.into())
    }
}

async fn list_requests(
    State(state): State<Open311State>,
    query: Result<Query<Pairs>, QueryRejection>,
    format: Format,
) -> Response {
    let outcome = async {
        let Query(pairs) = query.map_err(query_rejection)?;
        check_jurisdiction(&state, &pairs)?;
        let filter = form::request_filter(&pairs, state.clock.now(), state.tz)
            .map_err(Open311Error::from_fields)?;
        let limit = match &filter {
            RequestFilter::Ids(ids) => ids.len(),
            RequestFilter::Search(search) => search.limit,
        };
        let mut found = blocking(&state, move |backend| backend.list(&filter)).await?;
        found.truncate(limit);
        Ok(format::requests(
            format,
            &found,
            state.tz,
            state.settings.extended_statuses,
        ))
    }
    .await;
    answer(format, outcome)
}

/// FixMyStreet's `GET servicerequestupdates`: the api_key first (403, as for a POST; the bulk
/// feed is for the council's own front ends), then the window.
async fn list_updates(
    State(state): State<Open311State>,
    query: Result<Query<Pairs>, QueryRejection>,
    format: Format,
) -> Response {
    let outcome = async {
        let Query(pairs) = query.map_err(query_rejection)?;
        check_api_key(&state, &pairs, form::GET_UPDATES).await?;
        check_jurisdiction(&state, &pairs)?;
        let search = form::update_search(&pairs, state.clock.now(), state.tz)
            .map_err(Open311Error::from_fields)?;
        // One more than we answer, to tell when the window held more than the limit.
        let asked = UpdateSearch {
            limit: search.limit.saturating_add(1),
            ..search
        };
        let mut found = blocking(&state, move |backend| backend.updates(&asked)).await?;
        if found.len() > search.limit {
            // Oldest first, so a client that continues from the last updated_datetime it got
            // misses nothing; FixMyStreet does not, so say so where an operator will look.
            tracing::warn!(
                from = %search.from,
                to = %search.to,
                limit = search.limit,
                "open311 updates cut short: more changes in the window than one answer holds"
            );
            found.truncate(search.limit);
        }
        Ok(format::updates(format, &found, state.tz))
    }
    .await;
    answer(format, outcome)
}

async fn one_request(
    State(state): State<Open311State>,
    Path(file): Path<String>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let Some((id, format)) = Format::split(&file) else {
        return format::error(Format::of_path(&file), &unknown_format());
    };
    let outcome = async {
        let Query(pairs) = query.map_err(query_rejection)?;
        check_jurisdiction(&state, &pairs)?;
        let not_found = || {
            Open311Error::not_found(format!(
                "service_request_id {} was not found",
                id.chars().take(64).collect::<String>()
            ))
        };
        if !is_valid_request_id(id) {
            return Err(not_found());
        }
        let owned = id.to_owned();
        match blocking(&state, move |backend| backend.get(&owned)).await? {
            Some(request) => Ok(format::requests(
                format,
                &[request],
                state.tz,
                state.settings.extended_statuses,
            )),
            None => Err(not_found()),
        }
    }
    .await;
    answer(format, outcome)
}

async fn not_found(uri: Uri) -> Response {
    format::error(
        Format::of_path(uri.path()),
        &Open311Error::not_found(
            "There is no Open311 resource at this path; services.json lists the services",
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    format::error(
        Format::of_path(uri.path()),
        &Open311Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on this resource"),
        ),
    )
}

fn unknown_format() -> Open311Error {
    Open311Error::not_found("The format must be .json or .xml")
}

fn query_rejection(rejection: QueryRejection) -> Open311Error {
    Open311Error::bad_request(format!(
        "the query string is not valid: {}",
        rejection.body_text()
    ))
}

fn form_rejection(rejection: FormRejection) -> Open311Error {
    let description = match &rejection {
        FormRejection::InvalidFormContentType(_) => {
            "The request must be sent as application/x-www-form-urlencoded or multipart/form-data"
                .to_owned()
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            format!("The request body is larger than {MAX_BODY_BYTES} bytes")
        }
        _ => format!("The request body is not valid: {}", rejection.body_text()),
    };
    // The specification's 400 for anything that is neither a missing resource nor the key.
    Open311Error::bad_request(description)
}
