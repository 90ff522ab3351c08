//! The staff API for missed bins: round progress, reports with their full history, unmatched
//! confirmations, the property register's import, and server-sent events of changes. Every
//! route needs a bearer token whose role may do what it does ([`super::guard`]): reading reports
//! `viewer` or `waste_supervisor`, their residents' details, filing and placing
//! `waste_supervisor`, importing `admin`. A viewer's reports leave out the residents' contact
//! details and comments.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::{rfc3339, ApiError, AppState};
use crate::access::{Action, Staff};
use crate::missed_bins::{Confirmation, ImportReport, Report, ReportError, RoundProgress};
use crate::reports::{DeskError, ImportOrStoreError, NewReport, Placing};

/// The largest register CSV accepted in one import.
const MAX_REGISTER_BYTES: usize = 64 * 1024 * 1024;

/// The staff routes, to merge into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rounds", get(rounds))
        .route("/api/v1/rounds/:round/progress", get(round_progress))
        .route("/api/v1/reports", get(list_reports).post(file_report))
        .route("/api/v1/reports/:id", get(report))
        .route("/api/v1/reports/:id/place", post(place_report))
        .route("/api/v1/unmatched", get(unmatched))
        .route(
            "/api/v1/properties",
            // A whole borough's register is megabytes of CSV.
            post(import_properties).layer(DefaultBodyLimit::max(MAX_REGISTER_BYTES)),
        )
        .route("/api/v1/events", get(events))
}

impl From<DeskError> for ApiError {
    fn from(e: DeskError) -> Self {
        match e {
            DeskError::Report(ReportError::UnknownProperty { uprn }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("uprn: {uprn} is not in the property register"),
            ),
            DeskError::Import(ImportOrStoreError::Import(e)) => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            DeskError::Import(ImportOrStoreError::Store(e)) => e.into(),
            DeskError::Store(e) => e.into(),
        }
    }
}

/// Runs blocking desk work off the async threads (its writes wait for the disk).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DeskError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
struct DayQuery {
    /// The council's local day, `YYYY-MM-DD`; today by default.
    date: Option<NaiveDate>,
}

fn day_or_today(state: &AppState, date: Option<NaiveDate>) -> NaiveDate {
    date.unwrap_or_else(|| {
        state
            .desk
            .with_missed(|missed| missed.calendar().local_date(state.clock.now_ms()))
    })
}

async fn round_progress(
    State(state): State<AppState>,
    Path(round): Path<String>,
    Query(query): Query<DayQuery>,
) -> Result<Json<RoundProgress>, ApiError> {
    let date = day_or_today(&state, query.date);
    Ok(Json(state.desk.round_progress(&round, date)))
}

/// Every round's progress on a local day (today by default), for the rounds due that day: a
/// round with nothing scheduled and nothing recorded is left out.
async fn rounds(
    State(state): State<AppState>,
    Query(query): Query<DayQuery>,
) -> Result<Json<Vec<RoundProgress>>, ApiError> {
    let date = day_or_today(&state, query.date);
    let names: Vec<String> = state.desk.with_missed(|missed| {
        missed
            .register()
            .rounds()
            .into_iter()
            .map(str::to_owned)
            .collect()
    });
    Ok(Json(
        names
            .iter()
            .map(|round| state.desk.round_progress(round, date))
            .filter(|progress| {
                progress.scheduled > 0 || !progress.done.is_empty() || progress.started_at.is_some()
            })
            .collect(),
    ))
}

async fn unmatched(
    State(state): State<AppState>,
    Query(query): Query<DayQuery>,
) -> Result<Json<Vec<Confirmation>>, ApiError> {
    let date = day_or_today(&state, query.date);
    Ok(Json(state.desk.with_missed(|missed| {
        missed.unmatched(date).into_iter().cloned().collect()
    })))
}

/// A report as staff see it: the report, its property's address and its history in words.
#[derive(Debug, Serialize)]
struct ReportView {
    #[serde(flatten)]
    report: Report,
    address: Option<String>,
    created: String,
    notes: Vec<String>,
}

