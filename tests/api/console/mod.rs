//! The web console (SPEC §10): sign-in and sessions, CSRF and origin checks, escaping, tenant
//! isolation, the live/test switch, and every console action against every role (the API
//! route decides; the console only shows).

pub mod browser;
pub mod client;
mod roles;

use serde_json::json;

use self::client::Browser;
use self::roles::{a_viewer_sees_no_write_control, every_console_action_against_every_role};
use crate::fixture::{OWNER_EMAIL, OWNER_PASSWORD};
use crate::helpers::*;

crate::scenarios![
    sign_in_sets_a_strict_cookie_and_a_nonce_csp,
    a_wrong_password_is_refused_and_audited_like_the_api,
    cross_origin_and_csrf_less_posts_are_refused,
    idle_absolute_sign_out_removal_and_password_change_end_the_session,
    markup_in_data_renders_as_text,
    another_orgs_ids_are_not_found_on_console_pages,
    the_test_switch_shows_only_sandbox_data,
    an_invited_member_sets_a_password_in_the_console,
    conversations_scheduled_gdpr_and_exports_pages,
    the_audit_page_shows_the_chain_status,
    the_exports_page_lists_exports_with_their_links,
    messages_contacts_conversations_and_scheduled_pages_search,
    a_delivery_is_resent_from_the_log,
    the_overview_charts_attempts_and_lists_failing_endpoints,
    every_console_action_against_every_role,
    a_viewer_sees_no_write_control,
];

fn sha256_hex(s: &str) -> String {
    rampart::access::tokens::sha256_hex(s)
}

async fn sign_in_sets_a_strict_cookie_and_a_nonce_csp(store: Store) {
    for hsts in [false, true] {
        let app = spawn_app_with(
            store,
            &[("RAMPART_HSTS", if hsts { "true" } else { "false" })],
        )
        .await;
        app.fixture("Console").await;
        let mut b = Browser::new(&app);
        if hsts {
            // Behind the TLS front end that HSTS implies, pages are served from https.
            b.origin = b.origin.replace("http://", "https://");
        }
        let first = b.get("/console").await;
        assert_eq!((first.status, first.location()), (303, "/console/login"));
        let login = b.get("/console/login").await;
        assert_eq!(login.status, 200);
        let csp = login.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("style-src 'nonce-") && csp.contains("form-action 'self'"),
            "{csp}"
        );
        // Under `no-referrer` a browser's form posts carry `Origin: null` (docs/CONSOLE.md).
        assert_eq!(login.headers["referrer-policy"], "strict-origin");
        let origin = b.origin.clone();
        let res = b
            .post_raw(
                "/console/login",
                &[("email", OWNER_EMAIL), ("password", OWNER_PASSWORD)],
                Some(&origin),
            )
            .await;
        assert_eq!(res.status, 303, "{}", res.body);
        let set = res.headers["set-cookie"].to_str().unwrap().to_owned();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set.contains(attr), "{set}");
        }
        assert_eq!(set.contains("Secure"), hsts, "{set}");
        // Only the cookie's hash is stored.
        let raw = b.cookie.clone().unwrap();
        let raw = raw.split_once('=').unwrap().1;
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) AS n FROM console_sessions WHERE id = $1",
                &[raw]
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) AS n FROM console_sessions WHERE id = $1",
                &[&sha256_hex(raw)]
            )
            .await,
            1
        );
        for path in [
            "/console",
            "/console/webhooks",
            "/console/members",
            "/console/api-keys",
        ] {
            let p = b.get(path).await;
            let csp = p.headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("style-src 'nonce-"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            let nonce = csp
                .split("'nonce-")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            assert!(p.body.contains(&format!("nonce=\"{nonce}\"")), "{path}");
            assert!(!p.body.contains("<script"), "{path}");
        }
    }
}

