//! `/v1/webhooks`: endpoint management, secret rotation, test pings, the delivery log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::target::TargetUrl;
use super::{
    EndpointIn, EndpointKind, EndpointOut, EndpointPatchIn, EndpointSecretOut, EndpointStatus,
    NewEndpoint, Patch, signing, store,
};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::events::{self, EventType, NoFanOut};
use crate::http::pagination::{Cursor, Limit, Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Json, OptionalJson, Path, Query, Validate};
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

/// The body's `url`, checked and normalised (a 422 naming `url` otherwise).
async fn target(app: &AppState, raw: &str) -> ApiResult<TargetUrl> {
    let policy = app.webhooks.policy();
    let url = TargetUrl::parse(raw, policy).map_err(|m| ApiError::field("url", m))?;
    url.check_resolution(policy)
        .await
        .map_err(|m| ApiError::field("url", m))?;
    Ok(url)
}

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
            .query::<ListQuery>()
            .summary("List endpoints")
            .tag("webhooks")
            .returns_list::<EndpointOut>(),
        Route::get("/v1/webhooks/{id}", p(Permission::Read), get_webhook)
            .path::<EndpointId>()
            .summary("Get an endpoint")
            .tag("webhooks")
            .returns::<EndpointOut>(200),
        Route::patch("/v1/webhooks/{id}", p(Permission::Write), update_webhook)
            .path::<EndpointId>()
            .summary("Update an endpoint; `status: active` re-enables a failed or disabled one")
            .tag("webhooks")
            .body::<EndpointPatchIn>()
            .returns::<EndpointOut>(200),
        Route::delete("/v1/webhooks/{id}", p(Permission::Delete), delete_webhook)
            .path::<EndpointId>()
            .summary("Delete an endpoint (nothing more is delivered to it)")
            .tag("webhooks")
            .no_content(),
        Route::post(
            "/v1/webhooks/{id}/rotate-secret",
            p(Permission::Write),
            rotate_webhook_secret,
        )
        .path::<EndpointId>()
        .summary("Replace the signing secret; the old one also signs during the overlap window")
        .tag("webhooks")
        .returns::<EndpointSecretOut>(200),
        Route::post("/v1/webhooks/{id}/test", p(Permission::Write), test_webhook)
            .path::<EndpointId>()
            .optional_body::<TestIn>()
            .summary("Send a test.ping event to this endpoint")
            .tag("webhooks")
            .returns::<TestOut>(202),
    ]
}

async fn create_webhook(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<EndpointIn>,
) -> ApiResult<Response> {
    let url = target(&app, &body.url).await?;
    let t = pr.tenant();
    let kind = body.kind.unwrap_or(EndpointKind::Events);
    let id = EndpointId::new();
    let secret = signing::new_secret();
    let enc = app.keys.encrypt(secret.as_bytes(), id.as_str());
    let mut tx = app.db.begin().await?;
    if kind == EndpointKind::Channel && store::channel(&mut tx, &t).await?.is_some() {
        return Err(ApiError::conflict(
            "this org already has a channel endpoint; update or delete it first",
        ));
    }
    let ep = store::insert(
        &mut tx,
        &t,
        &NewEndpoint {
            id: &id,
            kind,
            url: url.as_str(),
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
        Entry::new(Some(t.org()), pr.actor(), "webhook_endpoint.created")
            .target("webhook_endpoint", ep.id.as_str())
            .details(json!({ "url": ep.url, "kind": ep.kind, "events": ep.events.0 })),
    )
    .await?;
    let out = EndpointSecretOut {
        endpoint: EndpointOut::from(&ep),
        secret,
    };
    idem.commit(tx, StatusCode::CREATED, &out).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
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
    let rows = store::list(
        &mut app.db.clone(),
        &pr.tenant(),
        page.after.as_deref(),
        page.limit,
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |e| e.id.as_str()).map(|e| EndpointOut::from(&e)),
    ))
}

async fn get_webhook(
    pr: Principal,
    State(app): State<AppState>,
    Path(id): Path<EndpointId>,
) -> ApiResult<axum::Json<EndpointOut>> {
    let e = store::get(&mut app.db.clone(), &pr.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(EndpointOut::from(&e)))
}

async fn update_webhook(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<EndpointId>,
    Json(body): Json<EndpointPatchIn>,
) -> ApiResult<Response> {
    let url = match &body.url {
        Some(u) => Some(target(&app, u).await?),
        None => None,
    };
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    let before = store::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let patch = Patch {
        url: url.map(|u| u.as_str().to_owned()),
        description: body.description.clone(),
        events: body.events.clone(),
        max_retries: body.max_retries,
        rate_limit: body.rate_limit,
        status: body.status.map(EndpointStatus::from),
    };
    let ep = store::update(&mut tx, &t, &id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    let action = match (before.status, ep.status) {
        (b, EndpointStatus::Active) if b != EndpointStatus::Active => "webhook_endpoint.enabled",
        (b, EndpointStatus::Paused) if b != EndpointStatus::Paused => "webhook_endpoint.paused",
        _ => "webhook_endpoint.updated",
    };
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), pr.actor(), action)
            .target("webhook_endpoint", ep.id.as_str())
            .details(
                json!({ "status": { "from": before.status, "to": ep.status }, "url": ep.url }),
            ),
    )
    .await?;
    if ep.status == EndpointStatus::Active && before.status != EndpointStatus::Active {
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
    Path(id): Path<EndpointId>,
) -> ApiResult<Response> {
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    if !store::soft_delete(&mut tx, &t, &id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), pr.actor(), "webhook_endpoint.deleted")
            .target("webhook_endpoint", id.as_str()),
    )
    .await?;
    idem.commit_empty(tx).await
}

async fn rotate_webhook_secret(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<EndpointId>,
) -> ApiResult<Response> {
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    let current = store::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let secret = signing::new_secret();
    let enc = app.keys.encrypt(secret.as_bytes(), id.as_str());
    let overlap = now_ms()
        + i64::try_from(app.config.webhook_secret_overlap.as_millis()).unwrap_or(86_400_000);
    let ep = store::rotate_secret(&mut tx, &t, &id, &enc, current.secret_ciphertext(), overlap)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), pr.actor(), "webhook_endpoint.secret_rotated")
            .target("webhook_endpoint", id.as_str())
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
    pub event_id: EventId,
    pub delivery_id: DeliveryId,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {}
impl Validate for TestIn {}

async fn test_webhook(
    pr: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Path(id): Path<EndpointId>,
    OptionalJson(_): OptionalJson<TestIn>,
) -> ApiResult<Response> {
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    let ep = store::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    // The ping goes to this endpoint only, not to every subscriber of `test.ping`.
    let data = json!({ "endpoint_id": ep.id, "message": "hello from rampart" });
    let event = events::emit(&mut tx, &t, NoFanOut, EventType::TestPing, data).await?;
    let delivery_id =
        crate::deliveries::fanout::create_delivery(&mut tx, &t, &ep.id, &event, false).await?;
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
