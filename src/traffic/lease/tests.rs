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
