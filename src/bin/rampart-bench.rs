//! `rampart-bench`: the load generator behind `bench/run.sh` (see bench/README.md).
//!
//! - `http`: closed-loop (maximum throughput) or open-loop (fixed-rate) load against one URL,
//!   reporting throughput, statuses and latency percentiles.
//! - `startup`: spawns `rampart serve` on a fresh SQLite database, times it to the first
//!   `200` from `/health/ready` and reads its idle resident memory.
//! - `limits`: spreads N requests with one credential over several instances at once and
//!   counts admitted (2xx) against refused (429), to compare with the configured limit.
//! - `webhooks`: creates contacts through the API (each emits `contact.created`) and receives
//!   the signed deliveries on a local HTTP receiver: delivered rate, backlog, end-to-end
//!   latency, duplicates and losses.
//! - `scheduler`: schedules N messages for one instant and receives them through the org's
//!   channel endpoint: lateness, dispatch throughput and exactly-once delivery.
//!
//! Built only with `--features bench-routes`, like the routes it is meant to measure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
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
    /// Drive `POST /v1/contacts` and receive the signed `contact.created` deliveries on a
    /// local receiver: delivered rate, backlog, end-to-end latency, duplicates and losses.
    Webhooks(WebhooksArgs),
    /// Schedule N messages for one instant and receive them through the org's channel
    /// endpoint: lateness, dispatch throughput, exactly-once.
    Scheduler(SchedulerArgs),
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
        Command::Webhooks(a) => webhooks(a).await,
        Command::Scheduler(a) => scheduler(a).await,
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

    let schedule = Schedule {
        t0,
        rate,
        total,
        released: 0,
        permits: permits.clone(),
    };
    let pacer = spawn_pacer(a.pacer, schedule, deadline, a.concurrency);

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

/// Runs `schedule` on `pacer` until every request is released or `deadline` passes, then wakes
/// the `workers` so that they see the schedule is exhausted.
fn spawn_pacer(
    pacer: Pacer,
    mut schedule: Schedule,
    deadline: Instant,
    workers: usize,
) -> tokio::task::JoinHandle<()> {
    match pacer {
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

    /// A raw-engine target at `base` (`http://host:port`) whose requests are built one by one
    /// and sent with [`RawConn::send_wire`].
    fn raw(base: &str) -> anyhow::Result<Target> {
        let url = reqwest::Url::parse(base).with_context(|| format!("--api {base:?}"))?;
        if url.scheme() != "http" {
            bail!("--api must be plain http (the raw engine speaks nothing else)");
        }
        let host = url.host_str().context("--api has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Target {
            engine: Engine::Raw,
            url,
            method: reqwest::Method::POST,
            headers: reqwest::header::HeaderMap::new(),
            body: None,
            addr: format!("{host}:{port}"),
            wire: Arc::from(Vec::new()),
            head_only: false,
            client: None,
        })
    }

    fn raw_conn(self: &Arc<Self>, timeout: Duration) -> RawConn {
        RawConn {
            target: self.clone(),
            stream: None,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            timeout,
        }
    }

    fn connect(self: &Arc<Self>, timeout: Duration) -> Conn {
        match self.engine {
            Engine::Raw => Conn::Raw(self.raw_conn(timeout)),
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
        let wire = self.target.wire.clone();
        self.send_wire(&wire).await
    }

    /// Sends `wire` (a whole serialised request) instead of the target's prepared request.
    async fn send_wire(&mut self, wire: &[u8]) -> anyhow::Result<u16> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(wire)).await {
            Ok(r) => r,
            Err(_) => {
                self.stream = None;
                bail!("timed out after {timeout:?}")
            }
        }
    }

    async fn exchange(&mut self, wire: &[u8]) -> anyhow::Result<u16> {
        // A kept-alive connection may have been closed by the server while idle; such a
        // failure before any response byte is retried once on a fresh connection.
        let reused = self.stream.is_some();
        match self.try_exchange(wire).await {
            Ok(s) => Ok(s),
            Err(e) if reused && e.downcast_ref::<Stale>().is_some() => {
                self.stream = None;
                self.try_exchange(wire).await
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn try_exchange(&mut self, wire: &[u8]) -> anyhow::Result<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.target.addr)
                .await
                .with_context(|| format!("connect {}", self.target.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.start = 0;
            self.end = 0;
        }
        if self.stream_mut().write_all(wire).await.is_err() {
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

// ---------------------------------------------------------------------------------------
// A local receiver of signed webhook deliveries (webhooks and scheduler)

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One request the receiver got.
struct Arrival {
    /// Which endpoint's URL (`/hook/<n>`) it came to.
    endpoint: usize,
    at: Instant,
    /// Wall-clock arrival, in ms since the Unix epoch (compared with `send_at`).
    wall_ms: f64,
    webhook_id: String,
    external_key: Option<String>,
    scheduled_message_id: Option<String>,
    /// The `webhook-signature` verifies with the endpoint's secret (Standard Webhooks).
    signed: bool,
}

/// The part of a delivery's body the benchmarks read.
#[derive(serde::Deserialize)]
struct DeliveryBody {
    data: DeliveryData,
}

#[derive(serde::Deserialize)]
struct DeliveryData {
    external_key: Option<String>,
    scheduled_message_id: Option<String>,
}

#[derive(Default)]
struct Inbox {
    arrivals: std::sync::Mutex<Vec<Arrival>>,
    count: AtomicU64,
    /// Requests that were not a readable delivery (answered 200 all the same).
    malformed: AtomicU64,
    secrets: std::sync::RwLock<Vec<Option<ring::hmac::Key>>>,
}

/// An HTTP/1.1 server on a local port that answers every `POST /hook/<n>` with `200` at once
/// and records it.
struct LocalReceiver {
    addr: std::net::SocketAddr,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalReceiver {
    async fn start(listen: &str) -> anyhow::Result<LocalReceiver> {
        let inbox = Arc::new(Inbox::default());
        let app = axum::Router::new()
            .route("/hook/{n}", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("receiver: bind {listen}"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("receiver stopped: {e}");
            }
        });
        Ok(LocalReceiver { addr, inbox, task })
    }

    fn url(&self, n: usize) -> String {
        format!("http://{}/hook/{n}", self.addr)
    }

    /// Deliveries to endpoint `n` are verified with this `whsec_…` secret.
    fn set_secret(&self, n: usize, secret: &str) -> anyhow::Result<()> {
        let bytes = B64
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .context("undecodable endpoint secret")?;
        let mut secrets = self.inbox.secrets.write().expect("secrets lock");
        if secrets.len() <= n {
            secrets.resize_with(n + 1, || None);
        }
        secrets[n] = Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes));
        Ok(())
    }

    fn count(&self) -> u64 {
        self.inbox.count.load(Ordering::Relaxed)
    }

    /// Applies `f` to the arrivals so far.
    fn with_arrivals<T>(&self, f: impl FnOnce(&[Arrival]) -> T) -> T {
        f(&self.inbox.arrivals.lock().expect("arrivals lock"))
    }

    fn take(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.inbox.arrivals.lock().expect("arrivals lock"))
    }
}

impl Drop for LocalReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    axum::extract::State(inbox): axum::extract::State<Arc<Inbox>>,
    axum::extract::Path(n): axum::extract::Path<usize>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let at = Instant::now();
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let Ok(parsed) = serde_json::from_slice::<DeliveryBody>(&body) else {
        inbox.malformed.fetch_add(1, Ordering::Relaxed);
        return axum::http::StatusCode::OK;
    };
    let webhook_id = header("webhook-id");
    let signed = match inbox.secrets.read().expect("secrets lock").get(n) {
        Some(Some(key)) => verify_signature(
            key,
            webhook_id,
            header("webhook-timestamp"),
            &body,
            header("webhook-signature"),
        ),
        _ => false,
    };
    inbox.arrivals.lock().expect("arrivals lock").push(Arrival {
        endpoint: n,
        at,
        wall_ms,
        webhook_id: webhook_id.to_owned(),
        external_key: parsed.data.external_key,
        scheduled_message_id: parsed.data.scheduled_message_id,
        signed,
    });
    inbox.count.fetch_add(1, Ordering::Relaxed);
    axum::http::StatusCode::OK
}

