//! `GET/PUT /v1/branding`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{BrandingIn, BrandingOut, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiResult, Json};
use crate::ids::OrgId;
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/branding",
            Profile::users(Scope::Org, Permission::Read).billing(Billing::Standard),
            get_branding,
        )
        .summary("The org's white-label branding")
        .tag("enterprise")
        .returns::<BrandingOut>(200),
        Route::put(
            "/v1/branding",
            Profile::users(Scope::Org, Permission::Write).audited(),
            put_branding,
        )
        .summary("Set the org's white-label branding (status page name, colours, logo)")
        .tag("enterprise")
        .body::<BrandingIn>()
        .returns::<BrandingOut>(200),
    ]
}

/// The org's white-labelled status page.
fn status_page_url(app: &AppState, org: &OrgId) -> String {
    format!("{}/status?org={org}", app.config.base_url())
}

async fn load(app: &AppState, org: &OrgId) -> ApiResult<BrandingOut> {
    let b = store::get(&mut app.db.clone(), org).await?;
    Ok(BrandingOut {
        object: "branding",
        name: b.as_ref().map(|b| b.name.clone()),
        primary_color: b.as_ref().and_then(|b| b.primary_color.clone()),
        accent_color: b.as_ref().and_then(|b| b.accent_color.clone()),
        logo_url: b.as_ref().and_then(|b| b.logo_url.clone()),
        status_page_url: status_page_url(app, org),
        updated_at: b.map(|b| rfc3339(b.updated_at)),
    })
}

async fn get_branding(
    p: Principal,
    State(app): State<AppState>,
) -> ApiResult<axum::Json<BrandingOut>> {
    Ok(axum::Json(load(&app, p.tenant().org()).await?))
}

async fn put_branding(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(b): Json<BrandingIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    store::put(&mut tx, t.org(), &b).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "branding.updated").details(json!({ "name": b.name })),
    )
    .await?;
    let url = status_page_url(&app, t.org());
    let out = BrandingOut {
        object: "branding",
        name: Some(b.name.trim().to_owned()),
        primary_color: b.primary_color,
        accent_color: b.accent_color,
        logo_url: b.logo_url,
        status_page_url: url,
        updated_at: Some(rfc3339(now_ms())),
    };
    idem.commit(tx, StatusCode::OK, &out).await
}
