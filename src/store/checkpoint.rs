//! SQLite WAL checkpoints in the background, off the writer connection.
//!
//! By default SQLite checkpoints from whichever connection commits the transaction that takes
//! the WAL past 1,000 pages: here, always the one writer connection, in the middle of an API
//! request. A checkpoint copies pages into the database file and `fsync`s both files, and on a
//! slow disk the writer (and every write queued behind it) waited for that: in the webhook
//! benchmark's one-endpoint case, API writes alone went from about 1,200/s to 1,800/s on the
//! same machine without it.
//!
//! So a task with a connection of its own runs `PRAGMA wal_checkpoint(PASSIVE)`, which never
//! takes the write lock nor waits for readers: often while writes come in, rarely when idle.
//! The writer keeps a high automatic threshold ([`WRITER_AUTOCHECKPOINT`]) as a backstop, so
//! the WAL stays bounded even if this task falls behind or cannot run. Durability is unchanged
//! (`synchronous=NORMAL`: a commit survives a crash of the process; a power loss may take the
//! commits since the last checkpoint's `fsync`), and that window is now a fraction of a
//! second, where before, at low traffic, 1,000 pages could take minutes.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Pages after which the writer checkpoints by itself all the same (about 40 MB of WAL).
pub const WRITER_AUTOCHECKPOINT: &str = "10000";

/// Between checkpoints while the WAL is being written to.
const BUSY: Duration = Duration::from_millis(100);
/// Between checkpoints while it is not.
const IDLE: Duration = Duration::from_millis(250);

/// Stops the checkpointing task when the last clone of the database handle is dropped.
#[derive(Clone)]
pub struct Checkpointer {
    _stop: std::sync::Arc<DropGuard>,
    token: CancellationToken,
}

impl Checkpointer {
    /// Starts the task (needs a Tokio runtime). Failures are logged and retried; the writer's
    /// own threshold covers for them.
    pub fn start(options: SqliteConnectOptions) -> Checkpointer {
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            let mut conn: Option<SqliteConnection> = None;
            let (mut wait, mut last) = (IDLE, 0);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = match checkpoint(&mut conn, &options).await {
                    // The WAL has not moved since the last look: nothing is being written.
                    Ok(frames) if frames == last => IDLE,
                    Ok(frames) => {
                        last = frames;
                        BUSY
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "background WAL checkpoint failed");
                        conn = None;
                        IDLE
                    }
                };
            }
            if let Some(c) = conn {
                let _ = c.close().await;
            }
        });
        Checkpointer {
            _stop: std::sync::Arc::new(token.clone().drop_guard()),
            token,
        }
    }

    pub fn stop(&self) {
        self.token.cancel();
    }
}

/// One passive checkpoint; returns the WAL's size in frames.
async fn checkpoint(
    conn: &mut Option<SqliteConnection>,
    options: &SqliteConnectOptions,
) -> sqlx::Result<i64> {
    if conn.is_none() {
        *conn = Some(SqliteConnection::connect_with(options).await?);
    }
    let Some(c) = conn.as_mut() else {
        return Ok(0);
    };
    // (busy, frames in the WAL, frames checkpointed)
    let (_busy, frames, _done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *c)
        .await?;
    Ok(frames.max(0))
}
