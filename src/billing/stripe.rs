//! The Stripe events Rampart reads, as types: parsed once at the edge.

use serde::{Deserialize, Serialize};

/// The parts of a Stripe event Rampart reads.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BillingEventIn {
    /// `evt_…`, used to apply each event once.
    #[schema(schema_with = crate::http::text::line::<1, 255>)]
    pub id: String,
    /// customer.subscription.created, .updated or .deleted (others are acknowledged and ignored).
    #[serde(rename = "type")]
    #[schema(schema_with = crate::http::text::line::<1, 255>)]
    pub type_: StripeEventType,
    /// Unix seconds.
    pub created: i64,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// The kinds of Stripe event Rampart applies; any other is acknowledged and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(from = "String", into = "String")]
pub enum StripeEventType {
    SubscriptionCreated,
    SubscriptionUpdated,
    SubscriptionDeleted,
    /// Recorded as received, changes nothing.
    Other(String),
}

impl From<String> for StripeEventType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "customer.subscription.created" => StripeEventType::SubscriptionCreated,
            "customer.subscription.updated" => StripeEventType::SubscriptionUpdated,
            "customer.subscription.deleted" => StripeEventType::SubscriptionDeleted,
            _ => StripeEventType::Other(s),
        }
    }
}

impl From<StripeEventType> for String {
    fn from(t: StripeEventType) -> String {
        t.as_str().to_owned()
    }
}

impl StripeEventType {
    pub fn as_str(&self) -> &str {
        match self {
            StripeEventType::SubscriptionCreated => "customer.subscription.created",
            StripeEventType::SubscriptionUpdated => "customer.subscription.updated",
            StripeEventType::SubscriptionDeleted => "customer.subscription.deleted",
            StripeEventType::Other(s) => s,
        }
    }
}

crate::text_enum::text_enum! {
    /// What became of a received event.
    pub enum EventOutcome {
        Received = "received",
        Applied = "applied",
        Ignored = "ignored",
    }
}
