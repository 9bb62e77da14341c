//! read (issue 24): a guarded single-resource read, `GET /v1/contacts/{id}` with a live key
//! through the whole guard stack and one row from the database, against `GET /health/live`
//! (no guard, no database) on the same server, with the same load tool (wrk, closed loop), in
//! alternating runs; on SQLite and on Postgres.

use anyhow::Context as _;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::cpu::Watch;
use crate::procs::rampart::{Env, Launch};
use crate::report::markdown::{Table, met, ms3, num, statuses};
use crate::stats::median;
use crate::suite::Suite;
use crate::tools::{self, LoadRun, Target};

#[derive(Serialize, Deserialize)]
struct ReadRun {
    store: String,
    /// `live` or `contact`.
    route: String,
    round: usize,
    #[serde(flatten)]
    run: LoadRun,
}

/// The least read/live throughput ratio each store must reach.
fn target(store: &str) -> f64 {
    if store == "sqlite" { 0.6 } else { 0.45 }
}

pub async fn run(suite: &Suite) -> anyhow::Result<()> {
    let k = &suite.knobs;
    let mut runs = Vec::new();
    for store in &k.read_stores {
        eprintln!("read: {store}");
        let dir = suite.tmp.join(format!("read-{store}"));
        std::fs::create_dir_all(&dir)?;
        let mut env = Env::new()
            .set("RAMPART_DATA_DIR", dir.display().to_string())
            .set("RAMPART_LOG", k.server_log.clone());
        let mut watch = Watch::default();
        let db = if store == "sqlite" {
            env = env.set(
                "RAMPART_DATABASE_URL",
                format!("sqlite://{}/r.db", dir.display()),
            );
            None
        } else {
            let db = suite.pg.fresh("read").await?;
            env = env.set("RAMPART_DATABASE_URL", db.url.clone());
            // The database's CPU is reported apart, not mistaken for interference.
            watch.helper_comms.push("postgres".into());
            Some(db)
        };
        let key = suite
            .rampart
            .bench_key(
                &env,
                &format!("bench-read-{store}"),
                "contacts",
                "read,write",
            )
            .await?;
        let server = suite
            .rampart
            .start(&Launch {
                name: &format!("read-{store}"),
                args: &["serve", "--no-worker"],
                env: &env,
                cpus: k.server_cpus.as_deref(),
                wrap: &[],
            })
            .await?;
        watch.servers.push(server.pid);
        let api = Api::new(&server.url(""), &key, 1)?;
        let contact = api
            .expect(
                Method::POST,
                "/v1/contacts",
                Some(&serde_json::json!({ "external_key": "bench-read", "name": "Ada Lovelace", "email": "ada@example.com" })),
                201,
            )
            .await?;
        let id = contact["id"].as_str().context("no contact id")?.to_owned();
        let path = format!("/v1/contacts/{id}");
        // The read must work before it is measured.
        api.expect(Method::GET, &path, None, 200).await?;
        let live = Target::new(&server.api, "/health/live", vec![]);
        let read = Target::new(
            &server.api,
            &path,
            vec![("Authorization".into(), format!("Bearer {key}"))],
        );
        // Rounds alternate the routes so that drift on a shared VM hits both alike.
        for round in 1..=k.rounds {
            for (route, target) in [("live", &live), ("contact", &read)] {
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
                runs.push(ReadRun {
                    store: store.clone(),
                    route: route.into(),
                    round,
                    run,
                });
            }
        }
        server.stop().await;
        if let Some(db) = db {
            suite.pg.drop_db(db).await;
        }
    }
    let md = section(suite, &runs);
    suite.write_section("read", &md, &runs)
}

