//! Partners: a partner org lists and creates its client orgs (`/v1/partners/orgs`). The
//! partner's admin who creates a client org becomes its owner. Client orgs are orgs
//! ([`crate::orgs`]), so partners keep no table of their own.

pub mod routes;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::http::{ApiError, Checks, Validate};
use crate::ids::OrgId;
use crate::orgs::Org;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientOrgIn {
    #[schema(schema_with = crate::http::text::label::<1, 200>)]
    pub name: String,
}

impl Validate for ClientOrgIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("name", self.name.trim(), 1, 200);
        c.printable("name", &self.name);
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientOrgOut {
    pub id: OrgId,
    pub object: &'static str,
    pub name: String,
    pub parent_org_id: Option<OrgId>,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
}

impl From<Org> for ClientOrgOut {
    fn from(o: Org) -> Self {
        ClientOrgOut {
            id: o.id,
            object: "org",
            name: o.name,
            parent_org_id: o.parent_org_id,
            created_at: rfc3339(o.created_at),
        }
    }
}
