//! Outbound webhooks: endpoints, signing, delivery, retries, dead letters.

pub mod batching;
pub mod client;
pub mod dead_letter_routes;
pub mod dead_letters;
pub mod delivery;
pub mod endpoints;
pub mod fanout;
pub mod routes;
pub mod sandbox;
pub mod signing;
pub mod ssrf;

/// The range of an endpoint's `max_retries`.
pub fn retry_bounds() -> std::ops::RangeInclusive<i64> {
    0..=i64::from(crate::jobs::retry::MAX_RETRIES)
}
