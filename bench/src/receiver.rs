//! A local receiver of signed webhook deliveries (webhooks and scheduler benchmarks): a real
//! HTTP/1.1 server (axum) on a local port that answers every `POST /hook/<n>` with `200` at
//! once, verifies its Standard Webhooks signature with endpoint n's secret, and records when it
//! arrived. No load tool can do this, so it is our own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One request the receiver got.
pub struct Arrival {
    /// Which endpoint's URL (`/hook/<n>`) it came to.
    pub endpoint: usize,
    pub at: Instant,
    /// Wall-clock arrival, in ms since the Unix epoch (compared with `send_at`).
    pub wall_ms: f64,
    pub webhook_id: String,
    pub external_key: Option<String>,
    pub scheduled_message_id: Option<String>,
    /// The `webhook-signature` verifies with the endpoint's secret.
    pub signed: bool,
}

/// The part of a delivery's body the benchmarks read.
#[derive(serde::Deserialize)]
struct DeliveryBody {
    data: DeliveryData,
}

#[derive(serde::Deserialize)]
struct DeliveryData {
    external_key: Option<String>,
    scheduled_message_id: Option<String>,
}

#[derive(Default)]
struct Inbox {
    arrivals: Mutex<Vec<Arrival>>,
    count: AtomicU64,
    /// Requests that were not a readable delivery (answered 200 all the same).
    malformed: AtomicU64,
    secrets: RwLock<Vec<Option<ring::hmac::Key>>>,
}

pub struct Receiver {
    addr: std::net::SocketAddr,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(listen: &str) -> anyhow::Result<Receiver> {
        let inbox = Arc::new(Inbox::default());
        let app = axum::Router::new()
            .route("/hook/{n}", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("receiver: bind {listen}"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("receiver stopped: {e}");
            }
        });
        Ok(Receiver { addr, inbox, task })
    }

    pub fn url(&self, n: usize) -> String {
        format!("http://{}/hook/{n}", self.addr)
    }

    /// Deliveries to endpoint `n` are verified with this `whsec_…` secret.
    pub fn set_secret(&self, n: usize, secret: &str) -> anyhow::Result<()> {
        let bytes = B64
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .context("undecodable endpoint secret")?;
        let mut secrets = self
            .inbox
            .secrets
            .write()
            .map_err(|_| anyhow::anyhow!("receiver secrets poisoned"))?;
        if secrets.len() <= n {
            secrets.resize_with(n + 1, || None);
        }
        secrets[n] = Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes));
        Ok(())
    }

    /// Requests received so far.
    pub fn count(&self) -> u64 {
        self.inbox.count.load(Ordering::Relaxed)
    }

    pub fn malformed(&self) -> u64 {
        self.inbox.malformed.load(Ordering::Relaxed)
    }

    /// Applies `f` to the arrivals so far.
    pub fn with_arrivals<T>(&self, f: impl FnOnce(&[Arrival]) -> T) -> T {
        match self.inbox.arrivals.lock() {
            Ok(a) => f(&a),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    pub fn take(&self) -> Vec<Arrival> {
        match self.inbox.arrivals.lock() {
            Ok(mut a) => std::mem::take(&mut *a),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(inbox): State<Arc<Inbox>>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    // First thing: the arrival time is what the benchmarks measure to.
    let at = Instant::now();
    let wall_ms = crate::units::wall_ms();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let Ok(parsed) = serde_json::from_slice::<DeliveryBody>(&body) else {
        inbox.malformed.fetch_add(1, Ordering::Relaxed);
        return StatusCode::OK;
    };
    let webhook_id = header("webhook-id");
    let signed = match inbox.secrets.read().ok().as_deref().and_then(|s| s.get(n)) {
        Some(Some(key)) => verify_signature(
            key,
            webhook_id,
            header("webhook-timestamp"),
            &body,
            header("webhook-signature"),
        ),
        _ => false,
    };
    let arrival = Arrival {
        endpoint: n,
        at,
        wall_ms,
        webhook_id: webhook_id.to_owned(),
        external_key: parsed.data.external_key,
        scheduled_message_id: parsed.data.scheduled_message_id,
        signed,
    };
    match inbox.arrivals.lock() {
        Ok(mut a) => a.push(arrival),
        Err(poisoned) => poisoned.into_inner().push(arrival),
    }
    inbox.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

/// Standard Webhooks: one of the space-separated `v1,<base64>` signatures is the HMAC-SHA256
/// of `{id}.{timestamp}.{body}` under the endpoint's secret.
fn verify_signature(key: &ring::hmac::Key, id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(ts.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let expected = B64.encode(ctx.sign().as_ref());
    header
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_the_right_secret_and_content() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let tag = ring::hmac::sign(&key, b"msg_1.1700000000.{}");
        let header = format!("v1,bogus v1,{}", B64.encode(tag.as_ref()));
        assert!(verify_signature(
            &key,
            "msg_1",
            "1700000000",
            b"{}",
            &header
        ));
        assert!(!verify_signature(
            &key,
            "msg_2",
            "1700000000",
            b"{}",
            &header
        ));
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other");
        assert!(!verify_signature(
            &other,
            "msg_1",
            "1700000000",
            b"{}",
            &header
        ));
    }
}