async fn a_wrong_password_is_refused_and_audited_like_the_api(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_LOGIN_RATE_LIMIT", "3/min")]).await;
    let f = app.fixture("Console").await;
    let mut b = Browser::new(&app);
    let origin = b.origin.clone();
    let wrong = [("email", OWNER_EMAIL), ("password", "not the password")];
    let p = b.post_raw("/console/login", &wrong, Some(&origin)).await;
    assert_eq!(p.status, 401, "{}", p.body);
    assert!(b.cookie.is_none());
    let audit = app.audit_actions(&f.org).await;
    assert!(
        audit.contains(&("auth.login".into(), "failure".into())),
        "{audit:?}"
    );
    // The login limit is the API's: console and API attempts count together.
    app.post_json(
        "/v1/auth/login",
        &json!({ "email": OWNER_EMAIL, "password": "nope nope" }),
    )
    .await;
    app.post_json(
        "/v1/auth/login",
        &json!({ "email": OWNER_EMAIL, "password": "nope nope" }),
    )
    .await;
    let p = b.post_raw("/console/login", &wrong, Some(&origin)).await;
    assert_eq!(p.status, 429, "{}", p.body);
}

async fn cross_origin_and_csrf_less_posts_are_refused(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Console").await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let csrf = b.get("/console").await.csrf();
    assert!(!csrf.is_empty());
    let origin = b.origin.clone();
    let form = |csrf: &str| {
        vec![
            ("name".to_owned(), "k".to_owned()),
            ("scopes".to_owned(), "contacts".to_owned()),
            ("permissions".to_owned(), "read".to_owned()),
            ("csrf".to_owned(), csrf.to_owned()),
        ]
    };
    // Another site's page posting with a stolen token, no origin, no token, a wrong token.
    assert_eq!(
        send(&mut b, form(&csrf), Some("http://evil.test".into()))
            .await
            .status,
        403
    );
    assert_eq!(send(&mut b, form(&csrf), None).await.status, 403);
    let mut no_token = form(&csrf);
    no_token.pop();
    assert_eq!(
        send(&mut b, no_token, Some(origin.clone())).await.status,
        403
    );
    let mut other = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let other_csrf = other.get("/console").await.csrf();
    assert_ne!(other_csrf, csrf);
    assert_eq!(
        send(&mut b, form(&other_csrf), Some(origin.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM api_keys WHERE org_id = $1 AND name = 'k'",
            &[&f.org.id]
        )
        .await,
        0
    );
    // The right token from the right origin works.
    let ok = send(&mut b, form(&csrf), Some(origin.clone())).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("Copy the secret now"), "{}", ok.body);
    let audit = app.audit_actions(&f.org).await;
    assert!(
        audit.contains(&("console.request_refused".into(), "denied".into())),
        "{audit:?}"
    );
    // Sign-out is a state change too.
    assert_eq!(
        b.post_raw("/console/logout", &[], Some(&origin))
            .await
            .status,
        403
    );
}

