//! Codes of the work itself: conflicts, idempotency, messaging rules, dead letters.

use rampart::http::ErrorCode;
use serde_json::json;

use super::drew;
use crate::helpers::*;
use crate::messaging::{conversation, schedule};
use crate::webhooks::{contact, endpoint};

pub async fn probe(app: &TestApp) -> Vec<String> {
    let org = app.org("Work").await;
    let key = app.full_key(&org).await;
    let mut drawn = Vec::new();

    let taken = json!({ "external_key": "taken" });
    json_of(app.post_as("/v1/contacts", &key, &taken).await, 201).await;
    drawn.push(
        drew(
            app.post_as("/v1/contacts", &key, &taken).await,
            ErrorCode::Conflict,
        )
        .await,
    );

    let keyed = |idem: &'static str, external_key: &'static str| {
        app.req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("idempotency-key", idem)
            .json(&json!({ "external_key": external_key }))
            .send()
    };
    json_of(keyed("once", "first").await.unwrap(), 201).await;
    drawn.push(
        drew(
            keyed("once", "second").await.unwrap(),
            ErrorCode::IdempotencyKeyReused,
        )
        .await,
    );
    claim_elsewhere(app, &org, "running", "third").await;
    drawn.push(
        drew(
            keyed("running", "third").await.unwrap(),
            ErrorCode::IdempotencyInFlight,
        )
        .await,
    );

    // The org's only owner cannot step down.
    let owner = app
        .user(
            &org,
            "only-owner@work.test",
            "owner",
            "a long enough password",
        )
        .await;
    drawn.push(
        drew(
            app.req(
                reqwest::Method::PATCH,
                &format!("/v1/members/{owner}"),
                &app.token_for(&org, "owner"),
            )
            .json(&json!({ "role": "admin" }))
            .send()
            .await
            .unwrap(),
            ErrorCode::LastOwner,
        )
        .await,
    );

    let conv = conversation(app, &key).await;
    drawn.push(
        drew(
            app.req(reqwest::Method::POST, "/v1/messages", &key)
                .json(&json!({ "conversation_id": conv, "body": "hi" }))
                .send()
                .await
                .unwrap(),
            ErrorCode::IdempotencyKeyRequired,
        )
        .await,
    );
    // No endpoint of kind `channel` yet.
    drawn.push(
        drew(
            app.post_as(
                "/v1/messages",
                &key,
                &json!({ "conversation_id": conv, "body": "hi" }),
            )
            .await,
            ErrorCode::ChannelNotConfigured,
        )
        .await,
    );

    let now = rampart::clock::now_ms();
    drawn.push(
        drew(
            schedule(app, &key, &conv, now - 60_000).await,
            ErrorCode::SendAtNotInFuture,
        )
        .await,
    );
    drawn.push(
        drew(
            schedule(app, &key, "cnv_00000000000000000000000000", now + 60_000).await,
            ErrorCode::ConversationNotFound,
        )
        .await,
    );
    let person = contact(app, &key).await;
    let to_contact = json!({
        "contact_id": person,
        "body": "x",
        "send_at": rampart::clock::rfc3339(now + 60_000),
    });
    drawn.push(
        drew(
            app.post_as("/v1/scheduled-messages", &key, &to_contact)
                .await,
            ErrorCode::UnsupportedTarget,
        )
        .await,
    );
    let pending = json_of(schedule(app, &key, &conv, now + 3_600_000).await, 201).await;
    let cancel = format!("/v1/scheduled-messages/{}", pending["id"].as_str().unwrap());
    json_of(app.delete_as(&cancel, &key).await, 200).await;
    drawn.push(drew(app.delete_as(&cancel, &key).await, ErrorCode::NotCancelable).await);

    drawn.push(not_replayable(app, &key).await);
    drawn.push(not_resendable(app, &key).await);
    drawn
}

/// The same request holds `idem` on another instance and is still running: its claim, as the
/// guard writes it (no request of this test can be held mid-handler on both stores).
async fn claim_elsewhere(app: &TestApp, org: &Org, idem: &str, external_key: &str) {
    let body = json!({ "external_key": external_key }).to_string();
    let fingerprint =
        rampart::traffic::idempotency::fingerprint("POST", "/v1/contacts", body.as_bytes());
    let now = rampart::clock::now_ms();
    rampart::store::Q::write(
        "INSERT INTO idempotency_keys (id, org_id, environment, idem_key, fingerprint, status, locked_at, created_at, expires_at)
         VALUES ($1, $2, 'live', $3, $4, 'in_flight', $5, $5, $6)",
    )
    .bind(rampart::ids::IdempotencyRecordId::new().to_string())
    .bind(org.id.as_str())
    .bind(idem)
    .bind(fingerprint)
    .bind(now)
    .bind(now + 86_400_000)
    .execute(&mut app.state.db.clone())
    .await
    .unwrap();
}

/// A dead letter whose endpoint was deleted meanwhile cannot be replayed.
async fn not_replayable(app: &TestApp, key: &str) -> String {
    // Nothing listens on port 1: the one attempt fails at once and the event is dead-lettered.
    let (ep, _) = endpoint(
        app,
        key,
        "http://127.0.0.1:1/",
        json!({ "events": ["contact.created"], "max_retries": 0 }),
    )
    .await;
    contact(app, key).await;
    app.drain_jobs().await;
    let list = json_of(app.get_as("/v1/dead-letters?status=open", key).await, 200).await;
    let dead = list["data"][0]["id"]
        .as_str()
        .expect("the failed delivery is dead-lettered");
    assert_eq!(
        app.delete_as(&format!("/v1/webhooks/{ep}"), key)
            .await
            .status(),
        204
    );
    drew(
        app.post_as(&format!("/v1/dead-letters/{dead}/replay"), key, &json!({}))
            .await,
        ErrorCode::NotReplayable,
    )
    .await
}

/// The channel endpoint's deliveries carry messages: they are not resent one by one.
async fn not_resendable(app: &TestApp, key: &str) -> String {
    let (channel, _) = endpoint(
        app,
        key,
        "https://example.com/channel",
        json!({ "kind": "channel" }),
    )
    .await;
    let ping = json_of(
        app.post_as(&format!("/v1/webhooks/{channel}/test"), key, &json!({}))
            .await,
        202,
    )
    .await;
    let delivery = ping["delivery_id"].as_str().unwrap();
    drew(
        app.post_as(
            &format!("/v1/webhooks/{channel}/deliveries/{delivery}/resend"),
            key,
            &json!({}),
        )
        .await,
        ErrorCode::NotResendable,
    )
    .await
}
