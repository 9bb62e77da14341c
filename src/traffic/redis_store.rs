//! Redis as an accelerator, never the source of truth: the shared limit store and the
//! revocation fan-out. Every call is bounded by `RAMPART_REDIS_TIMEOUT`; three failures in a
//! row open a circuit breaker for two seconds, during which no call is attempted, so an outage
//! never adds more than one timeout to a request.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use super::limit::{Limit, LimitKind, Outcome, ceil_s};
use crate::clock::now_ms;

const BREAKER_THRESHOLD: u32 = 3;
const BREAKER_OPEN_MS: i64 = 2_000;

/// Every limit of a request, checked and (only if all admit) consumed in one round trip on
/// Redis's own clock. GCRA state is an arrival time in microseconds; quotas are counters per
/// fixed window. ARGV: the number of limits, then per limit its kind, count, period, the extra
/// units asked for a lease (see `lease.rs`) and whether the request takes its own unit here
/// (1) or already holds one from a lease (0; a refill ahead of need is all 0). Only limits
/// taking a unit can refuse; extra units are granted only out of a sixteenth of what is left,
/// and nothing is written unless the request is admitted. The reply holds, per limit:
/// admitted, remaining, reset (µs), retry after (µs), units granted. Numbers are formatted with %.0f because Lua would print
/// 1.7e+15.
const LIMIT_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local n = tonumber(ARGV[1])
local res = {}
local ok_all = true
local writes = {}
for i = 1, n do
  local kind = tonumber(ARGV[(i - 1) * 5 + 2])
  local count = tonumber(ARGV[(i - 1) * 5 + 3])
  local period_ms = tonumber(ARGV[(i - 1) * 5 + 4])
  local extra = tonumber(ARGV[(i - 1) * 5 + 5])
  local own = tonumber(ARGV[(i - 1) * 5 + 6])
  local key = KEYS[i]
  if kind == 1 then
    local period = period_ms * 1000
    local T = math.max(math.floor(period / count), 1)
    local tat = tonumber(redis.call('GET', key) or now_us)
    if tat < now_us then tat = now_us end
    local new_tat = tat + own * T
    local allow_at = new_tat - period
    if now_us < allow_at then
      ok_all = false
      res[#res + 1] = 0; res[#res + 1] = 0; res[#res + 1] = tat - now_us; res[#res + 1] = allow_at - now_us
      res[#res + 1] = 0
    else
      local left = math.max(math.floor((period - (new_tat - now_us)) / T), 0)
      local g = math.min(extra, math.floor(left / 16))
      new_tat = new_tat + g * T
      res[#res + 1] = 1; res[#res + 1] = left - g
      res[#res + 1] = new_tat - now_us; res[#res + 1] = 0; res[#res + 1] = g
      if own + g > 0 then writes[#writes + 1] = {1, key, new_tat, new_tat - now_us} end
    end
  else
    local window = now_ms - (now_ms % period_ms)
    local wkey = key .. ':' .. string.format('%.0f', window)
    local used = tonumber(redis.call('GET', wkey) or 0)
    local reset_us = (window + period_ms - now_ms) * 1000
    if used + own > count then
      ok_all = false
      res[#res + 1] = 0; res[#res + 1] = 0; res[#res + 1] = reset_us; res[#res + 1] = reset_us
      res[#res + 1] = 0
    else
      local left = count - used - own
      local g = math.min(extra, math.floor(left / 16))
      res[#res + 1] = 1; res[#res + 1] = left - g; res[#res + 1] = reset_us; res[#res + 1] = 0
      res[#res + 1] = g
      if own + g > 0 then writes[#writes + 1] = {2, wkey, own + g, window + period_ms - now_ms} end
    end
  end
end
if ok_all then
  for _, w in ipairs(writes) do
    if w[1] == 1 then
      redis.call('SET', w[2], string.format('%.0f', w[3]), 'PX', math.max(math.ceil(w[4] / 1000), 1))
    else
      -- The window's key gets its expiry once, when the first request creates it.
      if redis.call('INCRBY', w[2], w[3]) == w[3] then
        redis.call('PEXPIRE', w[2], w[4] + 1000)
      end
    end
  end
else
  -- A refused request is granted nothing.
  for i = 1, n do res[i * 5] = 0 end
end
return res
"#;

/// The Redis connection (made in the background, so start-up never waits for Redis), its
/// breaker and the scripts.
pub struct RedisStore {
    client: redis::Client,
    conn: RwLock<Option<ConnectionManager>>,
    timeout: Duration,
    failures: AtomicU32,
    open_until_ms: AtomicI64,
    script: redis::Script,
    pub connected: AtomicBool,
}

impl RedisStore {
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<Arc<RedisStore>> {
        Ok(Arc::new(RedisStore {
            client: redis::Client::open(url)?,
            conn: RwLock::new(None),
            timeout,
            failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
            script: redis::Script::new(LIMIT_SCRIPT),
            connected: AtomicBool::new(false),
        }))
    }

    /// Connects, and reconnects whenever needed, until `stop`.
    pub async fn maintain(self: Arc<Self>, stop: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            if self.conn.read().map(|c| c.is_none()).unwrap_or(true) {
                let cfg = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(self.timeout))
                    .set_connection_timeout(Some(Duration::from_millis(500)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    self.client.get_connection_manager_with_config(cfg),
                )
                .await
                {
                    Ok(Ok(c)) => {
                        if let Ok(mut slot) = self.conn.write() {
                            *slot = Some(c);
                        }
                        self.connected.store(true, Ordering::Release);
                        tracing::info!("redis connected");
                        delay = Duration::from_millis(100);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "redis unreachable; retrying"),
                    Err(_) => tracing::warn!("redis connection timed out; retrying"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    pub fn breaker_open(&self) -> bool {
        now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    fn on_failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= BREAKER_THRESHOLD {
            self.open_until_ms
                .store(now_ms() + BREAKER_OPEN_MS, Ordering::Relaxed);
            // Half-open afterwards: one more failure re-opens at once.
            self.failures
                .store(BREAKER_THRESHOLD - 1, Ordering::Relaxed);
            metrics::counter!("rampart_redis_breaker_opened_total").increment(1);
        }
    }

    fn on_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    fn connection(&self) -> Result<ConnectionManager, String> {
        if self.breaker_open() {
            return Err("circuit breaker open".into());
        }
        self.conn
            .read()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| "not connected".to_owned())
    }

    /// Runs `f` on the connection within the timeout, feeding the breaker.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection()?;
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.on_success();
                Ok(v)
            }
            Ok(Err(e)) => {
                self.on_failure();
                Err(e.to_string())
            }
            Err(_) => {
                self.on_failure();
                Err(format!("timed out after {} ms", self.timeout.as_millis()))
            }
        }
    }

    /// Evaluates every limit in one script call, asking for `extra[i]` more units of limit `i`
    /// for a lease; `own[i]` false where the request already holds a leased unit of limit `i`
    /// (all false: a refill for no request). Returns the outcomes and the units granted per
    /// limit.
    pub async fn check(
        &self,
        limits: &[Limit],
        extra: &[u64],
        own: &[bool],
    ) -> Result<(Vec<Outcome>, Vec<u64>), String> {
        let raw: Vec<i64> = self
            .call(|mut c| {
                let mut inv = self.script.prepare_invoke();
                inv.arg(limits.len());
                for ((l, extra), own) in limits.iter().zip(extra).zip(own) {
                    let kind = match l.kind {
                        LimitKind::Rate => 1,
                        LimitKind::Quota => 2,
                    };
                    inv.key(format!(
                        "rampart:{}:{}",
                        if kind == 1 { "rl" } else { "q" },
                        l.id
                    ));
                    inv.arg(kind)
                        .arg(l.rate.count)
                        .arg(l.rate.period_ms)
                        .arg(*extra)
                        .arg(u8::from(*own));
                }
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        if raw.len() != limits.len() * 5 {
            return Err("unexpected script reply".into());
        }
        let outcomes = limits
            .iter()
            .zip(raw.chunks(5))
            .map(|(l, r)| Outcome {
                name: l.name,
                kind: l.kind,
                rate: l.rate,
                allowed: r[0] == 1,
                remaining: r[1].max(0) as u64,
                reset_ms: (r[2].max(0) as u64).div_ceil(1000),
                retry_after_s: if r[0] == 1 { 0 } else { ceil_s(r[3]).max(1) },
                retry_after_ms: if r[0] == 1 {
                    0
                } else {
                    (r[3].max(0) as u64).div_ceil(1000)
                },
            })
            .collect();
        let grants = raw.chunks(5).map(|r| r[4].max(0) as u64).collect();
        Ok((outcomes, grants))
    }

    /// Whether Redis answers a PING within the timeout (deep health).
    pub async fn ping(&self) -> bool {
        let conn = self.conn.read().ok().and_then(|c| c.clone());
        let Some(mut c) = conn else { return false };
        matches!(
            tokio::time::timeout(
                self.timeout.max(Duration::from_millis(200)),
                redis::cmd("PING").query_async::<String>(&mut c)
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// Publishes `message` on `channel` (best effort; failures are logged).
    pub async fn publish(&self, channel: &str, message: &str) {
        let r: Result<i64, String> = self
            .call(|mut c| {
                let (ch, msg) = (channel.to_owned(), message.to_owned());
                async move {
                    redis::cmd("PUBLISH")
                        .arg(ch)
                        .arg(msg)
                        .query_async(&mut c)
                        .await
                }
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, channel, "redis publish failed");
        }
    }

    /// Subscribes to `channel` for as long as the process runs, reconnecting as needed.
    /// `healthy` is true exactly while the subscription is live.
    pub async fn subscribe(
        self: Arc<Self>,
        channel: &'static str,
        healthy: impl Fn(bool) + Send + 'static,
        on_message: impl Fn(String) + Send + 'static,
        stop: CancellationToken,
    ) {
        let mut delay = Duration::from_millis(100);
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                let mut ps = self.client.get_async_pubsub().await?;
                ps.subscribe(channel).await?;
                Ok::<_, redis::RedisError>(ps)
            })
            .await;
            match attempt {
                Ok(Ok(ps)) => {
                    healthy(true);
                    delay = Duration::from_millis(100);
                    let mut stream = ps.into_on_message();
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => { healthy(false); return; }
                            msg = stream.next() => match msg {
                                Some(m) => {
                                    if let Ok(payload) = m.get_payload::<String>() {
                                        on_message(payload);
                                    }
                                }
                                None => break,
                            }
                        }
                    }
                    healthy(false);
                    tracing::warn!(channel, "redis subscription lost; resubscribing");
                }
                _ => healthy(false),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
