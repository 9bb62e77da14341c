//! The guard's cache of resolved keys, and the batched writes of their last use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{ApiKey, KeyRefusal, check, store};
use crate::cache::{Cache, FastHash};
use crate::ids::ApiKeyId;
use crate::store::{Db, DbError, DbResult};

/// A short-lived cache of resolved keys (or of the fact that none matched), keyed by the
/// SHA-256 of the presented secret.
pub struct KeyCache {
    entries: Cache<[u8; 32], Option<std::sync::Arc<ApiKey>>>,
    /// Set while this instance hears revocations from other instances (Redis pub/sub): the
    /// cache may then keep entries longer. Otherwise entries live at most one second, which
    /// is the bound SPEC promises for revocation everywhere.
    pub fanout_healthy: AtomicBool,
    /// Keys used since the last flush, each once.
    last_used: Mutex<Vec<std::sync::Arc<ApiKey>>>,
}

const MAX_ENTRIES: usize = 50_000;

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            entries: Cache::new(MAX_ENTRIES),
            fanout_healthy: AtomicBool::new(false),
            last_used: Mutex::new(Vec::new()),
        }
    }
}

impl KeyCache {
    fn ttl(&self) -> Duration {
        if self.fanout_healthy.load(Ordering::Acquire) {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(1)
        }
    }

    /// Resolves a presented key to its record, from cache or the store, as of `now`.
    pub async fn resolve(
        &self,
        db: &Db,
        presented: &str,
        now: i64,
    ) -> DbResult<Result<std::sync::Arc<ApiKey>, KeyRefusal>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Hex in a stack buffer: the stored hashes are hex, and this runs on every request.
        let mut hash = [0u8; 64];
        crate::ids::hex_into(&digest, &mut hash);
        let hash_text = std::str::from_utf8(&hash).unwrap_or_default();
        let found = self
            .entries
            .get_or_load(&digest, self.ttl(), now, async || {
                Ok::<_, DbError>(store::lookup(db, hash_text).await?.map(std::sync::Arc::new))
            })
            .await?;
        let Some(key) = found else {
            return Ok(Err(KeyRefusal::Unknown));
        };
        Ok(check(&key, &hash, now).map(|()| key))
    }

    pub fn clear(&self) {
        self.entries.clear();
    }

    /// Drops every cached entry of key `id` (its current and previous secret).
    pub fn evict(&self, id: &str) {
        self.entries
            .remove_where(|_, k| k.as_ref().is_some_and(|k| k.id.as_str() == id));
    }

    /// Notes a use of `key` at `now`; written to the store in batches by
    /// [`Self::flush_last_used`].
    pub fn touch(&self, key: &std::sync::Arc<ApiKey>, now: i64) {
        key.used.at.fetch_max(now, Ordering::Relaxed);
        if !key.used.queued.load(Ordering::Relaxed) && !key.used.queued.swap(true, Ordering::AcqRel)
        {
            let mut list = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            list.push(key.clone());
        }
    }

    /// Writes the noted uses in one transaction.
    pub async fn flush_last_used(&self, db: &Db) -> DbResult<usize> {
        let keys: Vec<std::sync::Arc<ApiKey>> = {
            let mut list = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *list)
        };
        // Unqueued before the time is read: a use after this queues the key again, so none is
        // lost (one that lands in between is written twice, which is harmless).
        let mut batch: HashMap<&ApiKeyId, i64, FastHash> = HashMap::default();
        for k in &keys {
            k.used.queued.store(false, Ordering::Release);
            let at = k.used.at.load(Ordering::Acquire);
            let e = batch.entry(&k.id).or_insert(at);
            *e = (*e).max(at);
        }
        if batch.is_empty() {
            return Ok(0);
        }
        store::record_uses(db, &batch).await?;
        Ok(batch.len())
    }
}
