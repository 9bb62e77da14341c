//! Deliveries' SQL: loading what an attempt needs, logging attempts, settling deliveries.

use std::collections::HashMap;

use serde_json::Value;

use super::hourly::{self, Counted};
use super::{Attempt, DeliveryStatus, SANDBOX};
use crate::access::principal::{Environment, Tenant};
use crate::billing::{SubStatus, Subscription, Tier};
use crate::clock::now_ms;
use crate::events::{Event, EventType};
use crate::ids::{AttemptId, DeadLetterId, DeliveryId, EndpointId, EventId, OrgId};
use crate::store::{Arg, Db, DbResult, Exec, JsonText, Q, Table, Tx};
use crate::webhooks::Endpoint;
use crate::webhooks::store::endpoint_columns_of_w;

/// The delivery an attempt is for, as loaded.
pub struct Loaded {
    pub id: DeliveryId,
    pub org: OrgId,
    pub environment: Environment,
    pub event: Event,
    pub status: DeliveryStatus,
    pub dead_letter_id: Option<DeadLetterId>,
}

/// What one attempt needs, read in one query: the delivery and its event, its endpoint (even
/// if deleted since) and the org's subscription (for the billing rule).
pub struct Work {
    pub delivery: Loaded,
    pub endpoint: Endpoint,
    pub endpoint_deleted: bool,
    pub subscription: Option<Subscription>,
}

#[derive(sqlx::FromRow)]
struct WorkRow {
    d_id: DeliveryId,
    d_org_id: OrgId,
    d_environment: Environment,
    d_event_id: EventId,
    d_event_type: EventType,
    d_status: DeliveryStatus,
    d_dead_letter_id: Option<DeadLetterId>,
    e_payload: JsonText<Value>,
    #[sqlx(flatten)]
    endpoint: Endpoint,
    w_deleted_at: Option<i64>,
    s_status: Option<SubStatus>,
    s_tier: Option<Tier>,
}

/// Loads the work of each delivery in `ids` in one query; `None` for an unknown id. Answers in
/// the order of `ids`.
pub async fn load_many(db: &Db, ids: &[DeliveryId]) -> DbResult<Vec<Option<Work>>> {
    let rows: Vec<WorkRow> = Q::read_per_dialect(
        concat!(
            "SELECT d.id AS d_id, d.org_id AS d_org_id, d.environment AS d_environment,
                    d.event_id AS d_event_id, d.event_type AS d_event_type, d.status AS d_status,
                    d.dead_letter_id AS d_dead_letter_id, e.payload AS e_payload, ",
            endpoint_columns_of_w!(),
            ", w.deleted_at AS w_deleted_at, s.status AS s_status, s.tier AS s_tier
             FROM deliveries d
             JOIN events e ON e.id = d.event_id
             JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.org_id = d.org_id
             LEFT JOIN subscriptions s ON s.org_id = d.org_id
             WHERE d.id IN (SELECT value FROM json_each($1))"
        ),
        concat!(
            "SELECT d.id AS d_id, d.org_id AS d_org_id, d.environment AS d_environment,
                    d.event_id AS d_event_id, d.event_type AS d_event_type, d.status AS d_status,
                    d.dead_letter_id AS d_dead_letter_id, e.payload AS e_payload, ",
            endpoint_columns_of_w!(),
            ", w.deleted_at AS w_deleted_at, s.status AS s_status, s.tier AS s_tier
             FROM deliveries d
             JOIN events e ON e.id = d.event_id
             JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.org_id = d.org_id
             LEFT JOIN subscriptions s ON s.org_id = d.org_id
             WHERE d.id = ANY($1)"
        ),
    )
    .planned_per_call()
    .bind(ids.iter().map(ToString::to_string).collect::<Vec<_>>())
    .fetch_all(&mut db.clone())
    .await?;
    let mut found: HashMap<DeliveryId, Work> = HashMap::with_capacity(rows.len());
    for r in rows {
        let work = Work {
            delivery: Loaded {
                id: r.d_id.clone(),
                org: r.d_org_id,
                environment: r.d_environment,
                event: Event {
                    id: r.d_event_id,
                    event_type: r.d_event_type,
                    payload: r.e_payload.into_inner(),
                },
                status: r.d_status,
                dead_letter_id: r.d_dead_letter_id,
            },
            endpoint: r.endpoint,
            endpoint_deleted: r.w_deleted_at.is_some(),
            subscription: r
                .s_status
                .zip(r.s_tier)
                .map(|(status, tier)| Subscription { status, tier }),
        };
        found.insert(r.d_id, work);
    }
    Ok(ids.iter().map(|id| found.remove(id)).collect())
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_id: EventId,
    event_type: EventType,
    payload: JsonText<Value>,
}

