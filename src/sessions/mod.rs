//! Sessions: a user's login, as a short-lived access token (a signed JWT) and a refresh token
//! that rotates on every use (`/v1/auth/login|refresh|logout`). Presenting a spent refresh
//! token revokes its whole family (RFC 6819 §5.2.2.3), except as a retry within the reuse
//! interval ([`refresh`]). A login also returns a device token that lets the same client sign
//! in while the account's login limit is exhausted ([`device`]).

pub mod device;
pub mod pair;
pub mod refresh;
pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::access::grants::Role;
use crate::http::{ApiError, Checks, Validate};
use crate::ids::OrgId;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    /// Which org to act in, for a user who belongs to several.
    pub org_id: Option<OrgId>,
    /// The `device_token` this client got from its last successful login for this account:
    /// with it the login is not refused by the per-account limit (docs/SECURITY.md).
    #[schema(min_length = 1, max_length = 256)]
    pub device_token: Option<String>,
}

impl Validate for LoginIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("email", &self.email, 1, 254);
        c.len("password", &self.password, 1, 1024);
        if let Some(d) = &self.device_token {
            c.len("device_token", d, 1, 256);
        }
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    #[schema(min_length = 1, max_length = 256)]
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
    pub org_id: OrgId,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginOut {
    #[serde(flatten)]
    pub tokens: TokenOut,
    /// Keep it with this client and send it as `device_token` at its next login for this
    /// account: it replaces the presented one, and lets the client sign in while others
    /// exhaust the account's login limit. Not a credential on its own.
    pub device_token: String,
}
