//! HTTP conventions shared by every route.

#[cfg(feature = "bench-routes")]
pub mod bench_routes;
pub mod body;
pub mod docs;
pub mod edge;
pub mod error;
mod error_code;
pub mod extract;
mod head_refusal;
mod json_keys;
mod json_text;
pub mod meta;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod request_id;
pub mod routes;
pub mod schema_check;
pub mod search;
pub mod serde_message;
pub mod serve;
pub mod text;
pub mod validate;

pub use error::{ApiError, ApiResult, ErrorCode};
pub use extract::{Json, OptionalJson, Path, Query};
pub use routes::{Profile, Route};
pub use validate::{Checks, Validate};
