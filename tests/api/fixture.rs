//! One call that sets up what most scenarios start from: an org on an active full
//! subscription, a live key with every grantable scope, an owner who can sign in, and a
//! webhook endpoint subscribed to every event pointing at a real local receiver.

use serde_json::json;

use crate::helpers::{Org, TestApp, json_of};
use crate::receiver::Receiver;

pub const OWNER_EMAIL: &str = "owner@fixture.test";
pub const OWNER_PASSWORD: &str = "correct horse battery staple";

pub struct Fixture {
    pub org: Org,
    /// A live API key with every key-grantable scope and permission.
    pub key: String,
    /// The owner's user id; sign in with [`OWNER_EMAIL`] / [`OWNER_PASSWORD`].
    pub owner_id: String,
    /// An access token for an owner of the org (minted, no login needed).
    pub owner_token: String,
    pub receiver: Receiver,
    pub endpoint_id: String,
    /// The endpoint's signing secret (`whsec_…`).
    pub endpoint_secret: String,
}

impl TestApp {
    /// An org named `name` with a key, an owner, and an endpoint on a fresh receiver.
    pub async fn fixture(&self, name: &str) -> Fixture {
        let org = self.org(name).await;
        self.set_subscription(&org, "active", "full").await;
        let key = self.full_key(&org).await;
        let owner_id = self.user(&org, OWNER_EMAIL, "owner", OWNER_PASSWORD).await;
        let owner_token = self.token_for(&org, "owner");
        let receiver = Receiver::start().await;
        let ep = json_of(
            self.post_as(
                "/v1/webhooks",
                &key,
                &json!({ "url": receiver.url("/hook"), "events": ["*"] }),
            )
            .await,
            201,
        )
        .await;
        Fixture {
            org,
            key,
            owner_id,
            owner_token,
            receiver,
            endpoint_id: ep["id"].as_str().unwrap().to_owned(),
            endpoint_secret: ep["secret"].as_str().unwrap().to_owned(),
        }
    }
}
