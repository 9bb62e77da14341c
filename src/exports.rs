//! `POST /v1/exports`: an asynchronous full export of the org (one environment) as NDJSON,
//! built by a job and downloadable through a signed link that expires
//! (`RAMPART_EXPORT_LINK_TTL`). The link is the credential: whoever holds it may download,
//! until it expires; it is only ever handed out to an authorized caller.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::access::grants::{Permission, Scope};
use crate::access::principal::{Environment, Principal, Tenant};
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, OptionalJson, Path, Validate};
use crate::ids::{OrgId, new_id};
use crate::jobs::queue::{NewJob, begin_finish, complete, enqueue};
use crate::jobs::{ClaimedJob, Completion};
use crate::store::{sql, sql_built};
use crate::traffic::idempotency::Idem;

pub const BUILD_JOB: &str = "export.build";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What an export contains: (table, type label, columns), all scoped to org and environment.
const PARTS: &[(&str, &str, &str)] = &[
    (
        "contacts",
        "contact",
        "id, external_key, name, email, phone, attributes, created_at, updated_at, erased_at",
    ),
    (
        "conversations",
        "conversation",
        "id, contact_id, channel, created_at",
    ),
    (
        "messages",
        "message",
        "id, conversation_id, direction, body, metadata, status, scheduled_message_id, created_at, sent_at",
    ),
    (
        "scheduled_messages",
        "scheduled_message",
        "id, conversation_id, body, metadata, send_at, status, message_id, created_at",
    ),
    (
        "webhook_endpoints",
        "webhook_endpoint",
        "id, kind, url, description, events, max_retries, rate_limit, status, created_at",
    ),
    (
        "dead_letters",
        "dead_letter",
        "id, source, endpoint_id, event_id, event_type, payload, reason, status, attempts, created_at, resolved_at",
    ),
];

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/exports",
            Profile::api(Scope::Exports, Permission::Write)
                .billing(Billing::None)
                .audited(),
            create_export,
        )
        .summary("Start a full export of the org's data (NDJSON), built in the background")
        .tag("exports")
        .returns::<ExportOut>(202),
        Route::get(
            "/v1/exports/{id}",
            Profile::api(Scope::Exports, Permission::Read).billing(Billing::None),
            get_export,
        )
        .summary("An export's status; when ready, a download link valid for a limited time")
        .tag("exports")
        .returns::<ExportOut>(200),
        Route::get(
            "/v1/exports/{id}/download",
            Profile::public(),
            download_export,
        )
        .summary("Download an export through its signed, time-limited link")
        .tag("exports")
        .param("expires", "integer", "unix time the link expires")
        .param("signature", "string", "the link's signature")
        .content_type("application/x-ndjson"),
    ]
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportIn {}
impl Validate for ExportIn {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportOut {
    pub id: String,
    pub object: &'static str,
    /// pending, ready or failed
    pub status: String,
    pub livemode: bool,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    /// When ready: where to download it, until `download_expires_at`.
    pub download_url: Option<String>,
    pub download_expires_at: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

fn signature(app: &AppState, id: &str, expires: i64) -> String {
    B64.encode(
        app.keys
            .sign_link(format!("export:{id}:{expires}").as_bytes()),
    )
}

async fn load(app: &AppState, t: &Tenant, id: &str) -> ApiResult<ExportOut> {
    let r = sql("SELECT id, status, environment, bytes, sha256, created_at, completed_at FROM exports WHERE org_id = $1 AND environment = $2 AND id = $3")
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(id)
        .fetch_optional(&mut app.db.clone())
        .await?
        .ok_or(ApiError::NotFound)?;
    let status: String = r.get("status")?;
    let (url, until) = if status == "ready" {
        let expires =
            now_ms() / 1000 + i64::try_from(app.config.export_link_ttl.as_secs()).unwrap_or(3600);
        let sig = signature(app, id, expires);
        (
            Some(format!(
                "{}/v1/exports/{id}/download?expires={expires}&signature={sig}",
                app.config.public_base_url.clone().unwrap_or_default()
            )),
            Some(rfc3339(expires * 1000)),
        )
    } else {
        (None, None)
    };
    Ok(ExportOut {
        id: r.get("id")?,
        object: "export",
        status,
        livemode: r.get::<String>("environment")? == "live",
        bytes: r.get("bytes")?,
        sha256: r.get("sha256")?,
        download_url: url,
        download_expires_at: until,
        created_at: rfc3339(r.get("created_at")?),
        completed_at: r.get::<Option<i64>>("completed_at")?.map(rfc3339),
    })
}

async fn create_export(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    OptionalJson(_): OptionalJson<ExportIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let id = new_id("exp");
    let mut tx = app.db.begin().await?;
    sql("INSERT INTO exports (id, org_id, environment, status, requested_by, created_at) VALUES ($1, $2, $3, 'pending', $4, $5)")
        .bind(&id)
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(p.actor().id().map(str::to_owned))
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
    enqueue(
        &mut tx,
        NewJob::now(BUILD_JOB, Some(t.org().clone()), json!({ "export_id": id })),
    )
    .await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "export.requested").target("export", &id),
    )
    .await?;
    let out = ExportOut {
        id,
        object: "export",
        status: "pending".into(),
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
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ExportOut>> {
    Ok(axum::Json(load(&app, &p.tenant(), &id).await?))
}

#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    expires: Option<i64>,
    signature: Option<String>,
}

async fn download_export(
    State(app): State<AppState>,
    Path(id): Path<String>,
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
    let row = sql("SELECT content FROM exports WHERE id = $1 AND status = 'ready'")
        .bind(&id)
        .fetch_optional(&mut app.db.clone())
        .await?
        .ok_or(ApiError::NotFound)?;
    let content: Option<String> = row.get("content")?;
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

/// The `export.build` job: one consistent snapshot of the tenant's data, as NDJSON.
pub async fn build(state: &AppState, job: &ClaimedJob) -> anyhow::Result<()> {
    let id = job.payload["export_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no export_id"))?
        .to_owned();
    let row = sql("SELECT org_id, environment FROM exports WHERE id = $1")
        .bind(&id)
        .fetch_optional(&mut state.db.clone())
        .await?;
    let Some(row) = row else {
        complete(&state.db, job, &Completion::Done).await?;
        return Ok(());
    };
    let t = Tenant::for_background(
        OrgId::from_trusted(row.get("org_id")?),
        Environment::parse(&row.get::<String>("environment")?).unwrap_or(Environment::Live),
    );
    let mut snap = state.db.begin_snapshot().await?;
    let mut out = String::new();
    out.push_str(&json!({ "type": "export", "data": { "id": id, "org_id": t.org(), "livemode": t.livemode(), "created_at": rfc3339(now_ms()) } }).to_string());
    out.push('\n');
    for (table, label, cols) in PARTS {
        let rows = sql_built(format!(
            "SELECT {cols} FROM {table} WHERE org_id = $1 AND environment = $2 ORDER BY id"
        ))
        .bind(t.org())
        .bind(t.env().as_str())
        .fetch_all(&mut snap)
        .await?;
        for r in rows {
            let mut data = serde_json::Map::new();
            for c in cols.split(", ") {
                let v = if let Ok(s) = r.get::<Option<String>>(c) {
                    match (c, &s) {
                        ("attributes" | "metadata" | "payload" | "events", Some(text)) => {
                            serde_json::from_str(text).unwrap_or(Value::Null)
                        }
                        _ => json!(s),
                    }
                } else if let Ok(n) = r.get::<Option<i64>>(c) {
                    if c.ends_with("_at") {
                        json!(n.map(rfc3339))
                    } else {
                        json!(n)
                    }
                } else {
                    Value::Null
                };
                data.insert(c.to_owned(), v);
            }
            out.push_str(&json!({ "type": label, "data": data }).to_string());
            out.push('\n');
        }
    }
    snap.rollback().await?;
    let digest = crate::ids::hex(Sha256::digest(out.as_bytes()));
    let Some(mut tx) = begin_finish(&state.db, job, &Completion::Done).await? else {
        return Ok(());
    };
    sql("UPDATE exports SET status = 'ready', content = $2, bytes = $3, sha256 = $4, completed_at = $5 WHERE id = $1")
        .bind(&id)
        .bind(&out)
        .bind(i64::try_from(out.len()).unwrap_or(i64::MAX))
        .bind(&digest)
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
