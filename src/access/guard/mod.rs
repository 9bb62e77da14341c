//! The guard chain, driven by each route's [`Profile`], in SPEC order:
//! authenticate (401) → tenant (403 `tenant_mismatch`) → scope (403 `insufficient_scope`) →
//! permission (403 `insufficient_permission`) → billing (402 / 403 `tier_insufficient`) →
//! rate limits and quotas (429) → idempotency → handler. Validation happens in the handler's
//! extractors. Every 401/403 on `/v1` is audited; repeated authentication failures from one
//! address are throttled by the public limiter before they can flood the audit log.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

mod idempotent;

use crate::access::client_ip::ClientIp;
use crate::access::grants::Role;
use crate::access::principal::{Actor, Environment, LimitIds, Principal, PrincipalKind};
use crate::access::tokens;
use crate::api_keys::{ApiKey, KeyRefusal, looks_like_key};
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::billing::plans::{Plan, plan_limits};
use crate::billing::rule;
use crate::clock::now_ms;
use crate::http::routes::{AuthKind, Billing, Idempotency, Profile, RateClass};
use crate::http::{ApiError, ErrorCode};
use crate::ids::{OrgId, UserId};
use crate::state::AppState;
use crate::traffic::headers;
use crate::traffic::limits::{Decision, Limit, LimitKind};

/// The guard's state: the app and the profile of the route it protects.
#[derive(Clone)]
pub struct GuardState {
    pub app: AppState,
    pub profile: Arc<Profile>,
}

/// A refusal, with what the audit log needs to know about it.
struct Refusal {
    error: ApiError,
    org: Option<OrgId>,
    actor: Actor,
}

impl Refusal {
    fn anonymous(error: ApiError) -> Refusal {
        Refusal {
            error,
            org: None,
            actor: Actor::Anonymous,
        }
    }
}

