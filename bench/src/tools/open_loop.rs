//! Open-loop load on a fixed schedule, our own because no packaged tool measures it honestly:
//! request k is due at `t0 + k / rate` whatever happened to the earlier ones, and its latency
//! runs from that due time, so a stalled server shows up as latency instead of silently
//! lowering the offered load (coordinated omission). oha's `-q --latency-correction` stamps
//! each request with the instant its tokio-timer pacer woke (1 ms granularity, so requests
//! leave in bursts and a late pacer is not counted), and wrk's Lua `delay()` is per connection
//! in whole milliseconds and measures from the actual send: see bench/README.md.
//!
//! The HTTP is hyper's (one HTTP/1.1 keep-alive connection per worker); what is ours is the
//! pacing and the bookkeeping. Each request is built by the caller from its number k, so a
//! caller can make every request unique (the webhooks benchmark's writes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::sync::Semaphore;

pub type Request = hyper::Request<Full<Bytes>>;

/// Builds request k.
pub type MakeRequest = Arc<dyn Fn(u64) -> Request + Send + Sync>;

/// How the schedule releases requests. tokio's timer has 1 ms granularity, which would add up
/// to a millisecond of fake latency, so neither pacer relies on it for the last stretch.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pacer {
    /// An OS thread sleeping on the kernel's high-resolution timer: nearly free in CPU, but
    /// typically 0.1 ms late, and later when it has to share a core with the workers.
    Thread,
    /// A task that sleeps until 2 ms before the next due time and then spins, yielding to the
    /// workers: microseconds late, but keeps one core busy. Only for a generator pinned to a
    /// core of its own.
    Spin,
}

pub struct Plan {
    /// `host:port`.
    pub addr: String,
    pub rate: f64,
    /// Workers, one connection each: the most requests that can be in flight.
    pub connections: usize,
    /// Request 0 is due at `t0`.
    pub t0: Instant,
    pub total: u64,
    /// Past this, a backlog is abandoned (reported as unsent): the server could not keep up.
    pub deadline: Instant,
    pub timeout: Duration,
    pub pacer: Pacer,
}

impl Plan {
    pub fn due(&self, k: u64) -> Instant {
        due(self.t0, self.rate, k)
    }
}

fn due(t0: Instant, rate: f64, k: u64) -> Instant {
    t0 + Duration::from_secs_f64(k as f64 / rate)
}

/// One request as it went.
pub struct Sent {
    pub k: u64,
    pub due: Instant,
    /// When it was handed to its connection (which was ready: nothing else in flight on it).
    pub sent: Instant,
    pub done: Instant,
    /// The status, or the transport error.
    pub outcome: Result<u16, String>,
}

pub struct Outcome {
    pub sent: Vec<Sent>,
    /// Scheduled requests never sent before the deadline.
    pub unsent: u64,
}

/// Runs the plan; returns every request sent, in no particular order.
pub async fn run(plan: Plan, make: MakeRequest) -> anyhow::Result<Outcome> {
    if plan.connections == 0 || plan.rate <= 0.0 {
        bail!("an open loop needs a positive rate and at least one connection");
    }
    let permits = Arc::new(Semaphore::new(0));
    let next = Arc::new(AtomicU64::new(0));
    // If this run is abandoned (Ctrl-C), the pacer stops too instead of running to its
    // deadline, which would hold up the process's exit.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let pacer = spawn_pacer(&plan, permits.clone(), stop.0.clone());
    let plan = Arc::new(plan);
    let mut tasks = Vec::new();
    for _ in 0..plan.connections {
        let (plan, permits, next, make) =
            (plan.clone(), permits.clone(), next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&plan.addr, plan.timeout);
            let mut sent = Vec::new();
            loop {
                let permit = tokio::select! {
                    p = permits.acquire() => p,
                    _ = tokio::time::sleep_until(plan.deadline.into()) => break,
                };
                let Ok(permit) = permit else { break };
                permit.forget();
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= plan.total || Instant::now() > plan.deadline {
                    break;
                }
                let req = make(k);
                let (at, outcome) = conn.send(req).await;
                sent.push(Sent {
                    k,
                    due: plan.due(k),
                    sent: at,
                    done: Instant::now(),
                    outcome: outcome.map_err(|e| format!("{e:#}")),
                });
            }
            sent
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await?);
    }
    let _ = pacer.await;
    let taken = next.load(Ordering::Relaxed).min(plan.total);
    Ok(Outcome {
        sent,
        unsent: plan.total - taken,
    })
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The schedule: releases a permit for each request once it is due.
struct Schedule {
    t0: Instant,
    rate: f64,
    total: u64,
    released: u64,
    permits: Arc<Semaphore>,
}

