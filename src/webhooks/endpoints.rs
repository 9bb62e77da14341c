//! Webhook endpoints: where events (kind `events`) or outbound messages (kind `channel`) go.
//! Secrets are encrypted at rest, bound to the endpoint id; a rotated-out secret keeps signing
//! until its overlap window ends.

use serde_json::Value;

use crate::access::principal::Tenant;
use crate::access::secrets::Keys;
use crate::clock::now_ms;
use crate::http::pagination::PageParams;
use crate::store::{DbResult, Exec, Row, sql, sql_built};

use super::signing;
use super::ssrf::Policy;

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub org_id: String,
    pub environment: String,
    pub kind: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub max_retries: i64,
    pub rate_limit: Option<i64>,
    pub status: String,
    pub status_reason: Option<String>,
    pub consecutive_failures: i64,
    pub created_at: i64,
    pub updated_at: i64,
    secret_enc: String,
    previous_secret_enc: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
}

pub const COLUMNS: &str = "id, org_id, environment, kind, url, description, events, max_retries, rate_limit, status, status_reason, consecutive_failures, created_at, updated_at, secret_enc, previous_secret_enc, previous_secret_expires_at";

impl Endpoint {
    pub fn from_row(r: &Row) -> DbResult<Endpoint> {
        Ok(Endpoint {
            id: r.get("id")?,
            org_id: r.get("org_id")?,
            environment: r.get("environment")?,
            kind: r.get("kind")?,
            url: r.get("url")?,
            description: r.get("description")?,
            events: serde_json::from_str(&r.get::<String>("events")?).unwrap_or_default(),
            max_retries: r.get("max_retries")?,
            rate_limit: r.get("rate_limit")?,
            status: r.get("status")?,
            status_reason: r.get("status_reason")?,
            consecutive_failures: r.get("consecutive_failures")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            secret_enc: r.get("secret_enc")?,
            previous_secret_enc: r.get("previous_secret_enc")?,
            previous_secret_expires_at: r.get("previous_secret_expires_at")?,
        })
    }

    /// The keys that sign a delivery now: the current secret, and the previous one while its
    /// overlap window lasts.
    pub fn signing_secrets(&self, keys: &Keys, now: i64) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(2);
        let open = |enc: &str| {
            keys.decrypt(enc, &self.id)
                .and_then(|s| String::from_utf8(s).ok())
                .and_then(|s| signing::secret_bytes(&s))
        };
        if let Some(s) = open(&self.secret_enc) {
            out.push(s);
        }
        if let (Some(prev), Some(until)) =
            (&self.previous_secret_enc, self.previous_secret_expires_at)
            && until > now
            && let Some(s) = open(prev)
        {
            out.push(s);
        }
        out
    }
}

/// Checks a target URL: scheme, credentials, length, and (for literal addresses) the SSRF
/// policy. Host names are checked again at delivery, on the addresses they resolve to.
pub fn check_url(url: &str, policy: &Policy) -> Result<(), String> {
    if url.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let u = reqwest::Url::parse(url).map_err(|_| "must be an absolute URL".to_owned())?;
    let host = u.host_str().ok_or("must have a host")?.to_owned();
    match u.scheme() {
        "https" => {}
        "http" if policy.permits_plain_http(&host) => {}
        "http" => return Err("must use https".into()),
        _ => return Err("must be an https URL".into()),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if u.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>()
        && !policy.permits(&host, ip)
    {
        return Err("points to a private, loopback, link-local or reserved address".into());
    }
    Ok(())
}

/// A new endpoint, validated.
pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub events: &'a [String],
    pub max_retries: i64,
    pub rate_limit: Option<i64>,
    pub secret_enc: &'a str,
}

