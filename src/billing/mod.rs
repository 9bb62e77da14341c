//! Billing: each org's subscription (status and tier), the billing rule, the plan limits the
//! guard enforces, and the Stripe events that change them.
//!
//! The rule is in one place ([`rule`]): the guard applies it to every gated route, and
//! background work applies it again right before billable execution ([`billable`]: a message
//! queued while the plan was active is not sent after it lapsed).

pub mod plans;
pub mod routes;
pub mod store;
pub mod stripe;

use serde::Serialize;

use crate::config::Config;
use crate::http::routes::Billing;
use crate::http::{ApiError, ErrorCode};

crate::text_enum::text_enum! {
    /// A subscription status: active and trialing pass the billing gate.
    pub enum SubStatus {
        Active = "active",
        Trialing = "trialing",
        PastDue = "past_due",
        Canceled = "canceled",
    }
}

crate::text_enum::text_enum! {
    /// A plan tier: `full` includes the operator routes.
    pub enum Tier {
        Standard = "standard",
        Full = "full",
    }
}

/// An org's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Subscription {
    pub status: SubStatus,
    pub tier: Tier,
}

/// Which of an org's plan limits an override sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanOverride {
    RateLimit,
    Quota,
}

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
            Refusal::TierInsufficient => ApiError::Forbidden(
                ErrorCode::TierInsufficient,
                "this route needs the full tier".into(),
            ),
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

/// The check background work makes right before billable execution, on a subscription it has
/// just read (`None`: the org has none).
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
