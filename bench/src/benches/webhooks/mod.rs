//! webhooks: API write → signed delivery at a local receiver, on SQLite and Postgres. One
//! `rampart serve` with its in-process worker per store; the cases run against it in turn.

pub mod analyse;
pub mod measure;
mod report;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::procs::rampart::{Env, Launch};
use crate::suite::Suite;
use crate::tools::Measured;
use crate::tools::open_loop::Pacer;
use analyse::WebhooksReport;
use measure::WebhooksArgs;

/// The scopes of the key the webhooks and scheduler benchmarks use.
pub const BENCH_SCOPES: &str = "webhooks,contacts,conversations,scheduled_messages,messages";

#[derive(Clone, Serialize, Deserialize)]
pub struct WebhookCase {
    pub store: String,
    /// `everyday`, `latency`, `sustained` or `fanout`.
    pub case: String,
    pub attempts: usize,
    #[serde(flatten)]
    pub report: WebhooksReport,
}

impl Measured for WebhookCase {
    fn rest_cpu(&self) -> f64 {
        self.report.cpu.rest.unwrap_or(0.0)
    }
    fn set_attempts(&mut self, n: usize) {
        self.attempts = n;
    }
}

/// A case: its endpoints, writes per second and measured window.
struct Case {
    name: &'static str,
    endpoints: usize,
    rate: f64,
    duration: Duration,
}

fn cases(suite: &Suite, store: &str) -> Vec<Case> {
    let k = &suite.knobs;
    let all = [
        Case {
            name: "everyday",
            endpoints: 1,
            rate: k.webhook_everyday_rate,
            duration: k.webhook_everyday_duration,
        },
        Case {
            name: "latency",
            endpoints: 1,
            rate: k.webhook_latency_rate,
            duration: k.duration,
        },
        Case {
            name: "sustained",
            endpoints: 1,
            rate: k.webhook_sustained_offer,
            duration: k.duration,
        },
        Case {
            name: "fanout",
            endpoints: k.webhook_fanout,
            rate: k.webhook_fanout_offer / k.webhook_fanout as f64,
            duration: k.duration,
        },
    ];
    all.into_iter()
        .filter(|c| k.webhook_cases.iter().any(|n| n == c.name))
        // postgres-notls shows what TLS on the loopback costs at throughput: fan-out only.
        .filter(|c| store != "postgres-notls" || c.name == "fanout")
        // sqlite-normal shows what acknowledging only what survives a power cut costs:
        // the one-endpoint cases, beside the default's.
        .filter(|c| store != "sqlite-normal" || c.name != "fanout")
        .collect()
}

