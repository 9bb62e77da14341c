//! `rampart-bench`: Rampart's benchmarks (see bench/README.md).
//!
//! `rampart-bench run [NAMES…]` runs the benchmarks against the real `rampart` binary and
//! writes bench/results/ and docs/BENCHMARKS.md; bench/run.sh builds and calls it. The other
//! subcommands are the measurements of our own, usable against a server you started:
//!
//! - `open-loop`: fixed-rate load on one URL, latency from each request's scheduled time;
//! - `startup`: spawn → ready of `rampart serve` on a fresh SQLite database, idle RSS;
//! - `limits`: requests spread over several instances, admitted against refused;
//! - `webhooks`: API writes → signed deliveries at a local receiver;
//! - `scheduler`: N messages due at one instant, received through the channel endpoint;
//! - `wait-idle`: wait until the machine is quiet.
//!
//! Closed-loop throughput is wrk's (Debian's `wrk`), run by `run`.

mod api;
mod benches;
mod cpu;
mod knobs;
mod procs;
mod profile;
mod receiver;
mod report;
mod stats;
mod suite;
mod tools;
mod units;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use tools::open_loop::Pacer;
use units::parse_duration;

#[derive(Parser)]
#[command(name = "rampart-bench", about = "Rampart's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run benchmarks (default: all) and rewrite bench/results/ and docs/BENCHMARKS.md.
    Run(suite::RunArgs),
    /// Fixed-rate (open-loop) load on one URL; latency from each request's scheduled time.
    OpenLoop(OpenLoopArgs),
    /// Time `BIN serve` from spawn to ready on a fresh SQLite database; read its idle RSS.
    Startup(benches::startup::StartupArgs),
    /// Fire --total requests across several instances; count admitted against refused.
    Limits(benches::limits::LimitsArgs),
    /// Drive `POST /v1/contacts` and receive the signed `contact.created` deliveries on a
    /// local receiver: delivered rate, backlog, end-to-end latency, duplicates and losses.
    Webhooks(benches::webhooks::measure::WebhooksArgs),
    /// Schedule N messages for one instant and receive them through the org's channel
    /// endpoint: lateness, dispatch throughput, exactly-once.
    Scheduler(benches::scheduler::measure::SchedulerArgs),
    /// Wait until the machine is quiet (other work would skew a measurement on a shared box).
    WaitIdle(WaitIdleArgs),
}

#[derive(Args)]
struct OpenLoopArgs {
    /// Target URL, plain http.
    #[arg(long)]
    url: String,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Requests per second, on a fixed schedule.
    #[arg(long)]
    rate: f64,
    /// Connections serving the schedule: the most requests in flight.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load applied before the measured window, not recorded.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    #[arg(long, value_enum, default_value_t = Pacer::Thread)]
    pacer: Pacer,
    /// Report this process's CPU use over the window (the server's; repeatable).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Processes by command name (e.g. `redis-server`) whose CPU is reported apart.
    #[arg(long = "helper-comm")]
    helper_comms: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct WaitIdleArgs {
    /// Quiet means the whole machine used at most this many cores over a 1 s sample.
    #[arg(long, default_value_t = 0.25)]
    max_busy: f64,
    /// Give up (with a warning, so a run can proceed and report the noise) after this.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built without a default crypto provider; plain http never uses it, but the
    // client builder requires one to be installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Run(a) => suite::run(a).await,
        Command::OpenLoop(a) => open_loop(a).await,
        Command::Startup(a) => benches::startup::command(a).await,
        Command::Limits(a) => benches::limits::command(a).await,
        Command::Webhooks(a) => benches::webhooks::measure::command(a).await,
        Command::Scheduler(a) => benches::scheduler::measure::command(a).await,
        Command::WaitIdle(a) => {
            cpu::wait_idle(a.max_busy, a.timeout).await;
            Ok(())
        }
    }
}

async fn open_loop(a: OpenLoopArgs) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(&a.url)?;
    anyhow::ensure!(url.scheme() == "http", "--url must be plain http");
    let addr = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80)
    );
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let headers = a
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--header {h:?}: expected `Name: value`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let target = tools::Target::new(&addr, &path, headers);
    let watch = cpu::Watch {
        servers: a.server_pids,
        helper_comms: a.helper_comms,
    };
    let run = tools::fixed_rate(
        &target,
        a.rate,
        a.connections,
        (a.warmup, a.duration),
        a.pacer,
        &watch,
    )
    .await?;
    if a.json {
        println!("{}", serde_json::to_string(&run)?);
    } else {
        println!("{}", tools::describe(&a.url, &run));
        if let (Some(lag), Some(s)) = (&run.send_lag_ms, &run.service_ms) {
            println!(
                "   send lag p50 {:.3} p99 {:.3} ms; send → response p50 {:.3} p99 {:.3} ms",
                lag.p50, lag.p99, s.p50, s.p99
            );
        }
    }
    Ok(())
}
