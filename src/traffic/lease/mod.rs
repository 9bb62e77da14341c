//! Leases: a busy limit's units taken from Redis a few at a time, so that most requests on a
//! hot key are decided in-process while Redis stays the only place units are counted.
//!
//! When a request has to go to Redis anyway, it may ask, for each of its limits, for some extra
//! units besides its own. The script grants them only out of what is left after admitting the
//! request, and never more than a sixteenth of that, so several instances near a limit get
//! nothing extra and every decision near a limit is made by Redis itself. Granted units are
//! consumed in Redis at once: a lease can only under-admit (units a quiet instance holds until
//! they lapse), never let the instances together past a limit. A rate's lease lapses after
//! `RAMPART_REDIS_LEASE`, which bounds how far a leased unit can drift in time from when Redis
//! counted it; a quota's lasts until its window ends (drift within a window does not matter,
//! and an earlier lapse would only lose units).
//!
//! Lease sizes follow demand: an instance asks for about what it expects to use in half a lease
//! period, measured per limit, and nothing for a limit seeing a few requests per second, which
//! therefore stays exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::limit::{Limit, LimitKind, Outcome};
use crate::cache::FastHash;

/// The most units one lease holds. Half a period of demand at 100k requests/s is about 2,500
/// units; capped at 1,024, a busy limit was refilled every ~500 requests (about 200 Redis round
/// trips a second per instance), which cost the guarded route ~3 % of its throughput with Redis
/// on the same cores. What a quiet instance can strand stays bounded: units lapse with the
/// lease, and the script never grants more than a sixteenth of what is left.
const MAX_LEASE: u64 = 4096;

#[derive(Debug)]
struct Lease {
    /// Units this instance may still admit without asking Redis.
    units: u64,
    /// At or below this many units, a refill is asked for ahead of need (half the last grant).
    low: u64,
    /// When the units lapse.
    until: Instant,
    /// What Redis reported as left for everyone after the last grant, and when the limit
    /// resets; shown in the RateLimit fields of requests admitted from the lease.
    remaining: u64,
    reset_at: Instant,
    /// A request is already asking for more; others ask only for themselves meanwhile.
    refilling: bool,
    /// Requests seen since `since`, and the demand estimate (requests per second).
    seen: u64,
    since: Instant,
    demand: f64,
}

impl Lease {
    fn new(now: Instant) -> Lease {
        Lease {
            units: 0,
            low: 0,
            until: now,
            remaining: 0,
            reset_at: now,
            refilling: false,
            seen: 0,
            since: now,
            demand: 0.0,
        }
    }

    fn usable(&self, now: Instant) -> bool {
        self.units > 0 && now < self.until
    }

    /// The units to ask for a lease covering `span` of demand, marking the lease as refilling
    /// (zero, and nothing marked, when a refill is already on its way or demand is too low).
    fn want(&mut self, now: Instant, span: f64) -> u64 {
        if self.refilling {
            return 0;
        }
        let want = ((self.estimate(now) * span) as u64).min(MAX_LEASE);
        if want < 2 {
            return 0;
        }
        self.refilling = true;
        want
    }

    /// Updates the demand estimate from the requests seen since the last estimate.
    fn estimate(&mut self, now: Instant) -> f64 {
        let elapsed = now.duration_since(self.since).as_secs_f64();
        if elapsed >= 0.005 {
            let rate = self.seen as f64 / elapsed;
            self.demand = if self.demand == 0.0 {
                rate
            } else {
                0.5 * self.demand + 0.5 * rate
            };
            self.seen = 0;
            self.since = now;
        }
        self.demand
    }
}

/// What [`Leases::take`] decided for a request.
#[derive(Debug)]
pub enum Take {
    /// Admitted from leases alone. `ahead`: units to ask for ahead of need, per limit, where
    /// a lease is running low (empty or all zero: none); those limits are marked as refilling, and
    /// [`Leases::granted`] or [`Leases::abandon`] must follow.
    Leased {
        outcomes: Vec<Outcome>,
        ahead: Vec<u64>,
    },
    /// Redis must decide the limits not `held`. A unit of each held limit is reserved for the
    /// request: [`Leases::release`] gives them back if it is not admitted.
    Redis { held: Vec<bool> },
}

/// The leases of one instance, per limit id.
pub struct Leases {
    period: Duration,
    entries: Mutex<HashMap<Arc<str>, Lease, FastHash>>,
}

