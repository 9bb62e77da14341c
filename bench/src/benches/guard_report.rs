//! The guard section of docs/BENCHMARKS.md.

use crate::benches::guard::GuardRun;
use crate::profile::Profile;
use crate::report::markdown::{Table, met, ms3, num, statuses};
use crate::stats::median;
use crate::suite::Suite;

pub fn section(suite: &Suite, runs: &[GuardRun], profile: Option<&Profile>) -> String {
    let k = &suite.knobs;
    let pin = |c: &Option<String>| c.clone().unwrap_or_else(|| "any".into());
    let mut md = format!(
        "## Guard stack overhead\n\n{}\n\n\
One `rampart serve --no-worker` on a fresh SQLite database with `RAMPART_LOG={log}`: warnings only, so no per-request access log lines (the one `info` target left on, `rampart::app`, only logs start-up and shutdown, including the line that carries the bound addresses). `GET /bench/bare` is a 204 behind only the outer conventions middleware (request id, security headers, logging span, metrics); `GET /v1/bench/guarded` is a 204 no-op behind the whole guard stack (API-key auth with its cache, tenant, scope `messages` + permission `read`, billing, per-key and per-org rate limits and quotas). The org is `active`/`full` with its plan limits raised to 1000000/s and 1000000000/day and the key has no limit of its own, so nothing is refused but every limit is still evaluated. Both routes hit the same server in the same run, in alternating runs ({rounds} rounds; tables show medians over the rounds). With Redis (`RAMPART_REDIS_URL`), limits and quotas are decided by the Redis script, the org's two limits (busy here) from leases of units the script grants (`RAMPART_REDIS_LEASE`, default 50 ms; see OPERATIONS.md): the request that finds a lease running low has it refilled in the background, so guarded requests rarely wait for Redis, and Redis still counts every unit. For reference, the last throughput row repeats the in-process case at the default `RAMPART_LOG=info`, where every request writes a JSON access-log line (to a file here).\n\n\
Pinning (`taskset`): server on CPU {scpu}, load generator on CPU {lcpu}; Redis is not pinned and shares the cores. Each run: {warmup} warm-up, then {duration} measured. Closed loop: wrk with {conc} keep-alive connections, each sending its next request as soon as the previous answer arrives (`wrk -c {conc}`). Fixed rate: `rampart-bench open-loop` over {open} connections, latency measured from each request's scheduled send time, so queueing is counted (no coordinated omission).\n\n",
        suite.stamp(),
        log = k.server_log,
        rounds = k.rounds,
        scpu = pin(&k.server_cpus),
        lcpu = pin(&k.load_cpus),
        warmup = crate::units::show_duration(k.warmup),
        duration = crate::units::show_duration(k.duration),
        conc = k.concurrency,
        open = k.open_connections,
    );
    md.push_str(&format!(
        "### Maximum throughput (closed loop, {} connections)\n\n*Guarded / bare* divides the two routes' median req/s. The *median of per-round ratios* pairs each guarded run with the bare run just before it, which cancels the VM's drift between rounds (its speed moved by up to 2× within a day here). The target counts as met only if both reach it.\n\n",
        k.concurrency
    ));
    let mut t = Table::new(
        &[
            "Limiter store",
            "Bare req/s",
            "Guarded req/s",
            "Guarded / bare",
            "Median of per-round ratios",
            "Target",
            "Met (both)",
            "Per-round ratios",
            "Server CPU, bare / guarded",
        ],
        "lrrrrrclr",
    );
    for store in ["memory", "redis", "logs"] {
        let of = |route: &str| -> Vec<&GuardRun> {
            runs.iter()
                .filter(|r| r.store == store && r.route == route && r.run.mode == "closed")
                .collect()
        };
        let (b, g) = (of("bare"), of("guarded"));
        let (Some(bm), Some(gm)) = (
            median(b.iter().map(|r| r.run.throughput_rps)),
            median(g.iter().map(|r| r.run.throughput_rps)),
        ) else {
            continue;
        };
        let per_round: Vec<f64> = b
            .iter()
            .zip(&g)
            .map(|(b, g)| g.run.throughput_rps / b.run.throughput_rps)
            .collect();
        let pm = median(per_round.iter().copied()).unwrap_or(0.0);
        let cpu =
            |v: &[&GuardRun]| median(v.iter().filter_map(|r| r.run.cpu.server)).unwrap_or(0.0);
        let reference = store == "logs";
        t.row(vec![
            if reference {
                "memory, with `RAMPART_LOG=info` access logs (reference)".into()
            } else {
                store.into()
            },
            num(bm, 0),
            num(gm, 0),
            num(gm / bm, 3),
            num(pm, 3),
            if reference {
                "-".into()
            } else {
                "≥ 0.85".into()
            },
            if reference {
                "-".into()
            } else {
                met(gm / bm >= 0.85 && pm >= 0.85)
            },
            per_round
                .iter()
                .map(|r| num(*r, 3))
                .collect::<Vec<_>>()
                .join(", "),
            format!("{} / {}", num(cpu(&b), 2), num(cpu(&g), 2)),
        ]);
    }
    md.push_str(&t.render());
    md.push_str(&format!(
        "\n### Latency at fixed rates both routes sustain\n\nRates: {} req/s, and {} × the slower route's median closed-loop maximum (rounded down to 100). Medians over the rounds of each percentile; the overhead is guarded minus bare.\n\n",
        k.light_rate, k.rate_fraction
    ));
    let mut t = Table::new(
        &[
            "Limiter store",
            "Rate (req/s)",
            "Bare p50",
            "Bare p99",
            "Guarded p50",
            "Guarded p99",
            "p50 overhead",
            "p99 overhead",
            "Target (p99)",
            "Met",
        ],
        "lrrrrrrrrc",
    );
    for store in ["memory", "redis"] {
        let mut rates: Vec<u64> = runs
            .iter()
            .filter(|r| r.store == store && r.run.mode == "open")
            .filter_map(|r| r.run.target_rate.map(|t| t as u64))
            .collect();
        rates.dedup();
        for rate in rates {
            let pct = |route: &str, p: fn(&crate::stats::Percentiles) -> f64| {
                median(
                    runs.iter()
                        .filter(|r| {
                            r.store == store
                                && r.route == route
                                && r.run.target_rate.map(|t| t as u64) == Some(rate)
                        })
                        .filter_map(|r| r.run.latency_ms.as_ref().map(p)),
                )
                .unwrap_or(f64::NAN)
            };
            let (b50, b99) = (pct("bare", |l| l.p50), pct("bare", |l| l.p99));
            let (g50, g99) = (pct("guarded", |l| l.p50), pct("guarded", |l| l.p99));
            t.row(vec![
                store.into(),
                rate.to_string(),
                ms3(Some(b50)),
                ms3(Some(b99)),
                ms3(Some(g50)),
                ms3(Some(g99)),
                ms3(Some(g50 - b50)),
                ms3(Some(g99 - b99)),
                "≤ 0.5 ms".into(),
                met(g99 - b99 <= 0.5),
            ]);
        }
    }
    md.push_str(&t.render());
    if let Some(p) = profile {
        md.push_str("\n### Where the guarded route's server CPU goes (in-memory store)\n\nA separate closed-loop run of the guarded route (wrk) under `perf record -F 499 --call-graph dwarf` (4 s, server only). Inclusive share of the server process's samples for each Rampart function above 0.5 %; nested functions are counted in their callers too. *guard* is the whole guard stack, the part the bare route does not pay; the rest (conventions middleware, metrics, hyper and the kernel's socket writes) is common to both routes.\n\n");
        md.push_str(&crate::profile::table(p));
    }
    md.push_str(&format!(
        "\n### Every run\n\nLatency in ms. Closed loop (wrk): send → response. Open loop: scheduled send → response; *lag p99* is how late the generator got requests out relative to the schedule (its own scheduling jitter plus any wait for a free connection, included in the latency), and *send→resp p99* is the latency without it. CPU in cores over the measured window (1.00 = one core throughout); *rest* is the whole machine minus server, generator and Redis: the kernel's own work, or other jobs on this shared machine. A run with more than {} cores of *rest* was repeated (*attempts*), up to {} times.\n\n",
        k.max_rest, k.attempts
    ));
    md.push_str(&every_run(runs));
    md
}

