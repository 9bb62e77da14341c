//! Test mode: test keys see only test data on every list route, and their sends are
//! sandboxed.

use reqwest::Method;
use serde_json::json;

use super::{conversation, schedule, send};
use crate::helpers::*;
use crate::receiver::Receiver;
use crate::webhooks::endpoint;

crate::scenarios![test_mode_is_isolated_on_every_list_route_and_sandboxed];

async fn test_mode_is_isolated_on_every_list_route_and_sandboxed(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let rx = Receiver::start().await;
    let org = app.org("Acme").await;
    let all = [
        "messages",
        "contacts",
        "conversations",
        "scheduled_messages",
        "webhooks",
        "dead_letters",
        "audit_logs",
        "exports",
        "gdpr",
    ];
    let (_, live) = app
        .key_with(&org, &all, &["read", "write", "delete"], "live", None, None)
        .await;
    let (_, test) = app
        .key_with(&org, &all, &["read", "write", "delete"], "test", None, None)
        .await;
    let mut seen: Vec<(String, bool)> = Vec::new();
    for (k, is_live) in [(&live, true), (&test, false)] {
        let (ep, _) = endpoint(
            &app,
            k,
            &rx.url(if is_live { "/live" } else { "/test" }),
            json!({ "kind": "channel" }),
        )
        .await;
        let conv = conversation(&app, k).await;
        let m = json_of(send(&app, k, &conv, "hello").await, 202).await;
        let s = json_of(
            schedule(&app, k, &conv, rampart::clock::now_ms() + 3_600_000).await,
            201,
        )
        .await;
        for id in [
            ep,
            conv,
            m["id"].as_str().unwrap().to_owned(),
            s["id"].as_str().unwrap().to_owned(),
        ] {
            seen.push((id, is_live));
        }
        app.drain_jobs().await;
        let id = m["id"].as_str().unwrap();
        let sent = json_of(app.get_as(&format!("/v1/messages/{id}"), k).await, 200).await;
        assert_eq!(sent["status"], "sent", "{sent}");
    }
    // The sandbox sink recorded the test message; nothing test-mode went over the network.
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "the live message only");
    assert!(
        hits.iter().all(|h| h.path == "/live"),
        "test mode never sends"
    );
    let sandbox = json_of(app.get_as("/v1/sandbox/deliveries", &test).await, 200).await;
    assert_eq!(sandbox["data"].as_array().unwrap().len(), 1);
    assert_eq!(sandbox["data"][0]["payload"]["type"], "message.created");
    assert!(
        sandbox["data"][0]["headers"]["webhook-signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert!(
        json_of(app.get_as("/v1/sandbox/deliveries", &live).await, 200).await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Every list route of the registry that a key can call shows one environment only.
    for r in rampart::app::all_routes() {
        // The audit log is the org's one record of both environments, by design.
        if r.method != Method::GET
            || !r.path.starts_with("/v1")
            || r.path.contains('{')
            || r.path == "/v1/audit-logs"
            || !r
                .profile
                .auth
                .contains(&rampart::http::routes::AuthKind::ApiKey)
        {
            continue;
        }
        for (k, is_live) in [(&live, true), (&test, false)] {
            let res = app.get_as(r.path, k).await;
            if res.status() != 200 {
                continue;
            }
            let text = res.text().await.unwrap();
            for (id, owner_live) in &seen {
                if *owner_live != is_live {
                    assert!(
                        !text.contains(id.as_str()),
                        "{} with a {} key shows {id}",
                        r.path,
                        if is_live { "live" } else { "test" }
                    );
                }
            }
        }
    }
    // And objects of the other environment are not found by id.
    for (id, owner_live) in &seen {
        let other = if *owner_live { &test } else { &live };
        let path = match &id[..3] {
            "ep_" => format!("/v1/webhooks/{id}"),
            "cnv" => format!("/v1/conversations/{id}"),
            "msg" => format!("/v1/messages/{id}"),
            _ => format!("/v1/scheduled-messages/{id}"),
        };
        problem_of(app.get_as(&path, other).await, 404, "not_found").await;
    }
}
