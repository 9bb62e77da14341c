//! Application state, router assembly, listeners and graceful shutdown.
//!
//! [`App::build`] opens the store, migrates, binds both listeners (port 0 in tests) and returns
//! an app whose [`App::run`] serves until the shutdown token fires, then stops accepting,
//! lets in-flight requests finish within `RAMPART_SHUTDOWN_TIMEOUT`, and returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::middleware::{from_fn_with_state, map_request_with_state};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::guard::{GuardState, guard};
use crate::config::Config;
use crate::http::ApiError;
use crate::http::middleware::{Conventions, conventions};
use crate::http::routes::Route;
pub use crate::state::{AppState, KEY_CHANNEL};
use crate::store::{DbError, migrate};

/// Every route of the public listener. The only source of routes: see [`Route`].
pub fn all_routes() -> Vec<Route> {
    let mut r = Vec::new();
    r.extend(crate::http::meta::routes());
    r.extend(crate::sessions::routes::routes());
    r.extend(crate::api_keys::routes::routes());
    r.extend(crate::members::routes::routes());
    r.extend(crate::audit::routes::routes());
    r.extend(crate::billing::routes::routes());
    r.extend(crate::contacts::routes::routes());
    r.extend(crate::conversations::routes::routes());
    r.extend(crate::messages::routes::routes());
    r.extend(crate::scheduled::routes::routes());
    r.extend(crate::webhooks::routes::routes());
    r.extend(crate::deliveries::routes::routes());
    r.extend(crate::dead_letters::routes::routes());
    r.extend(crate::sandbox::routes::routes());
    r.extend(crate::ops::operator::routes());
    r.extend(crate::branding::routes::routes());
    r.extend(crate::ops::status::routes());
    r.extend(crate::gdpr::routes::routes());
    r.extend(crate::exports::routes::routes());
    r.extend(crate::partners::routes::routes());
    #[cfg(feature = "bench-routes")]
    r.extend(crate::http::bench_routes::routes());
    r
}

/// The OpenAPI document of [`all_routes`].
pub fn openapi_document() -> serde_json::Value {
    crate::http::openapi::document(&all_routes(), env!("CARGO_PKG_VERSION"))
}

/// Builds the public router: the API from the registry, each route wrapped in its profile's
/// guard, and the console, whose actions go through a second copy of the same API router.
pub fn public_router(state: AppState) -> Router {
    let api = with_conventions(&state, api_routes(&state));
    with_conventions(
        &state,
        api_routes(&state).merge(crate::console::router(api)),
    )
}

/// Every route of [`all_routes`], each behind its guard.
fn api_routes(state: &AppState) -> Router<AppState> {
    let mut router: Router<AppState> = Router::new();
    for route in all_routes() {
        let g = GuardState {
            app: state.clone(),
            profile: Arc::new(route.profile),
        };
        let handler = route.handler.route_layer(from_fn_with_state(g, guard));
        router = router.route(route.path, handler);
    }
    router
}

/// The conventions every response of the public listener follows (see `http::middleware`).
fn with_conventions(state: &AppState, router: Router<AppState>) -> Router {
    let conv = Arc::new(Conventions {
        build_id: HeaderValue::from_str(&state.config.build_id)
            .unwrap_or(HeaderValue::from_static("unknown")),
        body_limit: state.config.body_limit,
        body_timeout: state.config.body_timeout,
        hsts: state.config.hsts,
        timeout: state.config.request_timeout,
    });
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(map_request_with_state(state.clone(), client_ip))
        .layer(from_fn_with_state(conv, conventions))
        .with_state(state.clone())
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Resolves the client address once per request (see [`crate::access::client_ip`]).
async fn client_ip(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: axum::extract::Request,
) -> axum::extract::Request {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = crate::access::client_ip::resolve(peer, req.headers(), &state.config.trusted_proxies);
    req.extensions_mut()
        .insert(crate::access::client_ip::ClientIp(ip));
    req
}

/// Options of `rampart serve`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    pub no_worker: bool,
}

/// A built application, listening but not yet serving.
pub struct App {
    state: AppState,
    api: TcpListener,
    ops: TcpListener,
    options: ServeOptions,
}

/// Migrates and checks the secret key; a database that is down is waited for in the
/// background (the instance reports not-ready meanwhile), drift is fatal.
pub async fn prepare(state: &AppState) -> anyhow::Result<()> {
    match prepare_database(state).await {
        Ok(()) => Ok(()),
        Err(StartError::Unavailable(e)) => {
            tracing::error!(error = %e, "database unavailable at start-up; not ready, retrying");
            tokio::spawn(retry_prepare(state.clone()));
            Ok(())
        }
        Err(StartError::Fatal(e)) => Err(e),
    }
}

