//! `rampart-bench`: the load generator behind `bench/run.sh` (see bench/README.md).
//!
//! - `http`: closed-loop (maximum throughput) or open-loop (fixed-rate) load against one URL,
//!   reporting throughput, statuses and latency percentiles.
//! - `startup`: spawns `rampart serve` on a fresh SQLite database, times it to the first
//!   `200` from `/health/ready` and reads its idle resident memory.
//! - `limits`: spreads N requests with one credential over several instances at once and
//!   counts admitted (2xx) against refused (429), to compare with the configured limit.
//!
//! Built only with `--features bench-routes`, like the routes it is meant to measure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(
    name = "rampart-bench",
    about = "Load generator for Rampart's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load one URL: closed loop with --concurrency, or open loop at a fixed --rate.
    Http(HttpArgs),
    /// Time `BIN serve` from spawn to ready on a fresh SQLite database; read its idle RSS.
    Startup(StartupArgs),
    /// Fire --total requests across several instances; count admitted against refused.
    Limits(LimitsArgs),
    /// Wait until the machine is quiet (other work would skew a measurement on a shared box).
    WaitIdle(WaitIdleArgs),
}

#[derive(Args)]
struct HttpArgs {
    /// Target URL (plain http for the raw engine).
    #[arg(long)]
    url: String,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request body (sent with a Content-Length).
    #[arg(long)]
    body: Option<String>,
    /// Open loop: requests per second on a fixed schedule. Without it, closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop: requests in flight (one connection each). Open loop: connections that
    /// serve the schedule, i.e. the most requests that can be in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured window, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load applied before the measured window, not recorded.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Per-request timeout (a timed-out request counts as an error).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    #[arg(long, value_enum, default_value_t = Engine::Raw)]
    engine: Engine,
    /// Open loop: how requests are released on schedule.
    #[arg(long, value_enum, default_value_t = Pacer::Thread)]
    pacer: Pacer,
    /// Also report this process's CPU use over the window (the server's), to tell whether it
    /// or the generator was the bottleneck.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A process the server relies on (e.g. Redis) whose CPU use is reported apart from the
    /// rest of the machine (repeatable).
    #[arg(long = "helper-pid")]
    helper_pids: Vec<u32>,
    /// Also write every measured request as `offset_ms,latency_ms` (send or scheduled time
    /// from the window's start) to this CSV file, e.g. to see whether stalls are periodic.
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// How requests are sent.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Engine {
    /// A minimal HTTP/1.1 keep-alive client on one TCP connection per worker. The generator
    /// shares a 2-core machine with the server, so every microsecond it spends per request is
    /// taken from the server; this keeps that cost (and its noise) as small as possible.
    Raw,
    /// reqwest's pooled client: slower, but a full HTTP stack to cross-check the raw engine.
    Reqwest,
}

/// How the open loop releases requests at their scheduled times. tokio's own timer has
/// millisecond granularity, which would add up to a millisecond of fake latency to each
/// request, so neither pacer relies on it for the last stretch.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pacer {
    /// An OS thread sleeping on the kernel's high-resolution timer: nearly free in CPU, but
    /// typically 0.1 ms late, and later when it has to share a core with the workers.
    Thread,
    /// A task that sleeps until 2 ms before the next due time and then spins, yielding to the
    /// workers, until it: microseconds late, but keeps one core busy. Only for a generator
    /// pinned to a core of its own.
    Spin,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Raw => "raw",
            Engine::Reqwest => "reqwest",
        }
    }
}

#[derive(Args)]
struct StartupArgs {
    /// The `rampart` binary.
    #[arg(long)]
    bin: PathBuf,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// How long the server idles before its RSS is read.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    idle: Duration,
    /// Give up on a run after this long without readiness.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LimitsArgs {
    /// Comma-separated URLs, one per instance; request i goes to URL i mod n.
    #[arg(long, value_delimiter = ',', required = true)]
    urls: Vec<String>,
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    #[arg(long, default_value_t = 400)]
    total: u64,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The key's rate limit (e.g. 50/min): reports how many admissions it allows over the
    /// run's elapsed time, and how many were admitted beyond that.
    #[arg(long, conflicts_with = "expect_quota")]
    expect_rate: Option<String>,
    /// The key's quota (e.g. 100/day): at most that many admissions in the window.
    #[arg(long)]
    expect_quota: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct WaitIdleArgs {
    /// Quiet means the whole machine used at most this many cores over a 1 s sample.
    #[arg(long, default_value_t = 0.25)]
    max_busy: f64,
    /// Give up (exit 0 with a warning, so a run can proceed and report the noise) after this.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built without a default crypto provider; plain http never uses it, but the
    // client builder requires one to be installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Http(a) => http(a).await,
        Command::Startup(a) => startup(a).await,
        Command::Limits(a) => limits(a).await,
        Command::WaitIdle(a) => wait_idle(a).await,
    }
}

