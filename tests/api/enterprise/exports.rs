//! Org exports are built in the background and downloaded by an expiring link.

use std::time::Duration;

use serde_json::{Value, json};

use super::setup_subject;
use crate::helpers::*;

crate::scenarios![exports_build_in_the_background_and_download_by_expiring_link,];

async fn exports_build_in_the_background_and_download_by_expiring_link(store: Store) {
    let app = spawn_quiet(store, &[("RAMPART_EXPORT_LINK_TTL", "2s")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    setup_subject(&app, &key).await;
    let (_, test_key) = app
        .key_with(
            &org,
            &["contacts", "exports"],
            &["read", "write"],
            "test",
            None,
            None,
        )
        .await;
    app.post_as(
        "/v1/contacts",
        &test_key,
        &json!({ "external_key": "sandbox-only" }),
    )
    .await;
    let e = json_of(app.post_as("/v1/exports", &key, &json!({})).await, 202).await;
    assert_eq!(e["status"], "pending");
    let id = e["id"].as_str().unwrap().to_owned();
    app.drain_jobs().await;
    let ready = json_of(app.get_as(&format!("/v1/exports/{id}"), &key).await, 200).await;
    assert_eq!(
        ready["status"], "ready",
        "built by the time the jobs are drained: {ready}"
    );
    let url = ready["download_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("/v1/exports/{id}/download?expires=")));
    let res = app.get(url).await;
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let body = res.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "export");
    for t in ["contact", "conversation", "message", "scheduled_message"] {
        assert!(lines.iter().any(|l| l["type"] == t), "{t} missing");
    }
    assert!(
        !body.contains("sandbox-only"),
        "a live export holds no test data"
    );
    assert!(!body.contains("whsec_"), "no secrets");
    // Tampered and expired links are not found.
    let sig_at = url.find("signature=").unwrap() + "signature=".len();
    let mut forged = url.to_owned();
    let first = if &url[sig_at..sig_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    forged.replace_range(sig_at..sig_at + 1, first);
    problem_of(app.get(&forged).await, 404, "not_found").await;
    problem_of(
        app.get(&format!("/v1/exports/{id}/download")).await,
        404,
        "not_found",
    )
    .await;
    // Valid through its `expires` second, refused after: the link's 2 s lifetime is what is
    // tested, so the wait is real time.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    problem_of(app.get(url).await, 404, "not_found").await;
    // A fresh link works again.
    let again = json_of(app.get_as(&format!("/v1/exports/{id}"), &key).await, 200).await;
    assert_eq!(
        app.get(again["download_url"].as_str().unwrap())
            .await
            .status(),
        200
    );
}
