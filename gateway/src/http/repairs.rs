//! The staff API for repairs, for asset managers (or above): raise a job on an asset or from an
//! open alert, list jobs and read one with its history, withdraw one, and follow jobs as they change
//! (server-sent events). The asset and alert views show their jobs ([`for_alert`]).
//!
//! Handlers only parse, authorize, call the repairs desk and format: times are RFC 3339 (UTC).

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use proto::Priority;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::assets::events::{lagged, respond};
use super::assets::views::parse_alert_id;
use super::{bad, blocking, rfc3339, ApiError, AppState};
use crate::access::Staff;
use crate::boilers::Alert;
use crate::repairs::{AlertRef, Happened, NewRepair, Origin, Repair, RepairError, RepairStatus};

/// The longest description of a job, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// The most jobs one listing holds.
const MAX_JOBS: usize = 5_000;

/// The repairs routes, to merge into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/repairs", get(list).post(raise))
        .route("/api/v1/repairs/events", get(events))
        .route("/api/v1/repairs/:id", get(one))
        .route("/api/v1/repairs/:id/cancel", post(cancel))
        .route("/api/v1/alerts/:id/repair", post(raise_for_alert))
}

impl From<RepairError> for ApiError {
    fn from(e: RepairError) -> Self {
        match e {
            RepairError::Store(e) => e.into(),
            RepairError::UnknownAsset(_) | RepairError::UnknownHome(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            RepairError::NoOpenAlert(_) | RepairError::NoSuchJob(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            RepairError::AlreadyRaised { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::new(e.status(), e.body_text()))
}

fn check_description(description: Option<&str>) -> Result<(), ApiError> {
    match description {
        Some(d) if d.trim().is_empty() => Err(bad("description", "must not be empty")),
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(bad(
            "description",
            format!("longer than {MAX_DESCRIPTION_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

fn parse_due(due: Option<&str>) -> Result<Option<i64>, ApiError> {
    due.map(|due| {
        chrono::DateTime::parse_from_rfc3339(due)
            .map(|t| t.timestamp_millis())
            .map_err(|e| bad("due", format!("{e}: expected an RFC 3339 time")))
    })
    .transpose()
}

fn happened_view(happened: &Happened) -> Value {
    match serde_json::to_value(happened) {
        Ok(Value::Object(mut map)) => {
            map.remove("event");
            Value::Object(map)
        }
        _ => Value::Null,
    }
}

fn event_name(happened: &Happened) -> &'static str {
    match happened {
        Happened::Raised => "raised",
        Happened::Dispatched { .. } => "dispatched",
        Happened::Reassigned { .. } => "reassigned",
        Happened::Waiting => "waiting",
        Happened::Update { .. } => "update",
        Happened::TenantReport { .. } => "tenant_report",
        Happened::AlertCleared => "alert_cleared",
        Happened::NeedsAttention { .. } => "needs_attention",
        Happened::Cancelled => "cancelled",
    }
}

/// Whether `job` is the proof its alert's close rests on: completed, then the alert cleared.
fn proved_by(job: &Repair) -> bool {
    match (job.completed_at, job.alert_cleared_at) {
        (Some(done), Some(cleared)) => cleared >= done,
        _ => false,
    }
}

/// A job as staff see it.
pub fn repair_view(job: &Repair) -> Value {
    json!({
        "id": job.id,
        "asset": job.asset,
        "uprn": job.uprn,
        "address": job.address,
        "description": job.description,
        "priority": job.priority,
        "due": rfc3339(job.due),
        "raised": rfc3339(job.raised_at),
        "origin": job.origin,
        "alert": job.alert.as_ref().map(AlertRef::id),
        "named_operative": job.named,
        "status": job.status.as_str(),
        "operative": job.device(),
        "revision": job.rev,
        "sent": job.dispatch.as_ref().and_then(|d| d.sent_at).map(rfc3339),
        "completed": job.completed_at.map(rfc3339),
        "alert_cleared": job.alert_cleared_at.map(rfc3339),
        "resolved_alert": proved_by(job),
        "needs_attention": job.attention_at.is_some(),
        "tenant_reports": job.tenant_reports,
        "history": job.history.iter().map(|t| json!({
            "at": rfc3339(t.at),
            "status": t.status.as_str(),
            "event": event_name(&t.happened),
            "details": happened_view(&t.happened),
        })).collect::<Vec<_>>(),
    })
}

/// A job in brief, as the asset and alert views list it.
fn summary(job: &Repair) -> Value {
    json!({
        "id": job.id,
        "status": job.status.as_str(),
        "priority": job.priority,
        "operative": job.device(),
        "due": rfc3339(job.due),
        "resolved_alert": proved_by(job),
        "needs_attention": job.attention_at.is_some(),
    })
}

/// Every job by the alert it answers, for views of many alerts.
pub fn by_alert(jobs: &[Repair]) -> BTreeMap<String, Vec<&Repair>> {
    let mut index: BTreeMap<String, Vec<&Repair>> = BTreeMap::new();
    for job in jobs {
        if let Some(alert) = &job.alert {
            index.entry(alert.id()).or_default().push(job);
        }
    }
    index
}

/// `alert`'s view with its jobs (`repairs`) and, once closed, the job its close rests on
/// (`closed_with_repair`: completed before the alert cleared).
pub fn for_alert(mut view: Value, alert: &Alert, index: &BTreeMap<String, Vec<&Repair>>) -> Value {
    let jobs = index
        .get(&AlertRef::of(alert).id())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let proof = alert
        .closed_at_ms
        .and_then(|_| jobs.iter().find(|j| proved_by(j)).map(|j| j.id.clone()));
    if let Value::Object(map) = &mut view {
        map.insert(
            "repairs".into(),
            jobs.iter().map(|j| summary(j)).collect::<Vec<_>>().into(),
        );
        map.insert("closed_with_repair".into(), json!(proof));
    }
    view
}

/// The jobs on `asset`, newest first, in brief.
pub fn for_asset(jobs: &[Repair], asset: &str) -> Value {
    jobs.iter()
        .rev()
        .filter(|j| j.asset == asset)
        .map(summary)
        .collect::<Vec<_>>()
        .into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseBody {
    /// The asset.
    asset: String,
    /// What is wrong.
    description: String,
    /// How soon; default `routine`.
    priority: Option<Priority>,
    /// Due by (RFC 3339); default the priority's target.
    due: Option<String>,
    /// The operative's device, for the `named` rule.
    operative: Option<String>,
}

async fn raise(
    State(state): State<AppState>,
    Extension(staff): Extension<Staff>,
    body: Result<Json<RaiseBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    check_description(Some(&body.description))?;
    let new = NewRepair {
        asset: body.asset,
        description: body.description,
        priority: body.priority.unwrap_or(Priority::Routine),
        due: parse_due(body.due.as_deref())?,
        origin: Origin::Staff {
            name: staff.name.clone(),
        },
        alert: None,
        named: body.operative,
    };
    let now = state.clock.now_ms();
    let desk = state.repairs.clone();
    let job = blocking(move || Ok(desk.raise(new, now)?)).await?;
    Ok((StatusCode::CREATED, Json(repair_view(&job))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseForAlertBody {
    /// What is wrong; default from the alert and its evidence.
    description: Option<String>,
    /// How soon; default from the alert's severity.
    priority: Option<Priority>,
    /// The operative's device, for the `named` rule.
    operative: Option<String>,
}

async fn raise_for_alert(
    State(state): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The body is optional, but one that is there must be right.
    let body: RaiseForAlertBody = if body.iter().all(u8::is_ascii_whitespace) {
        RaiseForAlertBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("body: {e}")))?
    };
    check_description(body.description.as_deref())?;
    let (asset, kind, opened_at_ms) = parse_alert_id(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    let alert = AlertRef {
        asset,
        kind,
        opened_at_ms,
    };
    let now = state.clock.now_ms();
    let desk = state.repairs.clone();
    let job = blocking(move || {
        Ok(desk.raise_for_alert(
            &alert,
            Origin::Staff {
                name: staff.name.clone(),
            },
            body.description,
            body.priority,
            body.operative,
            now,
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(repair_view(&job))))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Only jobs on this asset.
    asset: Option<String>,
    /// Only jobs in this status (`raised`, `dispatched`, … `completed`); or `open` for every
    /// job still to be done.
    status: Option<String>,
    /// At most this many, newest first (default and most: 5,000).
    limit: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let wanted: Option<Option<RepairStatus>> = match q.status.as_deref() {
        None => None,
        Some("open") => Some(None),
        Some(s) => Some(Some(
            serde_json::from_value(Value::String(s.to_owned()))
                .map_err(|_| bad("status", format!("unknown value {s:?}")))?,
        )),
    };
    let limit = match q.limit.as_deref() {
        None => MAX_JOBS,
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| bad("limit", e))?
            .min(MAX_JOBS),
    };
    let desk = state.repairs.clone();
    blocking(move || {
        let jobs = desk.jobs()?;
        Ok(Json(
            jobs.iter()
                .rev()
                .filter(|j| q.asset.as_ref().is_none_or(|a| *a == j.asset))
                .filter(|j| match wanted {
                    None => true,
                    Some(None) => j.status.is_open(),
                    Some(Some(s)) => j.status == s,
                })
                .take(limit)
                .map(repair_view)
                .collect(),
        ))
    })
    .await
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let desk = state.repairs.clone();
    blocking(move || match desk.job(&id)? {
        Some(job) => Ok(Json(repair_view(&job))),
        None => Err(RepairError::NoSuchJob(id).into()),
    })
    .await
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now_ms();
    let desk = state.repairs.clone();
    blocking(move || match desk.cancel(&id, now)? {
        Some(job) => Ok(Json(repair_view(&job))),
        None => Err(RepairError::NoSuchJob(id).into()),
    })
    .await
}

/// Jobs as they change (server-sent events), each a `repair` event with the job as
/// `GET /api/v1/repairs/{id}` shows it.
async fn events(State(state): State<AppState>) -> Result<axum::response::Response, ApiError> {
    let receiver = state.repairs.subscribe();
    Ok(stream(&state, receiver).into_response())
}

fn stream(
    state: &AppState,
    receiver: Receiver<Repair>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(job) => Event::default()
                .event("repair")
                .data(repair_view(&job).to_string()),
            Err(RecvError::Lagged(missed)) => lagged(missed),
            Err(RecvError::Closed) => return None,
        };
        Some((event, receiver))
    });
    respond(state, events)
}