impl Leases {
    /// `period` zero turns leasing off: every decision goes to Redis.
    pub fn new(period: Duration) -> Leases {
        Leases {
            period,
            entries: Mutex::new(HashMap::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.period.is_zero()
    }

    /// A lease is sized for half a period of demand, so it is usually spent before it lapses.
    fn span(&self) -> f64 {
        self.period.as_secs_f64() / 2.0
    }

    /// Admits the request from the leases if every one of its limits has a unit. Otherwise
    /// reserves a unit of each limit that has one, so that Redis decides only the others and
    /// a lease is never stranded behind another limit's (see [`Take::Redis`]). Either way the
    /// request counts towards demand.
    pub fn take(&self, limits: &[Limit]) -> Take {
        // Which limits hold a unit, and which run low, as bit sets: this runs on every request
        // of a busy key, and admitting it from leases then allocates nothing but its answer.
        if !self.enabled() || limits.len() > 64 {
            return Take::Redis {
                held: vec![false; limits.len()],
            };
        }
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // One lookup per limit: what the request would be answered if every limit has a
        // unit is built on the way, and dropped if one has not.
        let (mut held, mut low) = (0u64, 0u64);
        let mut outcomes = Vec::with_capacity(limits.len());
        for (i, l) in limits.iter().enumerate() {
            // (No entry API: it would copy the id on every request.)
            match map.get_mut(&*l.id) {
                Some(lease) => {
                    lease.seen += 1;
                    if lease.usable(now) {
                        lease.units -= 1;
                        held |= 1 << i;
                        if lease.units <= lease.low {
                            low |= 1 << i;
                        }
                        outcomes.push(Outcome {
                            name: l.name,
                            kind: l.kind,
                            rate: l.rate,
                            allowed: true,
                            remaining: lease.remaining + lease.units,
                            reset_ms: lease.reset_at.saturating_duration_since(now).as_millis()
                                as u64,
                            retry_after_s: 0,
                            retry_after_ms: 0,
                        });
                    }
                }
                None => {
                    let mut lease = Lease::new(now);
                    lease.seen = 1;
                    map.insert(l.id.clone(), lease);
                }
            }
        }
        if held.count_ones() as usize != limits.len() {
            return Take::Redis {
                held: (0..limits.len()).map(|i| held & (1 << i) != 0).collect(),
            };
        }
        let mut ahead = Vec::new();
        if low != 0 {
            ahead = vec![0; limits.len()];
            for (i, l) in limits
                .iter()
                .enumerate()
                .filter(|(i, _)| low & (1 << i) != 0)
            {
                if let Some(lease) = map.get_mut(&*l.id) {
                    ahead[i] = lease.want(now, self.span());
                }
            }
        }
        Take::Leased { outcomes, ahead }
    }

    /// Gives back the units [`Leases::take`] reserved for a request that was not admitted.
    pub fn release(&self, limits: &[Limit], held: &[bool]) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (l, _) in limits.iter().zip(held).filter(|(_, h)| **h) {
            if let Some(lease) = map.get_mut(&*l.id) {
                lease.units += 1;
            }
        }
    }

    /// How many extra units to ask Redis for, per limit, on a request that goes there: about
    /// half a period's demand where the lease is running out and nobody is already asking.
    /// Marks those limits as refilling; [`Leases::granted`] or [`Leases::abandon`] must follow.
    pub fn ask(&self, limits: &[Limit]) -> Vec<u64> {
        if !self.enabled() {
            return vec![0; limits.len()];
        }
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .iter()
            .map(|l| match map.get_mut(&*l.id) {
                Some(lease) if !lease.usable(now) => lease.want(now, self.span()),
                _ => 0,
            })
            .collect()
    }

    /// Adds what Redis granted (`outcomes` come from the same reply).
    pub fn granted(&self, limits: &[Limit], asked: &[u64], grants: &[u64], outcomes: &[Outcome]) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (i, l) in limits.iter().enumerate() {
            if asked[i] == 0 {
                continue;
            }
            let Some(lease) = map.get_mut(&*l.id) else {
                continue;
            };
            lease.refilling = false;
            let granted = grants.get(i).copied().unwrap_or(0);
            if granted == 0 {
                continue;
            }
            let reset_at = now + Duration::from_millis(outcomes[i].reset_ms);
            // Units left from an earlier grant are kept only while usable, and for a quota only
            // within the window Redis counted them in (a new window resets a full period later).
            let same_window = l.kind == LimitKind::Rate
                || reset_at.saturating_duration_since(lease.reset_at)
                    < Duration::from_millis(l.rate.period_ms / 2);
            let kept = if lease.usable(now) && same_window {
                lease.units
            } else {
                0
            };
            lease.units = kept + granted;
            lease.low = granted / 2;
            // A rate's units must be used close to when Redis counted them; a quota's only
            // within their window, and lapsing earlier would just lose them.
            // (A rate's reset is when it would be full again, not a bound on the lease: with a
            // generous rate it is a few microseconds away.)
            lease.until = match l.kind {
                LimitKind::Rate => now + self.period,
                LimitKind::Quota => reset_at,
            };
            lease.remaining = outcomes[i].remaining;
            lease.reset_at = reset_at;
        }
    }

    /// The request that asked did not reach Redis: let the next one ask.
    pub fn abandon(&self, limits: &[Limit], asked: &[u64]) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (i, l) in limits.iter().enumerate() {
            if asked[i] > 0
                && let Some(lease) = map.get_mut(&*l.id)
            {
                lease.refilling = false;
            }
        }
    }

    /// Forgets limits that have been quiet for a while.
    pub fn prune(&self) {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, l| {
            l.refilling || now.duration_since(l.since) < Duration::from_secs(60) || l.usable(now)
        });
    }
}

#[cfg(test)]
mod tests;
