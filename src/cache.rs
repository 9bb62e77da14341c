//! A read-through cache for what the guard reads on every request (API keys, plans), with a
//! hard bound on staleness and no stampede when an entry runs out.
//!
//! An entry is never served more than `ttl` after the read that produced it began, so a change
//! (a revocation, a billing event) takes effect within `ttl`, as before this cache existed.
//! What it adds: once an entry is past half its `ttl`, one request reloads it while every
//! other request is still served from the cache. A busy entry therefore never runs out, and
//! the burst of concurrent misses that an expiry used to cause (every in-flight request
//! queueing on the database at once, seen as p99 spikes once a second) does not happen.
//! [`Cache::remove`], [`Cache::remove_where`] and [`Cache::clear`] start a new generation, so a read that began
//! before them cannot put back what they removed.
//!
//! Times are the caller's `now` in Unix milliseconds, so that a request reads the clock once
//! for all its checks (on this VM a clock read costs as much as a hash lookup). A clock that
//! steps back makes an entry look as if read in the future: it is then treated as expired.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// The hasher of the guard's maps: several times faster than the default SipHash on short
/// keys, and still seeded per process, so keys an attacker picks cannot be aimed at one bucket.
pub type FastHash = foldhash::quality::RandomState;

pub struct Cache<K, V> {
    inner: Mutex<Inner<K, V>>,
    max_entries: usize,
}

struct Inner<K, V> {
    map: HashMap<K, Slot<V>, FastHash>,
    generation: u64,
}

struct Slot<V> {
    value: V,
    read_at: i64,
    /// When a request was last told to reload this entry. Time-based rather than a flag
    /// cleared on completion, because that request may be dropped mid-read (its client went
    /// away) or fail: after a quarter of `ttl` another request gets the job.
    reload_started: Option<i64>,
}

/// A read may begin: what [`Cache::store`] needs to file its result.
pub struct Ticket {
    generation: u64,
    started: i64,
}

enum Lookup<V> {
    Hit(V),
    /// Still valid, but this request should reload it.
    Reload(V, Ticket),
    Miss(Ticket),
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// At most `max_entries` (past that, the cache starts over empty).
    pub fn new(max_entries: usize) -> Self {
        Cache {
            inner: Mutex::new(Inner {
                map: HashMap::default(),
                generation: 0,
            }),
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, key: &K, ttl: Duration, now: i64) -> Lookup<V> {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut inner = self.lock();
        let ticket = Ticket {
            generation: inner.generation,
            started: now,
        };
        let Some(slot) = inner.map.get_mut(key) else {
            return Lookup::Miss(ticket);
        };
        let age = now - slot.read_at;
        if !(0..ttl).contains(&age) {
            return Lookup::Miss(ticket);
        }
        let reload_due = age >= ttl / 2
            && slot
                .reload_started
                .is_none_or(|s| now - s >= ttl / 4 || now < s);
        if reload_due {
            slot.reload_started = Some(now);
            Lookup::Reload(slot.value.clone(), ticket)
        } else {
            Lookup::Hit(slot.value.clone())
        }
    }

    /// Files what a read that began with `ticket` found, unless the cache was invalidated
    /// since it began.
    fn store(&self, key: K, value: V, ticket: Ticket) {
        let mut inner = self.lock();
        if inner.generation != ticket.generation {
            return;
        }
        if inner.map.len() >= self.max_entries && !inner.map.contains_key(&key) {
            inner.map.clear();
        }
        inner.map.insert(
            key,
            Slot {
                value,
                read_at: ticket.started,
                reload_started: None,
            },
        );
    }

    /// The cached value of `key` if younger than `ttl`, else what `load` reads (then cached).
    /// Past half of `ttl`, one request reloads it; if that read fails, it is still served the
    /// cached value, which is within `ttl`.
    pub async fn get_or_load<E, F>(&self, key: &K, ttl: Duration, now: i64, load: F) -> Result<V, E>
    where
        F: AsyncFnOnce() -> Result<V, E>,
    {
        // The load is boxed: a hit, by far the common case, then carries no room for it in
        // its caller's future (a whole database read, copied with the future each request).
        match self.lookup(key, ttl, now) {
            Lookup::Hit(v) => Ok(v),
            Lookup::Reload(cached, ticket) => match Box::pin(load()).await {
                Ok(v) => {
                    self.store(key.clone(), v.clone(), ticket);
                    Ok(v)
                }
                Err(_) => Ok(cached),
            },
            Lookup::Miss(ticket) => {
                let v = Box::pin(load()).await?;
                self.store(key.clone(), v.clone(), ticket);
                Ok(v)
            }
        }
    }

    /// Drops the entry of `key`; reads already under way will not be cached.
    pub fn remove(&self, key: &K) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.map.remove(key);
    }

