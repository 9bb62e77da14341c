//! What one limit is, what checking it decides, and the GCRA and quota-window arithmetic both
//! stores (in-process and Redis, with its leases) share.

use std::sync::Arc;

use crate::config::Rate;

/// One limit to check: a GCRA rate or a fixed-window quota.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Policy name shown in the RateLimit headers (`key`, `org`, `ip`, `quota`…).
    pub name: &'static str,
    /// What is limited, e.g. `key:key_01…` or `ip:/v1/auth/login:203.0.113.9`. Shared: a cached
    /// key's ids are built once, not per request.
    pub id: Arc<str>,
    pub rate: Rate,
    pub kind: LimitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Rate,
    Quota,
}

/// The outcome of one limit.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub kind: LimitKind,
    pub rate: Rate,
    pub allowed: bool,
    pub remaining: u64,
    /// Milliseconds until the limit resets (quota window end, or GCRA back to full).
    pub reset_ms: u64,
    /// On refusal: seconds until a retry can succeed.
    pub retry_after_s: u64,
    /// The same, in milliseconds (for work that waits itself rather than telling a client).
    pub retry_after_ms: u64,
}

/// The outcome of a whole check.
#[derive(Debug, Clone)]
pub struct Decision {
    pub outcomes: Vec<Outcome>,
    /// Quotas were not counted because their store was unavailable.
    pub failed_open: bool,
}

impl Outcome {
    /// Seconds until the limit resets, rounded up (as the RateLimit fields show it).
    pub fn reset_s(&self) -> u64 {
        self.reset_ms.div_ceil(1000)
    }
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.outcomes.iter().all(|o| o.allowed)
    }

    /// The first refusal, rate limits before quotas.
    pub fn refusal(&self) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| !o.allowed)
            .min_by_key(|o| (o.kind == LimitKind::Quota) as u8)
    }
}

/// GCRA arithmetic on microseconds: `tat` is the theoretical arrival time of the next request.
/// Returns (allowed, new tat, remaining, reset_us, retry_after_us).
pub fn gcra(tat: Option<i64>, now: i64, rate: Rate) -> (bool, i64, u64, i64, i64) {
    let period = period_us(rate);
    let t = emission_us(rate);
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + t;
    let allow_at = new_tat - period;
    if now < allow_at {
        let remaining = 0;
        return (false, tat, remaining, tat - now, allow_at - now);
    }
    let remaining = ((period - (new_tat - now)) / t).max(0) as u64;
    (true, new_tat, remaining, new_tat - now, 0)
}

pub(super) fn period_us(rate: Rate) -> i64 {
    i64::try_from(rate.period_ms).unwrap_or(i64::MAX / 4_000) * 1000
}

/// GCRA's emission interval: the period divided by the count, in microseconds.
pub(super) fn emission_us(rate: Rate) -> i64 {
    (period_us(rate) / i64::from(rate.count)).max(1)
}

/// The start of the fixed quota window `now_ms` falls in.
pub(super) fn quota_window(now_ms: i64, rate: Rate) -> i64 {
    let period = i64::try_from(rate.period_ms).unwrap_or(i64::MAX / 2);
    now_ms - now_ms.rem_euclid(period)
}

pub(super) fn ceil_s(us: i64) -> u64 {
    (us.max(0) as u64).div_ceil(1_000_000)
}
