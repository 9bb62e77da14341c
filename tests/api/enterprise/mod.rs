//! SPEC §8: GDPR export and erasure, org exports, partners.

mod exports;
mod gdpr;
mod partners;

use serde_json::json;

use crate::helpers::*;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        gdpr::scenarios(),
        exports::scenarios(),
        partners::scenarios(),
    ]
    .concat()
}

pub async fn setup_subject(app: &TestApp, key: &str) -> (String, String, String) {
    let c = json_of(app.post_as("/v1/contacts", key, &json!({ "external_key": "subject-1", "name": "Ada Lovelace", "email": "ada@example.com" })).await, 201).await;
    let contact = c["id"].as_str().unwrap().to_owned();
    let conv = json_of(
        app.post_as(
            "/v1/conversations",
            key,
            &json!({ "contact_id": contact, "channel": "sms" }),
        )
        .await,
        201,
    )
    .await;
    let conv = conv["id"].as_str().unwrap().to_owned();
    let m = json_of(
        app.post_as(
            "/v1/messages/inbound",
            key,
            &json!({ "conversation_id": conv, "body": "my secret diary entry" }),
        )
        .await,
        201,
    )
    .await;
    let at = rampart::clock::rfc3339(rampart::clock::now_ms() + 3_600_000);
    json_of(
        app.post_as(
            "/v1/scheduled-messages",
            key,
            &json!({ "conversation_id": conv, "body": "future secret", "send_at": at }),
        )
        .await,
        201,
    )
    .await;
    (contact, conv, m["id"].as_str().unwrap().to_owned())
}
