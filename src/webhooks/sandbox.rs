//! `GET /v1/sandbox/deliveries`: what test mode would have sent, recorded instead.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::clock::rfc3339;
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiResult, Query, Validate};
use crate::store::sql;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/sandbox/deliveries",
            Profile::api(Scope::Webhooks, Permission::Read),
            list_sandbox_deliveries,
        )
        .summary("Deliveries of test-mode data, recorded by the sandbox sink instead of being sent")
        .tag("webhooks")
        .returns_list::<SandboxDeliveryOut>(),
    ]
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SandboxDeliveryOut {
    pub id: String,
    pub object: &'static str,
    pub endpoint_id: String,
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    /// Where it would have gone.
    pub url: String,
    /// The Standard Webhooks headers it would have carried.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}
impl Validate for ListQuery {}

async fn list_sandbox_deliveries(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<SandboxDeliveryOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let t = p.tenant();
    if t.livemode() {
        // Live credentials have no sandbox.
        return Ok(axum::Json(Page {
            data: Vec::new(),
            next_cursor: None,
        }));
    }
    let rows = sql(
        "SELECT id, endpoint_id, delivery_id, event_id, event_type, url, headers, payload, created_at FROM sandbox_deliveries
         WHERE org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(t.org())
    .bind(page.after.clone())
    .bind(page.limit + 1)
    .fetch_all(&mut app.db.clone())
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(SandboxDeliveryOut {
                id: r.get("id")?,
                object: "sandbox_delivery",
                endpoint_id: r.get("endpoint_id")?,
                delivery_id: r.get("delivery_id")?,
                event_id: r.get("event_id")?,
                event_type: r.get("event_type")?,
                url: r.get("url")?,
                headers: r.json("headers")?,
                payload: r.json("payload")?,
                created_at: rfc3339(r.get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>, crate::store::DbError>>()?;
    Ok(axum::Json(Page::from_rows(items, page.limit, |s| {
        s.id.as_str()
    })))
}
