//! A real local HTTP server that receives webhooks: records every request and answers from a
//! script (status codes, headers, delays), then with a default.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Hit {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &'static str, v: &str) -> Reply {
        self.headers.push((k, v.to_owned()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

#[derive(Clone)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
    in_flight: Arc<Mutex<Vec<String>>>,
    overlaps: Arc<AtomicI64>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
}

async fn receive(
    State(s): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    {
        let mut f = s.in_flight.lock().unwrap();
        if !id.is_empty() && f.contains(&id) {
            s.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        f.push(id.clone());
    }
    s.hits.lock().unwrap().push(Hit {
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    });
    let reply = s
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| s.default.lock().unwrap().clone());
    if !reply.delay.is_zero() {
        // A slow receiver, as scripted: the delay is what the test asked for.
        tokio::time::sleep(reply.delay).await;
    }
    {
        let mut f = s.in_flight.lock().unwrap();
        if let Some(pos) = f.iter().position(|x| *x == id) {
            f.remove(pos);
        }
    }
    let mut res = (StatusCode::from_u16(reply.status).unwrap(), "ok").into_response();
    for (k, v) in reply.headers {
        res.headers_mut().insert(k, v.parse().unwrap());
    }
    res
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Shared {
            hits: Default::default(),
            script: Default::default(),
            default: Arc::new(Mutex::new(Reply::status(200))),
            in_flight: Default::default(),
            overlaps: Default::default(),
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replies for the next requests, in order.
    pub fn script(&self, replies: Vec<Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// The reply once the script is used up.
    pub fn set_default(&self, r: Reply) {
        *self.shared.default.lock().unwrap() = r;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Requests for one webhook-id that arrived while another for it was still being answered.
    pub fn overlaps(&self) -> i64 {
        self.shared.overlaps.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests arrived (or panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests arrived",
                hits.len()
            );
            // A poll interval: the requests come from the app's worker, in its own time.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Verifies a Standard Webhooks request with an implementation independent of Rampart's
/// (the `hmac` crate; Rampart signs with `ring`). Returns which of `secrets` signed it.
pub fn verify(hit: &Hit, secrets: &[&str]) -> Vec<usize> {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let id = hit.header("webhook-id");
    let ts = hit.header("webhook-timestamp");
    let sigs = hit.header("webhook-signature");
    let mut matched = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&hit.body);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        if sigs.split(' ').any(|s| s == expected) {
            matched.push(i);
        }
    }
    matched
}
