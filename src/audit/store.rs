//! The audit log's SQL: appending to a chain under its head row's lock, listing, verifying.

use super::{Entry, GENESIS, RequestMeta, SYSTEM_CHAIN, Stored};
use crate::clock::now_ms;
use crate::ids::{AuditEntryId, OrgId};
use crate::store::{DbResult, Exec, Q};

macro_rules! columns {
    () => {
        "id, chain, seq, org_id, actor_type, actor_id, action, target_type, target_id, outcome, request_id, ip, user_agent, details, created_at, prev_hash, hash"
    };
}

/// A chain's head: the last entry's sequence number and hash.
#[derive(sqlx::FromRow)]
struct Head {
    seq: i64,
    hash: String,
}

/// Appends `entry` to its org's chain inside the caller's transaction.
pub async fn record(
    ex: &mut impl Exec,
    meta: &RequestMeta,
    entry: Entry<'_>,
) -> DbResult<AuditEntryId> {
    let chain = entry
        .org
        .map_or_else(|| SYSTEM_CHAIN.to_owned(), |o| o.to_string());
    Q::write("INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (chain) DO NOTHING")
        .bind(&chain)
        .bind(GENESIS)
        .execute(ex)
        .await?;
    // The head row is the lock that keeps one org's chain linear across instances.
    let head: Head = Q::write_per_dialect(
        "SELECT seq, hash FROM audit_heads WHERE chain = $1",
        "SELECT seq, hash FROM audit_heads WHERE chain = $1 FOR UPDATE",
    )
    .bind(&chain)
    .fetch_one(ex)
    .await?;
    let mut s = Stored {
        id: AuditEntryId::new(),
        chain: chain.clone(),
        seq: head.seq + 1,
        org_id: entry.org.cloned(),
        actor_type: entry.actor.kind(),
        actor_id: entry.actor.id().map(str::to_owned),
        action: entry.action.to_owned(),
        target_type: entry.target.map(|t| t.0.to_owned()),
        target_id: entry.target.map(|t| t.1.to_owned()),
        outcome: entry.outcome,
        request_id: meta.request_id.clone(),
        ip: meta.ip.map(|i| i.to_string()),
        user_agent: meta.user_agent.clone(),
        details: entry.details.to_string(),
        created_at: now_ms(),
        prev_hash: head.hash,
        hash: String::new(),
    };
    s.hash = s.compute_hash();
    Q::write(concat!(
        "INSERT INTO audit_logs (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&s.id)
    .bind(&s.chain)
    .bind(s.seq)
    .bind(s.org_id.as_ref())
    .bind(s.actor_type)
    .bind(s.actor_id.clone())
    .bind(&s.action)
    .bind(s.target_type.clone())
    .bind(s.target_id.clone())
    .bind(s.outcome)
    .bind(s.request_id.clone())
    .bind(s.ip.clone())
    .bind(s.user_agent.clone())
    .bind(&s.details)
    .bind(s.created_at)
    .bind(&s.prev_hash)
    .bind(&s.hash)
    .execute(ex)
    .await?;
    Q::write("UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain = $1")
        .bind(&chain)
        .bind(s.seq)
        .bind(&s.hash)
        .execute(ex)
        .await?;
    Ok(s.id)
}

/// Records an entry in a transaction of its own (refusals, logins: nothing else to commit).
pub async fn record_alone(db: &crate::store::Db, meta: &RequestMeta, entry: Entry<'_>) {
    let result = async {
        let mut tx = db.begin().await?;
        record(&mut tx, meta, entry).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not write an audit entry");
    }
}

/// Filters of `GET /v1/audit-logs`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub since_ms: Option<i64>,
}

pub async fn list(
    ex: &mut impl Exec,
    org: &OrgId,
    f: &Filter,
    after: Option<String>,
    limit: i64,
) -> DbResult<Vec<Stored>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM audit_logs WHERE org_id = $1
           AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor_id = $3)
           AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(org)
    .bind(f.action.clone())
    .bind(f.actor_id.clone())
    .bind(f.since_ms)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await
}

/// The first problem `verify` found in a chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Break {
    pub chain: String,
    pub seq: i64,
    pub entry_id: Option<String>,
    pub problem: String,
}

/// Verifies one chain (or all); returns the number of entries checked and the first break.
pub async fn verify(ex: &mut impl Exec, chain: Option<&str>) -> DbResult<(u64, Option<Break>)> {
    let chains: Vec<String> = match chain {
        Some(c) => vec![c.to_owned()],
        None => {
            Q::read("SELECT chain FROM audit_heads ORDER BY chain")
                .fetch_column(ex)
                .await?
        }
    };
    let mut checked = 0;
    for c in chains {
        let head: Option<Head> = Q::read("SELECT seq, hash FROM audit_heads WHERE chain = $1")
            .bind(&c)
            .fetch_optional(ex)
            .await?;
        let mut prev_hash = GENESIS.to_owned();
        let mut expected_seq = 1;
        // Ordered by seq: a reordering shows up as a hash that no longer links.
        let mut after = 0i64;
        loop {
            let rows: Vec<Stored> = Q::read(concat!(
                "SELECT ",
                columns!(),
                " FROM audit_logs WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT 1000"
            ))
            .bind(&c)
            .bind(after)
            .fetch_all(ex)
            .await?;
            if rows.is_empty() {
                break;
            }
            for s in &rows {
                checked += 1;
                let brk = |problem: String| Break {
                    chain: c.clone(),
                    seq: s.seq,
                    entry_id: Some(s.id.to_string()),
                    problem,
                };
                if s.seq != expected_seq {
                    return Ok((
                        checked,
                        Some(Break {
                            chain: c.clone(),
                            seq: expected_seq,
                            entry_id: None,
                            problem: format!(
                                "entry {expected_seq} is missing (deleted); the next present is {}",
                                s.seq
                            ),
                        }),
                    ));
                }
                if s.prev_hash != prev_hash {
                    return Ok((
                        checked,
                        Some(brk(format!(
                            "entry {} does not link to entry {} (deleted or reordered)",
                            s.seq,
                            s.seq - 1
                        ))),
                    ));
                }
                if s.compute_hash() != s.hash {
                    return Ok((
                        checked,
                        Some(brk(format!(
                            "entry {} was edited (its hash no longer matches its content)",
                            s.seq
                        ))),
                    ));
                }
                prev_hash = s.hash.clone();
                expected_seq += 1;
                after = s.seq;
            }
        }
        if let Some(Head {
            seq: head_seq,
            hash: head_hash,
        }) = head
            && (head_seq != expected_seq - 1 || (head_seq > 0 && head_hash != prev_hash))
        {
            return Ok((
                checked,
                Some(Break {
                    chain: c.clone(),
                    seq: expected_seq,
                    entry_id: None,
                    problem: format!(
                        "the chain ends at entry {} but its head records entry {head_seq} (entries deleted from the end)",
                        expected_seq - 1
                    ),
                }),
            ));
        }
    }
    Ok((checked, None))
}
