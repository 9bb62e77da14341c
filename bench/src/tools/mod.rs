//! Load runs as every benchmark records them: closed loop through wrk, fixed rate through our
//! open loop, each with the CPU every party used, after a quiet check, and repeated while
//! other work on the machine skewed it.

pub mod open_loop;
pub mod wrk;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cpu::{CpuUse, Watch};
use crate::knobs::Knobs;
use crate::stats::Percentiles;
use open_loop::{Pacer, Plan};
use wrk::{Wrk, WrkRun};

/// A GET with headers, the load of the guard and read benchmarks.
pub struct Target {
    /// `host:port`.
    pub addr: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Target {
    pub fn new(api: &str, path: &str, headers: Vec<(String, String)>) -> Target {
        Target {
            addr: api.to_owned(),
            path: path.to_owned(),
            headers,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }
}

/// One measured load run.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoadRun {
    /// `wrk` (closed loop) or `open-loop` (ours, fixed rate).
    pub tool: String,
    /// `closed` or `open`.
    pub mode: String,
    pub connections: usize,
    /// Open loop: requests per second offered.
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    /// Answered requests (any status) in the measured window.
    pub requests: u64,
    pub throughput_rps: f64,
    pub status: BTreeMap<String, u64>,
    /// Answers whose status was not 2xx.
    pub non_2xx: u64,
    /// Transport errors and timeouts.
    pub errors: u64,
    /// Open loop: requests due but never sent (every connection was busy until the deadline).
    pub unsent: u64,
    /// Closed loop: send → response. Open loop: due time → response, queueing included.
    pub latency_ms: Option<Percentiles>,
    /// Open loop: how late requests left relative to their schedule.
    pub send_lag_ms: Option<Percentiles>,
    /// Open loop: send → response, i.e. the latency without the lag.
    pub service_ms: Option<Percentiles>,
    pub cpu: CpuUse,
    /// Runs it took to get one without interference (the last one stands).
    pub attempts: usize,
}

/// A result whose CPU accounting tells whether other work skewed it.
pub trait Measured {
    fn rest_cpu(&self) -> f64;
    fn set_attempts(&mut self, n: usize);
}

impl Measured for LoadRun {
    fn rest_cpu(&self) -> f64 {
        self.cpu.rest.unwrap_or(0.0)
    }
    fn set_attempts(&mut self, n: usize) {
        self.attempts = n;
    }
}

/// Waits for a quiet machine, runs `f`, and repeats it (up to `BENCH_ATTEMPTS` runs in all)
/// while other work took more than `BENCH_MAX_REST` cores; the last run stands.
pub async fn measure<T: Measured, Fut>(
    knobs: &Knobs,
    mut f: impl FnMut() -> Fut,
) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut attempt = 1;
    loop {
        crate::cpu::wait_idle(knobs.quiet_cpu, knobs.quiet_wait).await;
        let mut run = f().await?;
        run.set_attempts(attempt);
        let rest = run.rest_cpu();
        if rest <= knobs.max_rest || attempt >= knobs.attempts {
            return Ok(run);
        }
        eprintln!("   (other work used {rest:.2} cores during that run: repeating it)");
        attempt += 1;
    }
}

/// Closed loop with wrk: a warm-up run, then the measured one.
pub async fn closed_loop(
    knobs: &Knobs,
    wrk: &Wrk,
    target: &Target,
    connections: usize,
    cpus: Option<&str>,
    watch: &Watch,
) -> anyhow::Result<LoadRun> {
    let url = target.url();
    let mut run = WrkRun {
        url: &url,
        headers: &target.headers,
        connections,
        duration: knobs.warmup,
        cpus,
    };
    if !knobs.warmup.is_zero() {
        wrk.run(&run).await?;
    }
    run.duration = knobs.duration;
    let before = watch.sample();
    let r = wrk.run(&run).await?;
    let cpu = watch.used(&before, &watch.sample());
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    Ok(LoadRun {
        tool: "wrk".into(),
        mode: "closed".into(),
        connections,
        target_rate: None,
        duration_s: secs,
        requests: r.requests,
        throughput_rps: r.requests as f64 / secs,
        non_2xx: non_2xx(&r.status),
        status: r.status,
        errors: r.socket_errors,
        unsent: 0,
        latency_ms: Some(r.latency),
        send_lag_ms: None,
        service_ms: None,
        cpu,
        attempts: 1,
    })
}