/// Standard Webhooks: one of the space-separated `v1,<base64>` signatures is the HMAC-SHA256
/// of `{id}.{timestamp}.{body}` under the endpoint's secret.
fn verify_signature(key: &ring::hmac::Key, id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(ts.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let expected = B64.encode(ctx.sign().as_ref());
    header
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// A small JSON client for setting a benchmark up through the public API.
struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    fn new(base: &str, key: &str, connections: usize) -> anyhow::Result<Api> {
        Ok(Api {
            http: client(connections, Duration::from_secs(30))?,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {key}"),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }

    /// `call`, failing unless the status is `want`.
    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        want: u16,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if status != want {
            bail!("{method} {path}: {status} (wanted {want}): {value}");
        }
        Ok(value)
    }

    /// Every item of a list route, following `next_cursor`.
    async fn list_all(&self, path: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
                None => format!("{path}{sep}limit=100"),
            };
            let page = self
                .expect(reqwest::Method::GET, &page_path, None, 200)
                .await?;
            if let Some(items) = page["data"].as_array() {
                out.extend(items.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

impl Percentiles {
    /// Nearest-rank percentiles of values already in milliseconds (may be negative); sorts `v`.
    fn of_ms(v: &mut [f64]) -> Option<Percentiles> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// CPU time per process whose command name (`/proc/<pid>/comm`) is one of `names`.
fn cpu_by_comm(names: &[String]) -> BTreeMap<u32, Duration> {
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return out;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if names.iter().any(|n| n == comm.trim())
            && let Some(t) = cpu_time(pid)
        {
            out.insert(pid, t);
        }
    }
    out
}

/// Like [`cpu_over`], with the helpers named by command (e.g. `postgres`, whose backends come
/// and go): a helper process that appears during the window counts from zero.
async fn cpu_over_comms(
    server: Option<u32>,
    helpers: Vec<String>,
    start: Instant,
    end: Instant,
) -> CpuUse {
    let own = std::process::id();
    tokio::time::sleep_until(start.into()).await;
    let before = (
        cpu_time(own),
        server.and_then(cpu_time),
        cpu_by_comm(&helpers),
        machine_busy(),
    );
    tokio::time::sleep_until(end.into()).await;
    let after = (
        cpu_time(own),
        server.and_then(cpu_time),
        cpu_by_comm(&helpers),
        machine_busy(),
    );
    let window = (end - start).as_secs_f64();
    let cores = |b: Option<Duration>, a: Option<Duration>| {
        Some(a?.saturating_sub(b?).as_secs_f64() / window)
    };
    let helpers_used = (!helpers.is_empty()).then(|| {
        after
            .2
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.2.get(pid).copied().unwrap_or_default()))
            .sum::<Duration>()
            .as_secs_f64()
            / window
    });
    CpuUse {
        generator: cores(before.0, after.0),
        server: cores(before.1, after.1),
        helpers: helpers_used,
        machine: cores(before.3, after.3),
    }
}

#[derive(Serialize)]
struct CpuReport {
    /// This process: the write generator and the receiver.
    bench: Option<f64>,
    server: Option<f64>,
    /// The `--helper-comm` processes (the database server).
    helpers: Option<f64>,
    machine: Option<f64>,
    /// The whole machine minus the above: the kernel's own work or other jobs.
    rest: Option<f64>,
}

impl From<CpuUse> for CpuReport {
    fn from(c: CpuUse) -> Self {
        let rest = c.machine.map(|m| {
            (m - c.generator.unwrap_or(0.0) - c.server.unwrap_or(0.0) - c.helpers.unwrap_or(0.0))
                .max(0.0)
        });
        CpuReport {
            bench: c.generator,
            server: c.server,
            helpers: c.helpers,
            machine: c.machine,
            rest,
        }
    }
}

// ---------------------------------------------------------------------------------------
// webhooks

#[derive(Args)]
struct WebhooksArgs {
    /// The API's base URL, plain http (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    api: String,
    /// A live API key with the `webhooks` and `contacts` scopes and `write` permission.
    #[arg(long)]
    key: String,
    /// Endpoints subscribed to `contact.created`: each write fans out to every one of them.
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// Open loop: writes per second on a fixed schedule. Without it, closed loop (each
    /// connection writes again as soon as its previous write is answered).
    #[arg(long)]
    rate: Option<f64>,
    /// Connections the writes go out on (closed loop: writes in flight).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured window of offered load, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load offered before the measured window (its deliveries count in losses, not in rates).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Once the load ends, how long outstanding deliveries are waited for before they count
    /// as lost.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Per-write timeout (a timed-out write counts as an error).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    #[arg(long, value_enum, default_value_t = Pacer::Thread)]
    pacer: Pacer,
    /// Report the CPU this process (server with its worker) used over the measured window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Processes by command name (e.g. `postgres`) whose CPU is reported apart (repeatable).
    #[arg(long = "helper-comm")]
    helper_comms: Vec<String>,
    /// Where the receiver listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[arg(long)]
    json: bool,
}

/// One write: `POST /v1/contacts` with external key `<prefix>-<k>`.
struct WriteRec {
    k: u64,
    /// Open loop: when it was due.
    due: Option<Instant>,
    sent: Instant,
    done: Instant,
    status: Option<u16>,
}

impl WriteRec {
    fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Serialize)]
struct WritesReport {
    /// Writes sent over the whole run (warm-up included).
    sent: u64,
    accepted: u64,
    status: BTreeMap<String, u64>,
    errors: u64,
    first_error: Option<String>,
    /// Open loop: scheduled writes never sent (the generator or server fell too far behind).
    unsent: u64,
    /// Writes per second offered in the measured window: the schedule's rate (open loop), or
    /// what was sent (closed loop).
    offered_rps: f64,
    /// 2xx writes per second among those sent in the measured window.
    accepted_rps: f64,
    /// Send → response of the window's writes.
    api_latency_ms: Option<Percentiles>,
    /// Open loop: how late writes left relative to their schedule.
    send_lag_ms: Option<Percentiles>,
}

#[derive(Serialize)]
struct DeliveriesReport {
    /// Accepted writes × endpoints.
    expected: u64,
    /// Distinct (write, endpoint) pairs received.
    received: u64,
    /// Requests received in all (duplicates and strays included).
    requests: u64,
    /// Requests whose `webhook-id` an endpoint had already received.
    duplicates: u64,
    /// Expected deliveries not received within the drain deadline.
    lost: u64,
    /// Deliveries for writes that did not get a 2xx, or not from this run.
    unexpected: u64,
    /// Requests whose signature did not verify with the endpoint's secret.
    bad_signatures: u64,
    /// Requests the receiver could not read as a delivery.
    malformed: u64,
    /// Distinct deliveries received per second during the measured window.
    window_rps: f64,
    /// Slowest and fastest whole second of the window.
    window_second_min: u64,
    window_second_max: u64,
    /// Deliveries owed at the end of the offered load: those of the accepted writes offered
    /// (due, or sent) before it, not received by then, including writes the API had not
    /// answered yet.
    backlog_at_end: u64,
    /// Deliveries received after the end of the offered load (the backlog, plus those of
    /// writes offered before the end but answered after it).
    received_after_end: u64,
    /// From the end of the offered load to the last expected delivery (null: some were lost).
    drain_s: Option<f64>,
    /// `received_after_end / drain_s`: the delivery rate once the writes have stopped.
    drain_rps: Option<f64>,
    /// Every delivery, from the first write to the last delivery.
    overall_rps: f64,
    /// Per second since the first write: distinct deliveries received.
    per_second: Vec<u64>,
}

#[derive(Serialize)]
struct WebhooksReport {
    mode: &'static str,
    endpoints: usize,
    concurrency: usize,
    target_rate: Option<f64>,
    warmup_s: f64,
    duration_s: f64,
    writes: WritesReport,
    deliveries: DeliveriesReport,
    /// Write sent → delivery received, for the window's accepted writes, every endpoint.
    e2e_ms: Option<Percentiles>,
    /// Open loop: write due (scheduled) → delivery received, i.e. with the generator's lag.
    e2e_from_due_ms: Option<Percentiles>,
    /// CPU in cores over the measured window.
    cpu: CpuReport,
}

async fn webhooks(a: WebhooksArgs) -> anyhow::Result<()> {
    if a.concurrency == 0 || a.endpoints == 0 {
        bail!("--concurrency and --endpoints must be at least 1");
    }
    if a.rate.is_some_and(|r| r <= 0.0) {
        bail!("--rate must be positive");
    }
    let rx = LocalReceiver::start(&a.listen).await?;
    let api = Api::new(&a.api, &a.key, 4)?;
    let mut endpoint_ids = Vec::new();
    for n in 0..a.endpoints {
        let ep = api
            .expect(
                reqwest::Method::POST,
                "/v1/webhooks",
                Some(&serde_json::json!({
                    "url": rx.url(n),
                    "events": ["contact.created"],
                    "description": "rampart-bench webhooks",
                })),
                201,
            )
            .await?;
        rx.set_secret(n, ep["secret"].as_str().context("no secret")?)?;
        endpoint_ids.push(ep["id"].as_str().context("no endpoint id")?.to_owned());
    }
    let result = webhooks_run(&a, &rx).await;
    // Best effort: the endpoints go, so that a later run in the same org does not feed them.
    for id in &endpoint_ids {
        let _ = api
            .call(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), None)
            .await;
    }
    let report = result?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_webhooks(&report);
    }
    Ok(())
}

async fn webhooks_run(a: &WebhooksArgs, rx: &LocalReceiver) -> anyhow::Result<WebhooksReport> {
    let target = Arc::new(Target::raw(&a.api)?);
    let prefix = format!("wb{}", uuid::Uuid::now_v7().simple());
    let head = format!(
        "POST /v1/contacts HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n",
        target.addr, a.key
    );
    let wire = {
        let (head, prefix) = (head.clone(), prefix.clone());
        Arc::new(move |k: u64| {
            let body = format!(r#"{{"external_key":"{prefix}-{k}"}}"#);
            format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
        })
    };

    let t0 = Instant::now() + Duration::from_millis(20);
    let start = t0 + a.warmup;
    let end = start + a.duration;
    let cpu = tokio::spawn(cpu_over_comms(
        a.server_pid,
        a.helper_comms.clone(),
        start,
        end,
    ));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut pacer = None;
    let mut total = 0;
    match a.rate {
        Some(rate) => {
            total = (rate * (a.warmup + a.duration).as_secs_f64()).ceil() as u64;
            let permits = Arc::new(Semaphore::new(0));
            let deadline = end + a.timeout;
            let schedule = Schedule {
                t0,
                rate,
                total,
                released: 0,
                permits: permits.clone(),
            };
            pacer = Some(spawn_pacer(a.pacer, schedule, deadline, a.concurrency));
            for _ in 0..a.concurrency {
                let mut conn = target.raw_conn(a.timeout);
                let (permits, next, wire) = (permits.clone(), next.clone(), wire.clone());
                tasks.push(tokio::spawn(async move {
                    let mut recs = Vec::new();
                    let mut errors = Vec::new();
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
                        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
                        let bytes = wire(k);
                        let sent = Instant::now();
                        let result = conn.send_wire(&bytes).await;
                        let done = Instant::now();
                        if let Err(e) = &result {
                            errors.push(format!("{e:#}"));
                        }
                        recs.push(WriteRec {
                            k,
                            due: Some(due),
                            sent,
                            done,
                            status: result.ok(),
                        });
                    }
                    (recs, errors)
                }));
            }
        }
        None => {
            for _ in 0..a.concurrency {
                let mut conn = target.raw_conn(a.timeout);
                let (next, wire) = (next.clone(), wire.clone());
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(t0.into()).await;
                    let mut recs = Vec::new();
                    let mut errors = Vec::new();
                    while Instant::now() < end {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let bytes = wire(k);
                        let sent = Instant::now();
                        let result = conn.send_wire(&bytes).await;
                        let done = Instant::now();
                        if let Err(e) = &result {
                            errors.push(format!("{e:#}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        recs.push(WriteRec {
                            k,
                            due: None,
                            sent,
                            done,
                            status: result.ok(),
                        });
                    }
                    (recs, errors)
                }));
            }
        }
    }
    let mut writes: Vec<WriteRec> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for t in tasks {
        let (r, e) = t.await?;
        writes.extend(r);
        errors.extend(e);
    }
    if let Some(p) = pacer {
        let _ = p.await;
    }
    let unsent = total.saturating_sub(writes.len() as u64);
    let cpu = cpu.await?;

    // Drain: wait until every accepted write reached every endpoint, or the deadline.
    let accepted: std::collections::HashSet<u64> = writes
        .iter()
        .filter(|w| w.accepted())
        .map(|w| w.k)
        .collect();
    let expected = accepted.len() as u64 * a.endpoints as u64;
    let key_of = |ext: &str| -> Option<u64> {
        ext.strip_prefix(prefix.as_str())?
            .strip_prefix('-')?
            .parse()
            .ok()
    };
    let drain_deadline = Instant::now().max(end) + a.drain_timeout;
    loop {
        if rx.count() >= expected {
            let got = rx.with_arrivals(|arr| {
                let mut seen = std::collections::HashSet::new();
                for x in arr {
                    if let Some(k) = x.external_key.as_deref().and_then(key_of)
                        && accepted.contains(&k)
                    {
                        seen.insert((x.endpoint, k));
                    }
                }
                seen.len() as u64
            });
            if got >= expected {
                break;
            }
        }
        if Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Duplicates that arrive right after the last expected delivery are counted too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let arrivals = rx.take();
    let malformed = rx.inbox.malformed.load(Ordering::Relaxed);

    // Match deliveries to writes.
    let by_k: std::collections::HashMap<u64, &WriteRec> = writes.iter().map(|w| (w.k, w)).collect();
    let mut first: std::collections::HashMap<(usize, u64), Instant> =
        std::collections::HashMap::new();
    let mut ids: std::collections::HashMap<(usize, &str), u64> = std::collections::HashMap::new();
    let (mut bad_signatures, mut unexpected) = (0u64, 0u64);
    for x in &arrivals {
        if !x.signed {
            bad_signatures += 1;
        }
        *ids.entry((x.endpoint, x.webhook_id.as_str())).or_default() += 1;
        match x.external_key.as_deref().and_then(key_of) {
            Some(k) if accepted.contains(&k) => {
                let t = first.entry((x.endpoint, k)).or_insert(x.at);
                *t = (*t).min(x.at);
            }
            _ => unexpected += 1,
        }
    }
    let duplicates: u64 = ids.values().map(|n| n - 1).sum();
    let received = first.len() as u64;
    let lost = expected - received.min(expected);

    let in_window = |t: Instant| t >= start && t < end;
    let window_writes: Vec<&WriteRec> = writes
        .iter()
        .filter(|w| in_window(w.due.unwrap_or(w.sent)))
        .collect();
    let accepted_in_window = window_writes.iter().filter(|w| w.accepted()).count();
    let mut api_latency: Vec<u64> = window_writes
        .iter()
        .filter(|w| w.status.is_some())
        .map(|w| (w.done - w.sent).as_nanos() as u64)
        .collect();
    let mut lags: Vec<u64> = window_writes
        .iter()
        .filter_map(|w| Some(w.sent.saturating_duration_since(w.due?).as_nanos() as u64))
        .collect();
    let (mut e2e, mut e2e_due) = (Vec::new(), Vec::new());
    for w in window_writes.iter().filter(|w| w.accepted()) {
        for n in 0..a.endpoints {
            if let Some(at) = first.get(&(n, w.k)) {
                e2e.push(at.saturating_duration_since(w.sent).as_nanos() as u64);
                if let Some(due) = w.due {
                    e2e_due.push(at.saturating_duration_since(due).as_nanos() as u64);
                }
            }
        }
    }

    // Delivered rate, per second since t0, and the backlog at the end of the load.
    let last = first.values().copied().max();
    let seconds = last.map_or(0, |l| {
        l.saturating_duration_since(t0).as_secs() as usize + 1
    });
    let mut per_second = vec![0u64; seconds];
    for at in first.values() {
        per_second[at.saturating_duration_since(t0).as_secs() as usize] += 1;
    }
    let window_secs = (a.warmup.as_secs() as usize)..((a.warmup + a.duration).as_secs() as usize);
    let window_per_second: Vec<u64> = window_secs
        .map(|s| per_second.get(s).copied().unwrap_or(0))
        .collect();
    let delivered_in_window = first.values().filter(|t| in_window(**t)).count();
    // Owed at the end: deliveries of the accepted writes offered (due, or sent) before it,
    // including writes the API had not answered yet.
    let offered_by_end = |w: &WriteRec| w.due.unwrap_or(w.sent) < end;
    let owed = writes
        .iter()
        .filter(|w| w.accepted() && offered_by_end(w))
        .count() as u64
        * a.endpoints as u64;
    let paid = first
        .iter()
        .filter(|((_, k), at)| **at < end && by_k.get(k).is_some_and(|w| offered_by_end(w)))
        .count() as u64;
    let after_end = first.values().filter(|t| **t >= end).count() as u64;
    let drain_s = match last {
        Some(l) if lost == 0 => Some(l.saturating_duration_since(end).as_secs_f64()),
        _ => None,
    };
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    for w in &writes {
        if let Some(s) = w.status {
            *status.entry(s.to_string()).or_default() += 1;
        }
    }
    let window = a.duration.as_secs_f64();
    Ok(WebhooksReport {
        mode: if a.rate.is_some() { "open" } else { "closed" },
        endpoints: a.endpoints,
        concurrency: a.concurrency,
        target_rate: a.rate,
        warmup_s: a.warmup.as_secs_f64(),
        duration_s: window,
        writes: WritesReport {
            sent: writes.len() as u64,
            accepted: accepted.len() as u64,
            status,
            errors: errors.len() as u64,
            first_error: errors.into_iter().next(),
            unsent,
            offered_rps: a.rate.unwrap_or(window_writes.len() as f64 / window),
            accepted_rps: accepted_in_window as f64 / window,
            api_latency_ms: Percentiles::of(&mut api_latency),
            send_lag_ms: Percentiles::of(&mut lags),
        },
        deliveries: DeliveriesReport {
            expected,
            received,
            requests: arrivals.len() as u64,
            duplicates,
            lost,
            unexpected,
            bad_signatures,
            malformed,
            window_rps: delivered_in_window as f64 / window,
            window_second_min: window_per_second.iter().copied().min().unwrap_or(0),
            window_second_max: window_per_second.iter().copied().max().unwrap_or(0),
            backlog_at_end: owed.saturating_sub(paid),
            received_after_end: after_end,
            drain_s,
            drain_rps: drain_s.filter(|d| *d > 0.05).map(|d| after_end as f64 / d),
            overall_rps: match last {
                Some(l) if l > t0 => received as f64 / (l - t0).as_secs_f64(),
                _ => 0.0,
            },
            per_second,
        },
        e2e_ms: Percentiles::of(&mut e2e),
        e2e_from_due_ms: Percentiles::of(&mut e2e_due),
        cpu: cpu.into(),
    })
}

