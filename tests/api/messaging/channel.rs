//! Messages out through the channel: status reports, validation, a failing channel, billing
//! checked again at send time.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{conversation, message_status, send};
use crate::helpers::*;
use crate::receiver::{Receiver, Reply, verify};
use crate::webhooks::endpoint;

crate::scenarios![
    a_message_travels_through_the_channel_and_reports_back,
    sending_needs_a_channel_and_a_valid_body,
    a_failing_channel_fails_the_message_with_a_dead_letter,
    billing_is_checked_again_when_the_message_is_sent,
];

async fn a_message_travels_through_the_channel_and_reports_back(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let f = app.fixture("Acme").await;
    let (key, events) = (&f.key, &f.receiver);
    let channel = Receiver::start().await;
    let (_, secret) = endpoint(
        &app,
        key,
        &channel.url("/channel"),
        json!({ "kind": "channel" }),
    )
    .await;
    let conv = conversation(&app, key).await;
    // The Idempotency-Key is required here.
    let res = app
        .req(Method::POST, "/v1/messages", key)
        .json(&json!({ "conversation_id": conv, "body": "hi" }))
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "idempotency_key_required").await;
    let m = json_of(send(&app, key, &conv, "Hello, Ada").await, 202).await;
    assert_eq!(m["status"], "queued");
    assert_eq!(m["object"], "message");
    let id = m["id"].as_str().unwrap();
    app.drain_jobs().await;
    let hits = channel.hits();
    assert_eq!(hits.len(), 1, "sent once by the time the jobs are drained");
    let h = &hits[0];
    assert_eq!(
        verify(h, &[&secret]),
        vec![0],
        "channel deliveries are signed like any webhook"
    );
    assert_eq!(h.json()["type"], "message.created");
    assert_eq!(h.json()["data"]["body"], "Hello, Ada");
    let sent = json_of(app.get_as(&format!("/v1/messages/{id}"), key).await, 200).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert!(sent["sent_at"].is_string());
    let mut types: Vec<String> = events
        .hits()
        .iter()
        .map(|h| h.json()["type"].as_str().unwrap().to_owned())
        .filter(|t| t.starts_with("message."))
        .collect();
    types.sort();
    assert_eq!(types, ["message.created", "message.sent"]);
    let list = json_of(
        app.get_as(&format!("/v1/messages?conversation_id={conv}"), key)
            .await,
        200,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

async fn sending_needs_a_channel_and_a_valid_body(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let conv = conversation(&app, &key).await;
    problem_of(
        send(&app, &key, &conv, "hi").await,
        422,
        "channel_not_configured",
    )
    .await;
    endpoint(
        &app,
        &key,
        "https://example.com/channel",
        json!({ "kind": "channel" }),
    )
    .await;
    let other = app.org("Other").await;
    let other_key = app.full_key(&other).await;
    let their_conv = conversation(&app, &other_key).await;
    problem_of(
        send(&app, &key, &their_conv, "hi").await,
        422,
        "conversation_not_found",
    )
    .await;
    for (body, field) in [
        (json!({ "conversation_id": conv, "body": "" }), "body"),
        (
            json!({ "conversation_id": conv, "body": "x".repeat(4097) }),
            "body",
        ),
        (
            json!({ "conversation_id": conv, "body": "ok", "metadata": { "k": "v".repeat(17000) } }),
            "metadata",
        ),
        (
            json!({ "conversation_id": "not-an-id", "body": "ok" }),
            "conversation_id",
        ),
    ] {
        let p = problem_of(
            app.post_as("/v1/messages", &key, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let p = problem_of(
        app.post_as(
            "/v1/messages",
            &key,
            &json!({ "conversation_id": conv, "body": "ok", "metadata": [1] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "metadata");
    assert_eq!(
        send(&app, &key, &conv, &"x".repeat(4096)).await.status(),
        202
    );
}

async fn a_failing_channel_fails_the_message_with_a_dead_letter(store: Store) {
    let app = spawn_app(store).await;
    let channel = Receiver::start().await;
    channel.set_default(Reply::status(503));
    let events = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &channel.url("/"),
        json!({ "kind": "channel", "max_retries": 1 }),
    )
    .await;
    endpoint(
        &app,
        &key,
        &events.url("/"),
        json!({ "events": ["message.failed"] }),
    )
    .await;
    let conv = conversation(&app, &key).await;
    let m = json_of(send(&app, &key, &conv, "doomed").await, 202).await;
    let failed = message_status(&app, &key, m["id"].as_str().unwrap(), "failed").await;
    assert!(failed["error"].is_string());
    assert_eq!(channel.hits().len(), 2);
    let h = &events.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(h.json()["type"], "message.failed");
    let dls = json_of(app.get_as("/v1/dead-letters?status=open", &key).await, 200).await;
    assert_eq!(dls["data"][0]["reason"], "retries_exhausted");
    // Replayed once the channel works: the same message becomes sent.
    channel.set_default(Reply::status(200));
    let id = dls["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.post_as(&format!("/v1/dead-letters/{id}/replay"), &key, &json!({}))
            .await
            .status(),
        202
    );
    message_status(&app, &key, m["id"].as_str().unwrap(), "sent").await;
}

async fn billing_is_checked_again_when_the_message_is_sent(store: Store) {
    // No worker: the message waits in the queue until the jobs are drained, after the
    // subscription lapsed.
    let app = spawn_quiet(store, &[]).await;
    let channel = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(&app, &key, &channel.url("/"), json!({ "kind": "channel" })).await;
    let conv = conversation(&app, &key).await;
    let m = json_of(send(&app, &key, &conv, "held").await, 202).await;
    app.set_subscription(&org, "canceled", "standard").await;
    app.drain_jobs().await;
    let mut db = app.state.db.clone();
    let status: String = rampart::store::Q::read("SELECT status FROM messages WHERE id = $1")
        .bind(m["id"].as_str().unwrap())
        .fetch_row(&mut db)
        .await
        .unwrap()
        .get("status")
        .unwrap();
    assert_eq!(status, "failed");
    assert!(
        channel.hits().is_empty(),
        "nothing sent for a lapsed subscription"
    );
    let reason: String =
        rampart::store::Q::read("SELECT reason FROM dead_letters WHERE org_id = $1")
            .bind(org.id.as_str())
            .fetch_row(&mut db)
            .await
            .unwrap()
            .get("reason")
            .unwrap();
    assert_eq!(reason, "subscription_inactive");
}
