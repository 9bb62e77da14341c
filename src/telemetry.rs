//! Structured logs: JSON when stdout is not a terminal (or when asked), human text otherwise.
//! Every line inside a request carries the request's span, and so its `request_id`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Servers log to stdout at the configured level; one-shot
/// commands log warnings to stderr so that their stdout stays machine-readable.
pub fn init(config: &Config, server: bool) {
    let level = if server {
        config.log_level.clone()
    } else {
        "warn".to_owned()
    };
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_target(false);
    let result = match (json, server) {
        (true, true) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        (true, false) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .try_init(),
        (false, true) => builder.try_init(),
        (false, false) => builder.with_writer(std::io::stderr).try_init(),
    };
    let _ = result;
}
