//! Inbound messages open conversations; lists page stably while rows are inserted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;
use crate::webhooks::contact;

crate::scenarios![
    inbound_messages_and_conversations,
    pagination_is_stable_under_concurrent_inserts,
];

async fn inbound_messages_and_conversations(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let f = app.fixture("Acme").await;
    let key = f.key.clone();
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
    app.drain_jobs().await;
    let hits = f.receiver.hits();
    let of_type = |t: &str| hits.iter().filter(|h| h.json()["type"] == t).count();
    assert_eq!(of_type("conversation.created"), 1);
    assert_eq!(of_type("message.received"), 1);
    assert!(
        hits.iter().any(
            |h| h.json()["type"] == "message.received" && h.json()["data"]["body"] == "Hi back"
        )
    );
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
