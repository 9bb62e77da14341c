//! One typed, validated configuration: defaults, then an optional TOML file
//! (`RAMPART_CONFIG`), then `RAMPART_*` environment variables. Validated before anything binds;
//! a bad value is one line naming the variable. Secrets live in [`Secret`], whose `Debug` is
//! redacted.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// A URL that may carry a password (`postgres://user:pw@host/db`); `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Url(String);

impl Url {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, safe for logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

pub fn redact_url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => u.to_owned(),
    }
}

/// `N/s`, `N/min`, `N/h` or `N/day`: a count per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rate {
    pub count: u32,
    pub period_ms: u64,
}

impl Rate {
    pub fn parse(s: &str) -> Option<Rate> {
        let (n, unit) = s.trim().split_once('/')?;
        let count: u32 = n.trim().parse().ok().filter(|c| *c > 0)?;
        let period_ms = match unit.trim() {
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            _ => return None,
        };
        Some(Rate { count, period_ms })
    }

    pub fn per_second(count: u32) -> Rate {
        Rate {
            count,
            period_ms: 1_000,
        }
    }

    /// The text form, e.g. `60/min`.
    pub fn render(&self) -> String {
        let unit = match self.period_ms {
            1_000 => "s",
            60_000 => "min",
            3_600_000 => "h",
            86_400_000 => "day",
            _ => return format!("{}/{}ms", self.count, self.period_ms),
        };
        format!("{}/{unit}", self.count)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, human text when it is.
    Auto,
    Json,
    Text,
}

/// An entry of `RAMPART_WEBHOOK_ALLOWED_TARGETS`: a CIDR or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRule {
    Net(IpNet),
    Host(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Url,
    pub redis_url: Option<Url>,
    pub listen: SocketAddr,
    pub ops_listen: SocketAddr,
    pub build_id: String,
    pub tenant_id: Option<String>,
    pub single_tenant_enforce: bool,
    pub billing_enforce: bool,
    pub public_rate_limit: Rate,
    pub login_rate_limit: Rate,
    pub trusted_proxies: Vec<IpNet>,
    pub webhook_allow_private: bool,
    pub webhook_allowed_targets: Vec<TargetRule>,
    pub webhook_timeout: Duration,
    pub webhook_secret_overlap: Duration,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub endpoint_failure_threshold: u32,
    pub billing_webhook_secret: Option<Secret>,
    pub ops_token: Option<Secret>,
    pub ops_webhook_url: Option<String>,
    pub ops_webhook_secret: Option<Secret>,
    pub alert_interval: Duration,
    pub secret_key: Option<Secret>,
    pub data_dir: PathBuf,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    pub hsts: bool,
    pub db_max_connections: u32,
    pub job_lease: Duration,
    pub worker_concurrency: u32,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub idempotency_ttl: Duration,
    pub redis_timeout: Duration,
    /// How long units leased from Redis for a busy limit stay usable; zero: no leases.
    pub redis_lease: Duration,
    pub alert_dlq_spike: u64,
    pub alert_queue_backlog: u64,
    pub alert_worker_stale: Duration,
    pub retention_delivery_logs: Duration,
    pub retention_dead_letters: Duration,
    pub export_link_ttl: Duration,
    pub public_base_url: Option<String>,
    pub plan_standard_rate_limit: Rate,
    pub plan_full_rate_limit: Rate,
    pub plan_standard_quota: Rate,
    pub plan_full_quota: Rate,
}

/// A configuration error: the variable and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        message: message.into(),
    }
}

