//! Shared start-up steps of the commands that are not `serve`.

use anyhow::Context as _;

use crate::config::Config;
use crate::store::{ConnectOptions, Db, migrate};

/// Opens the database and applies migrations, as `serve` does.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    crate::outbound::install_crypto_provider();
    let db = Db::connect(config.database_url.expose(), &ConnectOptions::from(config))
        .await
        .with_context(|| format!("cannot open {}", config.database_url.redacted()))?;
    migrate::apply(&db)
        .await
        .with_context(|| format!("cannot migrate {}", config.database_url.redacted()))?;
    Ok(db)
}
