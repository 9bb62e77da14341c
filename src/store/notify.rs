//! Postgres `NOTIFY` wake-ups, sent after commit and merged.
//!
//! A transaction that enqueues work used to call `pg_notify` itself. That cost every API write
//! a round trip, one notification per transaction to every listening instance and, worst,
//! Postgres serialises the commits of all transactions that notified: a database-wide lock is
//! held from pre-commit until the commit record is flushed. A wake-up only has to arrive after
//! the commit, not with it, so a transaction asks for one in an after-commit hook and one task
//! per pool sends them, merging every request that arrives while the previous `NOTIFY` is in
//! flight. A process that dies between a commit and its `NOTIFY` loses only the wake-up:
//! workers and schedulers poll as well, and this process's own are woken in-process at once.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Asks the pool's sender task for `NOTIFY`s. Cheap to clone; the task ends once every clone
/// is gone.
#[derive(Clone)]
pub struct Notifier {
    bell: mpsc::Sender<()>,
    pending: Arc<Mutex<Vec<&'static str>>>,
}

impl Notifier {
    /// Starts the sender task for `pool` (needs a Tokio runtime).
    pub fn start(pool: sqlx::PgPool) -> Notifier {
        // One slot: a bell already rung covers every channel added to `pending` before the
        // task takes it.
        let (bell, mut rung) = mpsc::channel::<()>(1);
        let pending: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let todo = pending.clone();
        tokio::spawn(async move {
            while rung.recv().await.is_some() {
                let channels = std::mem::take(&mut *todo.lock().unwrap_or_else(|p| p.into_inner()));
                for channel in channels {
                    let sent = sqlx::query("SELECT pg_notify($1, '')")
                        .bind(channel)
                        .execute(&pool)
                        .await;
                    if let Err(e) = sent {
                        // Listeners poll as well; a lost wake-up only delays them.
                        tracing::debug!(error = %e, channel, "NOTIFY failed");
                    }
                }
            }
        });
        Notifier { bell, pending }
    }

    /// Asks for a `NOTIFY` on `channel` soon (merged with any other request not yet sent).
    pub fn request(&self, channel: &'static str) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if !pending.contains(&channel) {
                pending.push(channel);
            }
        }
        // Full means a ring is already waiting, and it will see `channel`.
        let _ = self.bell.try_send(());
    }
}
