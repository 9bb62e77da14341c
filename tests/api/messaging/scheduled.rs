//! Scheduled messages: validation and cancel, dispatch within the window, items an old
//! version left mid-dispatch.

use std::time::Duration;

use serde_json::json;

use super::{assert_each_dispatched_once, channel_setup, conversation, schedule};
use crate::helpers::*;
use crate::webhooks::contact;

crate::scenarios![
    scheduled_message_validation_and_cancel,
    scheduled_messages_go_out_within_their_window,
    an_upgrade_frees_items_an_old_version_left_dispatching,
];

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
