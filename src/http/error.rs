//! One error type, one envelope: RFC 9457 `application/problem+json` with a stable `code`.
//!
//! 500 bodies are generic; the cause is logged once here, inside the request's span, so the
//! log line carries the request id while the client sees only that id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::request_id;
use crate::store::DbError;

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
    pub code: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// Every error the API returns. Each variant maps to exactly one status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A 400 with its own code (`idempotency_key_required`, `invalid_signature`).
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A single-field rule with its own code (e.g. `send_at_not_in_future`).
    #[error("{detail}")]
    Rule {
        code: &'static str,
        field: &'static str,
        detail: String,
    },
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{1}")]
    Unauthenticated(&'static str, String),
    #[error("{1}")]
    Forbidden(&'static str, String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{detail}")]
    TooManyRequests {
        code: &'static str,
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
        ApiError::Conflict("conflict", m.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid(..) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } | ApiError::Rule { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated(..) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(..) => StatusCode::FORBIDDEN,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid(code, _) => code,
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Rule { code, .. } => code,
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unauthenticated(code, _) => code,
            ApiError::Forbidden(code, _) => code,
            ApiError::PaymentRequired(_) => "subscription_inactive",
            ApiError::Conflict(code, _) => code,
            ApiError::TooManyRequests { code, .. } => code,
            ApiError::Timeout => "request_timeout",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The problem document, with the current request's id.
    pub fn problem(&self) -> Problem {
        let status = self.status();
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
        problem(status, self.code(), detail, errors)
    }
}

/// Builds a problem for `status` and `code` in the current request.
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Option<Vec<FieldError>>,
) -> Problem {
    Problem {
        type_: format!("https://rampart.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
        request_id: request_id::current().unwrap_or_default(),
        errors,
    }
}

/// Marks a response whose body is already a problem document.
#[derive(Clone, Copy)]
pub struct IsProblem;

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
        res.extensions_mut().insert(ErrorCode(self.code()));
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
            ApiError::Conflict("idempotency_in_flight", _) => {
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
pub struct ErrorCode(pub &'static str);

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::NotFound,
            DbError::Unique(_) => ApiError::conflict("the resource already exists"),
            DbError::Unavailable(_) => {
                tracing::warn!(error = ?e, "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry shortly".into())
            }
            other => ApiError::internal(other),
        }
    }
}

/// The code for a bare framework error status (a 404 from routing, a 413 from the limit).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        404 => "not_found",
        405 => "method_not_allowed",
        408 | 504 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        429 => "rate_limited",
        503 => "service_unavailable",
        _ => "internal_error",
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Every stable code, with its status, for the API reference.
pub const CODES: &[(&str, u16, &str)] = &[
    (
        "bad_request",
        400,
        "the JSON, query or header could not be parsed",
    ),
    (
        "validation_failed",
        422,
        "a field failed validation; see errors[]",
    ),
    ("payload_too_large", 413, "the body exceeds the size limit"),
    (
        "unsupported_media_type",
        415,
        "the body is not application/json",
    ),
    (
        "not_found",
        404,
        "no such route or object (also another org's object)",
    ),
    (
        "method_not_allowed",
        405,
        "the route does not accept this method",
    ),
    (
        "unauthenticated",
        401,
        "no credentials, or an invalid or expired token",
    ),
    (
        "invalid_api_key",
        401,
        "the API key is unknown or malformed",
    ),
    ("api_key_revoked", 401, "the API key was revoked"),
    ("api_key_expired", 401, "the API key has expired"),
    (
        "tenant_mismatch",
        403,
        "the identity belongs to another tenant than this deployment's",
    ),
    (
        "insufficient_scope",
        403,
        "the credential lacks the route's scope",
    ),
    (
        "insufficient_permission",
        403,
        "the credential lacks the route's permission",
    ),
    (
        "insufficient_role",
        403,
        "the user's role is below what the route needs",
    ),
    (
        "forbidden",
        403,
        "the credential kind may not use this route",
    ),
    (
        "subscription_inactive",
        402,
        "the org's subscription is not active",
    ),
    (
        "tier_insufficient",
        403,
        "the org's plan tier does not include this route",
    ),
    ("rate_limited", 429, "too many requests; see Retry-After"),
    (
        "quota_exceeded",
        429,
        "the period's quota is used up; see Retry-After",
    ),
    ("conflict", 409, "the object conflicts with an existing one"),
    (
        "idempotency_key_reused",
        422,
        "the Idempotency-Key was used with another payload",
    ),
    (
        "idempotency_in_flight",
        409,
        "a request with this Idempotency-Key is still running",
    ),
    (
        "idempotency_key_required",
        400,
        "this route requires an Idempotency-Key header",
    ),
    (
        "send_at_not_in_future",
        422,
        "send_at must be in the future",
    ),
    (
        "conversation_not_found",
        422,
        "the conversation does not exist in this org",
    ),
    (
        "unsupported_target",
        422,
        "the target cannot receive scheduled messages",
    ),
    (
        "not_cancelable",
        409,
        "the object is no longer in a cancelable state",
    ),
    (
        "channel_not_configured",
        422,
        "the org has no active channel endpoint",
    ),
    (
        "not_replayable",
        409,
        "the dead letter is not open, or its endpoint is not active",
    ),
    (
        "invalid_signature",
        400,
        "the webhook signature did not verify",
    ),
    (
        "request_timeout",
        503,
        "the request took longer than the server allows",
    ),
    (
        "service_unavailable",
        503,
        "a dependency is unavailable; retry later",
    ),
    (
        "internal_error",
        500,
        "an unexpected error; quote the request id",
    ),
];
