//! Rate limits (GCRA) and quotas (fixed windows) behind one interface with two stores:
//! in-process, and Redis (one Lua script evaluates every limit that applies to a request,
//! atomically, on Redis's clock; busy limits are served from short leases of units taken from
//! Redis, see `lease.rs`). A request is admitted only if every limit admits it, and only an
//! admitted request consumes anything.
//!
//! When Redis is slow or down, each call gives up after `RAMPART_REDIS_TIMEOUT` and a circuit
//! breaker stops trying for a while: rate limits fall back to this instance's own limiter,
//! quotas fail open (counted, logged, and reported as `quota_store_degraded`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cache::FastHash;
use crate::clock::now_ms;

use super::lease::{Leases, Take};
pub use super::limit::{Decision, Limit, LimitKind, Outcome, gcra};
use super::limit::{ceil_s, emission_us, quota_window};
use super::redis_store::RedisStore;

/// The in-process store: GCRA arrival times and quota windows.
#[derive(Default)]
struct Local {
    tats: HashMap<Arc<str>, i64, FastHash>,
    windows: HashMap<Arc<str>, (i64, u64), FastHash>,
}

impl Local {
    /// Charges each limit in the same lookup that reads it, as long as every limit before it
    /// admitted; if one refuses, the charges made are taken back, so a refused request
    /// consumes nothing. Refusals being the rare case, an admitted request costs one lookup
    /// per limit rather than a read and a write.
    fn check(&mut self, limits: &[Limit], now_ms: i64, count_quotas: bool) -> Vec<Outcome> {
        let now_us = now_ms * 1000;
        let mut out = Vec::with_capacity(limits.len());
        let mut first_refusal = None;
        for (i, l) in limits.iter().enumerate() {
            let charge = first_refusal.is_none();
            let o = match l.kind {
                LimitKind::Rate => {
                    let tat = self.tats.get_mut(&*l.id);
                    let (ok, new_tat, remaining, reset, retry) =
                        gcra(tat.as_deref().copied(), now_us, l.rate);
                    if ok && charge {
                        match tat {
                            Some(t) => *t = new_tat,
                            None => {
                                self.tats.insert(l.id.clone(), new_tat);
                            }
                        }
                    }
                    Outcome {
                        name: l.name,
                        kind: l.kind,
                        rate: l.rate,
                        allowed: ok,
                        remaining,
                        reset_ms: (reset.max(0) as u64).div_ceil(1000),
                        retry_after_s: ceil_s(retry).max(u64::from(!ok)),
                        retry_after_ms: (retry.max(0) as u64).div_ceil(1000),
                    }
                }
                LimitKind::Quota => {
                    let window = quota_window(now_ms, l.rate);
                    let period = i64::try_from(l.rate.period_ms).unwrap_or(i64::MAX / 2);
                    let entry = self.windows.get_mut(&*l.id);
                    let used = match &entry {
                        Some((w, n)) if *w == window => *n,
                        _ => 0,
                    };
                    let limit = u64::from(l.rate.count);
                    let ok = !count_quotas || used < limit;
                    if ok && charge && count_quotas {
                        match entry {
                            Some(e) if e.0 == window => e.1 += 1,
                            Some(e) => *e = (window, 1),
                            None => {
                                self.windows.insert(l.id.clone(), (window, 1));
                            }
                        }
                    }
                    let reset = (window + period - now_ms) * 1000;
                    Outcome {
                        name: l.name,
                        kind: l.kind,
                        rate: l.rate,
                        allowed: ok,
                        remaining: limit.saturating_sub(used + u64::from(ok)),
                        reset_ms: (reset.max(0) as u64).div_ceil(1000),
                        retry_after_s: if ok { 0 } else { ceil_s(reset).max(1) },
                        retry_after_ms: if ok {
                            0
                        } else {
                            (reset.max(0) as u64).div_ceil(1000)
                        },
                    }
                }
            };
            if !o.allowed && first_refusal.is_none() {
                first_refusal = Some(i);
            }
            out.push(o);
        }
        if let Some(refused) = first_refusal {
            for l in &limits[..refused] {
                match l.kind {
                    // The charge moved the arrival time to max(tat, now) + T: one step back
                    // is a state GCRA treats exactly as the one before.
                    LimitKind::Rate => {
                        if let Some(t) = self.tats.get_mut(&*l.id) {
                            *t -= emission_us(l.rate);
                        }
                    }
                    LimitKind::Quota if count_quotas => {
                        let window = quota_window(now_ms, l.rate);
                        if let Some(e) = self.windows.get_mut(&*l.id)
                            && e.0 == window
                        {
                            e.1 = e.1.saturating_sub(1);
                        }
                    }
                    LimitKind::Quota => {}
                }
            }
        }
        out
    }

