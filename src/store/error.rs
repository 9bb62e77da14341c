//! Database errors, classified once so that callers never match on driver details.
//!
//! A unique violation carries the [`Constraint`] it broke, named from the database's own
//! report in one place ([`Constraint::of`]), so a route answers "external_key already exists"
//! only when that is what happened.

use sqlx::error::DatabaseError;

/// A database error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("row not found")]
    NotFound,
    #[error("unique constraint {} violated", .constraint.name())]
    Unique {
        constraint: Constraint,
        #[source]
        source: sqlx::Error,
    },
    #[error("foreign key constraint violated")]
    ForeignKey(#[source] sqlx::Error),
    /// The database could not be reached or the pool is exhausted: worth retrying later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
    #[error("cannot decode column {column}")]
    Decode {
        column: String,
        #[source]
        source: sqlx::Error,
    },
    /// A deferred write failed when it was sent, with the statement it travelled with: the
    /// error names the write, not the statement that happened to carry it.
    #[error("deferred write failed: {write}")]
    Deferred {
        /// The write (its table and the head of its statement).
        write: String,
        #[source]
        cause: Box<DbError>,
    },
}

impl DbError {
    /// The error itself, looking through the deferred write that carried it.
    pub fn root(&self) -> &DbError {
        match self {
            DbError::Deferred { cause, .. } => cause.root(),
            e => e,
        }
    }

    /// The unique constraint this error broke, if it is a unique violation.
    pub fn unique_violation(&self) -> Option<Constraint> {
        match self.root() {
            DbError::Unique { constraint, .. } => Some(*constraint),
            _ => None,
        }
    }

    /// The database could not be reached: worth retrying later, nobody's fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.root(), DbError::Unavailable(_))
    }

    pub(crate) fn in_deferred(self, write: String) -> DbError {
        DbError::Deferred {
            write,
            cause: Box::new(self),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Unique {
                constraint: Constraint::of(d.as_ref()),
                source: e,
            },
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => DbError::ForeignKey(e),
            sqlx::Error::Database(d) if is_busy(d.code().as_deref()) => DbError::Unavailable(e),
            // A connection closed mid-handshake (a proxy or pooler in front of a database
            // that is down or restarting) surfaces as a protocol error: transient too.
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(e),
            _ => DbError::Other(e),
        }
    }
}

/// Whether `e` means the connection itself is broken, not just its statement: a pooled
/// connection that saw it must be closed, not handed to the next caller (the pool no longer
/// pings connections it gets back, see vendor/README.md).
pub(crate) fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// SQLite BUSY/LOCKED and Postgres connection/admin-shutdown classes: transient.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "57P01" | "57P02" | "57P03"))
        || code.is_some_and(|c| c.starts_with("08"))
}

pub type DbResult<T> = Result<T, DbError>;

/// Every unique constraint of the schema (both stores declare the same ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// `contacts (org_id, environment, external_key)`.
    ContactExternalKey,
    /// `users (email)`.
    UserEmail,
    /// `api_keys (secret_hash)` or `api_keys (previous_hash)`.
    ApiKeySecret,
    /// `refresh_tokens (token_hash)`.
    RefreshToken,
    /// `audit_logs (chain, seq)`.
    AuditSequence,
    /// `idempotency_keys (org_id, environment, idem_key)`.
    IdempotencyKey,
    /// `jobs (unique_key)` while queued or running.
    LiveJob,
    /// A table's primary key (ids are random: a retry of the same insert).
    PrimaryKey,
    /// One this list does not know: `unique_constraints_are_all_named` keeps it empty.
    Unknown,
}

