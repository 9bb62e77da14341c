//! `POST /v1/operator/actions`: operational actions, each audited with its actor and request id.
//! Idempotency-Key required, tier `full`, admins and owners only. Endpoint and dead-letter
//! actions act within the caller's org; incident actions concern the whole deployment and are
//! reserved to admins of the platform org.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::grants::{Permission, Role, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::parse_rfc3339;
use crate::http::routes::{Billing, Idempotency, Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Validate};
use crate::traffic::idempotency::Idem;
use crate::webhooks::endpoints;

pub const ACTIONS: [&str; 6] = [
    "pause_endpoint",
    "resume_endpoint",
    "replay_dead_letters",
    "open_incident",
    "update_incident",
    "resolve_incident",
];

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
        .body::<ActionIn>()
        .returns::<ActionOut>(200),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionIn {
    /// pause_endpoint, resume_endpoint, replay_dead_letters, open_incident, update_incident,
    /// resolve_incident
    pub action: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Value,
}

impl Validate for ActionIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.check(
            ACTIONS.contains(&self.action.as_str()),
            "action",
            format!("must be one of {}", ACTIONS.join(", ")),
        );
        c.check(
            self.params.is_object() || self.params.is_null(),
            "params",
            "must be an object",
        );
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionOut {
    pub action: String,
    #[schema(value_type = Object)]
    pub result: Value,
}

fn s<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

fn required<'a>(c: &mut Checks, p: &'a Value, k: &str, max: usize) -> &'a str {
    match s(p, k) {
        Some(v) => {
            c.len(&format!("params.{k}"), v, 1, max);
            c.printable(&format!("params.{k}"), v);
            v
        }
        None => {
            c.fail(&format!("params.{k}"), "is required");
            ""
        }
    }
}

fn one_of(c: &mut Checks, p: &Value, k: &str, allowed: &[&str]) -> Option<String> {
    let v = s(p, k)?;
    c.check(
        allowed.contains(&v),
        &format!("params.{k}"),
        format!("must be one of {}", allowed.join(", ")),
    );
    Some(v.to_owned())
}

