//! `rampart backup` and `rampart restore`: a consistent online snapshot in a portable format
//! (NDJSON with a version header and SHA-256 checksums per table and overall) that restores into
//! an empty database of either store — so SQLite → Postgres is a backup and a restore.
//!
//! The backup reads every table inside one snapshot transaction (SQLite: one read transaction
//! of WAL; Postgres: REPEATABLE READ), so writes during the backup are either wholly in it or
//! wholly out. A restore first verifies the whole file, then inserts everything in one
//! transaction and checks row counts and migration parity before committing: a corrupt or
//! truncated file is refused and nothing is half-restored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::clock::{now_ms, rfc3339};
use crate::store::catalog::{ColumnKind, TABLES, Table};
use crate::store::migrate::MigrationSet;
use crate::store::{Arg, Db, Dialect, Exec, Q, Tx};

pub const FORMAT: &str = "rampart-backup";
pub const VERSION: i64 = 1;
const PAGE: i64 = 5_000;

mod verify;
use verify::verify_file;

/// A column's kind as the file names it.
fn kind_name(k: ColumnKind) -> &'static str {
    match k {
        ColumnKind::Int => "int",
        ColumnKind::Bool => "bool",
        ColumnKind::Text => "text",
    }
}

fn kind_of(s: &str) -> Option<ColumnKind> {
    match s {
        "int" => Some(ColumnKind::Int),
        "bool" => Some(ColumnKind::Bool),
        "text" => Some(ColumnKind::Text),
        _ => None,
    }
}

/// The columns of `table` in the connected store; a table it lacks is an error.
async fn columns(ex: &mut impl Exec, table: Table) -> anyhow::Result<Vec<(String, ColumnKind)>> {
    let cols = table.columns(ex).await?;
    if cols.is_empty() {
        bail!("table {} does not exist", table.name);
    }
    Ok(cols)
}

/// The tables the schema has beyond [`TABLES`] (a test keeps this empty).
pub async fn unlisted_tables(db: &Db) -> anyhow::Result<Vec<String>> {
    Ok(crate::store::catalog::unlisted(&mut db.clone()).await?)
}

fn encode(row: &crate::store::Row, cols: &[(String, ColumnKind)]) -> anyhow::Result<Value> {
    let mut out = Vec::with_capacity(cols.len());
    for (name, kind) in cols {
        let v = match kind {
            ColumnKind::Int => json!(row.get::<Option<i64>>(name)?),
            ColumnKind::Bool => json!(row.get::<Option<bool>>(name)?),
            ColumnKind::Text => json!(row.get::<Option<String>>(name)?),
        };
        out.push(v);
    }
    Ok(Value::Array(out))
}

fn decode(v: &Value, kind: ColumnKind) -> anyhow::Result<Arg> {
    Ok(match (kind, v) {
        (ColumnKind::Int, Value::Null) => Arg::Int(None),
        (ColumnKind::Int, Value::Number(n)) => {
            Arg::Int(Some(n.as_i64().context("integer out of range")?))
        }
        (ColumnKind::Bool, Value::Null) => Arg::Bool(None),
        (ColumnKind::Bool, Value::Bool(b)) => Arg::Bool(Some(*b)),
        (ColumnKind::Text, Value::Null) => Arg::Text(None),
        (ColumnKind::Text, Value::String(s)) => Arg::Text(Some(s.clone())),
        (k, other) => bail!("a {} column holds {other}", kind_name(k)),
    })
}

fn hex(d: impl AsRef<[u8]>) -> String {
    crate::ids::hex(d)
}

/// What a backup wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub file: String,
    pub source: Dialect,
    pub schema_version: i64,
    pub tables: BTreeMap<String, u64>,
    pub bytes: u64,
    pub sha256: String,
}