/// Every variable this configuration reads, with its meaning (for `docs` and `--help`).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "RAMPART_CONFIG",
        "optional TOML file with the same keys in lowercase without the prefix",
    ),
    (
        "RAMPART_DATABASE_URL",
        "sqlite://… (default sqlite://rampart-data/rampart.db) or postgres://…",
    ),
    (
        "RAMPART_REDIS_URL",
        "Redis for rate limits, quotas and key revocation fan-out (unset: in-process)",
    ),
    (
        "RAMPART_LISTEN",
        "public API address (default 127.0.0.1:8080)",
    ),
    (
        "RAMPART_OPS_LISTEN",
        "ops address for /metrics and /health/deep (default 127.0.0.1:9090)",
    ),
    (
        "RAMPART_BUILD_ID",
        "build id sent as x-build-id (default: compiled-in git sha)",
    ),
    (
        "RAMPART_TENANT_ID",
        "single-tenant deployment: the one org id allowed",
    ),
    (
        "RAMPART_SINGLE_TENANT_ENFORCE",
        "reject other orgs' identities (default true when RAMPART_TENANT_ID is set)",
    ),
    (
        "RAMPART_BILLING_ENFORCE",
        "subscription and tier gate (default true)",
    ),
    (
        "RAMPART_PUBLIC_RATE_LIMIT",
        "per-IP per-path limit on unauthenticated routes (default 60/min)",
    ),
    (
        "RAMPART_LOGIN_RATE_LIMIT",
        "login attempts per IP and per account (default 10/min)",
    ),
    (
        "RAMPART_TRUSTED_PROXIES",
        "comma-separated CIDRs whose X-Forwarded-For is believed",
    ),
    (
        "RAMPART_WEBHOOK_ALLOW_PRIVATE",
        "allow webhook targets on private/loopback addresses (default false)",
    ),
    (
        "RAMPART_WEBHOOK_ALLOWED_TARGETS",
        "comma-separated CIDRs and host names opened despite the SSRF guard",
    ),
    (
        "RAMPART_WEBHOOK_TIMEOUT",
        "timeout of one delivery attempt (default 15s)",
    ),
    (
        "RAMPART_WEBHOOK_SECRET_OVERLAP",
        "how long a rotated-out webhook secret still signs (default 24h)",
    ),
    ("RAMPART_RETRY_BASE_DELAY", "first retry delay (default 5s)"),
    ("RAMPART_RETRY_MAX_DELAY", "retry delay cap (default 10h)"),
    (
        "RAMPART_ENDPOINT_FAILURE_THRESHOLD",
        "exhausted deliveries in a row before an endpoint turns failed (default 3)",
    ),
    (
        "RAMPART_BILLING_WEBHOOK_SECRET",
        "Stripe-Signature secret for /v1/billing/events (unset: refuse all)",
    ),
    (
        "RAMPART_OPS_TOKEN",
        "bearer token required on the ops listener",
    ),
    (
        "RAMPART_OPS_WEBHOOK_URL",
        "where alerts are posted (signed), if set",
    ),
    (
        "RAMPART_OPS_WEBHOOK_SECRET",
        "whsec_… secret that signs alert posts (required with the URL)",
    ),
    (
        "RAMPART_ALERT_INTERVAL",
        "how often each instance evaluates alerts (default 10s)",
    ),
    (
        "RAMPART_SECRET_KEY",
        "encrypts webhook secrets, signs tokens (default: generated into the data dir)",
    ),
    (
        "RAMPART_DATA_DIR",
        "where generated files live (default: the SQLite file's directory, else rampart-data)",
    ),
    (
        "RAMPART_REQUEST_TIMEOUT",
        "per-request timeout (default 30s)",
    ),
    (
        "RAMPART_BODY_LIMIT",
        "request body limit in bytes (default 1048576)",
    ),
    (
        "RAMPART_SHUTDOWN_TIMEOUT",
        "how long in-flight work may finish on SIGTERM (default 30s)",
    ),
    (
        "RAMPART_LOG_FORMAT",
        "auto, json or text (default auto: JSON unless a terminal)",
    ),
    ("RAMPART_LOG", "log filter (default info)"),
    (
        "RAMPART_HSTS",
        "send Strict-Transport-Security (set when served over TLS; default false)",
    ),
    (
        "RAMPART_DB_MAX_CONNECTIONS",
        "database pool size (default 10)",
    ),
    (
        "RAMPART_JOB_LEASE",
        "job lease; must exceed the webhook timeout (default 60s)",
    ),
    (
        "RAMPART_WORKER_CONCURRENCY",
        "jobs one worker runs at once (default 256)",
    ),
    (
        "RAMPART_ACCESS_TOKEN_TTL",
        "access token lifetime (default 15m)",
    ),
    (
        "RAMPART_REFRESH_TOKEN_TTL",
        "refresh token lifetime (default 30d)",
    ),
    (
        "RAMPART_IDEMPOTENCY_TTL",
        "how long idempotency records are kept (default 24h)",
    ),
    (
        "RAMPART_REDIS_TIMEOUT",
        "timeout of one Redis call before failing open (default 50ms)",
    ),
    (
        "RAMPART_REDIS_LEASE",
        "how long units leased from Redis for a busy limit stay usable; 0ms: no leases (default 50ms)",
    ),
    (
        "RAMPART_ALERT_DLQ_SPIKE",
        "dead letters in 5 minutes that raise dlq_spike (default 10)",
    ),
    (
        "RAMPART_ALERT_QUEUE_BACKLOG",
        "due jobs waiting that raise queue_backlog (default 1000)",
    ),
    (
        "RAMPART_ALERT_WORKER_STALE",
        "heartbeat silence that raises worker_stale (default 30s)",
    ),
    (
        "RAMPART_RETENTION_DELIVERY_LOGS",
        "delivery log retention (default 30d)",
    ),
    (
        "RAMPART_RETENTION_DEAD_LETTERS",
        "resolved dead letter retention (default 30d)",
    ),
    (
        "RAMPART_EXPORT_LINK_TTL",
        "lifetime of an export download link (default 1h)",
    ),
    (
        "RAMPART_PUBLIC_BASE_URL",
        "external base URL used in links (default http://<listen>)",
    ),
    (
        "RAMPART_PLAN_STANDARD_RATE_LIMIT",
        "per-org request rate of the standard tier (default 100/s)",
    ),
    (
        "RAMPART_PLAN_FULL_RATE_LIMIT",
        "per-org request rate of the full tier (default 1000/s)",
    ),
    (
        "RAMPART_PLAN_STANDARD_QUOTA",
        "per-org request quota of the standard tier (default 1000000/day)",
    ),
    (
        "RAMPART_PLAN_FULL_QUOTA",
        "per-org request quota of the full tier (default 100000000/day)",
    ),
];

