//! Many callers' small queries, run together.
//!
//! A [`Batcher`] owns a task that takes whatever requests have queued up (at most `max`) and
//! serves them with one call of its function: one query or one transaction for the lot instead
//! of one each. Nothing waits for time to pass: under light load a batch is a single request;
//! under heavy load batches grow while the previous one runs. Used by the webhook worker, whose
//! deliveries each need a row loaded before the attempt and a few rows written after it, and by
//! `GET /v1/contacts/{id}` (`contacts::reads`).
//!
//! Once the first request of a batch has arrived, the task yields to the runtime before it
//! takes the rest ([`Gather`]): Tokio runs a task woken by another right after it, so without
//! the yield the first request of a burst went alone and the others waited for its round trip.
//! With it, the tasks already able to run (other connections' requests) queue theirs first.
//! When nothing else can run, a yield returns at once and brings nothing, which ends the
//! gathering.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::{DbError, DbResult};

type Request<I, O> = (I, oneshot::Sender<DbResult<O>>);

/// How a batch gathers the requests that are ready to run before it is served: it yields to
/// the runtime, and again while a yield brought more, at most this many times. More yields make
/// bigger batches for work that costs this process's CPU per statement (SQLite); where a batch
/// is a round trip (Postgres), each yield delays the next one, so one is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gather(pub usize);

impl Gather {
    /// One yield: the burst a request came with joins it.
    pub const BURST: Gather = Gather(1);
    /// Up to four yields, while each brings more (SQLite reads: docs/BENCHMARKS.md).
    pub const WHILE_ARRIVING: Gather = Gather(4);
}

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
    pub fn start<F, Fut>(max: usize, gather: Gather, serve: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<DbResult<O>>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Request<I, O>>(4 * max);
        tokio::spawn(async move {
            let mut queued = Vec::with_capacity(max);
            while rx.recv_many(&mut queued, max).await > 0 {
                // See the module's comment and `Gather`.
                for _ in 0..gather.0 {
                    if queued.len() >= max {
                        break;
                    }
                    tokio::task::yield_now().await;
                    let before = queued.len();
                    while queued.len() < max {
                        match rx.try_recv() {
                            Ok(r) => queued.push(r),
                            Err(_) => break,
                        }
                    }
                    if queued.len() == before {
                        break;
                    }
                }
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

    /// Ten callers ready to run at once go in one batch: the first one's does not leave alone
    /// (one worker thread, so Tokio's run-next slot decides the order).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_burst_of_ready_callers_is_one_batch() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let b: Batcher<u32, u32> = Batcher::start(64, Gather::BURST, move |inputs: Vec<u32>| {
            seen.lock().unwrap().push(inputs.len());
            async move { inputs.into_iter().map(Ok).collect() }
        });
        let burst = tokio::spawn(async move {
            let tasks: Vec<_> = (0..10u32)
                .map(|i| {
                    let b = b.clone();
                    tokio::spawn(async move { b.call(i).await.unwrap() })
                })
                .collect();
            for (i, t) in tasks.into_iter().enumerate() {
                assert_eq!(t.await.unwrap(), i as u32);
            }
        });
        burst.await.unwrap();
        assert_eq!(*sizes.lock().unwrap(), vec![10]);
    }

    #[tokio::test]
    async fn answers_each_caller_in_order_and_batches_under_load() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let b: Batcher<u32, u32> = Batcher::start(16, Gather::BURST, move |inputs: Vec<u32>| {
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
