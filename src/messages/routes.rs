//! `/v1/messages`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Message;
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::clock::{now_ms, rfc3339};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Idempotency, Profile, Route};
use crate::http::validate::check_object;
use crate::http::{ApiError, ApiResult, Checks, Json, Path, Query, Validate};
use crate::ids::new_id;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/messages",
            Profile::api(Scope::Messages, Permission::Write).idempotency(Idempotency::Required),
            send_message,
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
        .summary("List messages, newest first")
        .tag("messages")
        .returns_list::<MessageOut>()
        .param(
            "conversation_id",
            "string",
            "only this conversation's messages",
        ),
        Route::get(
            "/v1/messages/{id}",
            Profile::api(Scope::Messages, Permission::Read),
            get_message,
        )
        .summary("Get a message")
        .tag("messages")
        .returns::<MessageOut>(200),
        Route::post(
            "/v1/messages/inbound",
            Profile::api(Scope::Messages, Permission::Write),
            receive_message,
        )
        .summary("Report a message received on the channel (emits message.received)")
        .tag("messages")
        .body::<MessageIn>()
        .returns::<MessageOut>(201),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    pub conversation_id: String,
    /// 1-4096 characters.
    pub body: String,
    /// A JSON object of at most 16 KiB.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// The body and metadata rules, shared with scheduled messages.
pub fn check_content(c: &mut Checks, body: &str, metadata: Option<&Map<String, Value>>) {
    c.len("body", body, 1, 4096);
    c.check(!body.trim().is_empty(), "body", "must not be blank");
    if let Some(m) = metadata {
        check_object(c, "metadata", m, 100, 16 * 1024);
    }
}

impl Validate for MessageIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.check(
            crate::ids::is_id(&self.conversation_id, "cnv"),
            "conversation_id",
            "must be a conversation id (cnv_…)",
        );
        check_content(&mut c, &self.body, self.metadata.as_ref());
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    pub id: String,
    pub object: &'static str,
    pub conversation_id: String,
    /// outbound or inbound
    pub direction: String,
    /// null once erased
    pub body: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// queued, sent, failed or received
    pub status: String,
    pub scheduled_message_id: Option<String>,
    pub error: Option<String>,
    pub livemode: bool,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        MessageOut {
            id: m.id,
            object: "message",
            conversation_id: m.conversation_id,
            direction: m.direction,
            body: m.body,
            metadata: m.metadata,
            status: m.status,
            scheduled_message_id: m.scheduled_message_id,
            error: m.error,
            livemode: m.livemode,
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            sent_at: m.sent_at.map(rfc3339),
        }
    }
}

async fn send_message(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<MessageIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    crate::conversations::require(&mut tx, &t, &body.conversation_id).await?;
    let empty = Map::new();
    let msg = super::create_outbound(
        &mut tx,
        &t,
        &body.conversation_id,
        &body.body,
        body.metadata.as_ref().unwrap_or(&empty),
        None,
    )
    .await?
    .map_err(super::SendRefusal::into_api_error)?;
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
    let row = crate::store::sql_built(format!(
        "INSERT INTO messages (id, org_id, environment, conversation_id, direction, body, metadata, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'inbound', $5, $6, 'received', $7, $7) RETURNING {}",
        super::COLUMNS
    ))
    .bind(new_id("msg"))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(&body.conversation_id)
    .bind(&body.body)
    .bind(Value::Object(body.metadata.clone().unwrap_or_default()).to_string())
    .bind(now_ms())
    .fetch_one(&mut tx)
    .await?;
    let msg = Message::from_row(&row)?;
    crate::events::emit(&mut tx, &t, "message.received", msg.event_data()).await?;
    idem.commit(tx, StatusCode::CREATED, &MessageOut::from(msg))
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    conversation_id: Option<String>,
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
    let rows = super::list(
        &mut app.db.clone(),
        &p.tenant(),
        &page,
        q.conversation_id.as_deref(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |m| m.id.as_str()).map(MessageOut::from),
    ))
}

async fn get_message(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MessageOut>> {
    let m = super::get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(m.into()))
}
