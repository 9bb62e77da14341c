//! The application state every handler reaches: configuration, the store, keys, caches, the
//! limiter and the outbound client. A leaf below every feature: it imports their types, never
//! their routes, so features depend on it and nothing here depends on a feature's handlers.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{ConnectOptions, Db};

/// Everything a handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub db: Db,
    /// `GET /v1/contacts/{id}`'s reads, batched under concurrency.
    pub contact_reads: crate::contacts::reads::ContactReads,
    pub keys: crate::access::secrets::Keys,
    pub key_cache: crate::api_keys::KeyCache,
    pub plans: crate::billing::plans::PlanCache,
    pub limiter: crate::traffic::limits::Limiter,
    pub webhooks: crate::outbound::client::WebhookClient,
    /// For operator-configured targets (the ops webhook): no SSRF guard, they are trusted.
    pub ops_http: reqwest::Client,
    /// This process, for instance-level alerts.
    pub instance_id: crate::ids::InstanceId,
    /// Set once migrations are applied (they may wait for a database that is still down).
    pub migrated: AtomicBool,
    /// Set when shutdown starts: `/health/ready` turns 503 so load balancers drain us.
    pub draining: AtomicBool,
    pub shutdown: CancellationToken,
    pub started_at_ms: i64,
    /// The clock console sessions are timed by (tests move it: `Clock::advance`).
    pub clock: crate::clock::Clock,
    openapi: OnceLock<serde_json::Value>,
    /// Builds the OpenAPI document from the route registry, which sits above every feature
    /// (`app::openapi_document`): the state only caches it.
    build_openapi: fn() -> serde_json::Value,
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// The OpenAPI document, built once from the route registry.
    pub fn openapi(&self) -> &serde_json::Value {
        self.openapi.get_or_init(self.build_openapi)
    }

    pub fn is_ready(&self) -> bool {
        self.migrated.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// A key was revoked or rotated: forget it here now, and on every other instance through
    /// Redis (instances without the fan-out keep cache entries for at most a second).
    pub async fn announce_key_change(&self, key_id: &str) {
        self.key_cache.evict(key_id);
        if let Some(r) = self.limiter.redis() {
            r.publish(KEY_CHANNEL, key_id).await;
        }
    }
}

/// The Redis channel on which key revocations are announced.
pub const KEY_CHANNEL: &str = "rampart:keys:changed";

impl AppState {
    /// Opens the store, loads the keys and builds the shared state, without listeners: what
    /// `serve` and `worker` both start from.
    pub async fn open(
        config: Config,
        build_openapi: fn() -> serde_json::Value,
    ) -> anyhow::Result<AppState> {
        crate::outbound::install_crypto_provider();
        crate::ops::metrics::handle();
        let db = Db::connect(config.database_url.expose(), &ConnectOptions::from(&config))
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    config.database_url.redacted()
                )
            })?;
        let keys = crate::access::secrets::Keys::load(&config)?;
        let redis = match &config.redis_url {
            Some(u) => Some(
                crate::traffic::redis_store::RedisStore::new(u.expose(), config.redis_timeout)
                    .with_context(|| format!("invalid RAMPART_REDIS_URL {}", u.redacted()))?,
            ),
            None => None,
        };
        let webhooks = crate::outbound::client::WebhookClient::new(
            crate::outbound::ssrf::Policy {
                allow_private: config.webhook_allow_private,
                allowed: config.webhook_allowed_targets.clone(),
            },
            config.webhook_timeout,
        )
        .context("cannot build the webhook HTTP client")?;
        let limiter = crate::traffic::limits::Limiter::new(redis, config.redis_lease);
        Ok(AppState(Arc::new(AppInner {
            config,
            contact_reads: crate::contacts::reads::ContactReads::start(&db),
            db,
            keys,
            key_cache: Default::default(),
            plans: Default::default(),
            limiter,
            webhooks,
            ops_http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("cannot build the HTTP client")?,
            instance_id: crate::ids::InstanceId::new(),
            migrated: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            started_at_ms: crate::clock::now_ms(),
            clock: crate::clock::Clock::default(),
            openapi: OnceLock::new(),
            build_openapi,
        })))
    }
}
