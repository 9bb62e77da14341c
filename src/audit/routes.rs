//! `GET /v1/audit-logs` and `GET /v1/audit-logs/verify`.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::access::grants::{Permission, Scope};
use crate::access::principal::{ActorKind, Principal};
use crate::clock::{Rfc3339, rfc3339};
use crate::http::pagination::{Cursor, Limit, Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::text::Line;
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
        .query::<AuditQuery>()
        .summary("List the org's audit log, newest first (admins and keys with audit_logs:read)")
        .tag("audit")
        .returns_list::<AuditLogOut>(),
        Route::get(
            "/v1/audit-logs/verify",
            Profile::api(Scope::AuditLogs, Permission::Read)
                .billing(Billing::None)
                .live_only(),
            verify_audit_logs,
        )
        .summary(
            "Check the org's audit hash chain (what `rampart audit verify --org` checks): \
             whether every entry is intact and linked, and the first one that is not",
        )
        .tag("audit")
        .returns::<ChainStatusOut>(200),
    ]
}

/// The org's audit chain, checked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainStatusOut {
    pub object: &'static str,
    /// Whether every entry is intact, in order and linked to the one before.
    pub valid: bool,
    pub entries_checked: u64,
    /// The first entry that does not verify (edited, or no longer linked to its predecessor);
    /// null when the chain is valid, or when what broke it is a missing entry (see `problem`).
    pub first_broken_id: Option<String>,
    /// The position in the chain where it breaks.
    pub first_broken_seq: Option<i64>,
    /// What is wrong there, in words.
    pub problem: Option<String>,
}

async fn verify_audit_logs(
    p: Principal,
    State(app): State<AppState>,
) -> ApiResult<axum::Json<ChainStatusOut>> {
    // One snapshot: entries appended while the chain is read cannot look like a break.
    let mut snap = app.db.begin_snapshot().await?;
    let chain = p.tenant().org().to_string();
    let (checked, broken) = super::verify(&mut snap, Some(&chain)).await?;
    snap.rollback().await?;
    Ok(axum::Json(ChainStatusOut {
        object: "audit_chain_status",
        valid: broken.is_none(),
        entries_checked: checked,
        first_broken_seq: broken.as_ref().map(|b| b.seq),
        problem: broken.as_ref().map(|b| b.problem.clone()),
        first_broken_id: broken.and_then(|b| b.entry_id),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
    /// Only this action, e.g. `api_key.revoked`.
    #[param(inline)]
    action: Option<Line<1, 100>>,
    /// Only this actor id (`usr_…`, `key_…`).
    #[param(inline)]
    actor: Option<Line<1, 100>>,
    /// Only entries at or after this time.
    #[param(inline)]
    since: Option<Rfc3339>,
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
    #[schema(value_type = crate::clock::Rfc3339)]
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
    let filter = super::Filter {
        action: q.action.map(Line::into_string),
        actor_id: q.actor.map(Line::into_string),
        since_ms: q.since.map(Rfc3339::ms),
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
