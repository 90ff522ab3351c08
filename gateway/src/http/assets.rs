//! The staff API for boilers, for asset managers: the asset register (import and listing, each
//! boiler with its state, latest readings, open alerts and last day's efficiency), one boiler's
//! telemetry and efficiency over a range, the estate ranked by gas wasted, alerts with their
//! acknowledgement, and server-sent events of alerts and of one boiler's samples. Reading and
//! acknowledging need `asset_manager` (or `admin`); importing the register needs `admin`, as the
//! property register's import does ([`super::guard`]).
//!
//! Handlers only parse, authorize, call the boiler desk or read the boilers' store, and format:
//! times are RFC 3339 (UTC), every figure carries its unit in its name.

pub(crate) mod events;
pub(crate) mod views;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, blocking, repairs, rfc3339, ApiError, AppState};
use crate::access::Staff;
use crate::boilers::efficiency::{
    daily_efficiency, day_efficiency, month_bounds, month_efficiency, year_bounds,
};
use crate::boilers::periods::daily_series;
use crate::boilers::rollup::hourly_series;
use crate::boilers::{
    Ack, AckError, Alert, AlertKind, Asset, BoilerDeskError, ImportReport, Severity, HOUR_MS,
};
use crate::storage::AssetLog;
use views::{alert_view, efficiency_view, parse_alert_id, rollup_view, sample_view};

/// The largest asset register CSV accepted in one import.
const MAX_REGISTER_BYTES: usize = 64 * 1024 * 1024;
/// The most points one telemetry or efficiency answer holds: a year of hours is 8,760.
pub const MAX_POINTS: i64 = 10_000;
/// The most assets one page of the listing holds: each is a day's rollups read.
const MAX_ASSETS_PER_PAGE: usize = 1_000;
/// The most alerts one listing holds.
const MAX_ALERTS: usize = 5_000;
/// The longest acknowledgement note, in characters.
const MAX_NOTE_CHARS: usize = 2_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The boiler routes, to merge into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/assets",
            // A whole estate's register is megabytes of CSV.
            get(list_assets)
                .post(import_assets)
                .layer(DefaultBodyLimit::max(MAX_REGISTER_BYTES)),
        )
        .route("/api/v1/assets/:id", get(asset))
        .route("/api/v1/assets/:id/telemetry", get(telemetry))
        .route("/api/v1/assets/:id/efficiency", get(efficiency))
        .route("/api/v1/estate", get(estate))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/:id/ack", post(acknowledge))
        .route("/api/v1/alerts/events", get(alert_events))
        .route("/api/v1/assets/:id/events", get(sample_events))
}

impl From<BoilerDeskError> for ApiError {
    fn from(e: BoilerDeskError) -> Self {
        match e {
            BoilerDeskError::Store(e) => e.into(),
            BoilerDeskError::Import(e) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
            BoilerDeskError::Ack(e) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        }
    }
}

/// A query string as the handler's struct, or a 400 naming what was wrong.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

/// An RFC 3339 time (any offset) as UTC ms.
fn parse_time(parameter: &str, value: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            bad(
                parameter,
                format!("{e}: expected an RFC 3339 time such as 2026-11-24T10:00:00Z"),
            )
        })
}

/// `from` and `to` (RFC 3339), defaulting to the `default_ms` before now and now.
fn range(
    state: &AppState,
    from: Option<&str>,
    to: Option<&str>,
    default_ms: i64,
) -> Result<(i64, i64), ApiError> {
    let to = match to {
        Some(to) => parse_time("to", to)?,
        None => state.clock.now_ms(),
    };
    let from = match from {
        Some(from) => parse_time("from", from)?,
        None => to.saturating_sub(default_ms),
    };
    if from >= to {
        return Err(bad("to", "must be after from"));
    }
    Ok((from, to))
}

fn registered(state: &AppState, id: &str) -> Result<Asset, ApiError> {
    state
        .boilers
        .with_boilers(|b| b.register().get(id).cloned())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no asset {id}")))
}

/// The council's local date at `at_ms`.
fn local_date(state: &AppState, at_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .with_timezone(&state.council_tz)
        .date_naive()
}

async fn import_assets(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ImportReport>, ApiError> {
    let desk = state.boilers.clone();
    Ok(Json(
        blocking(move || Ok(desk.import_assets(body.as_ref())?)).await?,
    ))
}

/// A boiler's state: `silent` while its silence alert is open or before it has been heard
/// from, `alerting` while any other alert is open, else `ok`.
fn asset_state(open: &[Alert], heard: bool) -> &'static str {
    if !heard || open.iter().any(|a| a.kind == AlertKind::Silent) {
        "silent"
    } else if open.is_empty() {
        "ok"
    } else {
        "alerting"
    }
}

