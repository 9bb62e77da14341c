//! Every stable error `code` the API returns, with its one HTTP status and its meaning.
//!
//! The list published in the OpenAPI document (`x-rampart-error-codes`) and in the API
//! reference is [`ErrorCode::ALL`]; `every_error_code_is_produced` (tests/api) provokes each one
//! over HTTP, so a code can be neither listed without being produced nor produced without
//! being listed.

use axum::http::StatusCode;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $meaning:literal) ),+ $(,)?) => {
        /// A stable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[serde(rename = $code)] $variant ),+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            pub fn status(self) -> StatusCode {
                let code = match self { $(ErrorCode::$variant => $status),+ };
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            /// What it means, for the API reference.
            pub const fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning),+ }
            }
        }
    };
}

error_codes! {
    BadRequest = ("bad_request", 400, "the JSON, query, path or a header could not be parsed"),
    ValidationFailed = ("validation_failed", 422, "a field failed validation; see errors[]"),
    PayloadTooLarge = ("payload_too_large", 413, "the body exceeds the size limit"),
    UriTooLong = ("uri_too_long", 414, "the request target is longer than the server accepts"),
    HeadersTooLarge = ("headers_too_large", 431, "the request headers are larger than the server accepts"),
    BodyTimeout = ("body_timeout", 408, "the client stopped sending its body before it was complete"),
    UnsupportedMediaType = ("unsupported_media_type", 415, "the body is not application/json"),
    NotFound = ("not_found", 404, "no such route or object (also another org's object)"),
    MethodNotAllowed = ("method_not_allowed", 405, "the route does not accept this method"),
    Unauthenticated = ("unauthenticated", 401, "no credentials, or an invalid or expired token"),
    InvalidApiKey = ("invalid_api_key", 401, "the API key is unknown or malformed"),
    ApiKeyRevoked = ("api_key_revoked", 401, "the API key was revoked"),
    ApiKeyExpired = ("api_key_expired", 401, "the API key has expired"),
    TenantMismatch = ("tenant_mismatch", 403, "the identity belongs to another tenant than this deployment's"),
    InsufficientScope = ("insufficient_scope", 403, "the credential lacks the route's scope"),
    InsufficientPermission = ("insufficient_permission", 403, "the credential lacks the route's permission"),
    InsufficientRole = ("insufficient_role", 403, "the user's role is below what the route needs"),
    SubscriptionInactive = ("subscription_inactive", 402, "the org's subscription is not active"),
    TierInsufficient = ("tier_insufficient", 403, "the org's plan tier does not include this route"),
    RateLimited = ("rate_limited", 429, "too many requests; see Retry-After"),
    QuotaExceeded = ("quota_exceeded", 429, "the period's quota is used up; see Retry-After"),
    Conflict = ("conflict", 409, "the object conflicts with an existing one"),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "the Idempotency-Key was used with another payload"),
    IdempotencyInFlight = ("idempotency_in_flight", 409, "a request with this Idempotency-Key is still running"),
    IdempotencyKeyRequired = ("idempotency_key_required", 400, "this route requires an Idempotency-Key header"),
    SendAtNotInFuture = ("send_at_not_in_future", 422, "send_at must be in the future"),
    ConversationNotFound = ("conversation_not_found", 422, "the conversation does not exist in this org"),
    UnsupportedTarget = ("unsupported_target", 422, "the target cannot receive scheduled messages"),
    NotCancelable = ("not_cancelable", 409, "the object is no longer in a cancelable state"),
    ChannelNotConfigured = ("channel_not_configured", 422, "the org has no active channel endpoint"),
    LastOwner = ("last_owner", 409, "the change would leave the org without an owner"),
    NotReplayable = ("not_replayable", 409, "the dead letter is not open, or its endpoint is not active"),
    NotResendable = ("not_resendable", 409, "the delivery's endpoint is failed or disabled (re-enable it first), or is the channel endpoint"),
    InvalidSignature = ("invalid_signature", 400, "the webhook signature did not verify"),
    RequestTimeout = ("request_timeout", 503, "the request took longer than the server allows"),
    ServiceUnavailable = ("service_unavailable", 503, "a dependency is unavailable; retry later"),
    InternalError = ("internal_error", 500, "an unexpected error; quote the request id"),
}

impl ErrorCode {
    /// The code for a bare status from the HTTP layer (a 404 from routing, a 413 from the body
    /// limit).
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthenticated,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::BodyTimeout,
            413 => ErrorCode::PayloadTooLarge,
            414 => ErrorCode::UriTooLong,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::ValidationFailed,
            429 => ErrorCode::RateLimited,
            431 => ErrorCode::HeadersTooLarge,
            503 | 504 => ErrorCode::ServiceUnavailable,
            _ => ErrorCode::InternalError,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
