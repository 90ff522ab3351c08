//! The staff API's door: every staff route is in [`STAFF_ROUTES`] with the one [`Action`] it
//! performs, and [`guard`], layered on all of them, lets a request through only with a bearer
//! token whose role may do that action (401 without a valid token, 403 with the wrong role). A
//! route missing from the table is refused to everyone, so a new route cannot be left open by
//! forgetting it; the table is what docs/API.md's role table shows, and what the test that walks
//! every route with every role reads.
//!
//! The handler behind it finds the caller as an `Extension<Staff>`, for what depends on who they
//! are (a report's personal data, the name on an acknowledgement).

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::access::{Action, Refusal, Staff};
use crate::metrics::Metrics;

/// A staff route and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffRoute {
    /// `GET` or `POST` (a `GET` route answers `HEAD` too).
    pub method: &'static str,
    /// The route as the router has it, `:name` for a parameter.
    pub path: &'static str,
    /// What it does.
    pub action: Action,
}

const fn route(method: &'static str, path: &'static str, action: Action) -> StaffRoute {
    StaffRoute {
        method,
        path,
        action,
    }
}

/// Every staff route, with what it does.
pub const STAFF_ROUTES: &[StaffRoute] = &[
    route("GET", "/api/v1/devices", Action::ReadDevices),
    route("GET", "/api/v1/quarantine", Action::Administer),
    route("GET", "/api/v1/rounds", Action::ReadRounds),
    route("GET", "/api/v1/rounds/:round/progress", Action::ReadRounds),
    route("GET", "/api/v1/reports", Action::ReadRounds),
    route("POST", "/api/v1/reports", Action::ActOnReports),
    route("GET", "/api/v1/reports/:id", Action::ReadRounds),
    route("POST", "/api/v1/reports/:id/place", Action::ActOnReports),
    route("GET", "/api/v1/unmatched", Action::ReadRounds),
    route("POST", "/api/v1/properties", Action::Administer),
    route("GET", "/api/v1/events", Action::ReadRounds),
    route("GET", "/api/v1/assets", Action::ReadBoilers),
    route("POST", "/api/v1/assets", Action::Administer),
    route("GET", "/api/v1/assets/:id", Action::ReadBoilers),
    route("GET", "/api/v1/assets/:id/telemetry", Action::ReadBoilers),
    route("GET", "/api/v1/assets/:id/efficiency", Action::ReadBoilers),
    route("GET", "/api/v1/assets/:id/events", Action::ReadBoilers),
    route("GET", "/api/v1/estate", Action::ReadBoilers),
    route("GET", "/api/v1/alerts", Action::ReadBoilers),
    route("POST", "/api/v1/alerts/:id/ack", Action::ActOnBoilers),
    route("GET", "/api/v1/alerts/events", Action::ReadBoilers),
    route("POST", "/api/v1/alerts/:id/repair", Action::ActOnBoilers),
    route("GET", "/api/v1/repairs", Action::ReadBoilers),
    route("POST", "/api/v1/repairs", Action::ActOnBoilers),
    route("GET", "/api/v1/repairs/events", Action::ReadBoilers),
    route("GET", "/api/v1/repairs/:id", Action::ReadBoilers),
    route("POST", "/api/v1/repairs/:id/cancel", Action::ActOnBoilers),
];

/// What the route `path` does for `method`, if it is a staff route.
pub fn action_for(method: &Method, path: &str) -> Option<Action> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    STAFF_ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.action)
}

/// The member of staff the request's bearer token (`Authorization: Bearer NAME.SECRET`), or
/// else the token behind its dashboard session cookie, belongs to, if they may do `action`: the
/// one check every staff request passes, from a client or from the dashboard's pages. 401
/// without a valid token, 403 with a role that may not; the token is never logged.
pub fn authorize(state: &AppState, headers: &HeaderMap, action: Action) -> Result<Staff, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let token = match bearer {
        Some(token) => token.to_owned(),
        None => match super::dashboard::session_token(state, headers)? {
            Some(token) => token,
            None => {
                Metrics::add(&state.metrics.staff_unauthenticated, 1);
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "a bearer token is required",
                ));
            }
        },
    };
    authorize_token(state, &token, action)
}

/// [`authorize`] for a token that came some other way (the dashboard's sign-in).
pub fn authorize_token(state: &AppState, token: &str, action: Action) -> Result<Staff, ApiError> {
    let staff = state
        .access
        .staff(token.trim())
        .map_err(|refusal| match refusal {
            Refusal::Store(e) => ApiError::from(e),
            // One answer for all: which part was wrong helps only a guesser.
            _ => ApiError::new(StatusCode::UNAUTHORIZED, "unknown or revoked token"),
        })?;
    if !staff.may(action) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the {} role may not do this", staff.role),
        ));
    }
    Ok(staff)
}

/// What a request to the route `path` with `method` does, or why it goes no further, whoever
/// asks: 405 for a method the route does not have (said here, since nothing unlisted goes
/// further), 403 for a route the table lacks (refused to everyone).
fn route_action(method: &Method, path: &str) -> Result<Action, ApiError> {
    if let Some(action) = action_for(method, path) {
        return Ok(action);
    }
    if STAFF_ROUTES.iter().any(|r| r.path == path) {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ));
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "this route has no role allowed",
    ))
}

/// The layer on every staff route: [`authorize`] for the route's action from [`STAFF_ROUTES`],
/// the caller then handed to the handler.
pub async fn guard(
    State(state): State<AppState>,
    path: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = path.as_ref().map_or("", MatchedPath::as_str);
    let action = match route_action(request.method(), path) {
        Ok(action) => action,
        Err(refused) => {
            if refused.status == StatusCode::FORBIDDEN {
                tracing::error!(
                    path,
                    "a staff route is missing from the role table; refused"
                );
            }
            return refused.into_response();
        }
    };
    match authorize(&state, request.headers(), action) {
        Ok(staff) => {
            request.extensions_mut().insert(staff);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once_and_head_is_a_get() {
        for (i, a) in STAFF_ROUTES.iter().enumerate() {
            assert!(
                STAFF_ROUTES[i + 1..]
                    .iter()
                    .all(|b| (a.method, a.path) != (b.method, b.path)),
                "{a:?} twice"
            );
        }
        assert_eq!(
            action_for(&Method::HEAD, "/api/v1/devices"),
            Some(Action::ReadDevices)
        );
        assert_eq!(action_for(&Method::DELETE, "/api/v1/devices"), None);
        assert_eq!(action_for(&Method::GET, "/api/v1/nothing"), None);
    }

    #[test]
    fn a_route_missing_from_the_table_is_refused_to_everyone() {
        let status = |method: &Method, path| route_action(method, path).map_err(|e| e.status);
        assert_eq!(
            status(&Method::GET, "/api/v1/reports"),
            Ok(Action::ReadRounds)
        );
        assert_eq!(
            status(&Method::DELETE, "/api/v1/reports"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status(&Method::GET, "/api/v1/forgotten"),
            Err(StatusCode::FORBIDDEN)
        );
    }
}