    /// Forgets state that can no longer affect a decision.
    fn prune(&mut self, now_ms: i64) {
        let now_us = now_ms * 1000;
        self.tats.retain(|_, tat| *tat > now_us);
        self.windows
            .retain(|_, (w, _)| *w + 86_400_000 * 31 > now_ms);
    }
}

/// Tops up running-low leases in the background, so that a busy limit's requests rarely wait
/// for Redis.
async fn refill(redis: Arc<RedisStore>, leases: Arc<Leases>, limits: Vec<Limit>, ahead: Vec<u64>) {
    match redis
        .check(&limits, &ahead, &vec![false; limits.len()])
        .await
    {
        Ok((outcomes, grants)) => leases.granted(&limits, &ahead, &grants, &outcomes),
        Err(_) => leases.abandon(&limits, &ahead),
    }
}

/// Counters reported by `/metrics` and `/health/deep`.
#[derive(Default)]
pub struct LimitStats {
    pub redis_fallbacks: AtomicU64,
    pub quota_fail_opens: AtomicU64,
    pub last_degraded_ms: AtomicI64,
    /// Requests admitted from leases without a Redis round trip.
    pub leased: AtomicU64,
}

/// The limiter every guard uses.
pub struct Limiter {
    local: Mutex<Local>,
    redis: Option<Arc<RedisStore>>,
    leases: Arc<Leases>,
    pub stats: LimitStats,
}

