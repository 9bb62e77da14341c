//! `/v1/developer/keys`: API key lifecycle, for logged-in users only (a key cannot mint keys).
//! Every action is audited; a key can never be granted more than its creator holds.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api_keys::{self, ApiKey, NewKey};
use super::grants::{Permission, Scope};
use super::principal::{Environment, Principal};
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, parse_rfc3339, rfc3339};
use crate::config::Rate;
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, OptionalJson, Path, Query, Validate};
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
        .summary("List the org's API keys (never their secrets)")
        .tag("developer")
        .returns_list::<KeyOut>(),
        Route::get(
            "/v1/developer/keys/{id}",
            Profile::users(Scope::ApiKeys, Permission::Read).billing(Billing::None),
            get_key,
        )
        .summary("Get an API key")
        .tag("developer")
        .returns::<KeyOut>(200),
        Route::delete(
            "/v1/developer/keys/{id}",
            profile(Permission::Delete),
            revoke_key,
        )
        .summary("Revoke an API key (effective on every instance within a second)")
        .tag("developer")
        .returns::<KeyOut>(200),
        Route::post(
            "/v1/developer/keys/{id}/rotate",
            profile(Permission::Write),
            rotate_key,
        )
        .summary("Replace an API key's secret; the old one may work for a grace period")
        .tag("developer")
        .body::<RotateIn>()
        .returns::<KeySecretOut>(200),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    pub name: String,
    /// Areas the key may reach: messages, contacts, conversations, scheduled_messages,
    /// webhooks, dead_letters, audit_logs, exports, gdpr.
    pub scopes: Vec<String>,
    /// Verbs: read, write, delete.
    pub permissions: Vec<String>,
    /// live (default) or test.
    pub environment: Option<String>,
    /// Requests per period, e.g. `10/s`.
    pub rate_limit: Option<String>,
    /// Requests per period, e.g. `10000/day`.
    pub quota: Option<String>,
    /// RFC 3339; the key stops working then.
    pub expires_at: Option<String>,
}

impl Validate for KeyIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("name", &self.name, 1, 100);
        c.printable("name", &self.name);
        c.check(
            !self.scopes.is_empty(),
            "scopes",
            "at least one scope is required",
        );
        for (i, s) in self.scopes.iter().enumerate() {
            match Scope::parse(s) {
                Some(sc) if sc.key_grantable() => {}
                Some(_) => c.fail(
                    &format!("scopes[{i}]"),
                    format!("{s} cannot be granted to an API key"),
                ),
                None => c.fail(&format!("scopes[{i}]"), format!("unknown scope {s:?}")),
            }
        }
        c.check(
            !self.permissions.is_empty(),
            "permissions",
            "at least one permission is required",
        );
        for (i, p) in self.permissions.iter().enumerate() {
            c.check(
                Permission::parse(p).is_some(),
                &format!("permissions[{i}]"),
                format!("unknown permission {p:?}"),
            );
        }
        if let Some(e) = &self.environment {
            c.check(
                Environment::parse(e).is_some(),
                "environment",
                "must be live or test",
            );
        }
        if let Some(r) = &self.rate_limit {
            c.check(
                Rate::parse(r).is_some(),
                "rate_limit",
                "must look like 10/s, 600/min, 10000/h or 100000/day",
            );
        }
        if let Some(q) = &self.quota {
            c.check(
                Rate::parse(q).is_some(),
                "quota",
                "must look like 10000/day",
            );
        }
        if let Some(e) = &self.expires_at {
            match parse_rfc3339(e) {
                Some(t) => c.check(t > now_ms(), "expires_at", "must be in the future"),
                None => c.fail("expires_at", "must be an RFC 3339 time"),
            }
        }
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// How long the old secret keeps working, 0..=604800 seconds (default 0: at once).
    pub grace_period_seconds: Option<u64>,
}

impl Validate for RotateIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.check(
            self.grace_period_seconds.is_none_or(|g| g <= 604_800),
            "grace_period_seconds",
            "must be at most 604800 (7 days)",
        );
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyOut {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub environment: Environment,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub permissions: Vec<Permission>,
    pub rate_limit: Option<String>,
    pub quota: Option<String>,
    /// active, revoked or expired
    pub status: &'static str,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeySecretOut {
    #[serde(flatten)]
    pub key: KeyOut,
    /// The secret: shown in this response only.
    pub secret: String,
}

