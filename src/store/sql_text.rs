//! The one place SQL text is generated: from text written in the code and numbers, never from
//! input. Multi-row inserts (`VALUES (…), (…)` for a batch), deferred writes merged into one
//! Postgres statement, and SQLite's anonymous placeholders.

use sqlx::{AssertSqlSafe, Postgres, Sqlite};

use super::query::{Access, Arg, Dialect, Plan, Q, Text};

/// Rewrites `$n` placeholders as SQLite's anonymous `?`, returning the new text and, for each
/// `?` in order, the index of its argument (a `$n` used twice is bound twice).
///
/// Why: SQLite finds a named parameter by walking the list of all of them, so binding a
/// statement with n of them costs O(n²). A 500-row multi-row insert spent most of its time
/// there (57 % of a scheduler batch in `sqlite3_bind_parameter_name`); anonymous ones have no
/// name to look up.
pub(crate) fn anonymous_placeholders(text: &str) -> (String, Vec<usize>) {
    let mut order = Vec::new();
    let out = rewrite_placeholders(text, |n, out| {
        out.push('?');
        order.push(n - 1);
    });
    (out, order)
}

/// `text` with every `$n` placeholder replaced by what `emit` writes for `n`. Single-quoted
/// literals and `--` comments are left alone.
pub(crate) fn rewrite_placeholders(text: &str, mut emit: impl FnMut(usize, &mut String)) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_literal = false;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => in_literal = !in_literal,
            // A `-- comment` runs to the end of its line; a `$n` in it is no parameter.
            b'-' if !in_literal && bytes.get(i + 1) == Some(&b'-') => {
                i += bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(bytes.len() - i);
                continue;
            }
            b'$' if !in_literal => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let n: usize = text[i + 1..i + 1 + digits].parse().unwrap_or(0);
                if n > 0 {
                    out.push_str(&text[copied..i]);
                    emit(n, &mut out);
                    i += 1 + digits;
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// SQL NULL, for a placeholder that has no argument.
const NULL: Arg = Arg::Int(None);

/// One SQLite query running `qs` in order, each with its own arguments (SQLite binds a
/// multi-statement text's anonymous `?`s in sequence; one statement is the common case).
pub(crate) fn sqlite_query(
    qs: &[Q],
) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut text = String::new();
    let mut args: Vec<&Arg> = Vec::new();
    for q in qs {
        if !text.is_empty() {
            text.push_str(";\n");
        }
        let (anonymous, order) = anonymous_placeholders(q.text(Dialect::Sqlite));
        text.push_str(&anonymous);
        // A placeholder without an argument reads NULL, as SQLite itself would have it.
        args.extend(order.iter().map(|&i| q.args.get(i).unwrap_or(&NULL)));
    }
    let mut query = sqlx::query(AssertSqlSafe(text));
    for a in args {
        query = match a {
            Arg::Int(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.clone()),
            Arg::Bool(v) => query.bind(*v),
            Arg::Float(v) => query.bind(*v),
            Arg::Bytes(v) => query.bind(v.clone()),
            // SQLite has no arrays: the list travels as a JSON array for `json_each`.
            Arg::TextList(v) => {
                query.bind(serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned()))
            }
        };
    }
    query
}

/// Multi-row `INSERT … VALUES (…), (…)` statements for `rows`: one statement per chunk instead
/// of one per row. `head` is `INSERT INTO t (a, b, c)`; every row has the same number of
/// values; `tail` (e.g. `ON CONFLICT DO NOTHING`) follows each chunk.
pub(crate) fn insert_statements(
    head: &'static str,
    tail: &'static str,
    rows: Vec<Vec<Arg>>,
) -> Vec<Q> {
    insert_statements_generated(head, tail, rows)
}

/// [`insert_statements`] for a head the store generated itself ([`super::catalog`]).
pub(crate) fn insert_statements_generated(head: &str, tail: &str, rows: Vec<Vec<Arg>>) -> Vec<Q> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Vec::new();
    };
    // Well under SQLite's 32766 and Postgres's 65535 bind limits.
    let per_chunk = (30_000 / width.max(1)).clamp(1, 1000);
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Arg>> = rows.by_ref().take(per_chunk).collect();
        let mut text = String::with_capacity(head.len() + chunk.len() * width * 5);
        text.push_str(head);
        text.push_str(" VALUES ");
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push('(');
            for j in 0..width {
                if j > 0 {
                    text.push(',');
                }
                n += 1;
                text.push('$');
                text.push_str(itoa::Buffer::new().format(n));
            }
            text.push(')');
        }
        text.push(' ');
        text.push_str(tail);
        let mut q = Q::generated(text, Access::Write);
        q.args.reserve(chunk.len() * width);
        for row in chunk {
            debug_assert_eq!(row.len(), width);
            q.args.extend(row);
        }
        out.push(q);
    }
    out
}

