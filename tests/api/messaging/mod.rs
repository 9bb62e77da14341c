//! SPEC §4: conversations, messages through the channel, scheduled messages, test mode.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Receiver, Reply, verify};
use crate::webhooks::{contact, endpoint};

crate::scenarios![
    a_message_travels_through_the_channel_and_reports_back,
    sending_needs_a_channel_and_a_valid_body,
    a_failing_channel_fails_the_message_with_a_dead_letter,
    billing_is_checked_again_when_the_message_is_sent,
    inbound_messages_and_conversations,
    scheduled_message_validation_and_cancel,
    scheduled_messages_go_out_within_their_window,
    an_upgrade_frees_items_an_old_version_left_dispatching,
    a_thousand_due_at_once_with_one_poisoned_item,
    cancel_racing_dispatch_never_does_both,
    two_workers_never_dispatch_twice,
    test_mode_is_isolated_on_every_list_route_and_sandboxed,
    pagination_is_stable_under_concurrent_inserts,
];

/// An org with a full key, its channel endpoint pointing at a new receiver, and a
/// conversation: what scheduled messages need. Returns (receiver, key, conversation id).
pub(crate) async fn channel_setup(app: &TestApp) -> (Receiver, String, String) {
    let channel = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(app, &key, &channel.url("/"), json!({ "kind": "channel" })).await;
    let conv = conversation(app, &key).await;
    (channel, key, conv)
}

/// Each scheduled message in `ids` arrives at `channel` exactly once and reads `dispatched`.
pub(crate) async fn assert_each_dispatched_once(
    app: &TestApp,
    key: &str,
    channel: &Receiver,
    ids: &[String],
) {
    channel.wait_for(ids.len(), Duration::from_secs(30)).await;
    // A moment more for any duplicate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(channel.hits().len(), ids.len(), "each exactly once");
    for id in ids {
        let s = json_of(
            app.get_as(&format!("/v1/scheduled-messages/{id}"), key)
                .await,
            200,
        )
        .await;
        assert_eq!(s["status"], "dispatched", "{s}");
    }
}

pub(crate) async fn conversation(app: &TestApp, key: &str) -> String {
    let c = contact(app, key).await;
    let conv = json_of(
        app.post_as(
            "/v1/conversations",
            key,
            &json!({ "contact_id": c, "channel": "sms" }),
        )
        .await,
        201,
    )
    .await;
    conv["id"].as_str().unwrap().to_owned()
}

async fn send(app: &TestApp, key: &str, conv: &str, body: &str) -> reqwest::Response {
    app.post_as(
        "/v1/messages",
        key,
        &json!({ "conversation_id": conv, "body": body }),
    )
    .await
}

