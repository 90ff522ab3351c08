//! One function per endpoint: extract, check, write, answer. Writes go through the
//! [`Intake`](crate::uplink::Intake) (durable before the 201); a refused request writes nothing.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::Json;
use proto::{JobKind, JobStatus, RoundPhase, TimestampMs};
use serde::Serialize;

use super::error::ApiError;
use super::requests::{Checked, NewCollection, NewJobStatus, RoundChange};
use super::ApiState;
use crate::jobs::{Cancelled, StoredJob};
use crate::outbox::{DeadLetters, IdempotencyKey, Once, OutboxStats, StorageState, NEWEST_SHOWN};
use crate::source::{SourceMonitor, SourceView};
use crate::uplink::LastAck;

/// The answer to a write: the record's sequence number, durable on the device.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The record's sequence number.
    pub seq: u64,
}

type Write = Result<(StatusCode, HeaderMap, Json<Created>), ApiError>;

/// The request header that makes a POST safe to retry.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The answer header saying that the answer is a repeat of the first one.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's idempotency key, if it sent one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| bad_key())?;
    IdempotencyKey::parse(text).map(Some).map_err(|_| bad_key())
}

fn bad_key() -> ApiError {
    let message = crate::outbox::InvalidKey.to_string();
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message,
        field: Some("Idempotency-Key".into()),
    }
}

/// `POST /v1/collections`.
pub async fn post_collection(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<NewCollection>, JsonRejection>,
) -> Write {
    let key = idempotency_key(&headers)?;
    let Json(body) = body?;
    store(&state, key, body.into_record(state.intake.now_ms())?).await
}

/// `POST /v1/rounds/{id}/start`.
pub async fn start_round(
    state: State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<RoundChange>, JsonRejection>,
) -> Write {
    round(state, headers, id, body, RoundPhase::Started).await
}

/// `POST /v1/rounds/{id}/complete`.
pub async fn complete_round(
    state: State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<RoundChange>, JsonRejection>,
) -> Write {
    round(state, headers, id, body, RoundPhase::Completed).await
}

async fn round(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<RoundChange>, JsonRejection>,
    phase: RoundPhase,
) -> Write {
    let key = idempotency_key(&headers)?;
    let Path(id) = id.map_err(path_error)?;
    let Json(body) = body?;
    // A bad id in the path is reported as the field `round`, as `proto` names it.
    store(
        &state,
        key,
        body.into_record(id, phase, state.intake.now_ms())?,
    )
    .await
}

/// `POST /v1/jobs/{id}/status`: the job must be on this device and not cancelled.
pub async fn post_job_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<NewJobStatus>, JsonRejection>,
) -> Write {
    let key = idempotency_key(&headers)?;
    let Path(id) = id.map_err(path_error)?;
    let Json(body) = body?;
    let status = body.status;
    let checked = body.into_record(id.clone(), state.intake.now_ms())?;
    let at = checked.ts;
    // A repeat gets the first answer even if the job was cancelled since.
    if let Some(key) = &key {
        if let Some(first) = state.intake.outbox().recall(key).await? {
            return Ok(answer(Once::Repeated(first)));
        }
    }
    state.jobs.check_status(&id)??;
    let created = store(&state, key, checked).await?;
    // The record is durable and is what the gateway acts on; the local copy is for display, so a
    // failure here is logged rather than turned into an error for a write that happened.
    if let Err(e) = state.jobs.set_status(&id, status, at) {
        tracing::error!(error = %e, "cannot record a job's status locally");
    }
    Ok(created)
}

async fn store(state: &ApiState, key: Option<IdempotencyKey>, checked: Checked) -> Write {
    // On a task of its own, so that a timeout or a client gone away cannot cut the write short.
    let intake = state.intake.clone();
    let once = tokio::spawn(async move {
        match key {
            Some(key) => intake.accept_once(&key, checked.ts, checked.body).await,
            None => intake
                .accept(checked.ts, checked.body)
                .await
                .map(Once::Stored),
        }
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(answer(once))
}

/// 201 with the record's number; a repeat says so in `Idempotent-Replayed: true`.
fn answer(once: Once) -> (StatusCode, HeaderMap, Json<Created>) {
    let mut headers = HeaderMap::new();
    let accepted = match once {
        Once::Stored(accepted) => accepted,
        Once::Repeated(accepted) => {
            headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            accepted
        }
    };
    (
        StatusCode::CREATED,
        headers,
        Json(Created { seq: accepted.seq }),
    )
}

/// A job as the app sees it.
#[derive(Debug, Serialize)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// Its revision.
    pub rev: u32,
    /// Due by (UTC ms).
    pub due: TimestampMs,
    /// What to do: `{"return": {…}}` or `{"repair": {…}}`.
    pub kind: JobKind,
    /// The latest status reported on this device.
    pub status: Option<JobStatus>,
    /// When it was reported (UTC ms).
    pub status_at: Option<TimestampMs>,
    /// Set if the gateway withdrew it.
    pub cancelled: Option<Cancelled>,
    /// When the device received it (UTC ms).
    pub received: TimestampMs,
}

impl From<StoredJob> for JobView {
    fn from(stored: StoredJob) -> Self {
        Self {
            id: stored.job.id,
            rev: stored.job.rev,
            due: stored.job.due,
            kind: stored.job.kind,
            status: stored.status,
            status_at: stored.status_at,
            cancelled: stored.cancelled,
            received: stored.received,
        }
    }
}

/// `GET /v1/jobs`: every job on the device, cancelled ones included.
pub async fn list_jobs(State(state): State<ApiState>) -> Result<Json<Vec<JobView>>, ApiError> {
    let jobs = state.jobs.list()?;
    Ok(Json(jobs.into_iter().map(JobView::from).collect()))
}

/// `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// This device's id.
    pub device: String,
    /// How many times the agent has started.
    pub boot: u64,
    /// The link to the gateway.
    pub link: LinkView,
    /// The outbox.
    pub outbox: OutboxView,
    /// The gateway's latest ack, if one arrived since the agent started.
    pub last_ack: Option<LastAck>,
    /// A boiler hub's sensor source: kind, asset, running or not, and its counters; `null` when
    /// none is configured.
    pub source: Option<SourceView>,
}

