//! `POST /v1/auth/login|refresh|logout`.
//!
//! Login is limited per client address and per account; an unknown email and a wrong
//! password get the same answer after the same work (a dummy hash is verified). Refresh tokens
//! rotate on every use; presenting a spent one revokes its whole family (RFC 6819 §5.2.2.3).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client_ip::ClientIp;
use super::grants::Role;
use super::password;
use super::principal::Actor;
use super::tokens::{self, Claims, sha256_hex};
use crate::app::AppState;
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::clock::now_ms;
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Validate};
use crate::ids::{OrgId, UserId, new_id};
use crate::store::{Exec, Tx, sql};
use crate::traffic::limits::{Limit, LimitKind};
use crate::users;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/auth/login", Profile::public(), login)
            .summary("Log in with email and password; returns an access and a refresh token")
            .tag("auth")
            .body::<LoginIn>()
            .returns::<TokenOut>(200),
        Route::post("/v1/auth/refresh", Profile::public(), refresh)
            .summary("Exchange a refresh token for a new pair (the old one is spent)")
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
    /// Which org to act in, for a user who belongs to several.
    pub org_id: Option<String>,
}

impl Validate for LoginIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("email", &self.email, 1, 254);
        c.len("password", &self.password, 1, 1024);
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    pub refresh_token: String,
}

impl Validate for RefreshIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("refresh_token", &self.refresh_token, 1, 256);
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenOut {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub org_id: String,
    pub role: Role,
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthenticated("unauthenticated", "invalid email or password".into())
}

async fn login(
    State(app): State<AppState>,
    meta: RequestMeta,
    ip: Option<axum::Extension<ClientIp>>,
    Json(body): Json<LoginIn>,
) -> ApiResult<Response> {
    let email = users::normalise_email(&body.email);
    let ip = ip.map_or_else(|| "unknown".to_owned(), |i| i.0.0.to_string());
    let rate = app.config.login_rate_limit;
    let decision = app
        .limiter
        .check(
            &[
                Limit {
                    name: "login_ip",
                    id: format!("login:ip:{ip}").into(),
                    rate,
                    kind: LimitKind::Rate,
                },
                Limit {
                    name: "login_account",
                    id: format!("login:acct:{}", sha256_hex(&email)).into(),
                    rate,
                    kind: LimitKind::Rate,
                },
            ],
            crate::clock::now_ms(),
        )
        .await;
    if let Some(o) = decision.refusal() {
        let mut res = ApiError::TooManyRequests {
            code: "rate_limited",
            detail: format!("too many login attempts; retry in {} s", o.retry_after_s),
            retry_after_s: o.retry_after_s,
        }
        .into_response();
        crate::traffic::headers::apply(res.headers_mut(), &decision);
        return Ok(res);
    }

    let user = users::by_email(&mut app.db.clone(), &email).await?;
    let ok = password::verify(
        body.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        other => {
            let memberships = match &other {
                Some(u) => users::memberships(&mut app.db.clone(), &u.id).await?,
                None => Vec::new(),
            };
            let org = memberships.first().map(|m| m.0.clone());
            let actor = other
                .as_ref()
                .map_or(Actor::Anonymous, |u| Actor::User(u.id.to_string()));
            audit::record_alone(
                &app.db,
                &meta,
                Entry::new(org.as_ref(), actor, "auth.login")
                    .outcome(Outcome::Failure)
                    .details(json!({ "email_sha256": sha256_hex(&email), "reason": "invalid_credentials" })),
            )
            .await;
            return Err(invalid_credentials());
        }
    };

    let memberships = users::memberships(&mut app.db.clone(), &user.id).await?;
    let chosen = match &body.org_id {
        Some(o) => memberships.iter().find(|(id, _)| id.as_str() == o).cloned(),
        None if memberships.len() == 1 => memberships.first().cloned(),
        None if memberships.is_empty() => None,
        None => {
            return Err(ApiError::field(
                "org_id",
                "this user belongs to several orgs; name the one to log in to",
            ));
        }
    };
    let Some((org, role)) = chosen else {
        return Err(invalid_credentials());
    };
    let mut tx = app.db.begin().await?;
    let out = issue(&app, &mut tx, &user.id, &org, role, None).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&org), Actor::User(user.id.to_string()), "auth.login"),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(out).into_response())
}

