//! `/v1/webhooks`: endpoint management, secret rotation, test pings, the delivery log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::endpoints::{self, Endpoint, NewEndpoint, Patch};
use super::{retry_bounds, signing};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::events::is_valid_pattern;
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::validate::nullable;
use crate::http::{ApiError, ApiResult, Checks, Json, OptionalJson, Path, Query, Validate};
use crate::ids::new_id;
use crate::store::sql;
use crate::traffic::idempotency::Idem;

fn p(perm: Permission) -> Profile {
    let prof = Profile::api(Scope::Webhooks, perm);
    if perm == Permission::Read {
        prof
    } else {
        prof.audited()
    }
}

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/webhooks", p(Permission::Write), create_webhook)
            .summary("Create an endpoint; its signing secret is in this response only")
            .tag("webhooks")
            .body::<EndpointIn>()
            .returns::<EndpointSecretOut>(201),
        Route::get("/v1/webhooks", p(Permission::Read), list_webhooks)
            .summary("List endpoints")
            .tag("webhooks")
            .returns_list::<EndpointOut>(),
        Route::get("/v1/webhooks/{id}", p(Permission::Read), get_webhook)
            .summary("Get an endpoint")
            .tag("webhooks")
            .returns::<EndpointOut>(200),
        Route::patch("/v1/webhooks/{id}", p(Permission::Write), update_webhook)
            .summary("Update an endpoint; `status: active` re-enables a failed or disabled one")
            .tag("webhooks")
            .body::<EndpointPatchIn>()
            .returns::<EndpointOut>(200),
        Route::delete("/v1/webhooks/{id}", p(Permission::Delete), delete_webhook)
            .summary("Delete an endpoint (nothing more is delivered to it)")
            .tag("webhooks")
            .no_content(),
        Route::post(
            "/v1/webhooks/{id}/rotate-secret",
            p(Permission::Write),
            rotate_webhook_secret,
        )
        .summary("Replace the signing secret; the old one also signs during the overlap window")
        .tag("webhooks")
        .returns::<EndpointSecretOut>(200),
        Route::post("/v1/webhooks/{id}/test", p(Permission::Write), test_webhook)
            .summary("Send a test.ping event to this endpoint")
            .tag("webhooks")
            .returns::<TestOut>(202),
        Route::get(
            "/v1/webhooks/{id}/deliveries",
            Profile::api(Scope::Webhooks, Permission::Read),
            list_webhook_deliveries,
        )
        .summary("The delivery log: every attempt with status code, latency and error")
        .tag("webhooks")
        .returns_list::<AttemptOut>(),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// https URL (plain http only where private targets are allowed).
    pub url: String,
    /// Event types or wildcards (`message.*`, `*`); ignored for channel endpoints.
    #[serde(default)]
    pub events: Vec<String>,
    /// Retries after the first attempt, 0..=20 (default 12).
    pub max_retries: Option<i64>,
    pub description: Option<String>,
    /// `events` (default) or `channel` (outbound messages).
    pub kind: Option<String>,
    /// Deliveries per second, 1..=10000.
    pub rate_limit: Option<i64>,
}

fn check_events(c: &mut Checks, events: &[String], required: bool) {
    if required && events.is_empty() {
        c.fail("events", "at least one event type is required");
    }
    if events.len() > 50 {
        c.fail("events", "at most 50 entries");
    }
    for (i, e) in events.iter().enumerate() {
        c.check(
            is_valid_pattern(e),
            &format!("events[{i}]"),
            format!("{e:?} is not an event type of the catalog"),
        );
    }
}

fn check_common(
    c: &mut Checks,
    max_retries: Option<i64>,
    rate_limit: Option<i64>,
    description: Option<&str>,
) {
    if let Some(m) = max_retries {
        c.check(
            retry_bounds().contains(&m),
            "max_retries",
            format!("must be between 0 and {}", retry_bounds().end()),
        );
    }
    if let Some(r) = rate_limit {
        c.check(
            (1..=10_000).contains(&r),
            "rate_limit",
            "must be between 1 and 10000 deliveries per second",
        );
    }
    if let Some(d) = description {
        c.len("description", d, 0, 500);
        c.printable("description", d);
    }
}

