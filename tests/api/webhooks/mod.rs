//! SPEC §6: endpoints, Standard Webhooks signing, retries, dead letters, replay, SSRF, workers.

mod dead_letters;
mod management;
mod resend;
mod retries;
mod signing;
mod ssrf;
mod stats;
mod urls;
mod workers;

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        signing::scenarios(),
        retries::scenarios(),
        dead_letters::scenarios(),
        management::scenarios(),
        resend::scenarios(),
        urls::scenarios(),
        ssrf::scenarios(),
        stats::scenarios(),
        workers::scenarios(),
    ]
    .concat()
}

pub fn plain() -> Vec<(&'static str, crate::Plain)> {
    signing::plain()
}

pub async fn endpoint(app: &TestApp, key: &str, url: &str, extra: Value) -> (String, String) {
    let mut body = json!({ "url": url, "events": ["*"] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let ep = json_of(app.post_as("/v1/webhooks", key, &body).await, 201).await;
    (
        ep["id"].as_str().unwrap().to_owned(),
        ep["secret"].as_str().unwrap().to_owned(),
    )
}

pub async fn contact(app: &TestApp, key: &str) -> String {
    let c = json_of(
        app.post_as(
            "/v1/contacts",
            key,
            &json!({ "external_key": uuid::Uuid::now_v7().to_string() }),
        )
        .await,
        201,
    )
    .await;
    c["id"].as_str().unwrap().to_owned()
}

pub async fn get_json(app: &TestApp, path: &str, key: &str) -> Value {
    json_of(app.get_as(path, key).await, 200).await
}

pub async fn wait_status(app: &TestApp, key: &str, endpoint: &str, want: &str) {
    eventually(Duration::from_secs(15), || async {
        let e = get_json(app, &format!("/v1/webhooks/{endpoint}"), key).await;
        (e["status"] == want).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("endpoint never became {want}"));
}

pub async fn dead_letters(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    get_json(app, &format!("/v1/dead-letters?limit=100&{query}"), key).await["data"]
        .as_array()
        .unwrap()
        .clone()
}
