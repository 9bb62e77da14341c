//! `/v1/partners/orgs`: a partner org lists and creates its client orgs. The partner's admin
//! who creates a client org becomes its owner, so they can log in to it (`org_id` at login).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::grants::{Permission, Role, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::rfc3339;
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Query, Validate};
use crate::store::sql;
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientOrgIn {
    pub name: String,
}

impl Validate for ClientOrgIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("name", self.name.trim(), 1, 200);
        c.printable("name", &self.name);
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientOrgOut {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub parent_org_id: String,
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}
impl Validate for ListQuery {}

async fn list_client_orgs(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ClientOrgOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let rows = sql("SELECT id, name, created_at FROM orgs WHERE parent_org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3")
        .bind(&p.org)
        .bind(page.after.clone())
        .bind(page.limit + 1)
        .fetch_all(&mut app.db.clone())
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(ClientOrgOut {
                id: r.get("id")?,
                object: "org",
                name: r.get("name")?,
                parent_org_id: p.org.to_string(),
                created_at: rfc3339(r.get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>, crate::store::DbError>>()?;
    Ok(axum::Json(Page::from_rows(items, page.limit, |o| {
        o.id.as_str()
    })))
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
            "insufficient_scope",
            "users only".into(),
        ));
    };
    let mut tx = app.db.begin().await?;
    let org = crate::orgs::create(&mut tx, body.name.trim(), false, Some(&p.org)).await?;
    // A user minted from a token may not exist as a row (tests); only real users get a seat.
    if crate::users::memberships(&mut tx, &user)
        .await?
        .iter()
        .any(|(o, _)| *o == p.org)
    {
        crate::users::add_membership(&mut tx, &org.id, &user, Role::Owner).await?;
    }
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "partner.org_created")
            .target("org", org.id.as_str())
            .details(json!({ "name": org.name })),
    )
    .await?;
    let out = ClientOrgOut {
        id: org.id.to_string(),
        object: "org",
        name: org.name,
        parent_org_id: p.org.to_string(),
        created_at: rfc3339(org.created_at),
    };
    idem.commit(tx, StatusCode::CREATED, &out).await
}