async fn wait_idle(a: WaitIdleArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let (t0, b0) = (Instant::now(), machine_busy().context("no /proc/stat")?);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b1 = machine_busy().context("no /proc/stat")?;
        let busy = b1.saturating_sub(b0).as_secs_f64() / t0.elapsed().as_secs_f64();
        if busy <= a.max_busy {
            if said {
                eprintln!("machine quiet ({busy:.2} cores busy)");
            }
            return Ok(());
        }
        if started.elapsed() > a.timeout {
            eprintln!(
                "warning: machine still busy ({busy:.2} cores) after {:?}; measuring anyway",
                a.timeout
            );
            return Ok(());
        }
        if !said {
            eprintln!("waiting for the machine to be quiet ({busy:.2} cores busy)...");
            said = true;
        }
    }
}

// ---------------------------------------------------------------------------------------
// http

/// What one worker saw.
#[derive(Default)]
struct Tally {
    /// Latencies (ns) of the requests that belong to the measured window.
    latencies: Vec<u64>,
    /// When each of those requests was sent (open loop: scheduled), from the window's start.
    offsets: Vec<u64>,
    /// Open loop: how late each request left relative to its scheduled time (ns).
    lags: Vec<u64>,
    /// Open loop: from the actual send to the response (ns), i.e. without the lag.
    service: Vec<u64>,
    status: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.latencies.extend(o.latencies);
        self.offsets.extend(o.offsets);
        self.lags.extend(o.lags);
        self.service.extend(o.service);
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    fn record(&mut self, result: anyhow::Result<u16>, offset: Duration, latency: Duration) {
        match result {
            Ok(s) => {
                *self.status.entry(s).or_default() += 1;
                self.latencies.push(latency.as_nanos() as u64);
                self.offsets.push(offset.as_nanos() as u64);
            }
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

#[derive(Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles in milliseconds; sorts `ns`.
    fn of(ns: &mut [u64]) -> Option<Percentiles> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
            ns[rank - 1] as f64 / 1e6
        };
        let mean = ns.iter().map(|&n| n as f64).sum::<f64>() / ns.len() as f64 / 1e6;
        Some(Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: ns[ns.len() - 1] as f64 / 1e6,
            mean,
        })
    }
}

#[derive(Serialize)]
struct HttpReport {
    url: String,
    engine: Engine,
    mode: &'static str,
    concurrency: usize,
    /// Open loop only.
    target_rate: Option<f64>,
    duration_s: f64,
    /// Completed requests (any status) in the measured window.
    requests: u64,
    throughput_rps: f64,
    status: BTreeMap<String, u64>,
    errors: u64,
    first_error: Option<String>,
    /// Open loop: scheduled requests never sent because the run's drain deadline passed.
    unsent: u64,
    /// Closed loop: from send to response. Open loop: from the scheduled send time to
    /// response, so queueing behind a slow server is counted (no coordinated omission).
    latency_ms: Option<Percentiles>,
    /// Open loop: how late requests left relative to their schedule (generator + queueing).
    send_lag_ms: Option<Percentiles>,
    /// Open loop: from the actual send to the response, i.e. `latency_ms` without the lag.
    service_ms: Option<Percentiles>,
    /// CPU used over the window, in cores (1.0 = one core busy throughout): this generator,
    /// the `--server-pid` process, the `--helper-pid` processes, and the whole machine (so
    /// the rest is everything else: the kernel's own work, or other jobs skewing the figures).
    generator_cpu: Option<f64>,
    server_cpu: Option<f64>,
    helpers_cpu: Option<f64>,
    machine_cpu: Option<f64>,
}