fn print_webhooks(r: &WebhooksReport) {
    let mode = match r.target_rate {
        Some(rate) => format!("open loop at {rate} writes/s"),
        None => format!("closed loop, {} in flight", r.concurrency),
    };
    let w = &r.writes;
    let d = &r.deliveries;
    println!(
        "webhooks: {} endpoint(s), {mode}, {:.0} s + {:.0} s warm-up",
        r.endpoints, r.duration_s, r.warmup_s
    );
    println!(
        "  writes     offered {:.0}/s, accepted {:.0}/s; sent {}, accepted {}, errors {}, unsent {}, status {:?}",
        w.offered_rps, w.accepted_rps, w.sent, w.accepted, w.errors, w.unsent, w.status
    );
    if let Some(e) = &w.first_error {
        println!("  first error {e}");
    }
    if let Some(l) = &w.api_latency_ms {
        println!(
            "  API ms     p50 {:.2}  p99 {:.2}  max {:.2}",
            l.p50, l.p99, l.max
        );
    }
    println!(
        "  deliveries {:.0}/s in the window (seconds {}..{}), {:.0}/s overall; backlog at end {}, drain {}",
        d.window_rps,
        d.window_second_min,
        d.window_second_max,
        d.overall_rps,
        d.backlog_at_end,
        d.drain_s
            .map_or_else(|| "incomplete".to_owned(), |s| format!("{s:.2} s"))
    );
    println!(
        "             expected {}, received {}, duplicates {}, lost {}, unexpected {}, bad signatures {}, malformed {}",
        d.expected, d.received, d.duplicates, d.lost, d.unexpected, d.bad_signatures, d.malformed
    );
    if let Some(l) = &r.e2e_ms {
        println!(
            "  e2e ms     p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.max
        );
    }
    let cores = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
    println!(
        "  CPU cores  bench {}, server {}, helpers {}, rest {}",
        cores(r.cpu.bench),
        cores(r.cpu.server),
        cores(r.cpu.helpers),
        cores(r.cpu.rest)
    );
}

