//! `GET /v1/webhooks/{id}/deliveries`: an endpoint's delivery log; resending one delivery
//! ([`super::resend`]); the tenant's attempts per hour ([`super::stats`]).

use axum::extract::State;

use super::{AttemptOut, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Path, Query};
use crate::ids::EndpointId;
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/webhooks/{id}/deliveries",
            Profile::api(Scope::Webhooks, Permission::Read),
            list_webhook_deliveries,
        )
        .path::<EndpointId>()
        .query::<PageQuery>()
        .summary("The delivery log: every attempt with status code, latency and error")
        .tag("webhooks")
        .returns_list::<AttemptOut>(),
        super::resend::route(),
        super::stats::route(),
    ]
}

async fn list_webhook_deliveries(
    pr: Principal,
    State(app): State<AppState>,
    Path(id): Path<EndpointId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<AttemptOut>>> {
    let page = q.parse()?;
    let t = pr.tenant();
    let mut db = app.db.clone();
    crate::webhooks::store::get(&mut db, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let rows = store::attempts(&mut db, &t, &id, page.after.as_deref(), page.limit).await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |a| a.id.as_str()).map(AttemptOut::from),
    ))
}
