//! The periodic retention purge (`maintenance.purge`): what aged out of the delivery log and
//! its windows goes, and nothing still needed does (an open dead letter's delivery and event,
//! a fresh attempt, the counts of an hour whose attempts can still be in the log).

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::receiver::{Receiver, Reply};
use crate::webhooks::{contact, dead_letters, endpoint};

crate::scenarios![the_purge_removes_only_what_aged_out];

/// Runs the purge now (as the worker's periodic schedule would), with every job it finds due.
async fn purge(app: &TestApp) {
    let mut tx = app.state.db.begin().await.unwrap();
    let job = rampart::jobs::queue::NewJob::of::<rampart::jobs::maintenance::Purge>(
        None,
        &rampart::jobs::NoPayload {},
    )
    .unwrap();
    rampart::jobs::queue::enqueue(&mut tx, job).await.unwrap();
    tx.commit().await.unwrap();
    app.drain_jobs().await;
}

/// The first column of every row `query` returns, sorted.
async fn column<T: rampart::store::Col + Ord>(app: &TestApp, query: &'static str) -> Vec<T> {
    let mut v: Vec<T> = rampart::store::Q::read(query)
        .fetch_column(&mut app.state.db.clone())
        .await
        .unwrap();
    v.sort();
    v
}

async fn ids(app: &TestApp, query: &'static str) -> Vec<String> {
    column(app, query).await
}

async fn the_purge_removes_only_what_aged_out(store: Store) {
    let app = spawn_quiet(
        store,
        &[
            ("RAMPART_RETENTION_DELIVERY_LOGS", "4s"),
            ("RAMPART_RETENTION_DEAD_LETTERS", "4s"),
        ],
    )
    .await;
    let org = app.org("Aging").await;
    app.set_subscription(&org, "active", "full").await;
    let key = app.full_key(&org).await;
    let good = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.set_default(Reply::status(503));
    let (good_ep, _) = endpoint(
        &app,
        &key,
        &good.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    endpoint(
        &app,
        &key,
        &bad.url("/"),
        json!({ "events": ["contact.deleted"], "max_retries": 0 }),
    )
    .await;

    // Old: three delivered events, and two dead letters, one of which is replayed (resolved).
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(contact(&app, &key).await);
    }
    for c in &created[1..] {
        let res = app.delete_as(&format!("/v1/contacts/{c}"), &key).await;
        assert_eq!(res.status(), 204);
    }
    app.drain_jobs().await;
    let open = dead_letters(&app, &key, "status=open").await;
    assert_eq!(open.len(), 2, "{open:?}");
    bad.set_default(Reply::status(204));
    let replayed = open[0]["id"].as_str().unwrap();
    let kept_dl = open[1]["id"].as_str().unwrap().to_owned();
    let kept_delivery = open[1]["delivery_id"].as_str().unwrap().to_owned();
    let kept_event = open[1]["event_id"].as_str().unwrap().to_owned();
    json_of(
        app.post_as(
            &format!("/v1/dead-letters/{replayed}/replay"),
            &key,
            &json!({}),
        )
        .await,
        202,
    )
    .await;
    app.drain_jobs().await;
    assert_eq!(dead_letters(&app, &key, "status=resolved").await.len(), 1);
    // An hour long past, as the worker would have counted it.
    let now = rampart::clock::now_ms();
    let old_hour = rampart::deliveries::hourly::hour_of(now) - 3 * 3_600_000;
    rampart::store::Q::write(
        "INSERT INTO delivery_hourly (endpoint_id, hour_start, org_id, environment, succeeded, failed)
         VALUES ($1, $2, $3, 'live', 7, 1)",
    )
    .bind(good_ep.as_str())
    .bind(old_hour)
    .bind(org.id.as_str())
    .execute(&mut app.state.db.clone())
    .await
    .unwrap();

    // The retention windows (4 s) running out is what is tested: the wait is real time. What
    // is made after it stays young for 4 s, ample for the few steps until the purge runs.
    tokio::time::sleep(Duration::from_millis(4200)).await;
    let fresh = contact(&app, &key).await;
    app.drain_jobs().await;
    good.wait_for(4, Duration::from_secs(15)).await;
    purge(&app).await;

    // The log keeps only the fresh contact's attempt, its delivery and its event.
    let attempts = ids(&app, "SELECT id FROM delivery_attempts").await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    let payload: String = column(
        &app,
        "SELECT e.payload FROM events e JOIN deliveries d ON d.event_id = e.id
         JOIN delivery_attempts a ON a.delivery_id = d.id",
    )
    .await
    .remove(0);
    assert!(payload.contains(&fresh), "{payload}");
    // The open dead letter keeps its delivery and event; the resolved one is gone.
    let mut want_deliveries = vec![
        kept_delivery,
        ids(&app, "SELECT delivery_id FROM delivery_attempts")
            .await
            .remove(0),
    ];
    want_deliveries.sort();
    assert_eq!(
        ids(&app, "SELECT id FROM deliveries").await,
        want_deliveries
    );
    assert_eq!(
        ids(&app, "SELECT id FROM dead_letters").await,
        vec![kept_dl]
    );
    let events = ids(&app, "SELECT id FROM events").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.contains(&kept_event), "{events:?}");
    // The hour long past is gone; the fresh attempt's hour stays while its attempts can be logged.
    let hours: Vec<i64> = column(&app, "SELECT hour_start FROM delivery_hourly").await;
    assert!(!hours.contains(&old_hour), "{hours:?}");
    let fresh_at: i64 = column(&app, "SELECT created_at FROM delivery_attempts")
        .await
        .remove(0);
    assert!(
        hours.contains(&rampart::deliveries::hourly::hour_of(fresh_at)),
        "{hours:?}"
    );
    app.stop().await;
}