impl From<&ApiKey> for KeyOut {
    fn from(k: &ApiKey) -> Self {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|e| e <= now_ms()) {
            "expired"
        } else {
            "active"
        };
        KeyOut {
            id: k.id.clone(),
            object: "api_key",
            name: k.name.clone(),
            environment: k.environment,
            prefix: k.display_prefix.clone(),
            scopes: k.scopes.clone(),
            permissions: k.permissions.clone(),
            rate_limit: k.rate_limit.map(|r| r.render()),
            quota: k.quota.map(|r| r.render()),
            status,
            expires_at: k.expires_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
            created_at: rfc3339(k.created_at),
        }
    }
}

async fn create_key(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<KeyIn>,
) -> ApiResult<Response> {
    let scopes: Vec<Scope> = body.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    let permissions: Vec<Permission> = body
        .permissions
        .iter()
        .filter_map(|s| Permission::parse(s))
        .collect();
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
        environment: body
            .environment
            .as_deref()
            .and_then(Environment::parse)
            .unwrap_or(Environment::Live),
        scopes,
        permissions,
        rate_limit: body.rate_limit.as_deref().and_then(Rate::parse),
        quota: body.quota.as_deref().and_then(Rate::parse),
        expires_at: body.expires_at.as_deref().and_then(parse_rfc3339),
        created_by: p.user_id().map(ToString::to_string),
    };
    let mut tx = app.db.begin().await?;
    let (key, secret) = api_keys::create(&mut tx, &p.org, &new).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "api_key.created")
            .target("api_key", &key.id)
            .details(json!({ "environment": key.environment, "scopes": key.scopes, "permissions": key.permissions })),
    )
    .await?;
    crate::events::emit(
        &mut tx,
        &p.tenant(),
        "api_key.created",
        json!({ "id": key.id, "name": key.name, "environment": key.environment }),
    )
    .await?;
    let out = KeySecretOut {
        key: KeyOut::from(&key),
        secret,
    };
    idem.commit(tx, StatusCode::CREATED, &out).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}
impl Validate for ListQuery {}

async fn list_keys(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<KeyOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let rows = api_keys::list(&mut app.db.clone(), &p.org, &page).await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |k| k.id.as_str()).map(|k| KeyOut::from(&k)),
    ))
}

async fn get_key(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<KeyOut>> {
    let key = api_keys::get(&mut app.db.clone(), &p.org, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(KeyOut::from(&key)))
}

async fn revoke_key(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = app.db.begin().await?;
    let key = api_keys::revoke(&mut tx, &p.org, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "api_key.revoked").target("api_key", &key.id),
    )
    .await?;
    crate::events::emit(
        &mut tx,
        &p.tenant(),
        "api_key.revoked",
        json!({ "id": key.id, "name": key.name }),
    )
    .await?;
    let res = idem.commit(tx, StatusCode::OK, &KeyOut::from(&key)).await?;
    app.announce_key_change(&key.id).await;
    Ok(res)
}

async fn rotate_key(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateIn>,
) -> ApiResult<Response> {
    let grace = Duration::from_secs(body.grace_period_seconds.unwrap_or(0));
    let mut tx = app.db.begin().await?;
    let Some((key, secret)) = api_keys::rotate(&mut tx, &p.org, &id, grace).await? else {
        // Revoked keys cannot be rotated; unknown ones do not exist.
        return match api_keys::get(&mut tx, &p.org, &id).await? {
            Some(_) => Err(ApiError::Conflict(
                "conflict",
                "a revoked key cannot be rotated".into(),
            )),
            None => Err(ApiError::NotFound),
        };
    };
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "api_key.rotated")
            .target("api_key", &key.id)
            .details(json!({ "grace_period_seconds": grace.as_secs() })),
    )
    .await?;
    let out = KeySecretOut {
        key: KeyOut::from(&key),
        secret,
    };
    let res = idem.commit(tx, StatusCode::OK, &out).await?;
    app.announce_key_change(&key.id).await;
    Ok(res)
}
