//! `/v1/scheduled-messages`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Map;

use super::{ScheduledIn, ScheduledOut, ScheduledStatus, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::clock::now_ms;
use crate::http::pagination::{Cursor, Limit, Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode, Json, Path, Query, Validate};
use crate::ids::ScheduledMessageId;
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    let p = |perm| Profile::api(Scope::ScheduledMessages, perm);
    vec![
        Route::post(
            "/v1/scheduled-messages",
            p(Permission::Write),
            create_scheduled_message,
        )
        .error(
            ErrorCode::ConversationNotFound,
            "no such conversation in this org",
        )
        .error(ErrorCode::SendAtNotInFuture, "send_at is not in the future")
        .error(
            ErrorCode::UnsupportedTarget,
            "a contact was named instead of a conversation",
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
        .query::<ListQuery>()
        .summary("List scheduled messages, newest first")
        .tag("scheduled messages")
        .returns_list::<ScheduledOut>(),
        Route::get(
            "/v1/scheduled-messages/{id}",
            p(Permission::Read),
            get_scheduled_message,
        )
        .path::<ScheduledMessageId>()
        .summary("Get a scheduled message")
        .tag("scheduled messages")
        .returns::<ScheduledOut>(200),
        Route::delete(
            "/v1/scheduled-messages/{id}",
            p(Permission::Delete),
            cancel_scheduled_message,
        )
        .error(
            ErrorCode::NotCancelable,
            "the scheduled message is no longer pending",
        )
        .path::<ScheduledMessageId>()
        .summary("Cancel a pending scheduled message (409 not_cancelable otherwise)")
        .tag("scheduled messages")
        .returns::<ScheduledOut>(200),
    ]
}

async fn create_scheduled_message(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<ScheduledIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let Some(conversation_id) = &body.conversation_id else {
        return Err(ApiError::Rule {
            code: ErrorCode::UnsupportedTarget,
            field: "conversation_id",
            detail: if body.contact_id.is_some() {
                "scheduling to a contact is not supported: create a conversation for the contact and schedule on it".into()
            } else {
                "conversation_id is required".into()
            },
        });
    };
    let send_at = body.send_at.ms();
    if send_at <= now_ms() {
        return Err(ApiError::Rule {
            code: ErrorCode::SendAtNotInFuture,
            field: "send_at",
            detail: "send_at must be in the future".into(),
        });
    }
    let mut tx = app.db.begin().await?;
    crate::conversations::require(&mut tx, &t, conversation_id).await?;
    let empty = Map::new();
    let s = store::insert(
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
    /// Only scheduled messages in this state.
    #[param(inline)]
    status: Option<ScheduledStatus>,
    /// Only scheduled messages whose body contains this text (case-insensitive).
    #[param(inline)]
    q: Option<crate::http::search::Search>,
}

impl Validate for ListQuery {}

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
    let rows = store::list(
        &mut app.db.clone(),
        &p.tenant(),
        page.after.as_deref(),
        page.limit,
        q.status,
        q.q.as_ref(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |s| s.id.as_str()).map(ScheduledOut::from),
    ))
}

async fn get_scheduled_message(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<ScheduledMessageId>,
) -> ApiResult<axum::Json<ScheduledOut>> {
    let s = store::get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(s.into()))
}

async fn cancel_scheduled_message(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Path(id): Path<ScheduledMessageId>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    if !store::cancel(&mut tx, &t, &id).await? {
        return match store::get(&mut tx, &t, &id).await? {
            Some(s) => Err(ApiError::Conflict(
                ErrorCode::NotCancelable,
                format!(
                    "the scheduled message is {}; only pending ones can be canceled",
                    s.status
                ),
            )),
            None => Err(ApiError::NotFound),
        };
    }
    let s = store::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    idem.commit(tx, StatusCode::OK, &ScheduledOut::from(s))
        .await
}