pub async fn guard(State(g): State<GuardState>, req: Request, next: Next) -> Response {
    // Both only matter for limits on the address and for refusals: built when needed.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = || matched.as_ref().map_or("", |m| m.as_str());
    let ip = req.extensions().get::<ClientIp>().map(|c| c.0);
    let ip_text = || ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
    let app = &g.app;
    let profile = &g.profile;

    if profile.is_public() {
        let decision = if profile.rate_limit == RateClass::PublicIp {
            let d = app
                .limiter
                .check(
                    &[Limit {
                        name: "ip",
                        id: format!("ip:{}:{}", route(), ip_text()).into(),
                        rate: app.config.public_rate_limit,
                        kind: LimitKind::Rate,
                    }],
                    now_ms(),
                )
                .await;
            if let Some(r) = refusal_of(&d) {
                return with_limit_headers(r.into_response(), &d);
            }
            Some(d)
        } else {
            None
        };
        let res = next.run(req).await;
        return match decision {
            Some(d) => with_limit_headers(res, &d),
            None => res,
        };
    }

    // One clock read for every check below.
    let now = now_ms();
    let (mut parts, body) = req.into_parts();
    let (principal, key) = match authenticate(app, profile, &parts.headers, now).await {
        Ok(p) => p,
        Err(r) => {
            // Failed credentials count against the address, so guessing is throttled and
            // cannot flood the audit log.
            let d = app
                .limiter
                .check(
                    &[Limit {
                        name: "ip",
                        id: format!("authfail:{}", ip_text()).into(),
                        rate: app.config.public_rate_limit,
                        kind: LimitKind::Rate,
                    }],
                    now,
                )
                .await;
            if let Some(limited) = refusal_of(&d) {
                return with_limit_headers(limited.into_response(), &d);
            }
            return Box::pin(deny(app, &RequestMeta::from_parts(&parts), route(), r)).await;
        }
    };
    if let Err(r) = authorize(app, profile, &principal) {
        return Box::pin(deny(app, &RequestMeta::from_parts(&parts), route(), r)).await;
    }
    // The org's plan, looked up once (cached) for billing and limits alike, and only for a
    // request that got this far.
    let billing_applies = profile.billing != Billing::None && app.config.billing_enforce;
    let plan = if billing_applies || profile.rate_limit == RateClass::Principal {
        match app.plans.get(&app.db, principal.org(), now).await {
            Ok(p) => Some(p),
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else {
        None
    };
    if billing_applies
        && let Some(plan) = plan
        && let Err(r) = rule(plan.subscription, profile.billing)
    {
        let refusal = Refusal {
            error: r.into_api_error(),
            org: Some(principal.org().clone()),
            actor: principal.actor(),
        };
        return Box::pin(deny(
            app,
            &RequestMeta::from_parts(&parts),
            route(),
            refusal,
        ))
        .await;
    }

    let decision = match plan {
        Some(plan) if profile.rate_limit == RateClass::Principal => {
            let d = app
                .limiter
                .check(&limits_for(app, &principal, &plan), now)
                .await;
            if let Some(r) = refusal_of(&d) {
                metrics::counter!("rampart_guard_refusals_total", "code" => r.code().as_str())
                    .increment(1);
                return with_limit_headers(r.into_response(), &d);
            }
            Some(d)
        }
        _ => None,
    };
    if let Some(key) = &key {
        app.key_cache.touch(key, now);
    }

    let res = if profile.idempotency == Idempotency::None {
        parts.extensions.insert(principal);
        next.run(Request::from_parts(parts, body)).await
    } else {
        parts.extensions.insert(principal.clone());
        // Boxed, like the refusals: the common request carries no room for their futures.
        Box::pin(idempotent::run(app, profile, &principal, parts, body, next)).await
    };
    match decision {
        Some(d) => with_limit_headers(res, &d),
        None => res,
    }
}

fn refusal_of(d: &Decision) -> Option<ApiError> {
    d.refusal().map(|o| {
        let (code, what) = match o.kind {
            LimitKind::Rate => (ErrorCode::RateLimited, "rate limit"),
            LimitKind::Quota => (ErrorCode::QuotaExceeded, "quota"),
        };
        ApiError::TooManyRequests {
            code,
            detail: format!(
                "{what} \"{}\" of {} reached; retry in {} s",
                o.name,
                o.rate.render(),
                o.retry_after_s
            ),
            retry_after_s: o.retry_after_s,
        }
    })
}

fn with_limit_headers(mut res: Response, d: &Decision) -> Response {
    headers::apply(res.headers_mut(), d);
    res
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(
    app: &AppState,
    profile: &Profile,
    h: &HeaderMap,
    now: i64,
) -> Result<(Principal, Option<Arc<ApiKey>>), Refusal> {
    let Some(token) = bearer(h) else {
        return Err(Refusal::anonymous(ApiError::Unauthenticated(
            ErrorCode::Unauthenticated,
            "send `Authorization: Bearer <access token or API key>`".into(),
        )));
    };
    if token.starts_with("rk_") {
        if looks_like_key(token).is_none() {
            return Err(Refusal::anonymous(ApiError::Unauthenticated(
                ErrorCode::InvalidApiKey,
                "the API key is malformed".into(),
            )));
        }
        let key = match app.key_cache.resolve(&app.db, token, now).await {
            Ok(Ok(k)) => k,
            Ok(Err(refusal)) => {
                let (code, detail) = match refusal {
                    KeyRefusal::Unknown => (ErrorCode::InvalidApiKey, "the API key is not valid"),
                    KeyRefusal::Revoked => (ErrorCode::ApiKeyRevoked, "the API key was revoked"),
                    KeyRefusal::Expired => (ErrorCode::ApiKeyExpired, "the API key has expired"),
                    KeyRefusal::Rotated => (
                        ErrorCode::ApiKeyRevoked,
                        "this secret was replaced by a rotation; use the new one",
                    ),
                };
                return Err(Refusal::anonymous(ApiError::Unauthenticated(
                    code,
                    detail.into(),
                )));
            }
            Err(e) => return Err(Refusal::anonymous(e.into())),
        };
        if !profile.auth.contains(&AuthKind::ApiKey) {
            return Err(Refusal {
                error: ApiError::Forbidden(
                    ErrorCode::InsufficientScope,
                    "this route is for logged-in users; API keys cannot call it".into(),
                ),
                org: Some(key.org_id.clone()),
                actor: Actor::ApiKey(key.id.clone()),
            });
        }
        let principal = Principal::new(
            key.org_id.clone(),
            PrincipalKind::ApiKey {
                key_id: key.id.clone(),
            },
            key.grants(),
            key.environment,
            (key.rate_limit, key.quota),
            key.limit_ids(),
        );
        return Ok((principal, Some(key)));
    }
    let claims = tokens::verify(&app.keys, token).map_err(|e| {
        Refusal::anonymous(ApiError::Unauthenticated(
            ErrorCode::Unauthenticated,
            match e {
                tokens::TokenError::Expired => "the access token has expired; refresh it".into(),
                _ => "the access token is not valid".into(),
            },
        ))
    })?;
    let (Some(org), Some(user), Some(role)) = (
        OrgId::parse(&claims.org),
        UserId::parse(&claims.sub),
        Role::parse(&claims.role),
    ) else {
        return Err(Refusal::anonymous(ApiError::Unauthenticated(
            ErrorCode::Unauthenticated,
            "the access token is not valid".into(),
        )));
    };
    if !profile.auth.contains(&AuthKind::User) {
        return Err(Refusal {
            error: ApiError::Forbidden(
                ErrorCode::InsufficientScope,
                "this route is for API keys; user tokens cannot call it".into(),
            ),
            org: Some(org),
            actor: Actor::User(user),
        });
    }
    // Live unless a console session in test mode minted the token.
    let env = claims.env.unwrap_or(Environment::Live);
    let principal = Principal::new(
        org.clone(),
        PrincipalKind::User {
            user_id: user,
            role,
        },
        role.grants(),
        env,
        (None, None),
        Arc::new(LimitIds::new(None, &org, env)),
    );
    Ok((principal, None))
}

/// Tenant, scope, permission, role and environment (billing follows, once the plan is known).
fn authorize(app: &AppState, profile: &Profile, p: &Principal) -> Result<(), Refusal> {
    let refuse = |error: ApiError| Refusal {
        error,
        org: Some(p.org().clone()),
        actor: p.actor(),
    };
    if app.config.single_tenant_enforce && app.config.tenant_id.as_ref() != Some(p.org()) {
        return Err(refuse(ApiError::Forbidden(
            ErrorCode::TenantMismatch,
            "this deployment serves another tenant".into(),
        )));
    }
    if let Some(scope) = profile.scope {
        if !p.grants.has_scope(scope) {
            return Err(refuse(ApiError::Forbidden(
                ErrorCode::InsufficientScope,
                format!("this route needs the {} scope", scope.as_str()),
            )));
        }
        if let Some(perm) = profile.permission
            && !p.grants.allows(scope, perm)
        {
            return Err(refuse(ApiError::Forbidden(
                ErrorCode::InsufficientPermission,
                format!(
                    "this route needs {} permission on {}",
                    perm.as_str(),
                    scope.as_str()
                ),
            )));
        }
    }
    if let (Some(min), Some(role)) = (profile.min_role, p.role())
        && role < min
    {
        return Err(refuse(ApiError::Forbidden(
            ErrorCode::InsufficientRole,
            format!("this route needs the {} role or above", min.as_str()),
        )));
    }
    if !profile.test_mode && !p.environment.is_live() {
        return Err(refuse(ApiError::Forbidden(
            ErrorCode::InsufficientScope,
            "this route is not available to test-mode keys".into(),
        )));
    }
    Ok(())
}

fn limits_for(app: &AppState, p: &Principal, plan: &Plan) -> Vec<Limit> {
    let plan = plan_limits(&app.config, plan);
    let ids = &p.limit_ids;
    let mut limits = Vec::with_capacity(4);
    if let (Some(r), Some((key, _))) = (p.rate_limit, &ids.key) {
        limits.push(Limit {
            name: "key",
            id: key.clone(),
            rate: r,
            kind: LimitKind::Rate,
        });
    }
    limits.push(Limit {
        name: "org",
        id: ids.org.clone(),
        rate: plan.rate_limit,
        kind: LimitKind::Rate,
    });
    if let (Some(q), Some((_, key_quota))) = (p.quota, &ids.key) {
        limits.push(Limit {
            name: "key_quota",
            id: key_quota.clone(),
            rate: q,
            kind: LimitKind::Quota,
        });
    }
    limits.push(Limit {
        name: "org_quota",
        id: ids.org_quota.clone(),
        rate: plan.quota,
        kind: LimitKind::Quota,
    });
    limits
}

async fn deny(app: &AppState, meta: &RequestMeta, route: &str, r: Refusal) -> Response {
    let code = r.error.code();
    metrics::counter!("rampart_guard_refusals_total", "code" => code.as_str()).increment(1);
    let status = r.error.status();
    if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
        && route.starts_with("/v1")
    {
        let action = if status == StatusCode::UNAUTHORIZED {
            "auth.unauthenticated"
        } else {
            "auth.forbidden"
        };
        audit::record_alone(
            &app.db,
            meta,
            Entry::new(r.org.as_ref(), r.actor.clone(), action)
                .outcome(Outcome::Denied)
                .details(json!({ "code": code, "route": route })),
        )
        .await;
    }
    r.error.into_response()
}
