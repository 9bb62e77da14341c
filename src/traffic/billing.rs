//! The billing rule, in one place: the guard applies it to every gated route, and background
//! work applies it again right before billable execution (a message queued while the plan was
//! active is not sent after it lapsed).

use std::time::Duration;

use crate::cache::Cache;
use crate::config::{Config, Rate};
use crate::http::ApiError;
use crate::http::routes::Billing;
use crate::ids::OrgId;
use crate::orgs::{self, SubStatus, Subscription, Tier};
use crate::store::{Db, DbResult, Exec};

/// Why billable work is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Inactive,
    TierInsufficient,
}

impl Refusal {
    pub fn into_api_error(self) -> ApiError {
        match self {
            Refusal::Inactive => ApiError::PaymentRequired(
                "the org's subscription is not active; update billing to continue".into(),
            ),
            Refusal::TierInsufficient => {
                ApiError::Forbidden("tier_insufficient", "this route needs the full tier".into())
            }
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Refusal::Inactive => "subscription_inactive",
            Refusal::TierInsufficient => "tier_insufficient",
        }
    }
}

/// The rule itself. No subscription at all counts as inactive.
pub fn rule(sub: Option<Subscription>, need: Billing) -> Result<(), Refusal> {
    if need == Billing::None {
        return Ok(());
    }
    let Some(sub) = sub else {
        return Err(Refusal::Inactive);
    };
    if !matches!(sub.status, SubStatus::Active | SubStatus::Trialing) {
        return Err(Refusal::Inactive);
    }
    if need == Billing::Full && sub.tier != Tier::Full {
        return Err(Refusal::TierInsufficient);
    }
    Ok(())
}

/// The org's plan limits: its own overrides, else its tier's defaults.
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    pub rate_limit: Rate,
    pub quota: Rate,
}

pub fn plan_limits(config: &Config, plan: &Plan) -> PlanLimits {
    let (r, q) = match plan.subscription.map(|s| s.tier) {
        Some(Tier::Full) => (config.plan_full_rate_limit, config.plan_full_quota),
        _ => (config.plan_standard_rate_limit, config.plan_standard_quota),
    };
    PlanLimits {
        rate_limit: plan.rate_limit.unwrap_or(r),
        quota: plan.quota.unwrap_or(q),
    }
}

/// What the guard needs to know about an org's plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    pub subscription: Option<Subscription>,
    pub rate_limit: Option<Rate>,
    pub quota: Option<Rate>,
}

/// Plans cached for two seconds: a billing event takes effect everywhere within that.
pub struct PlanCache {
    entries: Cache<OrgId, Plan>,
}

impl Default for PlanCache {
    fn default() -> Self {
        PlanCache {
            entries: Cache::new(100_000),
        }
    }
}

const TTL: Duration = Duration::from_secs(2);

impl PlanCache {
    /// The org's plan as of `now`.
    pub async fn get(&self, db: &Db, org: &OrgId, now: i64) -> DbResult<Plan> {
        self.entries
            .get_or_load(org, TTL, now, async || load(db, org).await)
            .await
    }

    pub fn forget(&self, org: &OrgId) {
        self.entries.remove(org);
    }
}

async fn load(db: &Db, org: &OrgId) -> DbResult<Plan> {
    let row = crate::store::sql(
        "SELECT status, tier, rate_limit, quota FROM subscriptions WHERE org_id = $1",
    )
    .bind(org)
    .fetch_optional(&mut db.clone())
    .await?;
    let Some(r) = row else {
        return Ok(Plan::default());
    };
    let subscription = SubStatus::parse(&r.get::<String>("status")?)
        .zip(Tier::parse(&r.get::<String>("tier")?))
        .map(|(status, tier)| Subscription { status, tier });
    Ok(Plan {
        subscription,
        rate_limit: r
            .get::<Option<String>>("rate_limit")?
            .and_then(|s| Rate::parse(&s)),
        quota: r
            .get::<Option<String>>("quota")?
            .and_then(|s| Rate::parse(&s)),
    })
}

/// The check background work makes right before billable execution (uncached).
pub async fn assert_billable(
    ex: &mut impl Exec,
    config: &Config,
    org: &OrgId,
) -> DbResult<Result<(), Refusal>> {
    if !config.billing_enforce {
        return Ok(Ok(()));
    }
    let sub = orgs::subscription(ex, org).await?;
    Ok(billable(config, sub))
}

/// [`assert_billable`] for a subscription the caller has already read (`None`: the org has none).
pub fn billable(config: &Config, sub: Option<Subscription>) -> Result<(), Refusal> {
    if !config.billing_enforce {
        return Ok(());
    }
    rule(sub, Billing::Standard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(status: SubStatus, tier: Tier) -> Option<Subscription> {
        Some(Subscription { status, tier })
    }

    #[test]
    fn the_rule() {
        assert_eq!(rule(None, Billing::None), Ok(()));
        assert_eq!(rule(None, Billing::Standard), Err(Refusal::Inactive));
        assert_eq!(
            rule(sub(SubStatus::Trialing, Tier::Standard), Billing::Standard),
            Ok(())
        );
        assert_eq!(
            rule(sub(SubStatus::PastDue, Tier::Full), Billing::Standard),
            Err(Refusal::Inactive)
        );
        assert_eq!(
            rule(sub(SubStatus::Canceled, Tier::Full), Billing::Full),
            Err(Refusal::Inactive)
        );
        assert_eq!(
            rule(sub(SubStatus::Active, Tier::Standard), Billing::Full),
            Err(Refusal::TierInsufficient)
        );
        assert_eq!(
            rule(sub(SubStatus::Active, Tier::Full), Billing::Full),
            Ok(())
        );
    }
}
