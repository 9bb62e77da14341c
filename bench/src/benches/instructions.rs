//! instructions: the user-space instructions the server executes per request of the bare and
//! the guarded route, counted by callgrind. Unlike req/s on a shared VM, a count that other
//! work on the machine does not move: the guard's cost, compared across commits. The requests
//! come from wrk (4 connections); callgrind's counters are zeroed and dumped around each run.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::benches::guard::{BARE, GUARDED};
use crate::procs::rampart::{Env, Launch};
use crate::report::markdown::{Table, num};
use crate::suite::Suite;
use crate::tools::wrk::WrkRun;

#[derive(Serialize)]
struct Count {
    store: String,
    route: String,
    requests: u64,
    instructions: u64,
}

pub async fn run(suite: &Suite) -> anyhow::Result<()> {
    if !installed("valgrind") || !installed("callgrind_control") {
        eprintln!("instructions: valgrind not installed (apt-get install valgrind); skipped");
        suite.remove_result("instructions.md");
        suite.remove_result("instructions.json");
        return Ok(());
    }
    let k = &suite.knobs;
    let mut counts = Vec::new();
    for store in ["memory", "redis"] {
        eprintln!("instructions: limiter store {store}");
        let dir = suite.tmp.join(format!("instructions-{store}"));
        std::fs::create_dir_all(&dir)?;
        let mut env = Env::new()
            .set(
                "RAMPART_DATABASE_URL",
                format!("sqlite://{}/r.db", dir.display()),
            )
            .set("RAMPART_DATA_DIR", dir.display().to_string())
            .set("RAMPART_LOG", k.server_log.clone());
        if store == "redis" {
            env = env.set("RAMPART_REDIS_URL", k.redis_url.clone());
        }
        let key = suite
            .rampart
            .bench_key(
                &env,
                &format!("bench-instructions-{store}"),
                "messages",
                "read",
            )
            .await?;
        let wrap = vec![
            "valgrind".to_owned(),
            "--tool=callgrind".to_owned(),
            format!("--callgrind-out-file={}/cg.%p", dir.display()),
        ];
        let server = suite
            .rampart
            .start(&Launch {
                name: &format!("instructions-{store}"),
                args: &["serve", "--no-worker"],
                env: &env,
                cpus: None,
                wrap: &wrap,
            })
            .await?;
        let auth = vec![("Authorization".to_owned(), format!("Bearer {key}"))];
        let (bare, guarded) = (server.url(BARE), server.url(GUARDED));
        let load = |route: &str, duration: Duration| WrkRun {
            url: if route == "bare" { &bare } else { &guarded },
            headers: if route == "bare" { &[] } else { &auth },
            connections: 4,
            duration,
            cpus: None,
        };
        // Caches filled and every path taken once before anything is counted.
        for route in ["bare", "guarded"] {
            suite.wrk.run(&load(route, Duration::from_secs(2))).await?;
        }
        for (dumps, route) in ["bare", "guarded", "bare", "guarded"]
            .into_iter()
            .enumerate()
        {
            callgrind_control(&["-z", &server.pid.to_string()]).await?;
            let r = suite.wrk.run(&load(route, k.instr_duration)).await?;
            callgrind_control(&["-d", route, &server.pid.to_string()]).await?;
            let file = dir.join(format!("cg.{}.{}", server.pid, dumps + 1));
            let instructions = read_summary(&file).await?;
            eprintln!(
                "   {store} {route}: {} requests, {} instructions per request",
                r.requests,
                instructions / r.requests.max(1)
            );
            counts.push(Count {
                store: store.into(),
                route: route.into(),
                requests: r.requests,
                instructions,
            });
        }
        server.stop().await;
    }
    let md = section(suite, &counts);
    suite.write_section("instructions", &md, &counts)
}

fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

async fn callgrind_control(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("callgrind_control")
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "callgrind_control {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The `summary:` line of a callgrind dump, which callgrind writes in the background.
async fn read_summary(file: &std::path::Path) -> anyhow::Result<u64> {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Some(n) = text.lines().find_map(|l| l.strip_prefix("summary:"))
        {
            return n
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .context("callgrind summary");
        }
        // The dump is written asynchronously by the server's callgrind.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no callgrind dump at {}", file.display())
}

fn section(suite: &Suite, counts: &[Count]) -> String {
    let k = &suite.knobs;
    let mut md = format!(
        "## Instructions per request (callgrind)\n\n{}\n\nThe guard benchmark's two routes on one `rampart serve --no-worker` (SQLite, `RAMPART_LOG={}`) run under `valgrind --tool=callgrind`: after a warm-up, the counters are zeroed, wrk sends requests for {} (4 connections), and the server's instructions since the zeroing are divided by the requests answered; each route twice, alternating, and the table gives the mean. What other work on a shared VM does to req/s it does not do to this count: it moves by a few percent at most between runs (the server's background work, such as limiter refills and metrics upkeep, is counted too), so it is the figure to compare across commits. It counts user space only: the kernel's socket work, the same for both routes and a large share of a no-op request's cost, is not in it, so *guarded / bare* here overstates what the guard costs in throughput. Under valgrind, SHA-256 runs without the CPU's SHA extensions, which inflates the API-key hash a little.\n\n",
        suite.stamp(),
        k.server_log,
        crate::units::show_duration(k.instr_duration)
    );
    let mut t = Table::new(
        &[
            "Limiter store",
            "Bare, instructions/request",
            "Guarded, instructions/request",
            "Guard overhead",
            "Guarded / bare",
        ],
        "lrrrr",
    );
    for store in ["memory", "redis"] {
        let per = |route: &str| {
            let (i, n) = counts
                .iter()
                .filter(|c| c.store == store && c.route == route)
                .fold((0u64, 0u64), |(i, n), c| {
                    (i + c.instructions, n + c.requests)
                });
            i as f64 / n.max(1) as f64
        };
        let (b, g) = (per("bare"), per("guarded"));
        t.row(vec![
            store.into(),
            num(b, 0),
            num(g, 0),
            num(g - b, 0),
            num(g / b, 2),
        ]);
    }
    md.push_str(&t.render());
    md
}
