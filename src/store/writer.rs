//! SQLite's one writer connection, handed from transaction to transaction through a fair lock
//! instead of going back to sqlx's pool after each.
//!
//! Why: every write waits for this one connection, so what it costs to pass it on is paid by
//! all of them in turn. Through the pool that was a spawned task and a ping round trip to the
//! connection's thread on release, then another ping on acquire (sqlx tests a pooled connection
//! both ways; a connection to a file in this process has nothing to test), and only then the
//! next transaction's first statement. Through the lock it is one wake-up.

use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{DbError, DbResult};

/// The writer: its pool (of one connection) and the connection, once taken from it.
#[derive(Clone)]
pub struct Writer {
    pool: SqlitePool,
    held: Arc<Mutex<Option<PoolConnection<Sqlite>>>>,
    timeout: Duration,
}

/// The writer connection, held: the next transaction waits until this is dropped.
pub struct WriterConn {
    guard: OwnedMutexGuard<Option<PoolConnection<Sqlite>>>,
    /// Taken out of the guard while held; `None` once discarded.
    conn: Option<PoolConnection<Sqlite>>,
}

impl Writer {
    /// `timeout`: how long a write waits for the connection before it gives up (as the pool's
    /// acquire timeout did).
    pub fn new(pool: SqlitePool, timeout: Duration) -> Writer {
        Writer {
            pool,
            held: Arc::new(Mutex::new(None)),
            timeout,
        }
    }

    /// Waits for the connection (first come, first served).
    pub async fn acquire(&self) -> DbResult<WriterConn> {
        let mut guard = tokio::time::timeout(self.timeout, self.held.clone().lock_owned())
            .await
            .map_err(|_| DbError::Unavailable(sqlx::Error::PoolTimedOut))?;
        let conn = match guard.take() {
            Some(c) => c,
            // The first write, or the one after a connection was discarded.
            None => self.pool.acquire().await?,
        };
        Ok(WriterConn {
            guard,
            conn: Some(conn),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the connection (after any transaction holding it) and the pool.
    pub async fn close(&self) {
        drop(self.held.lock().await.take());
        self.pool.close().await;
    }
}

impl WriterConn {
    pub fn get(&mut self) -> DbResult<&mut SqliteConnection> {
        self.conn
            .as_deref_mut()
            .ok_or(DbError::Other(sqlx::Error::PoolClosed))
    }

    /// The connection's state is unknown (say a rollback failed): close it; the next write
    /// takes a new one from the pool.
    pub fn discard(mut self) {
        if let Some(mut c) = self.conn.take() {
            c.close_on_drop();
        }
    }
}

impl Drop for WriterConn {
    fn drop(&mut self) {
        *self.guard = self.conn.take();
    }
}