fn section(suite: &Suite, runs: &[ReadRun]) -> String {
    let k = &suite.knobs;
    let pin = |c: &Option<String>| c.clone().unwrap_or_else(|| "any".into());
    let mut md = format!(
        "## Single-resource read\n\n{}\n\n\
`GET /v1/contacts/{{id}}` with a live key (scope `contacts`, permission `read`; the org `active`/`full` with its plan limits raised out of reach) goes through the whole guard stack and reads one row; `GET /health/live` on the same server touches neither the guard nor the database. One `rampart serve --no-worker` per store (a fresh SQLite database; a fresh Postgres database), `RAMPART_LOG={}`, server pinned to CPU {}, wrk to CPU {} (the database floats). Each run: wrk, closed loop, {} connections, {} warm-up then {} measured; the two routes alternate over {} rounds and the table shows medians. *Contact / live* divides the median req/s; the *median of per-round ratios* pairs each read run with the live run just before it. *Non-2xx* counts every answer of either route that was not 2xx (target 0), *errors* wrk's socket errors and timeouts.\n\n",
        suite.stamp(),
        k.server_log,
        pin(&k.server_cpus),
        pin(&k.load_cpus),
        k.concurrency,
        crate::units::show_duration(k.warmup),
        crate::units::show_duration(k.duration),
        k.rounds
    );
    let mut t = Table::new(
        &[
            "Store",
            "Live req/s",
            "Contact req/s",
            "Contact / live",
            "Median of per-round ratios",
            "Live p50 / p99",
            "Contact p50 / p99",
            "Non-2xx",
            "Errors",
            "Target",
            "Met",
        ],
        "lrrrrrrrrrc",
    );
    for store in ["sqlite", "postgres"] {
        let of = |route: &str| -> Vec<&ReadRun> {
            runs.iter()
                .filter(|r| r.store == store && r.route == route)
                .collect()
        };
        let (l, c) = (of("live"), of("contact"));
        let (Some(lm), Some(cm)) = (
            median(l.iter().map(|r| r.run.throughput_rps)),
            median(c.iter().map(|r| r.run.throughput_rps)),
        ) else {
            continue;
        };
        let per_round = median(
            l.iter()
                .zip(&c)
                .map(|(l, c)| c.run.throughput_rps / l.run.throughput_rps),
        )
        .unwrap_or(0.0);
        let pct = |v: &[&ReadRun], p: fn(&crate::stats::Percentiles) -> f64| {
            median(v.iter().filter_map(|r| r.run.latency_ms.as_ref().map(p)))
        };
        let both = || l.iter().chain(&c);
        let non_2xx: u64 = both().map(|r| r.run.non_2xx).sum();
        let errors: u64 = both().map(|r| r.run.errors).sum();
        let goal = target(store);
        t.row(vec![
            store.into(),
            num(lm, 0),
            num(cm, 0),
            format!("{}×", num(cm / lm, 3)),
            format!("{}×", num(per_round, 3)),
            format!("{} / {}", ms3(pct(&l, |p| p.p50)), ms3(pct(&l, |p| p.p99))),
            format!("{} / {}", ms3(pct(&c, |p| p.p50)), ms3(pct(&c, |p| p.p99))),
            non_2xx.to_string(),
            errors.to_string(),
            format!("≥ {goal}×, no non-2xx"),
            met(cm / lm >= goal && per_round >= goal && non_2xx == 0 && errors == 0),
        ]);
    }
    md.push_str(&t.render());
    md.push_str("\nThe target counts as met only if both ratios reach it and every answer was 2xx.\n\n### Every run\n\nLatency in ms, send → response (wrk). CPU in cores over the measured window: *database* is the `postgres` processes, *rest* the machine minus server, wrk and database.\n\n");
    let mut t = Table::new(
        &[
            "Store",
            "Route",
            "Round",
            "req/s",
            "Statuses",
            "Errors",
            "p50",
            "p90",
            "p99",
            "max",
            "CPU server",
            "CPU wrk",
            "CPU database",
            "CPU rest",
            "Attempts",
        ],
        "llrrlrrrrrrrrrr",
    );
    let r2 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| num(v, 2));
    let r3 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| num(v, 3));
    for r in runs {
        let l = r.run.latency_ms.as_ref();
        t.row(vec![
            r.store.clone(),
            r.route.clone(),
            r.round.to_string(),
            num(r.run.throughput_rps, 0),
            statuses(&r.run.status),
            r.run.errors.to_string(),
            r3(l.map(|l| l.p50)),
            r3(l.map(|l| l.p90)),
            r3(l.map(|l| l.p99)),
            r3(l.map(|l| l.max)),
            r2(r.run.cpu.server),
            r2(r.run.cpu.generator),
            r2(r.run.cpu.helpers),
            r2(r.run.cpu.rest),
            r.run.attempts.to_string(),
        ]);
    }
    md.push_str(&t.render());
    md
}
