//! Exports: an asynchronous full export of the org (one environment) as NDJSON, built by a job
//! ([`job::BuildExport`]) and downloadable through a signed link that expires
//! (`RAMPART_EXPORT_LINK_TTL`). The link is the credential: whoever holds it may download,
//! until it expires; it is only ever handed out to an authorized caller.

pub mod job;
pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::access::principal::Environment;
use crate::ids::ExportId;

crate::text_enum::text_enum! {
    pub enum ExportStatus {
        Pending = "pending",
        Ready = "ready",
        Failed = "failed",
    }
}

/// An export as stored (without its content).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Export {
    pub id: ExportId,
    pub status: ExportStatus,
    pub environment: Environment,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportIn {}
impl crate::http::Validate for ExportIn {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportOut {
    pub id: ExportId,
    pub object: &'static str,
    pub status: ExportStatus,
    pub livemode: bool,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    /// When ready: where to download it, until `download_expires_at`.
    pub download_url: Option<String>,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub download_expires_at: Option<String>,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub completed_at: Option<String>,
}
