//! The services the servers use: fresh Postgres databases (created per benchmark case and
//! dropped at the end, even on failure) and the versions of Postgres and Redis for the report.
//! Redis keys are never flushed: every benchmark uses new orgs and keys.

use std::sync::Mutex;

use anyhow::Context as _;
use sqlx::{AssertSqlSafe, Connection as _};

pub struct Postgres {
    /// Without a database name, e.g. `postgres://postgres@127.0.0.1:5432`.
    base: String,
    created: Mutex<Vec<String>>,
}

impl Postgres {
    pub fn new(base: &str) -> Postgres {
        Postgres {
            base: base.to_owned(),
            created: Mutex::new(Vec::new()),
        }
    }

    async fn admin(&self) -> anyhow::Result<sqlx::PgConnection> {
        let url = format!("{}/postgres", self.base);
        sqlx::PgConnection::connect(&url)
            .await
            .with_context(|| format!("connect to Postgres at {url} (BENCH_PG_URL)"))
    }

    /// Creates an empty database; returns its URL. `label` is a fixed word of the benchmark.
    pub async fn fresh(&self, label: &'static str) -> anyhow::Result<FreshDb> {
        let name = format!("rampart_bench_{label}_{}", uuid::Uuid::now_v7().simple());
        // A database name cannot be a bind parameter; this one is made of our label (a
        // constant) and hex digits only.
        self.admin()
            .await?
            .execute_raw(&format!("CREATE DATABASE {name}"))
            .await?;
        if let Ok(mut c) = self.created.lock() {
            c.push(name.clone());
        }
        Ok(FreshDb {
            url: format!("{}/{name}", self.base),
            name,
        })
    }

    pub async fn drop_db(&self, db: FreshDb) {
        if let Err(e) = self.drop_named(&db.name).await {
            eprintln!("warning: could not drop database {}: {e:#}", db.name);
        }
        if let Ok(mut c) = self.created.lock() {
            c.retain(|n| n != &db.name);
        }
    }

    async fn drop_named(&self, name: &str) -> anyhow::Result<()> {
        self.admin()
            .await?
            .execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
    }

    /// Drops every database still left (after a failure).
    pub async fn drop_all(&self) {
        let names = self
            .created
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for n in names {
            let _ = self.drop_named(&n).await;
        }
    }

    pub async fn version(&self) -> Option<String> {
        let mut c = self.admin().await.ok()?;
        let v: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut c)
            .await
            .ok()?;
        Some(format!("PostgreSQL {v}"))
    }
}

pub struct FreshDb {
    pub name: String,
    pub url: String,
}

trait ExecuteRaw {
    async fn execute_raw(&mut self, sql: &str) -> anyhow::Result<()>;
}

impl ExecuteRaw for sqlx::PgConnection {
    async fn execute_raw(&mut self, sql: &str) -> anyhow::Result<()> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(self)
            .await
            .with_context(|| format!("Postgres: {sql}"))?;
        Ok(())
    }
}

/// `redis_version` from `INFO server`.
pub fn redis_version(url: &str) -> Option<String> {
    let mut c = redis::Client::open(url).ok()?.get_connection().ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| format!("Redis {}", v.trim()))
}
