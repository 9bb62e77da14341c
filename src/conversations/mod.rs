//! Conversations: a contact on a channel. Messages and scheduled messages belong to one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::grants::{Permission, Scope};
use crate::access::principal::{Principal, Tenant};
use crate::app::AppState;
use crate::clock::{now_ms, rfc3339};
use crate::http::pagination::{Page, PageParams, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Path, Query, Validate};
use crate::ids::new_id;
use crate::store::{DbResult, Exec, Row, sql};
use crate::traffic::idempotency::Idem;

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: String,
    pub contact_id: String,
    pub channel: String,
    pub livemode: bool,
    pub created_at: i64,
}

impl Conversation {
    fn from_row(r: &Row) -> DbResult<Conversation> {
        Ok(Conversation {
            id: r.get("id")?,
            contact_id: r.get("contact_id")?,
            channel: r.get("channel")?,
            livemode: r.get::<String>("environment")? == "live",
            created_at: r.get("created_at")?,
        })
    }
}

pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<Option<Conversation>> {
    let row = sql("SELECT id, contact_id, channel, environment, created_at FROM conversations WHERE org_id = $1 AND environment = $2 AND id = $3")
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(Conversation::from_row).transpose()
}

/// The tenant's conversation `id`, or 422 `conversation_not_found` (also for another org's:
/// no existence leaks).
pub async fn require(ex: &mut impl Exec, t: &Tenant, id: &str) -> ApiResult<Conversation> {
    get(ex, t, id).await?.ok_or_else(|| ApiError::Rule {
        code: "conversation_not_found",
        field: "conversation_id",
        detail: "no such conversation in this org".into(),
    })
}

pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    page: &PageParams,
    contact: Option<&str>,
) -> DbResult<Vec<Conversation>> {
    let rows = sql(
        "SELECT id, contact_id, channel, environment, created_at FROM conversations
         WHERE org_id = $1 AND environment = $2 AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR contact_id = $4)
         ORDER BY id DESC LIMIT $5",
    )
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(page.after.clone())
    .bind(contact.map(str::to_owned))
    .bind(page.limit + 1)
    .fetch_all(ex)
    .await?;
    rows.iter().map(Conversation::from_row).collect()
}

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
        .summary("List conversations, newest first")
        .tag("conversations")
        .returns_list::<ConversationOut>()
        .param("contact_id", "string", "only this contact's conversations"),
        Route::get(
            "/v1/conversations/{id}",
            Profile::api(Scope::Conversations, Permission::Read),
            get_conversation,
        )
        .summary("Get a conversation")
        .tag("conversations")
        .returns::<ConversationOut>(200),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationIn {
    pub contact_id: String,
    /// The channel's name, e.g. sms, whatsapp, email: 1-32 of [a-z0-9_-].
    pub channel: String,
}

impl Validate for ConversationIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.check(
            crate::ids::is_id(&self.contact_id, "con"),
            "contact_id",
            "must be a contact id (con_…)",
        );
        c.check(
            (1..=32).contains(&self.channel.len())
                && self.channel.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                }),
            "channel",
            "must be 1-32 characters of a-z, 0-9, _ and -",
        );
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationOut {
    pub id: String,
    pub object: &'static str,
    pub contact_id: String,
    pub channel: String,
    pub livemode: bool,
    pub created_at: String,
}

impl From<Conversation> for ConversationOut {
    fn from(c: Conversation) -> Self {
        ConversationOut {
            id: c.id,
            object: "conversation",
            contact_id: c.contact_id,
            channel: c.channel,
            livemode: c.livemode,
            created_at: rfc3339(c.created_at),
        }
    }
}

async fn create_conversation(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<ConversationIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    if crate::contacts::get(&mut tx, &t, &body.contact_id)
        .await?
        .is_none()
    {
        return Err(ApiError::field("contact_id", "no such contact in this org"));
    }
    let id = new_id("cnv");
    let now = now_ms();
    sql("INSERT INTO conversations (id, org_id, environment, contact_id, channel, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(&id)
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(&body.contact_id)
        .bind(&body.channel)
        .bind(now)
        .execute(&mut tx)
        .await?;
    let conv = get(&mut tx, &t, &id).await?.ok_or(ApiError::NotFound)?;
    let out = ConversationOut::from(conv);
    crate::events::emit(
        &mut tx,
        &t,
        "conversation.created",
        json!({ "id": out.id, "contact_id": out.contact_id, "channel": out.channel }),
    )
    .await?;
    idem.commit(tx, StatusCode::CREATED, &out).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    contact_id: Option<String>,
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
    let rows = list(
        &mut app.db.clone(),
        &p.tenant(),
        &page,
        q.contact_id.as_deref(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |c| c.id.as_str()).map(ConversationOut::from),
    ))
}

async fn get_conversation(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ConversationOut>> {
    let c = get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(c.into()))
}
