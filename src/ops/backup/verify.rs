//! Reading a backup file back before anything is restored: structure, counts and every
//! checksum, and where its text holds NUL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{FORMAT, VERSION, hex};
use crate::store::catalog::TABLES;

/// A verified backup: its header and table sections, read back in a second pass.
pub(super) struct Verified {
    pub schema_version: i64,
    pub counts: BTreeMap<String, u64>,
    /// Text values holding U+0000, which Postgres cannot store.
    pub nul_text: Vec<NulText>,
}

/// Where a text value holding NUL sits in the backup.
#[derive(Debug)]
pub(super) struct NulText {
    pub table: &'static str,
    pub row_id: String,
    pub column: String,
}

/// Reads the whole file and checks structure, counts and every checksum.
pub(super) fn verify_file(path: &Path) -> anyhow::Result<Verified> {
    let corrupt = |why: String| anyhow::anyhow!("the backup file is corrupt or truncated: {why}");
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = BufReader::new(f).lines();
    let mut all = Sha256::new();
    let mut next = |all: &mut Sha256, expect_data: bool| -> anyhow::Result<Option<String>> {
        match lines.next() {
            None => Ok(None),
            Some(l) => {
                let l = l?;
                if expect_data {
                    all.update(l.as_bytes());
                    all.update(b"\n");
                }
                Ok(Some(l))
            }
        }
    };
    let header: Value = next(&mut all, true)?
        .ok_or_else(|| corrupt("empty file".into()))
        .and_then(|l| {
            serde_json::from_str(&l).map_err(|_| corrupt("the header is not JSON".into()))
        })?;
    if header["format"] != FORMAT {
        bail!("not a Rampart backup (format {})", header["format"]);
    }
    if header["version"].as_i64() != Some(VERSION) {
        bail!(
            "backup format version {} is not supported by this binary (expects {VERSION})",
            header["version"]
        );
    }
    let schema_version = header["schema_version"]
        .as_i64()
        .ok_or_else(|| corrupt("no schema_version".into()))?;
    let mut counts = BTreeMap::new();
    let mut nul_text = Vec::new();
    for t in header["tables"]
        .as_array()
        .ok_or_else(|| corrupt("no table list".into()))?
    {
        counts.insert(
            t["name"].as_str().unwrap_or("").to_owned(),
            t["rows"].as_u64().unwrap_or(0),
        );
    }
    for table in TABLES.iter().map(|t| t.name) {
        let start: Value = next(&mut all, true)?
            .ok_or_else(|| corrupt(format!("ends before table {table}")))
            .and_then(|l| {
                serde_json::from_str(&l)
                    .map_err(|_| corrupt(format!("bad section start for {table}")))
            })?;
        if start["table"] != table {
            return Err(corrupt(format!(
                "expected table {table}, found {}",
                start["table"]
            )));
        }
        let columns: Vec<String> = start["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|n| n.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let width = columns.len();
        let id = columns.iter().position(|c| c == "id").unwrap_or(0);
        let mut th = Sha256::new();
        let mut n = 0u64;
        loop {
            let line = next(&mut all, true)?
                .ok_or_else(|| corrupt(format!("ends inside table {table}")))?;
            if line.starts_with('{') {
                let end: Value = serde_json::from_str(&line)
                    .map_err(|_| corrupt(format!("bad section end for {table}")))?;
                if end["end_table"] != table || end["rows"].as_u64() != Some(n) {
                    return Err(corrupt(format!(
                        "{table}: {n} rows read, the section says {}",
                        end["rows"]
                    )));
                }
                if end["sha256"].as_str() != Some(hex(th.clone().finalize()).as_str()) {
                    return Err(corrupt(format!("{table}: checksum mismatch")));
                }
                if counts.get(table) != Some(&n) {
                    return Err(corrupt(format!(
                        "{table}: {n} rows, the header says {:?}",
                        counts.get(table)
                    )));
                }
                break;
            }
            let row: Value = serde_json::from_str(&line)
                .map_err(|_| corrupt(format!("{table}: row {} is not JSON", n + 1)))?;
            if row.as_array().map(Vec::len) != Some(width) {
                return Err(corrupt(format!(
                    "{table}: row {} has the wrong width",
                    n + 1
                )));
            }
            nul_text.extend(
                nul_cells(&row, &columns, id).map(|(row_id, column)| NulText {
                    table,
                    row_id,
                    column,
                }),
            );
            th.update(line.as_bytes());
            th.update(b"\n");
            n += 1;
        }
    }
    let expected = hex(all.clone().finalize());
    let footer: Value = next(&mut all, false)?
        .ok_or_else(|| corrupt("no end record".into()))
        .and_then(|l| serde_json::from_str(&l).map_err(|_| corrupt("bad end record".into())))?;
    if footer["end"] != true || footer["sha256"].as_str() != Some(expected.as_str()) {
        return Err(corrupt("overall checksum mismatch".into()));
    }
    if next(&mut all, false)?.is_some() {
        return Err(corrupt("data after the end record".into()));
    }
    Ok(Verified {
        schema_version,
        counts,
        nul_text,
    })
}

/// The row id and column of each text cell of `row` that holds NUL.
fn nul_cells<'a>(
    row: &'a Value,
    columns: &'a [String],
    id: usize,
) -> impl Iterator<Item = (String, String)> + 'a {
    let cells = row.as_array().map(Vec::as_slice).unwrap_or_default();
    cells.iter().zip(columns).filter_map(move |(cell, column)| {
        let holds_nul = cell.as_str().is_some_and(|s| s.contains('\0'));
        holds_nul.then(|| {
            let row_id = match cells.get(id) {
                Some(Value::String(s)) => s.replace('\0', "\\u0000"),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (row_id, column.clone())
        })
    })
}
