//! The audit log: denials are recorded, the list is for admins, the chain shows tampering.

use serde_json::json;

use crate::helpers::*;

crate::scenarios![
    every_denial_on_v1_is_audited,
    audit_log_lists_with_filters_for_admins_only,
    audit_chain_detects_edits_deletions_and_reordering,
    the_chain_status_route_checks_the_callers_org,
];

async fn every_denial_on_v1_is_audited(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["messages"], &["read"]).await;
    problem_of(
        app.get_as("/v1/contacts", &key).await,
        403,
        "insufficient_scope",
    )
    .await;
    let wrong_perm = app.key(&org, &["contacts"], &["read"]).await;
    problem_of(
        app.post_as("/v1/contacts", &wrong_perm, &json!({ "external_key": "x" }))
            .await,
        403,
        "insufficient_permission",
    )
    .await;
    let actions = app.audit_actions(&org).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.0 == "auth.forbidden" && a.1 == "denied")
            .count(),
        2,
        "{actions:?}"
    );
    let res = app
        .client
        .get(app.url("/v1/contacts"))
        .header("x-request-id", "probe-401")
        .send()
        .await
        .unwrap();
    problem_of(res, 401, "unauthenticated").await;
    let row = rampart::store::Q::read(
        "SELECT chain, action, outcome, ip FROM audit_logs WHERE request_id = 'probe-401'",
    )
    .fetch_row(&mut app.state.db.clone())
    .await
    .unwrap();
    assert_eq!(row.get::<String>("chain").unwrap(), "_system");
    assert_eq!(row.get::<String>("action").unwrap(), "auth.unauthenticated");
    assert_eq!(
        row.get::<Option<String>>("ip").unwrap().as_deref(),
        Some("127.0.0.1")
    );
}

