//! `POST /v1/auth/login|refresh|logout`.
//!
//! Login is limited per client address and per account; an unknown email and a wrong
//! password get the same answer after the same work (a dummy hash is verified). A live
//! device token of the account (see [`super::device`]) lifts the per-account limit.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::device;
use super::pair::{self, RefreshSecret};
use super::{LoginIn, LoginOut, RefreshIn, TokenOut, store};
use crate::access::client_ip::ClientIp;
use crate::access::grants::Role;
use crate::access::password;
use crate::access::principal::Actor;
use crate::access::tokens::sha256_hex;
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::clock::now_ms;
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode, Json};
use crate::ids::{OrgId, RefreshFamilyId};
use crate::state::AppState;
use crate::traffic::limits::{Limit, LimitKind};
use crate::users;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/auth/login", Profile::public(), login)
            .error(
                ErrorCode::Unauthenticated,
                "the email or password is wrong, or the user is not a member of the org named",
            )
            .summary("Log in with email and password; returns an access and a refresh token, and a device token to present at this client's next login")
            .tag("auth")
            .body::<LoginIn>()
            .returns::<LoginOut>(200),
        Route::post("/v1/auth/refresh", Profile::public(), super::refresh::refresh)
            .error(
                ErrorCode::Unauthenticated,
                "the refresh token is unknown, spent, revoked or expired",
            )
            .summary("Exchange a refresh token for a new pair (the old one is spent; presented again within the reuse interval it gets the same pair)")
            .tag("auth")
            .body::<RefreshIn>()
            .returns::<TokenOut>(200),
        Route::post("/v1/auth/logout", Profile::public(), logout)
            .summary("Revoke a refresh token and every token rotated from the same login")
            .tag("auth")
            .body::<RefreshIn>()
            .no_content(),
    ]
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthenticated(
        ErrorCode::Unauthenticated,
        "invalid email or password".into(),
    )
}

/// Checks one login limit; the 429 answer if it refuses.
async fn limited(app: &AppState, name: &'static str, id: String) -> Option<Response> {
    let decision = app
        .limiter
        .check(
            &[Limit {
                name,
                id: id.into(),
                rate: app.config.login_rate_limit,
                kind: LimitKind::Rate,
            }],
            now_ms(),
        )
        .await;
    let o = decision.refusal()?;
    let mut res = ApiError::TooManyRequests {
        code: ErrorCode::RateLimited,
        detail: format!("too many login attempts; retry in {} s", o.retry_after_s),
        retry_after_s: o.retry_after_s,
    }
    .into_response();
    crate::traffic::headers::apply(res.headers_mut(), &decision);
    Some(res)
}

/// A login whose credentials checked out: the user, their orgs and the device token seen.
pub struct Verified {
    pub user: users::User,
    pub memberships: Vec<(OrgId, Role)>,
    pub device: device::Device,
}

/// The one login check, shared by `POST /v1/auth/login` and the console's sign-in: the
/// per-address and per-account limits (a live device token lifts the latter), the password
/// (an unknown email costs the same work), and the audit of a failure. `Err(response)`: the
/// answer to give (a 429); `Ok(Err(e))`: refused credentials, already audited.
pub async fn verify_login(
    app: &AppState,
    meta: &RequestMeta,
    ip: Option<&ClientIp>,
    email: &str,
    password: String,
    device_token: Option<&str>,
) -> ApiResult<Result<Verified, Response>> {
    let email = users::normalise_email(email);
    let ip = ip.map_or_else(|| "unknown".to_owned(), |i| i.0.to_string());
    // Per address first: it also bounds the device-token lookups below.
    if let Some(res) = limited(app, "login_ip", format!("login:ip:{ip}")).await {
        return Ok(Err(res));
    }
    let device = device::check(&mut app.db.clone(), device_token, &email).await?;
    // A live device token of this account replaces the per-account limit with its own.
    if device.trusted_hash().is_none()
        && let Some(res) = limited(
            app,
            "login_account",
            format!("login:acct:{}", sha256_hex(&email)),
        )
        .await
    {
        return Ok(Err(res));
    }

    let user = users::by_email(&mut app.db.clone(), &email).await?;
    let ok = password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let user = match user {
        Some(u) if ok && !u.disabled() => u,
        other => return Err(refuse_login(app, meta, &email, other.as_ref(), &device).await?),
    };
    let memberships = users::memberships(&mut app.db.clone(), &user.id).await?;
    Ok(Ok(Verified {
        user,
        memberships,
        device,
    }))
}