    /// Drops the entries `f` selects; reads already under way will not be cached.
    pub fn remove_where(&self, f: impl Fn(&K, &V) -> bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.map.retain(|k, s| !f(k, &s.value));
    }

    /// Drops everything; reads already under way will not be cached.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const TTL: Duration = Duration::from_millis(1000);

    /// Reads `"k"` at `now`; a read (counted in `loads`) finds `value`.
    async fn get(c: &Cache<&'static str, u32>, loads: &AtomicU32, now: i64, value: u32) -> u32 {
        c.get_or_load(&"k", TTL, now, async || {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(value)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn one_request_reloads_a_half_expired_entry_while_the_rest_are_served() {
        let c = Cache::new(10);
        let loads = AtomicU32::new(0);
        assert_eq!(get(&c, &loads, 0, 1).await, 1);
        assert_eq!(
            get(&c, &loads, 499, 2).await,
            1,
            "fresh: served from the cache"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 1);

        // Past half the ttl, the first request reloads (slowly); those arriving meanwhile are
        // served the cached value without a read of their own.
        let slow = c.get_or_load(&"k", TTL, 500, async || {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, ()>(3)
        });
        let others = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut seen = Vec::new();
            for now in 501..506 {
                seen.push(get(&c, &loads, now, 9).await);
            }
            seen
        };
        let (reloaded, seen) = tokio::join!(slow, others);
        assert_eq!(reloaded, Ok(3));
        assert_eq!(seen, vec![1; 5]);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        // Filed as read at 500: fresh until 1000, expired at 1500.
        assert_eq!(get(&c, &loads, 999, 9).await, 3);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_reload_that_never_finished_is_handed_to_another_request() {
        let c = Cache::new(10);
        let loads = AtomicU32::new(0);
        assert_eq!(get(&c, &loads, 0, 1).await, 1);
        // A reload whose request is dropped before its read returns.
        let abandoned = c.get_or_load(&"k", TTL, 600, async || {
            std::future::pending::<()>().await;
            Ok::<u32, ()>(0)
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(10), abandoned)
                .await
                .is_err()
        );
        assert_eq!(get(&c, &loads, 700, 2).await, 1, "its reload is under way");
        assert_eq!(
            get(&c, &loads, 850, 2).await,
            2,
            "a quarter ttl later: reloaded"
        );
    }

    #[tokio::test]
    async fn an_entry_is_never_served_past_its_ttl_and_a_failed_reload_serves_the_cached_value() {
        let c = Cache::new(10);
        let loads = AtomicU32::new(0);
        assert_eq!(get(&c, &loads, 0, 1).await, 1);
        let failed: Result<u32, ()> = c.get_or_load(&"k", TTL, 600, async || Err(())).await;
        assert_eq!(failed, Ok(1), "still within the ttl");
        let failed: Result<u32, ()> = c.get_or_load(&"k", TTL, 1000, async || Err(())).await;
        assert_eq!(failed, Err(()), "past the ttl the read's failure shows");
        assert_eq!(get(&c, &loads, 1000, 2).await, 2);
        // A clock that stepped back: the entry counts as expired.
        assert_eq!(get(&c, &loads, 900, 3).await, 3);
    }

    #[tokio::test]
    async fn a_read_that_began_before_an_invalidation_is_not_cached() {
        let c = Cache::new(10);
        let loads = AtomicU32::new(0);
        let stale = c.get_or_load(&"k", TTL, 0, async || {
            c.remove_where(|k, _| *k == "k");
            Ok::<_, ()>(1)
        });
        assert_eq!(stale.await, Ok(1));
        assert_eq!(
            get(&c, &loads, 1, 2).await,
            2,
            "the older read was not filed"
        );
        let stale = c.get_or_load(&"k", TTL, 600, async || {
            c.remove(&"k");
            Ok::<_, ()>(9)
        });
        assert_eq!(stale.await, Ok(9), "a reload that raced a removal");
        assert_eq!(get(&c, &loads, 601, 4).await, 4, "…was not filed either");
        c.clear();
        assert_eq!(get(&c, &loads, 602, 3).await, 3);
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }
}
