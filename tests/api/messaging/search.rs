//! Text search (`?q=`) on contacts, conversations, messages and scheduled messages: a
//! case-insensitive substring, org- and environment-scoped, with `%`, `_` and `\` taken
//! literally, paginated like any list.

use serde_json::{Value, json};

use crate::helpers::*;

crate::scenarios![lists_search_by_text, search_is_scoped_and_refuses_bad_text,];

/// The ids of a list page.
fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn list(app: &TestApp, key: &str, path: &str, q: &str) -> Vec<String> {
    let url = format!(
        "{path}?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .finish()
    );
    ids(&json_of(app.get_as(&url, key).await, 200).await)
}

async fn create(app: &TestApp, key: &str, path: &str, body: Value, status: u16) -> String {
    let v = json_of(app.post_as(path, key, &body).await, status).await;
    v["id"].as_str().unwrap().to_owned()
}

async fn lists_search_by_text(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let org = app.org("Search").await;
    app.set_subscription(&org, "active", "full").await;
    let key = app.full_key(&org).await;
    let ada = create(
        &app,
        &key,
        "/v1/contacts",
        json!({ "external_key": "cust-1", "name": "Ada Lovelace", "email": "ada@analytical.test" }),
        201,
    )
    .await;
    let grace = create(
        &app,
        &key,
        "/v1/contacts",
        json!({ "external_key": "cust-2", "name": "Grace Hopper", "phone": "+15550100" }),
        201,
    )
    .await;
    let odd = create(
        &app,
        &key,
        "/v1/contacts",
        json!({ "external_key": "50%_off\\deal", "name": "Percent" }),
        201,
    )
    .await;
    // Contacts: any of external key, name, email, phone; case-insensitive.
    assert_eq!(
        list(&app, &key, "/v1/contacts", "ADA").await,
        vec![ada.clone()]
    );
    assert_eq!(
        list(&app, &key, "/v1/contacts", "analytical.test").await,
        vec![ada.clone()]
    );
    assert_eq!(
        list(&app, &key, "/v1/contacts", "555010").await,
        vec![grace.clone()]
    );
    assert_eq!(
        list(&app, &key, "/v1/contacts", "cust-").await,
        vec![grace.clone(), ada.clone()]
    );
    // Wildcards are text: `%`, `_` and `\` match only themselves.
    for literal in ["%", "_", "\\", "50%_off\\"] {
        assert_eq!(
            list(&app, &key, "/v1/contacts", literal).await,
            vec![odd.clone()],
            "{literal}"
        );
    }
    assert!(list(&app, &key, "/v1/contacts", "nobody").await.is_empty());

    // Conversations: by their contact.
    let c_ada = create(
        &app,
        &key,
        "/v1/conversations",
        json!({ "contact_id": ada, "channel": "sms" }),
        201,
    )
    .await;
    let c_grace = create(
        &app,
        &key,
        "/v1/conversations",
        json!({ "contact_id": grace, "channel": "sms" }),
        201,
    )
    .await;
    assert_eq!(
        list(&app, &key, "/v1/conversations", "lovelace").await,
        vec![c_ada.clone()]
    );
    assert_eq!(
        list(&app, &key, "/v1/conversations", "hopper").await,
        vec![c_grace.clone()]
    );

    // Messages: by body, newest first, paginated with the search kept.
    let inbound = |conv: &str, body: &str| json!({ "conversation_id": conv, "body": body });
    let m1 = create(
        &app,
        &key,
        "/v1/messages/inbound",
        inbound(&c_ada, "Hello, is my invoice paid?"),
        201,
    )
    .await;
    let m2 = create(
        &app,
        &key,
        "/v1/messages/inbound",
        inbound(&c_grace, "Invoice 100% paid, thanks"),
        201,
    )
    .await;
    let m3 = create(
        &app,
        &key,
        "/v1/messages/inbound",
        inbound(&c_grace, "Unrelated"),
        201,
    )
    .await;
    assert_eq!(
        list(&app, &key, "/v1/messages", "INVOICE").await,
        vec![m2.clone(), m1.clone()]
    );
    assert_eq!(
        list(&app, &key, "/v1/messages", "100%").await,
        vec![m2.clone()]
    );
    assert_eq!(
        list(&app, &key, "/v1/messages", "%").await,
        vec![m2.clone()]
    );
    assert_eq!(
        list(&app, &key, "/v1/messages", "unrelated").await,
        vec![m3]
    );
    let first = json_of(
        app.get_as("/v1/messages?q=invoice&limit=1", &key).await,
        200,
    )
    .await;
    assert_eq!(ids(&first), vec![m2.clone()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = json_of(
        app.get_as(
            &format!("/v1/messages?q=invoice&limit=1&cursor={cursor}"),
            &key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&second), vec![m1.clone()]);
    assert!(second["next_cursor"].is_null());
    // With the conversation filter too.
    let both = json_of(
        app.get_as(
            &format!("/v1/messages?q=invoice&conversation_id={c_ada}"),
            &key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&both), vec![m1]);

    // Scheduled messages: by body.
    let at = rampart::clock::rfc3339(rampart::clock::now_ms() + 3_600_000);
    let s1 = create(
        &app,
        &key,
        "/v1/scheduled-messages",
        json!({ "conversation_id": c_ada, "body": "Your appointment reminder", "send_at": at }),
        201,
    )
    .await;
    create(
        &app,
        &key,
        "/v1/scheduled-messages",
        json!({ "conversation_id": c_ada, "body": "Something else", "send_at": at }),
        201,
    )
    .await;
    assert_eq!(
        list(&app, &key, "/v1/scheduled-messages", "Reminder").await,
        vec![s1.clone()]
    );
    let pending = json_of(
        app.get_as("/v1/scheduled-messages?q=reminder&status=canceled", &key)
            .await,
        200,
    )
    .await;
    assert!(ids(&pending).is_empty());

    // An erased contact is found by nothing it held, nor are its messages.
    json_of(
        app.req(reqwest::Method::DELETE, "/v1/gdpr/contacts/cust-2", &key)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(list(&app, &key, "/v1/contacts", "hopper").await.is_empty());
    assert!(
        list(&app, &key, "/v1/conversations", "hopper")
            .await
            .is_empty()
    );
    assert!(list(&app, &key, "/v1/messages", "100%").await.is_empty());
    app.stop().await;
}

async fn search_is_scoped_and_refuses_bad_text(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let org = app.org("Mine").await;
    let other = app.org("Theirs").await;
    for o in [&org, &other] {
        app.set_subscription(o, "active", "full").await;
    }
    let key = app.full_key(&org).await;
    let theirs = app.full_key(&other).await;
    let (_, test_key) = app
        .key_with(&org, &["contacts"], &["read", "write"], "test", None, None)
        .await;
    create(
        &app,
        &theirs,
        "/v1/contacts",
        json!({ "external_key": "t-1", "name": "Ada Theirs" }),
        201,
    )
    .await;
    create(
        &app,
        &test_key,
        "/v1/contacts",
        json!({ "external_key": "s-1", "name": "Ada Sandbox" }),
        201,
    )
    .await;
    let live = create(
        &app,
        &key,
        "/v1/contacts",
        json!({ "external_key": "l-1", "name": "Ada Live" }),
        201,
    )
    .await;
    assert_eq!(list(&app, &key, "/v1/contacts", "ada").await, vec![live]);
    assert_eq!(list(&app, &test_key, "/v1/contacts", "ada").await.len(), 1);
    for path in [
        "/v1/contacts",
        "/v1/conversations",
        "/v1/messages",
        "/v1/scheduled-messages",
    ] {
        for bad in ["", " ada", "a\u{1}b", &"x".repeat(101)] {
            let url = format!(
                "{path}?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("q", bad)
                    .finish()
            );
            problem_of(app.get_as(&url, &key).await, 400, "bad_request").await;
        }
    }
    app.stop().await;
}
