//! `GET /v1/webhooks/delivery-stats`: the tenant's delivery attempts per hour (succeeded,
//! failed) over the last hours, each endpoint's success rate over them, and the endpoints that
//! are failing — what the console's overview and endpoint list show, read from the hourly
//! counts ([`super::hourly`]).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use super::hourly::{self, HOUR_MS, hour_of};
use super::{SANDBOX, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::clock::{now_ms, rfc3339};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiResult, Query, Validate};
use crate::ids::EndpointId;
use crate::state::AppState;
use crate::webhooks::EndpointStatus;

/// The most hours one answer covers (a week), and the default (a day).
pub const HOURS_MAX: i64 = 168;
pub const HOURS_DEFAULT: i64 = 24;
/// The most failing endpoints one answer lists.
const FAILING_MAX: i64 = 100;

pub fn route() -> Route {
    Route::get(
        "/v1/webhooks/delivery-stats",
        Profile::api(Scope::Webhooks, Permission::Read),
        delivery_stats,
    )
    .query::<StatsQuery>()
    .summary(
        "Delivery attempts per hour over the last hours (succeeded, failed), each endpoint's attempts and success rate over them, and the endpoints that are not active or whose latest attempt failed",
    )
    .tag("webhooks")
    .returns::<DeliveryStatsOut>(200)
}

/// `?hours=`: how many hours, 1 to [`HOURS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours(i64);

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        match s.parse::<i64>() {
            Ok(n) if (1..=HOURS_MAX).contains(&n) => Ok(Hours(n)),
            _ => Err(serde::de::Error::custom(format!(
                "hours must be an integer from 1 to {HOURS_MAX}; got {s:?}"
            ))),
        }
    }
}

impl utoipa::PartialSchema for Hours {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1.0))
            .maximum(Some(HOURS_MAX as f64))
            .default(Some(HOURS_DEFAULT.into()))
            .description(Some(format!(
                "hours to cover, the current one included, 1 to {HOURS_MAX} (default {HOURS_DEFAULT})"
            )))
            .into()
    }
}

impl utoipa::ToSchema for Hours {}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    #[param(inline)]
    hours: Option<Hours>,
}
impl Validate for StatsQuery {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryStatsOut {
    pub object: &'static str,
    pub hours: i64,
    /// One per hour, oldest first; the last is the hour under way.
    pub buckets: Vec<HourOut>,
    /// Every endpoint (not deleted) with attempts in these hours, newest first: its counts
    /// and success rate. An endpoint with none is not listed.
    pub endpoints: Vec<EndpointRateOut>,
    /// Endpoints that are paused, failed or disabled, or whose latest attempt failed (at most
    /// 100, newest first).
    pub failing_endpoints: Vec<FailingEndpointOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HourOut {
    /// The hour's start.
    #[schema(value_type = crate::clock::Rfc3339)]
    pub hour: String,
    /// Attempts that delivered (a 2xx; in test mode, recorded in the sandbox).
    pub succeeded: i64,
    /// Attempts that failed (any other status, a timeout, a refused connection …).
    pub failed: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointRateOut {
    pub endpoint_id: EndpointId,
    pub succeeded: i64,
    pub failed: i64,
    /// succeeded / (succeeded + failed), from 0 to 1.
    pub success_rate: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailingEndpointOut {
    pub endpoint_id: EndpointId,
    pub url: String,
    pub status: EndpointStatus,
    /// The latest attempt, whenever it was (null: none yet).
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub last_attempt_at: Option<String>,
    /// null when the latest attempt succeeded (the endpoint is listed for its status).
    pub last_error_class: Option<String>,
    pub last_error: Option<String>,
}

async fn delivery_stats(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<DeliveryStatsOut>> {
    let hours = q.hours.map_or(HOURS_DEFAULT, |h| h.0);
    let last = hour_of(now_ms());
    let first = last - (hours - 1) * HOUR_MS;
    let t = p.tenant();
    let mut db = app.db.clone();
    let counts = hourly::per_hour(&mut db, &t, first, last).await?;
    let per_endpoint = hourly::per_endpoint(&mut db, &t, first).await?;
    let failing = store::failing_endpoints(&mut db, &t, FAILING_MAX).await?;
    Ok(axum::Json(DeliveryStatsOut {
        object: "delivery_stats",
        hours,
        buckets: counts
            .into_iter()
            .map(|c| HourOut {
                hour: rfc3339(c.hour_start),
                succeeded: c.succeeded,
                failed: c.failed,
            })
            .collect(),
        endpoints: per_endpoint
            .into_iter()
            .map(|c| EndpointRateOut {
                endpoint_id: c.endpoint_id,
                succeeded: c.succeeded,
                failed: c.failed,
                // Listed only with attempts: never 0 / 0.
                success_rate: c.succeeded as f64 / (c.succeeded + c.failed).max(1) as f64,
            })
            .collect(),
        failing_endpoints: failing
            .into_iter()
            .map(|f| {
                // A sandbox attempt is recorded as delivered: no error to show.
                let failed = f.last_error_class.as_deref().is_some_and(|c| c != SANDBOX);
                FailingEndpointOut {
                    endpoint_id: f.id,
                    url: f.url,
                    status: f.status,
                    last_attempt_at: f.last_attempt_at.map(rfc3339),
                    last_error_class: f.last_error_class.filter(|_| failed),
                    last_error: f.last_error.filter(|_| failed),
                }
            })
            .collect(),
    }))
}
