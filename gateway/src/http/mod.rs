//! The gateway's HTTP server: operations (`/healthz`, `/metrics`) and the staff API under
//! `/api/v1`, whose every route needs a bearer token with a role that may do what the route
//! does ([`guard`]; [`staff`] for missed bins, [`assets`] for boilers, [`repairs`] for repair
//! jobs), but for the public
//! bin-day lookup ([`bin_days`]); and the staff [`dashboard`], whose pages call that same API
//! with a session cookie in place of the token.

pub mod assets;
pub mod bin_days;
pub mod dashboard;
pub mod guard;
pub mod rate_limit;
pub mod repairs;
pub mod serve;
pub mod staff;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::access::AccessRegistry;
use crate::metrics::Metrics;
use crate::storage::{DeviceInfo, Store, StoreError};
pub use guard::{authorize, authorize_token};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// Whether the ingest is connected and subscribed.
    pub ingest_ready: tokio::sync::watch::Receiver<bool>,
    /// Staff's bearer tokens and integrations' Open311 keys.
    pub access: AccessRegistry,
    /// Clock skew beyond which a device is flagged, in ms.
    pub max_clock_skew_ms: i64,
    /// Missed-bin reports.
    pub desk: Arc<crate::reports::ReportDesk>,
    /// The Open311 interface's keys and settings.
    pub open311: Arc<crate::config::Open311Config>,
    /// The council's time zone, for dates shown to residents.
    pub council_tz: chrono_tz::Tz,
    /// The gateway's clock: what records, reports, alerts and jobs are dated and judged by.
    pub clock: crate::clock::SharedClock,
    /// The machine's clock, for what runs on people's real time whatever `clock` does: the age
    /// of dashboard sessions and the windows of rate limits. The same clock as `clock` except in
    /// a simulation, whose compressed hours would sign a person out in minutes.
    pub wall_clock: crate::clock::SharedClock,
    /// Boilers: the register, alerts and their events.
    pub boilers: Arc<crate::boilers::BoilerDesk>,
    /// Boilers' telemetry and rollups, read by the assets API.
    pub boiler_store: Arc<dyn crate::storage::BoilerStore>,
    /// Repair jobs and tenants' heating reports.
    pub repairs: Arc<crate::repairs::RepairDesk>,
    /// Batches as the ingest stores them: the live sample streams subscribe.
    pub ingest_events: tokio::sync::broadcast::Sender<crate::ingest::IngestEvent>,
    /// Cancelled when the gateway stops: long-lived responses (event streams) end then.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The dashboard's signed-in browsers.
    pub sessions: Arc<dashboard::Sessions>,
}

/// The router for the whole HTTP side, within `limits`: a body limit on every route (those that
/// take more set their own), a deadline on every request, and Open311 posts rate-limited per
/// client address and per `api_key`.
pub fn router(state: AppState, limits: &crate::config::HttpLimits) -> Router {
    let open311_limits = rate_limit::Open311Limits::new(
        limits.open311_posts_per_address,
        limits.open311_posts_per_key,
        crate::open311::MAX_BODY_BYTES,
        state.wall_clock.clone(),
    );
    // Every staff route behind the one door; the rest are public.
    let staff_api = Router::new()
        .route("/api/v1/quarantine", get(quarantine))
        .route("/api/v1/devices", get(devices))
        .merge(staff::routes())
        .merge(assets::routes())
        .merge(repairs::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(staff_api)
        .merge(bin_days::routes())
        .merge(dashboard::routes())
        .with_state(state.clone())
        .nest(
            "/open311/v2",
            crate::open311::router(
                Arc::new(crate::open311::ByService::new(
                    Arc::new(crate::reports::DeskOpen311::new(
                        state.desk.clone(),
                        state.access.clone(),
                        state.clock.clone(),
                    )),
                    Arc::new(crate::repairs::HeatingOpen311::new(
                        state.repairs.clone(),
                        state.clock.clone(),
                        state.council_tz,
                    )),
                )),
                state.open311.settings(),
                state.council_tz,
                state.clock.clone(),
            )
            .layer(axum::middleware::from_fn_with_state(
                open311_limits,
                rate_limit::limit_open311_posts,
            )),
        )
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(limits.request_timeout_s),
        ))
}

/// An API error: a status and a message, as JSON `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failed while serving a request");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage is unavailable")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// A 400 naming the query parameter or field that was wrong, first, as every error here does.
pub(crate) fn bad(parameter: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, format!("{parameter}: {why}"))
}

/// 200 once the ingest is connected to the broker and subscribed, 503 before that or while the
/// link is down: a load balancer or a test waits on it before sending traffic.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    if *state.ingest_ready.borrow() {
        (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ok", "mqtt": "subscribed"})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "starting", "mqtt": "not subscribed"})),
        )
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[derive(Debug, Deserialize)]
struct QuarantineQuery {
    /// How many entries, newest first (default 100, at most 1000).
    limit: Option<usize>,
    /// Only entries with ids below this: the next page after the last id seen.
    before: Option<u64>,
}

/// A quarantined message, or a refused record of a batch, as staff see it. The gateway keeps a
/// prefix and a hash of the payload, not the payload.
#[derive(Debug, Serialize)]
struct QuarantineView {
    id: u64,
    topic: String,
    reason: String,
    received: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    payload_bytes: u64,
    payload_sha256: String,
    payload_hex_prefix: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn quarantine(
    State(state): State<AppState>,
    Query(query): Query<QuarantineQuery>,
) -> Result<Json<Vec<QuarantineView>>, ApiError> {
    let limit = query.limit.unwrap_or(100).min(1000);
    let store = state.store.clone();
    let entries = tokio::task::spawn_blocking(move || store.quarantined(limit, query.before))
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage is unavailable"))??;
    Ok(Json(
        entries
            .into_iter()
            .map(|entry| QuarantineView {
                id: entry.id,
                topic: entry.topic,
                reason: entry.reason,
                received: rfc3339(entry.received),
                device: entry.device.map(|d| d.to_string()),
                seq: entry.seq,
                payload_bytes: entry.size,
                payload_sha256: hex(&entry.sha256),
                payload_hex_prefix: hex(&entry.prefix),
            })
            .collect(),
    ))
}

/// A device as staff see it.
#[derive(Debug, Serialize)]
struct DeviceView {
    id: String,
    #[serde(flatten)]
    info: DeviceInfo,
    acked_through: u64,
    clock_skew_flagged: bool,
}

async fn devices(State(state): State<AppState>) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let devices = state.store.devices()?;
    Ok(Json(
        devices
            .into_iter()
            .map(|(id, info, acked_through)| DeviceView {
                id: id.to_string(),
                clock_skew_flagged: info
                    .clock_skew_ms
                    .is_some_and(|skew| skew.abs() > state.max_clock_skew_ms),
                info,
                acked_through,
            })
            .collect(),
    ))
}

/// A UTC millisecond timestamp as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
