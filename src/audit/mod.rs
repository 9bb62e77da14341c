//! The audit log: who did what to which object, with what outcome, from where, in which
//! request. Entries are hash-chained per org: each entry's hash covers its fields and the
//! previous entry's hash, so an edit, a deletion or a reordering breaks the chain at that
//! entry (`rampart audit verify`). Entries are written in the transaction of the change they
//! describe; the chain head row serializes writers of one org.

pub mod routes;
mod store;

pub use store::{Break, Filter, list, record, record_alone, verify};

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::access::client_ip::ClientIp;
use crate::access::principal::{Actor, ActorKind};
use crate::http::request_id;
use crate::ids::{AuditEntryId, OrgId};

/// The chain of events that belong to no org (e.g. a failed login for an unknown email).
pub const SYSTEM_CHAIN: &str = "_system";
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a request came from, for the audit entries it causes.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub fn from_parts(parts: &Parts) -> RequestMeta {
        RequestMeta {
            request_id: request_id::current().or_else(|| {
                parts
                    .extensions
                    .get::<request_id::RequestId>()
                    .map(|r| r.0.clone())
            }),
            ip: parts.extensions.get::<ClientIp>().map(|c| c.0),
            user_agent: parts
                .headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        }
    }

    /// For work not caused by a request (jobs, CLI).
    pub fn system() -> RequestMeta {
        RequestMeta {
            request_id: request_id::current(),
            ..RequestMeta::default()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestMeta::from_parts(parts))
    }
}

crate::text_enum::text_enum! {
    /// How it ended.
    pub enum Outcome {
        Success = "success",
        Failure = "failure",
        Denied = "denied",
    }
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub org: Option<&'a OrgId>,
    pub actor: Actor,
    pub action: &'a str,
    pub target: Option<(&'a str, &'a str)>,
    pub outcome: Outcome,
    pub details: Value,
}

impl<'a> Entry<'a> {
    pub fn new(org: Option<&'a OrgId>, actor: Actor, action: &'a str) -> Entry<'a> {
        Entry {
            org,
            actor,
            action,
            target: None,
            outcome: Outcome::Success,
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &'a str, id: &'a str) -> Self {
        self.target = Some((kind, id));
        self
    }

    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }

    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
}

/// The stored form, which the hash covers.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Stored {
    pub id: AuditEntryId,
    pub chain: String,
    pub seq: i64,
    pub org_id: Option<OrgId>,
    pub actor_type: ActorKind,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub created_at: i64,
    pub prev_hash: String,
    pub hash: String,
}

impl Stored {
    /// The hash of this entry: SHA-256 over every field, each length-prefixed so that no two
    /// different entries serialize alike, followed by the previous hash.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |s: Option<&str>| match s {
            Some(s) => {
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
            None => h.update(u64::MAX.to_be_bytes()),
        };
        field(Some("rampart-audit-v1"));
        field(Some(self.id.as_str()));
        field(Some(&self.chain));
        field(Some(&self.seq.to_string()));
        field(self.org_id.as_ref().map(OrgId::as_str));
        field(Some(self.actor_type.as_str()));
        field(self.actor_id.as_deref());
        field(Some(&self.action));
        field(self.target_type.as_deref());
        field(self.target_id.as_deref());
        field(Some(self.outcome.as_str()));
        field(self.request_id.as_deref());
        field(self.ip.as_deref());
        field(self.user_agent.as_deref());
        field(Some(&self.details));
        field(Some(&self.created_at.to_string()));
        field(Some(&self.prev_hash));
        crate::ids::hex(h.finalize())
    }
}
