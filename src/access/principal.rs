//! Who is calling: a [`Principal`], resolved once per request by the guard, and the [`Tenant`]
//! (org + environment) every store function takes first.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;

use super::grants::{Grants, Role};
use crate::config::Rate;
use crate::http::ApiError;
use crate::ids::{OrgId, UserId};

/// Live data, or the sandbox that `rk_test_` keys see.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Environment> {
        match s {
            "live" => Some(Environment::Live),
            "test" => Some(Environment::Test),
            _ => None,
        }
    }

    pub fn is_live(self) -> bool {
        self == Environment::Live
    }
}

/// The scope of every query on tenant data: one org, one environment. Obtainable from a
/// guarded request's principal, or explicitly for background work acting for an org; never
/// defaulted, so an unscoped query has to be written on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    org: OrgId,
    env: Environment,
}

impl Tenant {
    /// For jobs and commands that act on behalf of an org they read from a scoped row.
    pub fn for_background(org: OrgId, env: Environment) -> Tenant {
        Tenant { org, env }
    }

    pub fn org(&self) -> &OrgId {
        &self.org
    }

    pub fn env(&self) -> Environment {
        self.env
    }

    pub fn livemode(&self) -> bool {
        self.env.is_live()
    }
}

/// What kind of credential authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    User { user_id: UserId, role: Role },
    ApiKey { key_id: String },
}

/// The ids under which the limiter counts a principal's limits (`key:…`, `keyq:…`,
/// `org:…:env`, `orgq:…:env`). An API key's are built once per cached key, not per request.
#[derive(Debug)]
pub struct LimitIds {
    pub org: Arc<str>,
    pub org_quota: Arc<str>,
    /// The key's rate and quota ids (an API key only).
    pub key: Option<(Arc<str>, Arc<str>)>,
}

impl LimitIds {
    pub fn new(key_id: Option<&str>, org: &OrgId, env: Environment) -> LimitIds {
        let join = |parts: &[&str]| -> Arc<str> { parts.join(":").into() };
        let (org, env) = (org.as_str(), env.as_str());
        LimitIds {
            org: join(&["org", org, env]),
            org_quota: join(&["orgq", org, env]),
            key: key_id.map(|k| (join(&["key", k]), join(&["keyq", k]))),
        }
    }
}

/// The caller of a guarded route.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: OrgId,
    pub kind: PrincipalKind,
    pub grants: Grants,
    pub environment: Environment,
    /// A key's own limits (users are limited by the org's plan only).
    pub rate_limit: Option<Rate>,
    pub quota: Option<Rate>,
    pub limit_ids: Arc<LimitIds>,
}

impl Principal {
    pub fn tenant(&self) -> Tenant {
        Tenant {
            org: self.org.clone(),
            env: self.environment,
        }
    }

    pub fn actor(&self) -> Actor {
        match &self.kind {
            PrincipalKind::User { user_id, .. } => Actor::User(user_id.to_string()),
            PrincipalKind::ApiKey { key_id } => Actor::ApiKey(key_id.clone()),
        }
    }

    pub fn role(&self) -> Option<Role> {
        match &self.kind {
            PrincipalKind::User { role, .. } => Some(*role),
            PrincipalKind::ApiKey { .. } => None,
        }
    }

    pub fn user_id(&self) -> Option<&UserId> {
        match &self.kind {
            PrincipalKind::User { user_id, .. } => Some(user_id),
            PrincipalKind::ApiKey { .. } => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            // Only reachable if a handler asking for a principal sits on a public route.
            .ok_or_else(|| ApiError::internal_msg("principal missing on a guarded route"))
    }
}

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(String),
    ApiKey(String),
    Operator(String),
    System,
    Anonymous,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::ApiKey(_) => "api_key",
            Actor::Operator(_) => "operator",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User(i) | Actor::ApiKey(i) | Actor::Operator(i) => Some(i),
            Actor::System | Actor::Anonymous => None,
        }
    }
}
