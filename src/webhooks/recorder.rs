//! Records delivered attempts many to a transaction.
//!
//! A delivered attempt is the hot path of the webhook worker, and its writes are small: the job
//! done, an attempt logged, the delivery marked. Written one transaction each, the commit
//! dominates (and on SQLite every transaction queues for the one writer). So the attempt's task
//! hands its writes to the recorder and waits: the recorder takes whatever has queued up
//! meanwhile (up to [`MAX_BATCH`]) and writes it in one transaction, each item still behind its
//! own lease fence. Nothing waits on purpose: under light load a batch is one item; under heavy
//! load batches grow while the previous one commits. If a batch fails, its items are written
//! again one per transaction, so one bad item fails alone.

use tokio::sync::{mpsc, oneshot};

use super::delivery::{Delivered, write_delivered};
use crate::store::{Db, DbError, DbResult};

const MAX_BATCH: usize = 128;

type Item = (Delivered, oneshot::Sender<DbResult<bool>>);

/// The handle attempts record through; the writer task ends when every handle is dropped.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Item>,
}

impl Recorder {
    /// Starts the writer task (needs a Tokio runtime).
    pub fn start(db: Db) -> Recorder {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, rx));
        Recorder { tx }
    }

    /// Records `d` and returns once it is committed: `false` if the job's lease was lost (and
    /// nothing was written).
    pub(crate) async fn record(&self, d: Delivered) -> DbResult<bool> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((d, reply)).await.is_err() {
            return Err(DbError::Unavailable(sqlx::Error::PoolClosed));
        }
        answer
            .await
            .unwrap_or(Err(DbError::Unavailable(sqlx::Error::PoolClosed)))
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Item>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("rampart_webhook_record_batch_size").record(batch.len() as f64);
        write_batch(&db, std::mem::take(&mut batch)).await;
    }
}

async fn write_batch(db: &Db, mut batch: Vec<Item>) {
    if batch.len() > 1 {
        // One lock order for the rows items share (endpoints), so two instances' batches
        // cannot deadlock on them.
        batch.sort_by(|a, b| a.0.endpoint_id.cmp(&b.0.endpoint_id));
        let items: Vec<&Delivered> = batch.iter().map(|(d, _)| d).collect();
        match write(db, &items).await {
            Ok(held) => {
                for ((_, reply), h) in batch.into_iter().zip(held) {
                    let _ = reply.send(Ok(h));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, items = batch.len(), "recording a batch of deliveries failed; recording them one by one");
            }
        }
    }
    for (d, reply) in batch {
        let _ = reply.send(
            write(db, &[&d])
                .await
                .map(|held| held.first().copied().unwrap_or(false)),
        );
    }
}

async fn write(db: &Db, items: &[&Delivered]) -> DbResult<Vec<bool>> {
    let mut tx = db.begin().await?;
    let held = write_delivered(&mut tx, items).await?;
    tx.commit().await?;
    Ok(held)
}