/// Where values come from: the environment first, then the TOML file.
struct Sources {
    env: HashMap<String, String>,
    file: HashMap<String, String>,
    file_path: Option<String>,
}

impl Sources {
    fn get(&self, var: &str) -> Option<String> {
        if let Some(v) = self.env.get(var) {
            return Some(v.clone());
        }
        let key = var.trim_start_matches("RAMPART_").to_ascii_lowercase();
        self.file.get(&key).cloned()
    }

    /// The name to blame for a bad value: the variable, or the key and the file.
    fn origin(&self, var: &str) -> String {
        if self.env.contains_key(var) {
            return var.to_owned();
        }
        let key = var.trim_start_matches("RAMPART_").to_ascii_lowercase();
        match (&self.file_path, self.file.contains_key(&key)) {
            (Some(p), true) => format!("{var} ({key} in {p})"),
            _ => var.to_owned(),
        }
    }

    fn parse<T>(
        &self,
        var: &str,
        default: T,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => f(v.trim()).map_err(|m| err(&self.origin(var), m)),
        }
    }

    fn opt<T>(
        &self,
        var: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => f(v.trim()).map(Some).map_err(|m| err(&self.origin(var), m)),
        }
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected a duration such as 500ms, 5s, 10m, 2h or 1d; got {s:?}"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" | "min" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => {
            return Err(format!(
                "expected a duration such as 500ms, 5s, 10m, 2h or 1d; got {s:?}"
            ));
        }
    };
    Ok(Duration::from_millis(ms))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false; got {s:?}")),
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("expected host:port such as 127.0.0.1:8080; got {s:?}"))
}

