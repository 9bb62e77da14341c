//! Standard Webhooks signing: the published test vector, real deliveries, and both secrets
//! during a rotation.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{contact, get_json};
use crate::helpers::*;
use crate::receiver::{Hit, verify};

crate::scenarios![
    deliveries_are_signed_to_the_standard_webhooks_spec,
    rotation_signs_with_both_secrets_during_the_overlap,
];

crate::plain_tests![standard_webhooks_test_vector_verifies_independently];

async fn standard_webhooks_test_vector_verifies_independently() {
    let hit = Hit {
        path: "/".into(),
        headers: {
            let mut h = axum::http::HeaderMap::new();
            h.insert(
                "webhook-id",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".parse().unwrap(),
            );
            h.insert("webhook-timestamp", "1649367553".parse().unwrap());
            h.insert(
                "webhook-signature",
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
                    .parse()
                    .unwrap(),
            );
            h
        },
        body: br#"{"email":"test@example.com","username":"test_user"}"#
            .to_vec()
            .into(),
        at: Instant::now(),
    };
    assert_eq!(
        verify(&hit, &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]),
        vec![0]
    );
    // And Rampart's own signer produces exactly that header.
    let secret =
        rampart::webhooks::signing::secret_bytes("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    assert_eq!(
        rampart::webhooks::signing::header(
            &[secret],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            &hit.body
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

async fn deliveries_are_signed_to_the_standard_webhooks_spec(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let f = app.fixture("Acme").await;
    let (key, secret, rx) = (&f.key, &f.endpoint_secret, &f.receiver);
    let contact_id = contact(&app, key).await;
    assert_eq!(app.drain_jobs().await, 1, "one delivery job");
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "delivered by the time the jobs are drained");
    let h = &hits[0];
    assert_eq!(h.path, "/hook");
    assert_eq!(
        verify(h, &[secret]),
        vec![0],
        "signature verifies independently"
    );
    assert!(h.header("webhook-id").starts_with("evt_"));
    let ts: i64 = h.header("webhook-timestamp").parse().unwrap();
    assert!((ts - rampart::clock::now_ms() / 1000).abs() < 30);
    assert_eq!(h.header("content-type"), "application/json");
    let body = h.json();
    assert_eq!(body["type"], "contact.created");
    assert_eq!(body["data"]["id"], contact_id.as_str());
    assert!(body["timestamp"].is_string());
    // A tampered body does not verify.
    let mut forged = h.clone();
    forged.body = br#"{"type":"contact.created","data":{"id":"someone-else"}}"#
        .to_vec()
        .into();
    assert!(verify(&forged, &[secret]).is_empty());
}

async fn rotation_signs_with_both_secrets_during_the_overlap(store: Store) {
    let app = spawn_quiet(store, &[("RAMPART_WEBHOOK_SECRET_OVERLAP", "2s")]).await;
    let f = app.fixture("Acme").await;
    let (key, rx, ep, old) = (&f.key, &f.receiver, &f.endpoint_id, &f.endpoint_secret);
    let rotated = json_of(
        app.post_as(&format!("/v1/webhooks/{ep}/rotate-secret"), key, &json!({}))
            .await,
        200,
    )
    .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(&new, old);
    assert!(rotated["previous_secret_expires_at"].is_string());
    contact(&app, key).await;
    app.drain_jobs().await;
    let h = &rx.hits()[0];
    assert_eq!(h.header("webhook-signature").split(' ').count(), 2);
    assert_eq!(
        verify(h, &[&new, old]),
        vec![0, 1],
        "both secrets verify during the overlap"
    );
    // The 2 s overlap running out is what is tested: the wait is real time.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    contact(&app, key).await;
    app.drain_jobs().await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 2);
    let h = &hits[1];
    assert_eq!(
        verify(h, &[&new, old]),
        vec![0],
        "only the new secret after the overlap"
    );
    let got = get_json(&app, &format!("/v1/webhooks/{ep}"), key).await;
    assert!(
        got.get("secret").is_none(),
        "secrets are shown on create and rotate only"
    );
}
