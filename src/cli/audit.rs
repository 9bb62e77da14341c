//! `rampart audit verify`.

use std::process::ExitCode;

use crate::config::{Config, ConfigError};
use crate::ids::OrgId;

pub async fn verify(config: Config, org: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let chain = match org {
        Some(o) => Some(
            OrgId::parse(&o)
                .ok_or_else(|| ConfigError {
                    var: "--org".into(),
                    message: format!("{o:?} is not an org id"),
                })?
                .to_string(),
        ),
        None => None,
    };
    let db = super::support::open_db(&config).await?;
    // One snapshot, as `GET /v1/audit-logs/verify` reads it: entries appended meanwhile by a
    // running server cannot look like a break.
    let mut snap = db.begin_snapshot().await?;
    let (checked, broken) = crate::audit::verify(&mut snap, chain.as_deref()).await?;
    snap.rollback().await?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": broken.is_none(), "entries_checked": checked, "first_break": broken })
        );
    } else {
        match &broken {
            None => println!("ok: {checked} audit entries verified, every chain intact"),
            Some(b) => println!(
                "BROKEN: chain {} at entry {}{}: {}",
                b.chain,
                b.seq,
                b.entry_id
                    .as_deref()
                    .map(|i| format!(" ({i})"))
                    .unwrap_or_default(),
                b.problem
            ),
        }
    }
    db.close().await;
    Ok(if broken.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
