//! Members' SQL: memberships with their users' emails, set-password links, and the revocation
//! of a user's sessions. Every query names its org.

use super::Member;
use crate::access::grants::Role;
use crate::clock::now_ms;
use crate::ids::{OrgId, UserId};
use crate::store::{DbResult, Exec, Q};

/// The org's members by user id (`limit + 1` rows at most, for the next cursor).
pub async fn list(
    ex: &mut impl Exec,
    org: &OrgId,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<Member>> {
    Q::read(
        "SELECT m.user_id, u.email, m.role, m.created_at FROM memberships m
           JOIN users u ON u.id = m.user_id
          WHERE m.org_id = $1 AND ($2 IS NULL OR m.user_id > $2)
          ORDER BY m.user_id LIMIT $3",
    )
    .bind(org)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(ex)
    .await
}

pub async fn get(ex: &mut impl Exec, org: &OrgId, user: &UserId) -> DbResult<Option<Member>> {
    Q::read(
        "SELECT m.user_id, u.email, m.role, m.created_at FROM memberships m
           JOIN users u ON u.id = m.user_id
          WHERE m.org_id = $1 AND m.user_id = $2",
    )
    .bind(org)
    .bind(user)
    .fetch_optional(ex)
    .await
}

/// Serializes membership changes of one org until the transaction ends (Postgres locks the
/// org's row; SQLite's transaction already holds the one writer), and returns how many owners
/// the org has now: two concurrent demotions cannot both see the other owner.
pub async fn lock_owners(ex: &mut impl Exec, org: &OrgId) -> DbResult<i64> {
    Q::write_per_dialect(
        "SELECT id FROM orgs WHERE id = $1",
        "SELECT id FROM orgs WHERE id = $1 FOR UPDATE",
    )
    .bind(org)
    .fetch_optional::<(OrgId,)>(&mut *ex)
    .await?;
    let (n,): (i64,) =
        Q::read("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = $2")
            .bind(org)
            .bind(Role::Owner)
            .fetch_one(ex)
            .await?;
    Ok(n)
}

pub async fn set_role(ex: &mut impl Exec, org: &OrgId, user: &UserId, role: Role) -> DbResult<()> {
    Q::write("UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .bind(role)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn remove(ex: &mut impl Exec, org: &OrgId, user: &UserId) -> DbResult<u64> {
    Q::write("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .execute(ex)
        .await
}

/// Revokes the user's refresh tokens and console sessions in `org`, or in every org when
/// `org` is `None` (a password change). Access tokens already issued live out their short TTL.
pub async fn revoke_sessions(
    ex: &mut impl Exec,
    org: Option<&OrgId>,
    user: &UserId,
) -> DbResult<()> {
    let now = now_ms();
    Q::write(
        "UPDATE refresh_tokens SET revoked_at = $3
          WHERE user_id = $1 AND ($2 IS NULL OR org_id = $2) AND revoked_at IS NULL",
    )
    .bind(user)
    .bind(org)
    .bind(now)
    .execute(&mut *ex)
    .await?;
    Q::write(
        "UPDATE console_sessions SET revoked_at = $3
          WHERE user_id = $1 AND ($2 IS NULL OR org_id = $2) AND revoked_at IS NULL",
    )
    .bind(user)
    .bind(org)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(())
}

/// Whether the user has a password (an invited user has none until they use their link).
pub async fn has_password(ex: &mut impl Exec, user: &UserId) -> DbResult<bool> {
    let row: Option<(String,)> = Q::read("SELECT password_hash FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(ex)
        .await?;
    Ok(row.is_some_and(|(h,)| !h.is_empty()))
}

/// A new set-password link for `user`, stored as its hash; earlier unused links of the user
/// stop working.
pub async fn new_link(
    ex: &mut impl Exec,
    org: &OrgId,
    user: &UserId,
    hash: &str,
    expires_at: i64,
) -> DbResult<()> {
    let now = now_ms();
    Q::write("UPDATE password_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
        .bind(user)
        .bind(now)
        .execute(&mut *ex)
        .await?;
    Q::write(
        "INSERT INTO password_tokens (id, user_id, org_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash)
    .bind(user)
    .bind(org)
    .bind(now)
    .bind(expires_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Spends the live link whose hash is `hash`: its user and org, or `None` if it is unknown,
/// used or expired. One statement, so a link works once even when presented twice at once.
pub async fn spend_link(ex: &mut impl Exec, hash: &str) -> DbResult<Option<(UserId, OrgId)>> {
    let now = now_ms();
    Q::write(
        "UPDATE password_tokens SET used_at = $2
          WHERE id = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING user_id, org_id",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(ex)
    .await
}

pub async fn set_password_hash(ex: &mut impl Exec, user: &UserId, hash: &str) -> DbResult<()> {
    Q::write("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user)
        .bind(hash)
        .execute(ex)
        .await?;
    Ok(())
}