async fn http(a: HttpArgs) -> anyhow::Result<()> {
    if a.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let target = Arc::new(Target::new(&a)?);
    let report = match a.rate {
        Some(rate) if rate > 0.0 => open_loop(&a, target, rate).await?,
        Some(_) => bail!("--rate must be positive"),
        None => closed_loop(&a, target).await?,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_http(&report);
    }
    Ok(())
}

/// Closed loop: each worker sends its next request as soon as the previous one is answered,
/// so the offered load adapts to the server and the throughput is its maximum at this
/// concurrency. Requests completing inside the window count.
async fn closed_loop(a: &HttpArgs, target: Arc<Target>) -> anyhow::Result<HttpReport> {
    let t0 = Instant::now();
    let start = t0 + a.warmup;
    let end = start + a.duration;
    let cpu = tokio::spawn(cpu_over(a.server_pid, a.helper_pids.clone(), start, end));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let mut conn = target.connect(a.timeout);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = conn.send().await;
                let done = Instant::now();
                if result.is_err() {
                    // A refused connection fails instantly; do not spin on it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if done >= start && done < end {
                    tally.record(result, sent.saturating_duration_since(start), done - sent);
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    finish(a, "closed", None, tally, 0, cpu.await?)
}

/// Open loop on a fixed schedule: request k is due at `t0 + k / rate` whatever happened to
/// the previous ones, and its latency runs from that due time. A stalled server therefore
/// shows up as latency instead of silently lowering the offered load (coordinated omission).
///
/// A pacer releases one permit per due request (see [`Pacer`]); `concurrency` connection
/// workers take permits in order, so a request waits for a free connection inside its
/// measured latency.
async fn open_loop(a: &HttpArgs, target: Arc<Target>, rate: f64) -> anyhow::Result<HttpReport> {
    let total = (rate * (a.warmup + a.duration).as_secs_f64()).ceil() as u64;
    let permits = Arc::new(Semaphore::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now() + Duration::from_millis(20);
    let start = t0 + a.warmup;
    let end = start + a.duration;
    // Past this, a backlog is abandoned: the server could not keep up and the figures say so.
    let deadline = end + a.timeout;
    let slot = move |k: u64| t0 + Duration::from_secs_f64(k as f64 / rate);
    let cpu = tokio::spawn(cpu_over(a.server_pid, a.helper_pids.clone(), start, end));

    let mut schedule = Schedule {
        t0,
        rate,
        total,
        released: 0,
        permits: permits.clone(),
    };
    let workers = a.concurrency;
    let pacer = match a.pacer {
        Pacer::Thread => {
            let thread = std::thread::spawn(move || {
                loop {
                    let now = Instant::now();
                    if now > deadline {
                        break;
                    }
                    match schedule.release(now) {
                        Some(next) if next > now => std::thread::sleep(next - now),
                        Some(_) => {}
                        None => break,
                    }
                }
                schedule.finish(workers);
            });
            tokio::task::spawn_blocking(move || {
                let _ = thread.join();
            })
        }
        Pacer::Spin => tokio::spawn(async move {
            let margin = Duration::from_millis(2);
            loop {
                let now = Instant::now();
                if now > deadline {
                    break;
                }
                match schedule.release(now) {
                    // tokio's timer may wake up to a millisecond late: stop sleeping early.
                    Some(next) if next > now + margin => {
                        tokio::time::sleep_until((next - margin).into()).await;
                    }
                    Some(next) if next > now => tokio::task::yield_now().await,
                    Some(_) => {}
                    None => break,
                }
            }
            schedule.finish(workers);
        }),
    };

    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let mut conn = target.connect(a.timeout);
        let (permits, next) = (permits.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let permit = tokio::select! {
                    p = permits.acquire() => p,
                    _ = tokio::time::sleep_until(deadline.into()) => break,
                };
                let Ok(permit) = permit else { break };
                permit.forget();
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total || Instant::now() > deadline {
                    break;
                }
                let due = slot(k);
                let sent = Instant::now();
                let result = conn.send().await;
                let done = Instant::now();
                if due >= start && due < end {
                    if result.is_ok() {
                        tally
                            .lags
                            .push(sent.saturating_duration_since(due).as_nanos() as u64);
                        tally.service.push((done - sent).as_nanos() as u64);
                    }
                    tally.record(result, due - start, done.saturating_duration_since(due));
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    let _ = pacer.await;
    let taken = next.load(Ordering::Relaxed).min(total);
    finish(a, "open", Some(rate), tally, total - taken, cpu.await?)
}

/// The open loop's schedule: releases a permit for each request once it is due.
struct Schedule {
    t0: Instant,
    rate: f64,
    total: u64,
    released: u64,
    permits: Arc<Semaphore>,
}

impl Schedule {
    /// Releases every request due by `now`; returns when the next one is due, or `None` once
    /// all are released.
    fn release(&mut self, now: Instant) -> Option<Instant> {
        let due = |k: u64| self.t0 + Duration::from_secs_f64(k as f64 / self.rate);
        if self.released < self.total && due(self.released) <= now {
            // Everything due by now in one go: the pacer may have been late.
            let elapsed = now.saturating_duration_since(self.t0).as_secs_f64();
            let upto = ((elapsed * self.rate).floor() as u64 + 1).min(self.total);
            self.permits.add_permits((upto - self.released) as usize);
            self.released = upto;
        }
        (self.released < self.total).then(|| due(self.released))
    }

    /// Wakes every idle worker so that it sees the schedule is exhausted.
    fn finish(&self, workers: usize) {
        self.permits.add_permits(workers);
    }
}

/// CPU used over a window, in cores.
struct CpuUse {
    generator: Option<f64>,
    server: Option<f64>,
    helpers: Option<f64>,
    machine: Option<f64>,
}

/// Measures CPU use between `start` and `end`: this process, `server`, `helpers` together,
/// and the whole machine.
async fn cpu_over(server: Option<u32>, helpers: Vec<u32>, start: Instant, end: Instant) -> CpuUse {
    let own = std::process::id();
    let sample = move || {
        let helpers: Option<Duration> = if helpers.is_empty() {
            None
        } else {
            helpers.iter().map(|&p| cpu_time(p)).sum()
        };
        (
            cpu_time(own),
            server.and_then(cpu_time),
            helpers,
            machine_busy(),
        )
    };
    tokio::time::sleep_until(start.into()).await;
    let before = sample();
    tokio::time::sleep_until(end.into()).await;
    let after = sample();
    let window = (end - start).as_secs_f64();
    let cores = |b: Option<Duration>, a: Option<Duration>| {
        Some(a?.saturating_sub(b?).as_secs_f64() / window)
    };
    CpuUse {
        generator: cores(before.0, after.0),
        server: cores(before.1, after.1),
        helpers: cores(before.2, after.2),
        machine: cores(before.3, after.3),
    }
}

/// Milliseconds per USER_HZ tick, the unit of /proc CPU times (USER_HZ is 100 on every Linux
/// ABI this runs on).
const TICK_MS: u64 = 10;

/// CPU time (user + system, all threads) a process has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: count fields from after its closing parenthesis,
    // where field 3 (state) starts; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * TICK_MS))
}

/// Busy CPU time of the whole machine (user, nice, system, irq, softirq), from `/proc/stat`.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?;
    Some(Duration::from_millis(ticks * TICK_MS))
}

fn finish(
    a: &HttpArgs,
    mode: &'static str,
    rate: Option<f64>,
    mut tally: Tally,
    unsent: u64,
    cpu: CpuUse,
) -> anyhow::Result<HttpReport> {
    if let Some(path) = &a.timeline {
        let mut rows: Vec<(u64, u64)> = tally
            .offsets
            .iter()
            .copied()
            .zip(tally.latencies.iter().copied())
            .collect();
        rows.sort_unstable();
        let mut csv = String::from("offset_ms,latency_ms\n");
        for (o, l) in rows {
            csv.push_str(&format!("{:.3},{:.3}\n", o as f64 / 1e6, l as f64 / 1e6));
        }
        std::fs::write(path, csv).with_context(|| format!("--timeline {}", path.display()))?;
    }
    let window = a.duration;
    let requests = tally.status.values().sum::<u64>();
    Ok(HttpReport {
        url: a.url.clone(),
        engine: a.engine,
        mode,
        concurrency: a.concurrency,
        target_rate: rate,
        duration_s: window.as_secs_f64(),
        requests,
        throughput_rps: requests as f64 / window.as_secs_f64(),
        status: tally
            .status
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        errors: tally.errors,
        first_error: tally.first_error.take(),
        unsent,
        latency_ms: Percentiles::of(&mut tally.latencies),
        send_lag_ms: Percentiles::of(&mut tally.lags),
        service_ms: Percentiles::of(&mut tally.service),
        generator_cpu: cpu.generator,
        server_cpu: cpu.server,
        helpers_cpu: cpu.helpers,
        machine_cpu: cpu.machine,
    })
}

fn print_http(r: &HttpReport) {
    let mode = match r.target_rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_owned(),
    };
    println!(
        "{} ({mode}, {} connections, {} engine, {:.1} s)",
        r.url,
        r.concurrency,
        r.engine.name(),
        r.duration_s
    );
    println!(
        "  throughput {:.0} req/s, {} requests",
        r.throughput_rps, r.requests
    );
    let statuses: Vec<String> = r.status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("  status     {}", statuses.join(", "));
    if r.errors > 0 || r.unsent > 0 {
        println!(
            "  errors     {} (first: {}), unsent {}",
            r.errors,
            r.first_error.as_deref().unwrap_or("-"),
            r.unsent
        );
    }
    if let Some(l) = &r.latency_ms {
        println!(
            "  latency ms p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
    }
    if let (Some(l), Some(s)) = (&r.send_lag_ms, &r.service_ms) {
        println!(
            "  send lag   p50 {:.3}  p99 {:.3}  max {:.3} ms; send->response p50 {:.3}  p99 {:.3} ms",
            l.p50, l.p99, l.max, s.p50, s.p99
        );
    }
    let cores = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
    println!(
        "  CPU cores  generator {}, server {}, helpers {}, whole machine {}",
        cores(r.generator_cpu),
        cores(r.server_cpu),
        cores(r.helpers_cpu),
        cores(r.machine_cpu)
    );
}

/// The request every worker sends, prepared once.
struct Target {
    engine: Engine,
    url: reqwest::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    body: Option<String>,
    /// Raw engine: `host:port` and the serialised request.
    addr: String,
    wire: Arc<[u8]>,
    head_only: bool,
    /// reqwest engine: one pooled client shared by every worker.
    client: Option<reqwest::Client>,
}

impl Target {
    fn new(a: &HttpArgs) -> anyhow::Result<Target> {
        let url = reqwest::Url::parse(&a.url).with_context(|| format!("--url {:?}", a.url))?;
        let method = reqwest::Method::from_bytes(a.method.as_bytes())
            .with_context(|| format!("--method {:?}", a.method))?;
        let headers = parse_headers(&a.headers)?;
        let host = url.host_str().context("--url has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = format!("{host}:{port}");
        let mut wire = format!(
            "{method} {}{} HTTP/1.1\r\nHost: {addr}\r\n",
            url.path(),
            url.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        for (k, v) in &headers {
            wire.push_str(&format!("{k}: {}\r\n", v.to_str()?));
        }
        if let Some(b) = &a.body {
            wire.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        wire.push_str("\r\n");
        if let Some(b) = &a.body {
            wire.push_str(b);
        }
        let client = match a.engine {
            Engine::Raw => {
                if url.scheme() != "http" {
                    bail!("the raw engine speaks plain http only; use --engine reqwest");
                }
                None
            }
            Engine::Reqwest => Some(client(a.concurrency, a.timeout)?),
        };
        Ok(Target {
            engine: a.engine,
            head_only: method == reqwest::Method::HEAD,
            url,
            method,
            headers,
            body: a.body.clone(),
            addr,
            wire: wire.into_bytes().into(),
            client,
        })
    }

    fn connect(self: &Arc<Self>, timeout: Duration) -> Conn {
        match self.engine {
            Engine::Raw => Conn::Raw(RawConn {
                target: self.clone(),
                stream: None,
                buf: vec![0; 16 * 1024],
                start: 0,
                end: 0,
                timeout,
            }),
            Engine::Reqwest => Conn::Reqwest(self.clone()),
        }
    }
}

fn client(connections: usize, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections.max(1))
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(timeout)
        .build()?)
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

/// One worker's way of sending the target request.
enum Conn {
    Raw(RawConn),
    Reqwest(Arc<Target>),
}

impl Conn {
    /// Sends the request, reads the whole response, returns its status.
    async fn send(&mut self) -> anyhow::Result<u16> {
        match self {
            Conn::Raw(c) => c.send().await,
            Conn::Reqwest(t) => {
                let client = t.client.as_ref().expect("reqwest engine has a client");
                let mut req = client
                    .request(t.method.clone(), t.url.clone())
                    .headers(t.headers.clone());
                if let Some(b) = &t.body {
                    req = req.body(b.clone());
                }
                let res = req.send().await?;
                let status = res.status().as_u16();
                res.bytes().await?;
                Ok(status)
            }
        }
    }
}

/// A keep-alive HTTP/1.1 connection that sends one prepared request at a time.
struct RawConn {
    target: Arc<Target>,
    stream: Option<TcpStream>,
    /// Bytes received but not yet consumed are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout: Duration,
}

impl RawConn {
    async fn send(&mut self) -> anyhow::Result<u16> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange()).await {
            Ok(r) => r,
            Err(_) => {
                self.stream = None;
                bail!("timed out after {timeout:?}")
            }
        }
    }

    async fn exchange(&mut self) -> anyhow::Result<u16> {
        // A kept-alive connection may have been closed by the server while idle; such a
        // failure before any response byte is retried once on a fresh connection.
        let reused = self.stream.is_some();
        match self.try_exchange().await {
            Ok(s) => Ok(s),
            Err(e) if reused && e.downcast_ref::<Stale>().is_some() => {
                self.stream = None;
                self.try_exchange().await
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn try_exchange(&mut self) -> anyhow::Result<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.target.addr)
                .await
                .with_context(|| format!("connect {}", self.target.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.start = 0;
            self.end = 0;
        }
        let wire = self.target.wire.clone();
        if self.stream_mut().write_all(&wire).await.is_err() {
            return Err(Stale.into());
        }
        let (status, keep_alive) = self.read_response().await?;
        if !keep_alive {
            self.stream = None;
        }
        Ok(status)
    }

    fn stream_mut(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("connected")
    }

    /// Reads more bytes into the buffer; fails on end of stream.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let end = self.end;
        let stream = self.stream.as_mut().expect("connected");
        let n = stream.read(&mut self.buf[end..]).await?;
        if n == 0 {
            bail!("connection closed mid-response");
        }
        self.end += n;
        Ok(())
    }

    /// Reads one response; returns its status and whether the connection stays open.
    async fn read_response(&mut self) -> anyhow::Result<(u16, bool)> {
        let head_end = loop {
            if let Some(p) = find(&self.buf[self.start..self.end], b"\r\n\r\n") {
                break self.start + p + 4;
            }
            let before = self.end;
            if let Err(e) = self.fill().await {
                // Nothing at all came back on a reused connection: it was stale.
                return Err(if before == self.start {
                    Stale.into()
                } else {
                    e
                });
            }
        };
        let head = std::str::from_utf8(&self.buf[self.start..head_end])
            .context("response head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut keep_alive = !status_line.starts_with("HTTP/1.0");
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.parse::<usize>().context("bad Content-Length")?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                keep_alive = !v.eq_ignore_ascii_case("close");
            }
        }
        self.start = head_end;
        let no_body =
            self.target.head_only || status == 204 || status == 304 || (100..200).contains(&status);
        if no_body {
            // Nothing follows the head.
        } else if chunked {
            self.skip_chunked().await?;
        } else if let Some(n) = length {
            self.skip(n).await?;
        } else {
            // Delimited by the end of the connection.
            while self.fill().await.is_ok() {
                self.start = self.end;
            }
            self.start = self.end;
            keep_alive = false;
        }
        Ok((status, keep_alive))
    }

    async fn skip(&mut self, mut n: usize) -> anyhow::Result<()> {
        loop {
            let have = (self.end - self.start).min(n);
            self.start += have;
            n -= have;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> anyhow::Result<()> {
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf[self.start..self.end], b"\r\n") {
                    break self.start + p;
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[self.start..line_end])?;
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("bad chunk size {size_hex:?}"))?;
            self.start = line_end + 2;
            if size == 0 {
                // Trailers, then the final empty line.
                loop {
                    let end = loop {
                        if let Some(p) = find(&self.buf[self.start..self.end], b"\r\n") {
                            break self.start + p;
                        }
                        self.fill().await?;
                    };
                    let empty = end == self.start;
                    self.start = end + 2;
                    if empty {
                        return Ok(());
                    }
                }
            }
            self.skip(size + 2).await?;
        }
    }
}

/// A kept-alive connection turned out to be closed before answering.
#[derive(Debug)]
struct Stale;

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed before the response")
    }
}

