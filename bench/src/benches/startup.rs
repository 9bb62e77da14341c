//! startup: time from spawn to the first `200` from `/health/ready` on a fresh SQLite database
//! (migrations and secret-key generation included), idle memory, and the graceful stop. Our own
//! code: no load tool times a process's start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

use crate::report::markdown::{Table, met, num};
use crate::stats::median;
use crate::suite::Suite;
use crate::units::{ms, parse_duration};

#[derive(clap::Args)]
pub struct StartupArgs {
    /// The `rampart` binary.
    #[arg(long)]
    pub bin: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// How long the server idles before its RSS is read.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub idle: Duration,
    /// Give up on a run after this long without readiness.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct StartupRun {
    /// Spawn to the `rampart serving` log line (listeners bound, migrations applied).
    pub serving_ms: f64,
    /// Spawn to the first 200 from `/health/ready`.
    pub ready_ms: f64,
    pub idle_rss_mb: f64,
    /// SIGTERM to exit.
    pub stop_ms: f64,
    pub exit_ok: bool,
}

#[derive(Serialize)]
pub struct StartupReport {
    pub runs: Vec<StartupRun>,
    pub ready_ms_median: f64,
    pub ready_ms_max: f64,
    pub idle_rss_mb_median: f64,
    pub idle_rss_mb_max: f64,
}

/// `rampart-bench run startup`.
pub async fn run(suite: &Suite) -> anyhow::Result<()> {
    let k = &suite.knobs;
    crate::cpu::wait_idle(k.quiet_cpu, k.quiet_wait).await;
    let args = StartupArgs {
        bin: suite.rampart.bin.clone(),
        runs: k.startup_runs,
        idle: Duration::from_secs(1),
        timeout: Duration::from_secs(30),
        json: true,
    };
    let r = measure(&args, true).await?;
    suite.write_section("startup", &section(suite, &r), &r)
}

fn section(suite: &Suite, r: &StartupReport) -> String {
    let mut md = format!(
        "## Start-up and idle memory\n\n{}\n\n`rampart-bench startup --runs {}`: each run spawns `rampart serve` (worker included, default log level) on a fresh SQLite database in a new temporary data directory, ports 0, and times spawn → first `200` from `/health/ready` (migrations and secret-key generation included). After 1 s idle it reads `VmRSS` from `/proc/<pid>/status`, then sends SIGTERM and times the exit. Not pinned.\n\n",
        suite.stamp(),
        r.runs.len()
    );
    let mut t = Table::new(
        &[
            "Metric",
            "Median",
            "Max",
            "Target",
            "Median vs target",
            "Met (max)",
        ],
        "lrrrrc",
    );
    t.row(vec![
        "Spawn → ready".into(),
        format!("{} ms", num(r.ready_ms_median, 1)),
        format!("{} ms", num(r.ready_ms_max, 1)),
        "≤ 500 ms".into(),
        format!("{}×", num(r.ready_ms_median / 500.0, 2)),
        met(r.ready_ms_max <= 500.0),
    ]);
    t.row(vec![
        "Idle RSS".into(),
        format!("{} MB", num(r.idle_rss_mb_median, 1)),
        format!("{} MB", num(r.idle_rss_mb_max, 1)),
        "≤ 40 MB".into(),
        format!("{}×", num(r.idle_rss_mb_median / 40.0, 2)),
        met(r.idle_rss_mb_max <= 40.0),
    ]);
    md.push_str(&t.render());
    md.push('\n');
    let mut runs = Table::new(
        &[
            "Run",
            "Spawn → `rampart serving` log line",
            "Spawn → ready",
            "Idle RSS",
            "SIGTERM → exit",
            "Clean exit",
        ],
        "rrrrrc",
    );
    for (i, x) in r.runs.iter().enumerate() {
        runs.row(vec![
            (i + 1).to_string(),
            format!("{} ms", num(x.serving_ms, 1)),
            format!("{} ms", num(x.ready_ms, 1)),
            format!("{} MB", num(x.idle_rss_mb, 1)),
            format!("{} ms", num(x.stop_ms, 0)),
            met(x.exit_ok),
        ]);
    }
    md.push_str(&runs.render());
    md
}

/// `rampart-bench startup`.
pub async fn command(a: StartupArgs) -> anyhow::Result<()> {
    let report = measure(&a, a.json).await?;
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

async fn measure(a: &StartupArgs, quiet: bool) -> anyhow::Result<StartupReport> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let http = crate::api::client(1, Duration::from_secs(2))?;
    let mut runs = Vec::new();
    for i in 0..a.runs {
        let run = once(a, &http)
            .await
            .with_context(|| format!("startup run {}", i + 1))?;
        let line = format!(
            "run {}: ready {:.1} ms (serving line {:.1} ms), idle RSS {:.1} MB, stop {:.0} ms{}",
            i + 1,
            run.ready_ms,
            run.serving_ms,
            run.idle_rss_mb,
            run.stop_ms,
            if run.exit_ok { "" } else { ", non-zero exit" }
        );
        if quiet {
            eprintln!("   {line}");
        } else {
            println!("{line}");
        }
        runs.push(run);
    }
    let ready: Vec<f64> = runs.iter().map(|r| r.ready_ms).collect();
    let rss: Vec<f64> = runs.iter().map(|r| r.idle_rss_mb).collect();
    Ok(StartupReport {
        ready_ms_median: median(ready.iter().copied()).unwrap_or(0.0),
        ready_ms_max: ready.iter().copied().fold(0.0, f64::max),
        idle_rss_mb_median: median(rss.iter().copied()).unwrap_or(0.0),
        idle_rss_mb_max: rss.iter().copied().fold(0.0, f64::max),
        runs,
    })
}

async fn once(a: &StartupArgs, http: &reqwest::Client) -> anyhow::Result<StartupRun> {
    let dir = std::env::temp_dir().join(format!("rampart-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let result = once_in(a, http, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn once_in(
    a: &StartupArgs,
    http: &reqwest::Client,
    dir: &Path,
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

    // Idle time is the thing measured here: the RSS after the server settles.
    tokio::time::sleep(a.idle).await;
    let idle_rss_mb = rss_kb(pid)? as f64 / 1024.0;

    // SIGTERM, the signal a supervisor sends, so the graceful path is what gets timed.
    let stopping = Instant::now();
    crate::procs::rampart::sigterm(pid).await;
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