// ---------------------------------------------------------------------------------------
// scheduler

#[derive(Args)]
struct SchedulerArgs {
    /// The API's base URL (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    api: String,
    /// A live API key with the `webhooks`, `contacts`, `conversations`, `scheduled_messages`
    /// and `messages` scopes and `read` and `write` permissions.
    #[arg(long)]
    key: String,
    /// Scheduled messages, all for the same `send_at`.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// `send_at` is this long after the creation starts; every message must be created
    /// before it (the report says whether they were).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lead: Duration,
    /// Creation requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long after `send_at` messages are waited for before the rest count as lost.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Once every message has arrived, how long the receiver keeps listening for duplicates.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    linger: Duration,
    /// Where the receiver listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SchedulerReport {
    count: usize,
    send_at: String,
    lead_s: f64,
    create: CreateReport,
    arrivals: SchedArrivals,
    /// Receiver arrival − send_at, per message (first arrival).
    lateness_ms: Option<Percentiles>,
    /// `dispatched_at` (as the API shows it) − send_at.
    dispatch_lateness_ms: Option<Percentiles>,
    /// First and last arrival, relative to send_at.
    first_arrival_ms: Option<f64>,
    last_arrival_ms: Option<f64>,
    /// Messages per second from the first arrival to the last.
    delivery_rps: Option<f64>,
    /// First and last `dispatched_at`, relative to send_at, and messages per second between.
    first_dispatch_ms: Option<f64>,
    last_dispatch_ms: Option<f64>,
    dispatch_rps: Option<f64>,
    api: SchedApi,
}