impl std::error::Error for Stale {}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// startup

#[derive(Serialize)]
struct StartupRun {
    /// Spawn to the `rampart serving` log line (listeners bound, migrations applied).
    serving_ms: f64,
    /// Spawn to the first 200 from `/health/ready`.
    ready_ms: f64,
    idle_rss_mb: f64,
    /// SIGTERM to exit.
    stop_ms: f64,
    exit_ok: bool,
}

#[derive(Serialize)]
struct StartupReport {
    runs: Vec<StartupRun>,
    ready_ms_median: f64,
    ready_ms_max: f64,
    idle_rss_mb_median: f64,
    idle_rss_mb_max: f64,
}

async fn startup(a: StartupArgs) -> anyhow::Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let http = client(1, Duration::from_secs(2))?;
    let mut runs = Vec::new();
    for i in 0..a.runs {
        let run = startup_once(&a, &http)
            .await
            .with_context(|| format!("startup run {}", i + 1))?;
        if !a.json {
            println!(
                "run {}: ready {:.1} ms (serving line {:.1} ms), idle RSS {:.1} MB, stop {:.0} ms{}",
                i + 1,
                run.ready_ms,
                run.serving_ms,
                run.idle_rss_mb,
                run.stop_ms,
                if run.exit_ok { "" } else { ", non-zero exit" }
            );
        }
        runs.push(run);
    }
    let mut ready: Vec<f64> = runs.iter().map(|r| r.ready_ms).collect();
    let mut rss: Vec<f64> = runs.iter().map(|r| r.idle_rss_mb).collect();
    let report = StartupReport {
        ready_ms_median: median(&mut ready),
        ready_ms_max: ready.iter().copied().fold(0.0, f64::max),
        idle_rss_mb_median: median(&mut rss),
        idle_rss_mb_max: rss.iter().copied().fold(0.0, f64::max),
        runs,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "startup to ready: median {:.1} ms, max {:.1} ms; idle RSS median {:.1} MB, max {:.1} MB",
            report.ready_ms_median,
            report.ready_ms_max,
            report.idle_rss_mb_median,
            report.idle_rss_mb_max
        );
    }
    Ok(())
}