/// Issues an access token and a refresh token (a new family unless `family` is given).
async fn issue(
    app: &AppState,
    tx: &mut Tx,
    user: &UserId,
    org: &OrgId,
    role: Role,
    family: Option<&str>,
) -> ApiResult<TokenOut> {
    let now = now_ms();
    let family = family.map_or_else(|| new_id("rtf"), str::to_owned);
    let (refresh, hash) = tokens::new_refresh_token(&app.keys);
    sql("INSERT INTO refresh_tokens (id, family_id, user_id, org_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(new_id("rt"))
        .bind(&family)
        .bind(user)
        .bind(org)
        .bind(&hash)
        .bind(now)
        .bind(now + i64::try_from(app.config.refresh_token_ttl.as_millis()).unwrap_or(i64::MAX / 2))
        .execute(tx)
        .await?;
    let ttl = app.config.access_token_ttl.as_secs();
    let claims = Claims {
        iss: tokens::ISSUER.into(),
        aud: tokens::AUDIENCE.into(),
        sub: user.to_string(),
        org: org.to_string(),
        role: role.as_str().into(),
        sid: family,
        iat: now / 1000,
        nbf: now / 1000,
        exp: now / 1000 + i64::try_from(ttl).unwrap_or(900),
        jti: new_id("jti"),
    };
    Ok(TokenOut {
        access_token: tokens::sign(&app.keys, &claims),
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: ttl,
        org_id: org.to_string(),
        role,
    })
}

async fn revoke_family(ex: &mut impl Exec, family: &str) -> Result<u64, crate::store::DbError> {
    sql("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family)
        .bind(now_ms())
        .execute(ex)
        .await
}

async fn refresh(
    State(app): State<AppState>,
    meta: RequestMeta,
    Json(body): Json<RefreshIn>,
) -> ApiResult<axum::Json<TokenOut>> {
    let hash = sha256_hex(&body.refresh_token);
    let mut tx = app.db.begin().await?;
    let row = sql("SELECT id, family_id, user_id, org_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(&mut tx)
        .await?;
    let refused =
        || ApiError::Unauthenticated("unauthenticated", "the refresh token is not valid".into());
    let Some(row) = row else {
        return Err(refused());
    };
    let family: String = row.get("family_id")?;
    let user = UserId::from_trusted(row.get("user_id")?);
    let org = OrgId::from_trusted(row.get("org_id")?);
    if row.get::<Option<i64>>("revoked_at")?.is_some() || row.get::<i64>("expires_at")? <= now_ms()
    {
        return Err(refused());
    }
    // Spend it; zero rows means it was already spent: a replay, so burn the family.
    let spent = sql("UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
        .bind(row.get::<String>("id")?)
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
    if spent == 0 {
        revoke_family(&mut tx, &family).await?;
        audit::record(
            &mut tx,
            &meta,
            Entry::new(
                Some(&org),
                Actor::User(user.to_string()),
                "auth.refresh_reuse",
            )
            .outcome(Outcome::Denied)
            .target("token_family", &family)
            .details(json!({ "effect": "family revoked" })),
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(user = %user, "refresh token reuse: family revoked");
        return Err(refused());
    }
    let Some(role) = users::role_in(&mut tx, &org, &user).await? else {
        revoke_family(&mut tx, &family).await?;
        tx.commit().await?;
        return Err(refused());
    };
    let out = issue(&app, &mut tx, &user, &org, role, Some(&family)).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn logout(
    State(app): State<AppState>,
    meta: RequestMeta,
    Json(body): Json<RefreshIn>,
) -> ApiResult<StatusCode> {
    let hash = sha256_hex(&body.refresh_token);
    let mut tx = app.db.begin().await?;
    let row = sql("SELECT family_id, user_id, org_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(&mut tx)
        .await?;
    if let Some(r) = row {
        let family: String = r.get("family_id")?;
        let org = OrgId::from_trusted(r.get("org_id")?);
        if revoke_family(&mut tx, &family).await? > 0 {
            audit::record(
                &mut tx,
                &meta,
                Entry::new(Some(&org), Actor::User(r.get("user_id")?), "auth.logout")
                    .target("token_family", &family),
            )
            .await?;
        }
    }
    tx.commit().await?;
    // The same answer whether or not the token existed.
    Ok(StatusCode::NO_CONTENT)
}
