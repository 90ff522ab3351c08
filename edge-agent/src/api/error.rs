//! The API's errors, each answered as JSON `{"error": "...", "field": "..."}` with the status a
//! client can act on: 400 malformed, 413 too large, 415 not JSON, 422 invalid (naming the field),
//! 404 and 409 about jobs, 507 storage full (the outbox's budget, or the device's disk), 503
//! shutting down or storage failing (and being reopened), 500 otherwise.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::jobs::{JobsError, StatusRefused};
use crate::outbox::OutboxError;

/// A request that was not carried out; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status to answer with.
    pub status: StatusCode,
    /// What went wrong, for the app's developer.
    pub message: String,
    /// The offending field's path (`pos.lat`), when one is to blame.
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// A 422 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
            field: Some(field.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<proto::Invalid> for ApiError {
    fn from(invalid: proto::Invalid) -> Self {
        let message = invalid.to_string();
        Self::invalid(invalid.field, message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            // axum answers a bad type 422 and bad syntax 400 already; a body over the limit comes
            // as a bytes rejection with 413.
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => rejection.status(),
        };
        let text = rejection.body_text();
        let field = match &rejection {
            JsonRejection::JsonDataError(_) => field_of(&text),
            _ => None,
        };
        Self {
            status,
            message: text,
            field,
        }
    }
}

impl From<OutboxError> for ApiError {
    fn from(error: OutboxError) -> Self {
        match &error {
            OutboxError::Full { .. } => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, error.to_string())
            }
            OutboxError::Invalid(invalid) => invalid.clone().into(),
            OutboxError::RecordTooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
            // Logged by the outbox once per outage (and summarised), not once per request.
            OutboxError::StorageDown(fault) if fault.disk_full => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, error.to_string())
            }
            OutboxError::StorageDown(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
            OutboxError::KeyReused(_) => Self::invalid("Idempotency-Key", error.to_string()),
            OutboxError::FlusherStopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent is shutting down",
            ),
            _ => {
                tracing::error!(error = %error, "outbox failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }
}

impl From<JobsError> for ApiError {
    fn from(error: JobsError) -> Self {
        match error {
            // The outbox's own outage (507 or 503), logged by the outbox once, not per request.
            JobsError::Outbox(error) => error.into(),
            error => {
                tracing::error!(error = %error, "job store failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }
}

impl From<StatusRefused> for ApiError {
    fn from(refused: StatusRefused) -> Self {
        let status = match refused {
            StatusRefused::Unknown(_) => StatusCode::NOT_FOUND,
            StatusRefused::Cancelled { .. } => StatusCode::CONFLICT,
        };
        Self::new(status, refused.to_string())
    }
}

/// The field a serde error names, from axum's text: `…type: pos.lat: invalid type…` gives
/// `pos.lat`; `…: missing field `vehicle`` gives `vehicle`; nested, `pos: missing field `acc``
/// gives `pos.acc`.
fn field_of(text: &str) -> Option<String> {
    let detail = text
        .split_once("target type: ")
        .map_or(text, |(_, rest)| rest);
    let (path, message) = match detail.split_once(": ") {
        Some((path, message)) if is_path(path) => (Some(path), message),
        _ => (None, detail),
    };
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.split_once(prefix))
        .and_then(|(_, rest)| rest.split('`').next());
    match (path, named) {
        // An unknown field's path already ends with it; a missing field's is its parent's.
        (Some(path), Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            Some(path.to_owned())
        }
        (Some(path), Some(name)) => Some(format!("{path}.{name}")),
        (None, Some(name)) => Some(name.to_owned()),
        (Some(path), None) => Some(path.to_owned()),
        (None, None) => None,
    }
}

/// Whether `text` looks like a serde path (`pos.lat`, `items[2].id`) rather than prose.
fn is_path(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_under_the_job_store_is_a_507_like_the_outbox_says() {
        let fault = crate::outbox::StorageFault {
            disk_full: true,
            error: "No space left on device (os error 28)".into(),
            since: 0,
        };
        let error = ApiError::from(JobsError::Outbox(OutboxError::StorageDown(fault)));
        assert_eq!(error.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(error.message.contains("disk is full"), "{}", error.message);
    }

    const PREFIX: &str = "Failed to deserialize the JSON body into the target type: ";

    #[test]
    fn names_the_field_in_serde_errors() {
        let cases = [
            (
                "pos.lat: invalid type: string \"x\", expected f64 at line 1 column 9",
                Some("pos.lat"),
            ),
            (
                "missing field `vehicle` at line 1 column 80",
                Some("vehicle"),
            ),
            (
                "pos: missing field `acc` at line 1 column 30",
                Some("pos.acc"),
            ),
            (
                "uprm: unknown field `uprm`, expected one of `uprn`, `stream`",
                Some("uprm"),
            ),
            (
                "pos.x: unknown field `x`, expected one of `lat`",
                Some("pos.x"),
            ),
            (
                "stream: unknown variant `bin`, expected one of `refuse`",
                Some("stream"),
            ),
            (
                "invalid type: integer `5`, expected struct NewCollection at line 1 column 1",
                None,
            ),
        ];
        for (detail, field) in cases {
            assert_eq!(
                field_of(&format!("{PREFIX}{detail}")).as_deref(),
                field,
                "{detail}"
            );
        }
    }
}
