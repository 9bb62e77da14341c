//! Embedded, ordered migrations per dialect; applying them and proving they have not drifted.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Db, DbError, Dialect, Exec, Tx, sql};

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
#[derive(Debug, Clone)]
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
    sql(CREATE_TABLE).execute(tx).await?;
    Ok(())
}

pub async fn applied(ex: &mut impl Exec) -> Result<Vec<Applied>, DbError> {
    let rows = sql("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Applied {
                version: r.get("version")?,
                name: r.get("name")?,
                checksum: r.get("checksum")?,
            })
        })
        .collect()
}

/// Whether `schema_migrations` exists yet (a brand-new database has none).
async fn has_table(db: &Db) -> Result<bool, DbError> {
    let q = super::Q::dialect(
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
    );
    let n: i64 = q.fetch_one(&mut db.clone()).await?.get("n")?;
    Ok(n > 0)
}

/// Applies every pending embedded migration in one transaction (all or nothing), after
/// checking that what was applied before is what this binary knows. Safe to run from several
/// instances at once: Postgres takes an advisory lock, SQLite's `BEGIN IMMEDIATE` serializes.
/// Returns the versions applied.
pub async fn apply(db: &Db) -> Result<Vec<i64>, MigrateError> {
    let set = MigrationSet::embedded(db.dialect());
    let mut tx = db.begin().await?;
    if db.dialect() == Dialect::Postgres {
        sql("SELECT pg_advisory_xact_lock(7262756179) AS locked")
            .fetch_one(&mut tx)
            .await?;
    }
    ensure_table(&mut tx).await?;
    let done = applied(&mut tx).await?;
    let mut findings = Vec::new();
    check_applied(&set, &done, &mut findings);
    findings.retain(|f| f.kind != FindingKind::Pending);
    if !findings.is_empty() {
        return Err(MigrateError::Drift(render(&findings)));
    }
    let done: BTreeSet<i64> = done.iter().map(|a| a.version).collect();
    let mut ran = Vec::new();
    for m in set.migrations.iter().filter(|m| !done.contains(&m.version)) {
        let Cow::Borrowed(script) = m.sql else {
            unreachable!("embedded migrations are static")
        };
        Db::raw_script(&mut tx, script).await?;
        sql("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
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
    let n: Option<i64> = sql("SELECT MAX(version) AS v FROM schema_migrations")
        .fetch_one(&mut db.clone())
        .await?
        .get("v")?;
    Ok(n.unwrap_or(0) >= latest)
}

/// What kind of drift a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    BadFileName,
    Gap,
    Duplicate,
    DialectMismatch,
    Edited,
    Renamed,
    UnknownApplied,
    Pending,
    DatabaseUnreachable,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub message: String,
}

fn finding(kind: FindingKind, message: String) -> Finding {
    Finding { kind, message }
}

/// The outcome of `migrate verify`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub ok: bool,
    pub dialect: Option<Dialect>,
    pub sqlite_versions: usize,
    pub postgres_versions: usize,
    pub applied_versions: Option<usize>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn render(&self) -> String {
        let mut s = format!(
            "migrations: {} sqlite, {} postgres",
            self.sqlite_versions, self.postgres_versions
        );
        if let (Some(d), Some(n)) = (self.dialect, self.applied_versions) {
            s.push_str(&format!("; {n} applied in the {} database", d.name()));
        }
        s.push('\n');
        if self.ok {
            s.push_str("ok: ordering, checksums, dialect parity and database parity verified\n");
        } else {
            s.push_str(&render(&self.findings));
        }
        s
    }
}

fn render(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("DRIFT [{}] {}\n", kind_name(f.kind), f.message))
        .collect()
}

