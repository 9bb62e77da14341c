//! `/v1/exports`: start an export, list them, see one's status, download it by its signed
//! link.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;

use super::job::{BuildExport, BuildPayload};
use super::{Export, ExportIn, ExportOut, ExportStatus, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::{Principal, Tenant};
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::text::Line;
use crate::http::{ApiError, ApiResult, OptionalJson, Path};
use crate::ids::ExportId;
use crate::jobs::queue::{NewJob, enqueue};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/exports",
            Profile::api(Scope::Exports, Permission::Write)
                .billing(Billing::None)
                .audited(),
            create_export,
        )
        .optional_body::<ExportIn>()
        .summary("Start a full export of the org's data (NDJSON), built in the background")
        .tag("exports")
        .returns::<ExportOut>(202),
        Route::get(
            "/v1/exports",
            Profile::api(Scope::Exports, Permission::Read).billing(Billing::None),
            list_exports,
        )
        .query::<PageQuery>()
        .summary("List the org's exports, newest first; a ready one carries a fresh download link")
        .tag("exports")
        .returns_list::<ExportOut>(),
        Route::get(
            "/v1/exports/{id}",
            Profile::api(Scope::Exports, Permission::Read).billing(Billing::None),
            get_export,
        )
        .path::<ExportId>()
        .summary("An export's status; when ready, a download link valid for a limited time")
        .tag("exports")
        .returns::<ExportOut>(200),
        Route::get(
            "/v1/exports/{id}/download",
            Profile::public(),
            download_export,
        )
        .path::<ExportId>()
        .query::<DownloadQuery>()
        .summary("Download an export through its signed, time-limited link")
        .tag("exports")
        .content_type("application/x-ndjson"),
    ]
}

fn signature(app: &AppState, id: &ExportId, expires: i64) -> String {
    B64.encode(
        app.keys
            .sign_link(format!("export:{id}:{expires}").as_bytes()),
    )
}

async fn load(app: &AppState, t: &Tenant, id: &ExportId) -> ApiResult<ExportOut> {
    let e = store::get(&mut app.db.clone(), t, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(out(app, e))
}

/// An export as the API shows it: when ready, with a link signed now that expires after
/// `RAMPART_EXPORT_LINK_TTL`.
fn out(app: &AppState, e: Export) -> ExportOut {
    let (url, until) = if e.status == ExportStatus::Ready {
        let expires =
            now_ms() / 1000 + i64::try_from(app.config.export_link_ttl.as_secs()).unwrap_or(3600);
        let sig = signature(app, &e.id, expires);
        (
            Some(format!(
                "{}/v1/exports/{}/download?expires={expires}&signature={sig}",
                app.config.public_base_url.clone().unwrap_or_default(),
                e.id
            )),
            Some(rfc3339(expires * 1000)),
        )
    } else {
        (None, None)
    };
    ExportOut {
        id: e.id,
        object: "export",
        status: e.status,
        livemode: e.environment.is_live(),
        bytes: e.bytes,
        sha256: e.sha256,
        download_url: url,
        download_expires_at: until,
        created_at: rfc3339(e.created_at),
        completed_at: e.completed_at.map(rfc3339),
    }
}

async fn list_exports(
    p: Principal,
    State(app): State<AppState>,
    crate::http::Query(q): crate::http::Query<PageQuery>,
) -> ApiResult<axum::Json<Page<ExportOut>>> {
    let page = q.parse()?;
    let rows = store::list(
        &mut app.db.clone(),
        &p.tenant(),
        page.after.as_deref(),
        page.limit,
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |e| e.id.as_str()).map(|e| out(&app, e)),
    ))
}

async fn create_export(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    OptionalJson(_): OptionalJson<ExportIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let id = ExportId::new();
    let mut tx = app.db.begin().await?;
    store::insert(&mut tx, &t, &id, p.actor().id()).await?;
    let payload = BuildPayload {
        export_id: id.clone(),
    };
    enqueue(&mut tx, NewJob::of::<BuildExport>(Some(t.org()), &payload)?).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "export.requested").target("export", id.as_str()),
    )
    .await?;
    let out = ExportOut {
        id,
        object: "export",
        status: ExportStatus::Pending,
        livemode: t.livemode(),
        bytes: None,
        sha256: None,
        download_url: None,
        download_expires_at: None,
        created_at: rfc3339(now_ms()),
        completed_at: None,
    };
    idem.commit(tx, StatusCode::ACCEPTED, &out).await
}

async fn get_export(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<ExportId>,
) -> ApiResult<axum::Json<ExportOut>> {
    Ok(axum::Json(load(&app, &p.tenant(), &id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Unix time the link expires.
    expires: Option<i64>,
    /// The link's signature.
    #[param(inline)]
    signature: Option<Line<1, 100>>,
}

async fn download_export(
    State(app): State<AppState>,
    Path(id): Path<ExportId>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Response> {
    // Expired, forged and unknown links all look the same.
    let (Some(expires), Some(sig)) = (q.expires, q.signature) else {
        return Err(ApiError::NotFound);
    };
    let valid = B64.decode(sig.as_bytes()).ok().is_some_and(|s| {
        app.keys
            .verify_link(format!("export:{id}:{expires}").as_bytes(), &s)
    });
    if !valid || expires < now_ms() / 1000 {
        return Err(ApiError::NotFound);
    }
    let content = store::content(&mut app.db.clone(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut res = (StatusCode::OK, content.unwrap_or_default()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.ndjson\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
