//! guard: the full guard stack against the bare route, on the same server in the same run,
//! with the in-process limiter and with Redis (and, for reference, with access logs on).
//! Maximum throughput with wrk (closed loop); latency at fixed rates with our open loop.

use serde::{Deserialize, Serialize};

use crate::cpu::Watch;
use crate::procs::rampart::{Env, Launch};
use crate::stats::median;
use crate::suite::Suite;
use crate::tools::{self, LoadRun, Target};

#[derive(Clone, Serialize, Deserialize)]
pub struct GuardRun {
    /// `memory`, `redis` or `logs` (in-process limiter with `RAMPART_LOG=info`).
    pub store: String,
    /// `bare` or `guarded`.
    pub route: String,
    pub round: usize,
    #[serde(flatten)]
    pub run: LoadRun,
}

/// The routes' paths (the `bench-routes` feature).
pub const BARE: &str = "/bench/bare";
pub const GUARDED: &str = "/v1/bench/guarded";

pub async fn run(suite: &Suite) -> anyhow::Result<()> {
    let k = &suite.knobs;
    let mut runs: Vec<GuardRun> = Vec::new();
    let mut profile = None;
    for store in &k.guard_stores {
        eprintln!("guard: configuration {store}");
        let dir = suite.tmp.join(format!("guard-{store}"));
        std::fs::create_dir_all(&dir)?;
        let level = if store == "logs" {
            "info"
        } else {
            k.server_log.as_str()
        };
        let mut env = Env::new()
            .set(
                "RAMPART_DATABASE_URL",
                format!("sqlite://{}/r.db", dir.display()),
            )
            .set("RAMPART_DATA_DIR", dir.display().to_string())
            .set("RAMPART_LOG", level);
        let mut watch = Watch::default();
        if store == "redis" {
            env = env.set("RAMPART_REDIS_URL", k.redis_url.clone());
            // Redis's own CPU is reported apart, not mistaken for interference.
            watch.helper_comms.push("redis-server".into());
        }
        // No limit of its own on the key: nothing is refused, but every limit and quota of
        // the org is still evaluated on every request.
        let key = suite
            .rampart
            .bench_key(&env, &format!("bench-guard-{store}"), "messages", "read")
            .await?;
        let name = format!("guard-{store}");
        let server = suite
            .rampart
            .start(&Launch {
                name: &name,
                args: &["serve", "--no-worker"],
                env: &env,
                cpus: k.server_cpus.as_deref(),
                wrap: &[],
            })
            .await?;
        watch.servers.push(server.pid);
        let bare = Target::new(&server.api, BARE, vec![]);
        let guarded = Target::new(
            &server.api,
            GUARDED,
            vec![("Authorization".into(), format!("Bearer {key}"))],
        );
        let routes = [("bare", &bare), ("guarded", &guarded)];
        // Rounds alternate the routes so that drift on a shared VM hits both alike.
        for round in 1..=k.rounds {
            for (route, target) in routes {
                let run = tools::measure(k, || {
                    tools::closed_loop(
                        k,
                        &suite.wrk,
                        target,
                        k.concurrency,
                        k.load_cpus.as_deref(),
                        &watch,
                    )
                })
                .await?;
                eprintln!(
                    "{}",
                    tools::describe(&format!("{store} {route} #{round}"), &run)
                );
                runs.push(GuardRun {
                    store: store.clone(),
                    route: route.into(),
                    round,
                    run,
                });
            }
        }
        if store == "logs" {
            server.stop().await;
            // Gigabytes of access log.
            let _ = std::fs::remove_file(suite.tmp.join(format!("{name}.log")));
            continue;
        }
        // A rate both routes sustain: a fraction of the slower route's median maximum.
        let slower = ["bare", "guarded"]
            .iter()
            .filter_map(|route| {
                median(
                    runs.iter()
                        .filter(|r| {
                            &r.store == store && r.route == *route && r.run.mode == "closed"
                        })
                        .map(|r| r.run.throughput_rps),
                )
            })
            .fold(f64::INFINITY, f64::min);
        let rate = ((slower * k.rate_fraction / 100.0).floor() * 100.0).max(100.0);
        for r in [k.light_rate, rate] {
            for round in 1..=k.rounds {
                for (route, target) in routes {
                    let run = tools::measure(k, || tools::fixed_rate_process(k, target, r, &watch))
                        .await?;
                    eprintln!(
                        "{}",
                        tools::describe(&format!("{store} {route} #{round}"), &run)
                    );
                    runs.push(GuardRun {
                        store: store.clone(),
                        route: route.into(),
                        round,
                        run,
                    });
                }
            }
        }
        if store == "memory" && crate::profile::available(k.profile) {
            eprintln!("guard: perf profile of the guarded route");
            crate::cpu::wait_idle(k.quiet_cpu, k.quiet_wait).await;
            let url = guarded.url();
            let wrk = suite.wrk.spawn(&crate::tools::wrk::WrkRun {
                url: &url,
                headers: &guarded.headers,
                connections: k.concurrency,
                duration: std::time::Duration::from_secs(7),
                cpus: k.load_cpus.as_deref(),
            })?;
            profile = crate::profile::profile(
                server.pid,
                wrk.wait_with_output(),
                std::time::Duration::from_secs(2),
                &suite.tmp.join("perf-guard.data"),
                &["rampart::"],
                0.5,
            )
            .await;
        }
        server.stop().await;
    }
    runs.sort_by(|a, b| {
        (
            &a.store,
            &a.run.mode,
            a.run.target_rate.map(|r| r as u64),
            &a.route,
            a.round,
        )
            .cmp(&(
                &b.store,
                &b.run.mode,
                b.run.target_rate.map(|r| r as u64),
                &b.route,
                b.round,
            ))
    });
    match &profile {
        Some(p) => std::fs::write(
            suite.results.join("guard-profile.tsv"),
            crate::profile::to_tsv(p),
        )?,
        None => suite.remove_result("guard-profile.tsv"),
    }
    let md = super::guard_report::section(suite, &runs, profile.as_ref());
    suite.write_section("guard", &md, &runs)
}
