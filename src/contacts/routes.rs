//! `/v1/contacts`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, json};

use super::{
    ContactIn, ContactOut, ContactPatch, ContactPatchIn, NewContact, contact_event, store,
};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::audit::{self, Entry, RequestMeta};
use crate::deliveries::fanout::subscribers;
use crate::events::{self, EventType};
use crate::http::pagination::{Cursor, Limit, Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, Json, Path, Query, Validate};
use crate::ids::ContactId;
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/contacts",
            Profile::api(Scope::Contacts, Permission::Write),
            create_contact,
        )
        .summary("Create a contact (external_key is unique per org)")
        .tag("contacts")
        .body::<ContactIn>()
        .returns::<ContactOut>(201),
        Route::get(
            "/v1/contacts",
            Profile::api(Scope::Contacts, Permission::Read),
            list_contacts,
        )
        .query::<ContactQuery>()
        .summary("List contacts, newest first")
        .tag("contacts")
        .returns_list::<ContactOut>(),
        Route::get(
            "/v1/contacts/{id}",
            Profile::api(Scope::Contacts, Permission::Read),
            get_contact,
        )
        .path::<ContactId>()
        .summary("Get a contact")
        .tag("contacts")
        .returns::<ContactOut>(200),
        Route::patch(
            "/v1/contacts/{id}",
            Profile::api(Scope::Contacts, Permission::Write),
            update_contact,
        )
        .path::<ContactId>()
        .summary("Update a contact (absent fields are kept, null clears)")
        .tag("contacts")
        .body::<ContactPatchIn>()
        .returns::<ContactOut>(200),
        Route::delete(
            "/v1/contacts/{id}",
            Profile::api(Scope::Contacts, Permission::Delete).audited(),
            delete_contact,
        )
        .path::<ContactId>()
        .summary("Delete a contact: its personal data is erased, a tombstone remains")
        .tag("contacts")
        .no_content(),
    ]
}

async fn create_contact(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Json(body): Json<ContactIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let empty = Map::new();
    let new = NewContact {
        external_key: &body.external_key,
        name: body.name.as_deref(),
        email: body.email.as_deref(),
        phone: body.phone.as_deref(),
        attributes: body.attributes.as_ref().unwrap_or(&empty),
    };
    // The subscribers' read needs no snapshot shared with the writes: on Postgres it runs before
    // the transaction begins, and the contact, its event, delivery and job go as one statement.
    let mut tx = app.db.begin_at_first_write().await?;
    // Asked for now, the subscribers travel with the insert on SQLite (see `Tx::prefetch`).
    let fan_out = subscribers(&mut tx, &t).await?;
    // Deferred: a duplicate `external_key` fails whichever statement carries it, as a 409.
    let contact = store::insert(&mut tx, &t, &new).await?;
    let out = ContactOut::from(contact);
    events::emit(
        &mut tx,
        &t,
        fan_out,
        EventType::ContactCreated,
        contact_event(&out),
    )
    .await?;
    idem.commit(tx, StatusCode::CREATED, &out).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
    /// Only the contact with this external key.
    #[param(inline)]
    external_key: Option<super::ExternalKey>,
    /// Only contacts whose external key, name, email or phone contains this text
    /// (case-insensitive).
    #[param(inline)]
    q: Option<crate::http::search::Search>,
}
impl Validate for ContactQuery {}

async fn list_contacts(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<ContactQuery>,
) -> ApiResult<axum::Json<Page<ContactOut>>> {
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
        q.external_key.as_deref(),
        q.q.as_ref(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |c| c.id.as_str()).map(ContactOut::from),
    ))
}

async fn get_contact(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<ContactId>,
) -> ApiResult<axum::Json<ContactOut>> {
    let c = app
        .contact_reads
        .get(p.tenant(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(c.into()))
}

async fn update_contact(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Path(id): Path<ContactId>,
    Json(body): Json<ContactPatchIn>,
) -> ApiResult<Response> {
    let patch = ContactPatch {
        name: body.name,
        email: body.email,
        phone: body.phone,
        attributes: body.attributes,
    };
    let mut tx = app.db.begin().await?;
    let c = store::update(&mut tx, &p.tenant(), &id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    idem.commit(tx, StatusCode::OK, &ContactOut::from(c)).await
}

async fn delete_contact(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<ContactId>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    // Personal data goes everywhere it was copied (messages, events, dead letters), not just
    // from the contact row.
    if store::get(&mut tx, &t, &id).await?.is_some() {
        crate::gdpr::erase_by_id(&mut tx, &t, &id).await?;
    }
    let c = store::erase(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "contact.deleted").target("contact", c.id.as_str()),
    )
    .await?;
    let fan_out = subscribers(&mut tx, &t).await?;
    let data = json!({ "id": c.id, "livemode": c.environment.is_live() });
    events::emit(&mut tx, &t, fan_out, EventType::ContactDeleted, data).await?;
    idem.commit_empty(tx).await
}
