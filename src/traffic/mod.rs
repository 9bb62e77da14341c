//! Traffic control: rate limits, quotas, idempotency.

pub mod headers;
pub mod idempotency;
pub mod lease;
pub mod limit;
pub mod limits;
pub mod redis_store;
