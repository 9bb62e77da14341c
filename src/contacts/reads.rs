//! `GET /v1/contacts/{id}`'s read, batched: the most common API call reads one row, and under
//! concurrency most of its cost is the statement's round trip (on SQLite, two thread hand-offs
//! to the connection's thread; on Postgres, a socket round trip and the server's per-statement
//! work), not the row. So concurrent reads queue on a [`Batcher`], which serves whatever has
//! queued with one statement per tenant (docs/BENCHMARKS.md, "Single-resource read"). A lone
//! read is served at once; nothing waits on purpose.
//!
//! Each statement is scoped to its tenant like [`super::store::get`], and starts after every
//! read in it was asked for, so a read still sees every write acknowledged before it was sent.

use std::collections::HashMap;

use super::Contact;
use super::store::columns;
use crate::access::principal::Tenant;
use crate::ids::ContactId;
use crate::store::batch::{Batcher, Gather};
use crate::store::{Db, DbResult, Dialect, Q};

/// The most reads one batch serves.
const MAX_BATCH: usize = 64;

/// The batching task for single-contact reads; cheap to clone.
#[derive(Clone)]
pub struct ContactReads(Batcher<(Tenant, ContactId), Option<Contact>>);

impl ContactReads {
    /// Starts the task (needs a Tokio runtime).
    pub fn start(db: &Db) -> ContactReads {
        // SQLite runs the statement on this machine's CPU: the bigger the batch, the less
        // each read costs. A Postgres batch is a round trip that gathering would delay.
        let gather = match db.dialect() {
            Dialect::Sqlite => Gather::WHILE_ARRIVING,
            Dialect::Postgres => Gather::BURST,
        };
        let db = db.clone();
        ContactReads(Batcher::start(MAX_BATCH, gather, move |reads| {
            let db = db.clone();
            async move { serve(&db, reads).await }
        }))
    }

    /// A live (not erased) contact of the tenant, read in a batch with whatever other reads are
    /// waiting.
    pub async fn get(&self, t: Tenant, id: ContactId) -> DbResult<Option<Contact>> {
        self.0.call((t, id)).await
    }
}

async fn serve(db: &Db, reads: Vec<(Tenant, ContactId)>) -> Vec<DbResult<Option<Contact>>> {
    // Tenants in order of first appearance, each with its ids; and each read's tenant.
    let mut tenants: Vec<(&Tenant, Vec<&ContactId>)> = Vec::new();
    let mut tenant_of = Vec::with_capacity(reads.len());
    for (t, id) in &reads {
        let i = match tenants.iter().position(|(seen, _)| *seen == t) {
            Some(i) => i,
            None => {
                tenants.push((t, Vec::new()));
                tenants.len() - 1
            }
        };
        tenants[i].1.push(id);
        tenant_of.push(i);
    }
    // Per tenant, id → the contact and how many reads want it (the same contact may be asked
    // for more than once in a batch: all but the last get a copy).
    let mut found: Vec<HashMap<ContactId, (Contact, usize)>> = Vec::with_capacity(tenants.len());
    for (t, ids) in &tenants {
        match get_many(db, t, ids).await {
            Ok(rows) => found.push(rows.into_iter().map(|c| (c.id.clone(), (c, 0))).collect()),
            Err(_) => return one_by_one(db, &reads).await,
        }
    }
    for ((_, id), &i) in reads.iter().zip(&tenant_of) {
        if let Some((_, wanted)) = found[i].get_mut(id) {
            *wanted += 1;
        }
    }
    reads
        .iter()
        .zip(tenant_of)
        .map(|((_, id), i)| {
            let mine = &mut found[i];
            Ok(match mine.get_mut(id) {
                None => None,
                Some((c, wanted)) if *wanted > 1 => {
                    *wanted -= 1;
                    Some(c.clone())
                }
                Some(_) => mine.remove(id).map(|(c, _)| c),
            })
        })
        .collect()
}

/// Each read again on its own, so each gets its own answer or error.
async fn one_by_one(db: &Db, reads: &[(Tenant, ContactId)]) -> Vec<DbResult<Option<Contact>>> {
    let mut out = Vec::with_capacity(reads.len());
    for (t, id) in reads {
        out.push(super::store::get(&mut db.clone(), t, id).await);
    }
    out
}

/// The tenant's live contacts among `ids`, in no particular order.
async fn get_many(db: &Db, t: &Tenant, ids: &[&ContactId]) -> DbResult<Vec<Contact>> {
    Q::read_per_dialect(
        concat!(
            "SELECT ",
            columns!(),
            " FROM contacts WHERE org_id = $1 AND environment = $2
               AND id IN (SELECT value FROM json_each($3)) AND erased_at IS NULL"
        ),
        concat!(
            "SELECT ",
            columns!(),
            " FROM contacts WHERE org_id = $1 AND environment = $2
               AND id = ANY($3) AND erased_at IS NULL"
        ),
    )
    .bind(t.org())
    .bind(t.env())
    .bind(ids.iter().map(ToString::to_string).collect::<Vec<_>>())
    .fetch_all(&mut db.clone())
    .await
}
