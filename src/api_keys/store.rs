//! API keys' SQL. Scopes and permissions are stored as comma-separated lists, limits as their
//! text (`10/s`).

use std::collections::HashMap;
use std::time::Duration;

use super::{ApiKey, NewKey, generate};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Environment;
use crate::access::tokens::sha256_hex;
use crate::cache::FastHash;
use crate::clock::now_ms;
use crate::config::Rate;
use crate::ids::{ApiKeyId, OrgId};
use crate::store::{Db, DbError, DbResult, Exec, Q};

macro_rules! columns {
    () => {
        "id, org_id, name, environment, display_prefix, scopes, permissions, rate_limit, quota, expires_at, revoked_at, last_used_at, created_at, secret_hash, previous_hash, previous_expires_at"
    };
}

/// A key's row as stored.
#[derive(sqlx::FromRow)]
struct KeyRow {
    id: ApiKeyId,
    org_id: OrgId,
    name: String,
    environment: Environment,
    display_prefix: String,
    scopes: String,
    permissions: String,
    rate_limit: Option<String>,
    quota: Option<String>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    created_at: i64,
    secret_hash: String,
    previous_hash: Option<String>,
    previous_expires_at: Option<i64>,
}

/// A stored list, scope or limit this binary does not know is a decode error.
fn decode_error(what: &str) -> DbError {
    DbError::Decode {
        column: what.to_owned(),
        source: sqlx::Error::Decode(format!("unknown {what} in an api_keys row").into()),
    }
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = DbError;

    fn try_from(r: KeyRow) -> DbResult<ApiKey> {
        let scopes = r
            .scopes
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|s| Scope::parse(s).ok_or_else(|| decode_error("scopes")))
            .collect::<DbResult<Vec<_>>>()?;
        let permissions = r
            .permissions
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| Permission::parse(p).ok_or_else(|| decode_error("permissions")))
            .collect::<DbResult<Vec<_>>>()?;
        let rate = |s: Option<String>, what: &str| {
            s.map(|s| Rate::parse(&s).ok_or_else(|| decode_error(what)))
                .transpose()
        };
        Ok(ApiKey {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            environment: r.environment,
            display_prefix: r.display_prefix,
            scopes,
            permissions,
            rate_limit: rate(r.rate_limit, "rate_limit")?,
            quota: rate(r.quota, "quota")?,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            created_at: r.created_at,
            secret_hash: r.secret_hash,
            previous_hash: r.previous_hash,
            previous_expires_at: r.previous_expires_at,
            limit_ids: std::sync::OnceLock::new(),
            used: Default::default(),
        })
    }
}

fn join<T>(items: &[T], f: impl Fn(&T) -> &'static str) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(",")
}

/// Creates a key; returns it with the plaintext secret (shown once, never stored).
pub async fn create(ex: &mut impl Exec, org: &OrgId, new: &NewKey) -> DbResult<(ApiKey, String)> {
    let secret = generate(new.environment);
    let row: KeyRow = Q::write(concat!(
        "INSERT INTO api_keys (id, org_id, name, environment, display_prefix, secret_hash, scopes, permissions, rate_limit, quota, expires_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ",
        columns!()
    ))
    .bind(ApiKeyId::new())
    .bind(org)
    .bind(&new.name)
    .bind(new.environment)
    .bind(&secret[..12])
    .bind(sha256_hex(&secret))
    .bind(join(&new.scopes, |s| s.as_str()))
    .bind(join(&new.permissions, |p| p.as_str()))
    .bind(new.rate_limit.map(|r| r.render()))
    .bind(new.quota.map(|r| r.render()))
    .bind(new.expires_at)
    .bind(new.created_by.as_ref())
    .bind(now_ms())
    .fetch_one(ex)
    .await?;
    Ok((row.try_into()?, secret))
}

pub async fn get(ex: &mut impl Exec, org: &OrgId, id: &ApiKeyId) -> DbResult<Option<ApiKey>> {
    let row: Option<KeyRow> = Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE org_id = $1 AND id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.map(ApiKey::try_from).transpose()
}

/// A page of the org's keys, newest first (`limit + 1` rows at most).
pub async fn list(
    ex: &mut impl Exec,
    org: &OrgId,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<ApiKey>> {
    let rows: Vec<KeyRow> = Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(org)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(ex)
    .await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// Marks the key revoked; returns it as it now is (`None`: no such key in the org).
pub async fn revoke(ex: &mut impl Exec, org: &OrgId, id: &ApiKeyId) -> DbResult<Option<ApiKey>> {
    let row: Option<KeyRow> = Q::write(concat!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3), previous_expires_at = CASE WHEN previous_hash IS NULL THEN previous_expires_at ELSE $3 END
         WHERE org_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(org)
    .bind(id)
    .bind(now_ms())
    .fetch_optional(ex)
    .await?;
    row.map(ApiKey::try_from).transpose()
}

/// Replaces the secret. With a grace period the old secret keeps working until it ends.
pub async fn rotate(
    ex: &mut impl Exec,
    org: &OrgId,
    id: &ApiKeyId,
    grace: Duration,
) -> DbResult<Option<(ApiKey, String)>> {
    let Some(current) = get(ex, org, id).await? else {
        return Ok(None);
    };
    let secret = generate(current.environment);
    let prev_expires = now_ms() + i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
    let row: Option<KeyRow> = Q::write(concat!(
        "UPDATE api_keys SET secret_hash = $3, display_prefix = $4, previous_hash = secret_hash, previous_expires_at = $5
         WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING ",
        columns!()
    ))
    .bind(org)
    .bind(id)
    .bind(sha256_hex(&secret))
    .bind(&secret[..12])
    .bind(prev_expires)
    .fetch_optional(ex)
    .await?;
    Ok(row.map(ApiKey::try_from).transpose()?.map(|k| (k, secret)))
}

/// Finds the key whose current or (in grace) previous secret hashes to `hash` (hex).
pub(super) async fn lookup(db: &Db, hash: &str) -> DbResult<Option<ApiKey>> {
    let row: Option<KeyRow> = Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE secret_hash = $1 OR previous_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(&mut db.clone())
    .await?;
    row.map(ApiKey::try_from).transpose()
}

/// Records keys' latest uses, in one transaction.
pub(super) async fn record_uses(db: &Db, uses: &HashMap<&ApiKeyId, i64, FastHash>) -> DbResult<()> {
    let mut tx = db.begin().await?;
    for (id, at) in uses {
        Q::write("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
            .bind(*id)
            .bind(*at)
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await
}