impl Validate for EndpointIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        let kind = self.kind.as_deref().unwrap_or("events");
        c.check(
            matches!(kind, "events" | "channel"),
            "kind",
            "must be events or channel",
        );
        check_events(&mut c, &self.events, kind == "events");
        check_common(
            &mut c,
            self.max_retries,
            self.rate_limit,
            self.description.as_deref(),
        );
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchIn {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub max_retries: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub rate_limit: Option<Option<i64>>,
    /// `active` (re-enable) or `paused`.
    pub status: Option<String>,
}

impl Validate for EndpointPatchIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        if let Some(e) = &self.events {
            check_events(&mut c, e, true);
        }
        check_common(
            &mut c,
            self.max_retries,
            self.rate_limit.flatten(),
            self.description.clone().flatten().as_deref(),
        );
        if let Some(s) = &self.status {
            c.check(
                matches!(s.as_str(), "active" | "paused"),
                "status",
                "must be active or paused",
            );
        }
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointOut {
    pub id: String,
    pub object: &'static str,
    pub url: String,
    pub kind: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub max_retries: i64,
    pub rate_limit: Option<i64>,
    /// active, paused, failed (retry budgets kept running out) or disabled (410 Gone)
    pub status: String,
    pub status_reason: Option<String>,
    pub livemode: bool,
    /// While a rotated-out secret still signs.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Endpoint> for EndpointOut {
    fn from(e: &Endpoint) -> Self {
        EndpointOut {
            id: e.id.clone(),
            object: "webhook_endpoint",
            url: e.url.clone(),
            kind: e.kind.clone(),
            description: e.description.clone(),
            events: e.events.clone(),
            max_retries: e.max_retries,
            rate_limit: e.rate_limit,
            status: e.status.clone(),
            status_reason: e.status_reason.clone(),
            livemode: e.environment == "live",
            previous_secret_expires_at: e
                .previous_secret_expires_at
                .filter(|t| *t > now_ms())
                .map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointSecretOut {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    /// `whsec_…`: shown in this response only.
    pub secret: String,
}

async fn create_webhook(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<EndpointIn>,
) -> ApiResult<Response> {
    endpoints::check_url(&body.url, app.webhooks.policy())
        .map_err(|m| ApiError::field("url", m))?;
    let t = pr.tenant();
    let kind = body.kind.as_deref().unwrap_or("events");
    let id = new_id("ep");
    let secret = signing::new_secret();
    let enc = app.keys.encrypt(secret.as_bytes(), &id);
    let mut tx = app.db.begin().await?;
    if kind == "channel" && endpoints::channel(&mut tx, &t).await?.is_some() {
        return Err(ApiError::conflict(
            "this org already has a channel endpoint; update or delete it first",
        ));
    }
    let ep = endpoints::insert(
        &mut tx,
        &t,
        &NewEndpoint {
            id: &id,
            kind,
            url: &body.url,
            description: body.description.as_deref(),
            events: &body.events,
            max_retries: body
                .max_retries
                .unwrap_or(i64::from(crate::jobs::retry::DEFAULT_MAX_RETRIES)),
            rate_limit: body.rate_limit,
            secret_enc: &enc,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&pr.org), pr.actor(), "webhook_endpoint.created")
            .target("webhook_endpoint", &ep.id)
            .details(json!({ "url": ep.url, "kind": ep.kind, "events": ep.events })),
    )
    .await?;
    let out = EndpointSecretOut {
        endpoint: EndpointOut::from(&ep),
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

async fn list_webhooks(
    pr: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<EndpointOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let rows = endpoints::list(&mut app.db.clone(), &pr.tenant(), &page).await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |e| e.id.as_str()).map(|e| EndpointOut::from(&e)),
    ))
}

async fn get_webhook(
    pr: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EndpointOut>> {
    let e = endpoints::get(&mut app.db.clone(), &pr.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(EndpointOut::from(&e)))
}

async fn update_webhook(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<String>,
    Json(body): Json<EndpointPatchIn>,
) -> ApiResult<Response> {
    if let Some(u) = &body.url {
        endpoints::check_url(u, app.webhooks.policy()).map_err(|m| ApiError::field("url", m))?;
    }
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    let before = endpoints::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let patch = Patch {
        url: body.url.clone(),
        description: body.description.clone(),
        events: body.events.clone(),
        max_retries: body.max_retries,
        rate_limit: body.rate_limit,
        status: body.status.clone(),
    };
    let ep = endpoints::update(&mut tx, &t, &id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    let action = match (before.status.as_str(), ep.status.as_str()) {
        (b, "active") if b != "active" => "webhook_endpoint.enabled",
        (b, "paused") if b != "paused" => "webhook_endpoint.paused",
        _ => "webhook_endpoint.updated",
    };
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&pr.org), pr.actor(), action)
            .target("webhook_endpoint", &ep.id)
            .details(
                json!({ "status": { "from": before.status, "to": ep.status }, "url": ep.url }),
            ),
    )
    .await?;
    if ep.status == "active" && before.status != "active" {
        // Deliveries held back while paused can go now.
        crate::jobs::queue::wake_after_commit(&mut tx);
    }
    idem.commit(tx, StatusCode::OK, &EndpointOut::from(&ep))
        .await
}