async fn run_operator_action(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<ActionIn>,
) -> ApiResult<Response> {
    let params = if body.params.is_null() {
        json!({})
    } else {
        body.params.clone()
    };
    let t = p.tenant();
    let actor_id = p.user_id().map(ToString::to_string);
    let mut c = Checks::new();
    let mut tx = app.db.begin().await?;
    let (target, result): (Option<(&str, String)>, Value) = match body.action.as_str() {
        "pause_endpoint" | "resume_endpoint" => {
            let id = required(&mut c, &params, "endpoint_id", 64).to_owned();
            c.finish()?;
            let status = if body.action == "pause_endpoint" {
                "paused"
            } else {
                "active"
            };
            let patch = endpoints::Patch {
                status: Some(status.into()),
                ..Default::default()
            };
            let ep = endpoints::update(&mut tx, &t, &id, &patch)
                .await?
                .ok_or(ApiError::NotFound)?;
            if status == "active" {
                crate::jobs::queue::wake_after_commit(&mut tx);
            }
            (
                Some(("webhook_endpoint", ep.id.clone())),
                json!({ "endpoint_id": ep.id, "status": ep.status }),
            )
        }
        "replay_dead_letters" => {
            for k in ["since", "until"] {
                if let Some(v) = s(&params, k) {
                    c.check(
                        parse_rfc3339(v).is_some(),
                        &format!("params.{k}"),
                        "must be an RFC 3339 time",
                    );
                }
            }
            c.finish()?;
            let f = crate::webhooks::dead_letters::Filter {
                status: None,
                endpoint_id: s(&params, "endpoint_id").map(str::to_owned),
                event_type: s(&params, "event_type").map(str::to_owned),
                since_ms: s(&params, "since").and_then(parse_rfc3339),
                until_ms: s(&params, "until").and_then(parse_rfc3339),
            };
            let out = crate::webhooks::dead_letter_routes::bulk_replay(
                &app,
                &t,
                f,
                p.actor(),
                &meta,
                &mut tx,
            )
            .await?;
            (None, serde_json::to_value(out).unwrap_or(Value::Null))
        }
        action => {
            let org = crate::orgs::get(&mut tx, p.org.as_str())
                .await?
                .ok_or(ApiError::NotFound)?;
            if !org.is_platform {
                drop(tx);
                let denied = Entry::new(Some(&p.org), p.actor(), "operator.action")
                    .outcome(audit::Outcome::Denied)
                    .details(json!({ "action": action, "reason": "incidents belong to the platform org" }));
                audit::record_alone(&app.db, &meta, denied).await;
                return Err(ApiError::Forbidden(
                    "insufficient_scope",
                    "incident actions concern the whole deployment and belong to admins of the platform org".into(),
                ));
            }
            match action {
                "open_incident" => {
                    let title = required(&mut c, &params, "title", 200).to_owned();
                    let message = required(&mut c, &params, "message", 2000).to_owned();
                    let impact = one_of(&mut c, &params, "impact", &super::incidents::IMPACTS)
                        .unwrap_or_else(|| "minor".into());
                    let status = one_of(
                        &mut c,
                        &params,
                        "status",
                        &["investigating", "identified", "monitoring"],
                    )
                    .unwrap_or_else(|| "investigating".into());
                    let components: Vec<String> = match params.get("components") {
                        None => Vec::new(),
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect(),
                        Some(_) => {
                            c.fail("params.components", "must be an array of component ids");
                            Vec::new()
                        }
                    };
                    for (i, comp) in components.iter().enumerate() {
                        c.check(
                            super::status::COMPONENTS.iter().any(|(id, _)| id == comp),
                            &format!("params.components[{i}]"),
                            format!(
                                "unknown component; one of {}",
                                super::status::COMPONENTS.map(|c| c.0).join(", ")
                            ),
                        );
                    }
                    c.finish()?;
                    let id = super::incidents::open(
                        &mut tx,
                        &title,
                        &impact,
                        &status,
                        &components,
                        &message,
                        actor_id.as_deref(),
                    )
                    .await?;
                    (
                        Some(("incident", id.clone())),
                        json!({ "incident_id": id, "status": status, "impact": impact }),
                    )
                }
                "update_incident" | "resolve_incident" => {
                    let id = required(&mut c, &params, "incident_id", 64).to_owned();
                    let resolving = action == "resolve_incident";
                    let status = if resolving {
                        Some("resolved".to_owned())
                    } else {
                        one_of(&mut c, &params, "status", &super::incidents::STATUSES)
                    };
                    if status.is_none() {
                        c.fail("params.status", "is required");
                    }
                    let message = match (s(&params, "message"), resolving) {
                        (Some(_), _) => required(&mut c, &params, "message", 2000).to_owned(),
                        (None, true) => "This incident has been resolved.".to_owned(),
                        (None, false) => {
                            c.fail("params.message", "is required");
                            String::new()
                        }
                    };
                    let impact = one_of(&mut c, &params, "impact", &super::incidents::IMPACTS);
                    c.finish()?;
                    let status = status.unwrap_or_default();
                    if !super::incidents::update(
                        &mut tx,
                        &id,
                        &status,
                        &message,
                        impact.as_deref(),
                        actor_id.as_deref(),
                    )
                    .await?
                    {
                        return Err(ApiError::field(
                            "params.incident_id",
                            "no such open incident",
                        ));
                    }
                    (
                        Some(("incident", id.clone())),
                        json!({ "incident_id": id, "status": status }),
                    )
                }
                _ => unreachable!("validated against ACTIONS"),
            }
        }
    };
    let mut entry = Entry::new(Some(&p.org), p.actor(), "operator.action")
        .details(json!({ "action": body.action, "params": params }));
    if let Some((kind, id)) = &target {
        entry = entry.target(kind, id);
    }
    audit::record(&mut tx, &meta, entry).await?;
    idem.commit(
        tx,
        StatusCode::OK,
        &ActionOut {
            action: body.action,
            result,
        },
    )
    .await
}
