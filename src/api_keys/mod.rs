//! API keys: `rk_live_…` / `rk_test_…` with 190 bits of randomness, shown once, stored as a
//! SHA-256 hash (a key is a high-entropy secret: a fast hash is enough and lets lookup be an
//! index probe on the hash, which reveals nothing about stored keys through timing).
//!
//! Resolved keys are cached briefly; revocation and rotation evict the entry on this instance
//! at once and on every other instance through Redis pub/sub (see [`KeyCache`]).

pub mod cache;
pub mod routes;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicI64};

use serde::{Deserialize, Serialize};

use crate::access::grants::{Grants, Permission, Scope};
use crate::access::principal::{Environment, LimitIds};
use crate::access::secrets::constant_time_eq;
use crate::clock::{Rfc3339, now_ms, rfc3339};
use crate::config::Rate;
use crate::http::{ApiError, Checks, Validate};
use crate::ids::{ApiKeyId, OrgId, UserId};

pub use cache::KeyCache;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_CHARS: usize = 32;

/// A new key string for `env`: `rk_<env>_` + 32 base62 characters.
pub fn generate(env: Environment) -> String {
    let mut out = format!("rk_{}_", env.as_str());
    while out.len() < 8 + SECRET_CHARS {
        for b in crate::access::secrets::random_bytes::<64>() {
            // Rejection sampling keeps every character equally likely.
            if b < 248 && out.len() < 8 + SECRET_CHARS {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// Whether `s` is shaped like a key (cheap pre-check before any lookup).
pub fn looks_like_key(s: &str) -> Option<Environment> {
    let env = if s.starts_with("rk_live_") {
        Environment::Live
    } else if s.starts_with("rk_test_") {
        Environment::Test
    } else {
        return None;
    };
    let body = &s[8..];
    (body.len() == SECRET_CHARS && body.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(env)
}

/// A stored key, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: String,
    pub environment: Environment,
    pub display_prefix: String,
    pub scopes: Vec<Scope>,
    pub permissions: Vec<Permission>,
    pub rate_limit: Option<Rate>,
    pub quota: Option<Rate>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
    #[serde(skip)]
    pub secret_hash: String,
    #[serde(skip)]
    pub previous_hash: Option<String>,
    pub previous_expires_at: Option<i64>,
    /// Built on first use: a cached key serves many requests.
    #[serde(skip)]
    limit_ids: std::sync::OnceLock<std::sync::Arc<LimitIds>>,
    /// Its latest use not yet written ([`KeyCache::touch`]).
    #[serde(skip)]
    used: UsedAt,
}

/// When a cached key was last used, and whether it waits in [`KeyCache`]'s list to be written.
/// Atomics on the key itself: noting a use is then no lock and no lookup per request.
#[derive(Debug, Default)]
struct UsedAt {
    at: AtomicI64,
    queued: AtomicBool,
}

impl Clone for UsedAt {
    /// A copy is another key value, not in any list: it starts unused.
    fn clone(&self) -> UsedAt {
        UsedAt::default()
    }
}

impl ApiKey {
    pub fn grants(&self) -> Grants {
        Grants::of_key(&self.scopes, &self.permissions)
    }

    /// The ids of this key's limits and its org's, in this key's environment.
    pub fn limit_ids(&self) -> std::sync::Arc<LimitIds> {
        self.limit_ids
            .get_or_init(|| {
                std::sync::Arc::new(LimitIds::new(
                    Some(self.id.as_str()),
                    &self.org_id,
                    self.environment,
                ))
            })
            .clone()
    }

    /// Whether it works now.
    pub fn status(&self, now: i64) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

crate::text_enum::text_enum! {
    /// Whether a key works.
    pub enum KeyStatus {
        Active = "active",
        Revoked = "revoked",
        Expired = "expired",
    }
}

/// What a new key is made of.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub environment: Environment,
    pub scopes: Vec<Scope>,
    pub permissions: Vec<Permission>,
    pub rate_limit: Option<Rate>,
    pub quota: Option<Rate>,
    pub expires_at: Option<i64>,
    pub created_by: Option<UserId>,
}

/// Why a presented key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Unknown,
    Revoked,
    Expired,
    /// A secret replaced by rotation whose grace period is over.
    Rotated,
}

/// Decides whether `key` (found by `hash`, the hex SHA-256 of the presented secret) may be
/// used now.
pub fn check(key: &ApiKey, hash: &[u8], now: i64) -> Result<(), KeyRefusal> {
    if key.revoked_at.is_some() {
        return Err(KeyRefusal::Revoked);
    }
    if key.expires_at.is_some_and(|e| e <= now) {
        return Err(KeyRefusal::Expired);
    }
    if constant_time_eq(key.secret_hash.as_bytes(), hash) {
        return Ok(());
    }
    let in_grace = key
        .previous_hash
        .as_deref()
        .is_some_and(|p| constant_time_eq(p.as_bytes(), hash))
        && key.previous_expires_at.is_some_and(|e| e > now);
    if in_grace {
        Ok(())
    } else {
        Err(KeyRefusal::Rotated)
    }
}

/// A scope an API key may hold, as the document states it: derived from
/// [`Scope::key_grantable`], so a user-only scope is not offered.
pub struct GrantableScope;

impl utoipa::PartialSchema for GrantableScope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let scopes = Scope::ALL.into_iter().filter(|s| s.key_grantable());
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(scopes.map(Scope::as_str)))
            .into()
    }
}