/// The link, for the status.
#[derive(Debug, Serialize)]
pub struct LinkView {
    /// `connected` (subscribed, announced, sending); `stalled` (the gateway's acks stopped while
    /// batches were in flight, so the agent dropped the connection and is making a new one);
    /// `connecting` (otherwise not connected).
    pub state: &'static str,
    /// Connected and sending: `state` is `connected`.
    pub connected: bool,
    /// Since when (UTC ms).
    pub since: Option<TimestampMs>,
    /// Connections made since the agent started.
    pub connections: u64,
    /// Connections lost or attempts failed since the agent started.
    pub drops: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Connections dropped because the gateway's acks stopped while batches were in flight.
    pub stalls: u64,
    /// The smoothed round trip from publishing a batch to its ack (ms), once measured.
    pub ack_rtt_ms: Option<u64>,
    /// How long a batch may wait for its ack before the link counts as stalled (ms).
    pub stall_after_ms: u64,
    /// Acks and downlink messages ignored since the agent started because the gateway did not
    /// sign them for this device's topic: nothing was deleted or applied for them.
    pub unverified: u64,
}

/// The outbox, for the status.
#[derive(Debug, Serialize)]
pub struct OutboxView {
    /// Records held until the gateway acks them.
    pub depth: u64,
    /// Of which crews' records (collections, job updates, round events).
    pub priority_depth: u64,
    /// Bytes held.
    pub bytes: u64,
    /// The disk budget.
    pub budget_bytes: u64,
    /// Records sent and awaiting the gateway's ack.
    pub in_flight: u64,
    /// Seconds the oldest never-sent record has waited.
    pub oldest_unsent_age_s: Option<f64>,
    /// The gateway's ack watermark.
    pub acked_through: u64,
    /// The next record's sequence number.
    pub next_seq: u64,
    /// Whether records can be stored now.
    pub storage: StorageView,
    /// Records the gateway refused, kept aside: `{"count", "evicted", "newest": [{"seq", "kind",
    /// "ts", "why", "at"}]}`, the newest few first.
    pub dead_letters: DeadLetters,
}

/// The outbox's storage, for the status: `{"state": "ok" | "disk_full" | "failed", "since",
/// "error", "faults", "recoveries"}`.
#[derive(Debug, Serialize)]
pub struct StorageView {
    /// `ok`; `disk_full` (POSTs answer 507 until space is freed); `failed` (another write error:
    /// 503 while the agent reopens its database).
    pub state: &'static str,
    /// When the current outage began (UTC ms); `null` while `ok`.
    pub since: Option<TimestampMs>,
    /// What the disk or sled said, while down.
    pub error: Option<String>,
    /// Outages since the agent started.
    pub faults: u64,
    /// Outages the agent recovered from by itself.
    pub recoveries: u64,
}

impl StorageView {
    /// The view of `stats`.
    pub fn of(stats: &OutboxStats) -> Self {
        let (state, since, error) = match &stats.storage {
            StorageState::Ok => ("ok", None, None),
            StorageState::Down(fault) => (
                if fault.disk_full {
                    "disk_full"
                } else {
                    "failed"
                },
                Some(fault.since),
                Some(fault.error.clone()),
            ),
        };
        Self {
            state,
            since,
            error,
            faults: stats.storage_faults,
            recoveries: stats.storage_recoveries,
        }
    }
}

/// `GET /v1/status`: link state, outbox depth and bytes, oldest unsent age, last ack, source.
pub async fn status(State(state): State<ApiState>) -> Result<Json<StatusView>, ApiError> {
    let stats = state.intake.outbox().stats()?;
    // While the storage is down the list cannot be read; its size is still known.
    let dead_letters = state
        .intake
        .outbox()
        .dead_letters(NEWEST_SHOWN)
        .unwrap_or_else(|_| DeadLetters {
            count: stats.dead_letters,
            evicted: stats.dead_letters_evicted,
            newest: Vec::new(),
        });
    let link = state.link.borrow().clone();
    Ok(Json(StatusView {
        device: state.device.to_string(),
        boot: state.boot,
        link: LinkView {
            state: link.state(),
            connected: link.connected,
            since: link.since,
            connections: link.connections,
            drops: link.drops,
            last_error: link.last_error,
            stalls: link.stalls,
            ack_rtt_ms: link.ack_rtt_ms,
            stall_after_ms: link.stall_after_ms,
            unverified: link.unverified,
        },
        outbox: OutboxView {
            depth: stats.depth,
            priority_depth: stats.priority_depth,
            bytes: stats.bytes,
            budget_bytes: stats.budget_bytes,
            in_flight: stats.in_flight,
            oldest_unsent_age_s: stats
                .oldest_unsent_age(state.intake.now_ms())
                .map(|age| age.as_secs_f64()),
            acked_through: stats.acked_through,
            next_seq: stats.next_seq,
            storage: StorageView::of(&stats),
            dead_letters,
        },
        last_ack: link.last_ack,
        source: state.source.as_ref().map(SourceMonitor::view),
    }))
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text())
}
