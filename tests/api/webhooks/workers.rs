//! Delivery workers: never two at once for one attempt, none lost to a kill, SIGTERM or a lost
//! lease.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::endpoint;
use crate::helpers::*;
use crate::receiver::{Receiver, Reply};

crate::scenarios![
    two_workers_never_deliver_one_attempt_twice_in_parallel,
    a_killed_worker_loses_no_delivery,
    a_worker_stopped_with_sigterm_finishes_or_hands_back_its_jobs,
    a_lease_lost_mid_attempt_discards_only_that_outcome_of_a_batch,
];

async fn two_workers_never_deliver_one_attempt_twice_in_parallel(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_WORKER_CONCURRENCY", "16")]).await;
    let second = spawn_on(
        app.db.clone(),
        &[("RAMPART_WORKER_CONCURRENCY", "16")],
        Default::default(),
    )
    .await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(20)));
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    let n = 120;
    let mut tasks = Vec::new();
    for i in 0..n {
        let target = if i % 2 == 0 { &app } else { &second };
        let req = target
            .req(Method::POST, "/v1/contacts", &key)
            .json(&json!({ "external_key": format!("k{i}") }));
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let hits = rx.wait_for(n, Duration::from_secs(60)).await;
    // Two real workers race here (they are what is tested): a moment for a duplicate to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits_after = rx.hits();
    assert_eq!(hits_after.len(), hits.len(), "no extra deliveries");
    let mut ids: Vec<String> = hits_after.iter().map(|h| h.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "each event delivered once");
    assert_eq!(
        rx.overlaps(),
        0,
        "never two attempts of one delivery at once"
    );
}