/// Writes as one Postgres statement: all but the last become data-modifying `WITH` clauses,
/// with their placeholders renumbered after the binds before them. Every part runs exactly
/// once, on one snapshot, and constraints (foreign keys included) are checked at the end of
/// the statement, so the parts may not depend on each other's rows: the caller merges only
/// writes declared to touch different tables and read nothing ([`super::Tx::defer_merged`]).
pub(crate) fn merged(run: Vec<Q>) -> Q {
    let last = run.len() - 1;
    let plan = if run.iter().any(|q| q.plan == Plan::PerCall) {
        Plan::PerCall
    } else {
        Plan::Cached
    };
    let mut text = String::from("WITH ");
    let mut args = Vec::with_capacity(run.iter().map(|q| q.args.len()).sum());
    for (i, q) in run.into_iter().enumerate() {
        let offset = args.len();
        let part = rewrite_placeholders(q.text(Dialect::Postgres), |n, out| {
            out.push('$');
            out.push_str(itoa::Buffer::new().format(n + offset));
        });
        if i < last {
            if i > 0 {
                text.push_str(", ");
            }
            text.push('w');
            text.push_str(itoa::Buffer::new().format(i));
            text.push_str(" AS (");
            text.push_str(part.trim_end());
            text.push(')');
        } else {
            text.push(' ');
            text.push_str(&part);
        }
        args.extend(q.args);
    }
    let mut q = Q::generated(text, Access::Write);
    q.args = args;
    q.plan = plan;
    q
}

/// The statement as each driver takes it.
impl Q {
    pub(crate) fn postgres(
        self,
    ) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        let mut q = match self.text {
            Text::Static(s) | Text::PerDialect(_, s) => sqlx::query(s),
            Text::Generated(s) => sqlx::query(AssertSqlSafe(s)),
        };
        if self.plan == Plan::PerCall {
            // The unnamed statement: parsed and planned with this run's values.
            q = q.persistent(false);
        }
        for a in self.args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::TextList(v) => q.bind(v),
            };
        }
        q
    }

    pub(crate) fn sqlite(
        self,
    ) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
        sqlite_query(std::slice::from_ref(&self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_anonymous_placeholders_in_argument_order() {
        let (text, order) = anonymous_placeholders(
            "UPDATE t SET a = $2, b = '$1 stays', c = $2 WHERE id IN ($1, $10) AND d = 'it''s $3'",
        );
        assert_eq!(
            text,
            "UPDATE t SET a = ?, b = '$1 stays', c = ? WHERE id IN (?, ?) AND d = 'it''s $3'"
        );
        assert_eq!(order, vec![1, 1, 0, 9]);
        let (text, order) =
            anonymous_placeholders("SELECT a -- it's $1, not $2\nFROM t WHERE b = $2 - $1");
        assert_eq!(text, "SELECT a -- it's $1, not $2\nFROM t WHERE b = ? - ?");
        assert_eq!(order, vec![1, 0]);
        assert_eq!(
            anonymous_placeholders("SELECT 1"),
            ("SELECT 1".into(), vec![])
        );
    }

    #[test]
    fn merged_writes_renumber_their_placeholders() {
        let q = merged(vec![
            Q::write("INSERT INTO a (x, y) VALUES ($1, $2) ")
                .bind(1)
                .bind("it's $1"),
            Q::write("UPDATE b SET x = $1, note = '$1' WHERE id = $2")
                .bind(2)
                .bind(3),
            Q::write("INSERT INTO c (x) VALUES ($1)").bind(4),
        ]);
        assert_eq!(
            q.text(Dialect::Postgres),
            "WITH w0 AS (INSERT INTO a (x, y) VALUES ($1, $2)), w1 AS (UPDATE b SET x = $3, note = '$1' WHERE id = $4) INSERT INTO c (x) VALUES ($5)"
        );
        assert_eq!(q.args.len(), 5);
        assert_eq!(q.plan, Plan::Cached);
    }

    #[test]
    fn a_merged_write_is_planned_per_call_if_any_part_is() {
        let q = merged(vec![
            Q::write("INSERT INTO a (x) VALUES ($1)").bind(1),
            Q::write("UPDATE b SET x = 1 WHERE id = ANY($1)")
                .planned_per_call()
                .bind(vec!["i".to_owned()]),
        ]);
        assert_eq!(q.plan, Plan::PerCall);
    }

    #[test]
    fn multi_row_inserts_number_every_value() {
        let rows = vec![
            vec![Arg::from(1), Arg::from("a")],
            vec![Arg::from(2), Arg::from("b")],
        ];
        let qs = insert_statements("INSERT INTO t (n, s)", "ON CONFLICT DO NOTHING", rows);
        assert_eq!(qs.len(), 1);
        assert_eq!(
            qs[0].text(Dialect::Postgres),
            "INSERT INTO t (n, s) VALUES ($1,$2),($3,$4) ON CONFLICT DO NOTHING"
        );
    }
}
