//! The status page: incidents and the summary, branding, and a real browser's view of it.

use reqwest::Method;
use serde_json::json;

use super::operator;
use crate::helpers::*;

crate::scenarios![
    incidents_reach_the_status_page_and_summary,
    branding_white_labels_the_status_page,
];

pub fn chromium_tests() -> Vec<(&'static str, crate::Plain)> {
    vec![(
        "the_status_page_renders_in_chromium_without_csp_violations",
        || Box::pin(the_status_page_renders_in_chromium_without_csp_violations()),
    )]
}

async fn platform(app: &TestApp) -> (Org, String) {
    let mut tx = app.state.db.begin().await.unwrap();
    let org = rampart::orgs::create(&mut tx, "Platform", true, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let org = Org {
        id: org.id.to_string(),
    };
    app.set_subscription(&org, "active", "full").await;
    let token = app.token_for(&org, "owner");
    (org, token)
}

async fn incidents_reach_the_status_page_and_summary(store: Store) {
    let app = spawn_app(store).await;
    let (_, op) = platform(&app).await;
    let s = json_of(app.get("/status/summary.json").await, 200).await;
    for k in [
        "page",
        "status",
        "components",
        "incidents",
        "scheduled_maintenances",
    ] {
        assert!(s.get(k).is_some(), "{k}: {s}");
    }
    let ids: Vec<&str> = s["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["api", "webhooks", "scheduler", "workers"]);
    for c in s["components"].as_array().unwrap() {
        assert!(
            [
                "operational",
                "degraded_performance",
                "partial_outage",
                "major_outage",
                "under_maintenance"
            ]
            .contains(&c["status"].as_str().unwrap())
        );
    }
    let p = problem_of(
        operator(
            &app,
            &op,
            "open_incident",
            json!({ "title": "Webhook delays", "message": "Looking", "components": ["nope"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "params.components[0]");
    let out = json_of(
        operator(&app, &op, "open_incident", json!({ "title": "Webhook delays", "message": "We are looking into it", "impact": "major", "components": ["webhooks"] })).await,
        200,
    )
    .await;
    let inc = out["result"]["incident_id"].as_str().unwrap().to_owned();
    json_of(operator(&app, &op, "update_incident", json!({ "incident_id": inc, "status": "identified", "message": "A slow receiver pool" })).await, 200).await;
    let s = json_of(app.get("/status/summary.json").await, 200).await;
    assert_eq!(s["status"]["indicator"], "major");
    let webhooks = s["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "webhooks")
        .unwrap();
    assert_eq!(webhooks["status"], "partial_outage");
    let i = &s["incidents"][0];
    assert_eq!(i["name"], "Webhook delays");
    assert_eq!(i["status"], "identified");
    assert_eq!(i["incident_updates"].as_array().unwrap().len(), 2);
    let html = app.get("/status").await;
    let csp = html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("'nonce-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = html.text().await.unwrap();
    assert!(page.contains("Webhook delays") && page.contains("A slow receiver pool"));
    assert_eq!(
        page.matches("class=\"bar ").count(),
        90 * 4,
        "90 uptime bars per component"
    );
    assert!(!page.contains("<script"), "works without JavaScript");
    for secret in ["127.0.0.1", "sqlite", "postgres", "org_", "rk_live"] {
        assert!(!page.contains(secret), "status page leaks {secret}");
        assert!(!s.to_string().contains(secret), "summary leaks {secret}");
    }
    json_of(
        operator(&app, &op, "resolve_incident", json!({ "incident_id": inc })).await,
        200,
    )
    .await;
    let s = json_of(app.get("/status/summary.json").await, 200).await;
    assert!(s["incidents"].as_array().unwrap().is_empty());
    assert_eq!(s["status"]["indicator"], "none");
    let page = app.get("/status").await.text().await.unwrap();
    assert!(page.contains("Past incidents"));
    problem_of(
        operator(&app, &op, "resolve_incident", json!({ "incident_id": inc })).await,
        422,
        "validation_failed",
    )
    .await;
}

async fn branding_white_labels_the_status_page(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Partner").await;
    let admin = app.token_for(&org, "admin");
    let p = problem_of(
        app.req(Method::PUT, "/v1/branding", &admin).json(&json!({ "name": "Acme", "primary_color": "red;}body{display:none", "logo_url": "javascript:alert(1)" })).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 2);
    let res = app
        .req(Method::PUT, "/v1/branding", &admin)
        .json(&json!({ "name": "Acme Messaging", "primary_color": "#aa0000", "accent_color": "#00aa00", "logo_url": "https://cdn.example.com/logo.png" }))
        .send()
        .await
        .unwrap();
    let b = json_of(res, 200).await;
    assert!(
        b["status_page_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/status?org={}", org.id))
    );
    problem_of(
        app.req(
            Method::PUT,
            "/v1/branding",
            &app.token_for(&org, "developer"),
        )
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap(),
        403,
        "insufficient_permission",
    )
    .await;
    let page = app
        .get(&format!("/status?org={}", org.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Acme Messaging status")
            && page.contains("#aa0000")
            && page.contains("https://cdn.example.com/logo.png")
    );
    let s = json_of(
        app.get(&format!("/status/summary.json?org={}", org.id))
            .await,
        200,
    )
    .await;
    assert_eq!(s["page"]["name"], "Acme Messaging");
    let default = app.get("/status").await.text().await.unwrap();
    assert!(default.contains("Rampart status"));
}

async fn the_status_page_renders_in_chromium_without_csp_violations() {
    let app = spawn_app(Store::Sqlite).await;
    let (_, op) = platform(&app).await;
    json_of(operator(&app, &op, "open_incident", json!({ "title": "Scheduled dispatch delayed", "message": "Investigating", "components": ["scheduler"] })).await, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("status.png");
    let out = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1400",
            "--virtual-time-budget=3000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(app.url("/status"))
        .output()
        .await
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        shot.exists(),
        "a screenshot was taken; chromium said: {stderr}"
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "the screenshot has content"
    );
    if let Ok(dest) = std::env::var("RAMPART_TEST_SCREENSHOT") {
        std::fs::copy(&shot, dest).unwrap();
    }
    assert!(
        !stderr.contains("Content Security Policy") && !stderr.contains("Content-Security-Policy"),
        "CSP violation: {stderr}"
    );
    // The browser had a report endpoint for violations and used it for none.
    let metrics = app.metrics().await;
    assert!(
        !metrics.contains("rampart_csp_violations_total"),
        "violations were reported"
    );
}
