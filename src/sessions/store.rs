//! Refresh tokens' SQL: stored as hashes, grouped in families (one per login).

use crate::access::tokens::Claims;
use crate::clock::now_ms;
use crate::ids::{OrgId, RefreshFamilyId, RefreshTokenId, UserId};
use crate::store::{DbResult, Exec, JsonText, Q};

/// A stored refresh token.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshToken {
    pub id: RefreshTokenId,
    pub family_id: RefreshFamilyId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new refresh token of `family`, with the claims of the access token issued beside it.
pub async fn insert(
    ex: &mut impl Exec,
    family: &RefreshFamilyId,
    user: &UserId,
    org: &OrgId,
    hash: &str,
    expires_at: i64,
    access_claims: &Claims,
) -> DbResult<()> {
    let claims = serde_json::to_value(access_claims).unwrap_or_default();
    Q::write("INSERT INTO refresh_tokens (id, family_id, user_id, org_id, token_hash, created_at, expires_at, access_claims) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(RefreshTokenId::new())
        .bind(family)
        .bind(user)
        .bind(org)
        .bind(hash)
        .bind(now_ms())
        .bind(expires_at)
        .bind(&claims)
        .execute(ex)
        .await?;
    Ok(())
}

/// The token whose hash is `hash`.
pub async fn by_hash(ex: &mut impl Exec, hash: &str) -> DbResult<Option<RefreshToken>> {
    Q::read("SELECT id, family_id, user_id, org_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_optional(ex)
        .await
}

/// Spends the token: `false` if it was already spent.
pub async fn spend(ex: &mut impl Exec, id: &RefreshTokenId) -> DbResult<bool> {
    let n = Q::write("UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
        .bind(id)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(n == 1)
}

/// Revokes every live token of the family; returns how many.
pub async fn revoke_family(ex: &mut impl Exec, family: &RefreshFamilyId) -> DbResult<u64> {
    Q::write(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now_ms())
    .execute(ex)
    .await
}

/// Whether a token is spent or revoked, read again after a spend that found it spent: the
/// spend that beat this one may have committed after the first read.
#[derive(Debug, sqlx::FromRow)]
pub struct Spent {
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub async fn spent(ex: &mut impl Exec, id: &RefreshTokenId) -> DbResult<Option<Spent>> {
    Q::read("SELECT used_at, revoked_at FROM refresh_tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(ex)
        .await
}

/// A token that succeeded another, with the claims of the access token issued beside it.
#[derive(Debug, sqlx::FromRow)]
pub struct Successor {
    pub family_id: RefreshFamilyId,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub access_claims: Option<JsonText<Claims>>,
}

/// The token whose hash is `hash`, as a successor.
pub async fn successor(ex: &mut impl Exec, hash: &str) -> DbResult<Option<Successor>> {
    Q::read("SELECT family_id, expires_at, used_at, revoked_at, access_claims FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_optional(ex)
        .await
}

/// A device token that lets its client past the per-account login limit.
#[derive(Debug, sqlx::FromRow)]
pub struct DeviceToken {
    pub token_hash: String,
    pub user_id: UserId,
}

/// The device token whose hash is `hash`, if it is live (unexpired, unlocked) and belongs to
/// the user whose (normalised) email is `email`.
pub async fn trusted_device(
    ex: &mut impl Exec,
    hash: &str,
    email: &str,
) -> DbResult<Option<DeviceToken>> {
    Q::read(
        "SELECT d.token_hash, d.user_id FROM device_tokens d JOIN users u ON u.id = d.user_id
          WHERE d.token_hash = $1 AND u.email = $2 AND d.expires_at > $3 AND d.locked_at IS NULL",
    )
    .bind(hash)
    .bind(email)
    .bind(now_ms())
    .fetch_optional(ex)
    .await
}

/// Counts a failed login with the device token; at `limit` failures it is locked for good.
/// Returns whether it is locked now. One statement: concurrent failures all count.
pub async fn device_failed(ex: &mut impl Exec, hash: &str, limit: i64) -> DbResult<bool> {
    #[derive(sqlx::FromRow)]
    struct Locked {
        locked_at: Option<i64>,
    }
    let row: Option<Locked> = Q::write(
        "UPDATE device_tokens SET failures = failures + 1,
                locked_at = CASE WHEN failures + 1 >= $2 THEN $3 ELSE locked_at END
          WHERE token_hash = $1 RETURNING locked_at",
    )
    .bind(hash)
    .bind(limit)
    .bind(now_ms())
    .fetch_optional(ex)
    .await?;
    Ok(row.is_some_and(|r| r.locked_at.is_some()))
}

/// Stores a new device token of `user`; replaces `replacing` (the one the client presented)
/// and forgets the user's expired tokens and all but the newest `keep`.
pub async fn device_issued(
    ex: &mut impl Exec,
    user: &UserId,
    hash: &str,
    expires_at: i64,
    replacing: Option<&str>,
    keep: i64,
) -> DbResult<()> {
    let now = now_ms();
    if let Some(old) = replacing {
        Q::write("DELETE FROM device_tokens WHERE token_hash = $1 AND user_id = $2")
            .bind(old)
            .bind(user)
            .execute(ex)
            .await?;
    }
    Q::write("INSERT INTO device_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(user)
        .bind(now)
        .bind(expires_at)
        .execute(ex)
        .await?;
    Q::write(
        "DELETE FROM device_tokens WHERE user_id = $1 AND (expires_at <= $2 OR token_hash NOT IN (
            SELECT token_hash FROM device_tokens WHERE user_id = $1
             ORDER BY created_at DESC, token_hash LIMIT $3))",
    )
    .bind(user)
    .bind(now)
    .bind(keep)
    .execute(ex)
    .await?;
    Ok(())
}
