//! `rampart migrate` and `rampart migrate verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Config;
use crate::store::migrate::{self, MigrationSet};
use crate::store::{ConnectOptions, Db, Dialect};

pub async fn apply(config: Config) -> anyhow::Result<ExitCode> {
    crate::outbound::install_crypto_provider();
    let db = Db::connect(config.database_url.expose(), &ConnectOptions::default())
        .await
        .with_context(|| format!("cannot open {}", config.database_url.redacted()))?;
    let ran = migrate::apply(&db).await?;
    if ran.is_empty() {
        println!("migrations: up to date");
    } else {
        let list: Vec<String> = ran.iter().map(|v| format!("{v:04}")).collect();
        println!("migrations: applied {}", list.join(", "));
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(
    config: Config,
    dir: Option<PathBuf>,
    offline: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    crate::outbound::install_crypto_provider();
    let (sqlite, postgres) = match &dir {
        Some(d) => (
            MigrationSet::from_dir(d, Dialect::Sqlite)
                .with_context(|| format!("cannot read {}/sqlite", d.display()))?,
            MigrationSet::from_dir(d, Dialect::Postgres)
                .with_context(|| format!("cannot read {}/postgres", d.display()))?,
        ),
        None => (
            MigrationSet::embedded(Dialect::Sqlite),
            MigrationSet::embedded(Dialect::Postgres),
        ),
    };
    let db = if offline {
        None
    } else {
        Some(
            Db::connect(config.database_url.expose(), &ConnectOptions::default())
                .await
                .with_context(|| format!("cannot open {}", config.database_url.redacted()))?,
        )
    };
    let report = migrate::verify(&sqlite, &postgres, db.as_ref()).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