/// The event a delivery of the tenant's `endpoint` carries (`None`: no such delivery there).
pub async fn event_of(
    ex: &mut impl Exec,
    t: &Tenant,
    endpoint: &EndpointId,
    delivery: &DeliveryId,
) -> DbResult<Option<Event>> {
    let row: Option<EventRow> = Q::read(
        "SELECT d.event_id, d.event_type, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.org_id = $1 AND d.environment = $2 AND d.endpoint_id = $3 AND d.id = $4",
    )
    .bind(t.org())
    .bind(t.env())
    .bind(endpoint)
    .bind(delivery)
    .fetch_optional(ex)
    .await?;
    Ok(row.map(|r| Event {
        id: r.event_id,
        event_type: r.event_type,
        payload: r.payload.into_inner(),
    }))
}

/// The delivery carries the replay of `dead_letter`: its outcome settles it.
pub async fn link_dead_letter(
    tx: &mut Tx,
    delivery: &DeliveryId,
    dead_letter: &DeadLetterId,
) -> DbResult<()> {
    Q::write("UPDATE deliveries SET dead_letter_id = $2 WHERE id = $1")
        .bind(delivery)
        .bind(dead_letter)
        .execute(tx)
        .await?;
    Ok(())
}

/// One attempt to log.
pub struct NewAttempt<'a> {
    pub delivery: &'a DeliveryId,
    pub org: &'a OrgId,
    pub environment: Environment,
    pub endpoint: &'a EndpointId,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error_class: Option<&'a str>,
    pub error: Option<&'a str>,
    pub excerpt: Option<&'a str>,
    pub request_id: &'a str,
}

const ATTEMPT_INSERT: &str = "INSERT INTO delivery_attempts (id, delivery_id, org_id, environment, endpoint_id, attempt, status_code, latency_ms, error_class, error, response_excerpt, request_id, created_at)";

impl NewAttempt<'_> {
    /// A 2xx, or in test mode recorded in the sandbox (error class `sandbox`).
    fn delivered(&self) -> bool {
        self.error_class.is_none_or(|c| c == SANDBOX)
    }

    fn row(&self, now: i64) -> Vec<Arg> {
        vec![
            Arg::from(AttemptId::new()),
            Arg::from(self.delivery),
            Arg::from(self.org),
            Arg::from(self.environment),
            Arg::from(self.endpoint),
            Arg::from(self.attempt),
            Arg::from(self.status_code),
            Arg::from(self.latency_ms),
            Arg::from(self.error_class),
            Arg::from(self.error.map(|e| crate::jobs::queue::truncate(e, 1000))),
            Arg::from(
                self.excerpt.map(|e| {
                    crate::jobs::queue::truncate(e, crate::outbound::client::EXCERPT_LIMIT)
                }),
            ),
            Arg::from(self.request_id),
            Arg::from(now),
        ]
    }
}

