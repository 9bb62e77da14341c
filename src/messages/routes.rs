//! `/v1/messages`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Map;

use super::{MessageIn, MessageOut, SendRefusal, create_outbound, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::deliveries::fanout::subscribers;
use crate::events::{self, EventType};
use crate::http::pagination::{Cursor, Limit, Page, PageQuery};
use crate::http::routes::{Idempotency, Profile, Route};
use crate::http::search::Search;
use crate::http::{ApiError, ApiResult, ErrorCode, Json, Path, Query, Validate};
use crate::ids::{ConversationId, MessageId};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/messages",
            Profile::api(Scope::Messages, Permission::Write).idempotency(Idempotency::Required),
            send_message,
        )
        .error(
            ErrorCode::ConversationNotFound,
            "no such conversation in this org",
        )
        .error(
            ErrorCode::ChannelNotConfigured,
            "the org has no active channel endpoint",
        )
        .summary("Send a message through the org's channel endpoint (Idempotency-Key required)")
        .tag("messages")
        .body::<MessageIn>()
        .returns::<MessageOut>(202),
        Route::get(
            "/v1/messages",
            Profile::api(Scope::Messages, Permission::Read),
            list_messages,
        )
        .query::<ListQuery>()
        .summary("List messages, newest first")
        .tag("messages")
        .returns_list::<MessageOut>(),
        Route::get(
            "/v1/messages/{id}",
            Profile::api(Scope::Messages, Permission::Read),
            get_message,
        )
        .path::<MessageId>()
        .summary("Get a message")
        .tag("messages")
        .returns::<MessageOut>(200),
        Route::post(
            "/v1/messages/inbound",
            Profile::api(Scope::Messages, Permission::Write),
            receive_message,
        )
        .error(
            ErrorCode::ConversationNotFound,
            "no such conversation in this org",
        )
        .summary("Report a message received on the channel (emits message.received)")
        .tag("messages")
        .body::<MessageIn>()
        .returns::<MessageOut>(201),
    ]
}

async fn send_message(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<MessageIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    // The conversation and channel lookups need no snapshot shared with the writes (neither is
    // ever deleted; a channel changed meanwhile is as if it changed just after).
    let mut tx = app.db.begin_at_first_write().await?;
    crate::conversations::require(&mut tx, &t, &body.conversation_id).await?;
    let empty = Map::new();
    let metadata = body.metadata.as_ref().unwrap_or(&empty);
    let msg = create_outbound(
        &mut tx,
        &t,
        &body.conversation_id,
        &body.body,
        metadata,
        None,
    )
    .await?
    .map_err(SendRefusal::into_api_error)?;
    idem.commit(tx, StatusCode::ACCEPTED, &MessageOut::from(msg))
        .await
}

async fn receive_message(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<MessageIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    crate::conversations::require(&mut tx, &t, &body.conversation_id).await?;
    let fan_out = subscribers(&mut tx, &t).await?;
    let metadata = body.metadata.clone().unwrap_or_default();
    let msg =
        store::insert_inbound(&mut tx, &t, &body.conversation_id, &body.body, &metadata).await?;
    events::emit(
        &mut tx,
        &t,
        fan_out,
        EventType::MessageReceived,
        msg.event_data(),
    )
    .await?;
    idem.commit(tx, StatusCode::CREATED, &MessageOut::from(msg))
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
    /// Only this conversation's messages.
    #[param(inline)]
    conversation_id: Option<ConversationId>,
    /// Only messages whose body contains this text (case-insensitive).
    #[param(inline)]
    q: Option<Search>,
}
impl Validate for ListQuery {}

async fn list_messages(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<MessageOut>>> {
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
        q.conversation_id.as_ref(),
        q.q.as_ref(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |m| m.id.as_str()).map(MessageOut::from),
    ))
}

async fn get_message(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<MessageId>,
) -> ApiResult<axum::Json<MessageOut>> {
    let m = store::get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(m.into()))
}
