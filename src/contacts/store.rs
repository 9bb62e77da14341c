//! Contacts' SQL. Every query is scoped to the tenant (org and environment).

use serde_json::Value;

use super::{Contact, ContactPatch, NewContact};
use crate::access::principal::Tenant;
use crate::access::tokens::sha256_hex;
use crate::clock::now_ms;
use crate::http::search::Search;
use crate::ids::ContactId;
use crate::store::{DbResult, Exec, JsonText, Q, Table, Tx};

macro_rules! columns {
    () => {
        "id, external_key, name, email, phone, attributes, environment, created_at, updated_at, erased_at"
    };
}
pub(crate) use columns;

/// A contact's text search (`?q=`, bound as `$6`): its external key, name, email or phone
/// contains the text. Conversations are searched by their contact with the same words.
macro_rules! matches_search_6 {
    () => {
        "(lower(external_key) LIKE lower($6) ESCAPE '\\' OR lower(name) LIKE lower($6) ESCAPE '\\'
          OR lower(email) LIKE lower($6) ESCAPE '\\' OR lower(phone) LIKE lower($6) ESCAPE '\\')"
    };
}
pub(crate) use matches_search_6;

/// Inserts a contact as a deferred, mergeable write ([`Tx::defer_merged`]): a duplicate
/// `external_key` fails the transaction's next statement or its commit with a unique
/// violation of [`crate::store::Constraint::ContactExternalKey`], naming this write.
pub async fn insert(tx: &mut Tx, t: &Tenant, c: &NewContact<'_>) -> DbResult<Contact> {
    let now = now_ms();
    let contact = Contact {
        id: ContactId::new(),
        external_key: Some(c.external_key.to_owned()),
        name: c.name.map(str::to_owned),
        email: c.email.map(str::to_owned),
        phone: c.phone.map(str::to_owned),
        attributes: JsonText(c.attributes.clone()),
        environment: t.env(),
        created_at: now,
        updated_at: now,
        erased_at: None,
    };
    let q = Q::write(
        "INSERT INTO contacts (id, org_id, environment, external_key, external_key_hash, name, email, phone, attributes, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&contact.id)
    .bind(t.org())
    .bind(t.env())
    .bind(c.external_key)
    .bind(sha256_hex(c.external_key))
    .bind(c.name)
    .bind(c.email)
    .bind(c.phone)
    .bind(&Value::Object(c.attributes.clone()))
    .bind(now);
    tx.defer_merged(Table::CONTACTS, q).await?;
    Ok(contact)
}

/// A live (not erased) contact of the tenant.
pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &ContactId) -> DbResult<Option<Contact>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM contacts WHERE org_id = $1 AND environment = $2 AND id = $3 AND erased_at IS NULL"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .fetch_optional(ex)
    .await
}

pub async fn by_external_key(
    ex: &mut impl Exec,
    t: &Tenant,
    key: &str,
) -> DbResult<Option<Contact>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM contacts WHERE org_id = $1 AND environment = $2 AND external_key = $3 AND erased_at IS NULL"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(key)
    .fetch_optional(ex)
    .await
}

/// A page of the tenant's contacts, newest first: `limit + 1` rows at most (the extra one says
/// there is more), below the cursor `after`.
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    after: Option<&str>,
    limit: i64,
    external_key: Option<&str>,
    search: Option<&Search>,
) -> DbResult<Vec<Contact>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM contacts WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL
           AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR external_key = $4)
           AND ($6 IS NULL OR ",
        matches_search_6!(),
        ") ORDER BY id DESC LIMIT $5"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(after)
    .bind(external_key)
    .bind(limit + 1)
    .bind(search.map(Search::pattern))
    .fetch_all(ex)
    .await
}

pub async fn update(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &ContactId,
    p: &ContactPatch,
) -> DbResult<Option<Contact>> {
    Q::write(concat!(
        "UPDATE contacts SET
            name = CASE WHEN $4 THEN $5 ELSE name END,
            email = CASE WHEN $6 THEN $7 ELSE email END,
            phone = CASE WHEN $8 THEN $9 ELSE phone END,
            attributes = COALESCE($10, attributes),
            updated_at = $11
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND erased_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(t.org())
    .bind(t.env())
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
    .await
}

/// Erases a contact's personal data, keeping a tombstone (id, a hash of the external key,
/// times) so that audit entries and message rows still resolve.
pub async fn erase(ex: &mut impl Exec, t: &Tenant, id: &ContactId) -> DbResult<Option<Contact>> {
    Q::write(concat!(
        "UPDATE contacts SET external_key = NULL, name = NULL, email = NULL, phone = NULL, attributes = '{}', erased_at = $4, updated_at = $4
         WHERE org_id = $1 AND environment = $2 AND id = $3 AND erased_at IS NULL RETURNING ",
        columns!()
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .bind(now_ms())
    .fetch_optional(ex)
    .await
}

/// How many live contacts the tenant has (exports, tests).
pub async fn count(ex: &mut impl Exec, t: &Tenant) -> DbResult<i64> {
    Q::read("SELECT COUNT(*) AS n FROM contacts WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL")
        .bind(t.org())
        .bind(t.env())
        .fetch_scalar(ex)
        .await
}

/// Every live contact of the tenant, oldest first (exports).
pub async fn all(ex: &mut impl Exec, t: &Tenant) -> DbResult<Vec<Contact>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM contacts WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL ORDER BY id"
    ))
    .bind(t.org())
    .bind(t.env())
    .fetch_all(ex)
    .await
}
