//! The audit log: who did what to which object, with what outcome, from where, in which
//! request. Entries are hash-chained per org: each entry's hash covers its fields and the
//! previous entry's hash, so an edit, a deletion or a reordering breaks the chain at that
//! entry (`rampart audit verify`). Entries are written in the transaction of the change they
//! describe; the chain head row serializes writers of one org.

pub mod routes;

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::access::client_ip::ClientIp;
use crate::access::principal::Actor;
use crate::clock::now_ms;
use crate::http::request_id;
use crate::ids::{OrgId, new_id};
use crate::store::{DbResult, Exec, Q, sql};

/// The chain of events that belong to no org (e.g. a failed login for an unknown email).
pub const SYSTEM_CHAIN: &str = "_system";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a request came from, for the audit entries it causes.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub fn from_parts(parts: &Parts) -> RequestMeta {
        RequestMeta {
            request_id: request_id::current().or_else(|| {
                parts
                    .extensions
                    .get::<request_id::RequestId>()
                    .map(|r| r.0.clone())
            }),
            ip: parts.extensions.get::<ClientIp>().map(|c| c.0),
            user_agent: parts
                .headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        }
    }

    /// For work not caused by a request (jobs, CLI).
    pub fn system() -> RequestMeta {
        RequestMeta {
            request_id: request_id::current(),
            ..RequestMeta::default()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestMeta::from_parts(parts))
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub org: Option<&'a OrgId>,
    pub actor: Actor,
    pub action: &'a str,
    pub target: Option<(&'a str, &'a str)>,
    pub outcome: Outcome,
    pub details: Value,
}

impl<'a> Entry<'a> {
    pub fn new(org: Option<&'a OrgId>, actor: Actor, action: &'a str) -> Entry<'a> {
        Entry {
            org,
            actor,
            action,
            target: None,
            outcome: Outcome::Success,
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &'a str, id: &'a str) -> Self {
        self.target = Some((kind, id));
        self
    }

    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }

    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
}

/// The stored form, which the hash covers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stored {
    pub id: String,
    pub chain: String,
    pub seq: i64,
    pub org_id: Option<String>,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub created_at: i64,
    pub prev_hash: String,
    pub hash: String,
}

impl Stored {
    /// The hash of this entry: SHA-256 over every field, each length-prefixed so that no two
    /// different entries serialize alike, followed by the previous hash.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |s: Option<&str>| match s {
            Some(s) => {
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
            None => h.update(u64::MAX.to_be_bytes()),
        };
        field(Some("rampart-audit-v1"));
        field(Some(&self.id));
        field(Some(&self.chain));
        field(Some(&self.seq.to_string()));
        field(self.org_id.as_deref());
        field(Some(&self.actor_type));
        field(self.actor_id.as_deref());
        field(Some(&self.action));
        field(self.target_type.as_deref());
        field(self.target_id.as_deref());
        field(Some(&self.outcome));
        field(self.request_id.as_deref());
        field(self.ip.as_deref());
        field(self.user_agent.as_deref());
        field(Some(&self.details));
        field(Some(&self.created_at.to_string()));
        field(Some(&self.prev_hash));
        crate::ids::hex(h.finalize())
    }

    fn from_row(r: &crate::store::Row) -> DbResult<Stored> {
        Ok(Stored {
            id: r.get("id")?,
            chain: r.get("chain")?,
            seq: r.get("seq")?,
            org_id: r.get("org_id")?,
            actor_type: r.get("actor_type")?,
            actor_id: r.get("actor_id")?,
            action: r.get("action")?,
            target_type: r.get("target_type")?,
            target_id: r.get("target_id")?,
            outcome: r.get("outcome")?,
            request_id: r.get("request_id")?,
            ip: r.get("ip")?,
            user_agent: r.get("user_agent")?,
            details: r.get("details")?,
            created_at: r.get("created_at")?,
            prev_hash: r.get("prev_hash")?,
            hash: r.get("hash")?,
        })
    }
}

