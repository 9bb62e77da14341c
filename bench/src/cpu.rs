//! CPU accounting from /proc: who used the cores during a measurement, and whether the machine
//! is quiet enough to start one. The machine may be shared, so every load run records the CPU
//! of the server, the load generator, the helpers (Redis, Postgres) and the rest of the machine;
//! a run during which the rest was busy is repeated (see `tools::attempts`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Milliseconds per USER_HZ tick, the unit of /proc CPU times (USER_HZ is 100 on every Linux
/// ABI this runs on).
const TICK_MS: u64 = 10;

/// Which processes a measurement watches.
#[derive(Clone, Default)]
pub struct Watch {
    /// The server processes (an API server, workers).
    pub servers: Vec<u32>,
    /// Processes by command name (`redis-server`, `postgres`, whose backends come and go).
    pub helper_comms: Vec<String>,
}

/// CPU times at one instant.
pub struct Sample {
    at: Instant,
    /// This process and the children it has waited for (a load generator it ran, e.g. wrk).
    generator: Option<Duration>,
    servers: Option<Duration>,
    helpers: BTreeMap<u32, Duration>,
    machine: Option<Duration>,
}

/// CPU used over a window, in cores (1.0 = one core busy throughout).
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
pub struct CpuUse {
    pub server: Option<f64>,
    /// The load generator: this process, plus wrk when wrk was the generator.
    pub generator: Option<f64>,
    /// The `helper_comms` processes: Redis or the database server.
    pub helpers: Option<f64>,
    pub machine: Option<f64>,
    /// The machine minus all of the above: the kernel's own work, or other jobs.
    pub rest: Option<f64>,
}

impl Watch {
    pub fn sample(&self) -> Sample {
        let servers = self.servers.iter().map(|&p| cpu_time(p)).sum();
        Sample {
            at: Instant::now(),
            generator: own_and_children(),
            servers,
            helpers: cpu_by_comm(&self.helper_comms),
            machine: machine_busy(),
        }
    }

    /// Cores used between two samples.
    pub fn used(&self, before: &Sample, after: &Sample) -> CpuUse {
        let window = after.at.saturating_duration_since(before.at).as_secs_f64();
        if window <= 0.0 {
            return CpuUse::default();
        }
        let cores = |b: Option<Duration>, a: Option<Duration>| {
            Some(a?.saturating_sub(b?).as_secs_f64() / window)
        };
        // A helper process that appeared during the window counts from zero.
        let helpers = (!self.helper_comms.is_empty()).then(|| {
            after
                .helpers
                .iter()
                .map(|(pid, t)| {
                    t.saturating_sub(before.helpers.get(pid).copied().unwrap_or_default())
                })
                .sum::<Duration>()
                .as_secs_f64()
                / window
        });
        let (server, generator) = (
            cores(before.servers, after.servers),
            cores(before.generator, after.generator),
        );
        let machine = cores(before.machine, after.machine);
        let rest = machine.map(|m| {
            (m - server.unwrap_or(0.0) - generator.unwrap_or(0.0) - helpers.unwrap_or(0.0)).max(0.0)
        });
        CpuUse {
            server,
            generator,
            helpers,
            machine,
            rest,
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the command name, which may contain spaces:
/// index 0 is field 3 (state), so field N is at index N - 3.
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.get(stat.rfind(')')? + 1..)?;
    Some(
        after_comm
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

fn ticks(t: u64) -> Duration {
    Duration::from_millis(t * TICK_MS)
}

/// CPU time (user + system, all threads) a process has used.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let f = stat_fields(&pid.to_string())?;
    Some(ticks(f.get(11)? + f.get(12)?))
}

/// This process's CPU time plus that of the children it has waited for (fields 14 to 17).
fn own_and_children() -> Option<Duration> {
    let f = stat_fields("self")?;
    Some(ticks(f.get(11)? + f.get(12)? + f.get(13)? + f.get(14)?))
}

/// Busy CPU time of the whole machine (user, nice, system, irq, softirq), from `/proc/stat`.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Some(ticks(
        f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?,
    ))
}

/// Processes whose command name (`/proc/<pid>/comm`) is one of `names`, with their CPU time.
pub fn cpu_by_comm(names: &[String]) -> BTreeMap<u32, Duration> {
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

/// Waits until the whole machine used at most `max_busy` cores over a 1 s sample, or gives up
/// after `timeout` (with a warning, so that a run proceeds and its CPU figures show the noise).
pub async fn wait_idle(max_busy: f64, timeout: Duration) {
    let started = Instant::now();
    let mut said = false;
    loop {
        let (t0, b0) = (Instant::now(), machine_busy());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (Some(b0), Some(b1)) = (b0, machine_busy()) else {
            eprintln!("warning: no /proc/stat; not waiting for a quiet machine");
            return;
        };
        let busy = b1.saturating_sub(b0).as_secs_f64() / t0.elapsed().as_secs_f64();
        if busy <= max_busy {
            if said {
                eprintln!("machine quiet ({busy:.2} cores busy)");
            }
            return;
        }
        if started.elapsed() > timeout {
            eprintln!(
                "warning: machine still busy ({busy:.2} cores) after {timeout:?}; measuring anyway"
            );
            return;
        }
        if !said {
            eprintln!("waiting for the machine to be quiet ({busy:.2} cores busy)...");
            said = true;
        }
    }
}
