//! The `rampart` binary under test: servers and workers started with an environment (SQLite
//! or Postgres, Redis or not), pinned to CPUs or wrapped in valgrind, and `rampart admin` calls
//! made with the same environment so that they see the servers' database and secret key.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// `RAMPART_*` variables for a server, a worker and the admin commands that set them up.
#[derive(Clone, Default)]
pub struct Env(Vec<(String, String)>);

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn set(mut self, name: &str, value: impl Into<String>) -> Env {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value.into()));
        self
    }
}

/// How a server process is started.
pub struct Launch<'a> {
    /// Names its log files (`<tmp>/<name>.log`, `.err`).
    pub name: &'a str,
    /// `["serve"]` (with the in-process worker) or `["serve", "--no-worker"]`.
    pub args: &'a [&'a str],
    pub env: &'a Env,
    /// `taskset -c` list; `None` runs anywhere.
    pub cpus: Option<&'a str>,
    /// A command the server runs under (valgrind), empty for none.
    pub wrap: &'a [String],
}

/// A running server. Dropped without [`Server::stop`] (a failure, Ctrl-C), it is killed.
pub struct Server {
    pub pid: u32,
    /// `host:port` of the API listener.
    pub api: String,
    child: tokio::process::Child,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// SIGTERM, the signal a supervisor sends, then waits for the graceful exit.
    pub async fn stop(mut self) {
        sigterm(self.pid).await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "server {} did not stop within 30 s of SIGTERM; killing it",
                self.pid
            );
            let _ = self.child.kill().await;
        }
    }
}

pub async fn sigterm(pid: u32) {
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
}

/// The binary and where its processes' logs go.
pub struct Rampart {
    pub bin: PathBuf,
    pub logs: PathBuf,
    http: reqwest::Client,
}

impl Rampart {
    pub fn new(bin: PathBuf, logs: PathBuf) -> anyhow::Result<Rampart> {
        Ok(Rampart {
            bin,
            logs,
            http: crate::api::client(1, Duration::from_secs(2))?,
        })
    }

    fn command(&self, program: &Path, env: &Env) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.envs(env.0.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Starts a server on ports 0 and waits until `/health/ready` answers 200.
    pub async fn start(&self, l: &Launch<'_>) -> anyhow::Result<Server> {
        let log = self.logs.join(format!("{}.log", l.name));
        let err = self.logs.join(format!("{}.err", l.name));
        // taskset and valgrind run the server in their own process (exec), so the child's pid
        // is the server's.
        let mut argv: Vec<String> = Vec::new();
        if let Some(cpus) = l.cpus {
            argv.extend(["taskset".into(), "-c".into(), cpus.into()]);
        }
        argv.extend(l.wrap.iter().cloned());
        argv.push(self.bin.display().to_string());
        argv.extend(l.args.iter().map(|a| (*a).to_owned()));
        let env = l
            .env
            .clone()
            .set("RAMPART_LISTEN", "127.0.0.1:0")
            .set("RAMPART_OPS_LISTEN", "127.0.0.1:0")
            .set("RAMPART_LOG_FORMAT", "json");
        let mut cmd = self.command(Path::new(&argv[0]), &env);
        cmd.args(&argv[1..])
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&err)?);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", argv.join(" ")))?;
        let pid = child.id().context("the server has no pid")?;
        // The address is only known from the log, since the listeners bind port 0.
        let started = Instant::now();
        loop {
            if let Some(api) = serving_address(&log)
                && let Ok(r) = self
                    .http
                    .get(format!("http://{api}/health/ready"))
                    .send()
                    .await
                && r.status() == reqwest::StatusCode::OK
            {
                return Ok(Server { pid, api, child });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "server {} exited during start-up ({status}):\n{}",
                    l.name,
                    tail(&log, &err)
                );
            }
            // Under valgrind start-up takes a while.
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "server {} not ready after 60 s:\n{}",
                    l.name,
                    tail(&log, &err)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts `rampart worker` and waits for its `worker started` log line.
    pub async fn start_worker(&self, name: &str, env: &Env) -> anyhow::Result<Server> {
        let log = self.logs.join(format!("{name}.log"));
        let err = self.logs.join(format!("{name}.err"));
        let env = env
            .clone()
            .set("RAMPART_LOG", "warn,rampart::jobs::runner=info")
            .set("RAMPART_LOG_FORMAT", "json");
        let mut child = self
            .command(&self.bin, &env)
            .arg("worker")
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .context("spawn rampart worker")?;
        let pid = child.id().context("the worker has no pid")?;
        let started = Instant::now();
        loop {
            if std::fs::read_to_string(&log).is_ok_and(|s| s.contains("\"worker started\"")) {
                return Ok(Server {
                    pid,
                    api: String::new(),
                    child,
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "worker {name} exited during start-up ({status}):\n{}",
                    tail(&log, &err)
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("worker {name} not started after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `rampart admin ARGS --json` with `env`; its JSON answer.
    pub async fn admin(&self, env: &Env, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let out = self
            .command(&self.bin, env)
            .arg("admin")
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .context("run rampart admin")?;
        if !out.status.success() {
            bail!(
                "rampart admin {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("rampart admin {}: not JSON", args.join(" ")))
    }

    /// `rampart admin ARGS --json` with `stdin` on its standard input (`--password-stdin`).
    pub async fn admin_with_stdin(
        &self,
        env: &Env,
        args: &[&str],
        stdin: &str,
    ) -> anyhow::Result<serde_json::Value> {
        use tokio::io::AsyncWriteExt as _;
        let mut child = self
            .command(&self.bin, env)
            .arg("admin")
            .args(args)
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run rampart admin")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "rampart admin {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("rampart admin {}: not JSON", args.join(" ")))
    }

    /// A new org named `name`, `active` on the `full` tier with its plan limits raised far out
    /// of reach, so that nothing is refused but every limit and quota is still evaluated; and
    /// a live key on it with `scopes` and `permissions`. Returns the key.
    pub async fn bench_key(
        &self,
        env: &Env,
        name: &str,
        scopes: &str,
        permissions: &str,
    ) -> anyhow::Result<String> {
        let org = self.bench_org(env, name).await?;
        let key = self
            .admin(
                env,
                &[
                    "create-key",
                    "--org",
                    &org,
                    "--scopes",
                    scopes,
                    "--permissions",
                    permissions,
                ],
            )
            .await?;
        Ok(key["key"]
            .as_str()
            .context("create-key gave no key")?
            .to_owned())
    }

    /// A new org with its plan limits raised out of reach; returns its id.
    pub async fn bench_org(&self, env: &Env, name: &str) -> anyhow::Result<String> {
        let org = self.admin(env, &["create-org", "--name", name]).await?;
        let org = org["id"]
            .as_str()
            .context("create-org gave no id")?
            .to_owned();
        self.admin(
            env,
            &[
                "set-subscription",
                "--org",
                &org,
                "--status",
                "active",
                "--tier",
                "full",
                "--rate-limit",
                "1000000/s",
                "--quota",
                "1000000000/day",
            ],
        )
        .await?;
        Ok(org)
    }
}

/// The API address from the server's `rampart serving` log line, once it is there.
fn serving_address(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("\"rampart serving\""))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["api"].as_str().map(str::to_owned)
}

/// The last lines of a failed process's logs, for the error message.
fn tail(log: &Path, err: &Path) -> String {
    let mut out = String::new();
    for p in [log, err] {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&lines[lines.len().saturating_sub(20)..].join("\n"));
        out.push('\n');
    }
    out
}
