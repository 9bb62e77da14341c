//! Every console action against every role: the console refuses exactly what the API route's
//! profile refuses (the role table decides, through the API's own guard), and a refused
//! write is audited.

use rampart::access::grants::{Permission, Role, Scope};
use serde_json::json;

use super::client::Browser;
use crate::helpers::*;

const PASSWORD: &str = "a long enough password";

struct Action {
    name: &'static str,
    path: String,
    fields: Vec<(&'static str, &'static str)>,
    scope: Scope,
    perm: Permission,
    min_role: Option<Role>,
}

pub async fn every_console_action_against_every_role(store: Store) {
    let app = spawn_app(store).await;
    let mut failures = Vec::new();
    for role in Role::ALL {
        let org = app.org(role.as_str()).await;
        app.set_subscription(&org, "active", "full").await;
        let key = app.full_key(&org).await;
        let email = format!("{}@roles.test", role.as_str());
        app.user(&org, &email, role.as_str(), PASSWORD).await;
        let (ep, _) =
            crate::webhooks::endpoint(&app, &key, "https://example.com/r", json!({})).await;
        let delivery = test_ping(&app, &key, &ep).await;
        let key_id = app
            .key_with(&org, &["contacts"], &["read"], "live", None, None)
            .await
            .0;
        let other_key = app
            .key_with(&org, &["contacts"], &["read"], "live", None, None)
            .await
            .0;
        let m1 = app
            .user(
                &org,
                &format!("m1-{}@roles.test", role.as_str()),
                "developer",
                PASSWORD,
            )
            .await;
        let m2 = app
            .user(
                &org,
                &format!("m2-{}@roles.test", role.as_str()),
                "developer",
                PASSWORD,
            )
            .await;
        let conv = crate::messaging::conversation(&app, &key).await;
        let at = rampart::clock::now_ms() + 3_600_000;
        let sch = json_of(crate::messaging::schedule(&app, &key, &conv, at).await, 201).await;
        let sch = sch["id"].as_str().unwrap().to_owned();
        json_of(
            app.post_as("/v1/contacts", &key, &json!({ "external_key": "erase-me" }))
                .await,
            201,
        )
        .await;
        let dl = rampart::ids::DeadLetterId::new().to_string();
        rampart::store::Q::write("INSERT INTO dead_letters (id, org_id, environment, source, event_type, payload, reason, status, attempts, created_at, updated_at)
             VALUES ($1, $2, 'live', 'webhook_delivery', 'contact.created', '{}', 'retries_exhausted', 'open', 1, 0, 0)")
            .bind(dl.as_str())
            .bind(org.id.as_str())
            .execute(&mut app.state.db.clone())
            .await
            .unwrap();
        let actions = [
            Action {
                name: "create key",
                path: "/console/api-keys".into(),
                fields: vec![
                    ("name", "k"),
                    ("scopes", "contacts"),
                    ("permissions", "read"),
                ],
                scope: Scope::ApiKeys,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "rotate key",
                path: format!("/console/api-keys/{key_id}/rotate"),
                fields: vec![],
                scope: Scope::ApiKeys,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "revoke key",
                path: format!("/console/api-keys/{other_key}/revoke"),
                fields: vec![],
                scope: Scope::ApiKeys,
                perm: Permission::Delete,
                min_role: None,
            },
            Action {
                name: "invite member",
                path: "/console/members".into(),
                fields: vec![("email", "invited@roles.test"), ("role", "viewer")],
                scope: Scope::Org,
                perm: Permission::Write,
                min_role: Some(Role::Admin),
            },
            Action {
                name: "change role",
                path: format!("/console/members/{m1}/role"),
                fields: vec![("role", "viewer")],
                scope: Scope::Org,
                perm: Permission::Write,
                min_role: Some(Role::Admin),
            },
            Action {
                name: "remove member",
                path: format!("/console/members/{m2}/remove"),
                fields: vec![],
                scope: Scope::Org,
                perm: Permission::Delete,
                min_role: Some(Role::Admin),
            },
            Action {
                name: "create endpoint",
                path: "/console/webhooks".into(),
                fields: vec![("url", "https://example.com/new"), ("events", "*")],
                scope: Scope::Webhooks,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "edit endpoint",
                path: format!("/console/webhooks/{ep}/edit"),
                fields: vec![("url", "https://example.com/edited"), ("description", "d")],
                scope: Scope::Webhooks,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "resend delivery",
                path: format!("/console/webhooks/{ep}/deliveries/{delivery}/resend"),
                fields: vec![],
                scope: Scope::Webhooks,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "pause endpoint",
                path: format!("/console/webhooks/{ep}/status"),
                fields: vec![("status", "paused")],
                scope: Scope::Webhooks,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "rotate secret",
                path: format!("/console/webhooks/{ep}/rotate-secret"),
                fields: vec![],
                scope: Scope::Webhooks,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "test event",
                path: format!("/console/webhooks/{ep}/test"),
                fields: vec![],
                scope: Scope::Webhooks,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "replay one",
                path: format!("/console/dead-letters/{dl}/replay"),
                fields: vec![],
                scope: Scope::DeadLetters,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "cancel scheduled",
                path: format!("/console/scheduled/{sch}/cancel"),
                fields: vec![],
                scope: Scope::ScheduledMessages,
                perm: Permission::Delete,
                min_role: None,
            },
            Action {
                name: "erase contact",
                path: "/console/gdpr/erase".into(),
                fields: vec![("external_key", "erase-me"), ("confirm", "erase-me")],
                scope: Scope::Gdpr,
                perm: Permission::Delete,
                min_role: None,
            },
            Action {
                name: "start export",
                path: "/console/exports".into(),
                fields: vec![],
                scope: Scope::Exports,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "save branding",
                path: "/console/branding".into(),
                fields: vec![("name", "Brand")],
                scope: Scope::Org,
                perm: Permission::Write,
                min_role: None,
            },
            Action {
                name: "bulk replay",
                path: "/console/dead-letters/replay".into(),
                fields: vec![],
                scope: Scope::DeadLetters,
                perm: Permission::Write,
                min_role: None,
            },
        ];
        let mut b = Browser::sign_in(&app, &email, PASSWORD).await;
        for a in &actions {
            let allowed =
                role.grants().allows(a.scope, a.perm) && a.min_role.is_none_or(|m| role >= m);
            let p = b.post(&a.path, &a.fields).await;
            let refused = p.status == 403;
            if refused == allowed || (allowed && p.status != 200) {
                failures.push(format!(
                    "{} as {}: allowed={allowed}, got {}: {}",
                    a.name,
                    role.as_str(),
                    p.status,
                    p.body
                        .chars()
                        .filter(|c| *c != '\n')
                        .take(300)
                        .collect::<String>()
                ));
            }
        }
        if role == Role::Viewer {
            let audit = app.audit_actions(&org).await;
            let denied = audit
                .iter()
                .filter(|(a, o)| a == "auth.forbidden" && o == "denied")
                .count();
            if denied < actions.len() {
                failures.push(format!(
                    "viewer: {denied} audited refusals for {} forged writes",
                    actions.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

pub async fn a_viewer_sees_no_write_control(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Viewer").await;
    app.set_subscription(&org, "active", "full").await;
    let key = app.full_key(&org).await;
    app.user(&org, "viewer@viewer.test", "viewer", PASSWORD)
        .await;
    let (ep, _) = crate::webhooks::endpoint(&app, &key, "https://example.com/v", json!({})).await;
    // A delivery in the log: an owner would see "Resend" on it.
    test_ping(&app, &key, &ep).await;
    let mut b = Browser::sign_in(&app, "viewer@viewer.test", PASSWORD).await;
    for path in [
        "/console".to_owned(),
        "/console/webhooks".to_owned(),
        format!("/console/webhooks/{ep}"),
        "/console/dead-letters".to_owned(),
        "/console/contacts".to_owned(),
    ] {
        let p = b.get(&path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        let posts: Vec<&str> = p
            .body
            .match_indices("method=\"post\"")
            .map(|(i, _)| &p.body[i..(i + 80).min(p.body.len())])
            .collect();
        // Only the header's own forms (the live/test switch and sign-out).
        for f in &posts {
            assert!(
                f.contains("/console/environment") || f.contains("/console/logout"),
                "{path}: a write control for a viewer: {f}"
            );
        }
    }
    // Pages whose API read the viewer lacks are refused, not shown empty.
    assert_eq!(b.get("/console/api-keys").await.status, 403);
    assert_eq!(b.get("/console/members").await.status, 403);
}

/// A delivery of endpoint `ep` (a test ping's); returns its id.
async fn test_ping(app: &TestApp, key: &str, ep: &str) -> String {
    let t = json_of(
        app.post_as(&format!("/v1/webhooks/{ep}/test"), key, &json!({}))
            .await,
        202,
    )
    .await;
    t["delivery_id"].as_str().unwrap().to_owned()
}
