//! API keys: `rk_live_…` / `rk_test_…` with 190 bits of randomness, shown once, stored as a
//! SHA-256 hash (a key is a high-entropy secret: a fast hash is enough and lets lookup be an
//! index probe on the hash, which reveals nothing about stored keys through timing).
//!
//! Resolved keys are cached briefly; revocation and rotation evict the entry on this instance
//! at once and on every other instance through Redis pub/sub (see [`KeyCache`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::grants::{Grants, Permission, Scope};
use super::principal::{Environment, LimitIds};
use super::secrets::constant_time_eq;
use super::tokens::sha256_hex;
use crate::cache::{Cache, FastHash};
use crate::clock::now_ms;
use crate::config::Rate;
use crate::http::pagination::PageParams;
use crate::ids::{OrgId, new_id};
use crate::store::{Db, DbError, DbResult, Exec, Row, sql};
use sha2::{Digest as _, Sha256};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_CHARS: usize = 32;

/// A new key string for `env`: `rk_<env>_` + 32 base62 characters.
pub fn generate(env: Environment) -> String {
    let mut out = format!("rk_{}_", env.as_str());
    while out.len() < 8 + SECRET_CHARS {
        for b in super::secrets::random_bytes::<64>() {
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
    pub id: String,
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
                    Some(&self.id),
                    &self.org_id,
                    self.environment,
                ))
            })
            .clone()
    }

    fn from_row(r: &Row) -> DbResult<ApiKey> {
        let scopes: String = r.get("scopes")?;
        let perms: String = r.get("permissions")?;
        Ok(ApiKey {
            id: r.get("id")?,
            org_id: OrgId::from_trusted(r.get("org_id")?),
            name: r.get("name")?,
            environment: Environment::parse(&r.get::<String>("environment")?)
                .unwrap_or(Environment::Test),
            display_prefix: r.get("display_prefix")?,
            scopes: scopes.split(',').filter_map(Scope::parse).collect(),
            permissions: perms.split(',').filter_map(Permission::parse).collect(),
            rate_limit: r
                .get::<Option<String>>("rate_limit")?
                .and_then(|s| Rate::parse(&s)),
            quota: r
                .get::<Option<String>>("quota")?
                .and_then(|s| Rate::parse(&s)),
            expires_at: r.get("expires_at")?,
            revoked_at: r.get("revoked_at")?,
            last_used_at: r.get("last_used_at")?,
            created_at: r.get("created_at")?,
            secret_hash: r.get("secret_hash")?,
            previous_hash: r.get("previous_hash")?,
            previous_expires_at: r.get("previous_expires_at")?,
            limit_ids: std::sync::OnceLock::new(),
            used: UsedAt::default(),
        })
    }
}

const COLUMNS: &str = "id, org_id, name, environment, display_prefix, scopes, permissions, rate_limit, quota, expires_at, revoked_at, last_used_at, created_at, secret_hash, previous_hash, previous_expires_at";

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
    pub created_by: Option<String>,
}

fn join<T>(items: &[T], f: impl Fn(&T) -> &'static str) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(",")
}

/// Creates a key; returns it with the plaintext secret (shown once, never stored).
pub async fn create(ex: &mut impl Exec, org: &OrgId, new: &NewKey) -> DbResult<(ApiKey, String)> {
    let secret = generate(new.environment);
    let id = new_id("key");
    let now = now_ms();
    let row = sql_built(format!(
        "INSERT INTO api_keys (id, org_id, name, environment, display_prefix, secret_hash, scopes, permissions, rate_limit, quota, expires_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
    ))
    .bind(&id)
    .bind(org)
    .bind(&new.name)
    .bind(new.environment.as_str())
    .bind(&secret[..12])
    .bind(sha256_hex(&secret))
    .bind(join(&new.scopes, |s| s.as_str()))
    .bind(join(&new.permissions, |p| p.as_str()))
    .bind(new.rate_limit.map(|r| r.render()))
    .bind(new.quota.map(|r| r.render()))
    .bind(new.expires_at)
    .bind(new.created_by.clone())
    .bind(now)
    .fetch_one(ex)
    .await?;
    Ok((ApiKey::from_row(&row)?, secret))
}

use crate::store::sql_built;

