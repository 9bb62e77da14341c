//! `rampart-bench scheduler`: N scheduled messages due at one instant, received through the
//! org's channel endpoint (a webhook endpoint of kind `channel`) at the local receiver, then
//! read back from the API. Our own code: lateness against `send_at` and exactly-once across
//! workers are nothing a load tool measures.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::json;

use super::analyse::{self, Created, SchedulerReport};
use crate::api::Api;
use crate::receiver::Receiver;
use crate::stats::Percentiles;
use crate::units::{parse_duration, wall_ms};

#[derive(clap::Args, Clone)]
pub struct SchedulerArgs {
    /// The API's base URL (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub api: String,
    /// A live API key with the `webhooks`, `contacts`, `conversations`, `scheduled_messages`
    /// and `messages` scopes and `read` and `write` permissions.
    #[arg(long)]
    pub key: String,
    /// Scheduled messages, all for the same `send_at`.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// `send_at` is this long after the creation starts; every message must be created
    /// before it (the report says whether they were).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub lead: Duration,
    /// Creation requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long after `send_at` messages are waited for before the rest count as lost.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Once every message has arrived, how long the receiver keeps listening for duplicates.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub linger: Duration,
    /// Where the receiver listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    #[arg(long)]
    pub json: bool,
}

/// `rampart-bench scheduler`.
pub async fn command(a: SchedulerArgs) -> anyhow::Result<()> {
    let report = measure(&a).await?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        analyse::print(&report);
    }
    Ok(())
}

/// Sets up the channel endpoint and a conversation, runs, deletes the endpoint.
pub async fn measure(a: &SchedulerArgs) -> anyhow::Result<SchedulerReport> {
    if a.count == 0 || a.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let rx = Receiver::start(&a.listen).await?;
    let api = Arc::new(Api::new(&a.api, &a.key, a.concurrency)?);
    let ep = api
        .expect(
            Method::POST,
            "/v1/webhooks",
            Some(
                &json!({ "url": rx.url(0), "events": ["*"], "kind": "channel",
                          "description": "rampart-bench scheduler channel" }),
            ),
            201,
        )
        .await?;
    rx.set_secret(0, ep["secret"].as_str().context("no secret")?)?;
    let ep_id = ep["id"].as_str().context("no endpoint id")?.to_owned();
    let contact = api
        .expect(
            Method::POST,
            "/v1/contacts",
            Some(&json!({ "external_key": format!("sched-{}", uuid::Uuid::now_v7()) })),
            201,
        )
        .await?;
    let conv = api
        .expect(
            Method::POST,
            "/v1/conversations",
            Some(&json!({ "contact_id": contact["id"], "channel": "sms" })),
            201,
        )
        .await?;
    let conv_id = conv["id"]
        .as_str()
        .context("no conversation id")?
        .to_owned();
    let result = run(a, &rx, &api, &conv_id).await;
    let _ = api
        .call(Method::DELETE, &format!("/v1/webhooks/{ep_id}"), None)
        .await;
    result
}

fn rfc3339(ms: f64) -> anyhow::Result<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos((ms * 1e6) as i128)?;
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}

async fn run(
    a: &SchedulerArgs,
    rx: &Receiver,
    api: &Arc<Api>,
    conv_id: &str,
) -> anyhow::Result<SchedulerReport> {
    // Whole milliseconds, as the API stores them.
    let send_at_ms = (wall_ms() + a.lead.as_secs_f64() * 1000.0).floor();
    let send_at = rfc3339(send_at_ms)?;
    let created = create(a, api, conv_id, &send_at).await?;
    let margin_s = (send_at_ms - wall_ms()) / 1000.0;

    // Wait for every created message at the channel, or the deadline.
    let deadline_ms = send_at_ms + a.drain_timeout.as_secs_f64() * 1000.0;
    let distinct_of = |arr: &[crate::receiver::Arrival]| {
        arr.iter()
            .filter_map(|x| x.scheduled_message_id.as_deref())
            .filter(|id| created.ids.contains(*id))
            .collect::<HashSet<_>>()
            .len()
    };
    loop {
        if rx.count() as usize >= created.ids.len()
            && rx.with_arrivals(distinct_of) >= created.ids.len()
        {
            break;
        }
        if wall_ms() > deadline_ms {
            break;
        }
        // Polling the receiver, not waiting for time to pass.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let complete_at = Instant::now();
    // Listening on for duplicates is the point of the linger.
    tokio::time::sleep(a.linger).await;

    // What the API says: every scheduled message dispatched, every message sent.
    let mut scheduled: Vec<serde_json::Value>;
    let mut messages: Vec<serde_json::Value>;
    let settle_deadline = Instant::now() + Duration::from_secs(15);
    loop {
        scheduled = api.list_all("/v1/scheduled-messages").await?;
        messages = api
            .list_all(&format!("/v1/messages?conversation_id={conv_id}"))
            .await?;
        let all_sent = messages.len() >= created.ids.len()
            && messages.iter().all(|m| m["status"] == "sent")
            && scheduled
                .iter()
                .filter(|s| s["id"].as_str().is_some_and(|id| created.ids.contains(id)))
                .all(|s| s["status"] == "dispatched");
        if all_sent || Instant::now() > settle_deadline {
            break;
        }
        // Message statuses settle in the background after the deliveries; poll until then.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settled_after_s = complete_at.elapsed().saturating_sub(a.linger).as_secs_f64();
    let arrivals = rx.take();
    Ok(analyse::report(analyse::Inputs {
        a,
        send_at,
        send_at_ms,
        created: &created,
        margin_s,
        arrivals: &arrivals,
        malformed: rx.malformed(),
        scheduled: &scheduled,
        messages: &messages,
        settled_after_s,
    }))
}

/// Creates them all, `concurrency` at a time.
async fn create(
    a: &SchedulerArgs,
    api: &Arc<Api>,
    conv_id: &str,
    send_at: &str,
) -> anyhow::Result<Created> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (api, next, send_at, conv_id) = (
            api.clone(),
            next.clone(),
            send_at.to_owned(),
            conv_id.to_owned(),
        );
        let count = a.count as u64;
        tasks.push(tokio::spawn(async move {
            let mut c = Created::default();
            let mut latency = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let body = json!({ "conversation_id": conv_id, "body": format!("scheduled {i}"), "send_at": send_at });
                let t = Instant::now();
                match api.call(Method::POST, "/v1/scheduled-messages", Some(&body)).await {
                    Ok((s, v)) => {
                        latency.push(t.elapsed().as_nanos() as u64);
                        *c.status.entry(s.to_string()).or_default() += 1;
                        match v["id"].as_str() {
                            Some(id) if s == 201 => {
                                c.ids.insert(id.to_owned());
                            }
                            _ => {
                                c.errors += 1;
                                c.first_error.get_or_insert_with(|| format!("{s}: {v}"));
                            }
                        }
                    }
                    Err(e) => {
                        c.errors += 1;
                        c.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (c, latency)
        }));
    }
    let mut all = Created::default();
    let mut latency = Vec::new();
    for t in tasks {
        let (c, l) = t.await?;
        all.ids.extend(c.ids);
        for (k, v) in c.status {
            *all.status.entry(k).or_default() += v;
        }
        all.errors += c.errors;
        all.first_error = all.first_error.or(c.first_error);
        latency.extend(l);
    }
    all.elapsed = started.elapsed();
    all.latency_ms = Percentiles::of_ns(&mut latency);
    Ok(all)
}

impl Default for Created {
    fn default() -> Created {
        Created {
            ids: HashSet::new(),
            status: BTreeMap::new(),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency_ms: None,
        }
    }
}
