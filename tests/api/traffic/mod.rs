//! SPEC §5: rate limits, quotas, the billing gate and events, idempotency.

mod billing;
mod idempotency;
mod limits;
mod redis;

use crate::helpers::*;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        limits::scenarios(),
        idempotency::scenarios(),
        billing::scenarios(),
    ]
    .concat()
}

/// Scenarios that need a real Redis (ignored without RAMPART_TEST_REDIS_URL).
pub fn redis_scenarios() -> Vec<(&'static str, crate::Scenario)> {
    redis::scenarios()
}

pub async fn set_override(app: &TestApp, org: &Org, which: &str, rate: &str) {
    let mut tx = app.state.db.begin().await.unwrap();
    let which = match which {
        "rate_limit" => rampart::billing::PlanOverride::RateLimit,
        _ => rampart::billing::PlanOverride::Quota,
    };
    rampart::billing::store::set_plan_override(
        &mut tx,
        &rampart::ids::OrgId::parse(&org.id).unwrap(),
        which,
        Some(rampart::config::Rate::parse(rate).unwrap()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.state
        .plans
        .forget(&rampart::ids::OrgId::parse(&org.id).unwrap());
}