/// Logs attempts as deferred, mergeable multi-row inserts, and adds them to their endpoints'
/// hourly counts ([`super::hourly`]).
pub async fn log_attempts(tx: &mut Tx, attempts: &[NewAttempt<'_>]) -> DbResult<()> {
    let now = now_ms();
    let rows = attempts.iter().map(|a| a.row(now)).collect();
    tx.defer_insert_many(Table::DELIVERY_ATTEMPTS, ATTEMPT_INSERT, "", rows)
        .await?;
    let counted: Vec<Counted<'_>> = attempts
        .iter()
        .map(|a| Counted {
            org: a.org,
            environment: a.environment,
            endpoint: a.endpoint,
            succeeded: a.delivered(),
        })
        .collect();
    hourly::count(tx, now, &counted).await
}

/// Marks deliveries (that share `attempt` and `status_code`) succeeded, as a deferred write.
pub async fn mark_succeeded(
    tx: &mut Tx,
    ids: &[&DeliveryId],
    attempt: i64,
    status_code: Option<i64>,
) -> DbResult<()> {
    let q = Q::write_per_dialect(
        "UPDATE deliveries SET status = 'succeeded', attempts = $1, last_status_code = $2, last_error = NULL, next_attempt_at = NULL, updated_at = $3
         WHERE id IN (SELECT value FROM json_each($4))",
        "UPDATE deliveries SET status = 'succeeded', attempts = $1, last_status_code = $2, last_error = NULL, next_attempt_at = NULL, updated_at = $3
         WHERE id = ANY($4)",
    )
    .planned_per_call()
    .bind(attempt)
    .bind(status_code)
    .bind(now_ms())
    .bind(ids.iter().map(ToString::to_string).collect::<Vec<_>>());
    tx.defer(Table::DELIVERIES, q).await
}

/// Resets the failure runs of endpoints a delivery just succeeded on, as a deferred write.
/// An endpoint with no failures is left alone: rewriting its row on every success made a new
/// row version of one hot row per completion, which every new delivery's foreign-key check
/// then had to lock (docs/BENCHMARKS.md, "Second wave: before and after").
pub async fn reset_failures(tx: &mut Tx, endpoints: &[&EndpointId]) -> DbResult<()> {
    let q = Q::write_per_dialect(
        "UPDATE webhook_endpoints SET consecutive_failures = 0
         WHERE id IN (SELECT value FROM json_each($1)) AND consecutive_failures <> 0",
        "UPDATE webhook_endpoints SET consecutive_failures = 0
         WHERE id = ANY($1) AND consecutive_failures <> 0",
    )
    .bind(
        endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    );
    tx.defer(Table::WEBHOOK_ENDPOINTS, q).await
}

/// A failed attempt that will be retried at `next_at`.
pub async fn schedule_retry(
    tx: &mut Tx,
    id: &DeliveryId,
    attempts: i64,
    next_at: i64,
    status_code: Option<i64>,
    error: Option<&str>,
) -> DbResult<()> {
    Q::write("UPDATE deliveries SET attempts = $2, next_attempt_at = $3, last_status_code = $4, last_error = $5, updated_at = $6 WHERE id = $1")
        .bind(id)
        .bind(attempts)
        .bind(next_at)
        .bind(status_code)
        .bind(error)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// Settles a delivery as dead (`attempts: None` keeps its count).
pub async fn mark_dead(
    tx: &mut Tx,
    id: &DeliveryId,
    attempts: Option<i64>,
    error: Option<&str>,
) -> DbResult<()> {
    Q::write("UPDATE deliveries SET status = 'dead', attempts = COALESCE($2, attempts), last_error = $3, next_attempt_at = NULL, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(attempts)
        .bind(error)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// A page of an endpoint's delivery log, newest first (`limit + 1` rows at most).
pub async fn attempts(
    ex: &mut impl Exec,
    t: &Tenant,
    endpoint: &EndpointId,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<Attempt>> {
    Q::read("SELECT a.id, a.delivery_id, d.event_id, d.event_type, a.attempt, a.status_code, a.latency_ms, a.error_class, a.error, a.response_excerpt, a.request_id, a.created_at
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.org_id = $1 AND a.endpoint_id = $2 AND d.environment = $3 AND ($4 IS NULL OR a.id < $4)
         ORDER BY a.id DESC LIMIT $5")
        .bind(t.org())
        .bind(endpoint)
        .bind(t.env())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(ex)
        .await
}

/// An endpoint that is not active, or whose latest attempt failed.
#[derive(Debug, sqlx::FromRow)]
pub struct Failing {
    pub id: EndpointId,
    pub url: String,
    pub status: crate::webhooks::EndpointStatus,
    pub last_attempt_at: Option<i64>,
    pub last_error_class: Option<String>,
    pub last_error: Option<String>,
}

/// [`failing_endpoints`]' statement (public for the test that reads its plan).
pub const FAILING_ENDPOINTS: &str = "
    SELECT w.id, w.url, w.status, l.created_at AS last_attempt_at,
           l.error_class AS last_error_class, l.error AS last_error
      FROM webhook_endpoints w
      LEFT JOIN delivery_attempts l ON l.id = (
           SELECT a.id FROM delivery_attempts a WHERE a.endpoint_id = w.id ORDER BY a.id DESC LIMIT 1)
     WHERE w.org_id = $1 AND w.environment = $2 AND w.deleted_at IS NULL
       AND (w.status <> 'active' OR l.error_class <> 'sandbox')
     ORDER BY w.id DESC LIMIT $3";

/// The tenant's endpoints (at most `limit`, newest first) that are paused, failed or disabled,
/// or whose latest attempt failed: one index seek per endpoint for its latest attempt
/// (`delivery_attempts_endpoint`).
pub async fn failing_endpoints(
    ex: &mut impl Exec,
    t: &Tenant,
    limit: i64,
) -> DbResult<Vec<Failing>> {
    Q::read(FAILING_ENDPOINTS)
        .bind(t.org())
        .bind(t.env())
        .bind(limit)
        .fetch_all(ex)
        .await
}
