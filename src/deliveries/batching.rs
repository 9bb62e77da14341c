//! The webhook worker's batched reads and writes.
//!
//! Every delivery attempt loads its delivery (with event, endpoint and subscription) before the
//! request and records its outcome after. Done one query or transaction each, round trips and
//! commits dominate the worker's cost, and on SQLite every write queues for the one writer
//! connection. So the common steps go through [`Batcher`]s: loads of whatever deliveries are
//! waiting in one query, and delivered attempts in one transaction, each item still behind its
//! own lease fence. A batch that fails is written again one item per transaction, so one bad
//! item fails alone. Failed attempts (rarer, and with more to decide) keep their own
//! transaction.

use super::outcome::{Delivered, write_delivered};
use super::store::{Work, load_many};
use crate::ids::DeliveryId;
use crate::store::batch::{Batcher, Gather};
use crate::store::{Db, DbResult};

const MAX_BATCH: usize = 128;

#[derive(Clone)]
pub(super) struct DeliveryBatches {
    /// Delivery id → what its attempt needs (`None`: no such delivery).
    pub load: Batcher<DeliveryId, Option<Work>>,
    /// A delivered attempt → whether its lease held (if not, nothing was written).
    pub record: Batcher<Delivered, bool>,
}

impl DeliveryBatches {
    /// Starts the batching tasks (needs a Tokio runtime).
    pub fn start(db: &Db) -> DeliveryBatches {
        let reader = db.clone();
        let writer = db.clone();
        DeliveryBatches {
            load: Batcher::start(MAX_BATCH, Gather::BURST, move |ids| {
                let db = reader.clone();
                async move { load(&db, ids).await }
            }),
            record: Batcher::start(MAX_BATCH, Gather::BURST, move |items| {
                let db = writer.clone();
                async move { record(&db, items).await }
            }),
        }
    }
}

async fn load(db: &Db, ids: Vec<DeliveryId>) -> Vec<DbResult<Option<Work>>> {
    match load_many(db, &ids).await {
        Ok(found) => found.into_iter().map(Ok).collect(),
        Err(e) if ids.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(
                    load_many(db, std::slice::from_ref(&id))
                        .await
                        .map(|mut w| w.pop().flatten()),
                );
            }
            out
        }
    }
}

async fn record(db: &Db, items: Vec<Delivered>) -> Vec<DbResult<bool>> {
    if items.len() > 1 {
        let all: Vec<&Delivered> = items.iter().collect();
        match write(db, &all).await {
            Ok(held) => return held.into_iter().map(Ok).collect(),
            Err(e) => {
                tracing::warn!(error = %e, items = items.len(), "recording a batch of deliveries failed; recording them one by one");
            }
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for d in &items {
        out.push(
            write(db, &[d])
                .await
                .map(|held| held.first().copied().unwrap_or(false)),
        );
    }
    out
}

async fn write(db: &Db, items: &[&Delivered]) -> DbResult<Vec<bool>> {
    let mut tx = db.begin().await?;
    let held = write_delivered(&mut tx, items).await?;
    tx.commit().await?;
    Ok(held)
}
