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
mod tests {
    use super::*;
    use crate::config::Rate;
    use crate::traffic::limits::LimitKind;

    fn limit(id: &str) -> Limit {
        Limit {
            name: "org",
            id: id.into(),
            rate: Rate::per_second(1_000_000),
            kind: LimitKind::Rate,
        }
    }

    fn outcome() -> Outcome {
        Outcome {
            name: "org",
            kind: LimitKind::Rate,
            rate: Rate::per_second(1_000_000),
            allowed: true,
            remaining: 500,
            reset_ms: 1000,
            retry_after_s: 0,
            retry_after_ms: 0,
        }
    }

    fn leased(t: Take) -> Option<(Vec<Outcome>, Vec<u64>)> {
        match t {
            Take::Leased { outcomes, ahead } => Some((outcomes, ahead)),
            Take::Redis { .. } => None,
        }
    }

    /// A burst of 1000 requests, then the ask of the request that goes to Redis.
    fn busy(leases: &Leases, limits: &[Limit]) -> Vec<u64> {
        for _ in 0..1000 {
            assert!(leased(leases.take(limits)).is_none());
        }
        std::thread::sleep(Duration::from_millis(6));
        leases.ask(limits)
    }

    // Periods are long where a lease must not lapse mid-test on a loaded machine.
    const LONG: Duration = Duration::from_secs(5);