/// Writes a backup of `db` to `out` (via a temporary file renamed into place when complete).
pub async fn backup(
    db: &Db,
    out: &Path,
    build_id: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Summary> {
    let tmp = out.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut w = BufWriter::new(file);
    let mut all = Sha256::new();
    let write_line =
        |w: &mut BufWriter<std::fs::File>, all: &mut Sha256, line: &str| -> std::io::Result<u64> {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
            all.update(line.as_bytes());
            all.update(b"\n");
            Ok(line.len() as u64 + 1)
        };
    let mut tx = db.begin_snapshot().await?;
    let schema_version: i64 = Q::read("SELECT MAX(version) AS v FROM schema_migrations")
        .fetch_scalar::<Option<i64>>(&mut tx)
        .await?
        .unwrap_or(0);
    // Counts first (inside the snapshot), for the header and for progress.
    let mut counts = BTreeMap::new();
    for t in TABLES {
        let n = t.count(&mut tx).await?;
        counts.insert(t.name.to_owned(), u64::try_from(n).unwrap_or(0));
    }
    let total: u64 = counts.values().sum();
    let header = json!({
        "format": FORMAT, "version": VERSION, "created_at": rfc3339(now_ms()),
        "source": db.dialect(), "schema_version": schema_version, "build_id": build_id,
        "tables": TABLES.iter().map(|t| json!({ "name": t.name, "rows": counts[t.name] })).collect::<Vec<_>>(),
    });
    let mut bytes = write_line(&mut w, &mut all, &header.to_string())?;
    let mut done = 0u64;
    for &table in TABLES {
        let cols = columns(&mut tx, table).await?;
        let start = json!({
            "table": table.name,
            "columns": cols.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
            "types": cols.iter().map(|c| kind_name(c.1)).collect::<Vec<_>>(),
        });
        bytes += write_line(&mut w, &mut all, &start.to_string())?;
        let mut th = Sha256::new();
        let mut n = 0u64;
        let single_key = !table.key.contains(',');
        let mut after: Option<String> = None;
        loop {
            // Keyset pages on a single-column key; small composite-key tables in one read.
            let rows = table
                .page(after.as_deref(), PAGE)
                .fetch_rows(&mut tx)
                .await?;
            let len = rows.len() as i64;
            for r in &rows {
                let line = encode(r, &cols)?.to_string();
                th.update(line.as_bytes());
                th.update(b"\n");
                bytes += write_line(&mut w, &mut all, &line)?;
                n += 1;
            }
            done += len as u64;
            if single_key && len == PAGE {
                after = rows
                    .last()
                    .map(|r| r.get::<String>(table.key))
                    .transpose()?;
                progress(&format!(
                    "{}: {n} rows ({}%)",
                    table.name,
                    done * 100 / total.max(1)
                ));
                continue;
            }
            break;
        }
        progress(&format!(
            "{}: {n} rows ({}%)",
            table.name,
            done * 100 / total.max(1)
        ));
        let end = json!({ "end_table": table.name, "rows": n, "sha256": hex(th.finalize()) });
        bytes += write_line(&mut w, &mut all, &end.to_string())?;
    }
    tx.rollback().await?;
    let digest = hex(all.clone().finalize());
    let footer = json!({ "end": true, "sha256": digest });
    w.write_all(footer.to_string().as_bytes())?;
    w.write_all(b"\n")?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move the backup into {}", out.display()))?;
    Ok(Summary {
        file: out.display().to_string(),
        source: db.dialect(),
        schema_version,
        tables: counts,
        bytes,
        sha256: digest,
    })
}

/// Orders org rows so that a parent comes before its children (the self-reference).
fn parents_first(rows: Vec<Vec<Value>>, cols: &[String]) -> Vec<Vec<Value>> {
    let id = cols.iter().position(|c| c == "id").unwrap_or(0);
    let parent = cols.iter().position(|c| c == "parent_org_id");
    let Some(parent) = parent else { return rows };
    let mut placed: std::collections::HashSet<String> = Default::default();
    let mut out = Vec::with_capacity(rows.len());
    let mut pending = rows;
    while !pending.is_empty() {
        let before = pending.len();
        let (ready, rest): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|r| r[parent].as_str().is_none_or(|p| placed.contains(p)));
        for r in ready {
            placed.insert(r[id].as_str().unwrap_or("").to_owned());
            out.push(r);
        }
        pending = rest;
        if pending.len() == before {
            out.extend(pending);
            break;
        }
    }
    out
}

