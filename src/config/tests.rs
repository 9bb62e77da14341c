use std::path::PathBuf;
use std::time::Duration;

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
    assert_eq!(c.sqlite_synchronous, SqliteSynchronous::Full);
}

#[test]
fn defaults_match_the_values_the_code_used_before_the_declaration() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.database_url.expose(), "sqlite://rampart-data/rampart.db");
    assert_eq!(c.ops_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.login_rate_limit, Rate::parse("10/min").unwrap());
    assert_eq!(c.webhook_timeout, Duration::from_secs(15));
    assert_eq!(c.webhook_secret_overlap, Duration::from_secs(86_400));
    assert_eq!(c.retry_base_delay, Duration::from_secs(5));
    assert_eq!(c.retry_max_delay, Duration::from_secs(36_000));
    assert_eq!(c.endpoint_failure_threshold, 3);
    assert_eq!(c.alert_interval, Duration::from_secs(10));
    assert_eq!(c.request_timeout, Duration::from_secs(30));
    assert_eq!(c.body_limit, 1_048_576);
    assert_eq!(c.log_format, LogFormat::Auto);
    assert_eq!(c.log_level, "info");
    assert!(!c.hsts && !c.webhook_allow_private);
    assert_eq!(c.db_max_connections, 10);
    assert_eq!(c.job_lease, Duration::from_secs(60));
    assert_eq!(c.access_token_ttl, Duration::from_secs(900));
    assert_eq!(c.refresh_token_ttl, Duration::from_secs(30 * 86_400));
    assert_eq!(c.refresh_reuse_interval, Duration::from_secs(10));
    assert_eq!(c.device_token_ttl, Duration::from_secs(90 * 86_400));
    assert_eq!(c.redis_timeout, Duration::from_millis(50));
    assert_eq!(c.redis_lease, Duration::from_millis(50));
    assert_eq!((c.alert_dlq_spike, c.alert_queue_backlog), (10, 1000));
    assert_eq!(c.export_link_ttl, Duration::from_secs(3600));
    assert_eq!(c.plan_full_rate_limit, Rate::per_second(1000));
    assert_eq!(c.plan_standard_quota.count, 1_000_000);
    assert_eq!(c.plan_full_quota.period_ms, 86_400_000);
    assert!(c.redis_url.is_none() && c.secret_key.is_none() && c.public_base_url.is_none());
    assert!(c.trusted_proxies.is_empty() && c.webhook_allowed_targets.is_empty());
    assert!(!c.build_id.is_empty());
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
fn each_rule_across_variables_blames_the_variable_to_change() {
    let e = cfg(&[("RAMPART_RETRY_MAX_DELAY", "1s")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RAMPART_RETRY_MAX_DELAY: must be at least RAMPART_RETRY_BASE_DELAY (5000 ms)"
    );
    let e = cfg(&[("RAMPART_OPS_WEBHOOK_URL", "https://alerts.example")]).unwrap_err();
    assert_eq!(e.var, "RAMPART_OPS_WEBHOOK_SECRET (not set)");
    assert!(e.message.contains("RAMPART_OPS_WEBHOOK_URL"), "{e}");
    let e = cfg(&[("RAMPART_WEBHOOK_TIMEOUT", "55s")]).unwrap_err();
    assert_eq!(e.var, "RAMPART_JOB_LEASE (not set)");
    assert!(e.message.contains("(55 s) by more than 5 s"), "{e}");
    assert!(cfg(&[("RAMPART_WEBHOOK_TIMEOUT", "54s")]).is_ok());
    let e = cfg(&[("RAMPART_REFRESH_REUSE_INTERVAL", "61s")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RAMPART_REFRESH_REUSE_INTERVAL: must be at most 60s"
    );
    assert!(cfg(&[("RAMPART_REFRESH_REUSE_INTERVAL", "0s")]).is_ok());
    let tenant = "org_01hzy0k3t9v6d1q2w3e4r5t6y7";
    let c = cfg(&[("RAMPART_TENANT_ID", tenant)]).unwrap();
    assert!(c.single_tenant_enforce, "enforced by default with a tenant");
    let c = cfg(&[
        ("RAMPART_TENANT_ID", tenant),
        ("RAMPART_SINGLE_TENANT_ENFORCE", "false"),
    ])
    .unwrap();
    assert!(!c.single_tenant_enforce);
}

#[test]
fn single_field_bounds_are_checked() {
    for (var, value, message) in [
        ("RAMPART_RETRY_BASE_DELAY", "0s", "must be greater than 0"),
        ("RAMPART_ALERT_INTERVAL", "50ms", "must be at least 100ms"),
        (
            "RAMPART_OPS_TOKEN",
            "short",
            "must be at least 16 characters",
        ),
        (
            "RAMPART_WORKER_CONCURRENCY",
            "0",
            "expected an integer in 1..=4096",
        ),
        (
            "RAMPART_BODY_LIMIT",
            "10",
            "expected an integer in 1024..=67108864",
        ),
        (
            "RAMPART_ALERT_DLQ_SPIKE",
            "-1",
            "expected a non-negative integer",
        ),
        ("RAMPART_DATA_DIR", "", "must not be empty"),
        (
            "RAMPART_LOG_FORMAT",
            "xml",
            "expected one of auto, json, text",
        ),
        ("RAMPART_REDIS_LEASE", "99999999999999999d", "is too long"),
    ] {
        let e = cfg(&[(var, value)]).unwrap_err();
        assert_eq!(e.var, var);
        assert!(e.message.contains(message), "{e}");
    }
}

#[test]
fn sqlite_synchronous_is_full_or_normal() {
    let c = cfg(&[("RAMPART_SQLITE_SYNCHRONOUS", "normal")]).unwrap();
    assert_eq!(c.sqlite_synchronous, SqliteSynchronous::Normal);
    let e = cfg(&[("RAMPART_SQLITE_SYNCHRONOUS", "off")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RAMPART_SQLITE_SYNCHRONOUS: expected one of full, normal; got \"off\""
    );
}

#[test]
fn secrets_are_redacted() {
    let c = cfg(&[
        (
            "RAMPART_DATABASE_URL",
            "postgres://app:hunter2hunter2@db/rampart",
        ),
        ("RAMPART_REDIS_URL", "redis://:redispassword@cache:6379"),
        ("RAMPART_OPS_TOKEN", "ops-token-0123456789"),
        ("RAMPART_SECRET_KEY", "k".repeat(40).as_str()),
        ("RAMPART_BILLING_WEBHOOK_SECRET", "whsec_stripe-sig-secret"),
        ("RAMPART_OPS_WEBHOOK_URL", "https://alerts.example/hook"),
        (
            "RAMPART_OPS_WEBHOOK_SECRET",
            "whsec_alert-signing-secret-0001",
        ),
    ])
    .unwrap();
    let dbg = format!("{c:?}");
    for secret in [
        "hunter2",
        "redispassword",
        "ops-token",
        "kkkk",
        "stripe-sig",
        "alert-signing",
    ] {
        assert!(!dbg.contains(secret), "{secret} in {dbg}");
    }
    assert!(dbg.contains("postgres://app:***@db/rampart"));
}

#[test]
fn names_and_file_keys_are_unique_and_prefixed() {
    let mut keys = std::collections::HashSet::new();
    for name in variables::NAMES {
        assert!(name.starts_with("RAMPART_") && !name.starts_with("RAMPART_TEST_"));
        assert!(
            keys.insert(sources::file_key(name)),
            "{name} declared twice"
        );
    }
    assert!(!keys.contains(&sources::file_key(sources::CONFIG_FILE_VAR)));
}

/// `cargo run` hands the build script's `rustc-env` variables to the binary, so one named
/// `RAMPART_*` would make `cargo run -- serve` refuse to start as an unknown variable.
#[test]
fn build_script_exports_no_rampart_variable() {
    let build = include_str!("../../build.rs");
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

#[test]
fn toml_file_takes_typed_values_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.toml");
    let path = p.to_str().unwrap();
    std::fs::write(
        &p,
        "worker_concurrency = 8\nsqlite_synchronous = \"normal\"\n",
    )
    .unwrap();
    let c = cfg(&[("RAMPART_CONFIG", path)]).unwrap();
    assert_eq!(c.worker_concurrency, 8);
    assert_eq!(c.sqlite_synchronous, SqliteSynchronous::Normal);
    std::fs::write(&p, "listn = \"127.0.0.1:1\"\n").unwrap();
    let e = cfg(&[("RAMPART_CONFIG", path)]).unwrap_err();
    assert_eq!(e.to_string(), format!("listn (in {path}): unknown key"));
    std::fs::write(&p, "config = \"other.toml\"\n").unwrap();
    assert!(cfg(&[("RAMPART_CONFIG", path)]).is_err());
    std::fs::write(&p, "job_lease = \"10s\"\n").unwrap();
    let e = cfg(&[("RAMPART_CONFIG", path)]).unwrap_err();
    assert_eq!(e.var, format!("RAMPART_JOB_LEASE (job_lease in {path})"));
    let e = cfg(&[("RAMPART_CONFIG", "/nonexistent/rampart.toml")]).unwrap_err();
    assert_eq!(e.var, "RAMPART_CONFIG");
}

#[test]
fn test_variables_are_ignored() {
    assert!(cfg(&[("RAMPART_TEST_POSTGRES_URL", "postgres://x")]).is_ok());
}