    #[test]
    fn a_quiet_limit_never_leases_and_a_busy_one_does() {
        let quiet = Leases::new(Duration::from_millis(50));
        let l = [limit("a")];
        // First sight: nothing held, nothing to ask for yet (no demand measured).
        assert!(leased(quiet.take(&l)).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(leased(quiet.take(&l)).is_none());
        // About 30 requests a second: under one per half lease period.
        assert_eq!(quiet.ask(&l), vec![0], "two requests in 60 ms is no demand");

        let leases = Leases::new(LONG);
        let asked = busy(&leases, &l);
        assert!(asked[0] >= 2, "asked {asked:?}");
        // While one request is asking, the others ask only for themselves.
        assert_eq!(leases.ask(&l), vec![0]);
        leases.granted(&l, &asked, &[3], &[outcome()]);
        for _ in 0..3 {
            let (o, _) = leased(leases.take(&l)).expect("admitted from the lease");
            assert!(o[0].allowed && o[0].remaining >= 500);
        }
        assert!(
            leased(leases.take(&l)).is_none(),
            "three units, three requests"
        );
    }

    #[test]
    fn a_request_is_admitted_from_leases_only_if_every_limit_has_a_unit() {
        let leases = Leases::new(LONG);
        let both = [limit("a"), limit("b")];
        let asked = busy(&leases, &both);
        assert!(asked.iter().all(|a| *a >= 2));
        // Redis granted units for `a` only (`b` is near its limit).
        leases.granted(&both, &asked, &[5, 0], &[outcome(), outcome()]);
        // Redis decides `b`, with a unit of `a` held for the request meanwhile…
        let Take::Redis { held } = leases.take(&both) else {
            panic!("`b` has no unit: Redis must decide it");
        };
        assert_eq!(held, [true, false]);
        // …and given back when the request is refused.
        leases.release(&both, &held);
        let left = (0..10)
            .take_while(|_| leased(leases.take(&both[..1])).is_some())
            .count();
        assert_eq!(left, 5, "`a` alone can use its whole lease");
    }

    #[test]
    fn a_running_low_lease_is_refilled_ahead_of_need_once() {
        let leases = Leases::new(LONG);
        let l = [limit("a")];
        let asked = busy(&leases, &l);
        leases.granted(&l, &asked, &[10], &[outcome()]);
        let mut refills = Vec::new();
        for _ in 0..10 {
            let (_, ahead) = leased(leases.take(&l)).expect("admitted from the lease");
            if let Some(&a) = ahead.first().filter(|a| **a > 0) {
                refills.push(a);
            }
        }
        // Half of the grant left: one refill asked for, and no second while it runs.
        assert_eq!(refills.len(), 1, "{refills:?}");
        assert!(
            leased(leases.take(&l)).is_none(),
            "the lease is spent until the refill lands"
        );
        leases.granted(&l, &[refills[0]], &[4], &[outcome()]);
        assert!(leased(leases.take(&l)).is_some());
    }

    #[test]
    fn a_quota_lease_never_carries_units_into_the_next_window() {
        let leases = Leases::new(LONG);
        let q = [Limit {
            name: "org_quota",
            id: "q".into(),
            rate: Rate {
                count: 1_000_000,
                period_ms: 60_000,
            },
            kind: LimitKind::Quota,
        }];
        let window = |reset_ms| Outcome {
            kind: LimitKind::Quota,
            reset_ms,
            ..outcome()
        };
        let asked = busy(&leases, &q);
        // Granted 2 s before the window ends: the lease lapses with the window, not later.
        leases.granted(&q, &asked, &[100], &[window(2_000)]);
        let (o, _) = leased(leases.take(&q)).expect("admitted from the lease");
        assert!(o[0].reset_ms <= 2_000);
        // A refill in the same window keeps what is left; one from the next window drops it.
        leases.abandon(&q, &[1]);
        leases.granted(&q, &[1], &[10], &[window(1_990)]);
        let kept = (0..200)
            .take_while(|_| leased(leases.take(&q)).is_some())
            .count();
        assert_eq!(kept, 99 + 10, "same window: leftover kept");
        leases.abandon(&q, &[1]); // the refill the drain asked for
        let asked = busy(&leases, &q);
        assert!(asked[0] >= 2);
        leases.granted(&q, &asked, &[100], &[window(1_000)]);
        leases.abandon(&q, &[1]);
        leases.granted(&q, &[1], &[10], &[window(60_000)]);
        let kept = (0..200)
            .take_while(|_| leased(leases.take(&q)).is_some())
            .count();
        assert_eq!(kept, 10, "next window: only the new grant");
    }

    #[test]
    fn a_quota_lease_lasts_until_its_window_ends_not_a_lease_period() {
        let leases = Leases::new(Duration::from_millis(100));
        let q = [Limit {
            kind: LimitKind::Quota,
            ..limit("q")
        }];
        let asked = busy(&leases, &q);
        let ends_in = |reset_ms| Outcome {
            kind: LimitKind::Quota,
            reset_ms,
            ..outcome()
        };
        leases.granted(&q, &asked, &[100], &[ends_in(400)]);
        std::thread::sleep(Duration::from_millis(200));
        assert!(leased(leases.take(&q)).is_some(), "past the lease period");
        std::thread::sleep(Duration::from_millis(300));
        assert!(leased(leases.take(&q)).is_none(), "past the window's end");
    }

    #[test]
    fn a_rate_lease_lasts_its_period_however_soon_the_rate_would_be_full() {
        let leases = Leases::new(LONG);
        let l = [limit("a")];
        let asked = busy(&leases, &l);
        // A generous rate: Redis reports it full again within a millisecond.
        let soon = Outcome {
            reset_ms: 1,
            ..outcome()
        };
        leases.granted(&l, &asked, &[100], &[soon]);
        std::thread::sleep(Duration::from_millis(20));
        assert!(leased(leases.take(&l)).is_some());
    }

    #[test]
    fn leased_units_lapse() {
        let leases = Leases::new(Duration::from_millis(300));
        let l = [limit("a")];
        let asked = busy(&leases, &l);
        leases.granted(&l, &asked, &[100], &[outcome()]);
        assert!(leased(leases.take(&l)).is_some());
        std::thread::sleep(Duration::from_millis(400));
        assert!(leased(leases.take(&l)).is_none());
    }

    #[test]
    fn turned_off_it_never_holds_anything() {
        let leases = Leases::new(Duration::ZERO);
        let l = [limit("a")];
        for _ in 0..1000 {
            assert!(leased(leases.take(&l)).is_none());
        }
        assert_eq!(leases.ask(&l), vec![0]);
    }
}