fn open_alerts(state: &AppState, asset: &str) -> Vec<Alert> {
    state
        .boilers
        .alerts(asset)
        .map(|alerts| alerts.open().cloned().collect())
        .unwrap_or_default()
}

/// One asset as staff see it: register facts, state, latest readings, open alerts, and the
/// last complete local day's efficiency.
fn asset_view(state: &AppState, asset: &Asset) -> Result<Value, ApiError> {
    let store = state.boiler_store.as_ref();
    let latest = store.sample_before(&asset.asset, i64::MAX)?;
    let open = open_alerts(state, &asset.asset);
    let yesterday = local_date(state, state.clock.now_ms())
        .pred_opt()
        .unwrap_or_default();
    let config = state
        .boilers
        .with_boilers(|b| b.config().efficiency.clone());
    let log = AssetLog::new(store, &asset.asset);
    let (day, efficiency) =
        day_efficiency(&log, yesterday, state.council_tz, asset.meters, &config)?;
    // Jobs still open or watching their alert: from memory, so listing assets reads no jobs.
    let live = state.repairs.live_for_asset(&asset.asset);
    let index = repairs::by_alert(&live);
    Ok(json!({
        "asset": asset.asset,
        "uprn": asset.uprn,
        "address": asset.address,
        "make": asset.make,
        "model": asset.model,
        "rated_output_kw": asset.rated_output_kw,
        "installed": asset.installed,
        "gas_meter": asset.meters.gas,
        "heat_meter": asset.meters.heat,
        "hub": asset.hub.as_str(),
        "state": asset_state(&open, latest.is_some()),
        "latest": latest.as_ref().map(sample_view),
        "open_alerts": open
            .iter()
            .map(|a| repairs::for_alert(alert_view(a), a, &index))
            .collect::<Vec<_>>(),
        "open_repairs": repairs::for_asset(&live, &asset.asset),
        "last_day_efficiency": efficiency_view(&day, efficiency.as_ref(), Some(yesterday.to_string())),
    }))
}

#[derive(Debug, Deserialize)]
struct AssetsQuery {
    /// Only assets with ids after this one: the next page after the last id seen.
    after: Option<String>,
    /// At most this many assets, in id order (default and most: 1,000).
    limit: Option<String>,
}

async fn list_assets(
    State(state): State<AppState>,
    q: Result<Query<AssetsQuery>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let q = query(q)?;
    let limit = match q.limit.as_deref() {
        None => MAX_ASSETS_PER_PAGE,
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| bad("limit", e))?
            .min(MAX_ASSETS_PER_PAGE),
    };
    blocking(move || {
        let assets: Vec<Asset> = state.boilers.with_boilers(|b| {
            b.register()
                .iter()
                .filter(|a| q.after.as_ref().is_none_or(|after| a.asset > *after))
                .take(limit)
                .cloned()
                .collect()
        });
        assets
            .iter()
            .map(|asset| asset_view(&state, asset))
            .collect::<Result<Vec<_>, _>>()
            .map(Json)
    })
    .await
}

async fn asset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let asset = registered(&state, &id)?;
    blocking(move || {
        let mut view = asset_view(&state, &asset)?;
        let jobs = state.repairs.jobs()?;
        if let Value::Object(map) = &mut view {
            map.insert("repairs".into(), repairs::for_asset(&jobs, &asset.asset));
        }
        Ok(Json(view))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct AlertsQuery {
    /// Only this asset's alerts.
    asset: Option<String>,
    /// `open` (default) or `closed`.
    state: Option<String>,
    /// Only alerts of this kind (`pressure_low`, `fault`, …).
    kind: Option<String>,
    /// Only alerts of this severity (`info`, `warning`, `high`, `critical`).
    severity: Option<String>,
    /// Closed alerts opened at or after this time (RFC 3339); default 30 days before `to`.
    from: Option<String>,
    /// Closed alerts opened before this time (RFC 3339); default now.
    to: Option<String>,
    /// At most this many alerts (default and most: 5,000), newest first.
    limit: Option<String>,
}

fn parse_enum<T: serde::de::DeserializeOwned>(parameter: &str, value: &str) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(value.to_owned()))
        .map_err(|_| bad(parameter, format!("unknown value {value:?}")))
}

