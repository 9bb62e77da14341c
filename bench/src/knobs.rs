//! The knobs of `rampart-bench run`: environment variables, each read and checked once here
//! (a bad value stops the run naming the variable). bench/README.md lists them.

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::units::parse_duration;

pub struct Knobs {
    /// Postgres, as a user that may create databases (without a database name).
    pub pg_url: String,
    pub redis_url: String,
    /// Each load run: this much warm-up, not recorded, then the measured window.
    pub warmup: Duration,
    pub duration: Duration,
    /// Closed loop: connections (requests in flight).
    pub concurrency: usize,
    /// Open loop (fixed rate): connections the schedule is served over.
    pub open_connections: usize,
    /// CPUs the server and the load generator are pinned to (`taskset -c`); `None`: anywhere.
    pub server_cpus: Option<String>,
    pub load_cpus: Option<String>,
    /// guard: the fixed rates, a light one and a fraction of the slower route's maximum.
    pub light_rate: f64,
    pub rate_fraction: f64,
    pub startup_runs: usize,
    /// guard and read: rounds of alternating runs, reported by their medians.
    pub rounds: usize,
    /// The quiet check before each measurement, and the repeat of a run whose `rest` CPU
    /// (other work on the machine) exceeded `max_rest` cores.
    pub quiet_cpu: f64,
    pub quiet_wait: Duration,
    pub max_rest: f64,
    pub attempts: usize,
    /// Profile with perf when it is installed.
    pub profile: bool,
    pub keep_tmp: bool,
    /// `RAMPART_LOG` of the measured servers.
    pub server_log: String,
    pub guard_stores: Vec<String>,
    pub read_stores: Vec<String>,
    /// console: which stores, and how many contacts (each fanned out to 10 endpoints).
    pub console_stores: Vec<String>,
    pub console_contacts: usize,
    pub console_requests: usize,
    pub webhook_latency_rate: f64,
    pub webhook_everyday_rate: f64,
    pub webhook_everyday_duration: Duration,
    pub webhook_rate: f64,
    pub webhook_sustained_offer: f64,
    pub webhook_fanout: usize,
    pub webhook_fanout_offer: f64,
    pub webhook_connections: usize,
    pub webhook_stores: Vec<String>,
    pub webhook_cases: Vec<String>,
    /// After the offered load, how long outstanding deliveries are waited for.
    pub drain_timeout: Duration,
    pub instr_duration: Duration,
    pub sched_count: usize,
    pub sched_lead: Duration,
    pub sched_cases: Vec<String>,
}

