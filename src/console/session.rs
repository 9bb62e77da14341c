//! Console sessions: a server-side row named by the SHA-256 of a random cookie
//! (`HttpOnly; SameSite=Strict; Path=/console`, `Secure` when HSTS is on). A session dies
//! after [`IDLE_MS`] without use, [`ABSOLUTE_MS`] after sign-in, at sign-out, when the user's
//! password changes or when they leave the org (`members::store::revoke_sessions`).
//!
//! Every state-changing form carries the session's CSRF token, an HMAC of the cookie under
//! the server key (so nothing more is stored), compared in constant time; and a POST whose
//! `Origin` is not this server's is refused before anything else.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;

use crate::access::grants::Role;
use crate::access::principal::Environment;
use crate::access::secrets::constant_time_eq;
use crate::access::tokens::sha256_hex;
use crate::ids::{OrgId, UserId};
use crate::state::AppState;
use crate::store::{DbResult, Exec, Q};

/// The cookie's name.
pub const COOKIE: &str = "rampart_console";
/// A session unused this long is dead.
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// How stale `last_seen_at` may get before a request writes it again (well under [`IDLE_MS`]).
const TOUCH_MS: i64 = 60 * 1000;
/// A session this old is dead, however busy.
pub const ABSOLUTE_MS: i64 = 12 * 3600 * 1000;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A live session, as a request sees it: who, in which org, with the role they hold now.
#[derive(Debug, Clone)]
pub struct Session {
    /// The stored id (the cookie's hash).
    pub id: String,
    pub user_id: UserId,
    pub email: String,
    pub org_id: OrgId,
    pub role: Role,
    pub environment: Environment,
    /// The token every form of this session carries.
    pub csrf: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: String,
    user_id: UserId,
    org_id: OrgId,
    environment: Environment,
    last_seen_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    email: String,
    /// The user's role in the org as it is now: a demotion applies at the next page.
    role: Role,
}

/// The CSRF token of the session whose cookie is `raw`.
fn csrf_of(app: &AppState, raw: &str) -> String {
    B64.encode(
        app.keys
            .sign(format!("rampart-console-csrf:{raw}").as_bytes()),
    )
}

/// Starts a session; returns the cookie value to set.
pub async fn create(
    app: &AppState,
    ex: &mut impl Exec,
    user: &UserId,
    org: &OrgId,
) -> DbResult<String> {
    let raw = format!("cs_{}", B64.encode(app.keys.random::<32>()));
    let now = app.clock.now_ms();
    Q::write(
        "INSERT INTO console_sessions (id, user_id, org_id, environment, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $5, $6)",
    )
    .bind(sha256_hex(&raw))
    .bind(user)
    .bind(org)
    .bind(Environment::Live)
    .bind(now)
    .bind(now + ABSOLUTE_MS)
    .execute(ex)
    .await?;
    Ok(raw)
}

/// The live session named by the request's cookie, touched (its idle clock restarts); `None`
/// if there is none, or it is expired, revoked, or its user has left the org.
pub async fn load(app: &AppState, headers: &HeaderMap) -> DbResult<Option<Session>> {
    let Some(raw) = cookie(headers) else {
        return Ok(None);
    };
    let id = sha256_hex(&raw);
    let mut db = app.db.clone();
    let row: Option<Row> = Q::read(
        "SELECT s.id, s.user_id, s.org_id, s.environment, s.last_seen_at, s.expires_at,
                s.revoked_at, u.email, m.role
           FROM console_sessions s JOIN users u ON u.id = s.user_id
           JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
          WHERE s.id = $1",
    )
    .bind(&id)
    .fetch_optional(&mut db)
    .await?;
    let now = app.clock.now_ms();
    let Some(row) = row
        .filter(|r| r.revoked_at.is_none() && r.expires_at > now && now - r.last_seen_at < IDLE_MS)
    else {
        return Ok(None);
    };
    // The idle clock restarts at most once a minute, not one write per page.
    if now - row.last_seen_at >= TOUCH_MS {
        Q::write(
            "UPDATE console_sessions SET last_seen_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(&row.id)
        .bind(now)
        .execute(&mut db)
        .await?;
    }
    Ok(Some(Session {
        id: row.id,
        user_id: row.user_id,
        email: row.email,
        org_id: row.org_id,
        role: row.role,
        environment: row.environment,
        csrf: csrf_of(app, &raw),
    }))
}

/// Signs out: the row is revoked for good.
pub async fn revoke(ex: &mut impl Exec, id: &str) -> DbResult<()> {
    Q::write("UPDATE console_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(crate::clock::now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

/// The live/test switch.
pub async fn set_environment(ex: &mut impl Exec, id: &str, env: Environment) -> DbResult<()> {
    Q::write("UPDATE console_sessions SET environment = $2 WHERE id = $1")
        .bind(id)
        .bind(env)
        .execute(ex)
        .await?;
    Ok(())
}

/// The session cookie in the request, if any.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() <= 128)
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(app: &AppState, raw: &str) -> HeaderValue {
    let secure = if app.config.hsts { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={raw}; HttpOnly; SameSite=Strict; Path=/console{secure}"
    ))
    .unwrap_or(HeaderValue::from_static("rampart_console=; Path=/console"))
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "rampart_console=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0",
    )
}

/// Whether `presented` is this session's CSRF token (constant time).
pub fn csrf_ok(s: &Session, presented: &str) -> bool {
    constant_time_eq(s.csrf.as_bytes(), presented.as_bytes())
}

/// Whether the request's `Origin` is this server: the public base URL when configured, else
/// the `Host` the request was sent to. A missing or `null` origin is refused: browsers send
/// it with every form POST.
pub fn origin_ok(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if let Some(base) = &app.config.public_base_url {
        return origin == base.trim_end_matches('/');
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let scheme_ok = |rest: &str| rest == host;
    match origin.split_once("://") {
        Some(("https", rest)) => scheme_ok(rest),
        Some(("http", rest)) => !app.config.hsts && scheme_ok(rest),
        _ => false,
    }
}
