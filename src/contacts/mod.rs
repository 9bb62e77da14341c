//! Contacts: the people an org messages, unique per org and environment by `external_key`.

pub mod routes;

use serde_json::{Map, Value};

use crate::access::principal::Tenant;
use crate::access::tokens::sha256_hex;
use crate::clock::now_ms;
use crate::http::pagination::PageParams;
use crate::ids::new_id;
use crate::store::{DbResult, Exec, Row, Tx, sql, sql_built};

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub external_key: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub attributes: Value,
    pub livemode: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub erased_at: Option<i64>,
}

const COLUMNS: &str = "id, external_key, name, email, phone, attributes, environment, created_at, updated_at, erased_at";

impl Contact {
    fn from_row(r: &Row) -> DbResult<Contact> {
        Ok(Contact {
            id: r.get("id")?,
            external_key: r.get("external_key")?,
            name: r.get("name")?,
            email: r.get("email")?,
            phone: r.get("phone")?,
            attributes: r.json("attributes")?,
            livemode: r.get::<String>("environment")? == "live",
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            erased_at: r.get("erased_at")?,
        })
    }
}

/// The fields of a new contact, already validated.
pub struct NewContact<'a> {
    pub external_key: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub attributes: &'a Map<String, Value>,
}

/// Inserts a contact as a deferred write ([`Tx::defer`]): a duplicate `external_key` fails the
/// transaction's next statement or its commit with a unique violation.
pub async fn insert(tx: &mut Tx, t: &Tenant, c: &NewContact<'_>) -> DbResult<Contact> {
    let now = now_ms();
    let contact = Contact {
        id: new_id("con"),
        external_key: Some(c.external_key.to_owned()),
        name: c.name.map(str::to_owned),
        email: c.email.map(str::to_owned),
        phone: c.phone.map(str::to_owned),
        attributes: Value::Object(c.attributes.clone()),
        livemode: t.livemode(),
        created_at: now,
        updated_at: now,
        erased_at: None,
    };
    tx.defer(
        sql("INSERT INTO contacts (id, org_id, environment, external_key, external_key_hash, name, email, phone, attributes, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)")
        .bind(&contact.id)
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(c.external_key)
        .bind(sha256_hex(c.external_key))
        .bind(contact.name.clone())
        .bind(contact.email.clone())
        .bind(contact.phone.clone())
        .bind(contact.attributes.to_string())
        .bind(now),
    )
    .await?;
    Ok(contact)
}

/// A live (not erased) contact of the tenant.
pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<Option<Contact>> {
    let row = sql_built(format!(
        "SELECT {COLUMNS} FROM contacts WHERE org_id = $1 AND environment = $2 AND id = $3 AND erased_at IS NULL"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Contact::from_row).transpose()
}

pub async fn by_external_key(
    ex: &mut impl Exec,
    t: &Tenant,
    key: &str,
) -> DbResult<Option<Contact>> {
    let row = sql_built(format!(
        "SELECT {COLUMNS} FROM contacts WHERE org_id = $1 AND environment = $2 AND external_key = $3 AND erased_at IS NULL"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(key)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Contact::from_row).transpose()
}

pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    page: &PageParams,
    external_key: Option<&str>,
) -> DbResult<Vec<Contact>> {
    let rows = sql_built(format!(
        "SELECT {COLUMNS} FROM contacts WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL
           AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR external_key = $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(page.after.clone())
    .bind(external_key.map(str::to_owned))
    .bind(page.limit + 1)
    .fetch_all(ex)
    .await?;
    rows.iter().map(Contact::from_row).collect()
}

/// A partial update: `None` keeps a field, `Some(None)` clears it.
#[derive(Default)]
pub struct ContactPatch {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub attributes: Option<Map<String, Value>>,
}

pub async fn update(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &str,
    p: &ContactPatch,
) -> DbResult<Option<Contact>> {
    let row = sql_built(format!(
        "UPDATE contacts SET
            name = CASE WHEN $4 THEN $5 ELSE name END,
            email = CASE WHEN $6 THEN $7 ELSE email END,
            phone = CASE WHEN $8 THEN $9 ELSE phone END,
            attributes = COALESCE($10, attributes),
            updated_at = $11
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND erased_at IS NULL
         RETURNING {COLUMNS}"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .bind(p.name.is_some())
    .bind(p.name.clone().flatten())
    .bind(p.email.is_some())
    .bind(p.email.clone().flatten())
    .bind(p.phone.is_some())
    .bind(p.phone.clone().flatten())
    .bind(
        p.attributes
            .as_ref()
            .map(|a| Value::Object(a.clone()).to_string()),
    )
    .bind(now_ms())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Contact::from_row).transpose()
}

/// Erases a contact's personal data, keeping a tombstone (id, a hash of the external key,
/// times) so that audit entries and message rows still resolve.
pub async fn erase(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<Option<Contact>> {
    let row = sql_built(format!(
        "UPDATE contacts SET external_key = NULL, name = NULL, email = NULL, phone = NULL, attributes = '{{}}', erased_at = $4, updated_at = $4
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND erased_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .bind(now_ms())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Contact::from_row).transpose()
}

/// Counts (for exports and tests).
pub async fn count(ex: &mut impl Exec, t: &Tenant) -> DbResult<i64> {
    sql("SELECT COUNT(*) AS n FROM contacts WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL")
        .bind(t.org())
        .bind(t.env().as_str())
        .fetch_one(ex)
        .await?
        .get("n")
}
