//! `rampart admin …`: bootstrap orgs, users, keys and subscriptions straight in the database.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use crate::access::grants::{self, Role};
use crate::access::password;
use crate::access::principal::{Actor, Environment};
use crate::api_keys::NewKey;
use crate::audit::{self, Entry, RequestMeta};
use crate::billing::store::{Source, set_plan_override, set_subscription};
use crate::billing::{PlanOverride, SubStatus, Subscription, Tier};
use crate::config::Rate;
use crate::config::{Config, ConfigError};
use crate::ids::{OrgId, UserId};
use crate::orgs;
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
    /// Create an API key and print `{id, key}` (the key is shown once).
    CreateKey {
        #[arg(long)]
        org: String,
        /// Comma-separated: messages, contacts, conversations, scheduled_messages, webhooks,
        /// dead_letters, audit_logs, exports, gdpr.
        #[arg(long)]
        scopes: String,
        /// Comma-separated: read, write, delete.
        #[arg(long)]
        permissions: String,
        /// live (default) or test.
        #[arg(long, default_value = "live")]
        environment: String,
        /// e.g. 10/s.
        #[arg(long)]
        rate_limit: Option<String>,
        /// e.g. 10000/day.
        #[arg(long)]
        quota: Option<String>,
        #[arg(long, default_value = "cli")]
        name: String,
        /// RFC 3339 expiry.
        #[arg(long)]
        expires_at: Option<String>,
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
        /// Override the tier's per-org request rate, e.g. 50/s (`default` clears it).
        #[arg(long)]
        rate_limit: Option<String>,
        /// Override the tier's per-org quota, e.g. 100000/day (`default` clears it).
        #[arg(long)]
        quota: Option<String>,
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
    super::support::open_db(config).await
}

async fn existing_org(db: &Db, id: &str) -> anyhow::Result<OrgId> {
    let org = OrgId::parse(id).ok_or_else(|| usage("--org", format!("{id:?} is not an org id")))?;
    if orgs::get(&mut db.clone(), &org).await?.is_none() {
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
            /// The member to add: a user who exists, or a new one with this password hash.
            enum Member {
                Existing(UserId),
                New(String),
            }
            // Hashed before the transaction: it takes a while and must not hold the writer.
            let member = match users::by_email(&mut db.clone(), &email).await? {
                Some(u) => Member::Existing(u.id),
                None => Member::New(password::hash(pw).await?),
            };
            let mut tx = db.begin().await?;
            let (user_id, created) = match member {
                Member::Existing(id) => (id, false),
                Member::New(h) => (users::create(&mut tx, &email, &h).await?, true),
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
        AdminAction::CreateKey {
            org,
            scopes,
            permissions,
            environment,
            rate_limit,
            quota,
            name,
            expires_at,
            json,
        } => {
            let scopes = grants::parse_scopes(&scopes, true).map_err(|m| usage("--scopes", m))?;
            let permissions =
                grants::parse_permissions(&permissions).map_err(|m| usage("--permissions", m))?;
            let environment = Environment::parse(&environment)
                .ok_or_else(|| usage("--environment", "must be live or test"))?;
            let parse_rate = |flag: &str, v: Option<String>| -> anyhow::Result<Option<Rate>> {
                v.map(|s| {
                    Rate::parse(&s).ok_or_else(|| {
                        usage(
                            flag,
                            format!("expected N/s, N/min, N/h or N/day; got {s:?}"),
                        )
                    })
                })
                .transpose()
            };
            let rate_limit = parse_rate("--rate-limit", rate_limit)?;
            let quota = parse_rate("--quota", quota)?;
            let expires_at = expires_at
                .map(|e| {
                    crate::clock::parse_rfc3339(&e)
                        .filter(|t| *t > crate::clock::now_ms())
                        .ok_or_else(|| usage("--expires-at", "must be a future RFC 3339 time"))
                })
                .transpose()?;
            if name.trim().is_empty() || name.chars().count() > 100 {
                return Err(usage("--name", "must be 1-100 characters"));
            }
            let db = open(&config).await?;
            let org = existing_org(&db, &org).await?;
            let mut tx = db.begin().await?;
            let (key, secret) = crate::api_keys::store::create(
                &mut tx,
                &org,
                &NewKey {
                    name,
                    environment,
                    scopes,
                    permissions,
                    rate_limit,
                    quota,
                    expires_at,
                    created_by: None,
                },
            )
            .await?;
            audit::record(
                &mut tx,
                &RequestMeta::system(),
                Entry::new(Some(&org), Actor::Operator("cli"), "api_key.created")
                    .target("api_key", key.id.as_str())
                    .details(json!({ "environment": key.environment, "scopes": key.scopes, "permissions": key.permissions })),
            )
            .await?;
            tx.commit().await?;
            output(
                json,
                json!({ "id": key.id, "key": secret, "org_id": org, "environment": key.environment, "scopes": key.scopes, "permissions": key.permissions }),
                secret.clone(),
            );
        }
        AdminAction::SetSubscription {
            org,
            status,
            tier,
            rate_limit,
            quota,
            json,
        } => {
            // `None`: keep; `Some(None)`: back to the tier default; `Some(Some(r))`: override.
            let parse_override =
                |flag: &str, v: Option<String>| -> anyhow::Result<Option<Option<Rate>>> {
                    match v.as_deref() {
                        None => Ok(None),
                        Some("default") => Ok(Some(None)),
                        Some(s) => Rate::parse(s).map(|r| Some(Some(r))).ok_or_else(|| {
                            usage(
                                flag,
                                format!("expected N/s, N/min, N/h, N/day or default; got {s:?}"),
                            )
                        }),
                    }
                };
            let rate_limit = parse_override("--rate-limit", rate_limit)?;
            let quota = parse_override("--quota", quota)?;
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
            let sub = Subscription { status, tier };
            set_subscription(&mut tx, &org, sub, Source::Admin, None).await?;
            if let Some(r) = rate_limit {
                set_plan_override(&mut tx, &org, PlanOverride::RateLimit, r).await?;
            }
            if let Some(q) = quota {
                set_plan_override(&mut tx, &org, PlanOverride::Quota, q).await?;
            }
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
