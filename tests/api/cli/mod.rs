//! The `rampart` binary as an operator runs it: help, configuration errors, migrations and
//! `migrate verify`, routes, admin commands, signals.

use std::time::Duration;

use crate::helpers::*;

crate::plain_tests![
    every_command_has_help,
    a_bad_variable_exits_2_naming_it,
    migrate_verify_passes_on_a_fresh_database,
    migrate_verify_reports_a_gap_or_duplicate,
    migrate_verify_reports_an_edited_migration,
    migrate_verify_reports_an_unknown_applied_version,
    migrate_verify_reports_dialect_disagreement,
    routes_json_lists_every_route_with_a_profile,
    admin_commands_print_json,
    serve_exits_0_on_sigterm,
    sigterm_lets_an_in_flight_request_finish,
    logs_are_json_with_the_request_id_on_every_line_of_a_request,
    alerts_are_logged_when_they_start_and_end,
    audit_verify_names_the_first_broken_entry,
];

async fn sigterm_lets_an_in_flight_request_finish() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (mut child, addr) = start_server(&env).await;
    // A request whose body is still arriving when the signal comes.
    let body = br#"{"email":"nobody@example.com","password":"correct horse battery staple"}"#;
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused while the old one is served.
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "stopped accepting"
    );
    s.write_all(&body[10..]).await.unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

async fn audit_verify_names_the_first_broken_entry() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (code, out, _) = run_bin(
        &["admin", "create-org", "--name", "A"],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0);
    let org = out.trim().to_owned();
    for _ in 0..3 {
        let (code, _, err) = run_bin(
            &[
                "admin",
                "create-key",
                "--org",
                &org,
                "--scopes",
                "contacts",
                "--permissions",
                "read",
                "--json",
            ],
            &as_refs(&env),
            None,
        )
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, _) = run_bin(&["audit", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 3 audit entries"), "{out}");
    {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            dir.path().join("r.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("UPDATE audit_logs SET actor_id = 'someone-else' WHERE seq = 2")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let (code, out, _) = run_bin(&["audit", "verify", "--org", &org], &as_refs(&env), None).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN") && out.contains("entry 2") && out.contains("edited"),
        "{out}"
    );
    let (code, out, _) = run_bin(&["audit", "verify", "--json"], &as_refs(&env), None).await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["first_break"]["seq"], 2);
}

async fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["worker", "--help"],
        vec!["migrate", "--help"],
        vec!["migrate", "verify", "--help"],
        vec!["routes", "--help"],
        vec!["admin", "--help"],
        vec!["admin", "create-org", "--help"],
        vec!["admin", "create-user", "--help"],
        vec!["admin", "set-subscription", "--help"],
    ] {
        let (code, out, err) = run_bin(&args, &[], None).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    let (code, _, err) = run_bin(&["frobnicate"], &[], None).await;
    assert_eq!(code, 2, "{err}");
}

