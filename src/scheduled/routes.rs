//! `/v1/scheduled-messages`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Scheduled;
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::clock::{now_ms, parse_rfc3339, rfc3339};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Path, Query, Validate};
use crate::store::sql_built;
use crate::traffic::idempotency::Idem;

/// How far ahead a message may be scheduled.
pub const MAX_AHEAD_MS: i64 = 366 * 86_400_000;

pub fn routes() -> Vec<Route> {
    let p = |perm| Profile::api(Scope::ScheduledMessages, perm);
    vec![
        Route::post(
            "/v1/scheduled-messages",
            p(Permission::Write),
            create_scheduled_message,
        )
        .summary(
            "Schedule a message on a conversation (send_at in the future, at most 366 days ahead)",
        )
        .tag("scheduled messages")
        .body::<ScheduledIn>()
        .returns::<ScheduledOut>(201),
        Route::get(
            "/v1/scheduled-messages",
            p(Permission::Read),
            list_scheduled_messages,
        )
        .summary("List scheduled messages, newest first")
        .tag("scheduled messages")
        .returns_list::<ScheduledOut>()
        .param(
            "status",
            "string",
            "pending, dispatched, canceled or failed",
        ),
        Route::get(
            "/v1/scheduled-messages/{id}",
            p(Permission::Read),
            get_scheduled_message,
        )
        .summary("Get a scheduled message")
        .tag("scheduled messages")
        .returns::<ScheduledOut>(200),
        Route::delete(
            "/v1/scheduled-messages/{id}",
            p(Permission::Delete),
            cancel_scheduled_message,
        )
        .summary("Cancel a pending scheduled message (409 not_cancelable otherwise)")
        .tag("scheduled messages")
        .returns::<ScheduledOut>(200),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledIn {
    pub conversation_id: Option<String>,
    /// Scheduling to a contact is refused (422 unsupported_target): start a conversation.
    pub contact_id: Option<String>,
    pub body: String,
    /// RFC 3339 time in the future, at most 366 days ahead.
    pub send_at: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

impl Validate for ScheduledIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        crate::messages::routes::check_content(&mut c, &self.body, self.metadata.as_ref());
        if let Some(cid) = &self.conversation_id {
            c.check(
                crate::ids::is_id(cid, "cnv"),
                "conversation_id",
                "must be a conversation id (cnv_…)",
            );
        }
        match parse_rfc3339(&self.send_at) {
            None => c.fail(
                "send_at",
                "must be an RFC 3339 time such as 2030-01-31T12:00:00Z",
            ),
            Some(t) => c.check(
                t <= now_ms() + MAX_AHEAD_MS,
                "send_at",
                "must be at most 366 days ahead",
            ),
        }
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduledOut {
    pub id: String,
    pub object: &'static str,
    pub conversation_id: String,
    pub body: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub send_at: String,
    /// pending, dispatched, canceled or failed
    pub status: String,
    /// The message it became, once dispatched.
    pub message_id: Option<String>,
    pub last_error: Option<String>,
    pub livemode: bool,
    pub created_at: String,
    pub updated_at: String,
    pub dispatched_at: Option<String>,
}

impl From<Scheduled> for ScheduledOut {
    fn from(s: Scheduled) -> Self {
        ScheduledOut {
            id: s.id,
            object: "scheduled_message",
            conversation_id: s.conversation_id,
            body: s.body,
            metadata: s.metadata,
            send_at: rfc3339(s.send_at),
            status: s.status,
            message_id: s.message_id,
            last_error: s.last_error,
            livemode: s.livemode,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            dispatched_at: s.dispatched_at.map(rfc3339),
        }
    }
}

async fn create_scheduled_message(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<ScheduledIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let Some(conversation_id) = body.conversation_id.as_deref() else {
        return Err(ApiError::Rule {
            code: "unsupported_target",
            field: "conversation_id",
            detail: if body.contact_id.is_some() {
                "scheduling to a contact is not supported: create a conversation for the contact and schedule on it".into()
            } else {
                "conversation_id is required".into()
            },
        });
    };
    let send_at = parse_rfc3339(&body.send_at).unwrap_or(0);
    if send_at <= now_ms() {
        return Err(ApiError::Rule {
            code: "send_at_not_in_future",
            field: "send_at",
            detail: "send_at must be in the future".into(),
        });
    }
    let mut tx = app.db.begin().await?;
    crate::conversations::require(&mut tx, &t, conversation_id).await?;
    let empty = Map::new();
    let s = super::insert(
        &mut tx,
        &t,
        conversation_id,
        &body.body,
        body.metadata.as_ref().unwrap_or(&empty),
        send_at,
    )
    .await?;
    crate::jobs::queue::wake_scheduler_after_commit(&mut tx);
    idem.commit(tx, StatusCode::CREATED, &ScheduledOut::from(s))
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
}

impl Validate for ListQuery {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        if let Some(s) = &self.status {
            c.check(
                matches!(s.as_str(), "pending" | "dispatched" | "canceled" | "failed"),
                "status",
                "must be pending, dispatched, canceled or failed",
            );
        }
        c.finish()
    }
}

async fn list_scheduled_messages(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ScheduledOut>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let t = p.tenant();
    let rows = sql_built(format!(
        "SELECT {} FROM scheduled_messages WHERE org_id = $1 AND environment = $2
           AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR status = $4) ORDER BY id DESC LIMIT $5",
        super::COLUMNS
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(page.after.clone())
    .bind(q.status)
    .bind(page.limit + 1)
    .fetch_all(&mut app.db.clone())
    .await?;
    let items = rows
        .iter()
        .map(Scheduled::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(
        Page::from_rows(items, page.limit, |s| s.id.as_str()).map(ScheduledOut::from),
    ))
}

async fn get_scheduled_message(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ScheduledOut>> {
    let s = super::get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(s.into()))
}

async fn cancel_scheduled_message(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    if !super::cancel(&mut tx, &t, &id).await? {
        return match super::get(&mut tx, &t, &id).await? {
            Some(s) => Err(ApiError::Conflict(
                "not_cancelable",
                format!(
                    "the scheduled message is {}; only pending ones can be canceled",
                    s.status
                ),
            )),
            None => Err(ApiError::NotFound),
        };
    }
    let s = super::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    idem.commit(tx, StatusCode::OK, &ScheduledOut::from(s))
        .await
}
