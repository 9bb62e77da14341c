//! `/v1/partners/orgs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{ClientOrgIn, ClientOrgOut};
use crate::access::grants::{Permission, Role, Scope};
use crate::access::principal::Principal;
use crate::audit::{self, Entry, RequestMeta};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode, Json, Query};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/partners/orgs",
            Profile::users(Scope::Org, Permission::Read)
                .min_role(Role::Admin)
                .billing(Billing::Standard),
            list_client_orgs,
        )
        .query::<PageQuery>()
        .summary("List the client orgs this (partner) org created")
        .tag("enterprise")
        .returns_list::<ClientOrgOut>(),
        Route::post(
            "/v1/partners/orgs",
            Profile::users(Scope::Org, Permission::Write)
                .billing(Billing::Standard)
                .audited(),
            create_client_org,
        )
        .summary("Create a client org; you become its owner")
        .tag("enterprise")
        .body::<ClientOrgIn>()
        .returns::<ClientOrgOut>(201),
    ]
}

async fn list_client_orgs(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<ClientOrgOut>>> {
    let page = q.parse()?;
    let parent = p.tenant().org().clone();
    let rows = crate::orgs::store::children(
        &mut app.db.clone(),
        &parent,
        page.after.as_deref(),
        page.limit,
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |o| o.id.as_str()).map(ClientOrgOut::from),
    ))
}

async fn create_client_org(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<ClientOrgIn>,
) -> ApiResult<Response> {
    let Some(user) = p.user_id().cloned() else {
        return Err(ApiError::Forbidden(
            ErrorCode::InsufficientScope,
            "users only".into(),
        ));
    };
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let org = crate::orgs::create(&mut tx, body.name.trim(), false, Some(t.org())).await?;
    // A user minted from a token may not exist as a row (tests); only real users get a seat.
    if crate::users::memberships(&mut tx, &user)
        .await?
        .iter()
        .any(|(o, _)| o == t.org())
    {
        crate::users::add_membership(&mut tx, &org.id, &user, Role::Owner).await?;
    }
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "partner.org_created")
            .target("org", org.id.as_str())
            .details(json!({ "name": org.name })),
    )
    .await?;
    idem.commit(tx, StatusCode::CREATED, &ClientOrgOut::from(org))
        .await
}