#[derive(Serialize)]
struct CreateReport {
    created: usize,
    status: BTreeMap<String, u64>,
    errors: u64,
    first_error: Option<String>,
    elapsed_s: f64,
    rps: f64,
    latency_ms: Option<Percentiles>,
    /// send_at − the last creation's answer: positive means every message was created first.
    margin_s: f64,
}

#[derive(Serialize)]
struct SchedArrivals {
    /// Requests the channel endpoint received.
    requests: u64,
    /// Distinct scheduled messages among them (created in this run).
    distinct: u64,
    /// Requests for a scheduled message already received.
    duplicates: u64,
    /// Requests repeating a `webhook-id` already received.
    duplicate_webhook_ids: u64,
    /// Created but never received within the deadline.
    missing: u64,
    /// Received but not created by this run (or without a scheduled message id).
    unexpected: u64,
    /// Received before send_at.
    early: u64,
    bad_signatures: u64,
    malformed: u64,
}

#[derive(Serialize)]
struct SchedApi {
    /// Scheduled messages of this run by status, as `GET /v1/scheduled-messages` shows them.
    scheduled_status: BTreeMap<String, u64>,
    /// The conversation's messages by status (`GET /v1/messages`).
    message_status: BTreeMap<String, u64>,
    /// Messages per scheduled message: anything but 1 breaks exactly-once.
    scheduled_without_message: u64,
    scheduled_with_several_messages: u64,
    /// Seconds after the last arrival until the API showed every message sent (or gave up).
    settled_after_s: f64,
}