/// Open loop at `rate` for warm-up + duration, over `connections`; only requests due in the
/// measured window count. Runs in this process: `rampart-bench open-loop`, which `run` starts
/// as a separate (pinned) process through [`fixed_rate_process`].
pub async fn fixed_rate(
    target: &Target,
    rate: f64,
    connections: usize,
    (warmup, duration): (Duration, Duration),
    pacer: Pacer,
    watch: &Watch,
) -> anyhow::Result<LoadRun> {
    let t0 = Instant::now() + Duration::from_millis(20);
    let start = t0 + warmup;
    let end = start + duration;
    let timeout = Duration::from_secs(5);
    let plan = Plan {
        addr: target.addr.clone(),
        rate,
        connections,
        t0,
        total: (rate * (warmup + duration).as_secs_f64()).ceil() as u64,
        deadline: end + timeout,
        timeout,
        pacer,
    };
    let cpu = {
        let watch = watch.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let before = watch.sample();
            tokio::time::sleep_until(end.into()).await;
            watch.used(&before, &watch.sample())
        })
    };
    let (addr, path, headers) = (
        target.addr.clone(),
        target.path.clone(),
        target.headers.clone(),
    );
    let make: open_loop::MakeRequest = std::sync::Arc::new(move |_| {
        open_loop::request(hyper::Method::GET, &addr, &path, &headers, None)
    });
    let outcome = open_loop::run(plan, make).await?;
    let cpu = cpu.await?;

    let (mut latency, mut lags, mut service) = (Vec::new(), Vec::new(), Vec::new());
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = 0;
    for s in outcome
        .sent
        .iter()
        .filter(|s| s.due >= start && s.due < end)
    {
        match &s.outcome {
            Ok(code) => {
                *status.entry(code.to_string()).or_default() += 1;
                latency.push(s.done.saturating_duration_since(s.due).as_nanos() as u64);
                lags.push(s.sent.saturating_duration_since(s.due).as_nanos() as u64);
                service.push(s.done.saturating_duration_since(s.sent).as_nanos() as u64);
            }
            Err(_) => errors += 1,
        }
    }
    let requests: u64 = status.values().sum();
    let secs = duration.as_secs_f64();
    Ok(LoadRun {
        tool: "open-loop".into(),
        mode: "open".into(),
        connections,
        target_rate: Some(rate),
        duration_s: secs,
        requests,
        throughput_rps: requests as f64 / secs,
        non_2xx: non_2xx(&status),
        status,
        errors,
        unsent: outcome.unsent,
        latency_ms: Percentiles::of_ns(&mut latency),
        send_lag_ms: Percentiles::of_ns(&mut lags),
        service_ms: Percentiles::of_ns(&mut service),
        cpu,
        attempts: 1,
    })
}

/// [`fixed_rate`] in a process of its own (`rampart-bench open-loop`), pinned to the load
/// generator's CPUs: the load comes from a separate process, as from wrk, and the generator
/// can spin for a precise schedule on a core of its own.
pub async fn fixed_rate_process(
    knobs: &Knobs,
    target: &Target,
    rate: f64,
    watch: &Watch,
) -> anyhow::Result<LoadRun> {
    let exe = std::env::current_exe()?;
    let mut argv: Vec<String> = Vec::new();
    if let Some(cpus) = &knobs.load_cpus {
        argv.extend(["taskset".into(), "-c".into(), cpus.clone()]);
    }
    argv.extend([
        exe.display().to_string(),
        "open-loop".into(),
        "--url".into(),
        target.url(),
        "--rate".into(),
        rate.to_string(),
        "--connections".into(),
        knobs.open_connections.to_string(),
        "--warmup".into(),
        crate::units::show_duration(knobs.warmup),
        "--duration".into(),
        crate::units::show_duration(knobs.duration),
        // With a core of its own, the generator can afford to spin for a precise schedule.
        "--pacer".into(),
        if knobs.load_cpus.is_some() {
            "spin"
        } else {
            "thread"
        }
        .into(),
        "--json".into(),
    ]);
    for (k, v) in &target.headers {
        argv.extend(["-H".into(), format!("{k}: {v}")]);
    }
    for pid in &watch.servers {
        argv.extend(["--server-pid".into(), pid.to_string()]);
    }
    for comm in &watch.helper_comms {
        argv.extend(["--helper-comm".into(), comm.clone()]);
    }
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!(
            "rampart-bench open-loop failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn non_2xx(status: &BTreeMap<String, u64>) -> u64 {
    status
        .iter()
        .filter(|(s, _)| !s.starts_with('2'))
        .map(|(_, n)| n)
        .sum()
}

/// The progress line for one run.
pub fn describe(label: &str, r: &LoadRun) -> String {
    let rate = r
        .target_rate
        .map_or_else(String::new, |t| format!(" @{t}/s"));
    let (p50, p99) = r.latency_ms.as_ref().map_or((0.0, 0.0), |l| (l.p50, l.p99));
    let c = |v: Option<f64>| v.unwrap_or(0.0);
    format!(
        "   {label} {}{rate}: {:.0} req/s, p50 {p50:.3} ms, p99 {p99:.3} ms, non-2xx {}, errors {}, CPU server {:.2} generator {:.2} helpers {:.2} rest {:.2}",
        r.mode,
        r.throughput_rps,
        r.non_2xx,
        r.errors + r.unsent,
        c(r.cpu.server),
        c(r.cpu.generator),
        c(r.cpu.helpers),
        c(r.cpu.rest)
    )
}
