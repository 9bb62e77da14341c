//! Baseline routes compiled in only with `--features bench-routes`, so benchmarks compare the
//! full guard stack against a bare route in the same binary and run.

use axum::http::StatusCode;

use crate::access::grants::{Permission, Scope};
use crate::http::routes::{Profile, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/bench/bare", Profile::probe(), bench_bare)
            .summary("Benchmark baseline: the conventions middleware only")
            .tag("bench")
            .no_content(),
        Route::get(
            "/v1/bench/guarded",
            Profile::api(Scope::Messages, Permission::Read),
            bench_guarded,
        )
        .summary("Benchmark: a no-op behind every guard (auth, tenant, scope, permission, billing, limits, quotas)")
        .tag("bench")
        .no_content(),
    ]
}

async fn bench_bare() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn bench_guarded() -> StatusCode {
    StatusCode::NO_CONTENT
}
