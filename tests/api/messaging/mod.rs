//! SPEC §4: contacts, conversations, messages through the channel, scheduled messages, test
//! mode.

mod channel;
mod contacts;
mod conversations;
mod dispatch;
mod scheduled;
mod search;
mod test_mode;

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;
use crate::webhooks::{contact, endpoint};

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        channel::scenarios(),
        contacts::scenarios(),
        conversations::scenarios(),
        scheduled::scenarios(),
        search::scenarios(),
        dispatch::scenarios(),
        test_mode::scenarios(),
    ]
    .concat()
}

/// An org with a full key, its channel endpoint pointing at a new receiver, and a
/// conversation: what scheduled messages need. Returns (receiver, key, conversation id).
pub(crate) async fn channel_setup(app: &TestApp) -> (Receiver, String, String) {
    let channel = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(app, &key, &channel.url("/"), json!({ "kind": "channel" })).await;
    let conv = conversation(app, &key).await;
    (channel, key, conv)
}

/// Each scheduled message in `ids` arrives at `channel` exactly once and reads `dispatched`.
pub(crate) async fn assert_each_dispatched_once(
    app: &TestApp,
    key: &str,
    channel: &Receiver,
    ids: &[String],
) {
    channel.wait_for(ids.len(), Duration::from_secs(30)).await;
    // The scheduler dispatches in its own time (send_at is the feature): a moment more for any
    // duplicate to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(channel.hits().len(), ids.len(), "each exactly once");
    for id in ids {
        let s = json_of(
            app.get_as(&format!("/v1/scheduled-messages/{id}"), key)
                .await,
            200,
        )
        .await;
        assert_eq!(s["status"], "dispatched", "{s}");
    }
}

pub(crate) async fn conversation(app: &TestApp, key: &str) -> String {
    let c = contact(app, key).await;
    let conv = json_of(
        app.post_as(
            "/v1/conversations",
            key,
            &json!({ "contact_id": c, "channel": "sms" }),
        )
        .await,
        201,
    )
    .await;
    conv["id"].as_str().unwrap().to_owned()
}

pub async fn send(app: &TestApp, key: &str, conv: &str, body: &str) -> reqwest::Response {
    app.post_as(
        "/v1/messages",
        key,
        &json!({ "conversation_id": conv, "body": body }),
    )
    .await
}

pub async fn message_status(app: &TestApp, key: &str, id: &str, want: &str) -> Value {
    eventually(Duration::from_secs(15), || async {
        let m = json_of(app.get_as(&format!("/v1/messages/{id}"), key).await, 200).await;
        (m["status"] == want).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("message {id} never became {want}"))
}

pub(crate) async fn schedule(
    app: &TestApp,
    key: &str,
    conv: &str,
    send_at_ms: i64,
) -> reqwest::Response {
    app.post_as(
        "/v1/scheduled-messages",
        key,
        &json!({ "conversation_id": conv, "body": "later", "send_at": rampart::clock::rfc3339(send_at_ms) }),
    )
    .await
}
