//! The `rampart` binary as an operator runs it: help, configuration errors, migrations and
//! `migrate verify`, routes, admin commands, signals. The helpers here start it as a process.

mod admin;
mod config;
mod migrate;
mod serve;

use std::time::Duration;

use crate::helpers::*;

pub fn plain() -> Vec<(&'static str, crate::Plain)> {
    [
        config::plain(),
        migrate::plain(),
        admin::plain(),
        serve::plain(),
    ]
    .concat()
}

pub fn sqlite_env(dir: &tempfile::TempDir) -> Vec<(String, String)> {
    vec![
        (
            "RAMPART_DATABASE_URL".into(),
            format!("sqlite://{}", dir.path().join("r.db").display()),
        ),
        ("RAMPART_DATA_DIR".into(), dir.path().display().to_string()),
    ]
}

pub fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Starts `rampart serve` on port 0 and returns the child with its public address, read from
/// the start-up log line.
pub async fn start_server(env: &[(String, String)]) -> (tokio::process::Child, String) {
    let (child, addr, _) = start_server_logged(env).await;
    (child, addr)
}

/// Log lines a server wrote so far, parsed.
pub type Logs = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// As [`start_server`], also collecting its JSON log lines.
pub async fn start_server_logged(
    env: &[(String, String)],
) -> (tokio::process::Child, String, Logs) {
    use tokio::io::AsyncBufReadExt as _;
    let logs: Logs = Default::default();
    let mut cmd = tokio::process::Command::new(bin());
    cmd.arg("serve");
    for (k, _) in std::env::vars() {
        if k.starts_with("RAMPART_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("RAMPART_LISTEN", "127.0.0.1:0")
        .env("RAMPART_OPS_LISTEN", "127.0.0.1:0")
        .env("RAMPART_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "rampart serving"
            {
                return v["api"].as_str().unwrap().to_owned();
            }
        }
        panic!("server exited before serving");
    })
    .await
    .expect("server started");
    // Keep reading stdout (so the child never blocks on a full pipe), keeping the lines.
    let sink = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    (child, addr, logs)
}

/// Waits for a log line satisfying `f`.
pub async fn wait_log(
    logs: &Logs,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = logs.lock().unwrap().iter().find(|v| f(v)) {
            return v.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no log line: {what}");
        // A poll interval: the server is a separate process writing its log in its own time.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `rampart worker` and waits until it says it has started.
pub async fn start_worker(env: &[(String, String)]) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt as _;
    let mut cmd = tokio::process::Command::new(bin());
    cmd.arg("worker");
    for (k, _) in std::env::vars() {
        if k.starts_with("RAMPART_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("RAMPART_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("\"worker started\"") {
                return;
            }
        }
        panic!("worker exited before starting");
    })
    .await
    .expect("worker started");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Kills `child` with SIGKILL (no chance to clean up) and reaps it.
pub async fn sigkill(child: &mut tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait().await;
}

pub fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}
