//! `POST /v1/auth/login|refresh|logout`.
//!
//! Login is limited per client address and per account; an unknown email and a wrong
//! password get the same answer after the same work (a dummy hash is verified).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{LoginIn, RefreshIn, TokenOut, store};
use crate::access::client_ip::ClientIp;
use crate::access::grants::Role;
use crate::access::password;
use crate::access::principal::Actor;
use crate::access::tokens::{self, Claims, sha256_hex};
use crate::app::AppState;
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::clock::now_ms;
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode, Json};
use crate::ids::{OrgId, RefreshFamilyId, TokenId, UserId};
use crate::store::Tx;
use crate::traffic::limits::{Limit, LimitKind};
use crate::users;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/auth/login", Profile::public(), login)
            .error(
                ErrorCode::Unauthenticated,
                "the email or password is wrong, or the user is not a member of the org named",
            )
            .summary("Log in with email and password; returns an access and a refresh token")
            .tag("auth")
            .body::<LoginIn>()
            .returns::<TokenOut>(200),
        Route::post("/v1/auth/refresh", Profile::public(), refresh)
            .error(
                ErrorCode::Unauthenticated,
                "the refresh token is unknown, spent, revoked or expired",
            )
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

fn invalid_credentials() -> ApiError {
    ApiError::Unauthenticated(
        ErrorCode::Unauthenticated,
        "invalid email or password".into(),
    )
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
            code: ErrorCode::RateLimited,
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
        Some(u) if ok && !u.disabled() => u,
        other => {
            let memberships = match &other {
                Some(u) => users::memberships(&mut app.db.clone(), &u.id).await?,
                None => Vec::new(),
            };
            let org = memberships.first().map(|m| m.0.clone());
            let actor = other
                .as_ref()
                .map_or(Actor::Anonymous, |u| Actor::User(u.id.clone()));
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
    let Some((org, role)) = chosen else {
        return Err(invalid_credentials());
    };
    let mut tx = app.db.begin().await?;
    let out = issue(&app, &mut tx, &user.id, &org, role, None).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&org), Actor::User(user.id.clone()), "auth.login"),
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
    family: Option<&RefreshFamilyId>,
) -> ApiResult<TokenOut> {
    let now = now_ms();
    let family = family.cloned().unwrap_or_default();
    let (refresh, hash) = tokens::new_refresh_token(&app.keys);
    let expires_at =
        now + i64::try_from(app.config.refresh_token_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    store::insert(tx, &family, user, org, &hash, expires_at).await?;
    let ttl = app.config.access_token_ttl.as_secs();
    let claims = Claims {
        iss: tokens::ISSUER.into(),
        aud: tokens::AUDIENCE.into(),
        sub: user.to_string(),
        org: org.to_string(),
        role: role.as_str().into(),
        sid: family.to_string(),
        iat: now / 1000,
        nbf: now / 1000,
        exp: now / 1000 + i64::try_from(ttl).unwrap_or(900),
        jti: TokenId::new().to_string(),
    };
    Ok(TokenOut {
        access_token: tokens::sign(&app.keys, &claims),
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: ttl,
        org_id: org.clone(),
        role,
    })
}

fn refused() -> ApiError {
    ApiError::Unauthenticated(
        ErrorCode::Unauthenticated,
        "the refresh token is not valid".into(),
    )
}

async fn refresh(
    State(app): State<AppState>,
    meta: RequestMeta,
    Json(body): Json<RefreshIn>,
) -> ApiResult<axum::Json<TokenOut>> {
    let hash = sha256_hex(&body.refresh_token);
    let mut tx = app.db.begin().await?;
    let Some(token) = store::by_hash(&mut tx, &hash).await? else {
        return Err(refused());
    };
    if token.revoked_at.is_some() || token.expires_at <= now_ms() {
        return Err(refused());
    }
    // Spend it; if it was already spent, this is a replay: burn the family.
    if !store::spend(&mut tx, &token.id).await? {
        store::revoke_family(&mut tx, &token.family_id).await?;
        audit::record(
            &mut tx,
            &meta,
            Entry::new(
                Some(&token.org_id),
                Actor::User(token.user_id.clone()),
                "auth.refresh_reuse",
            )
            .outcome(Outcome::Denied)
            .target("token_family", token.family_id.as_str())
            .details(json!({ "effect": "family revoked" })),
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(user = %token.user_id, "refresh token reuse: family revoked");
        return Err(refused());
    }
    let Some(role) = users::role_in(&mut tx, &token.org_id, &token.user_id).await? else {
        store::revoke_family(&mut tx, &token.family_id).await?;
        tx.commit().await?;
        return Err(refused());
    };
    let out = issue(
        &app,
        &mut tx,
        &token.user_id,
        &token.org_id,
        role,
        Some(&token.family_id),
    )
    .await?;
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