impl App {
    pub async fn build(config: Config, options: ServeOptions) -> anyhow::Result<App> {
        let state = AppState::open(config, openapi_document).await?;
        prepare(&state).await?;
        let api = TcpListener::bind(state.config.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} (RAMPART_LISTEN)", state.config.listen)
            })?;
        let ops = TcpListener::bind(state.config.ops_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (RAMPART_OPS_LISTEN)",
                    state.config.ops_listen
                )
            })?;
        Ok(App {
            state,
            api,
            ops,
            options,
        })
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` fires; then drains within the configured bound.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            state,
            api,
            ops,
            options,
        } = self;
        tracing::info!(
            api = %api.local_addr()?,
            ops = %ops.local_addr()?,
            store = state.db.dialect().name(),
            build_id = %state.config.build_id,
            worker = !options.no_worker,
            "rampart serving"
        );
        let stop = state.shutdown.clone();
        let background = spawn_background(&state);
        let worker = (!options.no_worker).then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                let jobs = job_registry(&state);
                let scheduler = crate::scheduled::Scheduler;
                if let Err(e) = crate::jobs::runner::run(state, jobs, scheduler).await {
                    tracing::error!(error = %e, "the in-process worker stopped with an error");
                }
            })
        });
        let bridge = {
            let stop = stop.clone();
            let state = state.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                state.draining.store(true, Ordering::Release);
                stop.cancel();
            })
        };

        let api_task = tokio::spawn(crate::http::serve::serve(
            api,
            public_router(state.clone()),
            stop.clone(),
        ));
        let ops_task = tokio::spawn(crate::http::serve::serve(
            ops,
            crate::ops::router(state.clone()),
            stop.clone(),
        ));

        stop.cancelled().await;
        tracing::info!(
            timeout_ms = state.config.shutdown_timeout.as_millis() as u64,
            "shutting down: no new connections; finishing in-flight requests"
        );
        let drain = async {
            let _ = api_task.await;
            let _ = ops_task.await;
        };
        if tokio::time::timeout(state.config.shutdown_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!("shutdown timeout reached; abandoning remaining requests");
        }
        if let Some(w) = worker {
            // The worker drains within the same bound, then hands back what it could not finish.
            let _ = tokio::time::timeout(state.config.shutdown_timeout + Duration::from_secs(2), w)
                .await;
        }
        bridge.abort();
        for t in background {
            t.abort();
        }
        if let Err(e) = state.key_cache.flush_last_used(&state.db).await {
            tracing::warn!(error = %e, "could not record key last use at shutdown");
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every kind of background job a worker runs, with the state each keeps.
pub fn job_registry(state: &AppState) -> crate::jobs::Registry {
    crate::jobs::Registry::new()
        .with(crate::deliveries::job::DeliverJob::start(&state.db))
        .with(crate::exports::job::BuildExport)
        .with(crate::ops::alerts::NotifyOps)
        .with_periodic(crate::jobs::maintenance::Purge)
        .with_periodic(crate::ops::status::SampleHealth)
}

/// `rampart worker`: a worker (and scheduler) without listeners, until `shutdown` fires.
pub async fn run_worker(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::open(config, openapi_document).await?;
    prepare(&state).await?;
    let bg = spawn_background(&state);
    let token = state.shutdown.clone();
    let s = shutdown.clone();
    tokio::spawn(async move {
        s.cancelled().await;
        token.cancel();
    });
    let jobs = job_registry(&state);
    let result = crate::jobs::runner::run(state.clone(), jobs, crate::scheduled::Scheduler).await;
    for t in bg {
        t.abort();
    }
    state.db.close().await;
    result
}

/// Housekeeping every instance runs: Redis connection and revocation fan-out, batched key
/// last-use writes, limiter pruning.
pub fn spawn_background(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let stop = state.shutdown.clone();
    if let Some(redis) = state.limiter.redis() {
        tasks.push(tokio::spawn(redis.clone().maintain(stop.clone())));
        let (s1, s2) = (state.clone(), state.clone());
        tasks.push(tokio::spawn(redis.clone().subscribe(
            KEY_CHANNEL,
            move |healthy| {
                // Whatever was announced while we were not listening is unknown: start over.
                s1.key_cache.clear();
                s1.key_cache
                    .fanout_healthy
                    .store(healthy, Ordering::Release);
            },
            move |key_id| s2.key_cache.evict(&key_id),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::ops::alerts::watch(state.clone())));
    let s = state.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = s.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = s.key_cache.flush_last_used(&s.db).await {
                tracing::warn!(error = %e, "could not record key last use");
            }
            s.limiter.prune();
        }
    }));
    tasks
}

enum StartError {
    Unavailable(DbError),
    Fatal(anyhow::Error),
}

/// Migrates and checks the secret key against the database's record of it.
async fn prepare_database(state: &AppState) -> Result<(), StartError> {
    match migrate::apply(&state.db).await {
        Ok(ran) => {
            if !ran.is_empty() {
                tracing::info!(versions = ?ran, "migrations applied");
            }
        }
        Err(migrate::MigrateError::Db(e @ DbError::Unavailable(_))) => {
            return Err(StartError::Unavailable(e));
        }
        Err(e) => return Err(StartError::Fatal(anyhow::anyhow!("{e}"))),
    }
    match state.keys.check_against_store(&state.db).await {
        Ok(()) => {}
        Err(crate::access::secrets::KeyCheckError::Db(e @ DbError::Unavailable(_))) => {
            return Err(StartError::Unavailable(e));
        }
        Err(e) => return Err(StartError::Fatal(anyhow::anyhow!("{e}"))),
    }
    state.migrated.store(true, Ordering::Release);
    Ok(())
}

async fn retry_prepare(state: AppState) {
    let mut delay = Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        match prepare_database(&state).await {
            Ok(()) => {
                tracing::info!("database reachable; ready");
                return;
            }
            Err(StartError::Unavailable(_)) => delay = (delay * 2).min(Duration::from_secs(10)),
            Err(StartError::Fatal(e)) => {
                tracing::error!(error = %e, "cannot prepare the database; stopping");
                state.shutdown.cancel();
                return;
            }
        }
    }
}