fn every_run(runs: &[GuardRun]) -> String {
    let mut t = Table::new(
        &[
            "Store",
            "Route",
            "Mode",
            "Round",
            "req/s",
            "Statuses",
            "Errors",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "Lag p99",
            "Send→resp p99",
            "CPU server",
            "CPU generator",
            "CPU Redis",
            "CPU rest",
            "Attempts",
        ],
        "lllrrlrrrrrrrrrrrrr",
    );
    let r3 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| num(v, 3));
    let r2 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| num(v, 2));
    for g in runs {
        let r = &g.run;
        let l = r.latency_ms.as_ref();
        t.row(vec![
            g.store.clone(),
            g.route.clone(),
            match r.target_rate {
                Some(rate) => format!("open @{rate}/s"),
                None => format!("closed ×{}", r.connections),
            },
            g.round.to_string(),
            num(r.throughput_rps, 0),
            statuses(&r.status),
            (r.errors + r.unsent).to_string(),
            r3(l.map(|l| l.p50)),
            r3(l.map(|l| l.p90)),
            r3(l.map(|l| l.p99)),
            r3(l.map(|l| l.p999)),
            r3(l.map(|l| l.max)),
            r3(r.send_lag_ms.as_ref().map(|l| l.p99)),
            r3(r.service_ms.as_ref().map(|l| l.p99)),
            r2(r.cpu.server),
            r2(r.cpu.generator),
            r2(r.cpu.helpers),
            r2(r.cpu.rest),
            r.attempts.to_string(),
        ]);
    }
    t.render()
}