fn parse_u32(s: &str, min: u32, max: u32) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected an integer in {min}..={max}; got {s:?}")),
    }
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("expected a non-negative integer; got {s:?}"))
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    Rate::parse(s).ok_or_else(|| format!("expected N/s, N/min, N/h or N/day with N > 0; got {s:?}"))
}

fn parse_cidrs(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{p:?} is not a CIDR such as 10.0.0.0/8 or an IP address"))
        })
        .collect()
}

fn parse_targets(s: &str) -> Result<Vec<TargetRule>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            if let Ok(n) = p.parse::<IpNet>() {
                return Ok(TargetRule::Net(n));
            }
            if let Ok(a) = p.parse::<IpAddr>() {
                return Ok(TargetRule::Net(IpNet::from(a)));
            }
            let valid = p.len() <= 253
                && p.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if valid {
                Ok(TargetRule::Host(p.to_ascii_lowercase()))
            } else {
                Err(format!("{p:?} is neither a CIDR nor a host name"))
            }
        })
        .collect()
}

fn parse_db_url(s: &str) -> Result<Url, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(Url(s.to_owned()));
    }
    if s.starts_with("sqlite:") {
        if crate::store::sqlite_path(s).is_none() || s.contains(":memory:") {
            return Err("a SQLite URL needs a file path, e.g. sqlite://rampart-data/rampart.db (in-memory databases are not supported)".into());
        }
        return Ok(Url(s.to_owned()));
    }
    Err(format!(
        "expected sqlite://PATH or postgres://…; got {:?}",
        redact_url(s)
    ))
}

fn parse_http_url(s: &str) -> Result<String, String> {
    if (s.starts_with("https://") || s.starts_with("http://")) && s.len() > 8 {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!("expected an http(s) URL; got {:?}", redact_url(s)))
    }
}