/// Restores `path` into `db`, which must be empty. Returns per-table row counts.
pub async fn restore(
    db: &Db,
    path: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<BTreeMap<String, u64>> {
    progress("verifying the backup file");
    let v = verify_file(path)?;
    if db.dialect() == Dialect::Postgres && !v.nul_text.is_empty() {
        bail!("{}", nul_refusal(&v.nul_text));
    }
    crate::store::migrate::apply(db).await?;
    let latest = MigrationSet::embedded(db.dialect()).latest();
    if v.schema_version != latest {
        bail!(
            "the backup has schema version {:04} but this binary migrates to {latest:04}: restore with the binary that made it, then upgrade",
            v.schema_version
        );
    }
    let mut tx = db.begin().await?;
    for table in TABLES {
        let n = table.count(&mut tx).await?;
        // Start-up writes the secret key's fingerprint into settings: that alone is allowed.
        let allowed = if table.name == "settings" { 1 } else { 0 };
        if n > allowed {
            bail!(
                "the target database is not empty ({} has {n} rows): restore into a new database",
                table.name
            );
        }
    }
    Q::write("DELETE FROM settings").execute(&mut tx).await?;
    let f = std::fs::File::open(path)?;
    let mut lines = BufReader::new(f).lines();
    lines.next();
    for &table in TABLES {
        let start: Value = serde_json::from_str(&lines.next().context("truncated")??)?;
        let names: Vec<String> = start["columns"]
            .as_array()
            .context("columns")?
            .iter()
            .map(|c| c.as_str().unwrap_or("").to_owned())
            .collect();
        let kinds: Vec<ColumnKind> = start["types"]
            .as_array()
            .context("types")?
            .iter()
            .map(|t| kind_of(t.as_str().unwrap_or("")).context("unknown column type"))
            .collect::<anyhow::Result<_>>()?;
        let target: Vec<String> = columns(&mut tx, table)
            .await?
            .into_iter()
            .map(|c| c.0)
            .collect();
        let mut sorted_target = target.clone();
        sorted_target.sort();
        let mut sorted_names = names.clone();
        sorted_names.sort();
        if sorted_target != sorted_names {
            bail!(
                "{}: the backup's columns differ from this schema's",
                table.name
            );
        }
        let mut rows = Vec::new();
        loop {
            let line = lines.next().context("truncated")??;
            if line.starts_with('{') {
                break;
            }
            let r: Value = serde_json::from_str(&line)?;
            rows.push(r.as_array().cloned().unwrap_or_default());
        }
        if table.name == "orgs" {
            rows = parents_first(rows, &names);
        }
        let count = rows.len();
        let mut args = Vec::with_capacity(count);
        for r in rows {
            args.push(
                r.iter()
                    .zip(&kinds)
                    .map(|(v, k)| decode(v, *k))
                    .collect::<anyhow::Result<Vec<Arg>>>()?,
            );
        }
        // The column names are the target schema's own (checked equal just above).
        table.insert(&mut tx, &names, args).await?;
        progress(&format!("{}: {count} rows restored", table.name));
    }
    check_counts(&mut tx, &v.counts).await?;
    tx.commit().await?;
    progress("restore verified: migrations parity and per-table row counts");
    Ok(v.counts)
}

/// Postgres cannot store U+0000 in text, and dropping or replacing it would change the data:
/// the restore is refused before anything is written, naming every offending value (the API
/// refuses NUL, so only data written by older builds or directly into SQLite can hold it).
fn nul_refusal(cells: &[verify::NulText]) -> String {
    const SHOWN: usize = 20;
    let mut m = format!(
        "the backup holds {} text value(s) with a NUL character (U+0000), which Postgres cannot store; nothing was restored. Edit or remove them in the source database, back up again, and restore:",
        cells.len()
    );
    for c in cells.iter().take(SHOWN) {
        m.push_str(&format!(
            "\n  {} id={} column={}",
            c.table, c.row_id, c.column
        ));
    }
    if cells.len() > SHOWN {
        m.push_str(&format!("\n  … and {} more", cells.len() - SHOWN));
    }
    m
}

async fn check_counts(tx: &mut Tx, expected: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    for table in TABLES {
        let n = table.count(tx).await?;
        let want = expected.get(table.name).copied().unwrap_or(0);
        if u64::try_from(n).unwrap_or(0) != want {
            bail!(
                "{}: {n} rows after restore, the backup has {want}; nothing was committed",
                table.name
            );
        }
    }
    Ok(())
}
