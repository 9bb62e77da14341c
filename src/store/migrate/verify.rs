//! `migrate verify`: ordering, gaps, checksums, dialect parity and parity with the database.

use std::collections::{BTreeMap, BTreeSet};

use super::{Applied, Migration, MigrationSet, applied, has_table};
use crate::store::{Db, Dialect};

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

pub(super) fn render(findings: &[Finding]) -> String {
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

pub(super) fn check_set(set: &MigrationSet, out: &mut Vec<Finding>) {
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

pub(super) fn check_parity(sqlite: &MigrationSet, postgres: &MigrationSet, out: &mut Vec<Finding>) {
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

pub(super) fn check_applied(set: &MigrationSet, applied: &[Applied], out: &mut Vec<Finding>) {
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