/// `report` as `staff` may see it: without the residents' contact details and comments unless
/// their role may read them.
fn view(state: &AppState, staff: &Staff, mut report: Report) -> ReportView {
    if !staff.may(Action::ReadResidents) {
        report.contact = None;
        report.comments.clear();
    }
    let address = state.desk.with_missed(|missed| {
        missed
            .register()
            .get(report.uprn?)
            .map(|p| p.address.clone())
    });
    ReportView {
        address,
        created: rfc3339(report.created_at),
        notes: state.desk.status_notes(&report),
        report,
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Only reports filed at or after this day (council's local day); default: the last 30 days.
    since: Option<NaiveDate>,
    /// Only reports in this status (`open`, `in_progress`, `closed`, `rejected`, `refused`).
    status: Option<String>,
    /// `true`: only reports whose location named no property, waiting to be placed.
    unplaced: Option<bool>,
}

async fn list_reports(
    State(state): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ReportView>>, ApiError> {
    let since = match query.since {
        Some(day) => state
            .desk
            .with_missed(|missed| missed.calendar().to_utc(day, chrono::NaiveTime::MIN)),
        None => state
            .clock
            .now_ms()
            .saturating_sub(30 * 24 * 60 * 60 * 1000),
    };
    let desk = state.desk.clone();
    let mut reports = blocking(move || desk.reports_since(since)).await?;
    if let Some(status) = &query.status {
        reports.retain(|report| report.status.as_str() == status);
    }
    if let Some(unplaced) = query.unplaced {
        reports.retain(|report| report.uprn.is_none() == unplaced);
    }
    Ok(Json(
        reports
            .into_iter()
            .map(|report| view(&state, &staff, report))
            .collect(),
    ))
}

async fn report(
    State(state): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> Result<Json<ReportView>, ApiError> {
    let desk = state.desk.clone();
    let report = blocking(move || desk.report(&id)).await?;
    match report {
        Some(report) => Ok(Json(view(&state, &staff, report))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such report")),
    }
}

/// A report taken by the contact centre on a resident's behalf.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReport {
    uprn: u64,
    stream: proto::BinStream,
    description: Option<String>,
}

async fn file_report(
    State(state): State<AppState>,
    Extension(staff): Extension<Staff>,
    body: Result<Json<FileReport>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ReportView>), ApiError> {
    let Json(body) =
        // axum's own status says what was wrong: 400 syntax, 413 too large, 415 not JSON, 422 data.
        body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let desk = state.desk.clone();
    let new = NewReport {
        uprn: body.uprn,
        stream: body.stream,
        description: body.description,
        contact: None,
    };
    let now = state.clock.now_ms();
    let report = blocking(move || desk.file(new, now)).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &staff, report))))
}

/// Where staff found an unplaced report's property.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceReport {
    uprn: u64,
}

/// Places a report whose location named no property (a resident's pin far from any) on the
/// property staff found: decided there as if filed so. `409` if it already has one.
async fn place_report(
    State(state): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Result<Json<PlaceReport>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ReportView>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let desk = state.desk.clone();
    let now = state.clock.now_ms();
    match blocking(move || desk.place(&id, body.uprn, now)).await? {
        Placing::Placed(report) => Ok(Json(view(&state, &staff, report))),
        Placing::AlreadyPlaced(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "the report already has a property",
        )),
        Placing::NoSuchReport => Err(ApiError::new(StatusCode::NOT_FOUND, "no such report")),
    }
}

async fn import_properties(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ImportReport>, ApiError> {
    let desk = state.desk.clone();
    Ok(Json(
        blocking(move || desk.import_properties(body.as_ref())).await?,
    ))
}

/// Report status changes and round progress as server-sent events, each a JSON object with a
/// `type` (`report` or `round`). A client that falls behind is told how many it missed.
async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let receiver = state.desk.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(change) => Event::default()
                .event("change")
                .json_data(&change)
                .unwrap_or_else(|_| Event::default().comment("unencodable change")),
            Err(RecvError::Lagged(missed)) => {
                Event::default().event("lagged").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    // Ends with the gateway, so that a graceful shutdown does not wait on open streams.
    let stream = stream.take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