async fn audit_log_lists_with_filters_for_admins_only(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let other = app.org("Other").await;
    let admin = app.token_for(&org, "admin");
    for i in 0..3 {
        let res = app
            .post_as("/v1/developer/keys", &admin, &json!({ "name": format!("k{i}"), "scopes": ["contacts"], "permissions": ["read"] }))
            .await;
        assert_eq!(res.status(), 201);
    }
    app.post_as(
        "/v1/developer/keys",
        &app.token_for(&other, "admin"),
        &json!({ "name": "theirs", "scopes": ["contacts"], "permissions": ["read"] }),
    )
    .await;
    let page = json_of(
        app.get_as("/v1/audit-logs?limit=2&action=api_key.created", &admin)
            .await,
        200,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let entry = &page["data"][0];
    assert_eq!(entry["action"], "api_key.created");
    assert_eq!(entry["actor"]["type"], "user");
    assert_eq!(entry["target"]["type"], "api_key");
    assert!(entry["request_id"].is_string() && entry["ip"].is_string());
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2 = json_of(
        app.get_as(
            &format!("/v1/audit-logs?limit=2&action=api_key.created&cursor={cursor}"),
            &admin,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let future = json_of(
        app.get_as("/v1/audit-logs?since=2999-01-01T00:00:00Z", &admin)
            .await,
        200,
    )
    .await;
    assert!(future["data"].as_array().unwrap().is_empty());
    problem_of(
        app.get_as("/v1/audit-logs?since=yesterday", &admin).await,
        400,
        "bad_request",
    )
    .await;
    problem_of(
        app.get_as("/v1/audit-logs?limit=101", &admin).await,
        400,
        "bad_request",
    )
    .await;
    problem_of(
        app.get_as("/v1/audit-logs", &app.token_for(&org, "developer"))
            .await,
        403,
        "insufficient_scope",
    )
    .await;
    let auditor = app.key(&org, &["audit_logs"], &["read"]).await;
    let all = json_of(app.get_as("/v1/audit-logs?limit=100", &auditor).await, 200).await;
    assert!(
        !all.to_string().contains("theirs"),
        "no other org's entries"
    );
}

async fn audit_chain_detects_edits_deletions_and_reordering(store: Store) {
    use rampart::audit;
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let admin = app.token_for(&org, "admin");
    for i in 0..5 {
        app.post_as(
            "/v1/developer/keys",
            &admin,
            &json!({ "name": format!("k{i}"), "scopes": ["contacts"], "permissions": ["read"] }),
        )
        .await;
    }
    let db = app.state.db.clone();
    let (n, brk) = audit::verify(&mut db.clone(), Some(&org.id)).await.unwrap();
    assert_eq!(n, 5);
    assert!(brk.is_none());
    let exec = |q: &'static str| {
        let db = db.clone();
        let org = org.id.clone();
        async move {
            rampart::store::Q::write(q)
                .bind(org)
                .execute(&mut db.clone())
                .await
                .unwrap();
        }
    };
    // Edited.
    exec("UPDATE audit_logs SET action = 'api_key.nothing' WHERE chain = $1 AND seq = 2").await;
    let (_, brk) = audit::verify(&mut db.clone(), Some(&org.id)).await.unwrap();
    let brk = brk.expect("edit detected");
    assert_eq!(brk.seq, 2);
    assert!(brk.problem.contains("edited"), "{brk:?}");
    exec("UPDATE audit_logs SET action = 'api_key.created' WHERE chain = $1 AND seq = 2").await;
    assert!(
        audit::verify(&mut db.clone(), Some(&org.id))
            .await
            .unwrap()
            .1
            .is_none()
    );
    // Reordered: entries 3 and 4 swap places.
    exec("UPDATE audit_logs SET seq = -3 WHERE chain = $1 AND seq = 3").await;
    exec("UPDATE audit_logs SET seq = 3 WHERE chain = $1 AND seq = 4").await;
    exec("UPDATE audit_logs SET seq = 4 WHERE chain = $1 AND seq = -3").await;
    let brk = audit::verify(&mut db.clone(), Some(&org.id))
        .await
        .unwrap()
        .1
        .expect("reorder detected");
    assert_eq!(brk.seq, 3, "{brk:?}");
    // Deleted (from the middle).
    exec("DELETE FROM audit_logs WHERE chain = $1 AND seq = 3").await;
    let brk = audit::verify(&mut db.clone(), Some(&org.id))
        .await
        .unwrap()
        .1
        .expect("deletion detected");
    assert_eq!(brk.seq, 3, "{brk:?}");
    assert!(brk.problem.contains("missing"), "{brk:?}");
}

async fn the_chain_status_route_checks_the_callers_org(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let other = app.org("Other").await;
    for o in [&org, &other] {
        let admin = app.token_for(o, "admin");
        for i in 0..4 {
            let res = app
                .post_as("/v1/developer/keys", &admin, &json!({ "name": format!("k{i}"), "scopes": ["contacts"], "permissions": ["read"] }))
                .await;
            assert_eq!(res.status(), 201);
        }
    }
    let auditor = app.key(&org, &["audit_logs"], &["read"]).await;
    let theirs = app.key(&other, &["audit_logs"], &["read"]).await;
    let status = |key: String| {
        let app = &app;
        async move { json_of(app.get_as("/v1/audit-logs/verify", &key).await, 200).await }
    };
    // What `rampart audit verify --org` finds, over HTTP.
    let (checked, _) = rampart::audit::verify(&mut app.state.db.clone(), Some(&org.id))
        .await
        .unwrap();
    let ok = status(auditor.clone()).await;
    assert_eq!(ok["valid"], true, "{ok}");
    assert_eq!(ok["entries_checked"], checked, "{ok}");
    assert!(checked >= 4);
    assert!(
        ok["first_broken_id"].is_null() && ok["problem"].is_null(),
        "{ok}"
    );
    // The other org's chain is edited: theirs is broken at that entry, ours is not.
    let edited: String =
        rampart::store::Q::read("SELECT id FROM audit_logs WHERE chain = $1 AND seq = 2")
            .bind(other.id.as_str())
            .fetch_scalar(&mut app.state.db.clone())
            .await
            .unwrap();
    rampart::store::Q::write("UPDATE audit_logs SET action = 'api_key.nothing' WHERE id = $1")
        .bind(edited.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    assert_eq!(status(auditor.clone()).await["valid"], true);
    let broken = status(theirs.clone()).await;
    assert_eq!(broken["valid"], false, "{broken}");
    assert_eq!(broken["first_broken_id"], edited.as_str(), "{broken}");
    assert_eq!(broken["first_broken_seq"], 2, "{broken}");
    assert!(
        broken["problem"].as_str().unwrap().contains("edited"),
        "{broken}"
    );
    // A deleted entry has no id to name: its position and the problem say what broke.
    rampart::store::Q::write("DELETE FROM audit_logs WHERE chain = $1 AND seq = 1")
        .bind(other.id.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let gone = status(theirs).await;
    assert_eq!(
        (gone["valid"].clone(), gone["first_broken_seq"].clone()),
        (json!(false), json!(1)),
        "{gone}"
    );
    assert!(gone["first_broken_id"].is_null(), "{gone}");
    // Admins may ask; a developer's role has no audit_logs grant.
    json_of(
        app.get_as("/v1/audit-logs/verify", &app.token_for(&org, "admin"))
            .await,
        200,
    )
    .await;
    problem_of(
        app.get_as("/v1/audit-logs/verify", &app.token_for(&org, "developer"))
            .await,
        403,
        "insufficient_scope",
    )
    .await;
}
