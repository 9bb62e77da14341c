//! Every table of the schema, for the code that works on whole tables whatever their columns:
//! backups and restores. The one place outside [`super::sql_text`] where SQL text is put
//! together at run time, and only from this list's table names and from column names read
//! from the database's own catalog (checked to be plain identifiers), never from input.

use super::error::DbResult;
use super::exec::Exec;
use super::query::{Access, Arg, Q};
use super::sql_text::insert_statements_generated;

/// A table, with the column (or columns) it is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static str,
}

const fn t(name: &'static str, key: &'static str) -> Table {
    Table { name, key }
}

/// Every table but `schema_migrations`, parents before children (the order a restore inserts
/// in; `orgs` refers to itself, which the restore orders within the table).
pub const TABLES: &[Table] = &[
    t("orgs", "id"),
    t("users", "id"),
    t("memberships", "org_id, user_id"),
    t("subscriptions", "org_id"),
    t("settings", "key"),
    t("api_keys", "id"),
    t("refresh_tokens", "id"),
    t("device_tokens", "token_hash"),
    t("password_tokens", "id"),
    t("console_sessions", "id"),
    t("audit_heads", "chain"),
    t("audit_logs", "id"),
    t("contacts", "id"),
    t("idempotency_keys", "id"),
    t("billing_events", "id"),
    t("jobs", "id"),
    t("workers", "worker_id"),
    t("events", "id"),
    t("webhook_endpoints", "id"),
    t("deliveries", "id"),
    t("delivery_attempts", "id"),
    t("delivery_hourly", "endpoint_id, hour_start"),
    t("dead_letters", "id"),
    t("sandbox_deliveries", "id"),
    t("conversations", "id"),
    t("messages", "id"),
    t("scheduled_messages", "id"),
    t("incidents", "id"),
    t("incident_updates", "id"),
    t("health_samples", "id"),
    t("alert_state", "name"),
    t("branding", "org_id"),
    t("exports", "id"),
];

/// What a column holds, in the portable types the schema uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Bool,
    Text,
}

/// A plain lowercase SQL identifier: what the schema's names all are.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[derive(sqlx::FromRow)]
struct ColumnRow {
    name: String,
    #[sqlx(rename = "type")]
    type_: String,
}

impl Table {
    /// The table's columns in the connected store, in their declared order, with their kinds.
    pub async fn columns(self, ex: &mut impl Exec) -> DbResult<Vec<(String, ColumnKind)>> {
        let rows: Vec<ColumnRow> = Q::read_per_dialect(
            "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            "SELECT column_name AS name, data_type AS type FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(self.name)
        .fetch_all(ex)
        .await?;
        Ok(rows
            .into_iter()
            .filter(|c| is_identifier(&c.name))
            .map(|c| {
                let t = c.type_.to_ascii_uppercase();
                let kind = if t.contains("INT") {
                    ColumnKind::Int
                } else if t.contains("BOOL") {
                    ColumnKind::Bool
                } else {
                    ColumnKind::Text
                };
                (c.name, kind)
            })
            .collect())
    }

    pub async fn count(self, ex: &mut impl Exec) -> DbResult<i64> {
        let text = format!("SELECT COUNT(*) AS n FROM {}", self.name);
        Q::generated(text, Access::Read).fetch_scalar(ex).await
    }

    /// Every row if the key is composite (small tables), else a page of `limit` rows after
    /// the key `after`.
    pub fn page(self, after: Option<&str>, limit: i64) -> Q {
        let (name, key) = (self.name, self.key);
        if key.contains(',') {
            return Q::generated(format!("SELECT * FROM {name} ORDER BY {key}"), Access::Read);
        }
        Q::generated(
            format!(
                "SELECT * FROM {name} WHERE ($1 IS NULL OR {key} > $1) ORDER BY {key} LIMIT $2"
            ),
            Access::Read,
        )
        .bind(after)
        .bind(limit)
    }

    /// Inserts `rows` of `columns` (names the caller checked against [`Table::columns`]).
    pub async fn insert(
        self,
        ex: &mut impl Exec,
        columns: &[String],
        rows: Vec<Vec<Arg>>,
    ) -> DbResult<u64> {
        if !columns.iter().all(|c| is_identifier(c)) {
            return Err(super::DbError::Other(sqlx::Error::Protocol(
                "a column name is not a plain identifier".into(),
            )));
        }
        let head = format!("INSERT INTO {} ({})", self.name, columns.join(", "));
        let mut total = 0;
        for q in insert_statements_generated(&head, "", rows) {
            total += q.execute(ex).await?;
        }
        Ok(total)
    }
}

/// The tables of the connected schema that [`TABLES`] does not list (a test keeps it empty).
pub async fn unlisted(ex: &mut impl Exec) -> DbResult<Vec<String>> {
    let names: Vec<String> = Q::read_per_dialect(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_column(ex)
    .await?;
    Ok(names
        .into_iter()
        .filter(|n| n != "schema_migrations" && !TABLES.iter().any(|t| t.name == n))
        .collect())
}
