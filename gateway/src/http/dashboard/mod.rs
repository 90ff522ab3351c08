//! The dashboard: staff pages served by the gateway itself, from files embedded in the binary
//! ([`files`]), that read the same JSON API and server-sent events as any other client. Staff
//! sign in with their token once; the browser then holds a session cookie ([`sessions`]) that
//! [`super::authorize`] accepts in place of the bearer token.
//!
//! Pages are gated by role as the API is: the estate and boiler pages need `asset_manager`, the
//! waste supervisors' page what its API needs (`viewer`). A page the role cannot see redirects
//! to one it can; without a session, to the sign-in form.

mod files;
pub mod sessions;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use super::{authorize, ApiError, AppState};
use crate::access::Action;
pub use sessions::Sessions;

/// The longest token the sign-in form accepts.
const MAX_TOKEN_CHARS: usize = 512;

/// What every dashboard response carries: only the gateway's own scripts, styles and API; never
/// framed; no sniffing content types.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The dashboard's routes, to merge into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/", get(estate_page))
        .route("/dashboard/boilers/:id", get(asset_page))
        .route("/dashboard/waste", get(waste_page))
        .route("/dashboard/sign-in", get(sign_in_page).post(sign_in))
        .route("/dashboard/sign-out", post(sign_out))
        .route("/dashboard/session", get(session))
        .route("/dashboard/static/*path", get(static_file))
}

/// A page of the dashboard and the role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Estate,
    Waste,
}

impl Page {
    const ALL: [Page; 2] = [Page::Estate, Page::Waste];

    /// What the page's API calls do.
    fn needs(self) -> Action {
        match self {
            Page::Estate => Action::ReadBoilers,
            Page::Waste => Action::ReadRounds,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Page::Estate => "/dashboard/",
            Page::Waste => "/dashboard/waste",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Estate => "Boilers",
            Page::Waste => "Waste rounds",
        }
    }
}

/// The pages the request's token or session may see, as [`authorize`] decides (so the role
/// rules stay in one place), the estate first.
fn pages(state: &AppState, headers: &HeaderMap) -> Vec<Page> {
    Page::ALL
        .into_iter()
        .filter(|page| authorize(state, headers, page.needs()).is_ok())
        .collect()
}

/// The page the request lands on: the first it may see, else the sign-in form.
fn landing(state: &AppState, headers: &HeaderMap) -> &'static str {
    pages(state, headers)
        .first()
        .map(|page| page.path())
        .unwrap_or("/dashboard/sign-in")
}

/// The session cookie's id in `headers`, if any.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == sessions::COOKIE)
        .map(|(_, value)| value)
}

/// Whether the request comes from the gateway's own pages, as far as the browser says: a
/// cross-site `Origin` or `Sec-Fetch-Site` is refused. With the cookie's `SameSite=Strict`
/// this keeps other sites from acting with a signed-in browser's session (CSRF).
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(origin) = text(header::ORIGIN) {
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        if host.is_none() || host != text(header::HOST) {
            return false;
        }
    }
    match text(header::HeaderName::from_static("sec-fetch-site")) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

/// The staff token behind the request's session cookie: `None` without one. For
/// [`super::authorize`], which checks the token as it checks a bearer token.
pub(crate) fn session_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let Some(id) = session_id(headers) else {
        return Ok(None);
    };
    if !same_origin(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a session is only good from the dashboard's own pages",
        ));
    }
    state
        .sessions
        .token(id, state.wall_clock.now_ms())
        .map(Some)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the session has ended: sign in"))
}

/// The headers of every dashboard response.
fn dashboard_headers(content_type: &'static str, cache: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
}

/// An HTML page: never cached, as it is behind a sign-in.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        dashboard_headers("text/html; charset=utf-8", "no-store"),
        body,
    )
        .into_response()
}

/// `file` if the request's role may see `page`; else to the sign-in form, or to a page it may.
fn gated(state: &AppState, headers: &HeaderMap, page: Page, file: &str) -> Response {
    match authorize(state, headers, page.needs()) {
        Ok(_) => html(StatusCode::OK, files::page(file)),
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            Redirect::to(landing(state, headers)).into_response()
        }
        Err(_) => Redirect::to("/dashboard/sign-in").into_response(),
    }
}

