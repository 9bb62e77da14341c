//! `/v1/dead-letters`: list, inspect and replay (one, or in bulk by filter).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::dead_letters::{self, DeadLetter, Filter, ReplayRefusal};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::{Principal, Tenant};
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Path, Query, Validate};
use crate::store::Tx;
use crate::traffic::idempotency::Idem;

/// The most a single bulk replay takes on (call again for more).
pub const BULK_LIMIT: i64 = 1000;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/dead-letters",
            Profile::api(Scope::DeadLetters, Permission::Read),
            list_dead_letters,
        )
        .summary("List dead letters, newest first")
        .tag("dead letters")
        .returns_list::<DeadLetterOut>()
        .param("status", "string", "open, replaying or resolved")
        .param("endpoint_id", "string", "only this endpoint's")
        .param("event_type", "string", "only this event type")
        .param("since", "string", "RFC 3339: created at or after")
        .param("until", "string", "RFC 3339: created before"),
        Route::get(
            "/v1/dead-letters/{id}",
            Profile::api(Scope::DeadLetters, Permission::Read),
            get_dead_letter,
        )
        .summary("Get a dead letter with its payload")
        .tag("dead letters")
        .returns::<DeadLetterOut>(200),
        Route::post(
            "/v1/dead-letters/{id}/replay",
            Profile::api(Scope::DeadLetters, Permission::Write).audited(),
            replay_dead_letter,
        )
        .summary("Replay one dead letter; it is resolved when the replay succeeds")
        .tag("dead letters")
        .returns::<ReplayOut>(202),
        Route::post(
            "/v1/dead-letters/replay",
            Profile::api(Scope::DeadLetters, Permission::Write).audited(),
            replay_dead_letters,
        )
        .summary(
            "Replay every open dead letter matching a filter (endpoint, event type, time range)",
        )
        .tag("dead letters")
        .body::<BulkReplayIn>()
        .returns::<BulkReplayOut>(202),
    ]
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterOut {
    pub id: String,
    pub object: &'static str,
    /// webhook_delivery or scheduled_message
    pub source: String,
    pub delivery_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// retries_exhausted, endpoint_failed, endpoint_disabled, dispatch_failed, …
    pub reason: String,
    /// open, replaying or resolved
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub replay_count: i64,
    pub livemode: bool,
    pub created_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
}

impl From<DeadLetter> for DeadLetterOut {
    fn from(d: DeadLetter) -> Self {
        DeadLetterOut {
            id: d.id,
            object: "dead_letter",
            source: d.source,
            delivery_id: d.delivery_id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            payload: d.payload,
            reason: d.reason,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
            replay_count: d.replay_count,
            livemode: d.environment == "live",
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            resolved_at: d.resolved_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
    endpoint_id: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl Validate for ListQuery {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        if let Some(s) = &self.status {
            c.check(
                matches!(s.as_str(), "open" | "replaying" | "resolved"),
                "status",
                "must be open, replaying or resolved",
            );
        }
        for (f, v) in [("since", &self.since), ("until", &self.until)] {
            if let Some(v) = v {
                c.check(parse_rfc3339(v).is_some(), f, "must be an RFC 3339 time");
            }
        }
        c.finish()
    }
}

async fn list_dead_letters(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<DeadLetterOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let f = Filter {
        status: q.status,
        endpoint_id: q.endpoint_id,
        event_type: q.event_type,
        since_ms: q.since.as_deref().and_then(parse_rfc3339),
        until_ms: q.until.as_deref().and_then(parse_rfc3339),
    };
    let rows = dead_letters::list(
        &mut app.db.clone(),
        &p.tenant(),
        &f,
        page.after,
        page.limit + 1,
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |d| d.id.as_str()).map(DeadLetterOut::from),
    ))
}

