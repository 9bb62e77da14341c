//! `Idempotency-Key` (IETF httpapi draft, Stripe semantics), scoped to the org and environment.
//!
//! 1. The guard claims the key in its own short transaction (`in_flight`), keyed by a
//!    fingerprint of method, path and canonical JSON body.
//! 2. The handler writes the response into the record **in the same transaction as its
//!    effect** ([`Idem::commit`]), fenced by the claim: if the claim was taken over (an
//!    abandoned request past its lock), the handler's transaction is rolled back. A crash
//!    between effect and record is impossible; a crash before commit leaves neither.
//! 3. A retry with the same key and payload replays status and body with
//!    `idempotent-replayed: true`; another payload is 422 `idempotency_key_reused`; a retry while
//!    the first still runs is 409 `idempotency_in_flight`. An error response releases the claim
//!    so the client can retry after fixing its request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::access::principal::Tenant;
use crate::access::tokens::sha256_hex;
use crate::clock::now_ms;
use crate::http::{ApiError, ErrorCode};
use crate::ids::IdempotencyRecordId;
use crate::store::{Db, DbResult, Q, Tx};

crate::text_enum::text_enum! {
    /// Where a keyed request stands.
    pub enum RecordStatus {
        InFlight = "in_flight",
        Completed = "completed",
    }
}

/// A stored idempotency record.
#[derive(sqlx::FromRow)]
struct Record {
    id: IdempotencyRecordId,
    fingerprint: String,
    status: RecordStatus,
    locked_at: i64,
    response_status: Option<i64>,
    response_body: Option<String>,
    expires_at: i64,
}

pub static HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The longest key accepted.
pub const KEY_MAX_LEN: usize = 255;

/// The bare form of a key, as the OpenAPI document states it: printable ASCII, neither starting
/// with a quote (that is the structured-field string form) nor starting or ending with a space
/// (header whitespace is trimmed).
pub const KEY_PATTERN: &str = "^[!#-~]([ -~]{0,253}[!-~])?$";

/// Parses the header: a bare token or a structured-field string (`"abc"`), 1..=255 printable
/// ASCII characters.
pub fn parse_key(raw: &HeaderValue) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "Idempotency-Key must be 1-255 printable ASCII characters (bare or as a quoted string)",
        )
    };
    let s = raw.to_str().map_err(|_| bad())?.trim();
    let key = if let Some(inner) = s.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or_else(bad)?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\')) => out.push(e),
                    _ => return Err(bad()),
                },
                '"' => return Err(bad()),
                c => out.push(c),
            }
        }
        out
    } else {
        s.to_owned()
    };
    if key.is_empty() || key.len() > KEY_MAX_LEN || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(bad());
    }
    Ok(key)
}

/// The fingerprint of a request: method, path and the body as canonical JSON (object keys
/// sorted, whitespace dropped), so a retry that re-serializes the same payload still matches.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec());
    let mut input = format!("{method}\n{path}\n").into_bytes();
    input.extend_from_slice(&canonical);
    sha256_hex(&String::from_utf8_lossy(&input))
}

/// A claimed key, carried to the handler as a request extension.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: IdempotencyRecordId,
    pub locked_at: i64,
}

/// What claiming found.
pub enum Begin {
    Claimed(Claim),
    Replay { status: u16, body: String },
    Reused,
    InFlight,
}