pub async fn insert(ex: &mut impl Exec, t: &Tenant, e: &NewEndpoint<'_>) -> DbResult<Endpoint> {
    let now = now_ms();
    let row = sql_built(format!(
        "INSERT INTO webhook_endpoints (id, org_id, environment, kind, url, description, events, max_retries, rate_limit, status, secret_enc, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, $11) RETURNING {COLUMNS}"
    ))
    .bind(e.id)
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(e.kind)
    .bind(e.url)
    .bind(e.description.map(str::to_owned))
    .bind(Value::from(e.events.to_vec()).to_string())
    .bind(e.max_retries)
    .bind(e.rate_limit)
    .bind(e.secret_enc)
    .bind(now)
    .fetch_one(ex)
    .await?;
    Endpoint::from_row(&row)
}

pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<Option<Endpoint>> {
    let row = sql_built(format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Endpoint::from_row).transpose()
}

pub async fn list(ex: &mut impl Exec, t: &Tenant, page: &PageParams) -> DbResult<Vec<Endpoint>> {
    let rows = sql_built(format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 AND deleted_at IS NULL
           AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(page.after.clone())
    .bind(page.limit + 1)
    .fetch_all(ex)
    .await?;
    rows.iter().map(Endpoint::from_row).collect()
}

/// The tenant's active channel endpoint, if any.
pub async fn channel(ex: &mut impl Exec, t: &Tenant) -> DbResult<Option<Endpoint>> {
    let row = sql_built(format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 AND kind = 'channel' AND deleted_at IS NULL
         ORDER BY id LIMIT 1"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Endpoint::from_row).transpose()
}

/// A partial update; `None` keeps a field.
#[derive(Default)]
pub struct Patch {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    pub max_retries: Option<i64>,
    pub rate_limit: Option<Option<i64>>,
    pub status: Option<String>,
}

pub async fn update(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &str,
    p: &Patch,
) -> DbResult<Option<Endpoint>> {
    let row = sql_built(format!(
        "UPDATE webhook_endpoints SET
            url = COALESCE($4, url),
            description = CASE WHEN $5 THEN $6 ELSE description END,
            events = COALESCE($7, events),
            max_retries = COALESCE($8, max_retries),
            rate_limit = CASE WHEN $9 THEN $10 ELSE rate_limit END,
            status = COALESCE($11, status),
            status_reason = CASE WHEN $11 IS NULL THEN status_reason ELSE NULL END,
            consecutive_failures = CASE WHEN $11 = 'active' THEN 0 ELSE consecutive_failures END,
            updated_at = $12
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .bind(p.url.clone())
    .bind(p.description.is_some())
    .bind(p.description.clone().flatten())
    .bind(p.events.as_ref().map(|e| Value::from(e.clone()).to_string()))
    .bind(p.max_retries)
    .bind(p.rate_limit.is_some())
    .bind(p.rate_limit.flatten())
    .bind(p.status.clone())
    .bind(now_ms())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Endpoint::from_row).transpose()
}

pub async fn soft_delete(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<bool> {
    let n = sql("UPDATE webhook_endpoints SET deleted_at = $4, status = 'disabled', status_reason = 'deleted', updated_at = $4
                 WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL")
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(id)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(n == 1)
}

/// Replaces the secret; the old one keeps signing until `overlap_until`.
pub async fn rotate_secret(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &str,
    new_enc: &str,
    previous_enc: &str,
    overlap_until: i64,
) -> DbResult<Option<Endpoint>> {
    let row = sql_built(format!(
        "UPDATE webhook_endpoints SET secret_enc = $4, previous_secret_enc = $5, previous_secret_expires_at = $6, updated_at = $7
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .bind(new_enc)
    .bind(previous_enc)
    .bind(overlap_until)
    .bind(now_ms())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Endpoint::from_row).transpose()
}

/// The current secret ciphertext (to keep as the previous one on rotation).
pub fn secret_ciphertext(e: &Endpoint) -> &str {
    &e.secret_enc
}

/// Sets an endpoint's status from background work (the worker acts for the endpoint's org).
pub async fn set_status(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &str,
    status: &str,
    reason: &str,
) -> DbResult<bool> {
    let n = sql(
        "UPDATE webhook_endpoints SET status = $4, status_reason = $5, updated_at = $6
                 WHERE org_id = $1 AND environment = $2 AND id = $3 AND status <> $4",
    )
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(n == 1)
}
