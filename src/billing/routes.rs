//! `POST /v1/billing/events`: Stripe-format subscription events, verified with the
//! `Stripe-Signature` scheme (HMAC-SHA256 of `"{t}.{payload}"`, any of several `v1` values,
//! five-minute tolerance), applied at most once per event id, and never older-over-newer.

use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::json;

use super::store::apply_stripe;
use super::stripe::{BillingEventIn, EventOutcome, StripeEventType};
use super::{SubStatus, Subscription, Tier};
use crate::access::principal::Actor;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::now_ms;
use crate::http::body::RawBody;
use crate::http::routes::{Header, Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode};
use crate::ids::OrgId;
use crate::state::AppState;
use crate::store::Tx;

pub const TOLERANCE_S: i64 = 300;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/billing/events",
            Profile::public(),
            receive_billing_event,
        )
        .error(ErrorCode::InvalidSignature, "billing events are not configured on this deployment (`RAMPART_BILLING_WEBHOOK_SECRET` is unset: every event is refused), or `Stripe-Signature` is missing, stale or does not verify")
        .header(Header {
            name: "Stripe-Signature",
            required: true,
            description: "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">` (more `v1=` \
                entries allowed), within five minutes of now",
            schema: signature_schema,
        })
        .summary("Receive a Stripe subscription event (verified with Stripe-Signature)")
        .tag("billing")
        .body::<BillingEventIn>()
        .returns::<BillingEventOut>(200),
    ]
}

/// The form of `Stripe-Signature` the document states: a timestamp and SHA-256 signatures.
pub const SIGNATURE_PATTERN: &str = "^t=[0-9]{1,12}(,v1=[0-9a-f]{64}){1,8}$";

fn signature_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(SIGNATURE_PATTERN))
        .max_length(Some(1024))
        .into()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BillingEventOut {
    pub received: bool,
    pub applied: bool,
    pub duplicate: bool,
    /// Why the event changed nothing, when it did not.
    pub note: Option<String>,
}

/// Verifies a `Stripe-Signature` header for `payload` at time `now_s`.
pub fn verify_signature(
    secret: &str,
    header: &str,
    payload: &[u8],
    now_s: i64,
) -> Result<(), &'static str> {
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => t = v.parse().ok(),
            "v1" => {
                if let Some(b) = hex_decode(v) {
                    sigs.push(b);
                }
            }
            _ => {}
        }
    }
    let t = t.ok_or("the Stripe-Signature header has no timestamp")?;
    if sigs.is_empty() {
        return Err("the Stripe-Signature header has no v1 signature");
    }
    if (now_s - t).abs() > TOLERANCE_S {
        return Err("the event timestamp is outside the five-minute tolerance");
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload);
    if sigs
        .iter()
        .any(|s| ring::hmac::verify(&key, &signed, s).is_ok())
    {
        Ok(())
    } else {
        Err("no signature matches")
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Maps Stripe's subscription statuses onto Rampart's four.
fn map_status(s: &str) -> SubStatus {
    match s {
        "active" => SubStatus::Active,
        "trialing" => SubStatus::Trialing,
        "past_due" | "unpaid" | "incomplete" => SubStatus::PastDue,
        _ => SubStatus::Canceled,
    }
}

async fn receive_billing_event(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<axum::Json<BillingEventOut>> {
    let event = verified_event(&app, &headers, &body)?;
    let obj = &event.data["object"];
    let org = obj["metadata"]["org_id"].as_str().and_then(OrgId::parse);
    let mut tx = app.db.begin().await?;
    if !super::store::record_received(&mut tx, &event, org.as_ref()).await? {
        return Ok(axum::Json(BillingEventOut {
            received: true,
            applied: false,
            duplicate: true,
            note: Some("event already processed".into()),
        }));
    }
    let event_ms = event.created.saturating_mul(1000);
    let (applied, note) = match subscription_change(&mut tx, &event, org).await {
        Err(why) => (false, Some(why.to_owned())),
        Ok((org, status, tier)) => {
            let sub = Subscription { status, tier };
            if apply_stripe(&mut tx, &org, sub, obj["id"].as_str(), event_ms).await? {
                audit::record(
                    &mut tx,
                    &meta,
                    Entry::new(Some(&org), Actor::System, "billing.subscription_updated")
                        .target("subscription", org.as_str())
                        .details(json!({ "event_id": event.id, "status": status.as_str(), "tier": tier.as_str() })),
                )
                .await?;
                app.plans.forget(&org);
                (true, None)
            } else {
                (false, Some("a newer event was already applied".to_owned()))
            }
        }
    };
    let outcome = if applied {
        EventOutcome::Applied
    } else {
        EventOutcome::Ignored
    };
    super::store::set_outcome(&mut tx, &event.id, outcome).await?;
    tx.commit().await?;
    if let Some(n) = &note {
        tracing::info!(event_id = %event.id, note = %n, "billing event not applied");
    }
    Ok(axum::Json(BillingEventOut {
        received: true,
        applied,
        duplicate: false,
        note,
    }))
}

/// The event, once its Stripe signature verifies (before its body is even parsed).
fn verified_event(app: &AppState, headers: &HeaderMap, body: &[u8]) -> ApiResult<BillingEventIn> {
    let Some(secret) = &app.config.billing_webhook_secret else {
        return Err(ApiError::Invalid(
            ErrorCode::InvalidSignature,
            "billing events are not configured on this deployment".into(),
        ));
    };
    let sig = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Invalid(
                ErrorCode::InvalidSignature,
                "the Stripe-Signature header is missing".into(),
            )
        })?;
    verify_signature(secret.expose(), sig, body, now_ms() / 1000)
        .map_err(|m| ApiError::Invalid(ErrorCode::InvalidSignature, m.into()))?;
    let event: BillingEventIn = crate::http::extract::parse_checked_json(body)?;
    if event.id.is_empty() || event.id.len() > 255 {
        return Err(ApiError::field("id", "must be 1-255 characters"));
    }
    Ok(event)
}

/// The subscription an event sets, or why it sets none.
async fn subscription_change(
    tx: &mut Tx,
    event: &BillingEventIn,
    org: Option<OrgId>,
) -> Result<(OrgId, SubStatus, Tier), &'static str> {
    if matches!(event.type_, StripeEventType::Other(_)) {
        return Err("not a subscription event");
    }
    let org = org.ok_or("the subscription has no metadata.org_id naming an org")?;
    if crate::orgs::get(tx, &org).await.ok().flatten().is_none() {
        return Err("metadata.org_id names no org of this deployment");
    }
    let obj = &event.data["object"];
    let status = if event.type_ == StripeEventType::SubscriptionDeleted {
        SubStatus::Canceled
    } else {
        map_status(obj["status"].as_str().unwrap_or(""))
    };
    let current = super::store::subscription(tx, &org).await.ok().flatten();
    let tier = obj["items"]["data"][0]["price"]["lookup_key"]
        .as_str()
        .and_then(Tier::parse)
        .or(current.map(|c| c.tier))
        .unwrap_or(Tier::Standard);
    Ok((org, status, tier))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, payload: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{t}.{payload}").as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signatures() {
        let now = 1_700_000_000;
        let good = sign("whsec_x", now, "{}");
        assert!(verify_signature("whsec_x", &format!("t={now},v1={good}"), b"{}", now).is_ok());
        // Several v1 values (secret rolling): any match is enough.
        assert!(
            verify_signature(
                "whsec_x",
                &format!("t={now},v1=00ff,v1={good},v0=abc"),
                b"{}",
                now
            )
            .is_ok()
        );
        assert!(verify_signature("whsec_y", &format!("t={now},v1={good}"), b"{}", now).is_err());
        assert!(verify_signature("whsec_x", &format!("t={now},v1={good}"), b"{ }", now).is_err());
        assert!(
            verify_signature("whsec_x", &format!("t={now},v1={good}"), b"{}", now + 301).is_err()
        );
        assert!(verify_signature("whsec_x", &format!("v1={good}"), b"{}", now).is_err());
    }
}
