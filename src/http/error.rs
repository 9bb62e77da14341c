//! One error type, one envelope: RFC 9457 `application/problem+json` with a stable `code`.
//!
//! 500 bodies are generic; the cause is logged once here, inside the request's span, so the
//! log line carries the request id while the client sees only that id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::request_id;
use crate::store::{Constraint, DbError};

pub use super::error_code::ErrorCode;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A field-level validation message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a JSON path (`metadata.tags[2]`).
    pub field: String,
    pub message: String,
}

/// The problem document every error response carries.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI identifying the problem type (`https://rampart.dev/problems/<code>`).
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code; see the list in the API reference.
    #[schema(value_type = String)]
    pub code: ErrorCode,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// Every error the API returns. Each carries one [`ErrorCode`], which decides its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A 400 with its own code (`idempotency_key_required`, `invalid_signature`).
    #[error("{1}")]
    Invalid(ErrorCode, String),
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A single-field rule with its own code (e.g. `send_at_not_in_future`).
    #[error("{detail}")]
    Rule {
        code: ErrorCode,
        field: &'static str,
        detail: String,
    },
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("the request target is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("the request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{1}")]
    Unauthenticated(ErrorCode, String),
    #[error("{1}")]
    Forbidden(ErrorCode, String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{1}")]
    Conflict(ErrorCode, String),
    #[error("{detail}")]
    TooManyRequests {
        code: ErrorCode,
        detail: String,
        retry_after_s: u64,
    },
    #[error("request timed out")]
    Timeout,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    pub fn internal_msg(m: impl Into<String>) -> Self {
        ApiError::Internal(m.into().into())
    }

    pub fn bad_request(m: impl Into<String>) -> Self {
        ApiError::BadRequest(m.into())
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.to_owned(),
                message,
            }],
        }
    }

    pub fn conflict(m: impl Into<String>) -> Self {
        ApiError::Conflict(ErrorCode::Conflict, m.into())
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Invalid(code, _) => *code,
            ApiError::Validation { .. } => ErrorCode::ValidationFailed,
            ApiError::Rule { code, .. } => *code,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::BodyTimeout(_) => ErrorCode::BodyTimeout,
            ApiError::UriTooLong(_) => ErrorCode::UriTooLong,
            ApiError::HeadersTooLarge(_) => ErrorCode::HeadersTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Unauthenticated(code, _) => *code,
            ApiError::Forbidden(code, _) => *code,
            ApiError::PaymentRequired(_) => ErrorCode::SubscriptionInactive,
            ApiError::Conflict(code, _) => *code,
            ApiError::TooManyRequests { code, .. } => *code,
            ApiError::Timeout => ErrorCode::RequestTimeout,
            ApiError::Unavailable(_) => ErrorCode::ServiceUnavailable,
            ApiError::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// The problem document, with the current request's id.
    pub fn problem(&self) -> Problem {
        let detail = match self {
            // Never the cause: it may name tables, paths or peers.
            ApiError::Internal(_) => {
                "an internal error occurred; quote the request id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Validation { errors, .. } => Some(errors.clone()),
            ApiError::Rule { field, detail, .. } => Some(vec![FieldError {
                field: (*field).to_owned(),
                message: detail.clone(),
            }]),
            _ => None,
        };
        problem(self.code(), detail, errors)
    }
}

/// Builds the problem of `code` in the current request.
pub fn problem(code: ErrorCode, detail: String, errors: Option<Vec<FieldError>>) -> Problem {
    let status = code.status();
    Problem {
        type_: format!("https://rampart.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code,
        request_id: request_id::current().unwrap_or_default(),
        errors,
    }
}

/// Marks a response whose body is already a problem document.
#[derive(Clone, Copy)]
pub struct IsProblem;

/// Marks an error response whose body a handler wrote for a person (a console page): the
/// conventions keep it rather than replace it with a problem document.
#[derive(Clone, Copy)]
pub struct HtmlErrorPage;

pub fn problem_response(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res.extensions_mut().insert(IsProblem);
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, error.debug = ?cause, "request failed with an internal error");
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %self, "service unavailable");
        }
        let mut res = problem_response(&self.problem());
        res.extensions_mut().insert(ResponseCode(self.code()));
        match &self {
            ApiError::TooManyRequests { retry_after_s, .. } => {
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(*retry_after_s.max(&1)),
                );
            }
            ApiError::Unavailable(_) | ApiError::Timeout => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Conflict(ErrorCode::IdempotencyInFlight, _) => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthenticated(..) => {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rampart\""),
                );
            }
            _ => {}
        }
        res
    }
}

/// The stable code of an error response, for metrics and audit (a response extension).
#[derive(Clone, Copy, Debug)]
pub struct ResponseCode(pub ErrorCode);

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if let Some(c) = e.unique_violation() {
            return ApiError::conflict(conflict_message(c));
        }
        match e.root() {
            DbError::NotFound => ApiError::NotFound,
            DbError::Unavailable(_) => {
                tracing::warn!(error = ?e, "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry shortly".into())
            }
            _ => ApiError::internal(e),
        }
    }
}

/// What a unique violation means to the client: the one place each constraint gets its words.
fn conflict_message(c: Constraint) -> &'static str {
    match c {
        Constraint::ContactExternalKey => "a contact with this external_key already exists",
        Constraint::UserEmail => "a user with this email already exists",
        Constraint::IdempotencyKey => "this Idempotency-Key is already in use",
        Constraint::LiveJob => "the same work is already queued",
        Constraint::ApiKeySecret
        | Constraint::RefreshToken
        | Constraint::AuditSequence
        | Constraint::PrimaryKey
        | Constraint::Unknown => "the object conflicts with one written at the same time; retry",
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