async fn startup_once(a: &StartupArgs, http: &reqwest::Client) -> anyhow::Result<StartupRun> {
    let dir = std::env::temp_dir().join(format!("rampart-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let result = startup_in(a, http, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn startup_in(
    a: &StartupArgs,
    http: &reqwest::Client,
    dir: &std::path::Path,
) -> anyhow::Result<StartupRun> {
    let mut cmd = tokio::process::Command::new(&a.bin);
    cmd.arg("serve")
        .env(
            "RAMPART_DATABASE_URL",
            format!("sqlite://{}/r.db", dir.display()),
        )
        .env("RAMPART_DATA_DIR", dir)
        .env("RAMPART_LISTEN", "127.0.0.1:0")
        .env("RAMPART_OPS_LISTEN", "127.0.0.1:0")
        .env("RAMPART_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawn {}", a.bin.display()))?;
    let pid = child.id().context("child has no pid")?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut stderr = child.stderr.take().context("no stderr")?;

    // The address is only known from the log, since the listeners bind port 0.
    let api = tokio::time::timeout(a.timeout, async {
        while let Some(line) = stdout.next_line().await? {
            if !line.contains("rampart serving") {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line)
                .with_context(|| format!("unparsable log line {line:?}"))?;
            return v["api"]
                .as_str()
                .map(str::to_owned)
                .context("the serving line has no `api` field");
        }
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err).await;
        bail!("the server exited before serving: {}", err.trim())
    })
    .await
    .context("no `rampart serving` line in time")??;
    let serving_ms = ms(spawned.elapsed());
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

    let ready_url = format!("http://{api}/health/ready");
    let ready_ms = loop {
        if let Ok(r) = http.get(&ready_url).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            break ms(spawned.elapsed());
        }
        if spawned.elapsed() > a.timeout {
            bail!("{ready_url} not 200 within {:?}", a.timeout);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };

    tokio::time::sleep(a.idle).await;
    let idle_rss_mb = rss_kb(pid)? as f64 / 1024.0;

    // SIGTERM, the signal a supervisor sends, so the graceful path is what gets timed.
    let stopping = Instant::now();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    if !killed.success() {
        bail!("kill -TERM {pid} failed");
    }
    let status = match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
        Ok(s) => s?,
        Err(_) => {
            child.kill().await?;
            bail!("the server did not exit within 15 s of SIGTERM");
        }
    };
    Ok(StartupRun {
        serving_ms,
        ready_ms,
        idle_rss_mb,
        stop_ms: ms(stopping.elapsed()),
        exit_ok: status.success(),
    })
}

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------
// limits

