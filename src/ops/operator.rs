//! `POST /v1/operator/actions`: operational actions, each audited with its actor and request id.
//! Idempotency-Key required, tier `full`, admins and owners only. Endpoint and dead-letter
//! actions act within the caller's org; incident actions concern the whole deployment and are
//! reserved to admins of the platform org.
//!
//! An action is a tagged enum (`action` names the variant, `params` holds its fields), so an
//! unknown action or a bad parameter is a 422 from parsing the body, before anything runs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::grants::{Permission, Role, Scope};
use crate::access::principal::Principal;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::Rfc3339;
use crate::events::EventType;
use crate::http::routes::{Billing, Idempotency, Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Validate};
use crate::ids::{EndpointId, IncidentId};
use crate::incidents::{self, Component, Impact, IncidentStatus};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;
use crate::webhooks::store as endpoints;
use crate::webhooks::{EndpointStatus, Patch};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/operator/actions",
            Profile::users(Scope::Operator, Permission::Write)
                .billing(Billing::Full)
                .min_role(Role::Admin)
                .idempotency(Idempotency::Required)
                .audited()
                .live_only(),
            run_operator_action,
        )
        .summary(
            "Run an operator action (pause/resume an endpoint, replay dead letters, incidents)",
        )
        .tag("operator")
        .body::<Action>()
        .returns::<ActionOut>(200),
    ]
}

/// An operator action and its parameters.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "action", content = "params", rename_all = "snake_case")]
pub enum Action {
    PauseEndpoint(EndpointParams),
    ResumeEndpoint(EndpointParams),
    ReplayDeadLetters(ReplayParams),
    OpenIncident(OpenIncidentParams),
    UpdateIncident(UpdateIncidentParams),
    ResolveIncident(ResolveIncidentParams),
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointParams {
    pub endpoint_id: EndpointId,
}

/// Which open dead letters to replay (all of the org's when empty).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayParams {
    pub endpoint_id: Option<EndpointId>,
    pub event_type: Option<EventType>,
    pub since: Option<Rfc3339>,
    pub until: Option<Rfc3339>,
}

/// The statuses an incident may be opened with.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpeningStatus {
    #[default]
    Investigating,
    Identified,
    Monitoring,
}

