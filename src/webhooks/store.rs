//! Endpoints' SQL. Every query is scoped to the tenant (org and environment), except
//! [`count_failure`], which the delivery job runs on the endpoint of a delivery it loaded.

use serde_json::Value;

use super::{Endpoint, EndpointStatus, NewEndpoint, Patch};
use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::ids::EndpointId;
use crate::store::{DbResult, Exec, Q};

/// An endpoint's columns, as [`Endpoint`] reads them.
macro_rules! endpoint_columns {
    () => {
        "id, org_id, environment, kind, url, description, events, max_retries, rate_limit, status, status_reason, consecutive_failures, created_at, updated_at, secret_enc, previous_secret_enc, previous_secret_expires_at"
    };
}

/// The same columns of the endpoint aliased `w` in a join (`qualified_columns_agree` keeps the
/// two lists equal).
macro_rules! endpoint_columns_of_w {
    () => {
        "w.id, w.org_id, w.environment, w.kind, w.url, w.description, w.events, w.max_retries, w.rate_limit, w.status, w.status_reason, w.consecutive_failures, w.created_at, w.updated_at, w.secret_enc, w.previous_secret_enc, w.previous_secret_expires_at"
    };
}
pub(crate) use endpoint_columns_of_w;

pub async fn insert(ex: &mut impl Exec, t: &Tenant, e: &NewEndpoint<'_>) -> DbResult<Endpoint> {
    let now = now_ms();
    Q::write(concat!(
        "INSERT INTO webhook_endpoints (id, org_id, environment, kind, url, description, events, max_retries, rate_limit, status, secret_enc, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, $11) RETURNING ",
        endpoint_columns!()
    ))
    .bind(e.id)
    .bind(t.org())
    .bind(t.env())
    .bind(e.kind)
    .bind(e.url)
    .bind(e.description)
    .bind(&Value::from(e.events.to_vec()))
    .bind(e.max_retries)
    .bind(e.rate_limit)
    .bind(e.secret_enc)
    .bind(now)
    .fetch_one(ex)
    .await
}

pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &EndpointId) -> DbResult<Option<Endpoint>> {
    Q::read(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .fetch_optional(ex)
    .await
}

/// A page of the tenant's endpoints, newest first (`limit + 1` rows at most).
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<Endpoint>> {
    Q::read(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 AND deleted_at IS NULL
           AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(ex)
    .await
}

/// The tenant's channel endpoint, if any.
pub async fn channel(ex: &mut impl Exec, t: &Tenant) -> DbResult<Option<Endpoint>> {
    Q::read(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 AND kind = 'channel' AND deleted_at IS NULL
         ORDER BY id LIMIT 1"
    ))
    .bind(t.org())
    .bind(t.env())
    .fetch_optional(ex)
    .await
}

pub async fn update(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &EndpointId,
    p: &Patch,
) -> DbResult<Option<Endpoint>> {
    Q::write(concat!(
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
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL RETURNING ",
        endpoint_columns!()
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .bind(p.url.clone())
    .bind(p.description.is_some())
    .bind(p.description.clone().flatten())
    .bind(
        p.events
            .as_ref()
            .map(|e| Value::from(e.clone()).to_string()),
    )
    .bind(p.max_retries)
    .bind(p.rate_limit.is_some())
    .bind(p.rate_limit.flatten())
    .bind(p.status)
    .bind(now_ms())
    .fetch_optional(ex)
    .await
}

pub async fn soft_delete(ex: &mut impl Exec, t: &Tenant, id: &EndpointId) -> DbResult<bool> {
    let n = Q::write("UPDATE webhook_endpoints SET deleted_at = $4, status = 'disabled', status_reason = 'deleted', updated_at = $4
                 WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL")
        .bind(t.org())
        .bind(t.env())
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
    id: &EndpointId,
    new_enc: &str,
    previous_enc: &str,
    overlap_until: i64,
) -> DbResult<Option<Endpoint>> {
    Q::write(concat!(
        "UPDATE webhook_endpoints SET secret_enc = $4, previous_secret_enc = $5, previous_secret_expires_at = $6, updated_at = $7
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND deleted_at IS NULL RETURNING ",
        endpoint_columns!()
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .bind(new_enc)
    .bind(previous_enc)
    .bind(overlap_until)
    .bind(now_ms())
    .fetch_optional(ex)
    .await
}

/// Stops an endpoint from background work (the delivery job acts for the endpoint's org):
/// `false` if it already had that status.
pub async fn set_status(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &EndpointId,
    status: EndpointStatus,
    reason: &str,
) -> DbResult<bool> {
    let n = Q::write(
        "UPDATE webhook_endpoints SET status = $4, status_reason = $5, updated_at = $6
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND status <> $4",
    )
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(n == 1)
}

/// One more delivery exhausted its retries: returns the endpoint's count of such in a row.
pub async fn count_failure(ex: &mut impl Exec, id: &EndpointId) -> DbResult<i64> {
    Q::write("UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1 WHERE id = $1 RETURNING consecutive_failures")
        .bind(id)
        .fetch_scalar(ex)
        .await
}

/// Every endpoint of the tenant, deleted ones too, oldest first (exports).
pub async fn all(ex: &mut impl Exec, t: &Tenant) -> DbResult<Vec<Endpoint>> {
    Q::read(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 ORDER BY id"
    ))
    .bind(t.org())
    .bind(t.env())
    .fetch_all(ex)
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn qualified_columns_agree() {
        let qualified: Vec<String> = endpoint_columns!()
            .split(", ")
            .map(|c| format!("w.{c}"))
            .collect();
        assert_eq!(qualified.join(", "), endpoint_columns_of_w!());
    }
}
