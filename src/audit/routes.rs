//! `GET /v1/audit-logs`.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::access::grants::{Permission, Scope};
use crate::access::principal::{ActorKind, Principal};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, Query, Validate};
use crate::ids::AuditEntryId;
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/audit-logs",
            // The org's audit trail is live data: sandbox keys do not read it.
            Profile::api(Scope::AuditLogs, Permission::Read)
                .billing(Billing::None)
                .live_only(),
            list_audit_logs,
        )
        .summary("List the org's audit log, newest first (admins and keys with audit_logs:read)")
        .tag("audit")
        .returns_list::<AuditLogOut>()
        .param("action", "string", "only this action, e.g. api_key.revoked")
        .param("actor", "string", "only this actor id (usr_…, key_…)")
        .param(
            "since",
            "string",
            "RFC 3339 time: only entries at or after it",
        ),
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<String>,
    cursor: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    since: Option<String>,
}

impl Validate for AuditQuery {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditActor {
    #[serde(rename = "type")]
    pub type_: ActorKind,
    pub id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditTarget {
    #[serde(rename = "type")]
    pub type_: String,
    pub id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLogOut {
    pub id: AuditEntryId,
    pub object: &'static str,
    pub actor: AuditActor,
    pub action: String,
    pub target: Option<AuditTarget>,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: String,
    /// Position in the org's hash chain.
    pub seq: i64,
    pub hash: String,
}

impl TryFrom<super::Stored> for AuditLogOut {
    type Error = ApiError;

    fn try_from(s: super::Stored) -> Result<Self, ApiError> {
        Ok(AuditLogOut {
            id: s.id,
            object: "audit_log",
            actor: AuditActor {
                type_: s.actor_type,
                id: s.actor_id,
            },
            action: s.action,
            target: s
                .target_type
                .zip(s.target_id)
                .map(|(type_, id)| AuditTarget { type_, id }),
            outcome: s.outcome,
            request_id: s.request_id,
            ip: s.ip,
            user_agent: s.user_agent,
            details: serde_json::from_str(&s.details).map_err(ApiError::internal)?,
            created_at: rfc3339(s.created_at),
            seq: s.seq,
            hash: s.hash,
        })
    }
}

async fn list_audit_logs(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<Page<AuditLogOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let since_ms = match q.since.as_deref() {
        None => None,
        Some(s) => Some(parse_rfc3339(s).ok_or_else(|| {
            ApiError::bad_request("since must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
        })?),
    };
    let filter = super::Filter {
        action: q.action,
        actor_id: q.actor,
        since_ms,
    };
    let rows = super::list(
        &mut app.db.clone(),
        p.tenant().org(),
        &filter,
        page.after,
        page.limit + 1,
    )
    .await?;
    let page = Page::from_rows(rows, page.limit, |s| s.id.as_str());
    Ok(axum::Json(page.try_map(AuditLogOut::try_from)?))
}