const COLUMNS: &str = "id, chain, seq, org_id, actor_type, actor_id, action, target_type, target_id, outcome, request_id, ip, user_agent, details, created_at, prev_hash, hash";

/// Appends `entry` to its org's chain inside the caller's transaction.
pub async fn record(ex: &mut impl Exec, meta: &RequestMeta, entry: Entry<'_>) -> DbResult<String> {
    let chain = entry
        .org
        .map_or_else(|| SYSTEM_CHAIN.to_owned(), |o| o.to_string());
    sql("INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (chain) DO NOTHING")
        .bind(&chain)
        .bind(GENESIS)
        .execute(ex)
        .await?;
    // The head row is the lock that keeps one org's chain linear across instances.
    let head = Q::dialect(
        "SELECT seq, hash FROM audit_heads WHERE chain = $1",
        "SELECT seq, hash FROM audit_heads WHERE chain = $1 FOR UPDATE",
    )
    .bind(&chain)
    .fetch_one(ex)
    .await?;
    let prev_seq: i64 = head.get("seq")?;
    let prev_hash: String = head.get("hash")?;
    let mut s = Stored {
        id: new_id("aud"),
        chain: chain.clone(),
        seq: prev_seq + 1,
        org_id: entry.org.map(|o| o.to_string()),
        actor_type: entry.actor.kind().to_owned(),
        actor_id: entry.actor.id().map(str::to_owned),
        action: entry.action.to_owned(),
        target_type: entry.target.map(|t| t.0.to_owned()),
        target_id: entry.target.map(|t| t.1.to_owned()),
        outcome: entry.outcome.as_str().to_owned(),
        request_id: meta.request_id.clone(),
        ip: meta.ip.map(|i| i.to_string()),
        user_agent: meta.user_agent.clone(),
        details: entry.details.to_string(),
        created_at: now_ms(),
        prev_hash,
        hash: String::new(),
    };
    s.hash = s.compute_hash();
    crate::store::sql_built(format!(
        "INSERT INTO audit_logs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&s.id)
    .bind(&s.chain)
    .bind(s.seq)
    .bind(s.org_id.clone())
    .bind(&s.actor_type)
    .bind(s.actor_id.clone())
    .bind(&s.action)
    .bind(s.target_type.clone())
    .bind(s.target_id.clone())
    .bind(&s.outcome)
    .bind(s.request_id.clone())
    .bind(s.ip.clone())
    .bind(s.user_agent.clone())
    .bind(&s.details)
    .bind(s.created_at)
    .bind(&s.prev_hash)
    .bind(&s.hash)
    .execute(ex)
    .await?;
    sql("UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain = $1")
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
    let rows = crate::store::sql_built(format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE org_id = $1
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
    .await?;
    rows.iter().map(Stored::from_row).collect()
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
        None => sql("SELECT chain FROM audit_heads ORDER BY chain")
            .fetch_all(ex)
            .await?
            .iter()
            .map(|r| r.get("chain"))
            .collect::<DbResult<_>>()?,
    };
    let mut checked = 0;
    for c in chains {
        let head = sql("SELECT seq, hash FROM audit_heads WHERE chain = $1")
            .bind(&c)
            .fetch_optional(ex)
            .await?;
        let mut prev_hash = GENESIS.to_owned();
        let mut expected_seq = 1;
        // Ordered by seq: a reordering shows up as a hash that no longer links.
        let mut after = 0i64;
        loop {
            let rows = crate::store::sql_built(format!(
                "SELECT {COLUMNS} FROM audit_logs WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT 1000"
            ))
            .bind(&c)
            .bind(after)
            .fetch_all(ex)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let s = Stored::from_row(r)?;
                checked += 1;
                let brk = |problem: String| Break {
                    chain: c.clone(),
                    seq: s.seq,
                    entry_id: Some(s.id.clone()),
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
        if let Some(h) = head {
            let head_seq: i64 = h.get("seq")?;
            let head_hash: String = h.get("hash")?;
            if head_seq != expected_seq - 1 || (head_seq > 0 && head_hash != prev_hash) {
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
    }
    Ok((checked, None))
}
