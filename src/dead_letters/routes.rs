//! `/v1/dead-letters`: list, inspect and replay (one, or in bulk by filter).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::replay::{Replay, replay};
use super::{DeadLetter, DeadLetterOut, DeadLetterStatus, Filter, ReplayRefusal, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::{Actor, Principal, Tenant};
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{Rfc3339, rfc3339};
use crate::events::EventType;
use crate::http::pagination::{Cursor, Limit, Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode, Json, Path, Query, Validate};
use crate::ids::{DeadLetterId, EndpointId};
use crate::state::AppState;
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
        .query::<ListQuery>()
        .summary("List dead letters, newest first")
        .tag("dead letters")
        .returns_list::<DeadLetterOut>(),
        Route::get(
            "/v1/dead-letters/{id}",
            Profile::api(Scope::DeadLetters, Permission::Read),
            get_dead_letter,
        )
        .path::<DeadLetterId>()
        .summary("Get a dead letter with its payload")
        .tag("dead letters")
        .returns::<DeadLetterOut>(200),
        Route::post(
            "/v1/dead-letters/{id}/replay",
            Profile::api(Scope::DeadLetters, Permission::Write).audited(),
            replay_dead_letter,
        )
        .error(
            ErrorCode::NotReplayable,
            "the dead letter is not open, or its endpoint is not active",
        )
        .path::<DeadLetterId>()
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
    /// Only dead letters in this state.
    #[param(inline)]
    status: Option<DeadLetterStatus>,
    /// Only this endpoint's.
    #[param(inline)]
    endpoint_id: Option<EndpointId>,
    /// Only this event type.
    #[param(inline)]
    event_type: Option<EventType>,
    /// Created at or after this time.
    #[param(inline)]
    since: Option<Rfc3339>,
    /// Created before this time.
    #[param(inline)]
    until: Option<Rfc3339>,
}

impl Validate for ListQuery {}

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
        since_ms: q.since.map(Rfc3339::ms),
        until_ms: q.until.map(Rfc3339::ms),
    };
    let rows = store::list(
        &mut app.db.clone(),
        &p.tenant(),
        &f,
        page.after.as_deref(),
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
    Path(id): Path<DeadLetterId>,
) -> ApiResult<axum::Json<DeadLetterOut>> {
    let d = store::get(&mut app.db.clone(), &p.tenant(), &id)
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
    let detail = match r {
        ReplayRefusal::NotOpen(s) => format!("the dead letter is {s}, not open"),
        ReplayRefusal::EndpointUnavailable(s) => format!(
            "the endpoint is {}; re-enable it (PATCH /v1/webhooks/{{id}} {{\"status\": \"active\"}}) before replaying",
            s.map_or("deleted", |s| s.as_str())
        ),
        ReplayRefusal::Unsupported => "this dead letter cannot be replayed".into(),
    };
    ApiError::Conflict(ErrorCode::NotReplayable, detail)
}

async fn replay_one(tx: &mut Tx, t: &Tenant, id: &DeadLetterId) -> ApiResult<(DeadLetter, Replay)> {
    let dl = store::get(tx, t, id).await?.ok_or(ApiError::NotFound)?;
    let started = replay(tx, t, &dl).await?.map_err(refusal_error)?;
    let dl = store::get(tx, t, id).await?.ok_or(ApiError::NotFound)?;
    Ok((dl, started))
}

async fn replay_dead_letter(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<DeadLetterId>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let (dl, started) = replay_one(&mut tx, &t, &id).await?;
    let replay_id = started.id().to_owned();
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "dead_letter.replayed")
            .target("dead_letter", dl.id.as_str())
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
    pub endpoint_id: Option<EndpointId>,
    pub event_type: Option<EventType>,
    /// Dead letters created at or after.
    pub since: Option<Rfc3339>,
    /// Dead letters created before.
    pub until: Option<Rfc3339>,
}

impl Validate for BulkReplayIn {}

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
    pub id: DeadLetterId,
    pub reason: String,
}

/// Replays the org's open dead letters matching a filter, at most [`BULK_LIMIT`] per call.
pub async fn bulk_replay(
    t: &Tenant,
    f: Filter,
    actor: Actor,
    meta: &RequestMeta,
    tx: &mut Tx,
) -> ApiResult<BulkReplayOut> {
    let f = Filter {
        status: Some(DeadLetterStatus::Open),
        ..f
    };
    let batch = store::list(tx, t, &f, None, BULK_LIMIT + 1).await?;
    let has_more = batch.len() as i64 > BULK_LIMIT;
    let mut replayed = 0;
    let mut skipped = Vec::new();
    for dl in batch.into_iter().take(BULK_LIMIT as usize) {
        match replay(tx, t, &dl).await? {
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
        since_ms: body.since.map(Rfc3339::ms),
        until_ms: body.until.map(Rfc3339::ms),
    };
    let mut tx = app.db.begin().await?;
    let out = bulk_replay(&t, f, p.actor(), &meta, &mut tx).await?;
    idem.commit(tx, StatusCode::ACCEPTED, &out).await
}
