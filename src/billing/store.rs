//! Subscriptions' SQL.

use super::{PlanOverride, SubStatus, Subscription, Tier};
use crate::clock::now_ms;
use crate::config::Rate;
use crate::ids::OrgId;
use crate::store::{Db, DbResult, Exec, Q, Tx};

/// Where a subscription change came from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A new org's trial.
    Default,
    /// `rampart admin set-subscription`.
    Admin,
    Stripe,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Admin => "admin",
            Source::Stripe => "stripe",
        }
    }
}

/// Upserts the org's subscription.
pub async fn set_subscription(
    ex: &mut impl Exec,
    org: &OrgId,
    sub: Subscription,
    source: Source,
    external_id: Option<&str>,
) -> DbResult<()> {
    Q::write("INSERT INTO subscriptions (org_id, status, tier, source, external_id, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org_id) DO UPDATE SET status = excluded.status, tier = excluded.tier,
             source = excluded.source, external_id = excluded.external_id, updated_at = excluded.updated_at")
        .bind(org)
        .bind(sub.status)
        .bind(sub.tier)
        .bind(source.as_str())
        .bind(external_id)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

/// Applies a Stripe event's subscription unless a newer event was applied before (Stripe may
/// deliver out of order): `false` if it was older.
pub async fn apply_stripe(
    ex: &mut impl Exec,
    org: &OrgId,
    sub: Subscription,
    external_id: Option<&str>,
    event_ms: i64,
) -> DbResult<bool> {
    let n = Q::write("UPDATE subscriptions SET status = $2, tier = $3, source = $4, external_id = $5, external_updated_at = $6, updated_at = $7
         WHERE org_id = $1 AND (external_updated_at IS NULL OR external_updated_at <= $6)")
        .bind(org)
        .bind(sub.status)
        .bind(sub.tier)
        .bind(Source::Stripe.as_str())
        .bind(external_id)
        .bind(event_ms)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(n == 1)
}

/// Sets (or with `None` clears) a per-org plan override.
pub async fn set_plan_override(
    ex: &mut impl Exec,
    org: &OrgId,
    which: PlanOverride,
    value: Option<Rate>,
) -> DbResult<()> {
    let q = match which {
        PlanOverride::RateLimit => {
            Q::write("UPDATE subscriptions SET rate_limit = $2 WHERE org_id = $1")
        }
        PlanOverride::Quota => Q::write("UPDATE subscriptions SET quota = $2 WHERE org_id = $1"),
    };
    q.bind(org)
        .bind(value.map(|r| r.render()))
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn subscription(ex: &mut impl Exec, org: &OrgId) -> DbResult<Option<Subscription>> {
    Q::read("SELECT status, tier FROM subscriptions WHERE org_id = $1")
        .bind(org)
        .fetch_optional(ex)
        .await
}

/// A subscription row with its overrides, as the plan cache reads it.
#[derive(sqlx::FromRow)]
pub(super) struct PlanRow {
    pub status: SubStatus,
    pub tier: Tier,
    pub rate_limit: Option<String>,
    pub quota: Option<String>,
}

pub(super) async fn plan_row(db: &Db, org: &OrgId) -> DbResult<Option<PlanRow>> {
    Q::read("SELECT status, tier, rate_limit, quota FROM subscriptions WHERE org_id = $1")
        .bind(org)
        .fetch_optional(&mut db.clone())
        .await
}

/// Records a Stripe event as received; false if it was received before (Stripe retries).
pub async fn record_received(
    tx: &mut Tx,
    event: &super::stripe::BillingEventIn,
    org: Option<&OrgId>,
) -> DbResult<bool> {
    let fresh: Option<(String,)> = Q::write(
        "INSERT INTO billing_events (id, type, org_id, outcome, event_created_at, received_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(&event.id)
    .bind(event.type_.as_str())
    .bind(org)
    .bind(super::stripe::EventOutcome::Received)
    .bind(event.created.saturating_mul(1000))
    .bind(now_ms())
    .fetch_optional(tx)
    .await?;
    Ok(fresh.is_some())
}

/// What became of a received event.
pub async fn set_outcome(
    tx: &mut Tx,
    id: &str,
    outcome: super::stripe::EventOutcome,
) -> DbResult<()> {
    Q::write("UPDATE billing_events SET outcome = $2 WHERE id = $1")
        .bind(id)
        .bind(outcome)
        .execute(tx)
        .await?;
    Ok(())
}
