//! The request id: the caller's `x-request-id` when it is a sane token, else a new UUIDv7.
//! Held in a task-local for the life of the request so every error body and audit entry can
//! name it without threading it through every call.

use axum::http::HeaderMap;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The id of the request being served on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Accepts 1..=128 characters of `[A-Za-z0-9._:@/+=-]`; anything else is replaced, so a
/// request id can never inject into logs or headers.
pub fn is_sane(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@/+=-".contains(&b))
}

pub fn from_headers(h: &HeaderMap) -> String {
    h.get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| is_sane(s))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The request id as a request extension, for handlers that want it explicitly.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanity() {
        assert!(is_sane("abc-123_DEF.4:5"));
        assert!(!is_sane(""));
        assert!(!is_sane("a b"));
        assert!(!is_sane("evil\r\nx"));
        assert!(!is_sane(&"a".repeat(129)));
        assert!(is_sane(&"a".repeat(128)));
    }
}
