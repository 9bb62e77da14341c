//! Conversations' SQL.

use super::Conversation;
use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::http::search::Search;
use crate::ids::{ContactId, ConversationId};
use crate::store::{DbResult, Exec, Q};

pub async fn get(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &ConversationId,
) -> DbResult<Option<Conversation>> {
    Q::read("SELECT id, contact_id, channel, environment, created_at FROM conversations WHERE org_id = $1 AND environment = $2 AND id = $3")
        .bind(t.org())
        .bind(t.env())
        .bind(id)
        .fetch_optional(ex)
        .await
}

/// A page of the tenant's conversations, newest first (`limit + 1` rows at most).
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    after: Option<&str>,
    limit: i64,
    contact: Option<&ContactId>,
    search: Option<&Search>,
) -> DbResult<Vec<Conversation>> {
    Q::read(concat!(
        "SELECT id, contact_id, channel, environment, created_at FROM conversations
         WHERE org_id = $1 AND environment = $2 AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR contact_id = $4)
           AND ($6 IS NULL OR contact_id IN (SELECT id FROM contacts
                 WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL AND ",
        crate::contacts::store::matches_search_6!(),
        ")) ORDER BY id DESC LIMIT $5"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(after)
    .bind(contact)
    .bind(limit + 1)
    .bind(search.map(Search::pattern))
    .fetch_all(ex)
    .await
}

pub async fn insert(
    ex: &mut impl Exec,
    t: &Tenant,
    contact: &ContactId,
    channel: &str,
) -> DbResult<Conversation> {
    let now = now_ms();
    let c = Conversation {
        id: ConversationId::new(),
        contact_id: contact.clone(),
        channel: channel.to_owned(),
        environment: t.env(),
        created_at: now,
    };
    Q::write("INSERT INTO conversations (id, org_id, environment, contact_id, channel, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(&c.id)
        .bind(t.org())
        .bind(t.env())
        .bind(contact)
        .bind(channel)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(c)
}

/// The ids of a contact's conversations (GDPR export and erasure).
pub async fn of_contact(
    ex: &mut impl Exec,
    t: &Tenant,
    contact: &ContactId,
) -> DbResult<Vec<ConversationId>> {
    Q::read(
        "SELECT id FROM conversations WHERE org_id = $1 AND environment = $2 AND contact_id = $3",
    )
    .bind(t.org())
    .bind(t.env())
    .bind(contact)
    .fetch_column(ex)
    .await
}

/// Every conversation of the tenant, oldest first (exports).
pub async fn all(ex: &mut impl Exec, t: &Tenant) -> DbResult<Vec<Conversation>> {
    Q::read("SELECT id, contact_id, channel, environment, created_at FROM conversations WHERE org_id = $1 AND environment = $2 ORDER BY id")
        .bind(t.org())
        .bind(t.env())
        .fetch_all(ex)
        .await
}
