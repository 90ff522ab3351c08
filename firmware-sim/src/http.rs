//! A small JSON-over-HTTP client for the agents' local APIs (hyper's legacy pooled client), as an
//! in-cab or handheld app would call them.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between retries of a request that may succeed later.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be built (a malformed URL).
    #[error("invalid request to {url}: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server could not be reached, or the connection failed.
    #[error("{url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("{url}: no answer within {REQUEST_TIMEOUT:?}")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// The body was not the JSON expected.
    #[error("{url}: unexpected body: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl HttpError {
    /// Whether trying again later may succeed: the server was unreachable, slow, or answered
    /// with a 5xx (507 is a full outbox, 503 a server starting or stopping), a 408, or a 429 (a
    /// rate limit, such as Open311's on posts).
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Unreachable { .. } | HttpError::Timeout { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || matches!(*status, 408 | 429),
            HttpError::Invalid { .. } | HttpError::Body { .. } => false,
        }
    }
}

/// A JSON client with a base URL such as `http://127.0.0.1:8181`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JsonClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Sent as `Authorization: Bearer …` on every request, if set.
    bearer: Option<String>,
}

impl JsonClient {
    /// A client for the API at `base` (a trailing `/` is ignored).
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            bearer: None,
        }
    }

    /// The same client, sending `token` as a bearer token (the gateway's staff API).
    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path}`, parsed as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        let (url, body) = self.send("GET", path, None).await?;
        serde_json::from_slice(&body).map_err(|e| HttpError::Body {
            url,
            reason: e.to_string(),
        })
    }

    /// `POST {base}{path}` with a JSON body; returns the answer's JSON.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, HttpError> {
        let sent = Some(("application/json", body.to_string()));
        let (url, answer) = self.send("POST", path, sent).await?;
        parse_answer(url, &answer)
    }

    /// `POST {base}{path}` with a form-encoded body (as a council's front end posts to Open311);
    /// returns the answer's JSON.
    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<serde_json::Value, HttpError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let sent = Some(("application/x-www-form-urlencoded", form));
        let (url, answer) = self.send("POST", path, sent).await?;
        parse_answer(url, &answer)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<(String, Bytes), HttpError> {
        let url = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some((content_type, body)) => {
                builder = builder.header("content-type", content_type);
                body
            }
            None => String::new(),
        };
        let request =
            builder
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| HttpError::Invalid {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| HttpError::Unreachable {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| HttpError::Unreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok::<_, HttpError>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| HttpError::Timeout { url: url.clone() })??;
        if !(200..300).contains(&status) {
            return Err(HttpError::Status {
                url,
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok((url, body))
    }
}

/// An answer's JSON (`null` for an empty body).
fn parse_answer(url: String, answer: &[u8]) -> Result<serde_json::Value, HttpError> {
    if answer.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(answer).map_err(|e| HttpError::Body {
        url,
        reason: e.to_string(),
    })
}

/// Runs `attempt` until it answers other than with a transient error, waiting twice as long
/// after each (from 200 ms, at most 5 s); `None` if `stop` came first.
pub async fn retry_transient<T, F, Fut>(
    stop: &CancellationToken,
    mut attempt: F,
) -> Option<Result<T, HttpError>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, HttpError>>,
{
    let mut wait = Duration::from_millis(200);
    loop {
        match attempt().await {
            Err(error) if error.is_transient() => {
                tracing::debug!(%error, "no answer that will do yet; retrying");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
            answer => return Some(answer),
        }
    }
}