async fn idle_absolute_sign_out_removal_and_password_change_end_the_session(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Console").await;
    // The app's clock is moved (`AppState::clock`): no sleeping, no row edited.
    let clock = &app.state.clock;
    // Idle: 29 minutes unused is alive (and the page restarts the idle clock), 31 is dead.
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    clock.advance(29 * 60_000);
    assert_eq!(b.get("/console").await.status, 200);
    clock.advance(29 * 60_000);
    assert_eq!(b.get("/console").await.status, 200);
    clock.advance(31 * 60_000);
    assert_eq!(b.get("/console").await.location(), "/console/login");
    // Absolute: 12 hours after sign-in, however busy (a page every 25 minutes).
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    for _ in 0..28 {
        clock.advance(25 * 60_000);
        assert_eq!(b.get("/console").await.status, 200);
    }
    clock.advance(25 * 60_000);
    assert_eq!(b.get("/console").await.location(), "/console/login");
    // Sign-out: the old cookie is dead even if replayed.
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let cookie = b.cookie.clone();
    let out = b.post("/console/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    b.cookie = cookie;
    assert_eq!(b.get("/console").await.location(), "/console/login");
    // Removal from the org.
    let dev = crate::members::member(&app, &f.owner_token, "dev@console.test", "developer").await;
    let mut d = Browser::sign_in(&app, "dev@console.test", "a brand new long password").await;
    assert_eq!(d.get("/console").await.status, 200);
    let mut owner = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let removed = owner
        .post(&format!("/console/members/{dev}/remove"), &[])
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(d.get("/console").await.location(), "/console/login");
    // A password change ends every session of the user.
    let mut tx = app.state.db.begin().await.unwrap();
    let org = rampart::ids::OrgId::parse(&f.org.id).unwrap();
    let user = rampart::ids::UserId::parse(&f.owner_id).unwrap();
    let (url, _) = rampart::members::routes::issue_link(&app.state, &mut tx, &org, &user)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let mut anon = Browser::new(&app);
    let form = anon
        .get(&format!("/console/set-password?token={token}"))
        .await;
    assert_eq!(form.status, 200);
    let origin = anon.origin.clone();
    let set = anon
        .post_raw(
            "/console/set-password",
            &[("token", &token), ("password", "an entirely new password")],
            Some(&origin),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("Your password is set"));
    assert_eq!(owner.get("/console").await.location(), "/console/login");
}

const XSS: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

async fn markup_in_data_renders_as_text(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Console").await;
    let c = json_of(
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": "xss", "name": XSS }),
        )
        .await,
        201,
    )
    .await;
    let ep = json_of(
        app.post_as(
            "/v1/webhooks",
            &f.key,
            &json!({ "url": "https://example.com/x", "events": ["*"], "description": XSS }),
        )
        .await,
        201,
    )
    .await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let saved = b
        .post(
            "/console/branding",
            &[("name", "<script>alert(1)</script>")],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let pages = [
        "/console/branding".to_owned(),
        "/console/contacts".to_owned(),
        format!("/console/contacts/{}", c["id"].as_str().unwrap()),
        "/console/webhooks".to_owned(),
        format!("/console/webhooks/{}", ep["id"].as_str().unwrap()),
    ];
    for path in &pages {
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(!p.body.contains("<script>alert"), "{path}");
        assert!(!p.body.contains("<img src=x"), "{path}");
        assert!(
            p.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
    }
}

async fn another_orgs_ids_are_not_found_on_console_pages(store: Store) {
    let app = spawn_app(store).await;
    app.fixture("A").await;
    let other = app.org("B").await;
    app.set_subscription(&other, "active", "full").await;
    let b_key = app.full_key(&other).await;
    let b_contact = crate::webhooks::contact(&app, &b_key).await;
    let (b_ep, _) =
        crate::webhooks::endpoint(&app, &b_key, "https://example.com/b", json!({})).await;
    let b_ping = json_of(
        app.post_as(&format!("/v1/webhooks/{b_ep}/test"), &b_key, &json!({}))
            .await,
        202,
    )
    .await;
    let b_delivery = b_ping["delivery_id"].as_str().unwrap().to_owned();
    let b_user = app
        .user(&other, "b@b.test", "developer", "a long enough password")
        .await;
    let b_key_id = app
        .key_with(&other, &["contacts"], &["read"], "live", None, None)
        .await
        .0;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    for path in [
        format!("/console/contacts/{b_contact}"),
        format!("/console/webhooks/{b_ep}"),
        format!(
            "/console/dead-letters/{}",
            rampart::ids::DeadLetterId::new()
        ),
    ] {
        assert_eq!(b.get(&path).await.status, 404, "{path}");
    }
    for path in [
        format!("/console/webhooks/{b_ep}/status"),
        format!("/console/webhooks/{b_ep}/test"),
        format!("/console/webhooks/{b_ep}/rotate-secret"),
        format!("/console/webhooks/{b_ep}/deliveries/{b_delivery}/resend"),
        format!("/console/api-keys/{b_key_id}/revoke"),
        format!("/console/api-keys/{b_key_id}/rotate"),
        format!("/console/members/{b_user}/remove"),
    ] {
        let p = b
            .post(&path, &[("status", "paused"), ("role", "viewer")])
            .await;
        assert!(
            p.status == 404 || p.body.contains("(not_found)"),
            "{path}: {} {}",
            p.status,
            p.body
        );
    }
}

async fn the_test_switch_shows_only_sandbox_data(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Switch").await;
    let (_, test_key) = app
        .key_with(
            &f.org,
            &["contacts"],
            &["read", "write"],
            "test",
            None,
            None,
        )
        .await;
    json_of(
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": "live-one" }),
        )
        .await,
        201,
    )
    .await;
    json_of(
        app.post_as(
            "/v1/contacts",
            &test_key,
            &json!({ "external_key": "sandbox-one" }),
        )
        .await,
        201,
    )
    .await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let live = b.get("/console/contacts").await;
    assert!(live.body.contains("live-one") && !live.body.contains("sandbox-one"));
    assert_eq!(
        b.post("/console/environment", &[("environment", "test")])
            .await
            .status,
        303
    );
    let test = b.get("/console/contacts").await;
    assert!(
        test.body.contains("sandbox-one") && !test.body.contains("live-one"),
        "{}",
        test.body
    );
    assert!(test.body.contains("Switch to live data"));
    b.post("/console/environment", &[("environment", "live")])
        .await;
    assert!(b.get("/console/contacts").await.body.contains("live-one"));
}

async fn an_invited_member_sets_a_password_in_the_console(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Invite").await;
    let mut owner = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let p = owner
        .post(
            "/console/members",
            &[("email", "new@invite.test"), ("role", "viewer")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let re = regex::Regex::new(r"token=(pwt_[A-Za-z0-9_-]+)").unwrap();
    let token = re.captures(&p.body).unwrap()[1].to_owned();
    let mut anon = Browser::new(&app);
    let origin = anon.origin.clone();
    let weak = anon
        .post_raw(
            "/console/set-password",
            &[("token", &token), ("password", "short")],
            Some(&origin),
        )
        .await;
    assert_eq!(weak.status, 422, "{}", weak.body);
    assert!(weak.body.contains("12"), "{}", weak.body);
    let ok = anon
        .post_raw(
            "/console/set-password",
            &[("token", &token), ("password", "a viewer's long password")],
            Some(&origin),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let mut viewer = Browser::sign_in(&app, "new@invite.test", "a viewer's long password").await;
    let page = viewer.get("/console").await;
    assert!(page.body.contains("viewer"));
    let audit = app.audit_actions(&f.org).await;
    assert!(audit.contains(&("member.added".into(), "success".into())));
}

async fn send(
    b: &mut Browser<'_>,
    fields: Vec<(String, String)>,
    origin: Option<String>,
) -> client::Page {
    let f: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post_raw("/console/api-keys", &f, origin.as_deref()).await
}

async fn conversations_scheduled_gdpr_and_exports_pages(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Pages").await;
    let conv = crate::messaging::conversation(&app, &f.key).await;
    let at = rampart::clock::now_ms() + 3_600_000;
    let sch = json_of(
        crate::messaging::schedule(&app, &f.key, &conv, at).await,
        201,
    )
    .await;
    let sch_id = sch["id"].as_str().unwrap();
    json_of(
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": "forget-me", "name": "Ada" }),
        )
        .await,
        201,
    )
    .await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let list = b.get("/console/conversations").await;
    assert!(list.body.contains(&conv), "{}", list.body);
    assert_eq!(
        b.get(&format!("/console/conversations/{conv}"))
            .await
            .status,
        200
    );
    let scheduled = b.get("/console/scheduled?status=pending").await;
    assert!(
        scheduled.body.contains(sch_id) || scheduled.body.contains("Cancel"),
        "{}",
        scheduled.body
    );
    let canceled = b
        .post(&format!("/console/scheduled/{sch_id}/cancel"), &[])
        .await;
    assert!(canceled.body.contains("Canceled."), "{}", canceled.body);
    let again = b
        .post(&format!("/console/scheduled/{sch_id}/cancel"), &[])
        .await;
    assert!(again.body.contains("not_cancelable"), "{}", again.body);

    // GDPR: the export shows the contact; erasure needs the key typed again.
    let g = b.get("/console/gdpr?external_key=forget-me").await;
    assert!(
        g.body.contains("Ada") && g.body.contains("Erase this contact"),
        "{}",
        g.body
    );
    let wrong = b
        .post(
            "/console/gdpr/erase",
            &[("external_key", "forget-me"), ("confirm", "forget")],
        )
        .await;
    assert!(wrong.body.contains("nothing was erased"));
    json_of(
        app.get_as("/v1/contacts?external_key=forget-me", &f.key)
            .await,
        200,
    )
    .await;
    let erased = b
        .post(
            "/console/gdpr/erase",
            &[("external_key", "forget-me"), ("confirm", "forget-me")],
        )
        .await;
    assert!(erased.body.contains("Erased."), "{}", erased.body);
    let audit = app.audit_actions(&f.org).await;
    assert!(
        audit
            .iter()
            .any(|(a, o)| a.starts_with("gdpr.") && o == "success"),
        "{audit:?}"
    );

    // A full export: started from the console, its status page by id.
    let started = b.post("/console/exports", &[]).await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(started.body.contains("exp_"), "{}", started.body);
}

async fn the_audit_page_shows_the_chain_status(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Audit").await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    b.post(
        "/console/api-keys",
        &[
            ("name", "k"),
            ("scopes", "contacts"),
            ("permissions", "read"),
        ],
    )
    .await;
    let page = b.get("/console/audit").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Chain status"), "{}", page.body);
    assert!(page.body.contains("Intact: "), "{}", page.body);
    let edited: String =
        rampart::store::Q::read("SELECT id FROM audit_logs WHERE org_id = $1 ORDER BY seq LIMIT 1")
            .bind(f.org.id.as_str())
            .fetch_scalar(&mut app.state.db.clone())
            .await
            .unwrap();
    rampart::store::Q::write("UPDATE audit_logs SET outcome = 'failure' WHERE id = $1")
        .bind(edited.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let page = b.get("/console/audit").await;
    assert!(page.body.contains("Broken at entry 1"), "{}", page.body);
    assert!(page.body.contains(&edited), "{}", page.body);
    assert!(page.body.contains("edited"), "{}", page.body);
}

async fn the_exports_page_lists_exports_with_their_links(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Exports").await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let empty = b.get("/console/exports").await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("No exports yet."), "{}", empty.body);
    let started = b.post("/console/exports", &[]).await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(started.body.contains("started"), "{}", started.body);
    let id = regex::Regex::new(r"exp_[0-9a-z]{26}")
        .unwrap()
        .find(&started.body)
        .unwrap()
        .as_str()
        .to_owned();
    // Built by the worker: the list then shows it ready, with a link that downloads it.
    let re = regex::Regex::new(r#"href="([^"]*/v1/exports/[^"]*/download[^"]*)""#).unwrap();
    let mut link = None;
    for _ in 0..100 {
        let p = b.get("/console/exports").await;
        if let Some(c) = re.captures(&p.body) {
            link = Some(c[1].replace("&amp;", "&"));
            break;
        }
        // The in-process worker records the attempt (or builds the export) after the receiver
        // has it: poll the page until it shows, at most 15-20 s.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let link = link.expect("the export becomes ready with a link");
    assert!(link.contains(&id), "{link}");
    let path = &link[link.find("/v1/").unwrap()..];
    let res = app.get(path).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(&f.org.id));
    // The API lists it too, newest first, with cursor pagination.
    json_of(app.post_as("/v1/exports", &f.key, &json!({})).await, 202).await;
    let page = json_of(app.get_as("/v1/exports?limit=1", &f.key).await, 200).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = json_of(
        app.get_as(&format!("/v1/exports?limit=1&cursor={cursor}"), &f.key)
            .await,
        200,
    )
    .await;
    assert_eq!(rest["data"][0]["id"], id.as_str());
    assert!(rest["next_cursor"].is_null());
}

async fn messages_contacts_conversations_and_scheduled_pages_search(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Search").await;
    let id = |v: serde_json::Value| v["id"].as_str().unwrap().to_owned();
    let ada = id(json_of(
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": "ada-1", "name": "Ada Lovelace" }),
        )
        .await,
        201,
    )
    .await);
    let bob = id(json_of(
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": "bob-1", "name": "Bob Builder" }),
        )
        .await,
        201,
    )
    .await);
    let mut convs = Vec::new();
    for c in [&ada, &bob] {
        convs.push(id(json_of(
            app.post_as(
                "/v1/conversations",
                &f.key,
                &json!({ "contact_id": c, "channel": "sms" }),
            )
            .await,
            201,
        )
        .await));
    }
    for (conv, body) in [
        (&convs[0], "Where is my parcel?"),
        (&convs[1], "Thanks for the quote"),
    ] {
        json_of(
            app.post_as(
                "/v1/messages/inbound",
                &f.key,
                &json!({ "conversation_id": conv, "body": body }),
            )
            .await,
            201,
        )
        .await;
    }
    let at = rampart::clock::rfc3339(rampart::clock::now_ms() + 3_600_000);
    for body in ["Parcel pickup reminder", "Quote follow-up"] {
        json_of(
            app.post_as(
                "/v1/scheduled-messages",
                &f.key,
                &json!({ "conversation_id": convs[0], "body": body, "send_at": at }),
            )
            .await,
            201,
        )
        .await;
    }
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let all = b.get("/console/messages").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(
        all.body.contains("parcel") && all.body.contains("quote"),
        "{}",
        all.body
    );
    let found = b.get("/console/messages?q=PARCEL").await;
    assert!(found.body.contains("Where is my parcel?"), "{}", found.body);
    assert!(
        !found.body.contains("Thanks for the quote"),
        "{}",
        found.body
    );
    assert!(found.body.contains("role=\"search\""), "{}", found.body);
    // Trailing spaces typed in the box are not an error.
    let spaced = b.get("/console/messages?q=parcel++").await;
    assert!(
        spaced.body.contains("Where is my parcel?"),
        "{}",
        spaced.body
    );
    let none = b.get("/console/messages?q=nothing-like-this").await;
    assert!(none.body.contains("No messages match."), "{}", none.body);
    let contacts = b.get("/console/contacts?q=lovelace").await;
    assert!(
        contacts.body.contains("ada-1") && !contacts.body.contains("bob-1"),
        "{}",
        contacts.body
    );
    let conversations = b.get("/console/conversations?q=builder").await;
    assert!(
        conversations.body.contains(&convs[1]) && !conversations.body.contains(&convs[0]),
        "{}",
        conversations.body
    );
    let scheduled = b.get("/console/scheduled?q=pickup").await;
    assert!(
        scheduled.body.contains("Parcel pickup reminder")
            && !scheduled.body.contains("Quote follow-up"),
        "{}",
        scheduled.body
    );
    // A search the API refuses is said on the page, not a broken page.
    let bad = b.get("/console/messages?q=a%01b").await;
    assert_eq!(bad.status, 200, "{}", bad.body);
    assert!(bad.body.contains("bad_request"), "{}", bad.body);
}

async fn a_delivery_is_resent_from_the_log(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Resend").await;
    crate::webhooks::contact(&app, &f.key).await;
    let first = f
        .receiver
        .wait_for(1, std::time::Duration::from_secs(15))
        .await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let detail = format!("/console/webhooks/{}", f.endpoint_id);
    let mut page = None;
    for _ in 0..75 {
        let p = b.get(&detail).await;
        if p.body.contains("contact.created") {
            page = Some(p.body);
            break;
        }
        // The in-process worker records the attempt (or builds the export) after the receiver
        // has it: poll the page until it shows, at most 15-20 s.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let page = page.expect("the delivery is in the log");
    let re = regex::Regex::new(
        r#"action="(/console/webhooks/[^"]+/deliveries/(dlv_[0-9a-z]+)/resend)""#,
    )
    .unwrap();
    let c = re.captures(&page).expect("a Resend form");
    let (action, delivery) = (c[1].to_owned(), c[2].to_owned());
    let done = b.post(&action, &[]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Resend queued"), "{}", done.body);
    let hits = f
        .receiver
        .wait_for(2, std::time::Duration::from_secs(15))
        .await;
    assert_eq!(hits[1].header("webhook-id"), first[0].header("webhook-id"));
    let audit = app.audit_actions(&f.org).await;
    assert!(
        audit.contains(&("delivery.resent".into(), "success".into())),
        "{audit:?}"
    );
    // A failed endpoint offers no Resend; forced, the API's refusal is shown.
    rampart::store::Q::write("UPDATE webhook_endpoints SET status = 'failed' WHERE id = $1")
        .bind(f.endpoint_id.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let failed = b.get(&detail).await;
    assert!(!failed.body.contains("/resend"), "{}", failed.body);
    let refused = b.post(&action, &[]).await;
    assert!(refused.body.contains("not_resendable"), "{}", refused.body);
    assert!(
        refused.body.contains(&delivery) || refused.body.contains("re-enable"),
        "{}",
        refused.body
    );
}

async fn the_overview_charts_attempts_and_lists_failing_endpoints(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Overview").await;
    let failing = crate::receiver::Receiver::start().await;
    failing.set_default(crate::receiver::Reply::status(500));
    let (bad, _) = crate::webhooks::endpoint(
        &app,
        &f.key,
        &failing.url("/down"),
        json!({ "max_retries": 0 }),
    )
    .await;
    crate::webhooks::contact(&app, &f.key).await;
    f.receiver
        .wait_for(1, std::time::Duration::from_secs(15))
        .await;
    failing
        .wait_for(1, std::time::Duration::from_secs(15))
        .await;
    let mut b = Browser::sign_in(&app, OWNER_EMAIL, OWNER_PASSWORD).await;
    let mut page = String::new();
    for _ in 0..75 {
        page = b.get("/console").await.body;
        if page.contains("1 delivered and 1 failed attempts in the last 24 hours") {
            break;
        }
        // The in-process worker records the attempt (or builds the export) after the receiver
        // has it: poll the page until it shows, at most 15-20 s.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        page.contains("1 delivered and 1 failed attempts in the last 24 hours"),
        "{page}"
    );
    assert!(page.contains("role=\"img\""), "{page}");
    // Usage against the org's rate limit and quota, as meters with words beside them.
    assert!(page.contains("Rate limit (the org"), "{page}");
    assert!(page.contains("Quota (the org"), "{page}");
    assert_eq!(page.matches("<meter ").count(), 2, "{page}");
    assert!(
        page.contains(" used, ") && page.contains(" left; resets in "),
        "{page}"
    );
    // The failing endpoint, with its last error; the healthy one is not listed.
    assert!(page.contains(&format!("/console/webhooks/{bad}")), "{page}");
    assert!(page.contains("http_status"), "{page}");
    assert!(
        !page.contains(&format!("/console/webhooks/{}\"", f.endpoint_id)),
        "{page}"
    );
}