impl From<OpeningStatus> for IncidentStatus {
    fn from(s: OpeningStatus) -> IncidentStatus {
        match s {
            OpeningStatus::Investigating => IncidentStatus::Investigating,
            OpeningStatus::Identified => IncidentStatus::Identified,
            OpeningStatus::Monitoring => IncidentStatus::Monitoring,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenIncidentParams {
    #[schema(schema_with = crate::http::text::line::<1, 200>)]
    pub title: String,
    #[schema(schema_with = crate::http::text::line::<1, 2000>)]
    pub message: String,
    #[serde(default = "minor")]
    pub impact: Impact,
    #[serde(default)]
    pub status: OpeningStatus,
    #[serde(default)]
    pub components: Vec<Component>,
}

fn minor() -> Impact {
    Impact::Minor
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIncidentParams {
    pub incident_id: IncidentId,
    pub status: IncidentStatus,
    #[schema(schema_with = crate::http::text::line::<1, 2000>)]
    pub message: String,
    pub impact: Option<Impact>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveIncidentParams {
    pub incident_id: IncidentId,
    #[schema(schema_with = crate::http::text::line_or_null::<1, 2000>)]
    pub message: Option<String>,
    pub impact: Option<Impact>,
}

impl Validate for Action {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        let mut text = |field: &str, v: &str, max: usize| {
            c.len(field, v, 1, max);
            c.printable(field, v);
        };
        match self {
            Action::OpenIncident(p) => {
                text("params.title", &p.title, 200);
                text("params.message", &p.message, 2000);
            }
            Action::UpdateIncident(p) => text("params.message", &p.message, 2000),
            Action::ResolveIncident(ResolveIncidentParams {
                message: Some(m), ..
            }) => text("params.message", m, 2000),
            _ => {}
        }
        c.finish()
    }
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::PauseEndpoint(_) => "pause_endpoint",
            Action::ResumeEndpoint(_) => "resume_endpoint",
            Action::ReplayDeadLetters(_) => "replay_dead_letters",
            Action::OpenIncident(_) => "open_incident",
            Action::UpdateIncident(_) => "update_incident",
            Action::ResolveIncident(_) => "resolve_incident",
        }
    }

    fn is_deployment_wide(&self) -> bool {
        matches!(
            self,
            Action::OpenIncident(_) | Action::UpdateIncident(_) | Action::ResolveIncident(_)
        )
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionOut {
    pub action: &'static str,
    #[schema(value_type = Object)]
    pub result: Value,
}

/// What an action changed: the audit entry's target and the answer's `result`.
struct Done {
    target: Option<(&'static str, String)>,
    result: Value,
}

async fn run_operator_action(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(action): Json<Action>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    if action.is_deployment_wide() {
        let org = crate::orgs::get(&mut tx, t.org())
            .await?
            .ok_or(ApiError::NotFound)?;
        if !org.is_platform {
            drop(tx);
            let denied = Entry::new(Some(t.org()), p.actor(), "operator.action")
                .outcome(audit::Outcome::Denied)
                .details(json!({ "action": action.name(), "reason": "incidents belong to the platform org" }));
            audit::record_alone(&app.db, &meta, denied).await;
            return Err(ApiError::Forbidden(
                crate::http::ErrorCode::InsufficientScope,
                "incident actions concern the whole deployment and belong to admins of the platform org".into(),
            ));
        }
    }
    let done = perform(&mut tx, &p, &meta, &action).await?;
    let mut entry = Entry::new(Some(t.org()), p.actor(), "operator.action")
        .details(json!({ "action": action.name(), "params": action }));
    if let Some((kind, id)) = &done.target {
        entry = entry.target(kind, id);
    }
    audit::record(&mut tx, &meta, entry).await?;
    let out = ActionOut {
        action: action.name(),
        result: done.result,
    };
    idem.commit(tx, StatusCode::OK, &out).await
}

/// Carries out one action inside the request's transaction.
async fn perform(
    tx: &mut crate::store::Tx,
    p: &Principal,
    meta: &RequestMeta,
    action: &Action,
) -> ApiResult<Done> {
    let t = p.tenant();
    let by = p.user_id().cloned();
    let done = match action {
        Action::PauseEndpoint(e) => {
            set_endpoint(tx, &t, &e.endpoint_id, EndpointStatus::Paused).await?
        }
        Action::ResumeEndpoint(e) => {
            set_endpoint(tx, &t, &e.endpoint_id, EndpointStatus::Active).await?
        }
        Action::ReplayDeadLetters(r) => {
            let f = crate::dead_letters::Filter {
                status: None,
                endpoint_id: r.endpoint_id.clone(),
                event_type: r.event_type,
                since_ms: r.since.map(Rfc3339::ms),
                until_ms: r.until.map(Rfc3339::ms),
            };
            let out = crate::dead_letters::routes::bulk_replay(&t, f, p.actor(), meta, tx).await?;
            Done {
                target: None,
                result: serde_json::to_value(out).map_err(ApiError::internal)?,
            }
        }
        Action::OpenIncident(o) => {
            let status = IncidentStatus::from(o.status);
            let id = incidents::open(
                tx,
                &o.title,
                o.impact,
                status,
                &o.components,
                &o.message,
                by.as_ref(),
            )
            .await?;
            Done {
                result: json!({ "incident_id": id, "status": status, "impact": o.impact }),
                target: Some(("incident", id.into_string())),
            }
        }
        Action::UpdateIncident(u) => {
            let message = u.message.as_str();
            update_incident(tx, &u.incident_id, u.status, message, u.impact, by).await?
        }
        Action::ResolveIncident(r) => {
            let message = r
                .message
                .as_deref()
                .unwrap_or("This incident has been resolved.");
            let status = IncidentStatus::Resolved;
            update_incident(tx, &r.incident_id, status, message, r.impact, by).await?
        }
    };
    Ok(done)
}

async fn set_endpoint(
    tx: &mut crate::store::Tx,
    t: &crate::access::principal::Tenant,
    id: &EndpointId,
    status: EndpointStatus,
) -> ApiResult<Done> {
    let patch = Patch {
        status: Some(status),
        ..Default::default()
    };
    let ep = endpoints::update(tx, t, id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    if status == EndpointStatus::Active {
        crate::jobs::queue::wake_after_commit(tx);
    }
    Ok(Done {
        result: json!({ "endpoint_id": ep.id, "status": ep.status }),
        target: Some(("webhook_endpoint", ep.id.into_string())),
    })
}

async fn update_incident(
    tx: &mut crate::store::Tx,
    id: &IncidentId,
    status: IncidentStatus,
    message: &str,
    impact: Option<Impact>,
    by: Option<crate::ids::UserId>,
) -> ApiResult<Done> {
    if !incidents::update(tx, id, status, message, impact, by.as_ref()).await? {
        return Err(ApiError::field(
            "params.incident_id",
            "no such open incident",
        ));
    }
    Ok(Done {
        result: json!({ "incident_id": id, "status": status }),
        target: Some(("incident", id.to_string())),
    })
}
