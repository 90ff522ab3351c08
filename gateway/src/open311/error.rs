//! Open311 errors: what was wrong with a request ([`FieldError`]) and the HTTP answer it becomes
//! ([`Open311Error`]: a status and the specification's array of `{code, description}`).
//!
//! The specification's statuses: 403 for a missing or wrong api_key, 404 for a service or
//! request that does not exist, 400 for everything else, including failures behind the API ("eg
//! CRM is down"). The `code` in the body may be more specific than the HTTP status, which we use
//! for one case only: a backend outage is HTTP 400 with code 503, so a client can tell "try
//! again later" from "fix the request".

use axum::http::StatusCode;

use super::model::BackendError;

/// One thing wrong with a request, worded for the resident or the client's developer. Values
/// are echoed only where they are not personal data (codes and ids, never emails or names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// No `api_key` on a call that needs one.
    #[error("api_key was not provided -- can't proceed with {call}")]
    MissingApiKey {
        /// The call refused: `create_request` or `get_service_request_updates`.
        call: &'static str,
    },
    /// An `api_key` the backend does not accept.
    #[error("Invalid api_key received -- can't proceed with {call}")]
    BadApiKey {
        /// The call refused.
        call: &'static str,
    },
    /// A required field is absent or empty.
    #[error("{field} was not provided")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A field that takes one value was given several.
    #[error("{field} was given more than once")]
    Repeated {
        /// The field.
        field: &'static str,
    },
    /// A `service_code` in a POST that is not one of ours: 404, as the specification says.
    #[error("service_code {code} was not found; services.json lists the services")]
    UnknownService {
        /// The code, shortened if long.
        code: String,
    },
    /// No location that can be matched to a property.
    #[error("{0}")]
    Location(&'static str),
    /// A `jurisdiction_id` other than the one this endpoint serves: 404, as the specification
    /// says ("jurisdiction_id provided was not found").
    #[error("jurisdiction_id {given} was not found; this endpoint serves {served}")]
    UnknownJurisdiction {
        /// What the client sent, shortened if long.
        given: String,
        /// The one served.
        served: String,
    },
    /// A field's value is not acceptable.
    #[error("{field} {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why, continuing the sentence "{field} …".
        reason: String,
    },
}

impl FieldError {
    /// The HTTP status this error calls for on its own.
    pub fn status(&self) -> StatusCode {
        match self {
            FieldError::MissingApiKey { .. } | FieldError::BadApiKey { .. } => {
                StatusCode::FORBIDDEN
            }
            FieldError::UnknownService { .. } | FieldError::UnknownJurisdiction { .. } => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// An [`FieldError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        FieldError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// One entry of an Open311 error array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEntry {
    /// The error's code; usually the HTTP status.
    pub code: u16,
    /// What went wrong, for the user.
    pub description: String,
}

/// An Open311 error answer: an HTTP status and one or more entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open311Error {
    /// The HTTP status.
    pub status: StatusCode,
    /// The entries (never empty).
    pub errors: Vec<ErrorEntry>,
}

/// The body code that marks an outage behind the API (sent with HTTP 400, as the specification
/// asks for "General Service Error").
pub const UNAVAILABLE_CODE: u16 = 503;

impl Open311Error {
    /// One error with `status` as both HTTP status and code.
    pub fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![ErrorEntry {
                code: status.as_u16(),
                description: description.into(),
            }],
        }
    }

    /// A resource that does not exist.
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, description)
    }

    /// A request that cannot be fulfilled as sent.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, description)
    }

    /// Every problem found in a request at once, so that a client's developer can fix them in
    /// one go. 404 if all are unknown services, 403 if any is about the api_key, else 400.
    pub fn from_fields(errors: Vec<FieldError>) -> Self {
        let statuses: Vec<StatusCode> = errors.iter().map(FieldError::status).collect();
        let status = if statuses.contains(&StatusCode::FORBIDDEN) {
            StatusCode::FORBIDDEN
        } else if !statuses.is_empty() && statuses.iter().all(|s| *s == StatusCode::NOT_FOUND) {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        let mut errors: Vec<ErrorEntry> = errors
            .into_iter()
            .map(|e| ErrorEntry {
                code: e.status().as_u16(),
                description: e.to_string(),
            })
            .collect();
        if errors.is_empty() {
            errors.push(ErrorEntry {
                code: status.as_u16(),
                description: "the request is not valid".to_owned(),
            });
        }
        Self { status, errors }
    }
}

impl From<FieldError> for Open311Error {
    fn from(e: FieldError) -> Self {
        Self::from_fields(vec![e])
    }
}

impl From<BackendError> for Open311Error {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::UnknownAddress(_) | BackendError::Invalid { .. } => {
                Self::bad_request(e.to_string())
            }
            BackendError::UnknownRequest(_) => Self::not_found(e.to_string()),
            BackendError::Unavailable(detail) => {
                tracing::error!(error = %detail, "open311 backend unavailable");
                Self {
                    status: StatusCode::BAD_REQUEST,
                    errors: vec![ErrorEntry {
                        code: UNAVAILABLE_CODE,
                        description: "The missed-bin service is temporarily unavailable; \
                                      please try again later"
                            .to_owned(),
                    }],
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_specification() {
        assert_eq!(
            Open311Error::from(FieldError::MissingApiKey {
                call: "create_request"
            })
            .status,
            StatusCode::FORBIDDEN
        );
        let unknown = FieldError::UnknownService { code: "x".into() };
        assert_eq!(
            Open311Error::from(unknown.clone()).status,
            StatusCode::NOT_FOUND
        );
        let mixed = Open311Error::from_fields(vec![unknown, FieldError::Missing { field: "lat" }]);
        assert_eq!(mixed.status, StatusCode::BAD_REQUEST);
        assert_eq!(mixed.errors.len(), 2);
        assert_eq!(mixed.errors[0].code, 404);
        assert_eq!(mixed.errors[1].description, "lat was not provided");
    }

    #[test]
    fn an_outage_hides_its_detail() {
        let e = Open311Error::from(BackendError::Unavailable("sled: io error /var/x".into()));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.errors[0].code, UNAVAILABLE_CODE);
        assert!(!e.errors[0].description.contains("sled"));
    }
}
