//! limits: four instances sharing one Postgres database and Redis must not admit more than a
//! key's limit allows. Our own code: the load is small (400 requests) but spread round-robin
//! over several instances with admissions counted per instance, which no load tool does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::procs::rampart::{Env, Launch};
use crate::report::markdown::{Table, met, num};
use crate::suite::Suite;
use crate::units::{ms, parse_rate};

#[derive(clap::Args)]
pub struct LimitsArgs {
    /// Comma-separated URLs, one per instance; request i goes to URL i mod n.
    #[arg(long, value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    #[arg(long, default_value_t = 400)]
    pub total: u64,
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The key's rate limit (e.g. 50/min): reports how many admissions it allows over the
    /// run's elapsed time, and how many were admitted beyond that.
    #[arg(long, conflicts_with = "expect_quota")]
    pub expect_rate: Option<String>,
    /// The key's quota (e.g. 100/day): at most that many admissions in the window.
    #[arg(long)]
    pub expect_quota: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct LimitsReport {
    /// Set by `run`: `rate` or `quota`, and the limiter store.
    pub kind: Option<String>,
    pub store: Option<String>,
    pub instances: usize,
    pub total: u64,
    pub concurrency: usize,
    pub elapsed_ms: f64,
    pub admitted: u64,
    pub refused: u64,
    /// Anything else (unexpected statuses or transport errors): should be 0.
    pub other: u64,
    pub errors: u64,
    pub status: BTreeMap<String, u64>,
    pub admitted_per_instance: Vec<u64>,
    /// The configured limit, as given.
    pub limit: Option<String>,
    /// The most admissions the limit allows over this run.
    pub max_allowed: Option<u64>,
    /// Admissions beyond `max_allowed` (target 0).
    pub over_admitted: Option<u64>,
    pub first_error: Option<String>,
}

/// `rampart-bench run limits`.
pub async fn run(suite: &Suite) -> anyhow::Result<()> {
    let k = &suite.knobs;
    let db = suite.pg.fresh("limits").await?;
    let dir = suite.tmp.join("limits");
    std::fs::create_dir_all(&dir)?;
    // One data dir for all: the instances must share the secret key the database was
    // initialised with.
    let base = Env::new()
        .set("RAMPART_DATABASE_URL", db.url.clone())
        .set("RAMPART_DATA_DIR", dir.display().to_string())
        .set("RAMPART_LOG", k.server_log.clone());
    let with_redis = base.clone().set("RAMPART_REDIS_URL", k.redis_url.clone());
    let org = suite.rampart.bench_org(&base, "bench-limits").await?;
    let mut reports = Vec::new();
    // (kind, store, the key's limit flag, its value)
    let cases = [
        ("rate", "redis", "--rate-limit", "50/min"),
        ("quota", "redis", "--quota", "100/day"),
        ("rate", "memory", "--rate-limit", "50/min"),
    ];
    for (kind, store, flag, limit) in cases {
        let key = suite
            .rampart
            .admin(
                &base,
                &[
                    "create-key",
                    "--org",
                    &org,
                    "--scopes",
                    "messages",
                    "--permissions",
                    "read",
                    flag,
                    limit,
                ],
            )
            .await?;
        let key = key["key"]
            .as_str()
            .context("create-key gave no key")?
            .to_owned();
        let env = if store == "redis" { &with_redis } else { &base };
        let mut servers = Vec::new();
        for i in 1..=4 {
            let name = format!("limits-{kind}-{store}-{i}");
            servers.push(
                suite
                    .rampart
                    .start(&Launch {
                        name: &name,
                        args: &["serve", "--no-worker"],
                        env,
                        cpus: None,
                        wrap: &[],
                    })
                    .await?,
            );
        }
        crate::cpu::wait_idle(k.quiet_cpu, k.quiet_wait).await;
        let args = LimitsArgs {
            urls: servers.iter().map(|s| s.url("/v1/bench/guarded")).collect(),
            headers: vec![format!("Authorization: Bearer {key}")],
            total: 400,
            concurrency: 32,
            expect_rate: (kind == "rate").then(|| limit.to_owned()),
            expect_quota: (kind == "quota").then(|| limit.to_owned()),
            json: true,
        };
        let mut r = measure(&args).await?;
        eprintln!(
            "   {limit} ({kind}, {store}): admitted {}, refused {}, other {}, over-admitted {:?}, per instance {:?}",
            r.admitted, r.refused, r.other, r.over_admitted, r.admitted_per_instance
        );
        r.kind = Some(kind.into());
        r.store = Some(store.into());
        reports.push(r);
        for s in servers {
            s.stop().await;
        }
    }
    suite.pg.drop_db(db).await;
    suite.write_section("limits", &section(suite, &reports), &reports)
}

fn section(suite: &Suite, reports: &[LimitsReport]) -> String {
    let mut md = format!(
        "## Limiter accuracy across instances\n\n{}\n\nFour `rampart serve --no-worker` instances on different ports sharing one fresh Postgres database and one Redis; the org's plan limits are raised out of the way, so only the key's own limit applies. `rampart-bench limits` sends 400 requests to `GET /v1/bench/guarded` with one key, round-robin over the four instances, 32 in flight. *Allowed* is the most the limit permits over the run: for a rate limit (GCRA), its burst plus one per emission interval elapsed; for a quota, its count.\n\n",
        suite.stamp()
    );
    let mut t = Table::new(
        &[
            "Limit on the key",
            "Limiter store",
            "Sent",
            "Admitted (2xx)",
            "Refused (429)",
            "Other",
            "Allowed",
            "Over-admitted",
            "Target",
            "Met",
            "Admitted per instance",
            "Elapsed",
        ],
        "llrrrrrrrclr",
    );
    for r in reports {
        let redis = r.store.as_deref() == Some("redis");
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        t.row(vec![
            format!(
                "{} ({})",
                r.limit.clone().unwrap_or_default(),
                r.kind.clone().unwrap_or_default()
            ),
            if redis {
                "redis".into()
            } else {
                "memory (contrast: per instance, no Redis)".into()
            },
            r.total.to_string(),
            r.admitted.to_string(),
            r.refused.to_string(),
            r.other.to_string(),
            opt(r.max_allowed),
            opt(r.over_admitted),
            if redis { "0".into() } else { "n/a".into() },
            if redis {
                met(r.over_admitted == Some(0))
            } else {
                "n/a".into()
            },
            r.admitted_per_instance
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            format!("{} ms", num(r.elapsed_ms, 0)),
        ]);
    }
    md.push_str(&t.render());
    md.push_str("\nWithout Redis each instance enforces the limit on its own, so four instances may admit up to four times the limit; the last row shows that for contrast and is not a target.\n");
    md
}

/// `rampart-bench limits`.
pub async fn command(a: LimitsArgs) -> anyhow::Result<()> {
    let report = measure(&a).await?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} requests over {} instances in {:.0} ms: admitted {}, refused (429) {}, other {}",
        report.total,
        report.instances,
        report.elapsed_ms,
        report.admitted,
        report.refused,
        report.other
    );
    println!(
        "  admitted per instance: {:?}",
        report.admitted_per_instance
    );
    if let (Some(l), Some(m), Some(o)) = (&report.limit, report.max_allowed, report.over_admitted) {
        println!("  limit {l}: at most {m} allowed; over-admitted {o}");
    }
    if let Some(e) = &report.first_error {
        println!("  first error: {e}");
    }
    Ok(())
}

