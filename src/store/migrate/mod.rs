//! Embedded, ordered migrations per dialect; applying them and proving they have not drifted.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Db, DbError, Dialect, Exec, Q, Tx};

mod verify;
pub use verify::{Finding, FindingKind, Report, verify};
use verify::{FindingKind as Kind, check_applied, render};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// One migration file: `NNNN_name.sql`.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub file: String,
    pub sql: Cow<'static, str>,
}

impl Migration {
    /// SHA-256 of the text with line endings normalised, so a checkout with CRLF still verifies.
    pub fn checksum(&self) -> String {
        checksum(&self.sql)
    }
}

pub fn checksum(text: &str) -> String {
    let normalised = text.replace("\r\n", "\n");
    hex(&Sha256::digest(normalised.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    crate::ids::hex(bytes)
}

/// The migrations of one dialect, with any problem found reading their file names.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub dialect: Dialect,
    pub migrations: Vec<Migration>,
    pub unreadable: Vec<String>,
}

impl MigrationSet {
    /// The set compiled into this binary.
    pub fn embedded(dialect: Dialect) -> MigrationSet {
        let files = match dialect {
            Dialect::Sqlite => embedded::SQLITE,
            Dialect::Postgres => embedded::POSTGRES,
        };
        Self::from_files(
            dialect,
            files
                .iter()
                .map(|(f, s)| ((*f).to_owned(), Cow::Borrowed(*s))),
        )
    }

    /// A set read from `dir/<dialect>/` (used by `migrate verify --migrations-dir`).
    pub fn from_dir(dir: &Path, dialect: Dialect) -> std::io::Result<MigrationSet> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir.join(dialect.name()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "sql") {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((name, Cow::Owned(std::fs::read_to_string(&path)?)));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self::from_files(dialect, files.into_iter()))
    }

    fn from_files(
        dialect: Dialect,
        files: impl Iterator<Item = (String, Cow<'static, str>)>,
    ) -> MigrationSet {
        let mut migrations = Vec::new();
        let mut unreadable = Vec::new();
        for (file, sql) in files {
            match parse_file_name(&file) {
                Some((version, name)) => migrations.push(Migration {
                    version,
                    name,
                    file,
                    sql,
                }),
                None => unreadable.push(file),
            }
        }
        migrations.sort_by(|a, b| a.version.cmp(&b.version).then(a.file.cmp(&b.file)));
        MigrationSet {
            dialect,
            migrations,
            unreadable,
        }
    }

    pub fn latest(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.version)
    }
}

fn parse_file_name(file: &str) -> Option<(i64, String)> {
    let stem = file.strip_suffix(".sql")?;
    let (v, name) = stem.split_once('_')?;
    if v.len() != 4 || !v.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    Some((v.parse().ok()?, name.to_owned()))
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub checksum: String,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// A migration error; `Display` is the one line an operator reads.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database unavailable: {0}")]
    Db(#[from] DbError),
    #[error("migrations have drifted:\n{0}")]
    Drift(String),
}

async fn ensure_table(tx: &mut Tx) -> Result<(), DbError> {
    Q::write(CREATE_TABLE).execute(tx).await?;
    Ok(())
}

pub async fn applied(ex: &mut impl Exec) -> Result<Vec<Applied>, DbError> {
    Q::read("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        .fetch_all(ex)
        .await
}

/// Whether `schema_migrations` exists yet (a brand-new database has none).
pub(super) async fn has_table(db: &Db) -> Result<bool, DbError> {
    let n: i64 = Q::read_per_dialect(
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
    )
    .fetch_scalar(&mut db.clone())
    .await?;
    Ok(n > 0)
}

/// The text of an embedded migration file.
fn embedded_script(dialect: Dialect, file: &str) -> Option<&'static str> {
    let files = match dialect {
        Dialect::Sqlite => embedded::SQLITE,
        Dialect::Postgres => embedded::POSTGRES,
    };
    files.iter().find(|(f, _)| *f == file).map(|(_, s)| *s)
}

/// Applies every pending embedded migration in one transaction (all or nothing), after
/// checking that what was applied before is what this binary knows. Safe to run from several
/// instances at once: Postgres takes an advisory lock, SQLite's `BEGIN IMMEDIATE` serializes.
/// Returns the versions applied.
pub async fn apply(db: &Db) -> Result<Vec<i64>, MigrateError> {
    let set = MigrationSet::embedded(db.dialect());
    let mut tx = db.begin().await?;
    if db.dialect() == Dialect::Postgres {
        Q::write("SELECT pg_advisory_xact_lock(7262756179) AS locked")
            .execute(&mut tx)
            .await?;
    }
    ensure_table(&mut tx).await?;
    let done = applied(&mut tx).await?;
    let mut findings = Vec::new();
    check_applied(&set, &done, &mut findings);
    findings.retain(|f| f.kind != Kind::Pending);
    if !findings.is_empty() {
        return Err(MigrateError::Drift(render(&findings)));
    }
    let done: BTreeSet<i64> = done.iter().map(|a| a.version).collect();
    let mut ran = Vec::new();
    for m in set.migrations.iter().filter(|m| !done.contains(&m.version)) {
        let script = embedded_script(db.dialect(), &m.file).ok_or_else(|| {
            MigrateError::Drift(format!("{} is not embedded in this binary", m.file))
        })?;
        tx.run_script(script).await?;
        Q::write("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind(m.version)
            .bind(&m.name)
            .bind(m.checksum())
            .bind(crate::clock::now_ms())
            .execute(&mut tx)
            .await?;
        ran.push(m.version);
    }
    tx.commit().await?;
    Ok(ran)
}

/// Whether every embedded migration has been applied (for `/health/ready`).
pub async fn is_current(db: &Db) -> Result<bool, DbError> {
    if !has_table(db).await? {
        return Ok(false);
    }
    let latest = MigrationSet::embedded(db.dialect()).latest();
    let n: Option<i64> = Q::read("SELECT MAX(version) AS v FROM schema_migrations")
        .fetch_scalar(&mut db.clone())
        .await?;
    Ok(n.unwrap_or(0) >= latest)
}

#[cfg(test)]
mod tests {
    use super::verify::{check_parity, check_set};
    use super::*;

    fn set(dialect: Dialect, files: &[&str]) -> MigrationSet {
        MigrationSet::from_files(
            dialect,
            files
                .iter()
                .map(|f| ((*f).to_owned(), Cow::Borrowed("SELECT 1;"))),
        )
    }

    #[test]
    fn embedded_sets_are_sound_and_agree() {
        let mut out = Vec::new();
        let a = MigrationSet::embedded(Dialect::Sqlite);
        let b = MigrationSet::embedded(Dialect::Postgres);
        check_set(&a, &mut out);
        check_set(&b, &mut out);
        check_parity(&a, &b, &mut out);
        assert!(out.is_empty(), "{}", render(&out));
        assert!(a.latest() >= 1);
    }

    #[test]
    fn gaps_duplicates_and_names_are_reported() {
        let mut out = Vec::new();
        check_set(
            &set(
                Dialect::Sqlite,
                &["0001_a.sql", "0001_b.sql", "0004_c.sql", "x.sql"],
            ),
            &mut out,
        );
        let kinds: Vec<_> = out.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&FindingKind::Duplicate));
        assert!(kinds.contains(&FindingKind::Gap));
        assert!(kinds.contains(&FindingKind::BadFileName));
        assert!(render(&out).contains("0002..0003"));
    }
}