async fn get_dead_letter(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeadLetterOut>> {
    let d = dead_letters::get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(d.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayOut {
    pub dead_letter: DeadLetterOut,
    /// The new delivery (or scheduled dispatch job) carrying the replay.
    pub replay_id: String,
}

fn refusal_error(r: ReplayRefusal) -> ApiError {
    match r {
        ReplayRefusal::NotOpen(s) => ApiError::Conflict(
            "not_replayable",
            format!("the dead letter is {s}, not open"),
        ),
        ReplayRefusal::EndpointUnavailable(s) => ApiError::Conflict(
            "not_replayable",
            format!(
                "the endpoint is {s}; re-enable it (PATCH /v1/webhooks/{{id}} {{\"status\": \"active\"}}) before replaying"
            ),
        ),
        ReplayRefusal::Unsupported => ApiError::Conflict(
            "not_replayable",
            "this dead letter cannot be replayed".into(),
        ),
    }
}

async fn replay_one(tx: &mut Tx, t: &Tenant, id: &str) -> ApiResult<(DeadLetter, String)> {
    let dl = dead_letters::get(tx, t, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let replay_id = dead_letters::replay(tx, t, &dl)
        .await?
        .map_err(refusal_error)?;
    let dl = dead_letters::get(tx, t, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((dl, replay_id))
}

async fn replay_dead_letter(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let (dl, replay_id) = replay_one(&mut tx, &t, &id).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "dead_letter.replayed")
            .target("dead_letter", &dl.id)
            .details(json!({ "replay_id": replay_id })),
    )
    .await?;
    idem.commit(
        tx,
        StatusCode::ACCEPTED,
        &ReplayOut {
            dead_letter: dl.into(),
            replay_id,
        },
    )
    .await
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReplayIn {
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    /// RFC 3339: dead letters created at or after.
    pub since: Option<String>,
    /// RFC 3339: dead letters created before.
    pub until: Option<String>,
}

impl Validate for BulkReplayIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        for (f, v) in [("since", &self.since), ("until", &self.until)] {
            if let Some(v) = v {
                c.check(parse_rfc3339(v).is_some(), f, "must be an RFC 3339 time");
            }
        }
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkReplayOut {
    /// Dead letters now replaying.
    pub replayed: usize,
    /// Open dead letters that could not be replayed now, with why.
    pub skipped: Vec<SkippedOut>,
    /// True when more matched than one call takes on: call again.
    pub has_more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SkippedOut {
    pub id: String,
    pub reason: String,
}

/// Replays the org's open dead letters matching a filter, at most [`BULK_LIMIT`] per call.
pub async fn bulk_replay(
    app: &AppState,
    t: &Tenant,
    f: Filter,
    actor: crate::access::principal::Actor,
    meta: &RequestMeta,
    tx: &mut Tx,
) -> ApiResult<BulkReplayOut> {
    let f = Filter {
        status: Some("open".into()),
        ..f
    };
    let _ = app;
    let batch = dead_letters::list(tx, t, &f, None, BULK_LIMIT + 1).await?;
    let has_more = batch.len() as i64 > BULK_LIMIT;
    let mut replayed = 0;
    let mut skipped = Vec::new();
    for dl in batch.into_iter().take(BULK_LIMIT as usize) {
        match dead_letters::replay(tx, t, &dl).await? {
            Ok(_) => replayed += 1,
            Err(r) => skipped.push(SkippedOut {
                id: dl.id.clone(),
                reason: refusal_error(r).to_string(),
            }),
        }
    }
    audit::record(
        tx,
        meta,
        Entry::new(Some(t.org()), actor, "dead_letter.bulk_replayed").details(json!({
            "replayed": replayed, "skipped": skipped.len(),
            "filter": { "endpoint_id": f.endpoint_id, "event_type": f.event_type, "since": f.since_ms.map(rfc3339), "until": f.until_ms.map(rfc3339) }
        })),
    )
    .await?;
    Ok(BulkReplayOut {
        replayed,
        skipped,
        has_more,
    })
}

async fn replay_dead_letters(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<BulkReplayIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let f = Filter {
        status: None,
        endpoint_id: body.endpoint_id,
        event_type: body.event_type,
        since_ms: body.since.as_deref().and_then(parse_rfc3339),
        until_ms: body.until.as_deref().and_then(parse_rfc3339),
    };
    let mut tx = app.db.begin().await?;
    let out = bulk_replay(&app, &t, f, p.actor(), &meta, &mut tx).await?;
    idem.commit(tx, StatusCode::ACCEPTED, &out).await
}
