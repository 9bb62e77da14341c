//! `rampart-bench webhooks`: API write → signed delivery at a local receiver. Registers N
//! endpoints for `contact.created` pointing at the receiver, then offers `POST /v1/contacts`
//! on a fixed schedule (our open loop: every write carries a unique `external_key`, which its
//! delivery carries back, so each delivery is matched to its write; no load tool can do that).
//! One write fans out to every endpoint: deliveries = accepted writes × endpoints.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;

use super::analyse::{self, WebhooksReport, Write};
use crate::api::Api;
use crate::cpu::Watch;
use crate::receiver::Receiver;
use crate::tools::open_loop::{self, Pacer, Plan};
use crate::units::parse_duration;

#[derive(clap::Args, Clone)]
pub struct WebhooksArgs {
    /// The API's base URL, plain http (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub api: String,
    /// A live API key with the `webhooks` and `contacts` scopes and `write` permission.
    #[arg(long)]
    pub key: String,
    /// Endpoints subscribed to `contact.created`: each write fans out to every one of them.
    #[arg(long, default_value_t = 1)]
    pub endpoints: usize,
    /// Writes per second, on a fixed schedule (open loop).
    #[arg(long)]
    pub rate: f64,
    /// Connections the writes go out on: the most writes in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measured window of offered load, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load offered before the measured window (its deliveries count in losses, not in rates).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Once the load ends, how long outstanding deliveries are waited for before they count
    /// as lost.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Per-write timeout (a timed-out write counts as an error).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long, value_enum, default_value_t = Pacer::Thread)]
    pub pacer: Pacer,
    /// Report the CPU this process (the server with its worker) used over the window.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Processes by command name (e.g. `postgres`) whose CPU is reported apart (repeatable).
    #[arg(long = "helper-comm")]
    pub helper_comms: Vec<String>,
    /// Where the receiver listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    #[arg(long)]
    pub json: bool,
}

/// `rampart-bench webhooks`.
pub async fn command(a: WebhooksArgs) -> anyhow::Result<()> {
    let report = measure(&a).await?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        analyse::print(&report);
    }
    Ok(())
}

/// Registers the endpoints, runs the load and the drain, deletes the endpoints.
pub async fn measure(a: &WebhooksArgs) -> anyhow::Result<WebhooksReport> {
    if a.concurrency == 0 || a.endpoints == 0 || a.rate <= 0.0 {
        bail!("--concurrency, --endpoints and --rate must be positive");
    }
    let rx = Receiver::start(&a.listen).await?;
    let api = Api::new(&a.api, &a.key, 4)?;
    let mut endpoint_ids = Vec::new();
    for n in 0..a.endpoints {
        let ep = api
            .expect(
                reqwest::Method::POST,
                "/v1/webhooks",
                Some(&serde_json::json!({
                    "url": rx.url(n),
                    "events": ["contact.created"],
                    "description": "rampart-bench webhooks",
                })),
                201,
            )
            .await?;
        rx.set_secret(n, ep["secret"].as_str().context("no secret")?)?;
        endpoint_ids.push(ep["id"].as_str().context("no endpoint id")?.to_owned());
    }
    let result = load_and_drain(a, &rx).await;
    // Best effort: the endpoints go, so that a later run in the same org does not feed them.
    for id in &endpoint_ids {
        let _ = api
            .call(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), None)
            .await;
    }
    result
}

async fn load_and_drain(a: &WebhooksArgs, rx: &Receiver) -> anyhow::Result<WebhooksReport> {
    let url = reqwest::Url::parse(&a.api).with_context(|| format!("--api {:?}", a.api))?;
    let addr = format!(
        "{}:{}",
        url.host_str().context("--api has no host")?,
        url.port_or_known_default().unwrap_or(80)
    );
    let prefix = format!("wb{}", uuid::Uuid::now_v7().simple());
    let make: open_loop::MakeRequest = {
        let (addr, prefix) = (addr.clone(), prefix.clone());
        let auth = vec![("Authorization".to_owned(), format!("Bearer {}", a.key))];
        Arc::new(move |k| {
            let body = format!(r#"{{"external_key":"{prefix}-{k}"}}"#);
            open_loop::request(
                hyper::Method::POST,
                &addr,
                "/v1/contacts",
                &auth,
                Some(Bytes::from(body)),
            )
        })
    };
    let t0 = Instant::now() + Duration::from_millis(20);
    let start = t0 + a.warmup;
    let end = start + a.duration;
    let plan = Plan {
        addr,
        rate: a.rate,
        connections: a.concurrency,
        t0,
        total: (a.rate * (a.warmup + a.duration).as_secs_f64()).ceil() as u64,
        deadline: end + a.timeout,
        timeout: a.timeout,
        pacer: a.pacer,
    };
    let watch = Watch {
        servers: a.server_pid.into_iter().collect(),
        helper_comms: a.helper_comms.clone(),
    };
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let before = watch.sample();
        tokio::time::sleep_until(end.into()).await;
        watch.used(&before, &watch.sample())
    });
    let outcome = open_loop::run(plan, make).await?;
    let cpu = cpu.await?;
    let writes: Vec<Write> = outcome
        .sent
        .into_iter()
        .map(|s| Write {
            k: s.k,
            due: s.due,
            sent: s.sent,
            done: s.done,
            status: s.outcome.as_ref().ok().copied(),
            error: s.outcome.err(),
        })
        .collect();

    // Drain: wait until every accepted write reached every endpoint, or the deadline.
    let accepted: HashSet<u64> = writes
        .iter()
        .filter(|w| w.accepted())
        .map(|w| w.k)
        .collect();
    let expected = accepted.len() as u64 * a.endpoints as u64;
    let key_of = analyse::key_parser(&prefix);
    let drain_deadline = Instant::now().max(end) + a.drain_timeout;
    loop {
        if rx.count() >= expected {
            let got = rx.with_arrivals(|arr| {
                arr.iter()
                    .filter_map(|x| {
                        Some((x.endpoint, x.external_key.as_deref().and_then(&key_of)?))
                    })
                    .filter(|(_, k)| accepted.contains(k))
                    .collect::<HashSet<_>>()
                    .len() as u64
            });
            if got >= expected {
                break;
            }
        }
        if Instant::now() > drain_deadline {
            break;
        }
        // Polling the receiver's count, not waiting for time to pass: the drain is measured.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Duplicates that arrive right after the last expected delivery are counted too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let arrivals = rx.take();
    Ok(analyse::report(
        a,
        analyse::Run {
            t0,
            start,
            end,
            writes: &writes,
            unsent: outcome.unsent,
            arrivals: &arrivals,
            malformed: rx.malformed(),
            key_of: &key_of,
            cpu,
        },
    ))
}