async fn scheduler(a: SchedulerArgs) -> anyhow::Result<()> {
    use reqwest::Method;
    use serde_json::json;
    if a.count == 0 || a.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let rx = LocalReceiver::start(&a.listen).await?;
    let api = Arc::new(Api::new(&a.api, &a.key, a.concurrency)?);
    let ep = api
        .expect(
            Method::POST,
            "/v1/webhooks",
            Some(
                &json!({ "url": rx.url(0), "events": ["*"], "kind": "channel",
                          "description": "rampart-bench scheduler channel" }),
            ),
            201,
        )
        .await?;
    rx.set_secret(0, ep["secret"].as_str().context("no secret")?)?;
    let ep_id = ep["id"].as_str().context("no endpoint id")?.to_owned();
    let contact = api
        .expect(
            Method::POST,
            "/v1/contacts",
            Some(&json!({ "external_key": format!("sched-{}", uuid::Uuid::now_v7()) })),
            201,
        )
        .await?;
    let conv = api
        .expect(
            Method::POST,
            "/v1/conversations",
            Some(&json!({ "contact_id": contact["id"], "channel": "sms" })),
            201,
        )
        .await?;
    let conv_id = conv["id"]
        .as_str()
        .context("no conversation id")?
        .to_owned();
    let result = scheduler_run(&a, &rx, &api, &conv_id).await;
    let _ = api
        .call(Method::DELETE, &format!("/v1/webhooks/{ep_id}"), None)
        .await;
    let report = result?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_scheduler(&report);
    }
    Ok(())
}