impl Schedule {
    /// Releases every request due by `now`; returns when the next one is due, or `None` once
    /// all are released.
    fn release(&mut self, now: Instant) -> Option<Instant> {
        if self.released < self.total && due(self.t0, self.rate, self.released) <= now {
            // Everything due by now in one go: the pacer may have been late.
            let elapsed = now.saturating_duration_since(self.t0).as_secs_f64();
            let upto = ((elapsed * self.rate).floor() as u64 + 1).min(self.total);
            self.permits.add_permits((upto - self.released) as usize);
            self.released = upto;
        }
        (self.released < self.total).then(|| due(self.t0, self.rate, self.released))
    }
}

fn spawn_pacer(
    plan: &Plan,
    permits: Arc<Semaphore>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let mut schedule = Schedule {
        t0: plan.t0,
        rate: plan.rate,
        total: plan.total,
        released: 0,
        permits,
    };
    let (deadline, workers) = (plan.deadline, plan.connections);
    // Once done, every idle worker is woken so that it sees the schedule is exhausted.
    match plan.pacer {
        Pacer::Thread => {
            let thread = std::thread::spawn(move || {
                loop {
                    let now = Instant::now();
                    if now > deadline || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match schedule.release(now) {
                        Some(next) if next > now => std::thread::sleep(next - now),
                        Some(_) => {}
                        None => break,
                    }
                }
                schedule.permits.add_permits(workers);
            });
            tokio::task::spawn_blocking(move || {
                let _ = thread.join();
            })
        }
        Pacer::Spin => tokio::spawn(async move {
            let margin = Duration::from_millis(2);
            loop {
                let now = Instant::now();
                if now > deadline || stop.load(Ordering::Relaxed) {
                    break;
                }
                match schedule.release(now) {
                    // tokio's timer may wake up to a millisecond late: stop sleeping early.
                    Some(next) if next > now + margin => {
                        tokio::time::sleep_until((next - margin).into()).await;
                    }
                    Some(next) if next > now => tokio::task::yield_now().await,
                    Some(_) => {}
                    None => break,
                }
            }
            schedule.permits.add_permits(workers);
        }),
    }
}

type Io = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

/// One HTTP/1.1 keep-alive connection (hyper), reopened after a failure. The connection's
/// own future is driven in the caller's task, beside the request, rather than spawned: that
/// saves two task wake-ups per request, which matters on a generator pinned to one core.
pub struct Conn {
    addr: String,
    timeout: Duration,
    open: Option<Open>,
}

struct Open {
    sender: SendRequest<Full<Bytes>>,
    conn: std::pin::Pin<Box<hyper::client::conn::http1::Connection<Io, Full<Bytes>>>>,
}

impl Conn {
    pub fn new(addr: &str, timeout: Duration) -> Conn {
        Conn {
            addr: addr.to_owned(),
            timeout,
            open: None,
        }
    }

    /// Sends `req` and reads the whole response; returns when it was handed to the ready
    /// connection (after any reconnect), and its status.
    pub async fn send(&mut self, req: Request) -> (Instant, anyhow::Result<u16>) {
        let timeout = self.timeout;
        let mut at = Instant::now();
        let result = tokio::time::timeout(timeout, async {
            if self.open.is_none() {
                self.open = Some(self.connect().await?);
            }
            let Open { sender, conn } = self.open.as_mut().context("no connection")?;
            let exchange = async {
                sender.ready().await?;
                at = Instant::now();
                let res = sender.send_request(req).await?;
                let status = res.status().as_u16();
                res.into_body().collect().await?;
                anyhow::Ok(status)
            };
            tokio::select! {
                r = exchange => r,
                c = conn.as_mut() => match c {
                    Ok(()) => Err(anyhow::anyhow!("the server closed the connection")),
                    Err(e) => Err(e.into()),
                },
            }
        })
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {timeout:?}")));
        if result.is_err() {
            // The connection may be in any state: start afresh next time.
            self.open = None;
        }
        (at, result)
    }

    async fn connect(&self) -> anyhow::Result<Open> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(Io::new(stream)).await?;
        Ok(Open {
            sender,
            conn: Box::pin(conn),
        })
    }
}

/// A request to `path` on `addr` with `headers` and an optional JSON body.
pub fn request(
    method: hyper::Method,
    addr: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<Bytes>,
) -> Request {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr);
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    if body.is_some() {
        b = b.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    // A builder given valid parts cannot fail; an invalid header from the caller becomes an
    // empty request that the server rejects, which the report shows as a non-2xx status.
    b.body(Full::new(body.unwrap_or_default()))
        .unwrap_or_else(|_| hyper::Request::new(Full::new(Bytes::new())))
}
