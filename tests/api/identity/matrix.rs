//! Authorization generated from the route registry: every `/v1` route × principal kind ×
//! scope present/absent × permission present/absent, and every object route across orgs.

use reqwest::Method;
use serde_json::json;

use rampart::access::grants::{Permission, Role, Scope};
use rampart::http::routes::{AuthKind, Route};

use crate::helpers::*;

crate::scenarios![
    authorization_matrix_from_the_route_registry,
    another_orgs_objects_are_not_found_on_every_object_route,
];

const GUARD_CODES: [&str; 4] = [
    "insufficient_scope",
    "insufficient_permission",
    "insufficient_role",
    "tenant_mismatch",
];

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') {
                "xyz_doesnotexist"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(app: &TestApp, r: &Route, path: &str, token: &str) -> (u16, String) {
    let mut req = app.req(r.method.clone(), path, token);
    if matches!(r.method, Method::POST | Method::PUT | Method::PATCH) {
        req = req
            .json(&json!({}))
            .header("idempotency-key", uuid::Uuid::now_v7().to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

/// What the guards should answer.
fn expect(
    allowed_kind: bool,
    has_scope: bool,
    has_perm: bool,
    role_ok: bool,
) -> Option<&'static str> {
    if !allowed_kind || !has_scope {
        Some("insufficient_scope")
    } else if !has_perm {
        Some("insufficient_permission")
    } else if !role_ok {
        Some("insufficient_role")
    } else {
        None
    }
}

fn judge(failures: &mut Vec<String>, what: String, got: (u16, String), want: Option<&str>) {
    match want {
        Some(code) => {
            if got.0 != 403 || got.1 != code {
                failures.push(format!("{what}: want 403 {code}, got {} {}", got.0, got.1));
            }
        }
        None => {
            if got.0 == 401
                || (got.0 == 403 && GUARD_CODES.contains(&got.1.as_str()))
                || got.0 == 402
            {
                failures.push(format!(
                    "{what}: want the guards to pass, got {} {}",
                    got.0, got.1
                ));
            }
        }
    }
}

async fn authorization_matrix_from_the_route_registry(store: Store) {
    let app = spawn_app_with(
        store,
        &[
            ("RAMPART_PLAN_FULL_RATE_LIMIT", "100000/s"),
            ("RAMPART_PLAN_STANDARD_RATE_LIMIT", "100000/s"),
        ],
    )
    .await;
    let org = app.org("Matrix").await;
    app.set_subscription(&org, "active", "full").await;
    let grantable: Vec<Scope> = Scope::ALL
        .into_iter()
        .filter(|s| s.key_grantable())
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for r in rampart::app::all_routes() {
        if !r.path.starts_with("/v1") || r.profile.auth.is_empty() {
            continue;
        }
        let path = concrete(r.path);
        let (Some(scope), Some(perm)) = (r.profile.scope, r.profile.permission) else {
            failures.push(format!("{} {} has no scope/permission", r.method, r.path));
            continue;
        };
        let other_perm = Permission::ALL.into_iter().find(|p| *p != perm).unwrap();
        let other_scope = grantable.iter().copied().find(|s| *s != scope).unwrap();
        let keys_allowed = r.profile.auth.contains(&AuthKind::ApiKey);
        // API keys: scope present/absent × permission present/absent.
        for (with_scope, with_perm) in [(true, true), (true, false), (false, true), (false, false)]
        {
            if with_scope && !scope.key_grantable() {
                continue; // no key can hold a user-only scope
            }
            let s = if with_scope { scope } else { other_scope };
            let p = if with_perm { perm } else { other_perm };
            let key = app.key(&org, &[s.as_str()], &[p.as_str()]).await;
            let got = call(&app, &r, &path, &key).await;
            let want = expect(keys_allowed, with_scope, with_perm, true);
            judge(
                &mut failures,
                format!("{} {} key[{}:{}]", r.method, r.path, s.as_str(), p.as_str()),
                got,
                want,
            );
            checked += 1;
        }
        if !scope.key_grantable() {
            let key = app.full_key(&org).await;
            let got = call(&app, &r, &path, &key).await;
            judge(
                &mut failures,
                format!("{} {} full key", r.method, r.path),
                got,
                Some("insufficient_scope"),
            );
            checked += 1;
        }
        // Users: each role's grants.
        let users_allowed = r.profile.auth.contains(&AuthKind::User);
        for role in Role::ALL {
            let g = role.grants();
            let role_ok = r.profile.min_role.is_none_or(|m| role >= m);
            let want = expect(
                users_allowed,
                g.has_scope(scope),
                g.allows(scope, perm),
                role_ok,
            );
            let got = call(&app, &r, &path, &app.token_for(&org, role.as_str())).await;
            judge(
                &mut failures,
                format!("{} {} user[{}]", r.method, r.path, role.as_str()),
                got,
                want,
            );
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 50, "only {checked} cells");
}

/// Creates an object of the kind `route` addresses in `org`; returns its id.
async fn make_object(app: &TestApp, org: &Org, route: &str) -> Option<String> {
    let key = app.full_key(org).await;
    let id = |v: serde_json::Value| v["id"].as_str().unwrap().to_owned();
    let contact = || async {
        id(json_of(
            app.post_as(
                "/v1/contacts",
                &key,
                &json!({ "external_key": uuid::Uuid::now_v7().to_string() }),
            )
            .await,
            201,
        )
        .await)
    };
    let conversation = || async {
        let c = contact().await;
        id(json_of(
            app.post_as(
                "/v1/conversations",
                &key,
                &json!({ "contact_id": c, "channel": "sms" }),
            )
            .await,
            201,
        )
        .await)
    };
    Some(match route {
        r if r.starts_with("/v1/contacts/{id}") => contact().await,
        r if r.starts_with("/v1/members/{id}") => {
            let email = format!("{}@members.test", uuid::Uuid::now_v7().simple());
            app.user(org, &email, "developer", "a long enough password")
                .await
        }
        r if r.starts_with("/v1/developer/keys/{id}") => {
            app.key_with(org, &["contacts"], &["read"], "live", None, None)
                .await
                .0
        }
        r if r.starts_with("/v1/webhooks/{id}") => id(json_of(
            app.post_as(
                "/v1/webhooks",
                &key,
                &json!({ "url": "https://example.com/h", "events": ["*"] }),
            )
            .await,
            201,
        )
        .await),
        r if r.starts_with("/v1/conversations/{id}") => conversation().await,
        r if r.starts_with("/v1/messages/{id}") => {
            let conv = conversation().await;
            id(json_of(
                app.post_as(
                    "/v1/messages/inbound",
                    &key,
                    &json!({ "conversation_id": conv, "body": "hi" }),
                )
                .await,
                201,
            )
            .await)
        }
        r if r.starts_with("/v1/scheduled-messages/{id}") => {
            let conv = conversation().await;
            let at = rampart::clock::rfc3339(rampart::clock::now_ms() + 3_600_000);
            id(json_of(
                app.post_as(
                    "/v1/scheduled-messages",
                    &key,
                    &json!({ "conversation_id": conv, "body": "later", "send_at": at }),
                )
                .await,
                201,
            )
            .await)
        }
        r if r.starts_with("/v1/gdpr/contacts/{external_key}") => {
            let k = uuid::Uuid::now_v7().to_string();
            json_of(
                app.post_as("/v1/contacts", &key, &json!({ "external_key": k }))
                    .await,
                201,
            )
            .await;
            k
        }
        r if r.starts_with("/v1/exports/{id}") => {
            id(json_of(app.post_as("/v1/exports", &key, &json!({})).await, 202).await)
        }
        r if r.starts_with("/v1/dead-letters/{id}") => {
            let dl = rampart::ids::DeadLetterId::new().to_string();
            rampart::store::Q::write("INSERT INTO dead_letters (id, org_id, environment, source, event_type, payload, reason, status, attempts, created_at, updated_at)
                 VALUES ($1, $2, 'live', 'webhook_delivery', 'contact.created', '{}', 'retries_exhausted', 'open', 1, 0, 0)",
            )
            .bind(dl.as_str())
            .bind(org.id.as_str())
            .execute(&mut app.state.db.clone())
            .await
            .unwrap();
            dl
        }
        _ => return None,
    })
}

async fn another_orgs_objects_are_not_found_on_every_object_route(store: Store) {
    let app = spawn_app(store).await;
    let a = app.org("A").await;
    let b = app.org("B").await;
    for o in [&a, &b] {
        app.set_subscription(o, "active", "full").await;
    }
    let b_owner = app.token_for(&b, "owner");
    let b_key = app.full_key(&b).await;
    let mut failures = Vec::new();
    for r in rampart::app::all_routes() {
        if !r.path.starts_with("/v1") || !r.path.contains('{') || r.profile.auth.is_empty() {
            continue;
        }
        let Some(id) = make_object(&app, &a, r.path).await else {
            failures.push(format!(
                "{} {}: no factory in make_object; add one",
                r.method, r.path
            ));
            continue;
        };
        let mut path = r.path.replace("{id}", &id).replace("{external_key}", &id);
        if path.contains("{delivery_id}") {
            // A delivery of A's endpoint `id`: a test ping makes one.
            let ping = json_of(
                app.post_as(
                    &format!("/v1/webhooks/{id}/test"),
                    &app.full_key(&a).await,
                    &json!({}),
                )
                .await,
                202,
            )
            .await;
            path = path.replace("{delivery_id}", ping["delivery_id"].as_str().unwrap());
        }
        for (who, token) in [("owner", &b_owner), ("key", &b_key)] {
            let kind = if who == "owner" {
                AuthKind::User
            } else {
                AuthKind::ApiKey
            };
            if !r.profile.auth.contains(&kind) {
                continue;
            }
            let (status, code) = call(&app, &r, &path, token).await;
            if status != 404 || code != "not_found" {
                failures.push(format!(
                    "{} {} as B's {who}: got {status} {code}",
                    r.method, path
                ));
            }
        }
        // And the object is still there for its own org.
        let (status, _) = call(&app, &r, &path, &app.token_for(&a, "owner")).await;
        if status == 404 && r.method == Method::GET {
            failures.push(format!(
                "{} {}: A cannot see its own object",
                r.method, path
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
