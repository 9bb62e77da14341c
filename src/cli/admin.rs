//! `rampart admin …`: bootstrap orgs, users, keys and subscriptions straight in the database.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use crate::access::grants::Role;
use crate::access::password;
use crate::config::{Config, ConfigError};
use crate::ids::OrgId;
use crate::orgs::{self, SubStatus, Tier};
use crate::store::Db;
use crate::users;

use super::output;

#[derive(Subcommand, Debug)]
pub enum AdminAction {
    /// Create an org and print its id.
    CreateOrg {
        #[arg(long)]
        name: String,
        /// The deployment operator's org: its admins manage incidents on the status page.
        #[arg(long)]
        platform: bool,
        #[arg(long)]
        json: bool,
    },
    /// Create a user (or add an existing one) as a member of an org.
    CreateUser {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// owner, admin, developer or viewer.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set an org's subscription status and tier.
    SetSubscription {
        #[arg(long)]
        org: String,
        /// active, trialing, past_due or canceled.
        #[arg(long)]
        status: String,
        /// standard or full.
        #[arg(long)]
        tier: String,
        #[arg(long)]
        json: bool,
    },
}

fn usage(flag: &str, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(ConfigError {
        var: flag.to_owned(),
        message: message.into(),
    })
}

pub(super) async fn open(config: &Config) -> anyhow::Result<Db> {
    crate::cli_support::open_db(config).await
}

async fn existing_org(db: &Db, id: &str) -> anyhow::Result<OrgId> {
    let org = OrgId::parse(id).ok_or_else(|| usage("--org", format!("{id:?} is not an org id")))?;
    if orgs::get(&mut db.clone(), org.as_str()).await?.is_none() {
        bail!("org {id} does not exist");
    }
    Ok(org)
}

pub async fn run(config: Config, action: AdminAction) -> anyhow::Result<ExitCode> {
    match action {
        AdminAction::CreateOrg {
            name,
            platform,
            json,
        } => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Err(usage("--name", "must be 1-200 printable characters"));
            }
            let db = open(&config).await?;
            let mut tx = db.begin().await?;
            let org = orgs::create(&mut tx, &name, platform, None).await?;
            tx.commit().await?;
            output(
                json,
                json!({ "id": org.id, "name": org.name, "platform": platform }),
                org.id.to_string(),
            );
        }
        AdminAction::CreateUser {
            org,
            email,
            role,
            password_stdin: _,
            json,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| usage("--role", "must be one of owner, admin, developer, viewer"))?;
            let mut checks = crate::http::Checks::new();
            checks.email("email", &email);
            if !checks.is_empty() {
                return Err(usage("--email", "must be an email address"));
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let pw = line.trim_end_matches(['\n', '\r']).to_owned();
            password::check_strength(&pw)
                .map_err(|m| usage("--password-stdin", format!("the password {m}")))?;
            let db = open(&config).await?;
            let org = existing_org(&db, &org).await?;
            let existing = users::by_email(&mut db.clone(), &email).await?;
            let hash = match existing {
                Some(_) => None,
                None => Some(password::hash(pw).await?),
            };
            let mut tx = db.begin().await?;
            let (user_id, created) = match (&existing, hash) {
                (Some(u), _) => (u.id.clone(), false),
                (None, Some(h)) => (users::create(&mut tx, &email, &h).await?, true),
                (None, None) => unreachable!("a hash is computed for new users"),
            };
            if users::role_in(&mut tx, &org, &user_id).await?.is_some() {
                bail!(
                    "{} is already a member of {org}",
                    users::normalise_email(&email)
                );
            }
            users::add_membership(&mut tx, &org, &user_id, role).await?;
            tx.commit().await?;
            let note = if created {
                ""
            } else {
                " (existing user added; password unchanged)"
            };
            output(
                json,
                json!({ "id": user_id, "email": users::normalise_email(&email), "org_id": org, "role": role, "created": created }),
                format!("{user_id}{note}"),
            );
        }
        AdminAction::SetSubscription {
            org,
            status,
            tier,
            json,
        } => {
            let status = SubStatus::parse(&status).ok_or_else(|| {
                usage(
                    "--status",
                    "must be one of active, trialing, past_due, canceled",
                )
            })?;
            let tier =
                Tier::parse(&tier).ok_or_else(|| usage("--tier", "must be standard or full"))?;
            let db = open(&config).await?;
            let org = existing_org(&db, &org).await?;
            let mut tx = db.begin().await?;
            orgs::set_subscription(&mut tx, &org, status, tier, "admin", None).await?;
            tx.commit().await?;
            output(
                json,
                json!({ "org_id": org, "status": status, "tier": tier }),
                format!("{org}: {} {}", status.as_str(), tier.as_str()),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
