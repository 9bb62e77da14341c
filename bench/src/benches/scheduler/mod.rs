//! scheduler: N messages due at one instant, on SQLite and Postgres, with the in-process worker
//! or with two `rampart worker` processes; lateness, throughput, exactly-once.

pub mod analyse;
pub mod measure;

use serde::Serialize;

use crate::benches::webhooks::BENCH_SCOPES;
use crate::procs::rampart::{Env, Launch};
use crate::report::markdown::{Table, met, ms, num, statuses};
use crate::suite::{Suite, reference_line};
use crate::units::show_duration;
use analyse::SchedulerReport;
use measure::SchedulerArgs;

#[derive(Serialize)]
struct SchedCase {
    /// `sqlite`, `postgres`, `postgres-2workers` or `postgres-notls`.
    case: String,
    store: String,
    workers: usize,
    #[serde(flatten)]
    report: SchedulerReport,
}

pub async fn run(suite: &Suite) -> anyhow::Result<()> {
    let k = &suite.knobs;
    let mut runs = Vec::new();
    let mut reference = None;
    for case in &k.sched_cases {
        eprintln!("scheduler: {case}");
        let dir = suite.tmp.join(format!("scheduler-{case}"));
        std::fs::create_dir_all(&dir)?;
        let mut env = Env::new()
            .set("RAMPART_DATA_DIR", dir.display().to_string())
            .set("RAMPART_LOG", k.server_log.clone())
            .set("RAMPART_WEBHOOK_ALLOW_PRIVATE", "true");
        let db = if case == "sqlite" {
            env = env.set(
                "RAMPART_DATABASE_URL",
                format!("sqlite://{}/r.db", dir.display()),
            );
            None
        } else {
            let db = suite.pg.fresh("scheduler").await?;
            // postgres-notls: `?sslmode=disable` (see the webhooks benchmark).
            let url = if case == "postgres-notls" {
                format!("{}?sslmode=disable", db.url)
            } else {
                db.url.clone()
            };
            env = env.set("RAMPART_DATABASE_URL", url);
            Some(db)
        };
        let key = suite
            .rampart
            .bench_key(
                &env,
                &format!("bench-scheduler-{case}"),
                BENCH_SCOPES,
                "read,write,delete",
            )
            .await?;
        let two_workers = case.ends_with("-2workers");
        // API only with two `rampart worker` processes sharing the scheduler and deliveries;
        // otherwise `serve` with its in-process worker.
        let args: &[&str] = if two_workers {
            &["serve", "--no-worker"]
        } else {
            &["serve"]
        };
        let server = suite
            .rampart
            .start(&Launch {
                name: &format!("scheduler-{case}"),
                args,
                env: &env,
                cpus: None,
                wrap: &[],
            })
            .await?;
        let mut workers = Vec::new();
        if two_workers {
            for w in 1..=2 {
                workers.push(
                    suite
                        .rampart
                        .start_worker(&format!("scheduler-{case}-w{w}"), &env)
                        .await?,
                );
            }
        }
        if reference.is_none() {
            reference = Some(suite.machine_reference(&server).await?);
        }
        crate::cpu::wait_idle(k.quiet_cpu, k.quiet_wait).await;
        let report = measure::measure(&SchedulerArgs {
            api: server.url(""),
            key,
            count: k.sched_count,
            lead: k.sched_lead,
            concurrency: 16,
            drain_timeout: k.drain_timeout,
            linger: std::time::Duration::from_secs(2),
            listen: "127.0.0.1:0".into(),
            json: true,
        })
        .await?;
        let late = report
            .lateness_ms
            .as_ref()
            .map_or((0.0, 0.0), |l| (l.p50, l.p99));
        eprintln!(
            "   {case}: created {} in {:.1} s ({:.1} s before send_at); received {} distinct, duplicates {}, missing {}; lateness p50 {:.1} p99 {:.1} ms; exactly once: {}",
            report.create.created,
            report.create.elapsed_s,
            report.create.margin_s,
            report.arrivals.distinct,
            report.arrivals.duplicates,
            report.arrivals.missing,
            late.0,
            late.1,
            report.exactly_once()
        );
        for w in workers {
            w.stop().await;
        }
        server.stop().await;
        if let Some(db) = db {
            suite.pg.drop_db(db).await;
        }
        runs.push(SchedCase {
            store: case.split('-').next().unwrap_or(case).to_owned(),
            case: case.clone(),
            workers: if two_workers { 2 } else { 1 },
            report,
        });
    }
    let md = section(suite, &runs, reference);
    suite.write_section("scheduler", &md, &runs)
}

