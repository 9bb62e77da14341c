//! Closed-loop HTTP load with wrk (Debian's `wrk`): each connection sends its next request as
//! soon as the previous answer arrives, so the throughput is the server's maximum at that
//! concurrency. wrk is written in C with an event loop per thread; on this 2-core machine the
//! generator shares the CPU with the server, and wrk's cost per request is about the smallest
//! there is. A Lua hook (wrk-report.lua) counts statuses and prints the figures as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::stats::Percentiles;

const REPORT_LUA: &str = include_str!("wrk-report.lua");

/// How to install wrk, for the message when it is missing.
pub const INSTALL: &str = "apt-get install wrk";

pub struct Wrk {
    script: PathBuf,
}

/// One wrk invocation.
pub struct WrkRun<'a> {
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub connections: usize,
    pub duration: Duration,
    /// `taskset -c` list for wrk; `None` runs anywhere.
    pub cpus: Option<&'a str>,
}

/// What wrk measured.
pub struct WrkResult {
    pub requests: u64,
    pub elapsed: Duration,
    pub status: BTreeMap<String, u64>,
    /// Connect, read, write errors and timeouts (wrk also counts statuses ≥ 400 as errors;
    /// those are in `status`).
    pub socket_errors: u64,
    pub latency: Percentiles,
}

#[derive(Deserialize)]
struct Raw {
    requests: u64,
    duration_us: u64,
    errors: RawErrors,
    status: BTreeMap<String, u64>,
    latency_us: RawLatency,
}

#[derive(Deserialize)]
struct RawErrors {
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
}

#[derive(Deserialize)]
struct RawLatency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

impl Wrk {
    /// Checks that wrk is installed and writes its report script into `dir`.
    pub fn find(dir: &Path) -> anyhow::Result<Wrk> {
        let found = std::process::Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `wrk --version` prints its usage and exits 1: any exit means it is there.
        if found.is_err() {
            bail!("wrk is not installed; install it with `{INSTALL}` (Debian)");
        }
        let script = dir.join("wrk-report.lua");
        std::fs::write(&script, REPORT_LUA)?;
        Ok(Wrk { script })
    }

    /// The spawned wrk process, for a caller that measures something meanwhile (perf).
    pub fn spawn(&self, r: &WrkRun<'_>) -> anyhow::Result<tokio::process::Child> {
        // Threads: one per CPU it may use (it is pinned to one core in the usual set-up).
        let threads = match r.cpus {
            Some(list) => cpu_count(list),
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
        .min(r.connections)
        .max(1);
        // wrk takes whole seconds.
        let secs = r.duration.as_secs_f64().ceil().max(1.0) as u64;
        let mut argv: Vec<String> = Vec::new();
        if let Some(cpus) = r.cpus {
            argv.extend(["taskset".into(), "-c".into(), cpus.into()]);
        }
        argv.extend([
            "wrk".into(),
            "-t".into(),
            threads.to_string(),
            "-c".into(),
            r.connections.to_string(),
            "-d".into(),
            format!("{secs}s"),
            "--timeout".into(),
            "5s".into(),
            "-s".into(),
            self.script.display().to_string(),
        ]);
        for (k, v) in r.headers {
            argv.extend(["-H".into(), format!("{k}: {v}")]);
        }
        argv.push(r.url.to_owned());
        tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", argv.join(" ")))
    }

    pub async fn run(&self, r: &WrkRun<'_>) -> anyhow::Result<WrkResult> {
        let out = self.spawn(r)?.wait_with_output().await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(json) = stdout
            .lines()
            .find_map(|l| l.strip_prefix("rampart-bench-wrk "))
        else {
            bail!(
                "wrk gave no report ({}): {}{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        };
        parse(json)
    }
}

/// CPUs in a `taskset -c` list such as `0`, `0,2` or `0-3`.
fn cpu_count(list: &str) -> usize {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

fn parse(json: &str) -> anyhow::Result<WrkResult> {
    let raw: Raw = serde_json::from_str(json).context("wrk's report")?;
    let ms = |us: f64| us / 1000.0;
    let l = raw.latency_us;
    Ok(WrkResult {
        requests: raw.requests,
        elapsed: Duration::from_micros(raw.duration_us),
        status: raw.status,
        socket_errors: raw.errors.connect + raw.errors.read + raw.errors.write + raw.errors.timeout,
        latency: Percentiles {
            p50: ms(l.p50),
            p90: ms(l.p90),
            p99: ms(l.p99),
            p999: ms(l.p999),
            max: ms(l.max),
            mean: ms(l.mean),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_list_counts_ranges_and_singles() {
        assert_eq!(cpu_count("0"), 1);
        assert_eq!(cpu_count("0,2"), 2);
        assert_eq!(cpu_count("0-3,6"), 5);
    }

    #[test]
    fn the_report_line_of_the_lua_hook_parses() {
        let line = r#"{"requests":10,"duration_us":2000000,"errors":{"connect":0,"read":1,"write":0,"status":2,"timeout":0},"status":{"200":8,"404":2},"latency_us":{"p50":100.000000,"p90":150.0,"p99":900.0,"p999":990.0,"max":1000.0,"mean":120.5}}"#;
        let r = parse(line).ok();
        assert_eq!(r.as_ref().map(|r| r.requests), Some(10));
        assert_eq!(r.as_ref().map(|r| r.socket_errors), Some(1));
        assert_eq!(
            r.as_ref().and_then(|r| r.status.get("404").copied()),
            Some(2)
        );
        assert_eq!(r.map(|r| r.latency.p99), Some(0.9));
    }
}