fn kind_name(k: FindingKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Checks the two sets against each other and, when a database is given, against what it
/// has applied.
pub async fn verify(sqlite: &MigrationSet, postgres: &MigrationSet, db: Option<&Db>) -> Report {
    let mut findings = Vec::new();
    check_set(sqlite, &mut findings);
    check_set(postgres, &mut findings);
    check_parity(sqlite, postgres, &mut findings);
    let mut applied_versions = None;
    if let Some(db) = db {
        let set = match db.dialect() {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        };
        let rows = match has_table(db).await {
            Ok(true) => applied(&mut db.clone()).await.map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        match rows {
            Ok(rows) => {
                let rows = rows.unwrap_or_default();
                applied_versions = Some(rows.len());
                check_applied(set, &rows, &mut findings);
            }
            Err(e) => findings.push(finding(
                FindingKind::DatabaseUnreachable,
                format!("cannot read applied migrations: {e}"),
            )),
        }
    }
    Report {
        ok: findings.is_empty(),
        dialect: db.map(Db::dialect),
        sqlite_versions: sqlite.migrations.len(),
        postgres_versions: postgres.migrations.len(),
        applied_versions,
        findings,
    }
}

fn check_set(set: &MigrationSet, out: &mut Vec<Finding>) {
    let d = set.dialect.name();
    for f in &set.unreadable {
        out.push(finding(
            FindingKind::BadFileName,
            format!("{d}: {f} is not named NNNN_lowercase_name.sql"),
        ));
    }
    let mut by_version: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for m in &set.migrations {
        by_version.entry(m.version).or_default().push(&m.file);
    }
    for (v, files) in &by_version {
        if files.len() > 1 {
            out.push(finding(
                FindingKind::Duplicate,
                format!(
                    "{d}: version {v:04} appears {} times ({})",
                    files.len(),
                    files.join(", ")
                ),
            ));
        }
    }
    let mut expected = 1;
    for v in by_version.keys() {
        if *v != expected {
            let missing = if *v == expected + 1 {
                format!("{expected:04}")
            } else {
                format!("{expected:04}..{:04}", v - 1)
            };
            out.push(finding(
                FindingKind::Gap,
                format!("{d}: version {missing} missing before {v:04}"),
            ));
        }
        expected = v + 1;
    }
}

fn check_parity(sqlite: &MigrationSet, postgres: &MigrationSet, out: &mut Vec<Finding>) {
    let a: BTreeMap<i64, &str> = sqlite
        .migrations
        .iter()
        .map(|m| (m.version, m.name.as_str()))
        .collect();
    let b: BTreeMap<i64, &str> = postgres
        .migrations
        .iter()
        .map(|m| (m.version, m.name.as_str()))
        .collect();
    for (v, name) in &a {
        match b.get(v) {
            None => out.push(finding(
                FindingKind::DialectMismatch,
                format!("version {v:04} ({name}) exists for sqlite but not for postgres"),
            )),
            Some(other) if other != name => out.push(finding(
                FindingKind::DialectMismatch,
                format!("version {v:04} is named {name} for sqlite but {other} for postgres"),
            )),
            Some(_) => {}
        }
    }
    for (v, name) in &b {
        if !a.contains_key(v) {
            out.push(finding(
                FindingKind::DialectMismatch,
                format!("version {v:04} ({name}) exists for postgres but not for sqlite"),
            ));
        }
    }
}

fn check_applied(set: &MigrationSet, applied: &[Applied], out: &mut Vec<Finding>) {
    let known: BTreeMap<i64, &Migration> = set.migrations.iter().map(|m| (m.version, m)).collect();
    let d = set.dialect.name();
    for a in applied {
        match known.get(&a.version) {
            None => out.push(finding(
                FindingKind::UnknownApplied,
                format!(
                    "version {:04} ({}) is applied in the {d} database but unknown to this binary (a newer binary migrated it?)",
                    a.version, a.name
                ),
            )),
            Some(m) if m.name != a.name => out.push(finding(
                FindingKind::Renamed,
                format!(
                    "version {:04} was applied as {} but is now named {}",
                    a.version, a.name, m.name
                ),
            )),
            Some(m) if m.checksum() != a.checksum => out.push(finding(
                FindingKind::Edited,
                format!(
                    "{d}: {} was edited after it was applied (checksum {} in the database, {} now)",
                    m.file,
                    &a.checksum[..a.checksum.len().min(12)],
                    &m.checksum()[..12]
                ),
            )),
            Some(_) => {}
        }
    }
    let done: BTreeSet<i64> = applied.iter().map(|a| a.version).collect();
    for m in &set.migrations {
        if !done.contains(&m.version) {
            out.push(finding(
                FindingKind::Pending,
                format!("{d}: {} is not applied yet (run `rampart migrate`)", m.file),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
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