pub async fn begin(
    db: &Db,
    tenant: &Tenant,
    key: &str,
    fp: &str,
    ttl_ms: i64,
    lock_ms: i64,
) -> DbResult<Begin> {
    let now = now_ms();
    let id = IdempotencyRecordId::new();
    let mut tx = db.begin().await?;
    let inserted = Q::write("INSERT INTO idempotency_keys (id, org_id, environment, idem_key, fingerprint, status, locked_at, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, 'in_flight', $6, $6, $7)
         ON CONFLICT (org_id, environment, idem_key) DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(tenant.org())
    .bind(tenant.env())
    .bind(key)
    .bind(fp)
    .bind(now)
    .bind(now + ttl_ms)
    .fetch_optional::<(IdempotencyRecordId,)>(&mut tx)
    .await?;
    if inserted.is_some() {
        tx.commit().await?;
        return Ok(Begin::Claimed(Claim { id, locked_at: now }));
    }
    let row: Record = Q::read(
        "SELECT id, fingerprint, status, locked_at, response_status, response_body, expires_at
         FROM idempotency_keys WHERE org_id = $1 AND environment = $2 AND idem_key = $3",
    )
    .bind(tenant.org())
    .bind(tenant.env())
    .bind(key)
    .fetch_one(&mut tx)
    .await?;
    let existing_id = row.id;
    let expired = row.expires_at <= now;
    if expired {
        // A record past its lifetime no longer binds the key: start afresh.
        Q::write("UPDATE idempotency_keys SET fingerprint = $2, status = 'in_flight', locked_at = $3, response_status = NULL, response_body = NULL, created_at = $3, expires_at = $4 WHERE id = $1")
            .bind(&existing_id)
            .bind(fp)
            .bind(now)
            .bind(now + ttl_ms)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        return Ok(Begin::Claimed(Claim {
            id: existing_id,
            locked_at: now,
        }));
    }
    if row.fingerprint != fp {
        return Ok(Begin::Reused);
    }
    if row.status == RecordStatus::Completed {
        return Ok(Begin::Replay {
            status: u16::try_from(row.response_status.unwrap_or(200)).unwrap_or(200),
            body: row.response_body.unwrap_or_default(),
        });
    }
    let locked_at = row.locked_at;
    if now - locked_at < lock_ms {
        return Ok(Begin::InFlight);
    }
    // The first request was abandoned (its instance died): take the claim over, fenced on the
    // lock time we saw so that two retries cannot both take it.
    let n = Q::write("UPDATE idempotency_keys SET locked_at = $3 WHERE id = $1 AND locked_at = $2 AND status = 'in_flight'")
        .bind(&existing_id)
        .bind(locked_at)
        .bind(now)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(if n == 1 {
        Begin::Claimed(Claim {
            id: existing_id,
            locked_at: now,
        })
    } else {
        Begin::InFlight
    })
}

/// Releases a claim whose request failed, so that a corrected retry may run.
pub async fn release(db: &Db, claim: &Claim) -> DbResult<()> {
    Q::write(
        "DELETE FROM idempotency_keys WHERE id = $1 AND locked_at = $2 AND status = 'in_flight'",
    )
    .bind(&claim.id)
    .bind(claim.locked_at)
    .execute(&mut db.clone())
    .await?;
    Ok(())
}

/// Records a response after the fact (for a handler that had nothing to commit).
pub async fn complete_detached(db: &Db, claim: &Claim, status: u16, body: &str) -> DbResult<()> {
    let mut tx = db.begin().await?;
    record(&mut tx, claim, status, body).await?;
    tx.commit().await?;
    Ok(())
}

async fn record(tx: &mut Tx, claim: &Claim, status: u16, body: &str) -> DbResult<bool> {
    let n = Q::write(
        "UPDATE idempotency_keys SET status = 'completed', response_status = $3, response_body = $4
                 WHERE id = $1 AND locked_at = $2 AND status = 'in_flight'",
    )
    .bind(&claim.id)
    .bind(claim.locked_at)
    .bind(i64::from(status))
    .bind(body)
    .execute(tx)
    .await?;
    Ok(n == 1)
}

/// Deletes expired records; returns how many.
pub async fn purge(db: &Db) -> DbResult<u64> {
    Q::write("DELETE FROM idempotency_keys WHERE expires_at < $1")
        .bind(now_ms())
        .execute(&mut db.clone())
        .await
}

/// Marks a response whose idempotency record was written with its effect.
#[derive(Clone, Copy)]
pub struct Completed;

/// The handler's view of idempotency: `commit` replaces `tx.commit()` for mutations.
pub struct Idem(pub Option<Claim>);

impl<S: Send + Sync> FromRequestParts<S> for Idem {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Idem(parts.extensions.get::<Claim>().cloned()))
    }
}

impl Idem {
    /// Writes the response into the claimed record inside `tx`, commits, and returns the
    /// response. Without a key it just commits.
    pub async fn commit<T: Serialize>(
        self,
        tx: Tx,
        status: StatusCode,
        body: &T,
    ) -> Result<Response, ApiError> {
        let text = serde_json::to_string(body).map_err(ApiError::internal)?;
        self.finish(tx, status, text).await
    }

    /// As [`Idem::commit`] for an empty `204 No Content`.
    pub async fn commit_empty(self, tx: Tx) -> Result<Response, ApiError> {
        self.finish(tx, StatusCode::NO_CONTENT, String::new()).await
    }

    async fn finish(
        self,
        mut tx: Tx,
        status: StatusCode,
        text: String,
    ) -> Result<Response, ApiError> {
        if let Some(claim) = &self.0
            && !record(&mut tx, claim, status.as_u16(), &text).await?
        {
            tx.rollback().await?;
            return Err(ApiError::Conflict(
                ErrorCode::IdempotencyInFlight,
                "another request took over this Idempotency-Key".into(),
            ));
        }
        tx.commit().await?;
        let mut res = if text.is_empty() {
            status.into_response()
        } else {
            let mut r = (status, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        if self.0.is_some() {
            res.extensions_mut().insert(Completed);
        }
        Ok(res)
    }
}

/// The replay of a stored response.
pub fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut res = if body.is_empty() {
        status.into_response()
    } else {
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    res.headers_mut()
        .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_bare_and_quoted() {
        let p = |s: &str| parse_key(&HeaderValue::from_str(s).unwrap());
        assert_eq!(p("abc-123").unwrap(), "abc-123");
        assert_eq!(p("\"abc 123\"").unwrap(), "abc 123");
        assert_eq!(p(r#""a\"b""#).unwrap(), "a\"b");
        assert!(p("\"unterminated").is_err());
        assert!(p(&"k".repeat(256)).is_err());
        assert!(p(&"k".repeat(255)).is_ok());
        assert!(p("\"\"").is_err());
    }

    #[test]
    fn the_documented_key_pattern_accepts_only_keys_the_parser_accepts() {
        let re = regex::Regex::new(KEY_PATTERN).unwrap();
        let long = "k".repeat(KEY_MAX_LEN);
        let too_long = "k".repeat(KEY_MAX_LEN + 1);
        for k in [
            "a", "!", "~", "a b", "a\"", "\"a\"", "\"", " a", "a ", "", "ключ", &long, &too_long,
        ] {
            if re.is_match(k) {
                let v = HeaderValue::from_str(k).unwrap();
                assert_eq!(parse_key(&v).ok().as_deref(), Some(k), "{k:?}");
            }
        }
        assert!(re.is_match(&long) && !re.is_match(&too_long) && re.is_match("a b"));
    }

    #[test]
    fn fingerprints_ignore_json_formatting() {
        let a = fingerprint("POST", "/v1/x", br#"{"b":1, "a":2}"#);
        let b = fingerprint("POST", "/v1/x", br#"{"a":2,"b":1}"#);
        let c = fingerprint("POST", "/v1/x", br#"{"a":3,"b":1}"#);
        let d = fingerprint("POST", "/v1/y", br#"{"a":2,"b":1}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
