//! `rampart serve` and `rampart worker`: run until SIGTERM or SIGINT, then drain.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::app::{App, ServeOptions};
use crate::config::Config;

/// Cancels `token` on SIGTERM or SIGINT.
fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received");
        token.cancel();
    });
}

pub async fn serve(config: Config, no_worker: bool) -> anyhow::Result<ExitCode> {
    let app = App::build(config, ServeOptions { no_worker }).await?;
    let token = CancellationToken::new();
    on_signal(token.clone());
    app.run(token).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(config: Config) -> anyhow::Result<ExitCode> {
    let token = CancellationToken::new();
    on_signal(token.clone());
    crate::app::run_worker(config, token).await?;
    Ok(ExitCode::SUCCESS)
}
