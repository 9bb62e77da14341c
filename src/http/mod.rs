//! HTTP conventions shared by every route.

pub mod docs;
pub mod error;
mod error_code;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod request_id;
pub mod routes;
pub mod validate;

pub use error::{ApiError, ApiResult, ErrorCode};
pub use extract::{Json, OptionalJson, Path, Query};
pub use routes::{Profile, Route};
pub use validate::{Checks, Validate};
