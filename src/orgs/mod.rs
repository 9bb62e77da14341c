//! Orgs (tenants) and their subscriptions.

use serde::Serialize;

use crate::clock::now_ms;
use crate::ids::OrgId;
use crate::store::{DbResult, Exec, sql};

#[derive(Debug, Clone, Serialize)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub is_platform: bool,
    pub parent_org_id: Option<String>,
    pub created_at: i64,
}

/// A subscription status: active and trialing pass the billing gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubStatus {
    Active,
    Trialing,
    PastDue,
    Canceled,
}

impl SubStatus {
    pub fn parse(s: &str) -> Option<SubStatus> {
        match s {
            "active" => Some(SubStatus::Active),
            "trialing" => Some(SubStatus::Trialing),
            "past_due" => Some(SubStatus::PastDue),
            "canceled" => Some(SubStatus::Canceled),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Active => "active",
            SubStatus::Trialing => "trialing",
            SubStatus::PastDue => "past_due",
            SubStatus::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Standard,
    Full,
}

impl Tier {
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "standard" => Some(Tier::Standard),
            "full" => Some(Tier::Full),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub status: SubStatus,
    pub tier: Tier,
}

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
    sql("INSERT INTO orgs (id, name, is_platform, parent_org_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(name)
        .bind(is_platform)
        .bind(parent.map(|p| p.as_str().to_owned()))
        .bind(now)
        .execute(ex)
        .await?;
    set_subscription(
        ex,
        &id,
        SubStatus::Trialing,
        Tier::Standard,
        "default",
        None,
    )
    .await?;
    Ok(Org {
        id,
        name: name.to_owned(),
        is_platform,
        parent_org_id: parent.map(|p| p.as_str().to_owned()),
        created_at: now,
    })
}

pub async fn get(ex: &mut impl Exec, id: &str) -> DbResult<Option<Org>> {
    let row =
        sql("SELECT id, name, is_platform, parent_org_id, created_at FROM orgs WHERE id = $1")
            .bind(id)
            .fetch_optional(ex)
            .await?;
    row.map(|r| {
        Ok(Org {
            id: OrgId::from_trusted(r.get("id")?),
            name: r.get("name")?,
            is_platform: r.get("is_platform")?,
            parent_org_id: r.get("parent_org_id")?,
            created_at: r.get("created_at")?,
        })
    })
    .transpose()
}

/// Upserts the org's subscription.
pub async fn set_subscription(
    ex: &mut impl Exec,
    org: &OrgId,
    status: SubStatus,
    tier: Tier,
    source: &str,
    external_id: Option<&str>,
) -> DbResult<()> {
    sql("INSERT INTO subscriptions (org_id, status, tier, source, external_id, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org_id) DO UPDATE SET status = excluded.status, tier = excluded.tier,
             source = excluded.source, external_id = excluded.external_id, updated_at = excluded.updated_at")
        .bind(org)
        .bind(status.as_str())
        .bind(tier.as_str())
        .bind(source)
        .bind(external_id.map(str::to_owned))
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

/// Sets (or with `None` clears) a per-org plan override: `rate_limit` or `quota`.
pub async fn set_plan_override(
    ex: &mut impl Exec,
    org: &OrgId,
    which: &str,
    value: Option<crate::config::Rate>,
) -> DbResult<()> {
    let q = match which {
        "rate_limit" => sql("UPDATE subscriptions SET rate_limit = $2 WHERE org_id = $1"),
        _ => sql("UPDATE subscriptions SET quota = $2 WHERE org_id = $1"),
    };
    q.bind(org)
        .bind(value.map(|r| r.render()))
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn subscription(ex: &mut impl Exec, org: &OrgId) -> DbResult<Option<Subscription>> {
    let row = sql("SELECT status, tier FROM subscriptions WHERE org_id = $1")
        .bind(org)
        .fetch_optional(ex)
        .await?;
    Ok(row.and_then(|r| {
        Subscription::parse(
            &r.get::<String>("status").ok()?,
            &r.get::<String>("tier").ok()?,
        )
    }))
}

impl Subscription {
    /// A subscription from its stored `status` and `tier` (`None` if either is unknown).
    pub fn parse(status: &str, tier: &str) -> Option<Subscription> {
        Some(Subscription {
            status: SubStatus::parse(status)?,
            tier: Tier::parse(tier)?,
        })
    }
}
