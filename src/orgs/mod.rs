//! Orgs (tenants). Their subscriptions are in [`crate::billing`], their members in
//! [`crate::users`].

pub mod store;

use serde::Serialize;

pub use store::{create, get};

use crate::ids::OrgId;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    /// The deployment's operator: its admins run incidents.
    pub is_platform: bool,
    /// The partner org that created it, if any.
    pub parent_org_id: Option<OrgId>,
    pub created_at: i64,
}
