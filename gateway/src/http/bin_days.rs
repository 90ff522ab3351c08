//! `GET /api/v1/bin-days`: a property's bin days for a council's own "check my bin day" page and
//! for residents' front ends (matching an address to a problem about a collection). Public: it
//! needs no token, holds no personal data (the register's addresses, the days, and the crews'
//! outcomes today; never a report or a resident), and may be called from any web page.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{rfc3339, ApiError, AppState};
use crate::missed_bins::bin_days::{self, PropertyBinDays};
use crate::missed_bins::Property;

/// The bin-day route, to merge into the main router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/bin-days", get(lookup))
}

#[derive(Debug, Deserialize)]
struct Lookup {
    /// Every property at this postcode (any spacing or case).
    postcode: Option<String>,
    /// One property by its UPRN.
    uprn: Option<String>,
}

/// The answer: the council's local day it speaks of, and each property found.
#[derive(Debug, Serialize)]
struct Answer {
    date: NaiveDate,
    properties: Vec<PropertyView>,
}

#[derive(Debug, Serialize)]
struct PropertyView {
    uprn: u64,
    address: String,
    postcode: Option<String>,
    bins: Vec<BinView>,
}

#[derive(Debug, Serialize)]
struct BinView {
    stream: proto::BinStream,
    name: &'static str,
    last_collection_day: Option<NaiveDate>,
    next_collection_day: Option<NaiveDate>,
    collection_today: bool,
    today: Option<TodayView>,
}

#[derive(Debug, Serialize)]
struct TodayView {
    collected: bool,
    outcome: proto::Outcome,
    at: String,
}

impl From<PropertyBinDays> for PropertyView {
    fn from(days: PropertyBinDays) -> Self {
        Self {
            uprn: days.uprn,
            address: days.address,
            postcode: days.postcode,
            bins: days
                .bins
                .into_iter()
                .map(|bin| BinView {
                    stream: bin.stream,
                    name: bin.name,
                    last_collection_day: bin.last_collection_day,
                    next_collection_day: bin.next_collection_day,
                    collection_today: bin.collection_today,
                    today: bin.today.map(|today| TodayView {
                        collected: today.collected,
                        outcome: today.outcome,
                        at: rfc3339(today.at),
                    }),
                })
                .collect(),
        }
    }
}

/// The longest postcode worth looking up ("UB10 8BE" is 8; with odd spacing, a little more).
const MAX_POSTCODE_CHARS: usize = 16;

async fn lookup(
    State(state): State<AppState>,
    query: Result<Query<Lookup>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let answer = match query {
        Ok(Query(lookup)) => answer(&state, lookup),
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.body_text())),
    };
    let mut response = match answer {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => e.into_response(),
    };
    // Public data for any council web page to read from the browser.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn answer(state: &AppState, lookup: Lookup) -> Result<Answer, ApiError> {
    let bad = |message: &str| ApiError::new(StatusCode::BAD_REQUEST, message);
    let now = state.clock.now_ms();
    state.desk.with_missed(|missed| {
        let date = missed.calendar().local_date(now);
        let found: Vec<&Property> = match (&lookup.postcode, &lookup.uprn) {
            (Some(postcode), None) => {
                if postcode.chars().count() > MAX_POSTCODE_CHARS {
                    return Err(bad("postcode: longer than a postcode"));
                }
                bin_days::by_postcode(missed.register(), postcode)
            }
            (None, Some(uprn)) => {
                let uprn: u64 = uprn
                    .trim()
                    .parse()
                    .map_err(|_| bad("uprn: must be a UPRN, a number of up to 12 digits"))?;
                missed.register().get(uprn).into_iter().collect()
            }
            _ => return Err(bad("give one of postcode or uprn")),
        };
        Ok(Answer {
            date,
            properties: found
                .into_iter()
                .map(|property| bin_days::bin_days(missed, property, date).into())
                .collect(),
        })
    })
}
