//! The billing gate and Stripe events: verified, applied once.

use serde_json::json;

use crate::helpers::*;

crate::scenarios![
    billing_gate_refuses_inactive_subscriptions,
    billing_events_are_verified_and_applied_once,
];

async fn billing_gate_refuses_inactive_subscriptions(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["contacts"], &["read"]).await;
    let admin = app.token_for(&org, "admin");
    assert_eq!(
        app.get_as("/v1/contacts", &key).await.status(),
        200,
        "trialing passes"
    );
    for status in ["past_due", "canceled"] {
        app.set_subscription(&org, status, "full").await;
        problem_of(
            app.get_as("/v1/contacts", &key).await,
            402,
            "subscription_inactive",
        )
        .await;
    }
    // SPEC order: scope and permission are refused before billing is looked at.
    let other = app.key(&org, &["webhooks"], &["read"]).await;
    problem_of(
        app.get_as("/v1/contacts", &other).await,
        403,
        "insufficient_scope",
    )
    .await;
    // Security actions never depend on billing: keys can still be listed and revoked.
    assert_eq!(app.get_as("/v1/developer/keys", &admin).await.status(), 200);
    assert_eq!(app.get_as("/v1/audit-logs", &admin).await.status(), 200);
    app.set_subscription(&org, "active", "standard").await;
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);

    let off = spawn_on(
        app.db.clone(),
        &[("RAMPART_BILLING_ENFORCE", "false")],
        Default::default(),
    )
    .await;
    app.set_subscription(&org, "canceled", "standard").await;
    assert_eq!(off.get_as("/v1/contacts", &key).await.status(), 200);
}

fn stripe_signature(secret: &str, t: i64, payload: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{payload}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

fn subscription_event(
    id: &str,
    kind: &str,
    created: i64,
    org: &str,
    status: &str,
    tier: &str,
) -> String {
    json!({
        "id": id, "type": kind, "created": created,
        "data": { "object": {
            "id": "sub_123", "object": "subscription", "status": status,
            "metadata": { "org_id": org },
            "items": { "data": [ { "price": { "lookup_key": tier } } ] }
        } }
    })
    .to_string()
}

async fn billing_events_are_verified_and_applied_once(store: Store) {
    const SECRET: &str = "whsec_billing_test_secret";
    let app = spawn_app_with(store, &[("RAMPART_BILLING_WEBHOOK_SECRET", SECRET)]).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["contacts"], &["read"]).await;
    let now = rampart::clock::now_ms() / 1000;
    let send = |payload: String, sig: String| {
        app.client
            .post(app.url("/v1/billing/events"))
            .header("stripe-signature", sig)
            .header("content-type", "application/json")
            .body(payload)
            .send()
    };
    let past_due = subscription_event(
        "evt_1",
        "customer.subscription.updated",
        now - 10,
        &org.id,
        "past_due",
        "standard",
    );
    let out = json_of(
        send(past_due.clone(), stripe_signature(SECRET, now, &past_due))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(out["applied"], true);
    problem_of(
        app.get_as("/v1/contacts", &key).await,
        402,
        "subscription_inactive",
    )
    .await;
    // The same event again: acknowledged, not applied twice.
    let dup = json_of(
        send(past_due.clone(), stripe_signature(SECRET, now, &past_due))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(dup["duplicate"], true);
    // Badly signed, stale, missing.
    problem_of(
        send(
            past_due.clone(),
            stripe_signature("whsec_wrong", now, &past_due),
        )
        .await
        .unwrap(),
        400,
        "invalid_signature",
    )
    .await;
    problem_of(
        send(
            past_due.clone(),
            stripe_signature(SECRET, now - 400, &past_due),
        )
        .await
        .unwrap(),
        400,
        "invalid_signature",
    )
    .await;
    let res = app
        .client
        .post(app.url("/v1/billing/events"))
        .body(past_due.clone())
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "invalid_signature").await;
    // A newer activation applies, then an older event arriving late does not undo it.
    let active = subscription_event(
        "evt_2",
        "customer.subscription.updated",
        now - 5,
        &org.id,
        "active",
        "full",
    );
    assert_eq!(
        json_of(
            send(active.clone(), stripe_signature(SECRET, now, &active))
                .await
                .unwrap(),
            200
        )
        .await["applied"],
        true
    );
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    let late = subscription_event(
        "evt_0",
        "customer.subscription.updated",
        now - 60,
        &org.id,
        "canceled",
        "standard",
    );
    let out = json_of(
        send(late.clone(), stripe_signature(SECRET, now, &late))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(out["applied"], false);
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    // Deletion cancels.
    let deleted = subscription_event(
        "evt_3",
        "customer.subscription.deleted",
        now,
        &org.id,
        "active",
        "full",
    );
    assert_eq!(
        json_of(
            send(deleted.clone(), stripe_signature(SECRET, now, &deleted))
                .await
                .unwrap(),
            200
        )
        .await["applied"],
        true
    );
    problem_of(
        app.get_as("/v1/contacts", &key).await,
        402,
        "subscription_inactive",
    )
    .await;
    // Unknown org: acknowledged (so Stripe stops retrying), not applied.
    let stray = subscription_event(
        "evt_4",
        "customer.subscription.updated",
        now,
        "org_00000000000000000000000000",
        "active",
        "full",
    );
    assert_eq!(
        json_of(
            send(stray.clone(), stripe_signature(SECRET, now, &stray))
                .await
                .unwrap(),
            200
        )
        .await["applied"],
        false
    );
    assert!(
        app.audit_actions(&org)
            .await
            .iter()
            .any(|a| a.0 == "billing.subscription_updated")
    );

    let unconfigured = spawn_on(app.db.clone(), &[], Default::default()).await;
    let res = unconfigured
        .client
        .post(unconfigured.url("/v1/billing/events"))
        .header("stripe-signature", stripe_signature(SECRET, now, &active))
        .body(active.clone())
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "invalid_signature").await;
}
