//! Delivery attempts counted per endpoint and hour (`delivery_hourly`), kept as attempts are
//! logged: the delivery chart and each endpoint's success rate read these counts instead of
//! counting attempts (docs/ARCHITECTURE.md, "Delivery counts").

use std::collections::BTreeMap;

use crate::access::principal::{Environment, Tenant};
use crate::ids::{EndpointId, OrgId};
use crate::store::{Arg, DbResult, Exec, Q, Table, Tx};

pub const HOUR_MS: i64 = 3_600_000;

/// The hour `at` (Unix ms) falls in, as its start.
pub fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR_MS) * HOUR_MS
}

/// One logged attempt, as counted.
pub struct Counted<'a> {
    pub org: &'a OrgId,
    pub environment: Environment,
    pub endpoint: &'a EndpointId,
    pub succeeded: bool,
}

const HOURLY_INSERT: &str =
    "INSERT INTO delivery_hourly (endpoint_id, hour_start, org_id, environment, succeeded, failed)";
const HOURLY_ADD: &str = " ON CONFLICT (endpoint_id, hour_start) DO UPDATE
    SET succeeded = delivery_hourly.succeeded + excluded.succeeded,
        failed = delivery_hourly.failed + excluded.failed";

/// Adds attempts made at `now` to their endpoints' counts, as one deferred, mergeable upsert.
/// Rows go in key order, so two transactions that count the same endpoints lock their rows in
/// the same order.
pub async fn count(tx: &mut Tx, now: i64, attempts: &[Counted<'_>]) -> DbResult<()> {
    let hour = hour_of(now);
    let mut per: BTreeMap<&EndpointId, (&OrgId, Environment, i64, i64)> = BTreeMap::new();
    for a in attempts {
        let c = per
            .entry(a.endpoint)
            .or_insert((a.org, a.environment, 0, 0));
        if a.succeeded {
            c.2 += 1;
        } else {
            c.3 += 1;
        }
    }
    let rows = per
        .into_iter()
        .map(|(endpoint, (org, env, ok, failed))| {
            vec![
                Arg::from(endpoint),
                Arg::from(hour),
                Arg::from(org),
                Arg::from(env),
                Arg::from(ok),
                Arg::from(failed),
            ]
        })
        .collect();
    tx.defer_insert_many(Table::DELIVERY_HOURLY, HOURLY_INSERT, HOURLY_ADD, rows)
        .await
}

/// Attempts of one hour, as counted.
#[derive(Debug, sqlx::FromRow)]
pub struct HourCount {
    /// Start of the hour (Unix ms).
    pub hour_start: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// [`per_hour`]'s statement (public for the test that reads its plan).
pub const PER_HOUR: &str = "
    WITH RECURSIVE h (start) AS (
        SELECT CAST($3 AS BIGINT) UNION ALL SELECT start + 3600000 FROM h WHERE start < $4
    )
    SELECT h.start AS hour_start,
           CAST(COALESCE(SUM(c.succeeded), 0) AS BIGINT) AS succeeded,
           CAST(COALESCE(SUM(c.failed), 0) AS BIGINT) AS failed
      FROM h LEFT JOIN delivery_hourly c
        ON c.org_id = $1 AND c.environment = $2 AND c.hour_start = h.start
     GROUP BY h.start ORDER BY h.start";

/// The tenant's attempts per hour, for every hour from `first` to `last` (their starts, Unix
/// ms, multiples of an hour), oldest first: one seek of `delivery_hourly_tenant` per hour,
/// reading one row per endpoint that had attempts in it.
pub async fn per_hour(
    ex: &mut impl Exec,
    t: &Tenant,
    first: i64,
    last: i64,
) -> DbResult<Vec<HourCount>> {
    Q::read(PER_HOUR)
        .bind(t.org())
        .bind(t.env())
        .bind(first)
        .bind(last)
        .fetch_all(ex)
        .await
}

/// One endpoint's attempts over a window, as counted.
#[derive(Debug, sqlx::FromRow)]
pub struct EndpointCount {
    pub endpoint_id: EndpointId,
    pub succeeded: i64,
    pub failed: i64,
}

/// [`per_endpoint`]'s statement (public for the test that reads its plan).
pub const PER_ENDPOINT: &str = "
    SELECT c.endpoint_id,
           CAST(SUM(c.succeeded) AS BIGINT) AS succeeded, CAST(SUM(c.failed) AS BIGINT) AS failed
      FROM delivery_hourly c JOIN webhook_endpoints w ON w.id = c.endpoint_id
     WHERE c.org_id = $1 AND c.environment = $2 AND c.hour_start >= $3 AND w.deleted_at IS NULL
     GROUP BY c.endpoint_id ORDER BY c.endpoint_id DESC";

/// Attempts per endpoint of the tenant (deleted ones left out) in the hours from `first` on,
/// newest endpoint first; an endpoint with no attempts there has no entry.
pub async fn per_endpoint(
    ex: &mut impl Exec,
    t: &Tenant,
    first: i64,
) -> DbResult<Vec<EndpointCount>> {
    Q::read(PER_ENDPOINT)
        .bind(t.org())
        .bind(t.env())
        .bind(first)
        .fetch_all(ex)
        .await
}

/// Counts of hours starting before `$1` go with the delivery log's retention (the maintenance
/// purge, which passes the hour its cutoff falls in), `$2` rows at a time.
pub fn purge() -> Q {
    Q::write(
        "DELETE FROM delivery_hourly WHERE (endpoint_id, hour_start) IN
           (SELECT endpoint_id, hour_start FROM delivery_hourly WHERE hour_start < $1 LIMIT $2)",
    )
}