async fn login(
    State(app): State<AppState>,
    meta: RequestMeta,
    ip: Option<axum::Extension<ClientIp>>,
    Json(body): Json<LoginIn>,
) -> ApiResult<Response> {
    let v = match verify_login(
        &app,
        &meta,
        ip.as_ref().map(|i| &i.0),
        &body.email,
        body.password,
        body.device_token.as_deref(),
    )
    .await?
    {
        Ok(v) => v,
        Err(limited) => return Ok(limited),
    };
    let Verified {
        user,
        memberships,
        device,
    } = v;
    let (org, role) = chosen_org(&memberships, body.org_id.as_ref())?;
    let mut tx = app.db.begin().await?;
    let tokens = pair::issue(
        &app,
        &mut tx,
        &user.id,
        &org,
        role,
        &RefreshFamilyId::new(),
        RefreshSecret::first(&app.keys),
    )
    .await?;
    let (device_token, device_hash) = device::new_token(&app.keys);
    let device_expires =
        now_ms() + i64::try_from(app.config.device_token_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    store::device_issued(
        &mut tx,
        &user.id,
        &device_hash,
        device_expires,
        device.trusted_hash(),
        device::KEEP_PER_USER,
    )
    .await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&org), Actor::User(user.id.clone()), "auth.login")
            .details(json!({ "device_token": device.label() })),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(LoginOut {
        tokens,
        device_token,
    })
    .into_response())
}

/// Records a failed login (and counts it against a trusted device token) and says why, in
/// words that do not tell an unknown email from a wrong password.
async fn refuse_login(
    app: &AppState,
    meta: &RequestMeta,
    email: &str,
    user: Option<&users::User>,
    device: &device::Device,
) -> ApiResult<ApiError> {
    let device_locked = match device.trusted_hash() {
        Some(h) => store::device_failed(&mut app.db.clone(), h, device::FAILURE_LIMIT).await?,
        None => false,
    };
    let memberships = match user {
        Some(u) => users::memberships(&mut app.db.clone(), &u.id).await?,
        None => Vec::new(),
    };
    let org = memberships.first().map(|m| m.0.clone());
    let actor = user.map_or(Actor::Anonymous, |u| Actor::User(u.id.clone()));
    audit::record_alone(
        &app.db,
        meta,
        Entry::new(org.as_ref(), actor, "auth.login")
            .outcome(Outcome::Failure)
            .details(json!({
                "email_sha256": sha256_hex(email),
                "reason": "invalid_credentials",
                "device_token": device.label(),
                "device_token_locked": device_locked,
            })),
    )
    .await;
    Ok(invalid_credentials())
}

/// The org a login is for: the one named, or the user's only one.
pub fn chosen_org(
    memberships: &[(OrgId, Role)],
    named: Option<&OrgId>,
) -> ApiResult<(OrgId, Role)> {
    let chosen = match named {
        Some(o) => memberships.iter().find(|(id, _)| id == o).cloned(),
        None if memberships.len() == 1 => memberships.first().cloned(),
        None if memberships.is_empty() => None,
        None => {
            return Err(ApiError::field(
                "org_id",
                "this user belongs to several orgs; name the one to log in to",
            ));
        }
    };
    chosen.ok_or_else(invalid_credentials)
}

async fn logout(
    State(app): State<AppState>,
    meta: RequestMeta,
    Json(body): Json<RefreshIn>,
) -> ApiResult<StatusCode> {
    let hash = sha256_hex(&body.refresh_token);
    let mut tx = app.db.begin().await?;
    if let Some(t) = store::by_hash(&mut tx, &hash).await?
        && store::revoke_family(&mut tx, &t.family_id).await? > 0
    {
        audit::record(
            &mut tx,
            &meta,
            Entry::new(Some(&t.org_id), Actor::User(t.user_id), "auth.logout")
                .target("token_family", t.family_id.as_str()),
        )
        .await?;
    }
    tx.commit().await?;
    // The same answer whether or not the token existed.
    Ok(StatusCode::NO_CONTENT)
}
