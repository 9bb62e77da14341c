//! `POST /v1/auth/refresh`: spends a refresh token and issues the next pair of its family.
//!
//! A spent token presented again is a replay, and revokes the whole family (RFC 6819
//! §5.2.2.3), with one exception: within `RAMPART_REFRESH_REUSE_INTERVAL` of its spending, the
//! immediately previous token (the one whose successor is still unspent) gets the very same
//! pair back, so that a client retrying a refresh whose answer it lost (a timeout, two tabs)
//! is not logged out. Nothing secret is stored for that: the successor's secret is derived
//! from the presented token under a server key, and its access token is the HMAC of the
//! claims stored beside it.
//!
//! Race-free on both stores: the spend is one conditional `UPDATE`, so of two concurrent
//! refreshes exactly one spends. The other's `UPDATE` waits for the winner's commit (Postgres
//! row lock; SQLite holds one writer per transaction) and then finds the successor committed.

use axum::extract::State;
use serde_json::json;

use super::pair::{self, RefreshSecret};
use super::{RefreshIn, TokenOut, store};
use crate::access::grants::Role;
use crate::access::principal::Actor;
use crate::access::tokens::sha256_hex;
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::clock::now_ms;
use crate::http::{ApiError, ApiResult, ErrorCode, Json};
use crate::ids::{OrgId, RefreshFamilyId};
use crate::state::AppState;
use crate::store::Tx;
use crate::users;

fn refused() -> ApiError {
    ApiError::Unauthenticated(
        ErrorCode::Unauthenticated,
        "the refresh token is not valid".into(),
    )
}

pub async fn refresh(
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
    let next = RefreshSecret::successor_of(&app.keys, &body.refresh_token);
    if !store::spend(&mut tx, &token.id).await? {
        // Spent already: a retry within the interval, or a replay.
        let Some(state) = store::spent(&mut tx, &token.id).await? else {
            return Err(refused());
        };
        if state.revoked_at.is_some() {
            // Revoked meanwhile (logout, or a replay that won the race): nothing new to record.
            return Err(refused());
        }
        if let Some(used_at) = state.used_at
            && let Some(out) = retry(&app, &mut tx, &token.family_id, used_at, next).await?
        {
            audit::record(
                &mut tx,
                &meta,
                Entry::new(
                    Some(&token.org_id),
                    Actor::User(token.user_id.clone()),
                    "auth.refresh_retry",
                )
                .target("token_family", token.family_id.as_str())
                .details(json!({ "spent_ms_ago": now_ms() - used_at })),
            )
            .await?;
            tx.commit().await?;
            return Ok(axum::Json(out));
        }
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
    let out = pair::issue(
        &app,
        &mut tx,
        &token.user_id,
        &token.org_id,
        role,
        &token.family_id,
        next,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

/// The pair issued when the presented token was spent `used_at`, if the presentation is a
/// retry: within the reuse interval, and of the immediately previous token (its successor,
/// in the same family, is live and unspent). `None`: a replay.
async fn retry(
    app: &AppState,
    tx: &mut Tx,
    family: &RefreshFamilyId,
    used_at: i64,
    next: RefreshSecret,
) -> ApiResult<Option<TokenOut>> {
    let now = now_ms();
    let interval = i64::try_from(app.config.refresh_reuse_interval.as_millis()).unwrap_or(0);
    if now - used_at >= interval {
        return Ok(None);
    }
    let Some(successor) = store::successor(tx, &next.hash).await? else {
        return Ok(None);
    };
    let live = successor.family_id == *family
        && successor.used_at.is_none()
        && successor.revoked_at.is_none()
        && successor.expires_at > now;
    let Some(claims) = successor.access_claims.filter(|_| live) else {
        return Ok(None);
    };
    let claims = claims.into_inner();
    let (Some(org), Some(role)) = (OrgId::parse(&claims.org), Role::parse(&claims.role)) else {
        return Ok(None);
    };
    Ok(Some(pair::answer(&app.keys, &claims, next.raw, org, role)))
}
