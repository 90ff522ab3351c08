//! Residents and tenants reaching the council through its Open311 front end, as a council's
//! website posts for them (`POST /open311/v2/requests.json`, form-encoded, with the front end's
//! `api_key`), then following their reports as the website does (`GET requests.json` by id).
//!
//! - A resident whose bin the crew missed reports it once the round is done; so does, now and
//!   then, one whose bin was not put out (the crew's record rejects that report).
//! - A tenant reports no heating some time after their boiler's fault begins: the report joins
//!   the repair already open for the boiler, or raises one.
//!
//! What each report became is kept in a [`ReportBook`], which the demo's end summary reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::{BinStream, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SimClock;
use crate::crew::CrewEvent;
use crate::http::{retry_transient, HttpError, JsonClient};

/// How often, simulated, residents look at their reports.
const FOLLOW_EVERY: Duration = Duration::from_secs(15 * 60);
/// The share of residents whose bin was not put out who report it missed all the same.
const NOT_PUT_OUT_REPORTED: f64 = 0.75;
/// At most this many ids in one `GET requests` (FixMyStreet asks for all its open ones at once;
/// a URL stays short).
const IDS_PER_QUERY: usize = 50;

/// Why a report was made, as the demo knows and the gateway must work out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// The crew missed the bin: a return visit should empty it.
    Missed,
    /// The bin was not put out: the crew's record should reject the report.
    NotPutOut,
    /// The boiler has a fault: a repair should follow.
    Heating,
}

/// A report to make at a simulated time.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// When, as simulated time since the demo began.
    pub after: Duration,
    /// The home.
    pub uprn: u64,
    /// The service: a bin stream, or `heating_fault`.
    pub service_code: String,
    /// The resident's words.
    pub description: String,
    /// Why it is made.
    pub cause: Cause,
}

impl Planned {
    /// A tenant's report of no heating at `uprn`, `after` into the demo.
    pub fn heating(after: Duration, uprn: u64, description: impl Into<String>) -> Self {
        Self {
            after,
            uprn,
            service_code: gateway::open311::HEATING_CODE.to_owned(),
            description: description.into(),
            cause: Cause::Heating,
        }
    }
}

/// A report as filed, and what the front end last read of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filed {
    /// Why it was made.
    pub cause: Cause,
    /// The home.
    pub uprn: u64,
    /// Its service.
    pub service_code: String,
    /// `GET requests`' `status` (`open`, `closed`, `no_further_action`…), once read.
    pub status: Option<String>,
    /// Its `status_notes`, once read.
    pub status_notes: Option<String>,
}

/// Every report the residents and tenants filed, by `service_request_id`.
#[derive(Debug, Default)]
pub struct ReportBook {
    filed: Mutex<BTreeMap<String, Filed>>,
}

impl ReportBook {
    /// The reports, by id.
    pub fn reports(&self) -> BTreeMap<String, Filed> {
        self.filed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn insert(&self, id: String, filed: Filed) {
        self.filed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, filed);
    }

    /// Reads every report's status through the front end, as residents following them would.
    pub async fn refresh(&self, front_end: &FrontEnd) {
        let ids: Vec<String> = self
            .filed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            match front_end.statuses(chunk).await {
                Ok(found) => {
                    let mut filed = self.filed.lock().unwrap_or_else(PoisonError::into_inner);
                    for request in found {
                        if let Some(report) = filed.get_mut(&request.service_request_id) {
                            report.status = Some(request.status);
                            report.status_notes = request.status_notes;
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "cannot follow the reports yet"),
            }
        }
    }
}

/// A request as `GET requests.json` shows it (the fields the residents read).
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    /// Its id.
    pub service_request_id: String,
    /// Its status.
    pub status: String,
    /// What the council says of it.
    #[serde(default)]
    pub status_notes: Option<String>,
    /// Its service.
    #[serde(default)]
    pub service_code: Option<String>,
}

/// The council's front end: the gateway's Open311 endpoint and this front end's `api_key`.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    api: JsonClient,
    api_key: String,
}

impl FrontEnd {
    /// A front end posting to the gateway at `api` with `api_key`.
    pub fn new(api: JsonClient, api_key: impl Into<String>) -> Self {
        Self {
            api,
            api_key: api_key.into(),
        }
    }

    /// Files `report`; its `service_request_id`.
    pub async fn file(&self, report: &Planned) -> Result<String, HttpError> {
        let uprn = report.uprn.to_string();
        let answer = self
            .api
            .post_form(
                "/open311/v2/requests.json",
                &[
                    ("api_key", self.api_key.as_str()),
                    ("service_code", report.service_code.as_str()),
                    ("address_id", uprn.as_str()),
                    ("description", report.description.as_str()),
                ],
            )
            .await?;
        answer
            .get(0)
            .and_then(|created| created.get("service_request_id"))
            .and_then(|id| id.as_str())
            .map(str::to_owned)
            .ok_or_else(|| HttpError::Body {
                url: format!("{}/open311/v2/requests.json", self.api.base()),
                reason: format!("no service_request_id in {answer}"),
            })
    }

