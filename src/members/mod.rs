//! Members of an org (`/v1/members`): who may act in it, and in which role. Owners and admins
//! manage them; nobody grants or touches a role above their own, and an org always keeps at
//! least one owner (checked under a lock on the org, in the transaction of the change).
//! Inviting a new user returns a one-time set-password link ([`set_password`]).

pub mod routes;
pub mod set_password;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::access::grants::Role;
use crate::clock::rfc3339;
use crate::http::{ApiError, Checks, Validate};
use crate::ids::UserId;

/// How long a set-password link works.
pub const LINK_TTL_MS: i64 = 24 * 3600 * 1000;

/// A membership, with its user's email.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberOut {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    /// When the user joined the org.
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
}

impl From<&Member> for MemberOut {
    fn from(m: &Member) -> Self {
        MemberOut {
            user_id: m.user_id.clone(),
            email: m.email.clone(),
            role: m.role,
            created_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberIn {
    /// The user's email; a user who does not exist yet is created, without a password.
    #[schema(schema_with = crate::http::validate::email_schema)]
    pub email: String,
    pub role: Role,
}

impl Validate for MemberIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.email("email", &self.email);
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatchIn {
    /// The new role; absent keeps the current one.
    pub role: Option<Role>,
}

impl Validate for MemberPatchIn {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteOut {
    #[serde(flatten)]
    pub member: MemberOut,
    /// For a user without a password: a one-time link to set one, valid 24 hours. Shown in
    /// this response only; hand it to the person by a channel you trust.
    pub set_password_url: Option<String>,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub set_password_expires_at: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordIn {
    /// The `token` of a set-password link.
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// At least 12 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
}

impl Validate for SetPasswordIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("token", &self.token, 1, 256);
        if let Err(m) = crate::access::password::check_strength(&self.password) {
            c.fail("password", m);
        }
        c.finish()
    }
}

/// Whether a member whose role is `actor` may give `new` to a member whose role is now
/// `current` (`None`: not a member yet). Least privilege: nobody grants a role above their own
/// or changes someone above them, so an admin cannot make or unmake an owner.
pub fn may_assign(actor: Role, current: Option<Role>, new: Role) -> bool {
    new <= actor && current.is_none_or(|c| c <= actor)
}

/// Whether `actor` may remove a member whose role is `target`.
pub fn may_remove(actor: Role, target: Role) -> bool {
    target <= actor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_reaches_above_their_own_role() {
        use Role::*;
        assert!(may_assign(Owner, None, Owner));
        assert!(may_assign(Owner, Some(Owner), Viewer));
        assert!(may_assign(Admin, None, Admin));
        assert!(may_assign(Admin, Some(Developer), Admin));
        assert!(!may_assign(Admin, None, Owner));
        assert!(!may_assign(Admin, Some(Owner), Viewer));
        assert!(!may_assign(Developer, None, Admin));
        assert!(may_remove(Owner, Owner));
        assert!(may_remove(Admin, Admin));
        assert!(!may_remove(Admin, Owner));
    }
}
