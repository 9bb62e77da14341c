//! Users (global, by email) and their memberships in orgs.

use crate::access::grants::Role;
use crate::clock::now_ms;
use crate::ids::{OrgId, UserId};
use crate::store::{DbResult, Exec, Q};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub disabled_at: Option<i64>,
}

impl User {
    pub fn disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// Emails are compared case-insensitively: stored lowercased and trimmed.
pub fn normalise_email(e: &str) -> String {
    e.trim().to_lowercase()
}

pub async fn by_email(ex: &mut impl Exec, email: &str) -> DbResult<Option<User>> {
    Q::read("SELECT id, email, password_hash, disabled_at FROM users WHERE email = $1")
        .bind(normalise_email(email))
        .fetch_optional(ex)
        .await
}

pub async fn create(ex: &mut impl Exec, email: &str, password_hash: &str) -> DbResult<UserId> {
    let id = UserId::new();
    Q::write("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(normalise_email(email))
        .bind(password_hash)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(id)
}

pub async fn add_membership(
    ex: &mut impl Exec,
    org: &OrgId,
    user: &UserId,
    role: Role,
) -> DbResult<()> {
    Q::write("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org)
        .bind(user)
        .bind(role)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

/// The user's role in `org`, if a member.
pub async fn role_in(ex: &mut impl Exec, org: &OrgId, user: &UserId) -> DbResult<Option<Role>> {
    Q::read("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .fetch_optional::<(Role,)>(ex)
        .await
        .map(|r| r.map(|(role,)| role))
}

/// Every org the user belongs to, oldest membership first.
pub async fn memberships(ex: &mut impl Exec, user: &UserId) -> DbResult<Vec<(OrgId, Role)>> {
    Q::read("SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY created_at, org_id")
        .bind(user)
        .fetch_all(ex)
        .await
}
