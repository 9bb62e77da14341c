//! Traffic control: rate limits, quotas, the billing gate, idempotency.

pub mod billing;
pub mod billing_events;
pub mod headers;
pub mod idempotency;
pub mod lease;
pub mod limits;
pub mod redis_store;
