//! Who is calling: a [`Principal`], resolved once per request by the guard, and the [`Tenant`]
//! (org + environment) every store function takes first.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::grants::{Grants, Role};
use crate::config::Rate;
use crate::http::ApiError;
use crate::ids::{ApiKeyId, OrgId, UserId};

crate::text_enum::text_enum! {
    /// Live data, or the sandbox that `rk_test_` keys see.
    pub enum Environment {
        Live = "live",
        Test = "test",
    }
}

impl Environment {
    pub fn is_live(self) -> bool {
        self == Environment::Live
    }
}

/// The scope of every query on tenant data: one org, one environment. A request gets its
/// tenant from its principal ([`Principal::tenant`]); background work gets one only through
/// the job layer ([`Tenant::for_background`] needs its [`crate::jobs::witness::Background`] witness).
/// Never defaulted, so an unscoped query has to be written on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    org: OrgId,
    env: Environment,
}

impl Tenant {
    /// For jobs and the scheduler, acting for the org of a row they read.
    pub fn for_background(
        org: OrgId,
        env: Environment,
        _: &crate::jobs::witness::Background,
    ) -> Tenant {
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
    ApiKey { key_id: ApiKeyId },
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

/// The caller of a guarded route. Its org is reachable only through [`Principal::tenant`].
#[derive(Debug, Clone)]
pub struct Principal {
    org: OrgId,
    pub kind: PrincipalKind,
    pub grants: Grants,
    pub environment: Environment,
    /// A key's own limits (users are limited by the org's plan only).
    pub rate_limit: Option<Rate>,
    pub quota: Option<Rate>,
    pub limit_ids: Arc<LimitIds>,
}

impl Principal {
    /// Built by the guard only, once the credential is verified.
    pub(crate) fn new(
        org: OrgId,
        kind: PrincipalKind,
        grants: Grants,
        environment: Environment,
        limits: (Option<Rate>, Option<Rate>),
        limit_ids: Arc<LimitIds>,
    ) -> Principal {
        Principal {
            org,
            kind,
            grants,
            environment,
            rate_limit: limits.0,
            quota: limits.1,
            limit_ids,
        }
    }

    /// The org, for the guard that resolved this principal (handlers use [`Principal::tenant`]).
    pub(super) fn org(&self) -> &OrgId {
        &self.org
    }

    pub fn tenant(&self) -> Tenant {
        Tenant {
            org: self.org.clone(),
            env: self.environment,
        }
    }

    pub fn actor(&self) -> Actor {
        match &self.kind {
            PrincipalKind::User { user_id, .. } => Actor::User(user_id.clone()),
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

crate::text_enum::text_enum! {
    /// The kind of actor an audit entry records.
    pub enum ActorKind {
        User = "user",
        ApiKey = "api_key",
        Operator = "operator",
        System = "system",
        Anonymous = "anonymous",
    }
}

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    ApiKey(ApiKeyId),
    /// An operator acting outside the API (`cli`).
    Operator(&'static str),
    System,
    Anonymous,
}

impl Actor {
    pub fn kind(&self) -> ActorKind {
        match self {
            Actor::User(_) => ActorKind::User,
            Actor::ApiKey(_) => ActorKind::ApiKey,
            Actor::Operator(_) => ActorKind::Operator,
            Actor::System => ActorKind::System,
            Actor::Anonymous => ActorKind::Anonymous,
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User(i) => Some(i.as_str()),
            Actor::ApiKey(i) => Some(i.as_str()),
            Actor::Operator(name) => Some(name),
            Actor::System | Actor::Anonymous => None,
        }
    }
}