async fn list_alerts(
    State(state): State<AppState>,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let q = query(q)?;
    let kind: Option<AlertKind> = q
        .kind
        .as_deref()
        .map(|k| parse_enum("kind", k))
        .transpose()?;
    let severity: Option<Severity> = q
        .severity
        .as_deref()
        .map(|s| parse_enum("severity", s))
        .transpose()?;
    let closed = match q.state.as_deref() {
        None | Some("open") => false,
        Some("closed") => true,
        Some(other) => return Err(bad("state", format!("{other:?}: expected open or closed"))),
    };
    let limit = match q.limit.as_deref() {
        None => MAX_ALERTS,
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| bad("limit", e))?
            .min(MAX_ALERTS),
    };
    let (from, to) = range(&state, q.from.as_deref(), q.to.as_deref(), 30 * DAY_MS)?;
    let assets: Vec<String> = match &q.asset {
        Some(id) => vec![registered(&state, id)?.asset],
        None => state
            .boilers
            .with_boilers(|b| b.register().iter().map(|a| a.asset.clone()).collect()),
    };
    blocking(move || {
        let mut found = Vec::new();
        for asset in &assets {
            let alerts = if closed {
                state.boilers.closed_alerts(asset, from, to)?
            } else {
                open_alerts(&state, asset)
            };
            found.extend(alerts.into_iter().filter(|a| {
                kind.is_none_or(|k| a.kind == k) && severity.is_none_or(|s| a.severity == s)
            }));
        }
        found.sort_by(|a, b| {
            b.opened_at_ms
                .cmp(&a.opened_at_ms)
                .then_with(|| a.asset.cmp(&b.asset))
        });
        found.truncate(limit);
        let jobs = state.repairs.jobs()?;
        let index = repairs::by_alert(&jobs);
        Ok(Json(
            found
                .iter()
                .map(|a| repairs::for_alert(alert_view(a), a, &index))
                .collect(),
        ))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// What the member of staff noted.
    note: Option<String>,
}

async fn acknowledge(
    State(state): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Result<Json<AckBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    if body
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(bad(
            "note",
            format!("longer than {MAX_NOTE_CHARS} characters"),
        ));
    }
    let not_found = |id: &str| ApiError::new(StatusCode::NOT_FOUND, format!("no alert {id}"));
    let (asset, kind, opened_at_ms) = parse_alert_id(&id).ok_or_else(|| not_found(&id))?;
    let is_open = state
        .boilers
        .alerts(&asset)
        .and_then(|alerts| alerts.get(kind).map(|a| a.opened_at_ms == opened_at_ms))
        .unwrap_or(false);
    let desk = state.boilers.clone();
    if !is_open {
        // A closed alert cannot be acknowledged: say so rather than "not found".
        let closed = blocking(move || {
            Ok(desk
                .closed_alerts(&asset, opened_at_ms, opened_at_ms.saturating_add(1))?
                .into_iter()
                .any(|a| a.kind == kind))
        })
        .await?;
        return Err(if closed {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("alert {id} is closed: only open alerts are acknowledged"),
            )
        } else {
            not_found(&id)
        });
    }
    // The token's name: who (or which staff tool) acknowledged it.
    let ack = Ack {
        by: staff.name,
        at_ms: state.clock.now_ms(),
        note: body.note,
    };
    let alert = blocking(move || match desk.acknowledge(&asset, kind, ack) {
        Ok(alert) => Ok(alert),
        Err(BoilerDeskError::Ack(AckError::NotOpen { .. })) => Err(not_found(&id)),
        Err(e) => Err(e.into()),
    })
    .await?;
    Ok(Json(alert_view(&alert)))
}

/// Alerts as they open, escalate and close (server-sent events).
async fn alert_events(State(state): State<AppState>) -> Result<axum::response::Response, ApiError> {
    let receiver = state.boilers.subscribe();
    Ok(events::alerts(&state, receiver).into_response())
}

/// One boiler's samples as they are stored (server-sent events).
async fn sample_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let asset = registered(&state, &id)?;
    let ranges = state.boilers.with_boilers(|b| b.config().ranges.clone());
    let receiver = state.ingest_events.subscribe();
    Ok(events::samples(&state, asset, ranges, receiver).into_response())
}

#[derive(Debug, Deserialize)]
struct TelemetryQuery {
    /// The range's start (RFC 3339); default a day before `to`.
    from: Option<String>,
    /// The range's end (RFC 3339, exclusive); default now.
    to: Option<String>,
    /// `raw`, `hour` or `day`; default chosen from the range.
    step: Option<String>,
}

/// The step for a range when none is asked for: raw up to 2 days, hours up to 90 days, days
/// beyond, so a year is answered from rollups.
fn telemetry_step(from: i64, to: i64) -> &'static str {
    match to - from {
        span if span <= 2 * DAY_MS => "raw",
        span if span <= 90 * DAY_MS => "hour",
        _ => "day",
    }
}