impl Config {
    /// Reads the process environment (and `RAMPART_CONFIG`, if set).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_map(
            std::env::vars()
                .filter(|(k, _)| k.starts_with("RAMPART_"))
                .collect(),
        )
    }

    /// Reads from the given variables (tests pass their own).
    pub fn from_map(env: HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut src = Sources {
            env,
            file: HashMap::new(),
            file_path: None,
        };
        if let Some(path) = src
            .env
            .get("RAMPART_CONFIG")
            .cloned()
            .filter(|p| !p.is_empty())
        {
            src.file = read_toml(&path)?;
            src.file_path = Some(path);
        }
        let s = &src;

        let database_url = s.parse(
            "RAMPART_DATABASE_URL",
            Url("sqlite://rampart-data/rampart.db".into()),
            parse_db_url,
        )?;
        let redis_url = s.opt("RAMPART_REDIS_URL", |v| {
            if v.starts_with("redis://") || v.starts_with("rediss://") {
                Ok(Url(v.to_owned()))
            } else {
                Err(format!(
                    "expected redis://HOST:PORT; got {:?}",
                    redact_url(v)
                ))
            }
        })?;
        let listen = s.parse("RAMPART_LISTEN", ([127, 0, 0, 1], 8080).into(), parse_addr)?;
        let ops_listen = s.parse(
            "RAMPART_OPS_LISTEN",
            ([127, 0, 0, 1], 9090).into(),
            parse_addr,
        )?;
        let build_id = s.parse(
            "RAMPART_BUILD_ID",
            env!("COMPILED_BUILD_ID_OF_RAMPART").to_owned(),
            |v| {
                if !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
                {
                    Ok(v.to_owned())
                } else {
                    Err("expected 1-64 characters of [A-Za-z0-9._+-]".into())
                }
            },
        )?;
        let tenant_id = s.opt("RAMPART_TENANT_ID", |v| {
            if crate::ids::is_id(v, "org") {
                Ok(v.to_owned())
            } else {
                Err(format!("expected an org id such as org_01…; got {v:?}"))
            }
        })?;
        let single_tenant_enforce = s.parse(
            "RAMPART_SINGLE_TENANT_ENFORCE",
            tenant_id.is_some(),
            parse_bool,
        )?;
        if single_tenant_enforce && tenant_id.is_none() {
            return Err(err(
                "RAMPART_SINGLE_TENANT_ENFORCE",
                "is true but RAMPART_TENANT_ID is not set",
            ));
        }
        let billing_enforce = s.parse("RAMPART_BILLING_ENFORCE", true, parse_bool)?;
        let public_rate_limit = s.parse(
            "RAMPART_PUBLIC_RATE_LIMIT",
            Rate {
                count: 60,
                period_ms: 60_000,
            },
            parse_rate,
        )?;
        let login_rate_limit = s.parse(
            "RAMPART_LOGIN_RATE_LIMIT",
            Rate {
                count: 10,
                period_ms: 60_000,
            },
            parse_rate,
        )?;
        let trusted_proxies = s.parse("RAMPART_TRUSTED_PROXIES", Vec::new(), parse_cidrs)?;
        let webhook_allow_private = s.parse("RAMPART_WEBHOOK_ALLOW_PRIVATE", false, parse_bool)?;
        let webhook_allowed_targets =
            s.parse("RAMPART_WEBHOOK_ALLOWED_TARGETS", Vec::new(), parse_targets)?;
        let webhook_timeout = s.parse(
            "RAMPART_WEBHOOK_TIMEOUT",
            Duration::from_secs(15),
            parse_duration,
        )?;
        let webhook_secret_overlap = s.parse(
            "RAMPART_WEBHOOK_SECRET_OVERLAP",
            Duration::from_secs(24 * 3600),
            parse_duration,
        )?;
        let retry_base_delay = s.parse(
            "RAMPART_RETRY_BASE_DELAY",
            Duration::from_secs(5),
            parse_duration,
        )?;
        let retry_max_delay = s.parse(
            "RAMPART_RETRY_MAX_DELAY",
            Duration::from_secs(10 * 3600),
            parse_duration,
        )?;
        if retry_base_delay.is_zero() {
            return Err(err(
                &s.origin("RAMPART_RETRY_BASE_DELAY"),
                "must be greater than 0",
            ));
        }
        if retry_max_delay < retry_base_delay {
            return Err(err(
                &s.origin("RAMPART_RETRY_MAX_DELAY"),
                format!(
                    "must be at least RAMPART_RETRY_BASE_DELAY ({} ms)",
                    retry_base_delay.as_millis()
                ),
            ));
        }
        let endpoint_failure_threshold = s.parse("RAMPART_ENDPOINT_FAILURE_THRESHOLD", 3, |v| {
            parse_u32(v, 1, 1000)
        })?;
        let billing_webhook_secret =
            s.opt("RAMPART_BILLING_WEBHOOK_SECRET", |v| Ok(Secret::new(v)))?;
        let ops_token = s.opt("RAMPART_OPS_TOKEN", |v| {
            if v.len() >= 16 {
                Ok(Secret::new(v))
            } else {
                Err("must be at least 16 characters".into())
            }
        })?;
        let ops_webhook_url = s.opt("RAMPART_OPS_WEBHOOK_URL", parse_http_url)?;
        let ops_webhook_secret = s.opt("RAMPART_OPS_WEBHOOK_SECRET", |v| {
            if v.len() >= 24 {
                Ok(Secret::new(v))
            } else {
                Err("must be at least 24 characters (a whsec_… secret works)".into())
            }
        })?;
        if ops_webhook_url.is_some() && ops_webhook_secret.is_none() {
            return Err(err(
                &s.origin("RAMPART_OPS_WEBHOOK_SECRET"),
                "is required when RAMPART_OPS_WEBHOOK_URL is set (alerts are signed)",
            ));
        }
        let alert_interval = s.parse("RAMPART_ALERT_INTERVAL", Duration::from_secs(10), |v| {
            parse_duration(v).and_then(|d| {
                if d >= Duration::from_millis(100) {
                    Ok(d)
                } else {
                    Err("must be at least 100ms".into())
                }
            })
        })?;
        let secret_key = s.opt("RAMPART_SECRET_KEY", |v| {
            if v.len() >= 32 {
                Ok(Secret::new(v))
            } else {
                Err("must be at least 32 characters (e.g. `openssl rand -hex 32`)".into())
            }
        })?;
        let default_data_dir = crate::store::sqlite_path(database_url.expose())
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("rampart-data"));
        let data_dir = s.parse("RAMPART_DATA_DIR", default_data_dir, |v| {
            if v.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(PathBuf::from(v))
            }
        })?;
        let request_timeout = s.parse(
            "RAMPART_REQUEST_TIMEOUT",
            Duration::from_secs(30),
            parse_duration,
        )?;
        let body_limit = s.parse("RAMPART_BODY_LIMIT", 1_048_576usize, |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (1024..=64 * 1_048_576).contains(n))
                .ok_or_else(|| format!("expected bytes in 1024..=67108864; got {v:?}"))
        })?;
        let shutdown_timeout = s.parse(
            "RAMPART_SHUTDOWN_TIMEOUT",
            Duration::from_secs(30),
            parse_duration,
        )?;
        let log_format = s.parse("RAMPART_LOG_FORMAT", LogFormat::Auto, |v| match v {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(format!("expected auto, json or text; got {v:?}")),
        })?;
        let log_level = s.parse("RAMPART_LOG", "info".to_owned(), |v| {
            tracing_subscriber::EnvFilter::try_new(v)
                .map(|_| v.to_owned())
                .map_err(|e| format!("invalid log filter: {e}"))
        })?;
        let hsts = s.parse("RAMPART_HSTS", false, parse_bool)?;
        let db_max_connections =
            s.parse("RAMPART_DB_MAX_CONNECTIONS", 10, |v| parse_u32(v, 1, 1000))?;
        let job_lease = s.parse("RAMPART_JOB_LEASE", Duration::from_secs(60), parse_duration)?;
        if job_lease <= webhook_timeout + Duration::from_secs(5) {
            return Err(err(
                &s.origin("RAMPART_JOB_LEASE"),
                format!(
                    "must exceed RAMPART_WEBHOOK_TIMEOUT ({} s) by more than 5 s, or a slow delivery could run twice in parallel",
                    webhook_timeout.as_secs()
                ),
            ));
        }
        let worker_concurrency =
            s.parse("RAMPART_WORKER_CONCURRENCY", 256, |v| parse_u32(v, 1, 4096))?;
        let access_token_ttl = s.parse(
            "RAMPART_ACCESS_TOKEN_TTL",
            Duration::from_secs(900),
            parse_duration,
        )?;
        let refresh_token_ttl = s.parse(
            "RAMPART_REFRESH_TOKEN_TTL",
            Duration::from_secs(30 * 86_400),
            parse_duration,
        )?;
        let idempotency_ttl = s.parse(
            "RAMPART_IDEMPOTENCY_TTL",
            Duration::from_secs(86_400),
            parse_duration,
        )?;
        let redis_timeout = s.parse(
            "RAMPART_REDIS_TIMEOUT",
            Duration::from_millis(50),
            parse_duration,
        )?;
        let redis_lease = s.parse(
            "RAMPART_REDIS_LEASE",
            Duration::from_millis(50),
            parse_duration,
        )?;
        let alert_dlq_spike = s.parse("RAMPART_ALERT_DLQ_SPIKE", 10, parse_u64)?;
        let alert_queue_backlog = s.parse("RAMPART_ALERT_QUEUE_BACKLOG", 1000, parse_u64)?;
        let alert_worker_stale = s.parse(
            "RAMPART_ALERT_WORKER_STALE",
            Duration::from_secs(30),
            parse_duration,
        )?;
        let retention_delivery_logs = s.parse(
            "RAMPART_RETENTION_DELIVERY_LOGS",
            Duration::from_secs(30 * 86_400),
            parse_duration,
        )?;
        let retention_dead_letters = s.parse(
            "RAMPART_RETENTION_DEAD_LETTERS",
            Duration::from_secs(30 * 86_400),
            parse_duration,
        )?;
        let export_link_ttl = s.parse(
            "RAMPART_EXPORT_LINK_TTL",
            Duration::from_secs(3600),
            parse_duration,
        )?;
        let public_base_url = s.opt("RAMPART_PUBLIC_BASE_URL", parse_http_url)?;
        let plan_standard_rate_limit = s.parse(
            "RAMPART_PLAN_STANDARD_RATE_LIMIT",
            Rate::per_second(100),
            parse_rate,
        )?;
        let plan_full_rate_limit = s.parse(
            "RAMPART_PLAN_FULL_RATE_LIMIT",
            Rate::per_second(1000),
            parse_rate,
        )?;
        let day = |count| Rate {
            count,
            period_ms: 86_400_000,
        };
        let plan_standard_quota =
            s.parse("RAMPART_PLAN_STANDARD_QUOTA", day(1_000_000), parse_rate)?;
        let plan_full_quota = s.parse("RAMPART_PLAN_FULL_QUOTA", day(100_000_000), parse_rate)?;

        for (k, _) in src.env.iter() {
            if !VARIABLES.iter().any(|(v, _)| v == k) && !k.starts_with("RAMPART_TEST_") {
                return Err(err(
                    k,
                    "unknown variable (a typo?); see `rampart serve --help`",
                ));
            }
        }
        for k in src.file.keys() {
            let var = format!("RAMPART_{}", k.to_ascii_uppercase());
            if !VARIABLES.iter().any(|(v, _)| *v == var) || var == "RAMPART_CONFIG" {
                return Err(err(
                    &format!("{k} (in {})", src.file_path.clone().unwrap_or_default()),
                    "unknown key",
                ));
            }
        }

        Ok(Config {
            database_url,
            redis_url,
            listen,
            ops_listen,
            build_id,
            tenant_id,
            single_tenant_enforce,
            billing_enforce,
            public_rate_limit,
            login_rate_limit,
            trusted_proxies,
            webhook_allow_private,
            webhook_allowed_targets,
            webhook_timeout,
            webhook_secret_overlap,
            retry_base_delay,
            retry_max_delay,
            endpoint_failure_threshold,
            billing_webhook_secret,
            ops_token,
            ops_webhook_url,
            ops_webhook_secret,
            alert_interval,
            secret_key,
            data_dir,
            request_timeout,
            body_limit,
            shutdown_timeout,
            log_format,
            log_level,
            hsts,
            db_max_connections,
            job_lease,
            worker_concurrency,
            access_token_ttl,
            refresh_token_ttl,
            idempotency_ttl,
            redis_timeout,
            redis_lease,
            alert_dlq_spike,
            alert_queue_backlog,
            alert_worker_stale,
            retention_delivery_logs,
            retention_dead_letters,
            export_link_ttl,
            public_base_url,
            plan_standard_rate_limit,
            plan_full_rate_limit,
            plan_standard_quota,
            plan_full_quota,
        })
    }

    /// The base of links the server hands out (export downloads).
    pub fn base_url(&self) -> String {
        self.public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

fn read_toml(path: &str) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("RAMPART_CONFIG", format!("cannot read {path}: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        err(
            "RAMPART_CONFIG",
            format!("{path} is not valid TOML: {}", e.message()),
        )
    })?;
    let mut out = HashMap::new();
    for (k, v) in table {
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    toml::Value::String(s) => s,
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(err(
                    &format!("{k} (in {path})"),
                    format!("unsupported value {other:?}"),
                ));
            }
        };
        out.insert(k.to_ascii_lowercase(), s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_rate_limit.render(), "60/min");
        assert!(c.billing_enforce);
        assert!(!c.single_tenant_enforce);
        assert_eq!(c.data_dir, PathBuf::from("rampart-data"));
        assert_eq!(c.worker_concurrency, 256);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = cfg(&[("RAMPART_LISTEN", "nope")]).unwrap_err();
        assert_eq!(e.var, "RAMPART_LISTEN");
        assert!(
            e.to_string()
                .starts_with("RAMPART_LISTEN: expected host:port")
        );
        assert_eq!(
            cfg(&[("RAMPART_RETRY_BASE_DELAY", "5 parsecs")])
                .unwrap_err()
                .var,
            "RAMPART_RETRY_BASE_DELAY"
        );
        assert_eq!(
            cfg(&[("RAMPART_JOB_LEASE", "10s")]).unwrap_err().var,
            "RAMPART_JOB_LEASE"
        );
        assert_eq!(
            cfg(&[("RAMPART_LISTN", "x")]).unwrap_err().var,
            "RAMPART_LISTN"
        );
        assert_eq!(
            cfg(&[("RAMPART_SINGLE_TENANT_ENFORCE", "true")])
                .unwrap_err()
                .var,
            "RAMPART_SINGLE_TENANT_ENFORCE"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let c = cfg(&[
            (
                "RAMPART_DATABASE_URL",
                "postgres://app:hunter2hunter2@db/rampart",
            ),
            ("RAMPART_OPS_TOKEN", "ops-token-0123456789"),
            ("RAMPART_SECRET_KEY", "k".repeat(40).as_str()),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("ops-token"), "{dbg}");
        assert!(!dbg.contains("kkkk"), "{dbg}");
        assert!(dbg.contains("postgres://app:***@db/rampart"));
    }

    #[test]
    fn operations_doc_lists_every_variable() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
                .expect("docs/OPERATIONS.md");
        for (var, _) in VARIABLES {
            assert!(
                doc.contains(&format!("`{var}`")),
                "docs/OPERATIONS.md does not document {var}"
            );
        }
    }

    /// `cargo run` hands the build script's `rustc-env` variables to the binary, so one named
    /// `RAMPART_*` would make `cargo run -- serve` refuse to start as an unknown variable.
    #[test]
    fn build_script_exports_no_rampart_variable() {
        let build = include_str!("../build.rs");
        assert!(!build.contains("rustc-env=RAMPART_"));
    }

    #[test]
    fn rates_and_durations_parse() {
        assert_eq!(Rate::parse("5/s"), Some(Rate::per_second(5)));
        assert_eq!(Rate::parse("100/day").unwrap().period_ms, 86_400_000);
        assert_eq!(Rate::parse("0/s"), None);
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10h").unwrap(), Duration::from_secs(36_000));
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn toml_file_is_read_and_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:7000\"\nbilling_enforce = false\ntrusted_proxies = [\"10.0.0.0/8\"]\n").unwrap();
        let c = cfg(&[
            ("RAMPART_CONFIG", p.to_str().unwrap()),
            ("RAMPART_BILLING_ENFORCE", "true"),
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert!(c.billing_enforce);
        assert_eq!(c.trusted_proxies.len(), 1);
        std::fs::write(&p, "listen = \"bad\"\n").unwrap();
        let e = cfg(&[("RAMPART_CONFIG", p.to_str().unwrap())]).unwrap_err();
        assert!(e.var.starts_with("RAMPART_LISTEN (listen in"), "{e}");
    }
}
