//! `POST /v1/auth/set-password`: a one-time link's token and a new password. The link is spent
//! in the same transaction that sets the password, and every refresh token and console session
//! of the user, in every org, is revoked with it.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::{SetPasswordIn, store};
use crate::access::password;
use crate::access::principal::Actor;
use crate::access::tokens::sha256_hex;
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::http::{ApiError, ApiResult, ErrorCode, Json};
use crate::state::AppState;

pub async fn set_password(
    State(app): State<AppState>,
    meta: RequestMeta,
    Json(body): Json<SetPasswordIn>,
) -> ApiResult<StatusCode> {
    use_link(&app, &meta, &body.token, body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the password of the link's user; the console's set-password page calls it too.
pub async fn use_link(
    app: &AppState,
    meta: &RequestMeta,
    token: &str,
    new_password: String,
) -> ApiResult<()> {
    // Hashed before the transaction: argon2 takes tens of milliseconds.
    let hash = password::hash(new_password)
        .await
        .map_err(|e| ApiError::internal_msg(e.to_string()))?;
    let mut tx = app.db.begin().await?;
    let Some((user, org)) = store::spend_link(&mut tx, &sha256_hex(token)).await? else {
        drop(tx);
        audit::record_alone(
            &app.db,
            meta,
            Entry::new(None, Actor::Anonymous, "auth.password_set")
                .outcome(Outcome::Failure)
                .details(json!({ "reason": "invalid_link" })),
        )
        .await;
        return Err(ApiError::Unauthenticated(
            ErrorCode::Unauthenticated,
            "this set-password link is unknown, used or expired; ask an admin for a new one".into(),
        ));
    };
    store::set_password_hash(&mut tx, &user, &hash).await?;
    store::revoke_sessions(&mut tx, None, &user).await?;
    audit::record(
        &mut tx,
        meta,
        Entry::new(Some(&org), Actor::User(user.clone()), "auth.password_set")
            .target("user", user.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
