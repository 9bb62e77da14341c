//! Branding's SQL.

use super::{Branding, BrandingIn};
use crate::clock::now_ms;
use crate::ids::OrgId;
use crate::store::{DbResult, Exec, Q};

pub async fn get(ex: &mut impl Exec, org: &OrgId) -> DbResult<Option<Branding>> {
    Q::read("SELECT name, primary_color, accent_color, logo_url, updated_at FROM branding WHERE org_id = $1")
        .bind(org)
        .fetch_optional(ex)
        .await
}

/// The branding of the platform org (the deployment's own status page), if it set one.
pub async fn platform(ex: &mut impl Exec) -> DbResult<Option<Branding>> {
    Q::read("SELECT b.name, b.primary_color, b.accent_color, b.logo_url, b.updated_at FROM branding b JOIN orgs o ON o.id = b.org_id WHERE o.is_platform ORDER BY o.created_at LIMIT 1")
        .fetch_optional(ex)
        .await
}

pub async fn put(ex: &mut impl Exec, org: &OrgId, b: &BrandingIn) -> DbResult<()> {
    Q::write("INSERT INTO branding (org_id, name, primary_color, accent_color, logo_url, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org_id) DO UPDATE SET name = excluded.name, primary_color = excluded.primary_color,
             accent_color = excluded.accent_color, logo_url = excluded.logo_url, updated_at = excluded.updated_at")
        .bind(org)
        .bind(b.name.trim())
        .bind(b.primary_color.clone())
        .bind(b.accent_color.clone())
        .bind(b.logo_url.clone())
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}
