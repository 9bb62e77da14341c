//! The SSRF guard, when an endpoint is created and again when a delivery connects.

use serde_json::json;

use super::{contact, endpoint, get_json};
use crate::helpers::*;
use crate::receiver::Receiver;

crate::scenarios![ssrf_guard_at_creation_and_at_connect_time];

async fn ssrf_guard_at_creation_and_at_connect_time(store: Store) {
    let app = spawn_quiet(store, &[("RAMPART_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    for bad in [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[fd00:ec2::254]/",
        "https://0.0.0.0/",
        "http://example.com/plain-http",
        "https://user:secret@example.com/",
        "ftp://example.com/",
        "not a url",
    ] {
        let res = app
            .post_as(
                "/v1/webhooks",
                &key,
                &json!({ "url": bad, "events": ["*"] }),
            )
            .await;
        let p = problem_of(res, 422, "validation_failed").await;
        assert_eq!(p["errors"][0]["field"], "url", "{bad}: {p}");
    }
    let long = format!("https://example.com/{}", "a".repeat(2100));
    problem_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": long, "events": ["*"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;

    // A name that resolves to loopback is refused at creation (webhooks/urls.rs) and
    // again when connecting: here it was configured while it still resolved to a public
    // address (DNS rebinding), which an instance allowing private targets stands in for.
    let rx = Receiver::start().await;
    let url = format!("https://localhost:{}/hook", rx.addr.port());
    let maker = spawn_on(
        app.db.clone(),
        &[],
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let (ep, _) = endpoint(&maker, &key, &url, json!({ "max_retries": 0 })).await;
    contact(&app, &key).await;
    // Delivered by this instance's handlers, which refuse private targets.
    app.drain_jobs().await;
    let log = get_json(&app, &format!("/v1/webhooks/{ep}/deliveries"), &key).await;
    assert_eq!(log["data"][0]["error_class"], "ssrf_blocked", "{log}");
    assert!(rx.hits().is_empty());

    // An allowlisted host is reachable (and may use plain http), without opening the rest.
    let open = spawn_on(
        app.db.clone(),
        &[
            ("RAMPART_WEBHOOK_ALLOW_PRIVATE", "false"),
            ("RAMPART_WEBHOOK_ALLOWED_TARGETS", "localhost"),
        ],
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let (_, _) = endpoint(
        &open,
        &key,
        &format!("http://localhost:{}/ok", rx.addr.port()),
        json!({ "events": ["contact.deleted"] }),
    )
    .await;
    problem_of(
        open.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "http://127.0.0.1/", "events": ["*"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let c = contact(&open, &key).await;
    assert_eq!(
        open.delete_as(&format!("/v1/contacts/{c}"), &key)
            .await
            .status(),
        204
    );
    // Delivered by the allowlisting instance's handlers.
    open.drain_jobs().await;
    assert!(rx.hits().iter().any(|h| h.path == "/ok"));
}