pub async fn get(ex: &mut impl Exec, org: &OrgId, id: &str) -> DbResult<Option<ApiKey>> {
    let row = sql_built(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(ApiKey::from_row).transpose()
}

pub async fn list(ex: &mut impl Exec, org: &OrgId, page: &PageParams) -> DbResult<Vec<ApiKey>> {
    let rows = sql_built(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(org)
    .bind(page.after.clone())
    .bind(page.limit + 1)
    .fetch_all(ex)
    .await?;
    rows.iter().map(ApiKey::from_row).collect()
}

/// Marks the key revoked; returns it as it now is (`None`: no such key in the org).
pub async fn revoke(ex: &mut impl Exec, org: &OrgId, id: &str) -> DbResult<Option<ApiKey>> {
    let row = sql_built(format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3), previous_expires_at = CASE WHEN previous_hash IS NULL THEN previous_expires_at ELSE $3 END
         WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(now_ms())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(ApiKey::from_row).transpose()
}

/// Replaces the secret. With a grace period the old secret keeps working until it ends.
pub async fn rotate(
    ex: &mut impl Exec,
    org: &OrgId,
    id: &str,
    grace: Duration,
) -> DbResult<Option<(ApiKey, String)>> {
    let Some(current) = get(ex, org, id).await? else {
        return Ok(None);
    };
    let secret = generate(current.environment);
    let now = now_ms();
    let prev_expires = now + i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
    let row = sql_built(format!(
        "UPDATE api_keys SET secret_hash = $3, display_prefix = $4, previous_hash = secret_hash, previous_expires_at = $5
         WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(sha256_hex(&secret))
    .bind(&secret[..12])
    .bind(prev_expires)
    .fetch_optional(ex)
    .await?;
    Ok(row
        .as_ref()
        .map(ApiKey::from_row)
        .transpose()?
        .map(|k| (k, secret)))
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

/// Finds the key whose current or (in grace) previous secret is `presented`.
async fn lookup(db: &Db, hash: &str) -> DbResult<Option<ApiKey>> {
    let row = sql_built(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE secret_hash = $1 OR previous_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(&mut db.clone())
    .await?;
    row.as_ref().map(ApiKey::from_row).transpose()
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

/// A short-lived cache of resolved keys (or of the fact that none matched), keyed by the
/// SHA-256 of the presented secret.
pub struct KeyCache {
    entries: Cache<[u8; 32], Option<std::sync::Arc<ApiKey>>>,
    /// Set while this instance hears revocations from other instances (Redis pub/sub): the
    /// cache may then keep entries longer. Otherwise entries live at most one second, which
    /// is the bound SPEC promises for revocation everywhere.
    pub fanout_healthy: AtomicBool,
    /// Keys used since the last flush, each once.
    last_used: Mutex<Vec<std::sync::Arc<ApiKey>>>,
}

const MAX_ENTRIES: usize = 50_000;

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            entries: Cache::new(MAX_ENTRIES),
            fanout_healthy: AtomicBool::new(false),
            last_used: Mutex::new(Vec::new()),
        }
    }
}

impl KeyCache {
    fn ttl(&self) -> Duration {
        if self.fanout_healthy.load(Ordering::Acquire) {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(1)
        }
    }

    /// Resolves a presented key to its record, from cache or the store, as of `now`.
    pub async fn resolve(
        &self,
        db: &Db,
        presented: &str,
        now: i64,
    ) -> DbResult<Result<std::sync::Arc<ApiKey>, KeyRefusal>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Hex in a stack buffer: the stored hashes are hex, and this runs on every request.
        let mut hash = [0u8; 64];
        crate::ids::hex_into(&digest, &mut hash);
        let hash_text = std::str::from_utf8(&hash).unwrap_or_default();
        let found = self
            .entries
            .get_or_load(&digest, self.ttl(), now, async || {
                Ok::<_, DbError>(lookup(db, hash_text).await?.map(std::sync::Arc::new))
            })
            .await?;
        let Some(key) = found else {
            return Ok(Err(KeyRefusal::Unknown));
        };
        Ok(check(&key, &hash, now).map(|()| key))
    }

    pub fn clear(&self) {
        self.entries.clear();
    }

    /// Drops every cached entry of key `id` (its current and previous secret).
    pub fn evict(&self, id: &str) {
        self.entries
            .remove_where(|_, k| k.as_ref().is_some_and(|k| k.id == id));
    }

    /// Notes a use of `key` at `now`; written to the store in batches by
    /// [`Self::flush_last_used`].
    pub fn touch(&self, key: &std::sync::Arc<ApiKey>, now: i64) {
        key.used.at.fetch_max(now, Ordering::Relaxed);
        if !key.used.queued.load(Ordering::Relaxed) && !key.used.queued.swap(true, Ordering::AcqRel)
        {
            let mut list = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            list.push(key.clone());
        }
    }

    /// Writes the noted uses in one transaction.
    pub async fn flush_last_used(&self, db: &Db) -> DbResult<usize> {
        let keys: Vec<std::sync::Arc<ApiKey>> = {
            let mut list = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *list)
        };
        // Unqueued before the time is read: a use after this queues the key again, so none is
        // lost (one that lands in between is written twice, which is harmless).
        let mut batch: HashMap<&str, i64, FastHash> = HashMap::default();
        for k in &keys {
            k.used.queued.store(false, Ordering::Release);
            let at = k.used.at.load(Ordering::Acquire);
            let e = batch.entry(k.id.as_str()).or_insert(at);
            *e = (*e).max(at);
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = db.begin().await?;
        for (id, at) in &batch {
            sql("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
                .bind(*id)
                .bind(*at)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(batch.len())
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
