//! The HTTP handlers: each reads the request, asks the backend (on the blocking pool), and
//! writes the answer or the Open311 error in the format the path's extension names.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use chrono_tz::Tz;

use crate::clock::SharedClock;

use super::error::{FieldError, Open311Error};
use super::form::{self, Pairs};
use super::format::{self, Format};
use super::model::{
    is_valid_request_id, BackendError, Open311Backend, RequestFilter, Service, UpdateSearch,
};

/// The largest POST body accepted. A maximal report (4000 four-byte characters, all
/// percent-encoded, plus contact fields and ten media URLs) stays well under it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
struct Open311State {
    backend: Arc<dyn Open311Backend>,
    tz: Tz,
    clock: SharedClock,
}

/// The Open311 GeoReport v2 routes, relative to the endpoint (the gateway nests them under
/// `/open311/v2`). `council_tz` is the zone date-times are written in.
pub fn router(backend: Arc<dyn Open311Backend>, council_tz: Tz, clock: SharedClock) -> Router {
    let state = Open311State {
        backend,
        tz: council_tz,
        clock,
    };
    Router::new()
        .route("/services.json", get(|| services(Format::Json)))
        .route("/services.xml", get(|| services(Format::Xml)))
        .route("/services/:file", get(service_definition))
        .route(
            "/requests.json",
            get(|s, q| list_requests(s, q, Format::Json))
                .post(|s, f| create_request(s, f, Format::Json)),
        )
        .route(
            "/requests.xml",
            get(|s, q| list_requests(s, q, Format::Xml))
                .post(|s, f| create_request(s, f, Format::Xml)),
        )
        .route("/requests/:file", get(one_request))
        .route(
            "/servicerequestupdates.json",
            get(|s, q| list_updates(s, q, Format::Json)),
        )
        .route(
            "/servicerequestupdates.xml",
            get(|s, q| list_updates(s, q, Format::Xml)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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

async fn services(format: Format) -> Response {
    answer(format, Ok(format::services(format)))
}

async fn service_definition(Path(file): Path<String>) -> Response {
    let Some((code, format)) = Format::split(&file) else {
        return format::error(Format::of_path(&file), &unknown_format());
    };
    let outcome = Service::by_code(code)
        .map(|service| format::service_definition(format, service))
        .ok_or_else(|| {
            Open311Error::not_found(format!(
                "service_code {} was not found; services.json lists the services",
                code.chars().take(40).collect::<String>()
            ))
        });
    answer(format, outcome)
}

async fn create_request(
    State(state): State<Open311State>,
    body: Result<Form<Pairs>, FormRejection>,
    format: Format,
) -> Response {
    answer(format, create(&state, body, format).await)
}

async fn create(
    state: &Open311State,
    body: Result<Form<Pairs>, FormRejection>,
    format: Format,
) -> Result<String, Open311Error> {
    let Form(pairs) = body.map_err(form_rejection)?;
    // The key first: a client without one learns nothing about the rest of its request.
    check_api_key(state, &pairs, form::CREATE_REQUEST).await?;
    let request = form::new_request(&pairs).map_err(Open311Error::from_fields)?;
    let stream = request.stream;
    let created = blocking(state, move |backend| backend.create(request)).await?;
    tracing::info!(
        id = %created.id,
        service_code = stream.as_str(),
        "open311 service request created"
    );
    Ok(format::created(format, &created))
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
        let filter = form::request_filter(&pairs, state.clock.now(), state.tz)
            .map_err(Open311Error::from_fields)?;
        let limit = match &filter {
            RequestFilter::Ids(ids) => ids.len(),
            RequestFilter::Search(search) => search.limit,
        };
        let mut found = blocking(&state, move |backend| backend.list(&filter)).await?;
        found.truncate(limit);
        Ok(format::requests(format, &found, state.tz))
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

async fn one_request(State(state): State<Open311State>, Path(file): Path<String>) -> Response {
    let Some((id, format)) = Format::split(&file) else {
        return format::error(Format::of_path(&file), &unknown_format());
    };
    let outcome = async {
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
            Some(request) => Ok(format::requests(format, &[request], state.tz)),
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
            "The request must be sent as application/x-www-form-urlencoded".to_owned()
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            format!("The request body is larger than {MAX_BODY_BYTES} bytes")
        }
        _ => format!("The request body is not valid: {}", rejection.body_text()),
    };
    // The specification's 400 for anything that is neither a missing resource nor the key.
    Open311Error::bad_request(description)
}