fn section(suite: &Suite, runs: &[SchedCase], reference: Option<f64>) -> String {
    let k = &suite.knobs;
    let (count, lead) = (k.sched_count, show_duration(k.sched_lead));
    let mut md = format!(
        "## Scheduled messages\n\n{}\n\n\
`rampart-bench scheduler --count {count} --lead {lead}`: one org (plan limits raised out of the way) with a channel endpoint (`POST /v1/webhooks` with `kind: \"channel\"`) pointing at the benchmark's local receiver (answers `200` at once, verifies signatures), one contact and conversation; then {count} `POST /v1/scheduled-messages` (16 in flight) all with the same `send_at`, {lead} after the first request. Each dispatched message reaches the receiver as a signed `message.created` delivery naming its `scheduled_message_id`. After every one has arrived (or {drain} past `send_at`) the receiver listens 2 s more for duplicates, then the API is read back: every scheduled message's status and `dispatched_at` (`GET /v1/scheduled-messages`), every message of the conversation and its status (`GET /v1/messages`). Server: `rampart serve` with its in-process worker (*sqlite*, *postgres*), or `rampart serve --no-worker` and two `rampart worker` processes on one Postgres database (*postgres-2workers*), or the first again with `?sslmode=disable` in the database URL (*postgres-notls*); `RAMPART_LOG={log}`, not pinned.\n\n\
- *Lateness*: receiver arrival − `send_at` (wall clock, same machine); *dispatch lateness*: `dispatched_at` − `send_at` as the API reports it (when the dispatcher wrote the batch that created the message; the delivery to the channel follows).\n\
- *Throughput*: messages per second from the first arrival to the last, and from the first `dispatched_at` to the last.\n\
- *Exactly once*: distinct scheduled messages received = created, no duplicate arrival, every scheduled message `dispatched` with exactly one message, every message `sent`.\n\n",
        suite.stamp(),
        drain = show_duration(k.drain_timeout),
        log = k.server_log,
    );
    if let Some(r) = reference {
        md.push_str(&reference_line(r));
        md.push_str("\n\n");
    }
    let mut t = Table::new(
        &[
            "Case",
            "Workers",
            "Created",
            "Creation time",
            "Margin before send_at",
            "Lateness p50",
            "p99",
            "max",
            "Dispatch lateness p50",
            "p99",
            "max",
            "Delivered msg/s",
            "Dispatched msg/s",
            "Received (distinct)",
            "Duplicates",
            "Missing",
            "API: dispatched / sent",
            "Lateness p99 ≤ 1 s",
            "Every dispatch ≤ 1 s (SPEC §4)",
            "Exactly once",
        ],
        "lrrrrrrrrrrrrrrrrccc",
    );
    for c in runs {
        let r = &c.report;
        let (late, disp) = (r.lateness_ms.as_ref(), r.dispatch_lateness_ms.as_ref());
        let count =
            |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        t.row(vec![
            c.case.clone(),
            c.workers.to_string(),
            r.create.created.to_string(),
            format!(
                "{} s ({}/s)",
                num(r.create.elapsed_s, 2),
                num(r.create.rps, 0)
            ),
            format!("{} s", num(r.create.margin_s, 1)),
            ms(late.map(|l| l.p50)),
            ms(late.map(|l| l.p99)),
            ms(late.map(|l| l.max)),
            ms(disp.map(|l| l.p50)),
            ms(disp.map(|l| l.p99)),
            ms(disp.map(|l| l.max)),
            num(r.delivery_rps.unwrap_or(0.0), 0),
            num(r.dispatch_rps.unwrap_or(0.0), 0),
            r.arrivals.distinct.to_string(),
            r.arrivals.duplicates.to_string(),
            r.arrivals.missing.to_string(),
            format!(
                "{} / {}",
                count(&r.api.scheduled_status, "dispatched"),
                count(&r.api.message_status, "sent")
            ),
            met(late.is_some_and(|l| l.p99 <= 1000.0) && r.arrivals.missing == 0),
            met(disp.is_some_and(|l| l.max <= 1000.0)),
            met(r.exactly_once()),
        ]);
    }
    md.push_str(&t.render());
    md.push('\n');
    let mut t = Table::new(
        &[
            "Case",
            "Workers",
            "First arrival",
            "Last arrival",
            "First dispatch",
            "Last dispatch",
            "Requests",
            "Duplicate webhook-ids",
            "Early",
            "Bad sig.",
            "Unexpected",
            "Scheduled statuses",
            "Message statuses",
            "API settled after",
            "Creation p50 / p99",
        ],
        "lrrrrrrrrrrllrr",
    );
    for c in runs {
        let (r, x) = (&c.report, &c.report.arrivals);
        let whole =
            |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{} ms", num(v, 0)));
        let create = r.create.latency_ms.as_ref();
        t.row(vec![
            c.case.clone(),
            c.workers.to_string(),
            whole(r.first_arrival_ms),
            whole(r.last_arrival_ms),
            whole(r.first_dispatch_ms),
            whole(r.last_dispatch_ms),
            x.requests.to_string(),
            x.duplicate_webhook_ids.to_string(),
            x.early.to_string(),
            x.bad_signatures.to_string(),
            x.unexpected.to_string(),
            statuses(&r.api.scheduled_status),
            statuses(&r.api.message_status),
            format!("{} s", num(r.api.settled_after_s, 2)),
            format!(
                "{} / {} ms",
                num(create.map_or(0.0, |l| l.p50), 1),
                num(create.map_or(0.0, |l| l.p99), 1)
            ),
        ]);
    }
    md.push_str(&t.render());
    md
}
