//! SPEC §7: deep health and alerts, heartbeats, operator actions, the status page, backups.

mod backups;
mod health;
mod operator;
mod retention;
mod status_page;

use serde_json::{Value, json};

use crate::helpers::*;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        health::scenarios(),
        operator::scenarios(),
        status_page::scenarios(),
        backups::scenarios(),
        retention::scenarios(),
    ]
    .concat()
}

pub fn plain() -> Vec<(&'static str, crate::Plain)> {
    health::plain()
}

/// Browser tests (ignored without Chromium).
pub fn chromium_tests() -> Vec<(&'static str, crate::Plain)> {
    status_page::chromium_tests()
}

pub async fn operator(
    app: &TestApp,
    token: &str,
    action: &str,
    params: Value,
) -> reqwest::Response {
    app.post_as(
        "/v1/operator/actions",
        token,
        &json!({ "action": action, "params": params }),
    )
    .await
}
