//! Many callers' small queries, run together.
//!
//! A [`Batcher`] owns a task that takes whatever requests have queued up (at most `max`) and
//! serves them with one call of its function: one query or one transaction for the lot instead
//! of one each. Nothing waits on purpose: under light load a batch is a single request; under
//! heavy load batches grow while the previous one runs. Used by the webhook worker, whose
//! deliveries each need a row loaded before the attempt and a few rows written after it.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::{DbError, DbResult};

type Request<I, O> = (I, oneshot::Sender<DbResult<O>>);

/// A handle to a batching task; the task ends when every handle is dropped.
pub struct Batcher<I, O> {
    tx: mpsc::Sender<Request<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the task (needs a Tokio runtime). `serve` gets the queued inputs, in arrival
    /// order, and returns one result per input, in the same order.
    pub fn start<F, Fut>(max: usize, serve: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<DbResult<O>>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Request<I, O>>(4 * max);
        tokio::spawn(async move {
            let mut queued = Vec::with_capacity(max);
            while rx.recv_many(&mut queued, max).await > 0 {
                let (inputs, replies): (Vec<I>, Vec<_>) =
                    std::mem::take(&mut queued).into_iter().unzip();
                let n = inputs.len();
                let mut outputs = serve(inputs).await.into_iter();
                for reply in replies.into_iter().take(n) {
                    let out = outputs
                        .next()
                        .unwrap_or(Err(DbError::Unavailable(sqlx::Error::WorkerCrashed)));
                    let _ = reply.send(out);
                }
            }
        });
        Batcher { tx }
    }

    /// Queues `input` and waits for its result.
    pub async fn call(&self, input: I) -> DbResult<O> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((input, reply)).await.is_err() {
            return Err(DbError::Unavailable(sqlx::Error::PoolClosed));
        }
        answer
            .await
            .unwrap_or(Err(DbError::Unavailable(sqlx::Error::PoolClosed)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn answers_each_caller_in_order_and_batches_under_load() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let b: Batcher<u32, u32> = Batcher::start(16, move |inputs: Vec<u32>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                // Slow enough that callers queue up behind a running batch.
                tokio::time::sleep(Duration::from_millis(20)).await;
                inputs
                    .into_iter()
                    .map(|i| {
                        if i == 7 {
                            Err(DbError::Other(sqlx::Error::RowNotFound))
                        } else {
                            Ok(i * 2)
                        }
                    })
                    .collect()
            }
        });
        let tasks: Vec<_> = (0..64u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.call(i).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r {
                Ok(v) => assert_eq!(v, i * 2),
                Err(_) => assert_eq!(i, 7, "only the failing input fails"),
            }
        }
        let n = calls.load(Ordering::SeqCst);
        assert!(n >= 4, "at most 16 per batch: {n} batches");
        assert!(n < 64, "callers were batched: {n} batches for 64 calls");
    }
}
