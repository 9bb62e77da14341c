//! Codes of the guards, in their order: authentication, tenant, scope, permission, role,
//! billing, rate limit and quota.

use rampart::http::ErrorCode;
use serde_json::json;

use super::drew;
use crate::helpers::*;

pub async fn probe(app: &TestApp) -> Vec<String> {
    let org = app.org("Guards").await;
    let admin = app.token_for(&org, "admin");
    let reader = app.key(&org, &["contacts"], &["read"]).await;
    let mut drawn = vec![
        drew(app.get("/v1/contacts").await, ErrorCode::Unauthenticated).await,
        drew(
            app.get_as("/v1/contacts", &format!("rk_live_{}", "A".repeat(32)))
                .await,
            ErrorCode::InvalidApiKey,
        )
        .await,
    ];

    let (id, revoked) = app
        .key_with(&org, &["contacts"], &["read"], "live", None, None)
        .await;
    json_of(
        app.delete_as(&format!("/v1/developer/keys/{id}"), &admin)
            .await,
        200,
    )
    .await;
    drawn.push(
        drew(
            app.get_as("/v1/contacts", &revoked).await,
            ErrorCode::ApiKeyRevoked,
        )
        .await,
    );
    let expired = expired_key(app, &org).await;
    drawn.push(
        drew(
            app.get_as("/v1/contacts", &expired).await,
            ErrorCode::ApiKeyExpired,
        )
        .await,
    );

    // A second instance of this deployment, serving one other tenant only.
    let tenant = app.org("The tenant").await;
    let single = spawn_on(
        app.db.clone(),
        &[
            ("RAMPART_TENANT_ID", tenant.id.as_str()),
            ("RAMPART_SINGLE_TENANT_ENFORCE", "true"),
        ],
        Default::default(),
    )
    .await;
    drawn.push(
        drew(
            single.get_as("/v1/contacts", &reader).await,
            ErrorCode::TenantMismatch,
        )
        .await,
    );
    single.stop().await;

    drawn.push(
        drew(
            app.get_as("/v1/webhooks", &reader).await,
            ErrorCode::InsufficientScope,
        )
        .await,
    );
    drawn.push(
        drew(
            app.post_as("/v1/contacts", &reader, &json!({ "external_key": "k" }))
                .await,
            ErrorCode::InsufficientPermission,
        )
        .await,
    );
    // Developers may read the org, but listing client orgs takes an admin.
    drawn.push(
        drew(
            app.get_as("/v1/partners/orgs", &app.token_for(&org, "developer"))
                .await,
            ErrorCode::InsufficientRole,
        )
        .await,
    );

    // The org is on the standard tier; operator actions need full.
    drawn.push(
        drew(
            app.post_as(
                "/v1/operator/actions",
                &admin,
                &json!({ "action": "pause_endpoint", "params": {} }),
            )
            .await,
            ErrorCode::TierInsufficient,
        )
        .await,
    );
    let lapsed = app.org("Lapsed").await;
    let lapsed_key = app.key(&lapsed, &["contacts"], &["read"]).await;
    app.set_subscription(&lapsed, "canceled", "standard").await;
    drawn.push(
        drew(
            app.get_as("/v1/contacts", &lapsed_key).await,
            ErrorCode::SubscriptionInactive,
        )
        .await,
    );

    for (rate, quota, code) in [
        (Some("1/min"), None, ErrorCode::RateLimited),
        (None, Some("1/day"), ErrorCode::QuotaExceeded),
    ] {
        let (_, limited) = app
            .key_with(&org, &["contacts"], &["read"], "live", rate, quota)
            .await;
        json_of(app.get_as("/v1/contacts", &limited).await, 200).await;
        drawn.push(drew(app.get_as("/v1/contacts", &limited).await, code).await);
    }
    drawn
}

/// A key whose expiry has passed (the API only accepts expiries in the future).
async fn expired_key(app: &TestApp, org: &Org) -> String {
    use rampart::access::grants::{Permission, Scope};
    let new = rampart::api_keys::NewKey {
        name: "expired".into(),
        environment: rampart::access::principal::Environment::Live,
        scopes: vec![Scope::parse("contacts").unwrap()],
        permissions: vec![Permission::parse("read").unwrap()],
        rate_limit: None,
        quota: None,
        expires_at: Some(rampart::clock::now_ms() - 1000),
        created_by: None,
    };
    let mut tx = app.state.db.begin().await.unwrap();
    let (_, secret) = rampart::api_keys::store::create(
        &mut tx,
        &rampart::ids::OrgId::parse(&org.id).unwrap(),
        &new,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    secret
}
