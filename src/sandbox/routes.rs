//! `GET /v1/sandbox/deliveries`: what test mode would have sent, recorded instead.

use axum::extract::State;

use super::{SandboxDeliveryOut, store};

use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiResult, Query};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/sandbox/deliveries",
            Profile::api(Scope::Webhooks, Permission::Read),
            list_sandbox_deliveries,
        )
        .query::<PageQuery>()
        .summary("Deliveries of test-mode data, recorded by the sandbox sink instead of being sent")
        .tag("webhooks")
        .returns_list::<SandboxDeliveryOut>(),
    ]
}

async fn list_sandbox_deliveries(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<SandboxDeliveryOut>>> {
    let page = q.parse()?;
    let t = p.tenant();
    if t.livemode() {
        // Live credentials have no sandbox.
        return Ok(axum::Json(Page {
            data: Vec::new(),
            next_cursor: None,
        }));
    }
    let rows = store::list(&mut app.db.clone(), &t, page.after.as_deref(), page.limit).await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |s| s.id.as_str()).map(SandboxDeliveryOut::from),
    ))
}
