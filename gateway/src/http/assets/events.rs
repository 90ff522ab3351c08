//! Server-sent events for asset managers: alerts as they open, escalate and close, and one
//! boiler's samples as they are stored. Each client reads from a bounded broadcast ring: one that
//! falls behind misses events and is told how many (a `lagged` event), so a slow client never
//! makes the gateway hold more.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use proto::RecordBody;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::views::{alert_view, sample_view};
use crate::boilers::{check, AlertEvent, Asset, PlausibleRanges, Sample};
use crate::http::AppState;
use crate::ingest::IngestEvent;

/// How often an idle stream sends a keep-alive comment, so proxies do not close it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An SSE response over `events`, ending when the gateway stops.
pub(crate) fn respond(
    state: &AppState,
    events: impl Stream<Item = Event> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = events
        .map(Ok)
        // Ends with the gateway, so that a graceful shutdown does not wait on open streams.
        .take_until(state.shutdown.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The event telling a client it missed `missed` events.
pub(crate) fn lagged(missed: u64) -> Event {
    Event::default().event("lagged").data(missed.to_string())
}

/// Alerts opened, escalated and closed, each an event named for what happened with the alert
/// as `GET /api/v1/alerts` shows it.
pub fn alerts(
    state: &AppState,
    receiver: Receiver<AlertEvent>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => {
                let name = match &event {
                    AlertEvent::Opened(_) => "opened",
                    AlertEvent::Escalated(_) => "escalated",
                    AlertEvent::Closed(_) => "closed",
                };
                Event::default()
                    .event(name)
                    .data(alert_view(event.alert()).to_string())
            }
            Err(RecvError::Lagged(missed)) => lagged(missed),
            Err(RecvError::Closed) => return None,
        };
        Some((event, receiver))
    });
    respond(state, events)
}

/// `asset`'s samples from its own hub as stored, implausible readings removed as the rollups
/// remove them; each a `sample` event as the raw telemetry series shows it.
pub fn samples(
    state: &AppState,
    asset: Asset,
    ranges: PlausibleRanges,
    receiver: Receiver<IngestEvent>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(receiver, move |mut receiver| {
        let (asset, ranges) = (asset.clone(), ranges.clone());
        async move {
            let events = match receiver.recv().await {
                Ok(IngestEvent::Stored(outcome)) if outcome.device == asset.hub => outcome
                    .stored
                    .iter()
                    .filter_map(|stored| match &stored.record.body {
                        RecordBody::Telemetry(t) if t.asset == asset.asset => {
                            let at = stored.placed.map_or(stored.record.ts, |p| p.at);
                            Some(check(Sample::from_telemetry(t, at), &ranges).sample)
                        }
                        _ => None,
                    })
                    .map(|sample| {
                        Event::default()
                            .event("sample")
                            .data(json!(sample_view(&sample)).to_string())
                    })
                    .collect(),
                Ok(IngestEvent::Stored(_)) => Vec::new(),
                Err(RecvError::Lagged(missed)) => vec![lagged(missed)],
                Err(RecvError::Closed) => return None,
            };
            Some((futures_util::stream::iter(events), receiver))
        }
    })
    .flatten();
    respond(state, events)
}
