//! Exports' SQL.

use super::{Export, ExportStatus};
use crate::access::principal::{Environment, Tenant};
use crate::clock::now_ms;
use crate::ids::{ExportId, OrgId};
use crate::store::{DbResult, Exec, Q};

pub async fn insert(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &ExportId,
    requested_by: Option<&str>,
) -> DbResult<()> {
    Q::write("INSERT INTO exports (id, org_id, environment, status, requested_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(t.org())
        .bind(t.env())
        .bind(ExportStatus::Pending)
        .bind(requested_by)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &ExportId) -> DbResult<Option<Export>> {
    Q::read("SELECT id, status, environment, bytes, sha256, created_at, completed_at FROM exports WHERE org_id = $1 AND environment = $2 AND id = $3")
        .bind(t.org())
        .bind(t.env())
        .bind(id)
        .fetch_optional(ex)
        .await
}

/// A page of the tenant's exports, newest first (`limit + 1` rows at most).
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<Export>> {
    Q::read(
        "SELECT id, status, environment, bytes, sha256, created_at, completed_at FROM exports
         WHERE org_id = $1 AND environment = $2 AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(t.org())
    .bind(t.env())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(ex)
    .await
}

/// The content of a ready export (a signed link names it; no tenant to scope by).
pub async fn content(ex: &mut impl Exec, id: &ExportId) -> DbResult<Option<Option<String>>> {
    Q::read("SELECT content FROM exports WHERE id = $1 AND status = 'ready'")
        .bind(id)
        .fetch_optional::<(Option<String>,)>(ex)
        .await
        .map(|r| r.map(|(c,)| c))
}

/// Whose export `id` is, for the job that builds it.
pub async fn owner(ex: &mut impl Exec, id: &ExportId) -> DbResult<Option<(OrgId, Environment)>> {
    Q::read("SELECT org_id, environment FROM exports WHERE id = $1")
        .bind(id)
        .fetch_optional(ex)
        .await
}

pub async fn complete(
    ex: &mut impl Exec,
    id: &ExportId,
    content: &str,
    sha256: &str,
) -> DbResult<()> {
    Q::write("UPDATE exports SET status = 'ready', content = $2, bytes = $3, sha256 = $4, completed_at = $5 WHERE id = $1")
        .bind(id)
        .bind(content)
        .bind(i64::try_from(content.len()).unwrap_or(i64::MAX))
        .bind(sha256)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}
