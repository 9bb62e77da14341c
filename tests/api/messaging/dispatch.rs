//! Scheduled dispatch under load and races: a thousand due at once, cancel against dispatch,
//! two workers.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::conversation;
use crate::helpers::*;
use crate::receiver::Receiver;
use crate::webhooks::endpoint;

crate::scenarios![
    a_thousand_due_at_once_with_one_poisoned_item,
    cancel_racing_dispatch_never_does_both,
    two_workers_never_dispatch_twice,
];

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
            // Each cancel at its own instant around the due time: the race is what is tested.
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
    // Two real workers race here, so a duplicate would come in their time: give it a moment.
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
