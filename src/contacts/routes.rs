//! `/v1/contacts`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Contact, ContactPatch, NewContact};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::rfc3339;
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Profile, Route};
use crate::http::validate::{check_object, check_phone, nullable};
use crate::http::{ApiError, ApiResult, Checks, Json, Path, Query, Validate};
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
        .summary("List contacts, newest first")
        .tag("contacts")
        .returns_list::<ContactOut>()
        .param(
            "external_key",
            "string",
            "only the contact with this external key",
        ),
        Route::get(
            "/v1/contacts/{id}",
            Profile::api(Scope::Contacts, Permission::Read),
            get_contact,
        )
        .summary("Get a contact")
        .tag("contacts")
        .returns::<ContactOut>(200),
        Route::patch(
            "/v1/contacts/{id}",
            Profile::api(Scope::Contacts, Permission::Write),
            update_contact,
        )
        .summary("Update a contact (absent fields are kept, null clears)")
        .tag("contacts")
        .body::<ContactPatchIn>()
        .returns::<ContactOut>(200),
        Route::delete(
            "/v1/contacts/{id}",
            Profile::api(Scope::Contacts, Permission::Delete).audited(),
            delete_contact,
        )
        .summary("Delete a contact: its personal data is erased, a tombstone remains")
        .tag("contacts")
        .no_content(),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    /// Your identifier for this person; unique per org.
    pub external_key: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Up to 50 keys, 16 KiB as JSON.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

pub fn check_contact_fields(
    c: &mut Checks,
    name: Option<&str>,
    email: Option<&str>,
    phone: Option<&str>,
) {
    if let Some(n) = name {
        c.len("name", n, 1, 200);
        c.printable("name", n);
    }
    if let Some(e) = email {
        c.email("email", e);
    }
    if let Some(p) = phone {
        check_phone(c, "phone", p);
    }
}

impl Validate for ContactIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("external_key", &self.external_key, 1, 255);
        c.printable("external_key", &self.external_key);
        c.check(
            self.external_key.trim() == self.external_key,
            "external_key",
            "must not start or end with whitespace",
        );
        check_contact_fields(
            &mut c,
            self.name.as_deref(),
            self.email.as_deref(),
            self.phone.as_deref(),
        );
        if let Some(a) = &self.attributes {
            check_object(&mut c, "attributes", a, 50, 16 * 1024);
        }
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchIn {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Replaces all attributes.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

impl Validate for ContactPatchIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        check_contact_fields(
            &mut c,
            self.name.clone().flatten().as_deref(),
            self.email.clone().flatten().as_deref(),
            self.phone.clone().flatten().as_deref(),
        );
        if let Some(a) = &self.attributes {
            check_object(&mut c, "attributes", a, 50, 16 * 1024);
        }
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactOut {
    pub id: String,
    pub object: &'static str,
    pub external_key: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// false for sandbox (test-mode) data.
    pub livemode: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Contact> for ContactOut {
    fn from(c: Contact) -> Self {
        ContactOut {
            id: c.id,
            object: "contact",
            external_key: c.external_key,
            name: c.name,
            email: c.email,
            phone: c.phone,
            attributes: c.attributes,
            livemode: c.livemode,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

pub fn contact_event(c: &ContactOut) -> Value {
    json!({ "id": c.id, "external_key": c.external_key, "livemode": c.livemode })
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
    // The insert is deferred with the outbox's rows, so a duplicate `external_key` shows at
    // whichever statement carries it (the commit on Postgres, the subscribers' on SQLite).
    let created = async {
        let mut tx = app.db.begin().await?;
        // Asked for now, the subscribers travel with the insert (see `events::emit_to`).
        let subscribers = crate::events::subscribers(&mut tx, &t).await?;
        let contact = super::insert(&mut tx, &t, &new).await?;
        let out = ContactOut::from(contact);
        let data = contact_event(&out);
        crate::events::emit_to(&mut tx, &t, subscribers, "contact.created", data).await?;
        idem.commit(tx, StatusCode::CREATED, &out).await
    };
    created.await.map_err(|e| match e {
        ApiError::Conflict("conflict", _) => {
            ApiError::conflict("a contact with this external_key already exists")
        }
        e => e,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactQuery {
    limit: Option<String>,
    cursor: Option<String>,
    external_key: Option<String>,
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
    let rows = super::list(
        &mut app.db.clone(),
        &p.tenant(),
        &page,
        q.external_key.as_deref(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |c| c.id.as_str()).map(ContactOut::from),
    ))
}

async fn get_contact(
    p: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ContactOut>> {
    let c = super::get(&mut app.db.clone(), &p.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(c.into()))
}

async fn update_contact(
    p: Principal,
    State(app): State<AppState>,
    idem: Idem,
    Path(id): Path<String>,
    Json(body): Json<ContactPatchIn>,
) -> ApiResult<Response> {
    let patch = ContactPatch {
        name: body.name,
        email: body.email,
        phone: body.phone,
        attributes: body.attributes,
    };
    let mut tx = app.db.begin().await?;
    let c = super::update(&mut tx, &p.tenant(), &id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    idem.commit(tx, StatusCode::OK, &ContactOut::from(c)).await
}

async fn delete_contact(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    // Personal data goes everywhere it was copied (messages, events, dead letters), not just
    // from the contact row.
    if super::get(&mut tx, &t, &id).await?.is_some() {
        crate::gdpr::erase_by_id(&mut tx, &t, &id).await?;
    }
    let c = super::erase(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "contact.deleted").target("contact", &c.id),
    )
    .await?;
    crate::events::emit(
        &mut tx,
        &t,
        "contact.deleted",
        json!({ "id": c.id, "livemode": c.livemode }),
    )
    .await?;
    idem.commit_empty(tx).await
}
