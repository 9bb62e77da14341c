//! What is refused from the request line and headers alone, before routing, credentials or
//! any store: the same answer on every route and both stores.

use axum::http::{HeaderMap, Uri, header};

use super::error::ApiError;

/// The longest request target (path and query) we accept. Ids, cursors and filters fit many
/// times over; nginx refuses a request line over 8 KiB by default too.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header bytes (names and values) a request may carry. Hyper's own, looser buffer
/// limit ([`super::serve::MAX_HEAD_BYTES`]) only stops heads too large to buffer at all.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The first reason to refuse this request outright, if any.
pub fn refusal(uri: &Uri, headers: &HeaderMap, body_limit: usize) -> Option<ApiError> {
    let target = uri.path_and_query().map_or("", |pq| pq.as_str());
    if target.len() > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::HeadersTooLarge(MAX_HEADER_BYTES));
    }
    if let Err(why) = check_encoding(uri.path()) {
        return Some(ApiError::bad_request(format!("the path {why}")));
    }
    if let Some(Err(why)) = uri.query().map(check_encoding) {
        return Some(ApiError::bad_request(format!("the query {why}")));
    }
    if declared_length(headers).is_some_and(|n| n > body_limit as u64) {
        // Refused from the header: waiting for a body we would refuse anyway only ties up the
        // connection until the request timeout.
        return Some(ApiError::PayloadTooLarge(body_limit));
    }
    None
}

/// Percent-encoding must be well formed and decode to UTF-8 text without NUL. A URI cannot
/// carry a raw NUL (the parser refuses it), only its encoding; refusing it here keeps every
/// path and query value storable on both stores (Postgres cannot store U+0000 in text).
fn check_encoding(s: &str) -> Result<(), &'static str> {
    if !s.contains('%') {
        return Ok(());
    }
    let raw = s.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("has a malformed percent-encoding (% must be followed by two hex digits)")?;
            if byte == 0 {
                return Err("must not contain a NUL character (%00)");
            }
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(raw[i]);
            i += 1;
        }
    }
    std::str::from_utf8(&decoded)
        .map(|_| ())
        .map_err(|_| "is not percent-encoded UTF-8")
}

/// The `Content-Length` the client declared; an unparsable one is hyper's to refuse.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(target: &str, length: Option<&str>) -> Option<ApiError> {
        let uri: Uri = target.parse().expect("test URI");
        let mut h = HeaderMap::new();
        if let Some(l) = length {
            h.insert(header::CONTENT_LENGTH, l.parse().expect("header"));
        }
        refusal(&uri, &h, 1024)
    }

    #[test]
    fn nul_in_the_path_or_query_is_refused_whatever_its_case_or_place() {
        assert!(refuse("/v1/contacts/c_%00", None).is_some());
        assert!(refuse("/v1/contacts?status=a%00b", None).is_some());
        assert!(refuse("/v1/contacts?%00=1", None).is_some());
        // An encoded percent sign followed by zeros is the text "%00", not NUL.
        assert!(refuse("/v1/contacts?q=%2500", None).is_none());
    }

    #[test]
    fn malformed_escapes_and_bytes_that_are_not_utf8_are_refused() {
        for bad in [
            "/v1/contacts/%zz",
            "/v1/contacts/%f",
            "/v1/contacts?q=%ff",
            "/v1/contacts?q=%ED%A0%80",
        ] {
            assert!(refuse(bad, None).is_some(), "{bad}");
        }
        assert!(refuse("/v1/contacts?q=caf%C3%A9+%E2%9C%93", None).is_none());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_and_at_the_limit_is_not() {
        assert!(refuse("/v1/contacts", Some("1025")).is_some());
        assert!(refuse("/v1/contacts", Some("1024")).is_none());
        assert!(refuse("/v1/contacts", None).is_none());
    }

    #[test]
    fn a_target_over_the_limit_is_refused_with_414() {
        let long = format!("/v1/contacts?cursor={}", "a".repeat(MAX_URI_BYTES));
        let e = refuse(&long, None).expect("refused");
        assert_eq!(e.status().as_u16(), 414);
    }
}
