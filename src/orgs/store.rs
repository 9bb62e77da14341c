//! Orgs' SQL.

use super::Org;
use crate::billing::store::{Source, set_subscription};
use crate::billing::{SubStatus, Subscription, Tier};
use crate::clock::now_ms;
use crate::ids::OrgId;
use crate::store::{DbResult, Exec, Q};

/// Creates an org with a `trialing`/`standard` subscription (so a new org can be tried at once;
/// billing events or `set-subscription` change it).
pub async fn create(
    ex: &mut impl Exec,
    name: &str,
    is_platform: bool,
    parent: Option<&OrgId>,
) -> DbResult<Org> {
    let id = OrgId::new();
    let now = now_ms();
    Q::write("INSERT INTO orgs (id, name, is_platform, parent_org_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(name)
        .bind(is_platform)
        .bind(parent)
        .bind(now)
        .execute(ex)
        .await?;
    let trial = Subscription {
        status: SubStatus::Trialing,
        tier: Tier::Standard,
    };
    set_subscription(ex, &id, trial, Source::Default, None).await?;
    Ok(Org {
        id,
        name: name.to_owned(),
        is_platform,
        parent_org_id: parent.cloned(),
        created_at: now,
    })
}

pub async fn get(ex: &mut impl Exec, id: &OrgId) -> DbResult<Option<Org>> {
    Q::read("SELECT id, name, is_platform, parent_org_id, created_at FROM orgs WHERE id = $1")
        .bind(id)
        .fetch_optional(ex)
        .await
}

/// The orgs a partner created, newest first (`limit + 1` rows at most).
pub async fn children(
    ex: &mut impl Exec,
    parent: &OrgId,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<Org>> {
    Q::read("SELECT id, name, is_platform, parent_org_id, created_at FROM orgs WHERE parent_org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3")
        .bind(parent)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(ex)
        .await
}