async fn a_bad_variable_exits_2_naming_it() {
    for (var, val) in [
        ("RAMPART_LISTEN", "not-an-address"),
        ("RAMPART_DATABASE_URL", "mysql://x/y"),
        ("RAMPART_PUBLIC_RATE_LIMIT", "lots"),
        ("RAMPART_RETRY_MAX_DELAY", "1ms"),
        ("RAMPART_BILLING_ENFORCE", "maybe"),
    ] {
        let (code, out, err) = run_bin(&["serve"], &[(var, val)], None).await;
        assert_eq!(code, 2, "{var}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with(&format!("{var}: ")), "{err}");
        assert!(out.is_empty());
    }
    let (code, _, err) = run_bin(
        &["serve"],
        &[
            (
                "RAMPART_DATABASE_URL",
                "postgres://u:hunter2@127.0.0.1:1/db",
            ),
            ("RAMPART_LISTEN", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(code, 2);
    assert!(!err.contains("hunter2"), "{err}");
}

fn sqlite_env(dir: &tempfile::TempDir) -> Vec<(String, String)> {
    vec![
        (
            "RAMPART_DATABASE_URL".into(),
            format!("sqlite://{}", dir.path().join("r.db").display()),
        ),
        ("RAMPART_DATA_DIR".into(), dir.path().display().to_string()),
    ]
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

async fn migrate_verify_passes_on_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (code, out, _) = run_bin(&["migrate", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 1, "pending migrations are drift: {out}");
    assert!(out.contains("[pending]"), "{out}");
    let (code, out, err) = run_bin(&["migrate"], &as_refs(&env), None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied"), "{out}");
    let (code, out, _) = run_bin(&["migrate"], &as_refs(&env), None).await;
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    let (code, out, err) = run_bin(&["migrate", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok:"), "{out}");
    let (code, out, _) = run_bin(&["migrate", "verify", "--json"], &as_refs(&env), None).await;
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    // The migration files in the source tree are what the binary embeds.
    let (code, out, _) = run_bin(
        &[
            "migrate",
            "verify",
            "--migrations-dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}");
}

/// A migrations directory with the given (dialect, file, text) entries.
fn migrations_dir(files: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["sqlite", "postgres"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    for (d, f, text) in files {
        std::fs::write(dir.path().join(d).join(f), text).unwrap();
    }
    dir
}

async fn verify_offline(dir: &tempfile::TempDir) -> (i32, String) {
    let (code, out, err) = run_bin(
        &[
            "migrate",
            "verify",
            "--offline",
            "--migrations-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
        None,
    )
    .await;
    (code, format!("{out}{err}"))
}

async fn migrate_verify_reports_a_gap_or_duplicate() {
    let gap = migrations_dir(&[
        ("sqlite", "0001_a.sql", "SELECT 1;"),
        ("sqlite", "0003_c.sql", "SELECT 1;"),
        ("postgres", "0001_a.sql", "SELECT 1;"),
        ("postgres", "0003_c.sql", "SELECT 1;"),
    ]);
    let (code, out) = verify_offline(&gap).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[gap]") && out.contains("0002 missing before 0003"),
        "{out}"
    );

    let dup = migrations_dir(&[
        ("sqlite", "0001_a.sql", "SELECT 1;"),
        ("sqlite", "0001_b.sql", "SELECT 1;"),
        ("postgres", "0001_a.sql", "SELECT 1;"),
    ]);
    let (code, out) = verify_offline(&dup).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[duplicate]") && out.contains("0001_b.sql"),
        "{out}"
    );
}

async fn migrate_verify_reports_an_edited_migration() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    assert_eq!(run_bin(&["migrate"], &as_refs(&env), None).await.0, 0);
    // The source tree with 0001 edited after it was applied.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let edited = tempfile::tempdir().unwrap();
    for d in ["sqlite", "postgres"] {
        std::fs::create_dir_all(edited.path().join(d)).unwrap();
        for e in std::fs::read_dir(format!("{src}/{d}")).unwrap() {
            let p = e.unwrap().path();
            let mut text = std::fs::read_to_string(&p).unwrap();
            if p.file_name().unwrap().to_str().unwrap().starts_with("0001") {
                text.push_str("\n-- an innocent-looking edit\n");
            }
            std::fs::write(edited.path().join(d).join(p.file_name().unwrap()), text).unwrap();
        }
    }
    let (code, out, _) = run_bin(
        &[
            "migrate",
            "verify",
            "--migrations-dir",
            edited.path().to_str().unwrap(),
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[edited]") && out.contains("0001_foundation.sql was edited"),
        "{out}"
    );
}

async fn migrate_verify_reports_an_unknown_applied_version() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    assert_eq!(run_bin(&["migrate"], &as_refs(&env), None).await.0, 0);
    {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            dir.path().join("r.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'from_the_future', 'x', 0)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let (code, out, _) = run_bin(&["migrate", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[unknown_applied]") && out.contains("9999"),
        "{out}"
    );
    // And `serve` refuses to start on it.
    let mut serve_env = env.clone();
    serve_env.push(("RAMPART_LISTEN".into(), "127.0.0.1:0".into()));
    serve_env.push(("RAMPART_OPS_LISTEN".into(), "127.0.0.1:0".into()));
    let (code, _, err) = run_bin(&["serve"], &as_refs(&serve_env), None).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("9999"), "{err}");
}

async fn migrate_verify_reports_dialect_disagreement() {
    let dir = migrations_dir(&[
        ("sqlite", "0001_a.sql", "SELECT 1;"),
        ("sqlite", "0002_b.sql", "SELECT 1;"),
        ("postgres", "0001_a.sql", "SELECT 1;"),
        ("postgres", "0002_other.sql", "SELECT 1;"),
        ("sqlite", "0003_only_sqlite.sql", "SELECT 1;"),
    ]);
    let (code, out) = verify_offline(&dir).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[dialect_mismatch]"), "{out}");
    assert!(
        out.contains("0002 is named b for sqlite but other for postgres"),
        "{out}"
    );
    assert!(
        out.contains("0003 (only_sqlite) exists for sqlite but not for postgres"),
        "{out}"
    );
}

async fn routes_json_lists_every_route_with_a_profile() {
    let (code, out, err) = run_bin(&["routes", "--json"], &[], None).await;
    assert_eq!(code, 0, "{err}");
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(routes.len(), rampart::app::all_routes().len());
    for r in &routes {
        for k in [
            "auth",
            "scope",
            "permission",
            "rate_limit",
            "idempotency",
            "billing",
            "audit",
        ] {
            assert!(r["profile"].get(k).is_some(), "{r} lacks {k}");
        }
    }
    let (code, table, _) = run_bin(&["routes"], &[], None).await;
    assert_eq!(code, 0);
    assert!(table.starts_with("METHOD"));
}

async fn admin_commands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (code, out, err) = run_bin(
        &["admin", "create-org", "--name", "Acme", "--json"],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let org: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = org["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("org_"));
    let (code, out, _) = run_bin(
        &["admin", "create-org", "--name", "Plain"],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.trim().starts_with("org_"));

    let (code, out, err) = run_bin(
        &[
            "admin",
            "create-user",
            "--org",
            &id,
            "--email",
            "Ada@Example.com",
            "--role",
            "admin",
            "--password-stdin",
            "--json",
        ],
        &as_refs(&env),
        Some("correct horse battery staple\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let user: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["role"], "admin");

    let (code, _, err) = run_bin(
        &[
            "admin",
            "create-user",
            "--org",
            &id,
            "--email",
            "b@example.com",
            "--role",
            "emperor",
            "--password-stdin",
        ],
        &as_refs(&env),
        Some("correct horse battery staple\n"),
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.starts_with("--role:"), "{err}");
    let (code, _, err) = run_bin(
        &[
            "admin",
            "create-user",
            "--org",
            &id,
            "--email",
            "b@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        &as_refs(&env),
        Some("short\n"),
    )
    .await;
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = run_bin(
        &[
            "admin",
            "set-subscription",
            "--org",
            &id,
            "--status",
            "active",
            "--tier",
            "full",
            "--json",
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let sub: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["tier"], "full");
    let (code, _, err) = run_bin(
        &[
            "admin",
            "set-subscription",
            "--org",
            "org_00000000000000000000000000",
            "--status",
            "active",
            "--tier",
            "full",
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
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

async fn serve_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (mut child, addr) = start_server(&env).await;
    let c = client();
    let res = c
        .get(format!("http://{addr}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        c.get(format!("http://{addr}/health/live"))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}

async fn logs_are_json_with_the_request_id_on_every_line_of_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = sqlite_env(&dir);
    env.push(("RAMPART_BILLING_WEBHOOK_SECRET".into(), "whsec_logs".into()));
    let (mut child, addr, logs) = start_server_logged(&env).await;
    let now = rampart::clock::now_ms() / 1000;
    let payload = r#"{"id":"evt_log","type":"customer.subscription.updated","created":1,"data":{"object":{"status":"active","metadata":{"org_id":"org_00000000000000000000000000"}}}}"#;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"whsec_logs");
    let tag = ring::hmac::sign(&key, format!("{now}.{payload}").as_bytes());
    let sig: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let res = client()
        .post(format!("http://{addr}/v1/billing/events"))
        .header("x-request-id", "log-probe-1")
        .header("stripe-signature", format!("t={now},v1={sig}"))
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let done = wait_log(&logs, "request completed", |v| {
        v["message"] == "request completed" && v["span"]["request_id"] == "log-probe-1"
    })
    .await;
    assert_eq!(done["http.status"], 200);
    assert!(
        done["duration_ms"].is_number() && done["timestamp"].is_string() && done["level"] == "INFO"
    );
    // A line written by the handler, inside the request, carries the id too.
    let inner = wait_log(&logs, "billing event not applied", |v| {
        v["message"] == "billing event not applied"
    })
    .await;
    assert_eq!(inner["span"]["request_id"], "log-probe-1");
    // Secrets never reach the log.
    let all = serde_json::to_string(&*logs.lock().unwrap()).unwrap();
    assert!(!all.contains("whsec_logs") && !all.contains(&sig));
    sigterm(&child);
    let _ = child.wait().await;
}

async fn alerts_are_logged_when_they_start_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = sqlite_env(&dir);
    env.push(("RAMPART_ALERT_INTERVAL".into(), "200ms".into()));
    env.push(("RAMPART_ALERT_DLQ_SPIKE".into(), "1".into()));
    let (mut child, _, logs) = start_server_logged(&env).await;
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let exec = |q: String| {
        let db = db.clone();
        async move {
            use sqlx::Connection as _;
            let mut c = sqlx::SqliteConnection::connect(&db).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(q))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        }
    };
    let now = rampart::clock::now_ms();
    exec(format!("INSERT INTO orgs (id, name, is_platform, created_at) VALUES ('org_00000000000000000000000001', 'A', FALSE, {now});
                  INSERT INTO dead_letters (id, org_id, environment, source, event_type, payload, reason, status, attempts, created_at, updated_at)
                  VALUES ('dl_1', 'org_00000000000000000000000001', 'live', 'webhook_delivery', 'x', '{{}}', 'retries_exhausted', 'open', 1, {now}, {now})")).await;
    let started = wait_log(&logs, "alert started", |v| {
        v["message"] == "alert started" && v["alert"] == "dlq_spike"
    })
    .await;
    assert_eq!(started["level"], "WARN");
    assert!(started["observed"].is_string() || started["observed"].is_number());
    exec(format!(
        "UPDATE dead_letters SET created_at = {} WHERE id = 'dl_1'",
        now - 600_000
    ))
    .await;
    let ended = wait_log(&logs, "alert ended", |v| {
        v["message"] == "alert ended" && v["alert"] == "dlq_spike"
    })
    .await;
    assert_eq!(ended["level"], "INFO");
    sigterm(&child);
    let _ = child.wait().await;
}
