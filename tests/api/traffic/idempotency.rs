//! Idempotency keys: one effect for concurrent duplicates, replays, misuse, expiry.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

crate::scenarios![
    concurrent_duplicates_with_one_idempotency_key_have_one_effect,
    idempotent_replays_and_misuse,
    idempotency_records_expire_and_are_purged,
];

async fn concurrent_duplicates_with_one_idempotency_key_have_one_effect(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let body = json!({ "external_key": "dup-1", "name": "Once" });
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = app
            .req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("idempotency-key", "one-key")
            .json(&body);
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            let replayed = res.headers().contains_key("idempotent-replayed");
            let status = res.status().as_u16();
            (status, replayed, res.text().await.unwrap())
        }));
    }
    let mut fresh = 0;
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, replayed, text) = t.await.unwrap();
        match (status, replayed) {
            (201, false) => {
                fresh += 1;
                bodies.push(text);
            }
            (201, true) => bodies.push(text),
            (409, _) => assert!(text.contains("idempotency_in_flight"), "{text}"),
            other => panic!("unexpected {other:?}: {text}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request ran");
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "replays are identical"
    );
    let n = rampart::store::Q::read("SELECT COUNT(*) AS n FROM contacts WHERE org_id = $1")
        .bind(org.id.as_str())
        .fetch_row(&mut app.state.db.clone())
        .await
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    assert_eq!(n, 1);
    let events = rampart::store::Q::read(
        "SELECT COUNT(*) AS n FROM events WHERE org_id = $1 AND type = 'contact.created'",
    )
    .bind(org.id.as_str())
    .fetch_row(&mut app.state.db.clone())
    .await
    .unwrap()
    .get::<i64>("n")
    .unwrap();
    assert_eq!(events, 1);
}

async fn idempotent_replays_and_misuse(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let post = |idem: &str, body: serde_json::Value| {
        app.req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("idempotency-key", idem)
            .json(&body)
            .send()
    };
    let first = post("k1", json!({ "external_key": "a", "name": "A" }))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let first_body = first.text().await.unwrap();
    // Same payload, reformatted: replayed, byte for byte.
    let again = app
        .req(reqwest::Method::POST, "/v1/contacts", &key)
        .header("idempotency-key", "\"k1\"")
        .header("content-type", "application/json")
        .body("{ \"name\": \"A\",   \"external_key\": \"a\" }")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_body);
    // Same key, other payload.
    problem_of(
        post("k1", json!({ "external_key": "b" })).await.unwrap(),
        422,
        "idempotency_key_reused",
    )
    .await;
    // Malformed keys.
    problem_of(
        post(&"x".repeat(256), json!({ "external_key": "c" }))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    problem_of(
        post("\"open", json!({ "external_key": "c" }))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    // A failed request releases its key: the corrected retry runs.
    problem_of(
        post("k2", json!({ "external_key": "" })).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        post("k2", json!({ "external_key": "fixed" }))
            .await
            .unwrap()
            .status(),
        201
    );
    // Keys are scoped to the org.
    let other = app.org("Other").await;
    let other_key = app.full_key(&other).await;
    let res = app
        .req(reqwest::Method::POST, "/v1/contacts", &other_key)
        .header("idempotency-key", "k1")
        .json(&json!({ "external_key": "zzz" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(!res.headers().contains_key("idempotent-replayed"));
}

async fn idempotency_records_expire_and_are_purged(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_IDEMPOTENCY_TTL", "1s")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let post = |body: serde_json::Value| {
        app.req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("idempotency-key", "short-lived")
            .json(&body)
            .send()
    };
    assert_eq!(
        post(json!({ "external_key": "x1" }))
            .await
            .unwrap()
            .status(),
        201
    );
    // The 1 s record lifetime running out is what is tested: the wait is real time.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The periodic maintenance job may already have purged it; either way it is gone.
    rampart::traffic::idempotency::purge(&app.state.db)
        .await
        .unwrap();
    let left = rampart::store::Q::read("SELECT COUNT(*) AS n FROM idempotency_keys")
        .fetch_row(&mut app.state.db.clone())
        .await
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    assert_eq!(left, 0);
    // The key is free again.
    assert_eq!(
        post(json!({ "external_key": "x2" }))
            .await
            .unwrap()
            .status(),
        201
    );
}
