//! `/v1/developer/keys`: API key lifecycle, for logged-in users only (a key cannot mint keys).
//! Every action is audited; a key can never be granted more than its creator holds.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{KeyIn, KeyOut, KeySecretOut, NewKey, RotateIn, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::{Environment, Principal};
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::Rfc3339;
use crate::config::Rate;
use crate::deliveries::fanout::subscribers;
use crate::events::{self, EventType};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, ErrorCode, Json, OptionalJson, Path, Query};
use crate::ids::ApiKeyId;
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

fn profile(p: Permission) -> Profile {
    Profile::users(Scope::ApiKeys, p)
        .billing(Billing::None)
        .audited()
}

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/developer/keys", profile(Permission::Write), create_key)
            .summary("Create an API key; the secret is in this response only")
            .tag("developer")
            .body::<KeyIn>()
            .returns::<KeySecretOut>(201),
        Route::get(
            "/v1/developer/keys",
            Profile::users(Scope::ApiKeys, Permission::Read).billing(Billing::None),
            list_keys,
        )
        .query::<PageQuery>()
        .summary("List the org's API keys (never their secrets)")
        .tag("developer")
        .returns_list::<KeyOut>(),
        Route::get(
            "/v1/developer/keys/{id}",
            Profile::users(Scope::ApiKeys, Permission::Read).billing(Billing::None),
            get_key,
        )
        .path::<ApiKeyId>()
        .summary("Get an API key")
        .tag("developer")
        .returns::<KeyOut>(200),
        Route::delete(
            "/v1/developer/keys/{id}",
            profile(Permission::Delete),
            revoke_key,
        )
        .path::<ApiKeyId>()
        .summary("Revoke an API key (effective on every instance within a second)")
        .tag("developer")
        .returns::<KeyOut>(200),
        Route::post(
            "/v1/developer/keys/{id}/rotate",
            profile(Permission::Write),
            rotate_key,
        )
        .path::<ApiKeyId>()
        .optional_body::<RotateIn>()
        .summary("Replace an API key's secret; the old one may work for a grace period")
        .tag("developer")
        .returns::<KeySecretOut>(200),
    ]
}

async fn create_key(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<KeyIn>,
) -> ApiResult<Response> {
    let mut scopes: Vec<Scope> = body.scopes.clone();
    scopes.dedup();
    let mut permissions: Vec<Permission> = body.permissions.clone();
    permissions.dedup();
    // Least privilege: nobody grants what they do not hold.
    let mut c = Checks::new();
    for s in &scopes {
        for perm in &permissions {
            if !p.grants.allows(*s, *perm) {
                c.fail(
                    "scopes",
                    format!(
                        "you cannot grant {}:{} (your role lacks it)",
                        s.as_str(),
                        perm.as_str()
                    ),
                );
            }
        }
    }
    c.finish()?;
    let new = NewKey {
        name: body.name.trim().to_owned(),
        environment: body.environment.unwrap_or(Environment::Live),
        scopes,
        permissions,
        rate_limit: body.rate_limit.as_deref().and_then(Rate::parse),
        quota: body.quota.as_deref().and_then(Rate::parse),
        expires_at: body.expires_at.map(Rfc3339::ms),
        created_by: p.user_id().cloned(),
    };
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let (key, secret) = store::create(&mut tx, t.org(), &new).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "api_key.created")
            .target("api_key", key.id.as_str())
            .details(json!({ "environment": key.environment, "scopes": key.scopes, "permissions": key.permissions })),
    )
    .await?;
    let fan_out = subscribers(&mut tx, &t).await?;
    let data = json!({ "id": key.id, "name": key.name, "environment": key.environment });
    events::emit(&mut tx, &t, fan_out, EventType::ApiKeyCreated, data).await?;
    let out = KeySecretOut {
        key: KeyOut::from(&key),
        secret,
    };
    idem.commit(tx, StatusCode::CREATED, &out).await
}

async fn list_keys(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<KeyOut>>> {
    let page = q.parse()?;
    let t = p.tenant();
    let rows = store::list(
        &mut app.db.clone(),
        t.org(),
        page.after.as_deref(),
        page.limit,
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |k| k.id.as_str()).map(|k| KeyOut::from(&k)),
    ))
}

async fn get_key(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<ApiKeyId>,
) -> ApiResult<axum::Json<KeyOut>> {
    let key = store::get(&mut app.db.clone(), p.tenant().org(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(KeyOut::from(&key)))
}

async fn revoke_key(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<ApiKeyId>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let key = store::revoke(&mut tx, t.org(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "api_key.revoked").target("api_key", key.id.as_str()),
    )
    .await?;
    let fan_out = subscribers(&mut tx, &t).await?;
    let data = json!({ "id": key.id, "name": key.name });
    events::emit(&mut tx, &t, fan_out, EventType::ApiKeyRevoked, data).await?;
    let res = idem.commit(tx, StatusCode::OK, &KeyOut::from(&key)).await?;
    app.announce_key_change(key.id.as_str()).await;
    Ok(res)
}

async fn rotate_key(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<ApiKeyId>,
    OptionalJson(body): OptionalJson<RotateIn>,
) -> ApiResult<Response> {
    let grace = Duration::from_secs(body.grace_period_seconds.unwrap_or(0));
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let Some((key, secret)) = store::rotate(&mut tx, t.org(), &id, grace).await? else {
        // Revoked keys cannot be rotated; unknown ones do not exist.
        return match store::get(&mut tx, t.org(), &id).await? {
            Some(_) => Err(ApiError::Conflict(
                ErrorCode::Conflict,
                "a revoked key cannot be rotated".into(),
            )),
            None => Err(ApiError::NotFound),
        };
    };
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "api_key.rotated")
            .target("api_key", key.id.as_str())
            .details(json!({ "grace_period_seconds": grace.as_secs() })),
    )
    .await?;
    let out = KeySecretOut {
        key: KeyOut::from(&key),
        secret,
    };
    let res = idem.commit(tx, StatusCode::OK, &out).await?;
    app.announce_key_change(key.id.as_str()).await;
    Ok(res)
}