pub async fn run(suite: &Suite) -> anyhow::Result<()> {
    let k = &suite.knobs;
    let mut runs: Vec<WebhookCase> = Vec::new();
    let mut reference = None;
    let mut profile = None;
    for store in &k.webhook_stores {
        eprintln!("webhooks: {store}");
        let dir = suite.tmp.join(format!("webhooks-{store}"));
        std::fs::create_dir_all(&dir)?;
        let mut env = Env::new()
            .set("RAMPART_DATA_DIR", dir.display().to_string())
            .set("RAMPART_LOG", k.server_log.clone())
            .set("RAMPART_WEBHOOK_ALLOW_PRIVATE", "true");
        let mut helper_comms = Vec::new();
        let db = if store.starts_with("sqlite") {
            env = env.set(
                "RAMPART_DATABASE_URL",
                format!("sqlite://{}/r.db", dir.display()),
            );
            // The default is `full` (an acknowledged write survives a power cut).
            if store == "sqlite-normal" {
                env = env.set("RAMPART_SQLITE_SYNCHRONOUS", "normal");
            }
            None
        } else {
            let db = suite.pg.fresh("webhooks").await?;
            // sqlx negotiates TLS even on the loopback when Postgres offers it.
            let url = if store == "postgres-notls" {
                format!("{}?sslmode=disable", db.url)
            } else {
                db.url.clone()
            };
            env = env.set("RAMPART_DATABASE_URL", url);
            // The database's CPU is reported apart, not mistaken for interference.
            helper_comms.push("postgres".to_owned());
            Some(db)
        };
        let key = suite
            .rampart
            .bench_key(
                &env,
                &format!("bench-webhooks-{store}"),
                BENCH_SCOPES,
                "read,write,delete",
            )
            .await?;
        // With its in-process worker, which makes the deliveries.
        let server = suite
            .rampart
            .start(&Launch {
                name: &format!("webhooks-{store}"),
                args: &["serve"],
                env: &env,
                cpus: None,
                wrap: &[],
            })
            .await?;
        if reference.is_none() {
            reference = Some(suite.machine_reference(&server).await?);
        }
        let args = |endpoints: usize, rate: f64, duration: Duration| WebhooksArgs {
            api: server.url(""),
            key: key.clone(),
            endpoints,
            rate,
            concurrency: k.webhook_connections,
            duration,
            warmup: k.warmup,
            drain_timeout: k.drain_timeout,
            timeout: Duration::from_secs(5),
            pacer: Pacer::Thread,
            server_pid: Some(server.pid),
            helper_comms: helper_comms.clone(),
            listen: "127.0.0.1:0".into(),
            json: true,
        };
        for case in cases(suite, store) {
            let a = args(case.endpoints, case.rate, case.duration);
            let run = crate::tools::measure(k, || async {
                Ok(WebhookCase {
                    store: store.clone(),
                    case: case.name.into(),
                    attempts: 1,
                    report: measure::measure(&a).await?,
                })
            })
            .await?;
            eprintln!("{}", describe(&run));
            runs.push(run);
        }
        if store == "sqlite"
            && k.webhook_cases.iter().any(|c| c == "sustained")
            && crate::profile::available(k.profile)
        {
            eprintln!("webhooks: perf profile of the server (sustained case)");
            crate::cpu::wait_idle(k.quiet_cpu, k.quiet_wait).await;
            let mut a = args(1, k.webhook_sustained_offer, Duration::from_secs(7));
            a.warmup = Duration::from_secs(1);
            profile = crate::profile::profile(
                server.pid,
                measure::measure(&a),
                Duration::from_secs(3),
                &suite.tmp.join("perf-webhooks.data"),
                &["rampart::", "sqlite3", "sqlx_sqlite"],
                2.0,
            )
            .await;
        }
        server.stop().await;
        if let Some(db) = db {
            suite.pg.drop_db(db).await;
        }
    }
    let order = |c: &str| {
        ["everyday", "latency", "sustained", "fanout"]
            .iter()
            .position(|n| *n == c)
    };
    runs.sort_by(|a, b| {
        (!a.store.starts_with("sqlite"), &a.store, order(&a.case)).cmp(&(
            !b.store.starts_with("sqlite"),
            &b.store,
            order(&b.case),
        ))
    });
    match &profile {
        Some(p) => std::fs::write(
            suite.results.join("webhooks-profile.tsv"),
            crate::profile::to_tsv(p),
        )?,
        None => suite.remove_result("webhooks-profile.tsv"),
    }
    let md = report::section(suite, &runs, reference, profile.as_ref());
    suite.write_section("webhooks", &md, &runs)
}

fn describe(c: &WebhookCase) -> String {
    let (r, w, d) = (&c.report, &c.report.writes, &c.report.deliveries);
    let e2e = r.e2e_ms.as_ref().map_or((0.0, 0.0), |l| (l.p50, l.p99));
    let cpu = |v: Option<f64>| v.unwrap_or(0.0);
    format!(
        "   {} {}: {} endpoint(s), writes offered {:.0}/s accepted {:.0}/s (unsent {}, errors {}); delivered {:.0}/s, backlog at end {}, drain {}; e2e p50 {:.2} p99 {:.2} ms; duplicates {}, lost {}; CPU server {:.2} db {:.2} bench {:.2} rest {:.2}",
        c.store,
        c.case,
        r.endpoints,
        w.offered_rps,
        w.accepted_rps,
        w.unsent,
        w.errors,
        d.window_rps,
        d.backlog_at_end,
        d.drain_s
            .map_or_else(|| "incomplete".to_owned(), |s| format!("{s:.2} s")),
        e2e.0,
        e2e.1,
        d.duplicates,
        d.lost,
        cpu(r.cpu.server),
        cpu(r.cpu.helpers),
        cpu(r.cpu.generator),
        cpu(r.cpu.rest)
    )
}