impl Limiter {
    /// `lease` is how long units leased from Redis stay usable (zero: no leases).
    pub fn new(redis: Option<Arc<RedisStore>>, lease: std::time::Duration) -> Limiter {
        Limiter {
            local: Mutex::new(Local::default()),
            redis,
            leases: Arc::new(Leases::new(lease)),
            stats: LimitStats::default(),
        }
    }

    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        self.redis.as_ref()
    }

    /// Checks every limit at once, as of `now` (Unix ms) for the in-process store; consumes
    /// only if all admit.
    pub async fn check(&self, limits: &[Limit], now: i64) -> Decision {
        if limits.is_empty() {
            return Decision {
                outcomes: Vec::new(),
                failed_open: false,
            };
        }
        if let Some(redis) = &self.redis {
            let held = match self.leases.take(limits) {
                Take::Leased { outcomes, ahead } => {
                    if ahead.iter().any(|a| *a > 0) {
                        tokio::spawn(refill(
                            redis.clone(),
                            self.leases.clone(),
                            limits.to_vec(),
                            ahead,
                        ));
                    }
                    // Published as `rampart_limiter_leased_total` at scrape time.
                    self.stats.leased.fetch_add(1, Ordering::Relaxed);
                    return Decision {
                        outcomes,
                        failed_open: false,
                    };
                }
                Take::Redis { held } => held,
            };
            let asked = self.leases.ask(limits);
            let own: Vec<bool> = held.iter().map(|h| !h).collect();
            // Boxed: a request admitted from leases carries no room for a Redis call.
            match Box::pin(redis.check(limits, &asked, &own)).await {
                Ok((outcomes, grants)) => {
                    self.leases.granted(limits, &asked, &grants, &outcomes);
                    let d = Decision {
                        outcomes,
                        failed_open: false,
                    };
                    if !d.allowed() {
                        self.leases.release(limits, &held);
                    }
                    return d;
                }
                Err(e) => {
                    self.leases.abandon(limits, &asked);
                    self.leases.release(limits, &held);
                    self.stats.redis_fallbacks.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .last_degraded_ms
                        .store(now_ms(), Ordering::Relaxed);
                    metrics::counter!("rampart_limiter_redis_fallback_total").increment(1);
                    let has_quota = limits.iter().any(|l| l.kind == LimitKind::Quota);
                    if has_quota {
                        self.stats.quota_fail_opens.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("rampart_quota_fail_open_total").increment(1);
                    }
                    tracing::warn!(error = %e, quota_fail_open = has_quota, "limit store unavailable: rate limits local, quotas fail open");
                    let outcomes = self.local_check(limits, now, false);
                    return Decision {
                        outcomes,
                        failed_open: has_quota,
                    };
                }
            }
        }
        Decision {
            outcomes: self.local_check(limits, now, true),
            failed_open: false,
        }
    }

    fn local_check(&self, limits: &[Limit], now: i64, count_quotas: bool) -> Vec<Outcome> {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.check(limits, now, count_quotas)
    }

    pub fn prune(&self) {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.prune(now_ms());
        drop(local);
        self.leases.prune();
    }

    /// Whether the shared store answers a PING (`None`: there is none). A failed ping is this
    /// instance not reaching it, as a failed limit call is: [`Self::degraded_within`] says so.
    pub async fn ping_shared_store(&self) -> Option<bool> {
        let redis = self.redis.as_ref()?;
        let ok = redis.ping().await;
        if !ok {
            self.stats
                .last_degraded_ms
                .store(now_ms(), Ordering::Relaxed);
        }
        Some(ok)
    }

    /// Whether the shared store was unavailable within the last `window_ms`.
    pub fn degraded_within(&self, window_ms: i64) -> bool {
        let last = self.stats.last_degraded_ms.load(Ordering::Relaxed);
        (last > 0 && now_ms() - last < window_ms)
            || self.redis.as_ref().is_some_and(|r| r.breaker_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;

    fn lim(kind: LimitKind, count: u32, period_ms: u64) -> Limit {
        Limit {
            name: "t",
            id: "x".into(),
            rate: Rate { count, period_ms },
            kind,
        }
    }

    #[test]
    fn gcra_admits_a_burst_then_spaces_requests() {
        let rate = Rate::per_second(5);
        let mut tat = None;
        let now = 1_000_000_000;
        let mut admitted = 0;
        for _ in 0..10 {
            let (ok, t, ..) = gcra(tat, now, rate);
            if ok {
                admitted += 1;
                tat = Some(t);
            }
        }
        assert_eq!(admitted, 5);
        // One emission interval (200 ms) later, exactly one more.
        let (ok, t, ..) = gcra(tat, now + 200_000, rate);
        assert!(ok);
        let (ok, _, _, _, retry) = gcra(Some(t), now + 200_000, rate);
        assert!(!ok);
        assert!(retry > 0 && retry <= 200_000);
    }

    #[test]
    fn quotas_count_admitted_requests_only() {
        let mut l = Local::default();
        let q = lim(LimitKind::Quota, 2, 86_400_000);
        let r = Limit {
            id: "r".into(),
            ..lim(LimitKind::Rate, 1, 60_000)
        };
        let now = 1_700_000_000_000;
        assert!(
            l.check(&[q.clone(), r.clone()], now, true)
                .iter()
                .all(|o| o.allowed)
        );
        // The rate limit refuses: the quota must not be consumed.
        assert!(
            !l.check(&[q.clone(), r.clone()], now, true)
                .iter()
                .all(|o| o.allowed)
        );
        assert!(
            l.check(std::slice::from_ref(&q), now, true)
                .iter()
                .all(|o| o.allowed)
        );
        let third = l.check(&[q], now, true);
        assert!(!third[0].allowed);
        assert!(third[0].retry_after_s > 0);
    }

    #[test]
    fn a_refused_request_consumes_no_rate_limit() {
        let mut l = Local::default();
        let a = Limit {
            id: "a".into(),
            ..lim(LimitKind::Rate, 3, 60_000)
        };
        let b = Limit {
            id: "b".into(),
            ..lim(LimitKind::Rate, 1, 60_000)
        };
        let both = [a.clone(), b];
        let now = 1_700_000_000_000;
        assert!(l.check(&both, now, true).iter().all(|o| o.allowed));
        for _ in 0..10 {
            let out = l.check(&both, now, true);
            assert!(out[0].allowed && !out[1].allowed);
        }
        // Only the first request charged `a`: the next one leaves 1 of its 3, then 0.
        let alone = std::slice::from_ref(&a);
        assert_eq!(l.check(alone, now, true)[0].remaining, 1);
        assert!(l.check(alone, now, true)[0].allowed);
        assert!(!l.check(alone, now, true)[0].allowed);
    }
}
