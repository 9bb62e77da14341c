//! The `rampart` command line.
//!
//! Exit codes: 0 success; 1 a command failed (database unreachable, drift found); 2 bad usage
//! or configuration (one line on stderr naming the variable or flag).

mod admin;
mod audit;
mod migrate;
mod serve;
mod support;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Parser, Debug)]
#[command(
    name = "rampart",
    version,
    about = "Hardened, self-hostable API runtime for multi-tenant messaging",
    long_about = "Hardened, self-hostable API runtime for multi-tenant messaging.\n\nConfiguration comes from RAMPART_* environment variables and an optional TOML file named by RAMPART_CONFIG; see docs/OPERATIONS.md for the full list."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API listener, the ops listener and (unless --no-worker) a job worker.
    Serve {
        /// Serve the API only; run jobs in separate `rampart worker` processes.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run a job worker and scheduler only (scale-out).
    Worker,
    /// Apply pending migrations (or `migrate verify`).
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// List every HTTP route with its guard profile.
    Routes {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Administration straight against the database.
    Admin {
        #[command(subcommand)]
        action: admin::AdminAction,
    },
    /// Write a consistent online backup (portable NDJSON with checksums) to FILE.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into an empty database of either store, then verify it.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The audit log's hash chains.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// Check every chain (or one org's); exit 1 naming the first edited, deleted or reordered entry.
    Verify {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MigrateAction {
    /// Check ordering, gaps, checksums, dialect parity and database parity; exit 1 on drift.
    Verify {
        /// Verify the migration files in DIR/sqlite and DIR/postgres instead of the embedded ones.
        #[arg(long, value_name = "DIR")]
        migrations_dir: Option<std::path::PathBuf>,
        /// Only check the migration sets, without a database.
        #[arg(long)]
        offline: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Command::Routes { json } = &cli.command {
        return routes(*json);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let server = matches!(cli.command, Command::Serve { .. } | Command::Worker);
    crate::telemetry::init(&config, server);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli.command, config))
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

async fn run(command: Command, config: Config) -> ExitCode {
    let result = match command {
        Command::Serve { no_worker } => serve::serve(config, no_worker).await,
        Command::Worker => serve::worker(config).await,
        Command::Migrate { action: None } => migrate::apply(config).await,
        Command::Migrate {
            action:
                Some(MigrateAction::Verify {
                    migrations_dir,
                    offline,
                    json,
                }),
        } => migrate::verify(config, migrations_dir, offline, json).await,
        Command::Admin { action } => admin::run(config, action).await,
        Command::Audit {
            action: AuditAction::Verify { org, json },
        } => audit::verify(config, org, json).await,
        Command::Backup { out, json } => backup(config, out, json).await,
        Command::Restore { from, json } => restore(config, from, json).await,
        Command::Routes { .. } => unreachable!("handled before configuration"),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                return config_error(ce);
            }
            if let Some(k @ crate::access::secrets::KeyCheckError::Mismatch) =
                e.downcast_ref::<crate::access::secrets::KeyCheckError>()
            {
                eprintln!("{k}");
                return ExitCode::from(2);
            }
            eprintln!("rampart: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn routes(json: bool) -> ExitCode {
    let routes: Vec<_> = crate::app::all_routes()
        .iter()
        .map(|r| r.describe())
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&routes).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    // The path column fits the longest path.
    let w = routes
        .iter()
        .map(|r| r.path.len())
        .max()
        .unwrap_or(0)
        .max(42);
    println!(
        "{:<7} {:<w$} {:<14} {:<19} {:<7} {:<10} {:<9} {:<8} AUDIT",
        "METHOD", "PATH", "AUTH", "SCOPE", "PERM", "LIMIT", "IDEMP", "BILLING"
    );
    for r in routes {
        let p = &r.profile;
        let auth = if p.auth.is_empty() {
            "public".to_owned()
        } else {
            p.auth
                .iter()
                .map(|a| match a {
                    crate::http::routes::AuthKind::User => "user",
                    crate::http::routes::AuthKind::ApiKey => "key",
                })
                .collect::<Vec<_>>()
                .join("+")
        };
        let v = |x: serde_json::Value| x.as_str().unwrap_or("-").to_owned();
        println!(
            "{:<7} {:<w$} {:<14} {:<19} {:<7} {:<10} {:<9} {:<8} {}",
            r.method,
            r.path,
            auth,
            p.scope.map_or("-", |s| s.as_str()),
            p.permission.map_or("-", |s| s.as_str()),
            v(serde_json::to_value(p.rate_limit).unwrap_or_default()),
            v(serde_json::to_value(p.idempotency).unwrap_or_default()),
            v(serde_json::to_value(p.billing).unwrap_or_default()),
            v(serde_json::to_value(p.audit).unwrap_or_default()),
        );
    }
    ExitCode::SUCCESS
}

/// Prints `value` as JSON or `text`, the shape every admin command shares.
pub(crate) fn output(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

async fn backup(config: Config, out: std::path::PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let db = support::open_db(&config).await?;
    let summary = crate::ops::backup::backup(&db, &out, &config.build_id, &mut |m| {
        eprintln!("backup: {m}")
    })
    .await?;
    db.close().await;
    let total: u64 = summary.tables.values().sum();
    output(
        json,
        serde_json::to_value(&summary).unwrap_or_default(),
        format!(
            "backup written to {} ({total} rows, {} bytes, sha256 {})",
            summary.file, summary.bytes, summary.sha256
        ),
    );
    Ok(ExitCode::SUCCESS)
}

async fn restore(config: Config, from: std::path::PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    crate::outbound::install_crypto_provider();
    let db = crate::store::Db::connect(
        config.database_url.expose(),
        &crate::store::ConnectOptions::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", config.database_url.redacted()))?;
    let counts =
        crate::ops::backup::restore(&db, &from, &mut |m| eprintln!("restore: {m}")).await?;
    db.close().await;
    let total: u64 = counts.values().sum();
    output(
        json,
        serde_json::json!({ "restored": true, "tables": counts }),
        format!(
            "restored {total} rows from {}; migrations parity and row counts verified",
            from.display()
        ),
    );
    Ok(ExitCode::SUCCESS)
}