    /// The requests with `ids`, as `GET requests.json?service_request_id=…` lists them.
    pub async fn statuses(&self, ids: &[String]) -> Result<Vec<Listed>, HttpError> {
        let ids = ids.join(",");
        self.api
            .get(&format!(
                "/open311/v2/requests.json?service_request_id={ids}"
            ))
            .await
    }

    /// Every request the endpoint lists (its default window), for checking a summary.
    pub async fn all(&self) -> Result<Vec<Listed>, HttpError> {
        self.api.get("/open311/v2/requests.json").await
    }
}

/// Residents and tenants: file `planned` reports at their times, and missed-bin reports from what
/// the crews did (`passes`), then follow them all, until `stop`.
pub async fn run(
    front_end: FrontEnd,
    mut planned: Vec<Planned>,
    mut passes: mpsc::UnboundedReceiver<CrewEvent>,
    clock: SimClock,
    book: Arc<ReportBook>,
    seed: u64,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Bins passed on each round still being worked: reported once the round is done.
    let mut on_round: BTreeMap<String, Vec<(u64, BinStream, Cause)>> = BTreeMap::new();
    let mut next_follow = FOLLOW_EVERY;
    loop {
        planned.sort_by_key(|p| std::cmp::Reverse(p.after));
        let next_report = planned.last().map(|p| p.after);
        let due = next_report.map_or(next_follow, |at| at.min(next_follow));
        let wait = clock.real(due.saturating_sub(clock.elapsed()));
        tokio::select! {
            () = stop.cancelled() => return,
            Some(event) = passes.recv() => {
                match event {
                    CrewEvent::Passed { round, uprn, stream, outcome } => {
                        let cause = match outcome {
                            None => Some(Cause::Missed),
                            Some(Outcome::NotPresented) if rng.gen_bool(NOT_PUT_OUT_REPORTED) => {
                                Some(Cause::NotPutOut)
                            }
                            Some(_) => None,
                        };
                        if let Some(cause) = cause {
                            on_round.entry(round).or_default().push((uprn, stream, cause));
                        }
                    }
                    CrewEvent::RoundCompleted { round } => {
                        for (uprn, stream, cause) in on_round.remove(&round).unwrap_or_default() {
                            let delay = Duration::from_secs(rng.gen_range(20..90) * 60);
                            planned.push(missed_bin(clock.elapsed() + delay, uprn, stream, cause));
                        }
                    }
                }
                continue;
            }
            () = tokio::time::sleep(wait) => {}
        }
        if next_report.is_some_and(|at| at <= clock.elapsed()) {
            if let Some(report) = planned.pop() {
                file(&front_end, &book, report, &stop).await;
            }
        } else if next_follow <= clock.elapsed() {
            book.refresh(&front_end).await;
            next_follow = clock.elapsed() + FOLLOW_EVERY;
        }
    }
}

/// A resident's report that their `stream` bin was missed.
fn missed_bin(after: Duration, uprn: u64, stream: BinStream, cause: Cause) -> Planned {
    Planned {
        after,
        uprn,
        service_code: stream.as_str().to_owned(),
        description: format!("My {} bin was not emptied today.", stream.as_str()),
        cause,
    }
}

/// Files `report`, retrying what may succeed later (the gateway busy, a 429), until `stop`.
async fn file(front_end: &FrontEnd, book: &ReportBook, report: Planned, stop: &CancellationToken) {
    match retry_transient(stop, || front_end.file(&report)).await {
        None => {}
        Some(Ok(id)) => {
            tracing::info!(id, uprn = report.uprn, service = %report.service_code, "resident's report filed");
            book.insert(
                id,
                Filed {
                    cause: report.cause,
                    uprn: report.uprn,
                    service_code: report.service_code,
                    status: None,
                    status_notes: None,
                },
            );
        }
        Some(Err(error)) => tracing::warn!(%error, uprn = report.uprn, "the report was refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_bin_report_names_its_bin_and_home() {
        let report = missed_bin(
            Duration::from_secs(60),
            100_021_445_101,
            BinStream::Recycling,
            Cause::Missed,
        );
        assert_eq!(report.service_code, "recycling");
        assert!(report.description.contains("recycling"));
        let heating = Planned::heating(Duration::ZERO, 1, "No heating.");
        assert_eq!(
            (heating.service_code.as_str(), heating.cause),
            ("heating_fault", Cause::Heating)
        );
    }

    #[test]
    fn the_listing_is_read_as_georeport_writes_it() {
        let listing = serde_json::json!([{
            "service_request_id": "MB-3", "status": "no_further_action",
            "status_notes": "The crew recorded the bin was not put out.", "service_code": "refuse",
            "requested_datetime": "2026-12-01T09:00:00+00:00"
        }]);
        let listed: Vec<Listed> = serde_json::from_value(listing).unwrap();
        assert_eq!(listed[0].status, "no_further_action");
        assert_eq!(listed[0].service_code.as_deref(), Some("refuse"));
    }
}
