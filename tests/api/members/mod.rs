//! The members API (SPEC §10): invitations with a one-time set-password link, role changes,
//! removal, the org's last owner, least privilege for admins, and session revocation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{OWNER_EMAIL, OWNER_PASSWORD};
use crate::helpers::*;

crate::scenarios![
    an_invited_member_sets_a_password_once_and_signs_in,
    role_changes_and_removal_are_audited_and_removal_revokes_sessions,
    the_org_always_keeps_an_owner,
    concurrent_demotions_leave_an_owner,
    admins_cannot_make_or_touch_owners,
    a_link_expires_and_a_password_change_revokes_every_session,
    inviting_an_existing_user_or_member,
];

const PASSWORD: &str = "a brand new long password";

pub async fn patch_as(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.req(Method::PATCH, path, token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The `token` of a set-password link.
pub fn link_token(invite: &Value) -> String {
    let url = invite["set_password_url"].as_str().unwrap();
    assert!(url.contains("/console/set-password?token=pwt_"), "{url}");
    url.split("token=").nth(1).unwrap().to_owned()
}

/// Invites `email` as `role` and sets its password with the link; returns the user id.
pub async fn member(app: &TestApp, owner: &str, email: &str, role: &str) -> String {
    let inv = json_of(
        app.post_as(
            "/v1/members",
            owner,
            &json!({ "email": email, "role": role }),
        )
        .await,
        201,
    )
    .await;
    let res = app
        .post_json(
            "/v1/auth/set-password",
            &json!({ "token": link_token(&inv), "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 204);
    inv["user_id"].as_str().unwrap().to_owned()
}

async fn owner_token(app: &TestApp) -> String {
    app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn an_invited_member_sets_a_password_once_and_signs_in(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Members").await;
    let owner = owner_token(&app).await;
    let list = json_of(app.get_as("/v1/members", &owner).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["user_id"], f.owner_id.as_str());
    assert_eq!(list["data"][0]["role"], "owner");

    let inv = json_of(
        app.post_as(
            "/v1/members",
            &owner,
            &json!({ "email": "Viewer@Example.com", "role": "viewer" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(inv["email"], "viewer@example.com");
    assert_eq!(inv["role"], "viewer");
    assert!(inv["set_password_expires_at"].is_string());
    let token = link_token(&inv);
    // Only its hash is stored.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM password_tokens WHERE id = $1",
            &[&token]
        )
        .await,
        0
    );
    // No password yet: nobody can sign in as the new user.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({ "email": "viewer@example.com", "password": "anything at all really" }),
        )
        .await;
    problem_of(res, 401, "unauthenticated").await;

    let weak = app
        .post_json(
            "/v1/auth/set-password",
            &json!({ "token": token, "password": "short" }),
        )
        .await;
    problem_of(weak, 422, "validation_failed").await;
    let set = app
        .post_json(
            "/v1/auth/set-password",
            &json!({ "token": token, "password": PASSWORD }),
        )
        .await;
    assert_eq!(set.status(), 204);
    let login = app.login("viewer@example.com", PASSWORD).await;
    assert_eq!(login["role"], "viewer");
    let again = app
        .post_json(
            "/v1/auth/set-password",
            &json!({ "token": token, "password": "another long password" }),
        )
        .await;
    problem_of(again, 401, "unauthenticated").await;
    let audit = app.audit_actions(&f.org).await;
    assert!(
        audit.contains(&("member.added".into(), "success".into())),
        "{audit:?}"
    );
    assert!(
        audit.contains(&("auth.password_set".into(), "success".into())),
        "{audit:?}"
    );
}

async fn role_changes_and_removal_are_audited_and_removal_revokes_sessions(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Members").await;
    let owner = owner_token(&app).await;
    let dev = member(&app, &owner, "dev@members.test", "developer").await;
    let login = app.login("dev@members.test", PASSWORD).await;
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();

    let changed = json_of(
        patch_as(
            &app,
            &format!("/v1/members/{dev}"),
            &owner,
            &json!({ "role": "admin" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["role"], "admin");
    // An empty patch keeps the role.
    let kept = json_of(
        patch_as(&app, &format!("/v1/members/{dev}"), &owner, &json!({})).await,
        200,
    )
    .await;
    assert_eq!(kept["role"], "admin");

    let res = app.delete_as(&format!("/v1/members/{dev}"), &owner).await;
    assert_eq!(res.status(), 204);
    let res = app
        .post_json("/v1/auth/refresh", &json!({ "refresh_token": refresh }))
        .await;
    problem_of(res, 401, "unauthenticated").await;
    let res = app.delete_as(&format!("/v1/members/{dev}"), &owner).await;
    problem_of(res, 404, "not_found").await;
    let list = json_of(app.get_as("/v1/members", &owner).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let audit = app.audit_actions(&f.org).await;
    for action in ["member.added", "member.role_changed", "member.removed"] {
        assert!(
            audit.contains(&(action.into(), "success".into())),
            "{action}: {audit:?}"
        );
    }
}

async fn the_org_always_keeps_an_owner(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Owners").await;
    let owner = owner_token(&app).await;
    let me = format!("/v1/members/{}", f.owner_id);
    problem_of(
        patch_as(&app, &me, &owner, &json!({ "role": "admin" })).await,
        409,
        "last_owner",
    )
    .await;
    problem_of(app.delete_as(&me, &owner).await, 409, "last_owner").await;

    let second = member(&app, &owner, "second@owners.test", "owner").await;
    // With two owners one may step down; the other is then the last.
    json_of(
        patch_as(&app, &me, &owner, &json!({ "role": "admin" })).await,
        200,
    )
    .await;
    let second_token = app.login("second@owners.test", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    problem_of(
        app.delete_as(&format!("/v1/members/{second}"), &second_token)
            .await,
        409,
        "last_owner",
    )
    .await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = 'owner'",
            &[&f.org.id]
        )
        .await,
        1
    );
}

async fn concurrent_demotions_leave_an_owner(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Race").await;
    for round in 0..3 {
        let a = app
            .user(&org, &format!("a{round}@race.test"), "owner", PASSWORD)
            .await;
        let b = app
            .user(&org, &format!("b{round}@race.test"), "owner", PASSWORD)
            .await;
        // Leave exactly the two new owners.
        rampart::store::Q::write(
            "UPDATE memberships SET role = 'viewer' WHERE org_id = $1 AND user_id <> $2 AND user_id <> $3",
        )
        .bind(org.id.as_str())
        .bind(a.as_str())
        .bind(b.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
        let token = app.token_for(&org, "owner");
        let body = json!({ "role": "admin" });
        let (pa, pb) = (format!("/v1/members/{a}"), format!("/v1/members/{b}"));
        let (ra, rb) = tokio::join!(
            patch_as(&app, &pa, &token, &body),
            patch_as(&app, &pb, &token, &body),
        );
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = 'owner'",
                &[&org.id]
            )
            .await,
            1
        );
    }
}

async fn admins_cannot_make_or_touch_owners(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Admins").await;
    let owner = owner_token(&app).await;
    member(&app, &owner, "admin@admins.test", "admin").await;
    let admin = app.login("admin@admins.test", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    problem_of(
        app.post_as(
            "/v1/members",
            &admin,
            &json!({ "email": "boss@admins.test", "role": "owner" }),
        )
        .await,
        403,
        "insufficient_role",
    )
    .await;
    let owner_path = format!("/v1/members/{}", f.owner_id);
    problem_of(
        patch_as(&app, &owner_path, &admin, &json!({ "role": "viewer" })).await,
        403,
        "insufficient_role",
    )
    .await;
    problem_of(
        app.delete_as(&owner_path, &admin).await,
        403,
        "insufficient_role",
    )
    .await;
    // Below their own role, admins manage members.
    let dev = json_of(
        app.post_as(
            "/v1/members",
            &admin,
            &json!({ "email": "dev@admins.test", "role": "developer" }),
        )
        .await,
        201,
    )
    .await;
    let dev_path = format!("/v1/members/{}", dev["user_id"].as_str().unwrap());
    problem_of(
        patch_as(&app, &dev_path, &admin, &json!({ "role": "owner" })).await,
        403,
        "insufficient_role",
    )
    .await;
    json_of(
        patch_as(&app, &dev_path, &admin, &json!({ "role": "admin" })).await,
        200,
    )
    .await;
    // Developers and viewers do not reach the members API at all.
    for role in ["developer", "viewer"] {
        let t = app.token_for(&f.org, role);
        problem_of(
            app.get_as("/v1/members", &t).await,
            403,
            "insufficient_role",
        )
        .await;
        problem_of(
            app.post_as(
                "/v1/members",
                &t,
                &json!({ "email": "x@admins.test", "role": "viewer" }),
            )
            .await,
            403,
            "insufficient_permission",
        )
        .await;
    }
    let audit = app.audit_actions(&f.org).await;
    let denied = audit
        .iter()
        .filter(|(a, o)| a == "auth.forbidden" && o == "denied")
        .count();
    assert!(denied >= 7, "{audit:?}");
}

async fn a_link_expires_and_a_password_change_revokes_every_session(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Links").await;
    let owner = owner_token(&app).await;
    let inv = json_of(
        app.post_as(
            "/v1/members",
            &owner,
            &json!({ "email": "late@links.test", "role": "viewer" }),
        )
        .await,
        201,
    )
    .await;
    rampart::store::Q::write("UPDATE password_tokens SET expires_at = 0 WHERE user_id = $1")
        .bind(inv["user_id"].as_str().unwrap())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let res = app
        .post_json(
            "/v1/auth/set-password",
            &json!({ "token": link_token(&inv), "password": PASSWORD }),
        )
        .await;
    problem_of(res, 401, "unauthenticated").await;

    // The owner changes their password with a link: their refresh tokens stop working.
    let login = app.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let mut tx = app.state.db.begin().await.unwrap();
    let org = rampart::ids::OrgId::parse(&f.org.id).unwrap();
    let user = rampart::ids::UserId::parse(&f.owner_id).unwrap();
    let (url, _) = rampart::members::routes::issue_link(&app.state, &mut tx, &org, &user)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let token = url.split("token=").nth(1).unwrap();
    let res = app
        .post_json(
            "/v1/auth/set-password",
            &json!({ "token": token, "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .post_json("/v1/auth/refresh", &json!({ "refresh_token": refresh }))
        .await;
    problem_of(res, 401, "unauthenticated").await;
    app.login(OWNER_EMAIL, PASSWORD).await;
}

async fn inviting_an_existing_user_or_member(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Existing").await;
    let other = app.org("Other").await;
    app.user(&other, "known@existing.test", "owner", PASSWORD)
        .await;
    let owner = owner_token(&app).await;
    let inv = json_of(
        app.post_as(
            "/v1/members",
            &owner,
            &json!({ "email": "known@existing.test", "role": "developer" }),
        )
        .await,
        201,
    )
    .await;
    // They have a password already: no link.
    assert!(inv["set_password_url"].is_null(), "{inv}");
    problem_of(
        app.post_as(
            "/v1/members",
            &owner,
            &json!({ "email": "KNOWN@existing.test", "role": "viewer" }),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    problem_of(
        app.post_as(
            "/v1/members",
            &owner,
            &json!({ "email": "not an email", "role": "viewer" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    // Another org's members are not this org's.
    let other_owner = app.token_for(&other, "owner");
    problem_of(
        app.delete_as(&format!("/v1/members/{}", f.owner_id), &other_owner)
            .await,
        404,
        "not_found",
    )
    .await;
}