impl Knobs {
    pub fn from_env() -> anyhow::Result<Knobs> {
        let webhook_rate: f64 = num("BENCH_WEBHOOK_RATE", 2000.0)?;
        // Above the target, so that keeping up shows the target rate sustained: offering
        // exactly the target leaves "delivered ≥ target" to chance (1,999.6/s was once a miss).
        let webhook_sustained_offer = num("BENCH_WEBHOOK_SUSTAINED_OFFER", webhook_rate * 1.1)?;
        Ok(Knobs {
            pg_url: text("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
                .trim_end_matches('/')
                .to_owned(),
            redis_url: text("BENCH_REDIS_URL", "redis://127.0.0.1:6379"),
            warmup: duration("BENCH_WARMUP", "2s")?,
            duration: duration("BENCH_DURATION", "10s")?,
            concurrency: count("BENCH_CONCURRENCY", 64)?,
            open_connections: count("BENCH_OPEN_CONNECTIONS", 32)?,
            // The server gets one core and the load generator the other, so neither steals the
            // other's CPU mid-measurement (Redis, when used, floats).
            server_cpus: cpus("BENCH_SERVER_CPUS", "1"),
            load_cpus: cpus("BENCH_LOAD_CPUS", "0"),
            light_rate: num("BENCH_LIGHT_RATE", 1000.0)?,
            rate_fraction: num("BENCH_RATE_FRACTION", 0.5)?,
            startup_runs: count("BENCH_STARTUP_RUNS", 5)?,
            rounds: count("BENCH_ROUNDS", 3)?,
            quiet_cpu: num("BENCH_QUIET_CPU", 0.25)?,
            quiet_wait: duration("BENCH_QUIET_WAIT", "10m")?,
            max_rest: num("BENCH_MAX_REST", 0.3)?,
            attempts: count("BENCH_ATTEMPTS", 4)?,
            profile: text("BENCH_PROFILE", "1") != "0",
            keep_tmp: text("BENCH_KEEP_TMP", "0") == "1",
            // Per-request access logs would dominate a no-op route; `rampart::app=info` keeps
            // only the start-up line that carries the bound addresses.
            server_log: text("BENCH_SERVER_LOG", "warn,rampart::app=info"),
            guard_stores: list(
                "BENCH_GUARD_STORES",
                "memory redis logs",
                &["memory", "redis", "logs"],
            )?,
            read_stores: list(
                "BENCH_READ_STORES",
                "sqlite postgres",
                &["sqlite", "postgres"],
            )?,
            console_stores: list(
                "BENCH_CONSOLE_STORES",
                "sqlite postgres",
                &["sqlite", "postgres"],
            )?,
            console_contacts: count("BENCH_CONSOLE_CONTACTS", 10_000)?,
            console_requests: count("BENCH_CONSOLE_REQUESTS", 50)?,
            webhook_latency_rate: num("BENCH_WEBHOOK_LATENCY_RATE", 500.0)?,
            webhook_everyday_rate: num("BENCH_WEBHOOK_EVERYDAY_RATE", 200.0)?,
            webhook_everyday_duration: duration("BENCH_WEBHOOK_EVERYDAY_DURATION", "20s")?,
            webhook_rate,
            webhook_sustained_offer,
            webhook_fanout: count("BENCH_WEBHOOK_FANOUT", 4)?,
            webhook_fanout_offer: num("BENCH_WEBHOOK_FANOUT_OFFER", webhook_sustained_offer)?,
            webhook_connections: count("BENCH_WEBHOOK_CONNECTIONS", 32)?,
            webhook_stores: list(
                "BENCH_WEBHOOK_STORES",
                "sqlite sqlite-normal postgres postgres-notls",
                &["sqlite", "sqlite-normal", "postgres", "postgres-notls"],
            )?,
            webhook_cases: list(
                "BENCH_WEBHOOK_CASES",
                "everyday latency sustained fanout",
                &["everyday", "latency", "sustained", "fanout"],
            )?,
            drain_timeout: duration("BENCH_DRAIN_TIMEOUT", "60s")?,
            // Under valgrind the server answers about 500 requests/s.
            instr_duration: duration("BENCH_INSTR_DURATION", "5s")?,
            sched_count: count("BENCH_SCHED_COUNT", 10_000)?,
            sched_lead: duration("BENCH_SCHED_LEAD", "15s")?,
            sched_cases: list(
                "BENCH_SCHED_CASES",
                "sqlite postgres postgres-2workers postgres-notls",
                &["sqlite", "postgres", "postgres-2workers", "postgres-notls"],
            )?,
        })
    }
}

fn text(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A CPU list for `taskset -c`; set to the empty string, no pinning.
fn cpus(name: &str, default: &str) -> Option<String> {
    let v = text(name, default);
    (!v.trim().is_empty()).then(|| v.trim().to_owned())
}

fn num(name: &str, default: f64) -> anyhow::Result<f64> {
    match std::env::var(name) {
        Ok(v) => {
            let n: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("{name}={v:?}: not a number"))?;
            if !(n.is_finite() && n > 0.0) {
                bail!("{name}={v:?}: must be positive");
            }
            Ok(n)
        }
        Err(_) => Ok(default),
    }
}

fn count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("{name}={v:?}: expected a whole number of at least 1"),
        },
        Err(_) => Ok(default),
    }
}

fn duration(name: &str, default: &str) -> anyhow::Result<Duration> {
    let v = text(name, default);
    parse_duration(&v).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// A space-separated subset of `known`, in the order given.
fn list(name: &str, default: &str, known: &[&str]) -> anyhow::Result<Vec<String>> {
    let v = text(name, default);
    let items: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
    if let Some(bad) = items.iter().find(|i| !known.contains(&i.as_str())) {
        bail!("{name}: unknown {bad:?} (known: {})", known.join(" "));
    }
    if items.is_empty() {
        bail!("{name} is empty");
    }
    Ok(items)
}
