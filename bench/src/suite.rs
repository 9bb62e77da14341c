//! `rampart-bench run`: the benchmarks in one command. Builds the shared context (knobs,
//! temporary directory, the binary under test, Postgres, wrk), runs the chosen benchmarks,
//! keeps each one's figures in bench/results/<name>.{md,json}, then rebuilds
//! docs/BENCHMARKS.md from every section there, so a subset run refreshes only its sections.
//! Servers are stopped and databases dropped at the end, even on failure or Ctrl-C.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::benches;
use crate::knobs::Knobs;
use crate::procs::rampart::{Rampart, Server};
use crate::procs::services::Postgres;
use crate::tools::wrk::{Wrk, WrkRun};

/// Every benchmark, in the order of docs/BENCHMARKS.md.
pub const BENCHMARKS: [&str; 8] = [
    "startup",
    "guard",
    "instructions",
    "read",
    "console",
    "limits",
    "webhooks",
    "scheduler",
];

pub struct Suite {
    pub knobs: Knobs,
    pub results: PathBuf,
    pub doc: PathBuf,
    pub tmp: PathBuf,
    pub rampart: Rampart,
    pub pg: Postgres,
    pub wrk: Wrk,
    /// The commit measured and the command that measured it, for the section stamps.
    pub git_sha: String,
    pub command: String,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Benchmarks to run (default: all): startup guard instructions read console limits webhooks
    /// scheduler.
    pub names: Vec<String>,
    /// The `rampart` binary, built with `--features bench-routes` (default: next to this one).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// The repository (default: the one this tool was built from).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// How the run was asked for, as the sections record it (default: `rampart-bench run …`).
    #[arg(long)]
    pub command: Option<String>,
}

pub async fn run(a: RunArgs) -> anyhow::Result<()> {
    let names: Vec<String> = if a.names.is_empty() {
        BENCHMARKS.iter().map(|n| (*n).to_owned()).collect()
    } else {
        a.names.clone()
    };
    if let Some(bad) = names.iter().find(|n| !BENCHMARKS.contains(&n.as_str())) {
        bail!("unknown benchmark {bad} (known: {})", BENCHMARKS.join(" "));
    }
    let knobs = Knobs::from_env()?;
    let root = match a.root {
        Some(r) => r,
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    };
    let bin = match a.bin {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("rampart"),
    };
    if !bin.exists() {
        bail!(
            "no rampart binary at {} (build it with --features bench-routes)",
            bin.display()
        );
    }
    let tmp = std::env::temp_dir().join(format!("rampart-bench.{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&tmp)?;
    let suite = Suite {
        results: root.join("bench/results"),
        doc: root.join("docs/BENCHMARKS.md"),
        rampart: Rampart::new(bin, tmp.clone())?,
        pg: Postgres::new(&knobs.pg_url),
        wrk: Wrk::find(&tmp)?,
        git_sha: git_sha(&root),
        command: a.command.unwrap_or_else(|| {
            format!("rampart-bench run {}", a.names.join(" "))
                .trim()
                .to_owned()
        }),
        knobs,
        tmp,
    };
    std::fs::create_dir_all(&suite.results)?;
    // Ctrl-C drops the running benchmark, whose servers are killed with it; the cleanup below
    // then drops the databases.
    let outcome = tokio::select! {
        r = run_all(&suite, &names) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    suite.pg.drop_all().await;
    if suite.knobs.keep_tmp {
        eprintln!("kept {}", suite.tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&suite.tmp);
    }
    outcome
}

async fn run_all(suite: &Suite, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        eprintln!("\n== {name}");
        match name.as_str() {
            "startup" => benches::startup::run(suite).await,
            "guard" => benches::guard::run(suite).await,
            "instructions" => benches::instructions::run(suite).await,
            "read" => benches::read::run(suite).await,
            "console" => benches::console::run(suite).await,
            "limits" => benches::limits::run(suite).await,
            "webhooks" => benches::webhooks::run(suite).await,
            "scheduler" => benches::scheduler::run(suite).await,
            _ => bail!("unknown benchmark {name}"),
        }
        .with_context(|| format!("benchmark {name}"))?;
    }
    crate::report::doc::write(suite).await?;
    eprintln!("\n== wrote {}", suite.doc.display());
    Ok(())
}

impl Suite {
    /// Stores a benchmark's section (markdown starting with a `## ` heading) and raw figures.
    pub fn write_section(
        &self,
        name: &str,
        markdown: &str,
        raw: &impl Serialize,
    ) -> anyhow::Result<()> {
        std::fs::write(self.results.join(format!("{name}.md")), markdown)?;
        std::fs::write(
            self.results.join(format!("{name}.json")),
            serde_json::to_string_pretty(raw)? + "\n",
        )?;
        Ok(())
    }

    /// Removes a stale result file (e.g. a profile this run could not take).
    pub fn remove_result(&self, file: &str) {
        let _ = std::fs::remove_file(self.results.join(file));
    }

    /// The line under each section's heading: when, at which commit, with which command.
    pub fn stamp(&self) -> String {
        format!(
            "_Measured {} at `{}` with `{}`._",
            crate::report::doc::utc_now(),
            self.git_sha,
            self.command
        )
    }

    /// The machine reference: req/s of the bare route on `server` (closed loop with wrk, 64
    /// connections, 3 s, not pinned). Printed with a section's figures so that a slow or
    /// crowded host (which the quiet check does not always see: a VM can be slow without
    /// steal) shows beside them instead of passing for a property of the code.
    pub async fn machine_reference(&self, server: &Server) -> anyhow::Result<f64> {
        crate::cpu::wait_idle(self.knobs.quiet_cpu, self.knobs.quiet_wait).await;
        let url = server.url("/bench/bare");
        let mut run = WrkRun {
            url: &url,
            headers: &[],
            connections: 64,
            duration: std::time::Duration::from_secs(1),
            cpus: None,
        };
        self.wrk.run(&run).await?;
        run.duration = std::time::Duration::from_secs(3);
        let r = self.wrk.run(&run).await?;
        Ok((r.requests as f64 / r.elapsed.as_secs_f64().max(1e-9)).round())
    }
}

/// The sentence that reports a machine reference.
pub fn reference_line(rps: f64) -> String {
    format!(
        "Machine reference at the time: `GET /bench/bare` on this section's first server did {rps} req/s (wrk, closed loop, 64 connections, 3 s, not pinned). Compare it across sections and runs: on a day when this VM was slow without showing steal (2026-12-03, every figure 2–3× worse than the day before), the old generator measured about 31,000–35,000; a figure well below the others means the host, not the code, was slow."
    )
}

fn git_sha(root: &std::path::Path) -> String {
    std::process::Command::new("git")
        .args([
            "-C",
            &root.display().to_string(),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}
