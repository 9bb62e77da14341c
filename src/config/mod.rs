//! One typed, validated configuration: `RAMPART_*` environment variables, then an optional
//! TOML file (`RAMPART_CONFIG`), then defaults. Validated before anything binds; a bad value is
//! one line naming the variable and where its value came from.
//!
//! - `variables.rs`: every variable, declared once (the one place to add one);
//! - `declare.rs`: the macro that turns those rows into `Config`, its loader and its docs;
//! - `kinds.rs`, `addresses.rs`: value kinds (parsing, validation, type names);
//! - `types.rs`: the domain types (`Secret`, `Url`, `Rate`, …);
//! - `sources.rs`: environment, TOML file, defaults; `rules.rs`: rules across variables;
//! - `docs.rs`: the variable table of docs/OPERATIONS.md.

mod addresses;
mod declare;
pub mod docs;
mod kinds;
mod rules;
mod sources;
#[cfg(test)]
mod tests;
mod types;
mod variables;

use std::collections::HashMap;
use std::fmt;

pub use addresses::sqlite_path;
pub use kinds::parse_duration;
pub use types::{LogFormat, Rate, Secret, SqliteSynchronous, TargetRule, Url, redact_url};
pub use variables::Config;

/// A configuration error: the variable (and where its value came from) and what is wrong.
/// `var` is `RAMPART_X` for the environment, `RAMPART_X (x in FILE)` for the TOML file and
/// `RAMPART_X (not set)` when a default broke a rule; command-line flags use it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &str, message: impl Into<String>) -> Self {
        ConfigError {
            var: var.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

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
        let src = sources::Sources::read(env)?;
        src.refuse_unknown(variables::NAMES)?;
        let config = variables::load(&src)?;
        rules::check(&config, &src)?;
        Ok(config)
    }

    /// The base of links the server hands out (export downloads).
    pub fn base_url(&self) -> String {
        self.public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}