async fn message_status(app: &TestApp, key: &str, id: &str, want: &str) -> Value {
    eventually(Duration::from_secs(15), || async {
        let m = json_of(app.get_as(&format!("/v1/messages/{id}"), key).await, 200).await;
        (m["status"] == want).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("message {id} never became {want}"))
}

async fn a_message_travels_through_the_channel_and_reports_back(store: Store) {
    let app = spawn_app(store).await;
    let channel = Receiver::start().await;
    let events = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (_, secret) = endpoint(
        &app,
        &key,
        &channel.url("/channel"),
        json!({ "kind": "channel" }),
    )
    .await;
    endpoint(
        &app,
        &key,
        &events.url("/events"),
        json!({ "events": ["message.*"] }),
    )
    .await;
    let conv = conversation(&app, &key).await;
    // The Idempotency-Key is required here.
    let res = app
        .req(Method::POST, "/v1/messages", &key)
        .json(&json!({ "conversation_id": conv, "body": "hi" }))
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "idempotency_key_required").await;
    let m = json_of(send(&app, &key, &conv, "Hello, Ada").await, 202).await;
    assert_eq!(m["status"], "queued");
    assert_eq!(m["object"], "message");
    let id = m["id"].as_str().unwrap();
    let h = &channel.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(
        verify(h, &[&secret]),
        vec![0],
        "channel deliveries are signed like any webhook"
    );
    assert_eq!(h.json()["type"], "message.created");
    assert_eq!(h.json()["data"]["body"], "Hello, Ada");
    let sent = message_status(&app, &key, id, "sent").await;
    assert!(sent["sent_at"].is_string());
    let got = events.wait_for(2, Duration::from_secs(10)).await;
    let mut types: Vec<String> = got
        .iter()
        .map(|h| h.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["message.created", "message.sent"]);
    let list = json_of(
        app.get_as(&format!("/v1/messages?conversation_id={conv}"), &key)
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
    let app = spawn_app(store).await;
    let channel = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (ep, _) = endpoint(&app, &key, &channel.url("/"), json!({ "kind": "channel" })).await;
    let patch = |status: &'static str| {
        app.req(Method::PATCH, &format!("/v1/webhooks/{ep}"), &key)
            .json(&json!({ "status": status }))
            .send()
    };
    assert_eq!(patch("paused").await.unwrap().status(), 200);
    let conv = conversation(&app, &key).await;
    let m = json_of(send(&app, &key, &conv, "held").await, 202).await;
    app.set_subscription(&org, "canceled", "standard").await;
    // Resume through the store: the API itself now refuses the lapsed org.
    rampart::store::Q::write("UPDATE webhook_endpoints SET status = 'active' WHERE id = $1")
        .bind(ep.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let mut db = app.state.db.clone();
    let status = eventually(Duration::from_secs(15), || {
        let mut db = db.clone();
        let id = m["id"].as_str().unwrap().to_owned();
        async move {
            let s: String = rampart::store::Q::read("SELECT status FROM messages WHERE id = $1")
                .bind(id)
                .fetch_row(&mut db)
                .await
                .ok()?
                .get("status")
                .ok()?;
            (s == "failed").then_some(s)
        }
    })
    .await;
    assert_eq!(status.as_deref(), Some("failed"));
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

async fn inbound_messages_and_conversations(store: Store) {
    let app = spawn_app(store).await;
    let events = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &events.url("/"),
        json!({ "events": ["message.received", "conversation.created"] }),
    )
    .await;
    let c = contact(&app, &key).await;
    problem_of(
        app.post_as(
            "/v1/conversations",
            &key,
            &json!({ "contact_id": "con_00000000000000000000000000", "channel": "sms" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem_of(
        app.post_as(
            "/v1/conversations",
            &key,
            &json!({ "contact_id": c, "channel": "SMS!" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let conv = json_of(
        app.post_as(
            "/v1/conversations",
            &key,
            &json!({ "contact_id": c, "channel": "whatsapp" }),
        )
        .await,
        201,
    )
    .await;
    let conv_id = conv["id"].as_str().unwrap();
    assert_eq!(
        json_of(
            app.get_as(&format!("/v1/conversations/{conv_id}"), &key)
                .await,
            200
        )
        .await["channel"],
        "whatsapp"
    );
    let list = json_of(
        app.get_as(&format!("/v1/conversations?contact_id={c}"), &key)
            .await,
        200,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let m = json_of(
        app.post_as(
            "/v1/messages/inbound",
            &key,
            &json!({ "conversation_id": conv_id, "body": "Hi back" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(m["direction"], "inbound");
    assert_eq!(m["status"], "received");
    let hits = events.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        hits.iter().any(
            |h| h.json()["type"] == "message.received" && h.json()["data"]["body"] == "Hi back"
        )
    );
}

pub(crate) async fn schedule(
    app: &TestApp,
    key: &str,
    conv: &str,
    send_at_ms: i64,
) -> reqwest::Response {
    app.post_as(
        "/v1/scheduled-messages",
        key,
        &json!({ "conversation_id": conv, "body": "later", "send_at": rampart::clock::rfc3339(send_at_ms) }),
    )
    .await
}

async fn scheduled_message_validation_and_cancel(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let conv = conversation(&app, &key).await;
    let now = rampart::clock::now_ms();
    problem_of(
        schedule(&app, &key, &conv, now - 1000).await,
        422,
        "send_at_not_in_future",
    )
    .await;
    let p = problem_of(
        schedule(&app, &key, &conv, now + 367 * 86_400_000).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "send_at");
    let p = problem_of(
        app.post_as(
            "/v1/scheduled-messages",
            &key,
            &json!({ "conversation_id": conv, "body": "x", "send_at": "next tuesday" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "send_at");
    let other = app.org("Other").await;
    let their_conv = conversation(&app, &app.full_key(&other).await).await;
    problem_of(
        schedule(&app, &key, &their_conv, now + 60_000).await,
        422,
        "conversation_not_found",
    )
    .await;
    problem_of(
        schedule(&app, &key, "cnv_00000000000000000000000000", now + 60_000).await,
        422,
        "conversation_not_found",
    )
    .await;
    let c = contact(&app, &key).await;
    let p = problem_of(
        app.post_as("/v1/scheduled-messages", &key, &json!({ "contact_id": c, "body": "x", "send_at": rampart::clock::rfc3339(now + 60_000) })).await,
        422,
        "unsupported_target",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("conversation"),
        "{p}"
    );

    let s = json_of(schedule(&app, &key, &conv, now + 3_600_000).await, 201).await;
    assert_eq!(s["status"], "pending");
    let id = s["id"].as_str().unwrap();
    assert_eq!(
        json_of(
            app.get_as(&format!("/v1/scheduled-messages/{id}"), &key)
                .await,
            200
        )
        .await["id"],
        id
    );
    let listed = json_of(
        app.get_as("/v1/scheduled-messages?status=pending", &key)
            .await,
        200,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let canceled = json_of(
        app.delete_as(&format!("/v1/scheduled-messages/{id}"), &key)
            .await,
        200,
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    problem_of(
        app.delete_as(&format!("/v1/scheduled-messages/{id}"), &key)
            .await,
        409,
        "not_cancelable",
    )
    .await;
    problem_of(
        app.delete_as("/v1/scheduled-messages/sch_nope", &key).await,
        404,
        "not_found",
    )
    .await;
}

async fn scheduled_messages_go_out_within_their_window(store: Store) {
    let app = spawn_app(store).await;
    let (channel, key, conv) = channel_setup(&app).await;
    // Ahead enough that the five creates finish before the first falls due, even on a busy machine.
    let base = rampart::clock::now_ms() + 3000;
    let mut ids = Vec::new();
    for i in 0..5 {
        let s = json_of(schedule(&app, &key, &conv, base + i * 400).await, 201).await;
        ids.push((s["id"].as_str().unwrap().to_owned(), base + i * 400));
    }
    channel.wait_for(5, Duration::from_secs(15)).await;
    for (id, send_at) in ids {
        let s = json_of(
            app.get_as(&format!("/v1/scheduled-messages/{id}"), &key)
                .await,
            200,
        )
        .await;
        assert_eq!(s["status"], "dispatched");
        let at = rampart::clock::parse_rfc3339(s["dispatched_at"].as_str().unwrap()).unwrap();
        assert!(at >= send_at, "{id} dispatched {} ms early", send_at - at);
        assert!(
            at <= send_at + 2000,
            "{id} dispatched {} ms late",
            at - send_at
        );
        let m = json_of(
            app.get_as(
                &format!("/v1/messages/{}", s["message_id"].as_str().unwrap()),
                &key,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(m["scheduled_message_id"], id.as_str());
    }
}

/// Migration 0008: versions before it leased due items (`dispatching`) between two
/// transactions; the scheduler now takes and dispatches a batch in one and looks only at
/// `pending` items, so the migration must free what an old version left leased. The database is
/// rewound to version 7's shape with items leased for an hour by a worker that is gone; the
/// upgraded instance must dispatch each of them once, at once.
async fn an_upgrade_frees_items_an_old_version_left_dispatching(store: Store) {
    let app = spawn_app(store).await;
    let (channel, key, conv) = channel_setup(&app).await;
    let later = rampart::clock::now_ms() + 3_600_000;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let s = json_of(schedule(&app, &key, &conv, later).await, 201).await;
        ids.push(s["id"].as_str().unwrap().to_owned());
    }
    let (db, url) = (app.db.clone(), app.env["RAMPART_DATABASE_URL"].clone());
    app.stop().await;

    let mut old = rampart::store::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    use rampart::store::Q;
    let sql = Q::write;
    let now = rampart::clock::now_ms();
    let leased = sql(
        "UPDATE scheduled_messages SET status = 'dispatching', lease_owner = 'wrk_gone',
         lease_token = 'tok', lease_expires_at = $1, send_at = $2 WHERE conversation_id = $3",
    )
    .bind(now + 3_600_000)
    .bind(now - 1000)
    .bind(conv.as_str())
    .execute(&mut old)
    .await
    .unwrap();
    assert_eq!(leased, 3);
    for rewind in [
        sql("DROP INDEX scheduled_messages_pending"),
        sql("CREATE INDEX scheduled_messages_due ON scheduled_messages (status, send_at)"),
        sql("DELETE FROM schema_migrations WHERE version = 8"),
    ] {
        rewind.execute(&mut old).await.unwrap();
    }
    old.close().await;

    let app = spawn_on(db, &[], Default::default()).await;
    assert_each_dispatched_once(&app, &key, &channel, &ids).await;
}

/// Inserts `n` scheduled messages due at `send_at` straight in the store (faster than the API).
async fn bulk_schedule(
    app: &TestApp,
    org: &Org,
    conv: &str,
    n: usize,
    send_at: i64,
) -> Vec<String> {
    let mut tx = app.state.db.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = rampart::ids::ScheduledMessageId::new().to_string();
        rampart::store::Q::write(
            "INSERT INTO scheduled_messages (id, org_id, environment, conversation_id, body, metadata, send_at, status, created_at, updated_at)
             VALUES ($1, $2, 'live', $3, $4, '{}', $5, 'pending', $6, $6)",
        )
        .bind(id.as_str())
        .bind(org.id.as_str())
        .bind(conv)
        .bind(format!("bulk {i}"))
        .bind(send_at)
        .bind(rampart::clock::now_ms())
        .execute(&mut tx)
        .await
        .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    rampart::jobs::queue::local_notify().notify_waiters();
    ids
}

async fn a_thousand_due_at_once_with_one_poisoned_item(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    // A paused channel: this is about dispatch, not delivery.
    endpoint(
        &app,
        &key,
        "https://example.com/channel",
        json!({ "kind": "channel" }),
    )
    .await;
    rampart::store::Q::write("UPDATE webhook_endpoints SET status = 'paused' WHERE org_id = $1")
        .bind(org.id.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let conv = conversation(&app, &key).await;
    let ids = bulk_schedule(&app, &org, &conv, 1000, rampart::clock::now_ms() + 1500).await;
    // Poison one item: the message id it would create already exists.
    let victim = &ids[437];
    rampart::store::Q::write("INSERT INTO messages (id, org_id, environment, conversation_id, direction, body, metadata, status, created_at, updated_at) VALUES ($1, $2, 'live', $3, 'outbound', 'squatter', '{}', 'sent', 0, 0)")
        .bind(format!("msg_{}", victim.trim_start_matches("sch_")))
        .bind(org.id.as_str())
        .bind(conv.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    eventually(Duration::from_secs(30), || async {
        (count(
            &app,
            "SELECT COUNT(*) AS n FROM scheduled_messages WHERE org_id = $1 AND status = 'pending'",
            &[org.id.as_str()],
        )
        .await
            == 0)
            .then_some(())
    })
    .await
    .expect("every item settled");
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM scheduled_messages WHERE org_id = $1 AND status = 'dispatched'", &[org.id.as_str()]).await, 999);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM scheduled_messages WHERE org_id = $1 AND status = 'failed'",
            &[org.id.as_str()]
        )
        .await,
        1
    );
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM messages WHERE org_id = $1 AND scheduled_message_id IS NOT NULL", &[org.id.as_str()]).await, 999);
    let dls = json_of(app.get_as("/v1/dead-letters?status=open", &key).await, 200).await;
    let dls = dls["data"].as_array().unwrap();
    assert_eq!(dls.len(), 1);
    assert_eq!(dls[0]["source"], "scheduled_message");
    assert_eq!(dls[0]["payload"]["scheduled_message_id"], victim.as_str());
    let failed = json_of(
        app.get_as(&format!("/v1/scheduled-messages/{victim}"), &key)
            .await,
        200,
    )
    .await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["last_error"].is_string());
}

async fn cancel_racing_dispatch_never_does_both(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        "https://example.com/channel",
        json!({ "kind": "channel", "max_retries": 0 }),
    )
    .await;
    let conv = conversation(&app, &key).await;
    let due = rampart::clock::now_ms() + 1500;
    let ids = bulk_schedule(&app, &org, &conv, 150, due).await;
    // Cancels spread across the due instant: some land before the dispatch, some after.
    let start = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(due - rampart::clock::now_ms() - 150).unwrap_or(0));
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let req = app.req(
            Method::DELETE,
            &format!("/v1/scheduled-messages/{id}"),
            &key,
        );
        let id = id.clone();
        let at = start + Duration::from_millis(2 * i as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            (id, req.send().await.unwrap().status().as_u16())
        }));
    }
    let mut canceled = 0;
    for t in tasks {
        let (id, status) = t.await.unwrap();
        let s = eventually(Duration::from_secs(15), || async {
            let s = json_of(
                app.get_as(&format!("/v1/scheduled-messages/{id}"), &key)
                    .await,
                200,
            )
            .await;
            (s["status"] != "pending").then_some(s)
        })
        .await
        .unwrap();
        let msg = format!("msg_{}", id.trim_start_matches("sch_"));
        let sent = app
            .get_as(&format!("/v1/messages/{msg}"), &key)
            .await
            .status()
            == 200;
        match status {
            200 => {
                canceled += 1;
                assert_eq!(s["status"], "canceled");
                assert!(!sent, "{id} canceled but sent");
            }
            409 => {
                assert_eq!(s["status"], "dispatched", "{id}");
                assert!(sent, "{id} refused cancel but never sent");
            }
            other => panic!("{id}: unexpected {other}"),
        }
    }
    eprintln!("cancel race: {canceled} of {} canceled", ids.len());
}

async fn two_workers_never_dispatch_twice(store: Store) {
    let a = spawn_app(store).await;
    let b = spawn_on(a.db.clone(), &[], Default::default()).await;
    let channel = Receiver::start().await;
    let org = a.org("Acme").await;
    let key = a.full_key(&org).await;
    endpoint(&a, &key, &channel.url("/"), json!({ "kind": "channel" })).await;
    let conv = conversation(&a, &key).await;
    let n = 300;
    bulk_schedule(&a, &org, &conv, n, rampart::clock::now_ms() + 800).await;
    let hits = channel.wait_for(n, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = &b;
    let all = channel.hits();
    assert_eq!(all.len(), hits.len().max(n), "no extra sends");
    let bodies: HashSet<String> = all
        .iter()
        .map(|h| h.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies.len(), n, "each scheduled message sent exactly once");
    assert_eq!(
        count(
            &a,
            "SELECT COUNT(*) AS n FROM messages WHERE org_id = $1",
            &[org.id.as_str()]
        )
        .await,
        n as i64
    );
}

async fn test_mode_is_isolated_on_every_list_route_and_sandboxed(store: Store) {
    let app = spawn_app(store).await;
    let rx = Receiver::start().await;
    let org = app.org("Acme").await;
    let all = [
        "messages",
        "contacts",
        "conversations",
        "scheduled_messages",
        "webhooks",
        "dead_letters",
        "audit_logs",
        "exports",
        "gdpr",
    ];
    let (_, live) = app
        .key_with(&org, &all, &["read", "write", "delete"], "live", None, None)
        .await;
    let (_, test) = app
        .key_with(&org, &all, &["read", "write", "delete"], "test", None, None)
        .await;
    let mut seen: Vec<(String, bool)> = Vec::new();
    for (k, is_live) in [(&live, true), (&test, false)] {
        let (ep, _) = endpoint(
            &app,
            k,
            &rx.url(if is_live { "/live" } else { "/test" }),
            json!({ "kind": "channel" }),
        )
        .await;
        let conv = conversation(&app, k).await;
        let m = json_of(send(&app, k, &conv, "hello").await, 202).await;
        let s = json_of(
            schedule(&app, k, &conv, rampart::clock::now_ms() + 3_600_000).await,
            201,
        )
        .await;
        for id in [
            ep,
            conv,
            m["id"].as_str().unwrap().to_owned(),
            s["id"].as_str().unwrap().to_owned(),
        ] {
            seen.push((id, is_live));
        }
        message_status(&app, k, m["id"].as_str().unwrap(), "sent").await;
    }
    // The sandbox sink recorded the test message; nothing test-mode went over the network.
    let hits = rx.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        hits.iter().all(|h| h.path == "/live"),
        "test mode never sends"
    );
    let sandbox = json_of(app.get_as("/v1/sandbox/deliveries", &test).await, 200).await;
    assert_eq!(sandbox["data"].as_array().unwrap().len(), 1);
    assert_eq!(sandbox["data"][0]["payload"]["type"], "message.created");
    assert!(
        sandbox["data"][0]["headers"]["webhook-signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert!(
        json_of(app.get_as("/v1/sandbox/deliveries", &live).await, 200).await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Every list route of the registry that a key can call shows one environment only.
    for r in rampart::app::all_routes() {
        // The audit log is the org's one record of both environments, by design.
        if r.method != Method::GET
            || !r.path.starts_with("/v1")
            || r.path.contains('{')
            || r.path == "/v1/audit-logs"
            || !r
                .profile
                .auth
                .contains(&rampart::http::routes::AuthKind::ApiKey)
        {
            continue;
        }
        for (k, is_live) in [(&live, true), (&test, false)] {
            let res = app.get_as(r.path, k).await;
            if res.status() != 200 {
                continue;
            }
            let text = res.text().await.unwrap();
            for (id, owner_live) in &seen {
                if *owner_live != is_live {
                    assert!(
                        !text.contains(id.as_str()),
                        "{} with a {} key shows {id}",
                        r.path,
                        if is_live { "live" } else { "test" }
                    );
                }
            }
        }
    }
    // And objects of the other environment are not found by id.
    for (id, owner_live) in &seen {
        let other = if *owner_live { &test } else { &live };
        let path = match &id[..3] {
            "ep_" => format!("/v1/webhooks/{id}"),
            "cnv" => format!("/v1/conversations/{id}"),
            "msg" => format!("/v1/messages/{id}"),
            _ => format!("/v1/scheduled-messages/{id}"),
        };
        problem_of(app.get_as(&path, other).await, 404, "not_found").await;
    }
}

async fn pagination_is_stable_under_concurrent_inserts(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let mut original = HashSet::new();
    for _ in 0..25 {
        original.insert(contact(&app, &key).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let started = Instant::now();
    loop {
        // Someone keeps inserting while we page.
        contact(&app, &key).await;
        let path = match &cursor {
            Some(c) => format!("/v1/contacts?limit=10&cursor={c}"),
            None => "/v1/contacts?limit=10".into(),
        };
        let page = json_of(app.get_as(&path, &key).await, 200).await;
        for c in page["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no item twice");
    assert!(
        original.iter().all(|id| unique.contains(id)),
        "no original item missed"
    );
    let sorted = {
        let mut s = seen.clone();
        s.sort_by(|a, b| b.cmp(a));
        s
    };
    assert_eq!(seen, sorted, "newest first, in id order");
    for bad in ["0", "101", "-5", "1.5"] {
        let p = problem_of(
            app.get_as(&format!("/v1/messages?limit={bad}"), &key).await,
            400,
            "bad_request",
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains("from 1 to 100"),
            "{p}"
        );
    }
}
