//! Partners create and list their client orgs.

use serde_json::json;

use crate::helpers::*;

crate::scenarios![partners_create_and_list_their_client_orgs,];

async fn partners_create_and_list_their_client_orgs(store: Store) {
    let app = spawn_app(store).await;
    let partner = app.org("Partner").await;
    app.user(
        &partner,
        "pat@partner.example",
        "admin",
        "correct horse battery staple",
    )
    .await;
    let t = app
        .login("pat@partner.example", "correct horse battery staple")
        .await;
    let admin = t["access_token"].as_str().unwrap().to_owned();
    let c = json_of(
        app.post_as(
            "/v1/partners/orgs",
            &admin,
            &json!({ "name": "Client One" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(c["parent_org_id"], partner.id.as_str());
    let list = json_of(app.get_as("/v1/partners/orgs", &admin).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // The partner's admin owns the client org and can log in to it.
    let res = app
        .post_json("/v1/auth/login", &json!({ "email": "pat@partner.example", "password": "correct horse battery staple", "org_id": c["id"] }))
        .await;
    let t2 = json_of(res, 200).await;
    assert_eq!(t2["org_id"], c["id"]);
    assert_eq!(t2["role"], "owner");
    // Several orgs now: login without org_id asks which.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({ "email": "pat@partner.example", "password": "correct horse battery staple" }),
        )
        .await;
    problem_of(res, 422, "validation_failed").await;
    let other = app.org("Other").await;
    let theirs = json_of(
        app.get_as("/v1/partners/orgs", &app.token_for(&other, "admin"))
            .await,
        200,
    )
    .await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    problem_of(
        app.post_as(
            "/v1/partners/orgs",
            &app.token_for(&partner, "developer"),
            &json!({ "name": "x" }),
        )
        .await,
        403,
        "insufficient_permission",
    )
    .await;
    problem_of(
        app.get_as(
            "/v1/partners/orgs",
            &app.key(&partner, &["contacts"], &["read"]).await,
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
}
