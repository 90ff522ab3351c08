//! An asset manager at the staff API, as the dashboard's user would be: watches the open boiler
//! alerts (`GET /api/v1/alerts`) and, for one that is still open a while after it opened with no
//! repair job on it, raises one from the alert (`POST /api/v1/alerts/{id}/repair`). The critical
//! ones need no one: the gateway raises their jobs itself (`repairs.auto_raise`, on in the demo).
//!
//! Every alert seen is kept in an [`AlertBook`], which the demo's end summary reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::clock::SimClock;
use crate::http::{HttpError, JsonClient};

/// How often, simulated, the asset manager looks at the alerts.
const LOOK_EVERY: Duration = Duration::from_secs(10 * 60);
/// How long, simulated, an alert stays open before the asset manager raises a job on it.
const REACTS_AFTER: Duration = Duration::from_secs(45 * 60);

/// An alert as the asset manager last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenAlert {
    /// The boiler.
    pub asset: String,
    /// Its kind (`short_cycling`, `pressure_low`…).
    pub kind: String,
    /// `open` or `closed`.
    pub state: String,
    /// When it opened, if the view said.
    pub opened: Option<DateTime<Utc>>,
    /// The jobs on it, by id.
    pub repairs: Vec<String>,
}

impl SeenAlert {
    fn from_view(view: &Value) -> Option<(String, Self)> {
        let text = |key: &str| view.get(key).and_then(Value::as_str).map(str::to_owned);
        let repairs = view
            .get("repairs")
            .and_then(Value::as_array)
            .map(|jobs| {
                jobs.iter()
                    .filter_map(|job| job.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Some((
            text("id")?,
            Self {
                asset: text("asset")?,
                kind: text("kind")?,
                state: text("state").unwrap_or_else(|| "open".into()),
                opened: text("opened")
                    .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
                    .map(|at| at.to_utc()),
                repairs,
            },
        ))
    }
}

/// Every alert the asset manager has seen, by id.
#[derive(Debug, Default)]
pub struct AlertBook {
    seen: Mutex<BTreeMap<String, SeenAlert>>,
}

impl AlertBook {
    /// The alerts, by id.
    pub fn alerts(&self) -> BTreeMap<String, SeenAlert> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the open alerts, and those closed since `since` (RFC 3339), into the book; returns
    /// the open ones' views.
    pub async fn refresh(&self, api: &JsonClient, since: &str) -> Result<Vec<Value>, HttpError> {
        let open: Vec<Value> = api.get("/api/v1/alerts?state=open&limit=5000").await?;
        let closed: Vec<Value> = api
            .get(&format!(
                "/api/v1/alerts?state=closed&limit=5000&from={}",
                since.replace('+', "%2B")
            ))
            .await?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for view in closed.iter().chain(&open) {
            if let Some((id, alert)) = SeenAlert::from_view(view) {
                seen.insert(id, alert);
            }
        }
        Ok(open)
    }
}

/// Watches the alerts through the staff API at `api` (an asset manager's token), raising a job
/// on each that stays open unattended, until `stop`.
pub async fn run(
    api: JsonClient,
    clock: SimClock,
    book: Arc<AlertBook>,
    since: String,
    stop: CancellationToken,
) {
    loop {
        if !clock.sleep(LOOK_EVERY, &stop).await {
            return;
        }
        let open = match book.refresh(&api, &since).await {
            Ok(open) => open,
            Err(error) => {
                tracing::debug!(%error, "cannot read the alerts yet");
                continue;
            }
        };
        for view in open {
            let Some((id, alert)) = SeenAlert::from_view(&view) else {
                continue;
            };
            let waited = alert
                .opened
                .and_then(|at| (clock.now() - at).to_std().ok())
                .unwrap_or_default();
            if !alert.repairs.is_empty() || waited < REACTS_AFTER {
                continue;
            }
            let path = format!("/api/v1/alerts/{}/repair", encode_path(&id));
            match api.post(&path, &serde_json::json!({})).await {
                Ok(job) => {
                    let job = job
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned();
                    tracing::info!(alert = %id, %job, "asset manager raised a repair from an alert");
                }
                // Raised meanwhile (a tenant's report), or closed: nothing to do.
                Err(HttpError::Status {
                    status: 404 | 409, ..
                }) => {}
                Err(error) => tracing::warn!(%error, alert = %id, "cannot raise a repair"),
            }
        }
    }
}

/// `id` as one path segment: its `/` (asset ids may have one) and `%` percent-encoded.
fn encode_path(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_read_from_the_staff_apis_view() {
        let view = serde_json::json!({
            "id": "B-100021445101:short_cycling:1764576000000", "asset": "B-100021445101",
            "kind": "short_cycling", "severity": "medium", "state": "open",
            "opened": "2026-12-01T09:00:00Z", "repairs": [{"id": "RP-3", "status": "dispatched"}]
        });
        let (id, alert) = SeenAlert::from_view(&view).unwrap();
        assert_eq!(id, "B-100021445101:short_cycling:1764576000000");
        assert_eq!(
            (alert.kind.as_str(), alert.repairs),
            ("short_cycling", vec!["RP-3".to_owned()])
        );
        assert_eq!(encode_path("HIL/B-1:silent:5"), "HIL%2FB-1:silent:5");
    }
}
