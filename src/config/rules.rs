//! Rules across variables, checked once every variable has parsed. Each rule is named, blames
//! one variable (the one to change) and is listed under the variable table in
//! docs/OPERATIONS.md.

use std::time::Duration;

use super::sources::Sources;
use super::{Config, ConfigError};

pub struct Rule {
    /// The variable the error names.
    pub blame: &'static str,
    /// The rule in words, for the docs.
    pub doc: &'static str,
    /// What is wrong with the blamed variable, if anything.
    pub check: fn(&Config) -> Result<(), String>,
}

pub const RULES: &[Rule] = &[
    Rule {
        blame: "RAMPART_SINGLE_TENANT_ENFORCE",
        doc: "`RAMPART_SINGLE_TENANT_ENFORCE=true` needs `RAMPART_TENANT_ID`.",
        check: single_tenant_enforcement_names_the_tenant,
    },
    Rule {
        blame: "RAMPART_RETRY_MAX_DELAY",
        doc: "`RAMPART_RETRY_MAX_DELAY` is at least `RAMPART_RETRY_BASE_DELAY`.",
        check: retry_cap_is_not_below_the_first_delay,
    },
    Rule {
        blame: "RAMPART_OPS_WEBHOOK_SECRET",
        doc: "`RAMPART_OPS_WEBHOOK_URL` needs `RAMPART_OPS_WEBHOOK_SECRET` (alerts are signed).",
        check: alert_posts_are_signed,
    },
    Rule {
        blame: "RAMPART_JOB_LEASE",
        doc: "`RAMPART_JOB_LEASE` exceeds `RAMPART_WEBHOOK_TIMEOUT` by more than 5 s, or a slow \
              delivery could run twice in parallel.",
        check: job_lease_outlasts_a_delivery,
    },
    Rule {
        blame: "RAMPART_BODY_TIMEOUT",
        doc: "`RAMPART_BODY_TIMEOUT` is below `RAMPART_REQUEST_TIMEOUT`, so that a stalled \
              upload is the client's 408, not the server's 503.",
        check: a_stalled_body_times_out_before_the_request,
    },
    Rule {
        blame: "RAMPART_REFRESH_REUSE_INTERVAL",
        doc: "`RAMPART_REFRESH_REUSE_INTERVAL` is at most 60 s: for that long a stolen, spent \
              refresh token still works once its owner has refreshed.",
        check: refresh_reuse_interval_is_short,
    },
];

/// The first rule broken, blaming its variable and where that variable's value came from.
pub fn check(config: &Config, src: &Sources) -> Result<(), ConfigError> {
    for rule in RULES {
        (rule.check)(config).map_err(|m| ConfigError::new(&src.blame(rule.blame), m))?;
    }
    Ok(())
}

fn single_tenant_enforcement_names_the_tenant(c: &Config) -> Result<(), String> {
    if c.single_tenant_enforce && c.tenant_id.is_none() {
        return Err("is true but RAMPART_TENANT_ID is not set".into());
    }
    Ok(())
}

fn retry_cap_is_not_below_the_first_delay(c: &Config) -> Result<(), String> {
    if c.retry_max_delay < c.retry_base_delay {
        return Err(format!(
            "must be at least RAMPART_RETRY_BASE_DELAY ({} ms)",
            c.retry_base_delay.as_millis()
        ));
    }
    Ok(())
}

fn alert_posts_are_signed(c: &Config) -> Result<(), String> {
    if c.ops_webhook_url.is_some() && c.ops_webhook_secret.is_none() {
        return Err("is required when RAMPART_OPS_WEBHOOK_URL is set (alerts are signed)".into());
    }
    Ok(())
}

/// A lease shorter than a delivery attempt plus slack lets another worker take the job over
/// while the first is still delivering it.
fn job_lease_outlasts_a_delivery(c: &Config) -> Result<(), String> {
    if c.job_lease <= c.webhook_timeout + Duration::from_secs(5) {
        return Err(format!(
            "must exceed RAMPART_WEBHOOK_TIMEOUT ({} s) by more than 5 s, or a slow delivery could run twice in parallel",
            c.webhook_timeout.as_secs()
        ));
    }
    Ok(())
}

fn a_stalled_body_times_out_before_the_request(c: &Config) -> Result<(), String> {
    if c.body_timeout >= c.request_timeout {
        return Err(format!(
            "must be below RAMPART_REQUEST_TIMEOUT ({} ms)",
            c.request_timeout.as_millis()
        ));
    }
    Ok(())
}

/// The reuse interval is a convenience for retries, not a session length: a longer one keeps
/// a stolen, spent refresh token useful for longer.
fn refresh_reuse_interval_is_short(c: &Config) -> Result<(), String> {
    if c.refresh_reuse_interval > Duration::from_secs(60) {
        return Err("must be at most 60s".into());
    }
    Ok(())
}