/// Each constraint as Postgres names it and as SQLite reports it ("UNIQUE constraint failed:
/// <columns>"), since SQLite errors carry no constraint name.
const NAMES: &[(Constraint, &str, &str)] = &[
    (
        Constraint::ContactExternalKey,
        "contacts_org_id_environment_external_key_key",
        "contacts.org_id, contacts.environment, contacts.external_key",
    ),
    (Constraint::UserEmail, "users_email_key", "users.email"),
    (
        Constraint::ApiKeySecret,
        "api_keys_secret_hash_key",
        "api_keys.secret_hash",
    ),
    (
        Constraint::ApiKeySecret,
        "api_keys_previous_hash_key",
        "api_keys.previous_hash",
    ),
    (
        Constraint::RefreshToken,
        "refresh_tokens_token_hash_key",
        "refresh_tokens.token_hash",
    ),
    (
        Constraint::AuditSequence,
        "audit_logs_chain_seq_key",
        "audit_logs.chain, audit_logs.seq",
    ),
    (
        Constraint::IdempotencyKey,
        "idempotency_keys_org_id_environment_idem_key_key",
        "idempotency_keys.org_id, idempotency_keys.environment, idempotency_keys.idem_key",
    ),
    (Constraint::LiveJob, "jobs_unique_live", "jobs.unique_key"),
];

impl Constraint {
    /// The constraint a unique violation reported by either driver broke.
    pub fn of(e: &dyn DatabaseError) -> Constraint {
        match e.constraint() {
            // Postgres names it.
            Some(name) => Constraint::from_postgres_name(name),
            // SQLite lists the columns (a primary key too: "contacts.id").
            None => e
                .message()
                .strip_prefix("UNIQUE constraint failed: ")
                .map_or(Constraint::Unknown, Constraint::from_sqlite_columns),
        }
    }

    pub fn from_postgres_name(name: &str) -> Constraint {
        if let Some((c, _, _)) = NAMES.iter().find(|(_, pg, _)| *pg == name) {
            return *c;
        }
        if name.ends_with("_pkey") {
            return Constraint::PrimaryKey;
        }
        Constraint::Unknown
    }

    pub fn from_sqlite_columns(columns: &str) -> Constraint {
        if let Some((c, _, _)) = NAMES.iter().find(|(_, _, cols)| *cols == columns) {
            return *c;
        }
        // Every table's primary key is its `id` column (or the table's whole key, below).
        let single_id = columns.split_once('.').is_some_and(|(_, col)| col == "id");
        let composite_keys = [
            "memberships.org_id, memberships.user_id",
            "subscriptions.org_id",
            "settings.key",
            "audit_heads.chain",
            "workers.worker_id",
            "schema_migrations.version",
            "health_samples.id",
            "alert_state.name",
            "branding.org_id",
        ];
        if single_id || composite_keys.contains(&columns) {
            return Constraint::PrimaryKey;
        }
        Constraint::Unknown
    }

    /// The Postgres name, for messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Constraint::PrimaryKey => "primary key",
            Constraint::Unknown => "unknown",
            c => NAMES
                .iter()
                .find(|(k, _, _)| *k == c)
                .map_or("unknown", |(_, pg, _)| pg),
        }
    }

    /// Every named unique constraint, as Postgres names it (for the schema test).
    pub fn postgres_names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(_, pg, _)| *pg)
    }

    /// Every named unique constraint, as SQLite reports its columns (for the schema test).
    pub fn sqlite_column_lists() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(_, _, cols)| *cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_map_from_either_drivers_report() {
        assert_eq!(
            Constraint::from_postgres_name("contacts_org_id_environment_external_key_key"),
            Constraint::ContactExternalKey
        );
        assert_eq!(
            Constraint::from_sqlite_columns(
                "contacts.org_id, contacts.environment, contacts.external_key"
            ),
            Constraint::ContactExternalKey
        );
        assert_eq!(
            Constraint::from_postgres_name("contacts_pkey"),
            Constraint::PrimaryKey
        );
        assert_eq!(
            Constraint::from_sqlite_columns("contacts.id"),
            Constraint::PrimaryKey
        );
        assert_eq!(
            Constraint::from_sqlite_columns("users.email"),
            Constraint::UserEmail
        );
        assert_eq!(
            Constraint::from_postgres_name("something_else"),
            Constraint::Unknown
        );
    }
}
