//! `serve` as a process: SIGTERM lets in-flight requests finish and exits 0; logs are JSON with
//! the request id; alerts are logged when they start and end.

use std::time::Duration;

use super::{sigterm, sqlite_env, start_server, start_server_logged, wait_log};
use crate::helpers::*;

crate::plain_tests![
    serve_exits_0_on_sigterm,
    sigterm_lets_an_in_flight_request_finish,
    logs_are_json_with_the_request_id_on_every_line_of_a_request,
    alerts_are_logged_when_they_start_and_end,
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
    // The server process reads the head in its own time; the signal must come after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child);
    // The process handles SIGTERM asynchronously: give it time to stop accepting.
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
