//! Contacts: the people an org messages, unique per org and environment by `external_key`.

pub mod reads;
pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::access::principal::Environment;
use crate::clock::rfc3339;
use crate::http::validate::{check_object, check_phone, nullable};
use crate::http::{ApiError, Checks, Validate};
use crate::ids::ContactId;
use crate::store::JsonText;

/// Your identifier for a contact: 1-255 characters on one line, unique per org.
pub type ExternalKey = crate::http::text::Line<1, 255>;

/// A contact as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Contact {
    pub id: ContactId,
    pub external_key: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub attributes: JsonText<Map<String, Value>>,
    pub environment: Environment,
    pub created_at: i64,
    pub updated_at: i64,
    pub erased_at: Option<i64>,
}

/// The fields of a new contact, already validated.
pub struct NewContact<'a> {
    pub external_key: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub attributes: &'a Map<String, Value>,
}

/// A partial update: `None` keeps a field, `Some(None)` clears it.
#[derive(Default)]
pub struct ContactPatch {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    /// Your identifier for this person; unique per org.
    #[schema(schema_with = crate::http::text::trimmed::<1, 255>)]
    pub external_key: String,
    #[schema(schema_with = crate::http::text::line_or_null::<1, 200>)]
    pub name: Option<String>,
    #[schema(schema_with = crate::http::validate::email_or_null)]
    pub email: Option<String>,
    /// Digits, spaces, dashes and parentheses, e.g. +14155550123.
    #[schema(schema_with = crate::http::validate::phone_or_null)]
    pub phone: Option<String>,
    /// Up to 50 keys of 1-100 characters, 16 KiB as JSON.
    #[schema(schema_with = attributes_schema)]
    pub attributes: Option<Map<String, Value>>,
}

/// The limits of `attributes`: at most 50 keys of 1-100 characters (16 KiB as JSON, which a
/// schema cannot say; the handler checks it).
pub const ATTRIBUTES_MAX_KEYS: usize = 50;

fn attributes_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::http::validate::object_schema(
        ATTRIBUTES_MAX_KEYS,
        "Up to 50 keys of 1-100 characters, 16 KiB as JSON.",
    )
}

/// The rules of a contact's personal fields, on create and on update.
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
        // Also in the schema; checked here too so that every field's error is reported at once.
        if let Err(m) = ExternalKey::parse(&self.external_key) {
            c.fail("external_key", m);
        }
        check_contact_fields(
            &mut c,
            self.name.as_deref(),
            self.email.as_deref(),
            self.phone.as_deref(),
        );
        if let Some(a) = &self.attributes {
            check_object(&mut c, "attributes", a, ATTRIBUTES_MAX_KEYS, 16 * 1024);
        }
        c.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchIn {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::http::text::line_or_null::<1, 200>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::http::validate::email_or_null)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::http::validate::phone_or_null)]
    pub phone: Option<Option<String>>,
    /// Replaces all attributes.
    #[schema(schema_with = attributes_schema)]
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
            check_object(&mut c, "attributes", a, ATTRIBUTES_MAX_KEYS, 16 * 1024);
        }
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactOut {
    pub id: ContactId,
    pub object: &'static str,
    pub external_key: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// false for sandbox (test-mode) data.
    pub livemode: bool,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
    #[schema(value_type = crate::clock::Rfc3339)]
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
            attributes: c.attributes.into_inner(),
            livemode: c.environment.is_live(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// The data of a `contact.created` event.
pub fn contact_event(c: &ContactOut) -> Value {
    json!({ "id": c.id, "external_key": c.external_key, "livemode": c.livemode })
}