async fn scheduler_run(
    a: &SchedulerArgs,
    rx: &LocalReceiver,
    api: &Arc<Api>,
    conv_id: &str,
) -> anyhow::Result<SchedulerReport> {
    use reqwest::Method;
    let now_ms = rampart::clock::now_ms;
    let send_at_ms = now_ms() + a.lead.as_millis() as i64;
    let send_at = rampart::clock::rfc3339(send_at_ms);

    // Create them all, `concurrency` at a time.
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (api, next, send_at, conv_id) = (
            api.clone(),
            next.clone(),
            send_at.clone(),
            conv_id.to_owned(),
        );
        let count = a.count as u64;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut status: BTreeMap<String, u64> = BTreeMap::new();
            let mut latency = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let body = serde_json::json!({
                    "conversation_id": conv_id, "body": format!("scheduled {i}"), "send_at": send_at,
                });
                let t = Instant::now();
                match api
                    .call(Method::POST, "/v1/scheduled-messages", Some(&body))
                    .await
                {
                    Ok((s, v)) => {
                        latency.push(t.elapsed().as_nanos() as u64);
                        *status.entry(s.to_string()).or_default() += 1;
                        if s == 201 {
                            if let Some(id) = v["id"].as_str() {
                                ids.push(id.to_owned());
                            }
                        } else if errors.is_empty() {
                            errors.push(format!("{s}: {v}"));
                        }
                    }
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            (ids, status, latency, errors)
        }));
    }
    let mut created = std::collections::HashSet::new();
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    let mut latency = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (i, s, l, e) = t.await?;
        created.extend(i);
        for (k, v) in s {
            *status.entry(k).or_default() += v;
        }
        latency.extend(l);
        errors.extend(e);
    }
    let create_elapsed = started.elapsed();
    let margin_s = (send_at_ms - now_ms()) as f64 / 1000.0;
    let errors_n = status
        .iter()
        .filter(|(k, _)| k.as_str() != "201")
        .map(|(_, v)| *v)
        .sum::<u64>()
        + errors
            .iter()
            .filter(|e| !e.starts_with(char::is_numeric))
            .count() as u64;

    // Wait for every created message at the channel, or the deadline.
    let deadline_ms = send_at_ms as f64 + a.drain_timeout.as_secs_f64() * 1000.0;
    let distinct_of = |arr: &[Arrival]| {
        arr.iter()
            .filter_map(|x| x.scheduled_message_id.as_deref())
            .filter(|id| created.contains(*id))
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    loop {
        if rx.count() as usize >= created.len() && rx.with_arrivals(distinct_of) >= created.len() {
            break;
        }
        if (now_ms() as f64) > deadline_ms {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let complete_at = Instant::now();
    tokio::time::sleep(a.linger).await;

    // What the API says: every scheduled message dispatched, every message sent.
    let mut scheduled: Vec<serde_json::Value>;
    let mut messages: Vec<serde_json::Value>;
    let settle_deadline = Instant::now() + Duration::from_secs(15);
    loop {
        scheduled = api.list_all("/v1/scheduled-messages").await?;
        messages = api
            .list_all(&format!("/v1/messages?conversation_id={conv_id}"))
            .await?;
        let all_sent = messages.len() >= created.len()
            && messages.iter().all(|m| m["status"] == "sent")
            && scheduled
                .iter()
                .filter(|s| s["id"].as_str().is_some_and(|id| created.contains(id)))
                .all(|s| s["status"] == "dispatched");
        if all_sent || Instant::now() > settle_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settled_after_s = complete_at.elapsed().saturating_sub(a.linger).as_secs_f64();

    let arrivals = rx.take();
    let mut first: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    let mut ids: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let (mut unexpected, mut bad_signatures, mut matched) = (0u64, 0u64, 0u64);
    for x in &arrivals {
        if !x.signed {
            bad_signatures += 1;
        }
        *ids.entry(x.webhook_id.as_str()).or_default() += 1;
        match x.scheduled_message_id.as_deref() {
            Some(id) if created.contains(id) => {
                matched += 1;
                let t = first.entry(id).or_insert(x.wall_ms);
                *t = t.min(x.wall_ms);
            }
            _ => unexpected += 1,
        }
    }
    let send = send_at_ms as f64;
    let mut lateness: Vec<f64> = first.values().map(|t| t - send).collect();
    let early = lateness.iter().filter(|l| **l < 0.0).count() as u64;
    let first_arrival = lateness.iter().copied().reduce(f64::min);
    let last_arrival = lateness.iter().copied().reduce(f64::max);
    let mut scheduled_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut dispatch: Vec<f64> = Vec::new();
    for s in scheduled
        .iter()
        .filter(|s| s["id"].as_str().is_some_and(|id| created.contains(id)))
    {
        *scheduled_status
            .entry(s["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if let Some(t) = s["dispatched_at"]
            .as_str()
            .and_then(rampart::clock::parse_rfc3339)
        {
            dispatch.push((t - send_at_ms) as f64);
        }
    }
    let mut message_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_scheduled: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for m in &messages {
        *message_status
            .entry(m["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if let Some(id) = m["scheduled_message_id"].as_str() {
            *per_scheduled.entry(id).or_default() += 1;
        }
    }
    let first_dispatch = dispatch.iter().copied().reduce(f64::min);
    let last_dispatch = dispatch.iter().copied().reduce(f64::max);
    let rate = |n: usize, a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > a => Some(n as f64 / ((b - a) / 1000.0)),
        _ => None,
    };
    let distinct = first.len();
    Ok(SchedulerReport {
        count: a.count,
        send_at,
        lead_s: a.lead.as_secs_f64(),
        create: CreateReport {
            created: created.len(),
            status,
            errors: errors_n,
            first_error: errors.into_iter().next(),
            elapsed_s: create_elapsed.as_secs_f64(),
            rps: created.len() as f64 / create_elapsed.as_secs_f64(),
            latency_ms: Percentiles::of(&mut latency),
            margin_s,
        },
        arrivals: SchedArrivals {
            requests: arrivals.len() as u64,
            distinct: distinct as u64,
            duplicates: matched - distinct as u64,
            duplicate_webhook_ids: ids.values().map(|n| n - 1).sum(),
            missing: (created.len() - distinct) as u64,
            unexpected,
            early,
            bad_signatures,
            malformed: rx.inbox.malformed.load(Ordering::Relaxed),
        },
        delivery_rps: rate(distinct, first_arrival, last_arrival),
        first_arrival_ms: first_arrival,
        last_arrival_ms: last_arrival,
        lateness_ms: Percentiles::of_ms(&mut lateness),
        dispatch_rps: rate(dispatch.len(), first_dispatch, last_dispatch),
        first_dispatch_ms: first_dispatch,
        last_dispatch_ms: last_dispatch,
        dispatch_lateness_ms: Percentiles::of_ms(&mut dispatch),
        api: SchedApi {
            scheduled_without_message: created
                .iter()
                .filter(|id| !per_scheduled.contains_key(id.as_str()))
                .count() as u64,
            scheduled_with_several_messages: per_scheduled.values().filter(|n| **n > 1).count()
                as u64,
            scheduled_status,
            message_status,
            settled_after_s,
        },
    })
}

fn print_scheduler(r: &SchedulerReport) {
    let c = &r.create;
    println!(
        "scheduler: {} messages for {} (lead {:.0} s)",
        r.count, r.send_at, r.lead_s
    );
    println!(
        "  created    {} in {:.2} s ({:.0}/s), errors {}, {:.1} s before send_at; status {:?}",
        c.created, c.elapsed_s, c.rps, c.errors, c.margin_s, c.status
    );
    let x = &r.arrivals;
    println!(
        "  received   {} distinct of {} requests: duplicates {}, duplicate webhook-ids {}, missing {}, unexpected {}, early {}, bad signatures {}",
        x.distinct,
        x.requests,
        x.duplicates,
        x.duplicate_webhook_ids,
        x.missing,
        x.unexpected,
        x.early,
        x.bad_signatures
    );
    if let Some(l) = &r.lateness_ms {
        println!(
            "  lateness   arrival − send_at ms: p50 {:.1}  p99 {:.1}  max {:.1}",
            l.p50, l.p99, l.max
        );
    }
    if let Some(l) = &r.dispatch_lateness_ms {
        println!(
            "             dispatched_at − send_at ms: p50 {:.1}  p99 {:.1}  max {:.1}",
            l.p50, l.p99, l.max
        );
    }
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    println!(
        "  throughput {} msg/s delivered ({} → {} ms), {} msg/s dispatched ({} → {} ms)",
        f(r.delivery_rps),
        f(r.first_arrival_ms),
        f(r.last_arrival_ms),
        f(r.dispatch_rps),
        f(r.first_dispatch_ms),
        f(r.last_dispatch_ms)
    );
    println!(
        "  API        scheduled {:?}; messages {:?}; without message {}, with several {}",
        r.api.scheduled_status,
        r.api.message_status,
        r.api.scheduled_without_message,
        r.api.scheduled_with_several_messages
    );
}
