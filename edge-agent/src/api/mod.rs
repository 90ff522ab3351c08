//! The local HTTP API for the in-cab or handheld app: JSON in and out, bound to loopback by
//! default.
//!
//! | endpoint | does |
//! |---|---|
//! | `POST /v1/collections` | a crew's confirmation of one bin → 201 `{"seq": n}` |
//! | `POST /v1/rounds/{id}/start`, `…/complete` | a round event → 201 |
//! | `POST /v1/jobs/{id}/status` | a job's progress → 201 (404 unknown job, 409 cancelled) |
//! | `GET /v1/jobs` | the jobs on this device |
//! | `GET /v1/status` | link, outbox depth and bytes, oldest unsent age, last ack, sensor source |
//!
//! A 201 means the record is on disk and will reach the gateway exactly once. Errors are JSON
//! `{"error", "field"}` (see [`error`]); a refused request writes nothing. A full outbox answers
//! 507: the app should keep the record and tell the crew. A 408 (the request timed out, a disk
//! that hangs) leaves the outcome unknown, as a dropped connection would: the write itself runs to
//! its end either way, never half done.
//!
//! Every POST takes an `Idempotency-Key` header (1 to 255 visible ASCII characters, bare or
//! quoted): an app that got no answer sends the request again with the same key and gets the first
//! answer (the same 201 and `seq`, with `Idempotent-Replayed: true`), across restarts, without
//! storing the record twice. The key is written before its record and flushed with it. A key is
//! remembered for 24 hours after its first use, and at most 10,000 are (the oldest are forgotten
//! first); the same key with a different request is refused (422, field `Idempotency-Key`).
//! Refused requests are not remembered: they wrote nothing, so a repeat is judged afresh.
//!
//! - [`requests`]: the bodies and the records they become; [`handlers`]: the endpoints.

pub mod error;
pub mod handlers;
pub mod requests;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use proto::DeviceId;
use tokio::sync::watch;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::config::ApiConfig;
use crate::jobs::JobStore;
use crate::source::SourceMonitor;
use crate::uplink::{Intake, LinkStatus};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Where records go.
    pub intake: Intake,
    /// The jobs.
    pub jobs: JobStore,
    /// The link's state.
    pub link: watch::Receiver<LinkStatus>,
    /// This device.
    pub device: DeviceId,
    /// This start's number.
    pub boot: u64,
    /// The boiler hub's sensor source, if one runs.
    pub source: Option<SourceMonitor>,
}

/// The API's routes, with the body limit, the request timeout and request tracing.
pub fn router(state: ApiState, config: &ApiConfig) -> Router {
    Router::new()
        .route("/v1/collections", post(handlers::post_collection))
        .route("/v1/rounds/:id/start", post(handlers::start_round))
        .route("/v1/rounds/:id/complete", post(handlers::complete_round))
        .route("/v1/jobs/:id/status", post(handlers::post_job_status))
        .route("/v1/jobs", get(handlers::list_jobs))
        .route("/v1/status", get(handlers::status))
        .fallback(handlers::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_s),
        ))
        // tower-http logs every 5xx at ERROR; a full disk answers each request 507, and the outbox
        // already logs the outage once (and a summary a minute), so failures are logged here only
        // at DEBUG. Real faults are logged where they happen (see `error`).
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
}
