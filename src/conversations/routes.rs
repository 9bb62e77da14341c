//! `/v1/conversations`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{ConversationIn, ConversationOut, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::deliveries::fanout::subscribers;
use crate::events::{self, EventType};
use crate::http::pagination::{Cursor, Limit, Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Json, Path, Query, Validate};
use crate::ids::{ContactId, ConversationId};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/conversations",
            Profile::api(Scope::Conversations, Permission::Write),
            create_conversation,
        )
        .summary("Start a conversation with a contact on a channel")
        .tag("conversations")
        .body::<ConversationIn>()
        .returns::<ConversationOut>(201),
        Route::get(
            "/v1/conversations",
            Profile::api(Scope::Conversations, Permission::Read),
            list_conversations,
        )
        .query::<ListQuery>()
        .summary("List conversations, newest first")
        .tag("conversations")
        .returns_list::<ConversationOut>(),
        Route::get(
            "/v1/conversations/{id}",
            Profile::api(Scope::Conversations, Permission::Read),
            get_conversation,
        )
        .path::<ConversationId>()
        .summary("Get a conversation")
        .tag("conversations")
        .returns::<ConversationOut>(200),
    ]
}

async fn create_conversation(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<ConversationIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let fan_out = subscribers(&mut tx, &t).await?;
    if crate::contacts::store::get(&mut tx, &t, &body.contact_id)
        .await?
        .is_none()
    {
        return Err(ApiError::field("contact_id", "no such contact in this org"));
    }
    let conv = store::insert(&mut tx, &t, &body.contact_id, &body.channel).await?;
    let out = ConversationOut::from(conv);
    let data = json!({ "id": out.id, "contact_id": out.contact_id, "channel": out.channel });
    events::emit(&mut tx, &t, fan_out, EventType::ConversationCreated, data).await?;
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
    /// Only this contact's conversations.
    #[param(inline)]
    contact_id: Option<ContactId>,
    /// Only conversations whose contact's external key, name, email or phone contains this
    /// text (case-insensitive).
    #[param(inline)]
    q: Option<crate::http::search::Search>,
}
impl Validate for ListQuery {}

async fn list_conversations(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ConversationOut>>> {
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
        q.contact_id.as_ref(),
        q.q.as_ref(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |c| c.id.as_str()).map(ConversationOut::from),
    ))
}

async fn get_conversation(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<ConversationId>,
) -> ApiResult<axum::Json<ConversationOut>> {
    let c = store::get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(c.into()))
}
