//! The job runner.

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// `rampart worker`: a worker process without listeners.
pub async fn run_standalone(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = crate::cli_support::open_db(&config).await?;
    tracing::info!(store = db.dialect().name(), "worker started");
    shutdown.cancelled().await;
    db.close().await;
    Ok(())
}