async fn delete_webhook(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = app.db.begin().await?;
    if !endpoints::soft_delete(&mut tx, &pr.tenant(), &id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&pr.org), pr.actor(), "webhook_endpoint.deleted")
            .target("webhook_endpoint", &id),
    )
    .await?;
    idem.commit_empty(tx).await
}

async fn rotate_webhook_secret(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    let current = endpoints::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let secret = signing::new_secret();
    let enc = app.keys.encrypt(secret.as_bytes(), &id);
    let overlap = now_ms()
        + i64::try_from(app.config.webhook_secret_overlap.as_millis()).unwrap_or(86_400_000);
    let ep = endpoints::rotate_secret(
        &mut tx,
        &t,
        &id,
        &enc,
        endpoints::secret_ciphertext(&current),
        overlap,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&pr.org), pr.actor(), "webhook_endpoint.secret_rotated")
            .target("webhook_endpoint", &id)
            .details(json!({ "previous_secret_valid_until": rfc3339(overlap) })),
    )
    .await?;
    let out = EndpointSecretOut {
        endpoint: EndpointOut::from(&ep),
        secret,
    };
    idem.commit(tx, StatusCode::OK, &out).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestOut {
    pub event_id: String,
    pub delivery_id: String,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {}
impl Validate for TestIn {}

async fn test_webhook(
    pr: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Path(id): Path<String>,
    OptionalJson(_): OptionalJson<TestIn>,
) -> ApiResult<Response> {
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    let ep = endpoints::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let event = crate::events::record_only(
        &mut tx,
        &t,
        "test.ping",
        json!({ "endpoint_id": ep.id, "message": "hello from rampart" }),
    )
    .await?;
    let delivery_id = super::fanout::create_delivery(&mut tx, &t, &ep.id, &event, false).await?;
    idem.commit(
        tx,
        StatusCode::ACCEPTED,
        &TestOut {
            event_id: event.id,
            delivery_id,
        },
    )
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    pub id: String,
    pub object: &'static str,
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub attempt: i64,
    /// The receiver's status code; null when no response came back.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// null on success; else http_status, timeout, connect, dns, tls, ssrf_blocked, …
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// The first 4 KiB of the response body.
    pub response_excerpt: Option<String>,
    pub request_id: Option<String>,
    pub created_at: String,
}

async fn list_webhook_deliveries(
    pr: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<AttemptOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let t = pr.tenant();
    let mut db = app.db.clone();
    endpoints::get(&mut db, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let rows = sql(
        "SELECT a.id, a.delivery_id, d.event_id, d.event_type, a.attempt, a.status_code, a.latency_ms, a.error_class, a.error, a.response_excerpt, a.request_id, a.created_at
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.org_id = $1 AND a.endpoint_id = $2 AND ($3 IS NULL OR a.id < $3)
         ORDER BY a.id DESC LIMIT $4",
    )
    .bind(t.org())
    .bind(&id)
    .bind(page.after.clone())
    .bind(page.limit + 1)
    .fetch_all(&mut db)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(AttemptOut {
                id: r.get("id")?,
                object: "delivery_attempt",
                delivery_id: r.get("delivery_id")?,
                event_id: r.get("event_id")?,
                event_type: r.get("event_type")?,
                attempt: r.get("attempt")?,
                status_code: r.get("status_code")?,
                latency_ms: r.get("latency_ms")?,
                error_class: r.get("error_class")?,
                error: r.get("error")?,
                response_excerpt: r.get("response_excerpt")?,
                request_id: r.get("request_id")?,
                created_at: rfc3339(r.get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>, crate::store::DbError>>()?;
    Ok(axum::Json(Page::from_rows(items, page.limit, |a| {
        a.id.as_str()
    })))
}
