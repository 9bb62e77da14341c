//! Plans: an org's subscription and its limits, as the guard reads them (cached).

use std::time::Duration;

use super::{Subscription, Tier};
use crate::cache::Cache;
use crate::config::{Config, Rate};
use crate::ids::OrgId;
use crate::store::{Db, DbResult};

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
    Ok(match super::store::plan_row(db, org).await? {
        None => Plan::default(),
        Some(r) => Plan {
            subscription: Some(Subscription {
                status: r.status,
                tier: r.tier,
            }),
            rate_limit: r.rate_limit.as_deref().and_then(Rate::parse),
            quota: r.quota.as_deref().and_then(Rate::parse),
        },
    })
}