fn parse_headers(raw: &[String]) -> anyhow::Result<reqwest::header::HeaderMap> {
    let mut map = reqwest::header::HeaderMap::new();
    for h in raw {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header {h:?}: expected `Name: value`"))?;
        map.append(
            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())
                .with_context(|| format!("--header {h:?}"))?,
            reqwest::header::HeaderValue::from_str(v.trim())
                .with_context(|| format!("--header {h:?}"))?,
        );
    }
    Ok(map)
}

/// One worker's tally.
#[derive(Default)]
struct Tally {
    status: BTreeMap<u16, u64>,
    admitted: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn measure(a: &LimitsArgs) -> anyhow::Result<LimitsReport> {
    let headers = parse_headers(&a.headers)?;
    let urls: Vec<reqwest::Url> = a
        .urls
        .iter()
        .map(|u| reqwest::Url::parse(u).with_context(|| format!("--urls: {u:?}")))
        .collect::<anyhow::Result<_>>()?;
    let expected = match (&a.expect_rate, &a.expect_quota) {
        (Some(r), _) => Some((r.clone(), parse_rate(r)?, true)),
        (_, Some(q)) => Some((q.clone(), parse_rate(q)?, false)),
        _ => None,
    };
    let http = crate::api::client(a.concurrency, Duration::from_secs(10))?;
    let next = Arc::new(AtomicU64::new(0));
    let urls = Arc::new(urls);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (http, headers, next, urls, total) = (
            http.clone(),
            headers.clone(),
            next.clone(),
            urls.clone(),
            a.total,
        );
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                admitted: vec![0; urls.len()],
                ..Tally::default()
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let which = (i % urls.len() as u64) as usize;
                match http
                    .get(urls[which].clone())
                    .headers(headers.clone())
                    .send()
                    .await
                {
                    Ok(r) => {
                        let s = r.status();
                        let _ = r.bytes().await;
                        *t.status.entry(s.as_u16()).or_default() += 1;
                        if s.is_success() {
                            t.admitted[which] += 1;
                        }
                    }
                    Err(e) => {
                        t.errors += 1;
                        t.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            t
        }));
    }
    let mut all = Tally {
        admitted: vec![0; urls.len()],
        ..Tally::default()
    };
    for task in tasks {
        let t = task.await?;
        for (k, v) in t.status {
            *all.status.entry(k).or_default() += v;
        }
        for (acc, n) in all.admitted.iter_mut().zip(t.admitted) {
            *acc += n;
        }
        all.errors += t.errors;
        all.first_error = all.first_error.or(t.first_error);
    }
    let elapsed = started.elapsed();
    let admitted: u64 = all.admitted.iter().sum();
    let refused = all.status.get(&429).copied().unwrap_or(0);
    let max_allowed = expected.as_ref().map(|(_, (count, period), is_rate)| {
        if *is_rate {
            // GCRA: a full burst of `count`, plus one more per emission interval elapsed.
            count + (elapsed.as_secs_f64() * *count as f64 / period.as_secs_f64()).floor() as u64
        } else {
            *count
        }
    });
    Ok(LimitsReport {
        kind: None,
        store: None,
        instances: urls.len(),
        total: a.total,
        concurrency: a.concurrency,
        elapsed_ms: ms(elapsed),
        admitted,
        refused,
        other: a.total - admitted - refused,
        errors: all.errors,
        status: all
            .status
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        admitted_per_instance: all.admitted,
        limit: expected.map(|e| e.0),
        max_allowed,
        over_admitted: max_allowed.map(|m| admitted.saturating_sub(m)),
        first_error: all.first_error,
    })
}