#[derive(Serialize)]
struct LimitsReport {
    instances: usize,
    total: u64,
    concurrency: usize,
    elapsed_ms: f64,
    admitted: u64,
    refused: u64,
    /// Anything else (unexpected statuses or transport errors): should be 0.
    other: u64,
    errors: u64,
    status: BTreeMap<String, u64>,
    admitted_per_instance: Vec<u64>,
    /// The configured limit, as given.
    limit: Option<String>,
    /// The most admissions the limit allows over this run.
    max_allowed: Option<u64>,
    /// Admissions beyond `max_allowed` (target 0).
    over_admitted: Option<u64>,
    first_error: Option<String>,
}

async fn limits(a: LimitsArgs) -> anyhow::Result<()> {
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
    let http = client(a.concurrency, Duration::from_secs(10))?;
    let next = Arc::new(AtomicU64::new(0));
    let urls = Arc::new(urls);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (http, headers, next, urls) =
            (http.clone(), headers.clone(), next.clone(), urls.clone());
        let total = a.total;
        tasks.push(tokio::spawn(async move {
            let mut status: BTreeMap<u16, u64> = BTreeMap::new();
            let mut admitted = vec![0u64; urls.len()];
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let which = (i % urls.len() as u64) as usize;
                let res = http
                    .get(urls[which].clone())
                    .headers(headers.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) => {
                        let s = r.status();
                        let _ = r.bytes().await;
                        *status.entry(s.as_u16()).or_default() += 1;
                        if s.is_success() {
                            admitted[which] += 1;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (status, admitted, errors, first_error)
        }));
    }
    let mut status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut per_instance = vec![0u64; urls.len()];
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (s, ad, e, fe) = t.await?;
        for (k, v) in s {
            *status.entry(k).or_default() += v;
        }
        for (acc, n) in per_instance.iter_mut().zip(ad) {
            *acc += n;
        }
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let elapsed = started.elapsed();
    let admitted: u64 = per_instance.iter().sum();
    let refused = status.get(&429).copied().unwrap_or(0);
    let max_allowed = expected.as_ref().map(|(_, (count, period), is_rate)| {
        if *is_rate {
            // GCRA: a full burst of `count`, plus one more per emission interval elapsed.
            count + (elapsed.as_secs_f64() * *count as f64 / period.as_secs_f64()).floor() as u64
        } else {
            *count
        }
    });
    let report = LimitsReport {
        instances: urls.len(),
        total: a.total,
        concurrency: a.concurrency,
        elapsed_ms: ms(elapsed),
        admitted,
        refused,
        other: a.total - admitted - refused,
        errors,
        status: status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        admitted_per_instance: per_instance,
        limit: expected.map(|e| e.0),
        max_allowed,
        over_admitted: max_allowed.map(|m| admitted.saturating_sub(m)),
        first_error,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
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
        if let (Some(l), Some(m), Some(o)) =
            (&report.limit, report.max_allowed, report.over_admitted)
        {
            println!("  limit {l}: at most {m} allowed; over-admitted {o}");
        }
        if let Some(e) = &report.first_error {
            println!("  first error: {e}");
        }
    }
    Ok(())
}

/// `N/s`, `N/min`, `N/h` or `N/day`, as Rampart's flags take them.
fn parse_rate(s: &str) -> anyhow::Result<(u64, Duration)> {
    let (n, unit) = s
        .split_once('/')
        .with_context(|| format!("{s:?}: expected N/unit"))?;
    let n: u64 = n.trim().parse().with_context(|| format!("{s:?}"))?;
    let secs = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3_600,
        "d" | "day" => 86_400,
        u => bail!("{s:?}: unknown unit {u:?}"),
    };
    Ok((n, Duration::from_secs(secs)))
}

/// `500ms`, `10s`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("expected a duration such as 500ms or 10s; got {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("unknown duration unit in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}