impl utoipa::ToSchema for GrantableScope {}

/// The form of a key's `rate_limit` and `quota` the document states (a subset of what
/// `Rate::parse` reads, which also allows spaces): a count that fits, a slash and a unit.
pub const RATE_PATTERN: &str = "^[1-9][0-9]{0,8}/(s|sec|second|m|min|minute|h|hour|d|day)$";

fn rate_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::http::text::or_null(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(16))
            .pattern(Some(RATE_PATTERN))
            .into(),
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    #[schema(schema_with = crate::http::text::line::<1, 100>)]
    pub name: String,
    /// Areas the key may reach: messages, contacts, conversations, scheduled_messages,
    /// webhooks, dead_letters, audit_logs, exports, gdpr.
    #[schema(value_type = Vec<GrantableScope>, min_items = 1)]
    pub scopes: Vec<Scope>,
    /// Verbs: read, write, delete.
    #[schema(min_items = 1)]
    pub permissions: Vec<Permission>,
    /// live (default) or test.
    pub environment: Option<Environment>,
    /// Requests per period, e.g. `10/s`.
    #[schema(schema_with = rate_schema)]
    pub rate_limit: Option<String>,
    /// Requests per period, e.g. `10000/day`.
    #[schema(schema_with = rate_schema)]
    pub quota: Option<String>,
    /// The key stops working then (in the future).
    pub expires_at: Option<Rfc3339>,
}

impl Validate for KeyIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.check(
            !self.scopes.is_empty(),
            "scopes",
            "at least one scope is required",
        );
        for (i, s) in self.scopes.iter().enumerate() {
            c.check(
                s.key_grantable(),
                &format!("scopes[{i}]"),
                format!("{} cannot be granted to an API key", s.as_str()),
            );
        }
        c.check(
            !self.permissions.is_empty(),
            "permissions",
            "at least one permission is required",
        );
        if let Some(r) = &self.rate_limit {
            c.check(
                Rate::parse(r).is_some(),
                "rate_limit",
                "must look like 10/s, 600/min, 10000/h or 100000/day",
            );
        }
        if let Some(q) = &self.quota {
            c.check(
                Rate::parse(q).is_some(),
                "quota",
                "must look like 10000/day",
            );
        }
        if let Some(e) = self.expires_at {
            c.check(e.ms() > now_ms(), "expires_at", "must be in the future");
        }
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// How long the old secret keeps working, 0..=604800 seconds (default 0: at once).
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_seconds: Option<u64>,
}

impl Validate for RotateIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.check(
            self.grace_period_seconds.is_none_or(|g| g <= 604_800),
            "grace_period_seconds",
            "must be at most 604800 (7 days)",
        );
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyOut {
    pub id: ApiKeyId,
    pub object: &'static str,
    pub name: String,
    pub environment: Environment,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub permissions: Vec<Permission>,
    pub rate_limit: Option<String>,
    pub quota: Option<String>,
    pub status: KeyStatus,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub expires_at: Option<String>,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub revoked_at: Option<String>,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub last_used_at: Option<String>,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeySecretOut {
    #[serde(flatten)]
    pub key: KeyOut,
    /// The secret: shown in this response only.
    pub secret: String,
}

impl From<&ApiKey> for KeyOut {
    fn from(k: &ApiKey) -> Self {
        KeyOut {
            id: k.id.clone(),
            object: "api_key",
            name: k.name.clone(),
            environment: k.environment,
            prefix: k.display_prefix.clone(),
            scopes: k.scopes.clone(),
            permissions: k.permissions.clone(),
            rate_limit: k.rate_limit.map(|r| r.render()),
            quota: k.quota.map(|r| r.render()),
            status: k.status(now_ms()),
            expires_at: k.expires_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
            created_at: rfc3339(k.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_shape_and_entropy() {
        let a = generate(Environment::Live);
        let b = generate(Environment::Test);
        assert!(a.starts_with("rk_live_") && b.starts_with("rk_test_"));
        assert_eq!(a.len(), 40);
        assert_eq!(looks_like_key(&a), Some(Environment::Live));
        assert_eq!(looks_like_key(&b), Some(Environment::Test));
        assert_eq!(looks_like_key(&a[..39]), None);
        assert_eq!(
            looks_like_key("rk_prod_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            None
        );
        assert_ne!(generate(Environment::Live), a);
        // 32 characters of a 62-letter alphabet: ~190 bits.
        assert!((SECRET_CHARS as f64) * 62f64.log2() >= 128.0);
    }
}
