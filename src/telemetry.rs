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
    // A panic anywhere (a job, a handler) is logged as a structured error, with the request's
    // span when there is one, instead of going to stderr unformatted.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!(panic.message = %message, panic.location = location.as_deref(), "panicked");
    }));
}