async fn estate_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    gated(&state, &headers, Page::Estate, "estate.html")
}

/// One boiler's page; the script reads the id from the path.
async fn asset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(_id): Path<String>,
) -> Response {
    gated(&state, &headers, Page::Estate, "asset.html")
}

async fn waste_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    gated(&state, &headers, Page::Waste, "waste.html")
}

/// The sign-in form, with `error` said above it.
fn sign_in_form(status: StatusCode, error: Option<&str>) -> Response {
    let page = files::page("sign-in.html");
    let said = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{e}</p>"))
        .unwrap_or_default();
    html(status, page.replace("<!--error-->", &said))
}

async fn sign_in_page() -> Response {
    sign_in_form(StatusCode::OK, None)
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// Checks the token as the API does ([`authorize`], for what every role may do) and opens a
/// session.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !same_origin(&headers) {
        return sign_in_form(
            StatusCode::FORBIDDEN,
            Some("Sign in from the dashboard's own page."),
        );
    }
    let token = form.token.trim();
    let mut bearer = HeaderMap::new();
    let value = (token.len() <= MAX_TOKEN_CHARS)
        .then(|| HeaderValue::from_str(&format!("Bearer {token}")).ok())
        .flatten();
    // Every role may read the devices: the check that the token is good at all.
    let staff = value.and_then(|value| {
        bearer.insert(header::AUTHORIZATION, value);
        authorize(&state, &bearer, Action::ReadDevices).ok()
    });
    let Some(staff) = staff else {
        return sign_in_form(
            StatusCode::UNAUTHORIZED,
            Some("That token is not known. Check it and try again."),
        );
    };
    let id = match state.sessions.open(token, state.wall_clock.now_ms()) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "could not open a dashboard session");
            return sign_in_form(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The gateway could not start a session. Try again."),
            );
        }
    };
    // Secure when the page was served over TLS (directly or through a proxy): the browser's
    // Origin says which.
    let secure = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin.starts_with("https://"));
    let cookie = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        sessions::COOKIE,
        sessions::SESSION_TTL_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    tracing::info!(role = %staff.role, "dashboard session opened");
    let mut response = Redirect::to(landing(&state, &bearer)).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Some(id) = session_id(&headers) {
        state.sessions.close(id);
    }
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "fieldsync_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// The signed-in role and the pages it may see, for the pages' navigation; whether it may act on
/// boilers (acknowledge alerts, raise repair jobs), from the same role table as the API, so a
/// page offers only the forms the API would accept; and the council's time zone, in which the
/// pages show and read times whatever the device's own setting.
async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let staff = authorize(&state, &headers, Action::ReadDevices)?;
    let pages: Vec<_> = pages(&state, &headers)
        .into_iter()
        .map(|page| serde_json::json!({"path": page.path(), "title": page.title()}))
        .collect();
    Ok(Json(serde_json::json!({
        "role": staff.role,
        "name": staff.name,
        "pages": pages,
        "may_act_on_boilers": staff.role.may(Action::ActOnBoilers),
        "time_zone": state.council_tz.name(),
    })))
}

async fn static_file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = files::get(&path) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag = files::etag(file);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|seen| seen == etag);
    // Revalidated each time: the files change with the binary, and a 304 costs little.
    let mut out = dashboard_headers(file.content_type, "no-cache");
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    if fresh {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    (StatusCode::OK, out, file.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_the_gateways_own_origin_is_same_origin() {
        assert!(same_origin(&headers(&[("host", "gw:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "gw:8080"),
            ("origin", "http://gw:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "gw:8080"),
            ("origin", "https://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "gw:8080"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "gw:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; fieldsync_session=abc; b=2")]);
        assert_eq!(session_id(&map), Some("abc"));
        assert_eq!(session_id(&headers(&[("cookie", "a=1")])), None);
    }
}