/// A series' answer: which asset, the range, the step and its points.
fn series_view(asset: &str, from: i64, to: i64, step: &str, points: Vec<Value>) -> Json<Value> {
    Json(json!({
        "asset": asset,
        "from": rfc3339(from),
        "to": rfc3339(to),
        "step": step,
        "points": points,
    }))
}

fn too_many(points: i64, step: &str) -> ApiError {
    bad(
        "from",
        format!(
            "the range holds about {points} points at step={step}, more than {MAX_POINTS}: \
             narrow the range or use a coarser step"
        ),
    )
}

async fn telemetry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<TelemetryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let asset = registered(&state, &id)?;
    let (from, to) = range(&state, q.from.as_deref(), q.to.as_deref(), DAY_MS)?;
    let step = match q.step.as_deref() {
        None => telemetry_step(from, to),
        Some(step @ ("raw" | "hour" | "day")) => step,
        Some(other) => return Err(bad("step", format!("{other:?}: expected raw, hour or day"))),
    };
    let interval = state
        .boilers
        .with_boilers(|b| b.config().rollup.sample_interval_ms)
        .max(1);
    let points = match step {
        "raw" => (to - from) / interval,
        "hour" => (to - from) / HOUR_MS,
        _ => (to - from) / DAY_MS,
    };
    if points > MAX_POINTS {
        return Err(too_many(points, step));
    }
    let step = step.to_owned();
    blocking(move || {
        let store = state.boiler_store.as_ref();
        let log = AssetLog::new(store, &asset.asset);
        let points: Vec<Value> = match step.as_str() {
            "raw" => {
                let samples = store.samples_in(&asset.asset, from, to)?;
                // A hub sampling faster than configured cannot make the answer unbounded.
                if samples.len() > MAX_POINTS as usize {
                    return Err(too_many(samples.len() as i64, "raw"));
                }
                samples.iter().map(sample_view).collect()
            }
            "hour" => hourly_series(&log, from, to)?
                .iter()
                .map(rollup_view)
                .collect(),
            _ => daily_series(
                &log,
                local_date(&state, from),
                local_date(&state, to - 1),
                state.council_tz,
            )?
            .iter()
            .map(|(day, rollup)| {
                let mut view = rollup_view(rollup);
                view["day"] = json!(day.to_string());
                view
            })
            .collect(),
        };
        Ok(series_view(&asset.asset, from, to, &step, points))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct EfficiencyQuery {
    /// The range's start (RFC 3339); default 30 days before `to`.
    from: Option<String>,
    /// The range's end (RFC 3339, exclusive); default now.
    to: Option<String>,
    /// `day` or `month` (council's local calendar); default `day` up to 92 days, else `month`.
    step: Option<String>,
}

async fn efficiency(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<EfficiencyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let asset = registered(&state, &id)?;
    let (from, to) = range(&state, q.from.as_deref(), q.to.as_deref(), 30 * DAY_MS)?;
    let step = match q.step.as_deref() {
        None if to - from <= 92 * DAY_MS => "day",
        None => "month",
        Some(step @ ("day" | "month")) => step,
        Some(other) => return Err(bad("step", format!("{other:?}: expected day or month"))),
    };
    let points = match step {
        "day" => (to - from) / DAY_MS,
        _ => (to - from) / (28 * DAY_MS),
    };
    if points > MAX_POINTS {
        return Err(too_many(points, step));
    }
    let step = step.to_owned();
    blocking(move || {
        let tz = state.council_tz;
        let config = state
            .boilers
            .with_boilers(|b| b.config().efficiency.clone());
        let log = AssetLog::new(state.boiler_store.as_ref(), &asset.asset);
        let first = local_date(&state, from);
        let last = local_date(&state, to - 1);
        let mut points = Vec::new();
        if step == "day" {
            for (day, rollup, eff) in
                daily_efficiency(&log, first, last, tz, asset.meters, &config)?
            {
                points.push(efficiency_view(
                    &rollup,
                    eff.as_ref(),
                    Some(day.to_string()),
                ));
            }
        } else {
            let mut month = first.with_day(1).unwrap_or(first);
            while month <= last {
                if let Some((rollup, eff)) =
                    month_efficiency(&log, month, tz, asset.meters, &config)?
                {
                    let label = format!("{:04}-{:02}", month.year(), month.month());
                    points.push(efficiency_view(&rollup, eff.as_ref(), Some(label)));
                }
                let Some(next) = month.checked_add_months(chrono::Months::new(1)) else {
                    break;
                };
                month = next;
            }
        }
        Ok(series_view(&asset.asset, from, to, &step, points))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct EstateQuery {
    /// Rank by waste over this local calendar month, `YYYY-MM`; default the current month.
    month: Option<String>,
    /// Rank by waste over this local calendar year, `YYYY`, instead of a month.
    year: Option<String>,
}

async fn estate(
    State(state): State<AppState>,
    q: Result<Query<EstateQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let tz = state.council_tz;
    let now = state.clock.now_ms();
    let (start, end, period) = match (&q.month, &q.year) {
        (Some(_), Some(_)) => return Err(bad("year", "give either month or year, not both")),
        (None, Some(year)) => {
            let y: i32 = year
                .parse()
                .map_err(|_| bad("year", format!("{year:?}: expected YYYY")))?;
            let (s, e) = year_bounds(y, tz).ok_or_else(|| bad("year", "out of range"))?;
            (s, e, year.clone())
        }
        (Some(month), None) => {
            let date = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
                .map_err(|_| bad("month", format!("{month:?}: expected YYYY-MM")))?;
            let (s, e) = month_bounds(date.year(), date.month(), tz)
                .ok_or_else(|| bad("month", "out of range"))?;
            (s, e, month.clone())
        }
        (None, None) => {
            let today = local_date(&state, now);
            let (s, e) = month_bounds(today.year(), today.month(), tz)
                .ok_or_else(|| bad("month", "out of range"))?;
            (s, e, format!("{:04}-{:02}", today.year(), today.month()))
        }
    };
    // The current period counts only up to now: coverage is of the time that has passed.
    let end = end.min(now.max(start.saturating_add(1)));
    blocking(move || {
        let estate = state.boilers.estate(start, end)?;
        let mut counts =
            std::collections::BTreeMap::from([("ok", 0), ("alerting", 0), ("silent", 0)]);
        for (asset, heard) in &estate.heard {
            *counts
                .entry(asset_state(&open_alerts(&state, asset), *heard))
                .or_default() += 1;
        }
        let addresses = &estate.addresses;
        let assets = &estate.heard;
        let ranking: Vec<Value> = estate
            .ranking
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                json!({
                    "rank": i + 1,
                    "asset": r.asset,
                    "address": addresses.get(&r.asset),
                    "wasted_kwh": r.waste.wasted_kwh,
                    "wasted_kwh_whole_period": r.waste.wasted_kwh_whole_period(),
                    "wasted_gbp": r.waste.wasted_gbp,
                    "wasted_co2e_kg": r.waste.wasted_co2e_kg,
                    "saving_pct": r.waste.saving_pct,
                    "efficiency_pct": r.waste.efficiency.pct,
                    "efficiency_basis": r.waste.efficiency.basis.as_str(),
                    "potential_pct": r.waste.potential_pct,
                    "gas_kwh": r.waste.gas_kwh,
                    "gas_basis": r.waste.gas_basis.as_str(),
                    "coverage": r.waste.coverage,
                    "advice": r.waste.advice,
                })
            })
            .collect();
        Ok(Json(json!({
            "period": period,
            "from": rfc3339(start),
            "to": rfc3339(end),
            "assets": assets.len(),
            "by_state": counts,
            "ranking": ranking,
        })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::views::alert_id;
    use super::*;

    #[test]
    fn the_step_is_chosen_so_a_year_comes_from_daily_rollups() {
        assert_eq!(telemetry_step(0, DAY_MS), "raw");
        assert_eq!(telemetry_step(0, 30 * DAY_MS), "hour");
        assert_eq!(telemetry_step(0, 365 * DAY_MS), "day");
    }

    #[test]
    fn an_alert_id_round_trips_even_with_slashes_in_the_asset_id() {
        let alert = Alert {
            asset: "HIL/B-1".into(),
            kind: AlertKind::PressureLow,
            severity: Severity::Warning,
            opened_at_ms: 1_795_514_400_000,
            evidence: Vec::new(),
            ack: None,
            closed_at_ms: None,
            closing_evidence: Vec::new(),
        };
        let id = alert_id(&alert);
        assert_eq!(
            parse_alert_id(&id),
            Some((
                "HIL/B-1".to_owned(),
                AlertKind::PressureLow,
                1_795_514_400_000
            ))
        );
        assert_eq!(parse_alert_id("nonsense"), None);
        assert_eq!(parse_alert_id("B-1:nokind:5"), None);
    }

    #[test]
    fn a_boiler_never_heard_from_is_silent_and_one_with_alerts_alerting() {
        assert_eq!(asset_state(&[], false), "silent");
        assert_eq!(asset_state(&[], true), "ok");
    }
}