/// The worker process is killed with SIGKILL mid-batch; after a restart every event arrives.
async fn a_killed_worker_loses_no_delivery(store: Store) {
    use crate::cli::{sigkill, start_worker};
    let db = std::sync::Arc::new(TestDb::new(store).await);
    // A small worker, a slow receiver: the kill lands while deliveries are in flight.
    let lease = [
        ("RAMPART_JOB_LEASE", "8s"),
        ("RAMPART_WEBHOOK_TIMEOUT", "2s"),
        ("RAMPART_WORKER_CONCURRENCY", "4"),
    ];
    // The API without a worker: jobs are left to the worker processes.
    let api = spawn_on(
        db.clone(),
        &lease,
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(300)));
    let org = api.org("Acme").await;
    let key = api.full_key(&org).await;
    endpoint(
        &api,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    let n = 40;
    for i in 0..n {
        assert_eq!(
            api.post_as(
                "/v1/contacts",
                &key,
                &json!({ "external_key": format!("k{i}") })
            )
            .await
            .status(),
            201
        );
    }
    let env: Vec<(String, String)> = api
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(
            lease
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect();
    let mut worker = start_worker(&env).await;
    rx.wait_for(3, Duration::from_secs(30)).await;
    sigkill(&mut worker).await;
    let delivered_before = rx.hits().len();
    assert!(
        delivered_before < n,
        "killed mid-batch ({delivered_before} of {n} delivered)"
    );
    let _again = start_worker(&env).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids: Vec<String> = rx.hits().iter().map(|h| h.header("webhook-id")).collect();
        ids.sort();
        ids.dedup();
        if ids.len() == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events delivered after the restart",
            ids.len()
        );
        // A poll interval: the restarted worker is a separate process.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM: the worker finishes what it runs within the shutdown bound and hands the rest back
/// at once — the next worker delivers them long before any lease could have expired.
async fn a_worker_stopped_with_sigterm_finishes_or_hands_back_its_jobs(store: Store) {
    use crate::cli::{sigterm, start_worker};
    let db = std::sync::Arc::new(TestDb::new(store).await);
    let slow = [
        ("RAMPART_JOB_LEASE", "120s"),
        ("RAMPART_WORKER_CONCURRENCY", "2"),
        ("RAMPART_SHUTDOWN_TIMEOUT", "1s"),
    ];
    let api = spawn_on(
        db.clone(),
        &slow,
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(2500)));
    let org = api.org("Acme").await;
    let key = api.full_key(&org).await;
    endpoint(
        &api,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    let n = 6;
    for i in 0..n {
        api.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": format!("k{i}") }),
        )
        .await;
    }
    let env: Vec<(String, String)> = api
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut worker = start_worker(&env).await;
    rx.wait_for(2, Duration::from_secs(20)).await;
    sigterm(&worker);
    let status = tokio::time::timeout(Duration::from_secs(15), worker.wait())
        .await
        .expect("stops in time")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let stopped = count(
        &api,
        "SELECT COUNT(*) AS n FROM workers WHERE stopped_at IS NOT NULL",
        &[],
    )
    .await;
    assert_eq!(stopped, 1, "the worker recorded its stop");
    // Nothing is left leased to the stopped worker.
    let held = count(
        &api,
        "SELECT COUNT(*) AS n FROM jobs WHERE status = 'running'",
        &[],
    )
    .await;
    assert_eq!(held, 0, "leases handed back");
    rx.set_default(Reply::status(200));
    let _next = start_worker(&env).await;
    let started = std::time::Instant::now();
    loop {
        let mut ids: Vec<String> = rx.hits().iter().map(|h| h.header("webhook-id")).collect();
        ids.sort();
        ids.dedup();
        if ids.len() == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {n} delivered",
            ids.len()
        );
        // A poll interval: the next worker is a separate process.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Delivered attempts are recorded in batches, each behind its own lease fence: when one job's
/// lease is taken over while its attempt is in flight, the others of the batch are recorded and
/// nothing of that one is (its new holder owns it).
async fn a_lease_lost_mid_attempt_discards_only_that_outcome_of_a_batch(store: Store) {
    let app = spawn_app(store).await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(1500)));
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    for i in 0..4 {
        let res = app
            .post_as(
                "/v1/contacts",
                &key,
                &json!({ "external_key": format!("k{i}") }),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    // All four attempts in flight at the slow receiver.
    let running = eventually(Duration::from_secs(10), || async {
        let rows = rampart::store::Q::read("SELECT j.id AS job, d.id AS delivery FROM jobs j JOIN deliveries d ON j.payload LIKE '%' || d.id || '%' WHERE j.status = 'running' AND j.kind = 'webhook.deliver'",
        )
        .fetch_rows(&mut app.state.db.clone())
        .await
        .unwrap();
        (rows.len() == 4).then(|| {
            rows.iter()
                .map(|r| (r.get::<String>("job").unwrap(), r.get::<String>("delivery").unwrap()))
                .collect::<Vec<_>>()
        })
    })
    .await
    .expect("four deliveries running");
    // Another worker takes the first one over (its lease token changes; the lease is long).
    let (stolen_job, stolen) = &running[0];
    rampart::store::Q::write("UPDATE jobs SET lease_token = 'lease_taken_over' WHERE id = $1")
        .bind(stolen_job)
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    rx.wait_for(4, Duration::from_secs(10)).await;
    for (_, delivery) in &running[1..] {
        let settled = eventually(Duration::from_secs(10), || async {
            (count(
                &app,
                "SELECT COUNT(*) AS n FROM deliveries WHERE id = $1 AND status = 'succeeded'",
                &[delivery],
            )
            .await
                == 1)
                .then_some(())
        })
        .await;
        assert!(settled.is_some(), "delivery {delivery} recorded");
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) AS n FROM delivery_attempts WHERE delivery_id = $1",
                &[delivery]
            )
            .await,
            1
        );
    }
    // The stolen one: nothing written, the job still held by its new owner. The batch's worker
    // runs in its own time, so give a wrong write a moment to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM deliveries WHERE id = $1 AND status = 'pending'",
            &[stolen]
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM delivery_attempts WHERE delivery_id = $1",
            &[stolen]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM jobs WHERE id = $1 AND lease_token = 'lease_taken_over'",
            &[stolen_job]
        )
        .await,
        1
    );
}
