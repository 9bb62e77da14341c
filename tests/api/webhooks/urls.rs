//! Issue 22, finding 8: webhook URLs are stored as they will be called, and targets that can
//! only be private are refused when the endpoint is configured, not only at delivery.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

crate::scenarios![
    webhook_urls_are_stored_in_their_normalised_form,
    odd_authorities_and_port_zero_are_refused_on_create_and_update,
    names_that_resolve_only_to_private_addresses_are_refused_when_private_targets_are_not,
];

async fn create(app: &TestApp, key: &str, url: &str) -> reqwest::Response {
    app.post_as("/v1/webhooks", key, &json!({ "url": url, "events": ["*"] }))
        .await
}

async fn patch_url(app: &TestApp, key: &str, ep: &str, url: &str) -> reqwest::Response {
    app.req(Method::PATCH, &format!("/v1/webhooks/{ep}"), key)
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap()
}

/// Asserts a 422 that names `url`; returns its message.
async fn refused_url(res: reqwest::Response, what: &str) -> String {
    let p = problem_of(res, 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "url", "{what}: {p}");
    p["errors"][0]["message"].as_str().unwrap().to_owned()
}

async fn webhook_urls_are_stored_in_their_normalised_form(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let ep = json_of(
        create(&app, &key, "HTTPS://Hooks.Example.COM:443/a/../in?x=1").await,
        201,
    )
    .await;
    assert_eq!(ep["url"], "https://hooks.example.com/in?x=1", "{ep}");
    let id = ep["id"].as_str().unwrap();
    let got: Value = json_of(app.get_as(&format!("/v1/webhooks/{id}"), &key).await, 200).await;
    assert_eq!(got["url"], "https://hooks.example.com/in?x=1");
    let patched = json_of(
        patch_url(&app, &key, id, "https://B\u{fc}cher.example:8443/x").await,
        200,
    )
    .await;
    assert_eq!(patched["url"], "https://xn--bcher-kva.example:8443/x");
    // What the delivery job reads is what the API showed.
    let stored = rampart::store::Q::read("SELECT url FROM webhook_endpoints WHERE id = $1")
        .bind(id)
        .fetch_row(&mut app.state.db.clone())
        .await
        .unwrap()
        .get::<String>("url")
        .unwrap();
    assert_eq!(stored, "https://xn--bcher-kva.example:8443/x");
}

async fn odd_authorities_and_port_zero_are_refused_on_create_and_update(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let ok = json_of(create(&app, &key, "https://hooks.example.com/").await, 201).await;
    let id = ok["id"].as_str().unwrap();
    for bad in [
        // The WHATWG parser reads each of these as host `h`.
        "https:///h",
        "https:h/x",
        "https:/h",
        "https:\\\\h",
        "https://h\\@example.com/",
        "https://@example.com/",
        " https://example.com/",
        "https://example.com:0/",
        "http://127.0.0.1:0/",
    ] {
        refused_url(create(&app, &key, bad).await, bad).await;
        refused_url(patch_url(&app, &key, id, bad).await, bad).await;
    }
    let m = refused_url(create(&app, &key, "https://example.com:0/").await, "port 0").await;
    assert!(m.contains("port 0"), "{m}");
    // Nothing was stored or changed.
    let list = json_of(app.get_as("/v1/webhooks", &key).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["url"], "https://hooks.example.com/");
}

async fn names_that_resolve_only_to_private_addresses_are_refused_when_private_targets_are_not(
    store: Store,
) {
    let app = spawn_app_with(store, &[("RAMPART_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    // `localhost` resolves to loopback only (from /etc/hosts: no network needed).
    for url in ["https://localhost/hook", "https://LOCALHOST:8443/hook"] {
        let m = refused_url(create(&app, &key, url).await, url).await;
        assert!(m.contains("resolves only to private"), "{m}");
    }
    // A public literal address is accepted; changing it to such a name is refused.
    let ep = json_of(create(&app, &key, "https://93.184.216.34/hook").await, 201).await;
    let id = ep["id"].as_str().unwrap();
    refused_url(
        patch_url(&app, &key, id, "https://localhost:9443/").await,
        "patch",
    )
    .await;
    // A name that does not resolve (now) is accepted: delivery resolves it at every attempt.
    let ep = json_of(
        create(&app, &key, "https://no-such-host.invalid/hook").await,
        201,
    )
    .await;
    assert_eq!(ep["url"], "https://no-such-host.invalid/hook");
    // Allowing the name opens it, here as at delivery.
    let open = spawn_on(
        app.db.clone(),
        &[
            ("RAMPART_WEBHOOK_ALLOW_PRIVATE", "false"),
            ("RAMPART_WEBHOOK_ALLOWED_TARGETS", "localhost"),
        ],
        Default::default(),
    )
    .await;
    json_of(create(&open, &key, "https://localhost/hook").await, 201).await;
}
