//! Every configuration variable, declared once: field, type, variable, value kind (parsing,
//! validation, type name), default and meaning. The `Config` struct, the loader, the list of
//! known variables and TOML keys, and the variable table in docs/OPERATIONS.md all come from
//! here (see `declare.rs` for the row syntax). Rules across variables are in `rules.rs`.
//!
//! To add a variable: add a row here (and a rule in `rules.rs` if it constrains another
//! variable), then run `UPDATE_DOCS=1 cargo test --lib config::docs` to regenerate the table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::addresses::{Addr, Cidrs, DbUrl, HttpUrl, RedisUrl, Targets};
use super::declare::declare_config;
use super::kinds::{Bool, BuildId, Dur, Int, LogFilter, OneOf, OrgId, Path, RateKind, SecretText};
use super::types::{LogFormat, Rate, Secret, SqliteSynchronous, TargetRule, Url};

declare_config! {
    /// The database: `sqlite://PATH` (the file is created) or `postgres://…`.
    database_url: Url = "RAMPART_DATABASE_URL",
        DbUrl, default "sqlite://rampart-data/rampart.db";
    /// Redis for rate limits, quotas and key revocation fan-out across instances.
    redis_url: Option<Url> = "RAMPART_REDIS_URL",
        RedisUrl, unset "in-process counters";
    /// Public API and status page address.
    listen: SocketAddr = "RAMPART_LISTEN",
        Addr, default "127.0.0.1:8080";
    /// Ops address for `/metrics` and `/health/deep` (never on the public listener).
    ops_listen: SocketAddr = "RAMPART_OPS_LISTEN",
        Addr, default "127.0.0.1:9090";
    /// Sent as `x-build-id`; recorded by workers.
    build_id: String = "RAMPART_BUILD_ID",
        BuildId, computed "compiled-in (git sha or version)"
            => env!("COMPILED_BUILD_ID_OF_RAMPART").to_owned();
    /// Single-tenant deployment: the one org id allowed.
    tenant_id: Option<crate::ids::OrgId> = "RAMPART_TENANT_ID",
        OrgId, unset "any org";
    /// Reject identities of any other org (403 `tenant_mismatch`).
    single_tenant_enforce: bool = "RAMPART_SINGLE_TENANT_ENFORCE",
        Bool, computed "`true` when `RAMPART_TENANT_ID` is set" => tenant_id.is_some();
    /// Subscription and tier gate.
    billing_enforce: bool = "RAMPART_BILLING_ENFORCE",
        Bool, default "true";
    /// Per-IP per-path limit on unauthenticated routes.
    public_rate_limit: Rate = "RAMPART_PUBLIC_RATE_LIMIT",
        RateKind, default "60/min";
    /// Login attempts per IP and per account (a client presenting a live device token of the
    /// account is held to its own budget instead of the per-account one).
    login_rate_limit: Rate = "RAMPART_LOGIN_RATE_LIMIT",
        RateKind, default "10/min";
    /// CIDRs whose `X-Forwarded-For` is believed (rightmost untrusted hop).
    trusted_proxies: Vec<IpNet> = "RAMPART_TRUSTED_PROXIES",
        Cidrs, computed "none: the client IP is the connection's peer" => Vec::new();
    /// Allow webhook targets on private and loopback addresses (development, tests).
    webhook_allow_private: bool = "RAMPART_WEBHOOK_ALLOW_PRIVATE",
        Bool, default "false";
    /// CIDRs and host names opened despite the SSRF guard.
    webhook_allowed_targets: Vec<TargetRule> = "RAMPART_WEBHOOK_ALLOWED_TARGETS",
        Targets, computed "none" => Vec::new();
    /// Timeout of one delivery attempt.
    webhook_timeout: Duration = "RAMPART_WEBHOOK_TIMEOUT",
        Dur::any(), default "15s";
    /// How long a rotated-out webhook secret still signs.
    webhook_secret_overlap: Duration = "RAMPART_WEBHOOK_SECRET_OVERLAP",
        Dur::any(), default "24h";
    /// First delay of webhook and job retry backoff.
    retry_base_delay: Duration = "RAMPART_RETRY_BASE_DELAY",
        Dur::positive(), default "5s";
    /// Cap of webhook and job retry backoff.
    retry_max_delay: Duration = "RAMPART_RETRY_MAX_DELAY",
        Dur::any(), default "10h";
    /// Budget-exhausted deliveries in a row before an endpoint turns `failed`.
    endpoint_failure_threshold: u32 = "RAMPART_ENDPOINT_FAILURE_THRESHOLD",
        Int::range(1, 1000), default "3";
    /// Secret for `Stripe-Signature` verification of `/v1/billing/events`.
    billing_webhook_secret: Option<Secret> = "RAMPART_BILLING_WEBHOOK_SECRET",
        SecretText::any(), unset "`/v1/billing/events` refuses all";
    /// Bearer token required on the ops listener.
    ops_token: Option<Secret> = "RAMPART_OPS_TOKEN",
        SecretText::at_least(16, ""), unset "ops listener open on its (loopback) address";
    /// Where alerts are posted (signed like webhooks).
    ops_webhook_url: Option<String> = "RAMPART_OPS_WEBHOOK_URL",
        HttpUrl, unset "alerts are only logged";
    /// Secret that signs alert posts.
    ops_webhook_secret: Option<Secret> = "RAMPART_OPS_WEBHOOK_SECRET",
        SecretText::at_least(24, "a whsec_… secret works"),
        unset "no alert posts (required with `RAMPART_OPS_WEBHOOK_URL`)";
    /// How often each instance evaluates alerts.
    alert_interval: Duration = "RAMPART_ALERT_INTERVAL",
        Dur::at_least(Duration::from_millis(100)), default "10s";
    /// Encrypts webhook secrets at rest, signs tokens; the same on every instance.
    secret_key: Option<Secret> = "RAMPART_SECRET_KEY",
        SecretText::at_least(32, "e.g. `openssl rand -hex 32`"),
        unset "generated once into the data dir (`secret.key`, mode 0600)";
    /// Where generated files live (`secret.key`).
    data_dir: PathBuf = "RAMPART_DATA_DIR",
        Path, computed "the SQLite file's directory, else `rampart-data`"
            => default_data_dir(&database_url);
    /// Per-request timeout.
    request_timeout: Duration = "RAMPART_REQUEST_TIMEOUT",
        Dur::any(), default "30s";
    /// How long a client may take to send a request body; a stalled upload gets 408.
    body_timeout: Duration = "RAMPART_BODY_TIMEOUT",
        Dur::at_least(Duration::from_millis(100)), default "10s";
    /// Request body limit in bytes.
    body_limit: usize = "RAMPART_BODY_LIMIT",
        Int::range(1024, 64 * 1_048_576), default "1048576";
    /// How long in-flight work may finish on SIGTERM.
    shutdown_timeout: Duration = "RAMPART_SHUTDOWN_TIMEOUT",
        Dur::any(), default "30s";
    /// Log output: `auto` is JSON unless stdout is a terminal.
    log_format: LogFormat = "RAMPART_LOG_FORMAT",
        OneOf(&[
            ("auto", LogFormat::Auto),
            ("json", LogFormat::Json),
            ("text", LogFormat::Text),
        ]),
        default "auto";
    /// Log filter, e.g. `info,rampart=debug`.
    log_level: String = "RAMPART_LOG",
        LogFilter, default "info";
    /// Send `Strict-Transport-Security` (set it when served over TLS).
    hsts: bool = "RAMPART_HSTS",
        Bool, default "false";
    /// Database pool size per instance.
    db_max_connections: u32 = "RAMPART_DB_MAX_CONNECTIONS",
        Int::range(1, 1000), default "10";
    /// `full`: every commit is flushed to disk, so an acknowledged write survives a power cut.
    /// `normal`: faster, but a power loss may lose the last acknowledged commits (a process
    /// crash loses nothing). SQLite only.
    sqlite_synchronous: SqliteSynchronous = "RAMPART_SQLITE_SYNCHRONOUS",
        OneOf(&[
            ("full", SqliteSynchronous::Full),
            ("normal", SqliteSynchronous::Normal),
        ]),
        default "full";
    /// How long a worker holds a job before another may take it over.
    job_lease: Duration = "RAMPART_JOB_LEASE",
        Dur::any(), default "60s";
    /// Jobs one worker runs at once.
    worker_concurrency: u32 = "RAMPART_WORKER_CONCURRENCY",
        Int::range(1, 4096), default "256";
    /// Access token lifetime.
    access_token_ttl: Duration = "RAMPART_ACCESS_TOKEN_TTL",
        Dur::any(), default "15m";
    /// Refresh token lifetime.
    refresh_token_ttl: Duration = "RAMPART_REFRESH_TOKEN_TTL",
        Dur::any(), default "30d";
    /// How long after a refresh its (now spent) token still gets the same new pair back, for a
    /// client retrying a refresh whose answer it lost; after that, or for an older token, a
    /// second use revokes the family. `0s`: every second use revokes it.
    refresh_reuse_interval: Duration = "RAMPART_REFRESH_REUSE_INTERVAL",
        Dur::any(), default "10s";
    /// Lifetime of a device token (returned by a successful login; presented at the next one,
    /// it lets that client sign in while the account's login limit is exhausted).
    device_token_ttl: Duration = "RAMPART_DEVICE_TOKEN_TTL",
        Dur::positive(), default "90d";
    /// How long idempotency records are kept.
    idempotency_ttl: Duration = "RAMPART_IDEMPOTENCY_TTL",
        Dur::any(), default "24h";
    /// Timeout of one Redis call before failing open.
    redis_timeout: Duration = "RAMPART_REDIS_TIMEOUT",
        Dur::any(), default "50ms";
    /// How long units leased from Redis for a busy limit stay usable; `0ms`: no leases.
    redis_lease: Duration = "RAMPART_REDIS_LEASE",
        Dur::any(), default "50ms";
    /// Dead letters in 5 minutes that raise `dlq_spike`.
    alert_dlq_spike: u64 = "RAMPART_ALERT_DLQ_SPIKE",
        Int::<u64>::any(), default "10";
    /// Due jobs waiting that raise `queue_backlog`.
    alert_queue_backlog: u64 = "RAMPART_ALERT_QUEUE_BACKLOG",
        Int::<u64>::any(), default "1000";
    /// Heartbeat silence that raises `worker_stale`.
    alert_worker_stale: Duration = "RAMPART_ALERT_WORKER_STALE",
        Dur::any(), default "30s";
    /// Delivery log retention.
    retention_delivery_logs: Duration = "RAMPART_RETENTION_DELIVERY_LOGS",
        Dur::any(), default "30d";
    /// Resolved dead letter retention.
    retention_dead_letters: Duration = "RAMPART_RETENTION_DEAD_LETTERS",
        Dur::any(), default "30d";
    /// Lifetime of an export download link.
    export_link_ttl: Duration = "RAMPART_EXPORT_LINK_TTL",
        Dur::any(), default "1h";
    /// External base URL used in links (exports, status page).
    public_base_url: Option<String> = "RAMPART_PUBLIC_BASE_URL",
        HttpUrl, unset "`http://` and `RAMPART_LISTEN`";
    /// Per-org request rate of the standard tier.
    plan_standard_rate_limit: Rate = "RAMPART_PLAN_STANDARD_RATE_LIMIT",
        RateKind, default "100/s";
    /// Per-org request rate of the full tier.
    plan_full_rate_limit: Rate = "RAMPART_PLAN_FULL_RATE_LIMIT",
        RateKind, default "1000/s";
    /// Per-org request quota of the standard tier.
    plan_standard_quota: Rate = "RAMPART_PLAN_STANDARD_QUOTA",
        RateKind, default "1000000/day";
    /// Per-org request quota of the full tier.
    plan_full_quota: Rate = "RAMPART_PLAN_FULL_QUOTA",
        RateKind, default "100000000/day";
}

/// Generated files sit beside the SQLite database; with Postgres, in `rampart-data`.
fn default_data_dir(database_url: &Url) -> PathBuf {
    super::addresses::sqlite_path(database_url.expose())
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("rampart-data"))
}
