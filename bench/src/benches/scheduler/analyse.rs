//! From creations, arrivals and the API's read-back to the scheduler report: lateness against
//! `send_at`, dispatch throughput, exactly-once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::measure::SchedulerArgs;
use crate::receiver::Arrival;
use crate::stats::Percentiles;

/// The creation phase.
pub struct Created {
    pub ids: HashSet<String>,
    pub status: BTreeMap<String, u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency_ms: Option<Percentiles>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SchedulerReport {
    pub count: usize,
    pub send_at: String,
    pub lead_s: f64,
    pub create: CreateReport,
    pub arrivals: SchedArrivals,
    /// Receiver arrival − send_at, per message (first arrival).
    pub lateness_ms: Option<Percentiles>,
    /// `dispatched_at` (as the API shows it) − send_at.
    pub dispatch_lateness_ms: Option<Percentiles>,
    /// First and last arrival, relative to send_at.
    pub first_arrival_ms: Option<f64>,
    pub last_arrival_ms: Option<f64>,
    /// Messages per second from the first arrival to the last.
    pub delivery_rps: Option<f64>,
    /// First and last `dispatched_at`, relative to send_at, and messages per second between.
    pub first_dispatch_ms: Option<f64>,
    pub last_dispatch_ms: Option<f64>,
    pub dispatch_rps: Option<f64>,
    pub api: SchedApi,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct CreateReport {
    pub created: usize,
    pub status: BTreeMap<String, u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed_s: f64,
    pub rps: f64,
    pub latency_ms: Option<Percentiles>,
    /// send_at − the last creation's answer: positive means every message was created first.
    pub margin_s: f64,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SchedArrivals {
    /// Requests the channel endpoint received.
    pub requests: u64,
    /// Distinct scheduled messages among them (created in this run).
    pub distinct: u64,
    /// Requests for a scheduled message already received.
    pub duplicates: u64,
    /// Requests repeating a `webhook-id` already received.
    pub duplicate_webhook_ids: u64,
    /// Created but never received within the deadline.
    pub missing: u64,
    /// Received but not created by this run (or without a scheduled message id).
    pub unexpected: u64,
    /// Received before send_at.
    pub early: u64,
    pub bad_signatures: u64,
    pub malformed: u64,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SchedApi {
    /// Scheduled messages of this run by status, as `GET /v1/scheduled-messages` shows them.
    pub scheduled_status: BTreeMap<String, u64>,
    /// The conversation's messages by status (`GET /v1/messages`).
    pub message_status: BTreeMap<String, u64>,
    /// Messages per scheduled message: anything but 1 breaks exactly-once.
    pub scheduled_without_message: u64,
    pub scheduled_with_several_messages: u64,
    /// Seconds after the last arrival until the API showed every message sent (or gave up).
    pub settled_after_s: f64,
}

impl SchedulerReport {
    /// Every created message arrived exactly once and the API agrees.
    pub fn exactly_once(&self) -> bool {
        let (x, api) = (&self.arrivals, &self.api);
        let created = self.create.created as u64;
        x.distinct == created
            && x.duplicates == 0
            && x.duplicate_webhook_ids == 0
            && x.missing == 0
            && x.unexpected == 0
            && api.scheduled_status.get("dispatched").copied().unwrap_or(0) == created
            && api.message_status.get("sent").copied().unwrap_or(0) == created
            && api.scheduled_without_message == 0
            && api.scheduled_with_several_messages == 0
    }
}

pub struct Inputs<'a> {
    pub a: &'a SchedulerArgs,
    pub send_at: String,
    pub send_at_ms: f64,
    pub created: &'a Created,
    pub margin_s: f64,
    pub arrivals: &'a [Arrival],
    pub malformed: u64,
    pub scheduled: &'a [serde_json::Value],
    pub messages: &'a [serde_json::Value],
    pub settled_after_s: f64,
}

pub fn report(i: Inputs<'_>) -> SchedulerReport {
    let created = &i.created.ids;
    let mut first: HashMap<&str, f64> = HashMap::new();
    let mut ids: HashMap<&str, u64> = HashMap::new();
    let (mut unexpected, mut bad_signatures, mut matched) = (0u64, 0u64, 0u64);
    for x in i.arrivals {
        if !x.signed {
            bad_signatures += 1;
        }
        *ids.entry(x.webhook_id.as_str()).or_default() += 1;
        match x.scheduled_message_id.as_deref() {
            Some(id) if created.contains(id) => {
                matched += 1;
                let t = first.entry(id).or_insert(x.wall_ms);
                *t = t.min(x.wall_ms);
            }
            _ => unexpected += 1,
        }
    }
    let mut lateness: Vec<f64> = first.values().map(|t| t - i.send_at_ms).collect();
    let early = lateness.iter().filter(|l| **l < 0.0).count() as u64;
    let first_arrival = lateness.iter().copied().reduce(f64::min);
    let last_arrival = lateness.iter().copied().reduce(f64::max);
    let mut scheduled_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut dispatch: Vec<f64> = Vec::new();
    for s in i
        .scheduled
        .iter()
        .filter(|s| s["id"].as_str().is_some_and(|id| created.contains(id)))
    {
        *scheduled_status
            .entry(s["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if let Some(t) = s["dispatched_at"].as_str().and_then(parse_rfc3339_ms) {
            dispatch.push(t - i.send_at_ms);
        }
    }
    let mut message_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_scheduled: HashMap<&str, u64> = HashMap::new();
    for m in i.messages {
        *message_status
            .entry(m["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if let Some(id) = m["scheduled_message_id"].as_str() {
            *per_scheduled.entry(id).or_default() += 1;
        }
    }
    let first_dispatch = dispatch.iter().copied().reduce(f64::min);
    let last_dispatch = dispatch.iter().copied().reduce(f64::max);
    let rate = |n: usize, a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > a => Some(n as f64 / ((b - a) / 1000.0)),
        _ => None,
    };
    let distinct = first.len();
    let c = i.created;
    SchedulerReport {
        count: i.a.count,
        send_at: i.send_at,
        lead_s: i.a.lead.as_secs_f64(),
        create: CreateReport {
            created: created.len(),
            status: c.status.clone(),
            errors: c.errors,
            first_error: c.first_error.clone(),
            elapsed_s: c.elapsed.as_secs_f64(),
            rps: created.len() as f64 / c.elapsed.as_secs_f64().max(1e-9),
            latency_ms: c.latency_ms.clone(),
            margin_s: i.margin_s,
        },
        arrivals: SchedArrivals {
            requests: i.arrivals.len() as u64,
            distinct: distinct as u64,
            duplicates: matched - distinct as u64,
            duplicate_webhook_ids: ids.values().map(|n| n - 1).sum(),
            missing: (created.len() - distinct) as u64,
            unexpected,
            early,
            bad_signatures,
            malformed: i.malformed,
        },
        delivery_rps: rate(distinct, first_arrival, last_arrival),
        first_arrival_ms: first_arrival,
        last_arrival_ms: last_arrival,
        lateness_ms: Percentiles::of_ms(&mut lateness),
        dispatch_rps: rate(dispatch.len(), first_dispatch, last_dispatch),
        first_dispatch_ms: first_dispatch,
        last_dispatch_ms: last_dispatch,
        dispatch_lateness_ms: Percentiles::of_ms(&mut dispatch),
        api: SchedApi {
            scheduled_without_message: created
                .iter()
                .filter(|id| !per_scheduled.contains_key(id.as_str()))
                .count() as u64,
            scheduled_with_several_messages: per_scheduled.values().filter(|n| **n > 1).count()
                as u64,
            scheduled_status,
            message_status,
            settled_after_s: i.settled_after_s,
        },
    }
}

/// An RFC 3339 time (any offset) in epoch milliseconds.
fn parse_rfc3339_ms(s: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as f64)
}

pub fn print(r: &SchedulerReport) {
    let c = &r.create;
    println!(
        "scheduler: {} messages for {} (lead {:.0} s)",
        r.count, r.send_at, r.lead_s
    );
    println!(
        "  created    {} in {:.2} s ({:.0}/s), errors {}, {:.1} s before send_at; status {:?}",
        c.created, c.elapsed_s, c.rps, c.errors, c.margin_s, c.status
    );
    let x = &r.arrivals;
    println!(
        "  received   {} distinct of {} requests: duplicates {}, duplicate webhook-ids {}, missing {}, unexpected {}, early {}, bad signatures {}",
        x.distinct,
        x.requests,
        x.duplicates,
        x.duplicate_webhook_ids,
        x.missing,
        x.unexpected,
        x.early,
        x.bad_signatures
    );
    if let Some(l) = &r.lateness_ms {
        println!(
            "  lateness   arrival − send_at ms: p50 {:.1}  p99 {:.1}  max {:.1}",
            l.p50, l.p99, l.max
        );
    }
    if let Some(l) = &r.dispatch_lateness_ms {
        println!(
            "             dispatched_at − send_at ms: p50 {:.1}  p99 {:.1}  max {:.1}",
            l.p50, l.p99, l.max
        );
    }
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    println!(
        "  throughput {} msg/s delivered ({} → {} ms), {} msg/s dispatched ({} → {} ms)",
        f(r.delivery_rps),
        f(r.first_arrival_ms),
        f(r.last_arrival_ms),
        f(r.dispatch_rps),
        f(r.first_dispatch_ms),
        f(r.last_dispatch_ms)
    );
    println!(
        "  API        scheduled {:?}; messages {:?}; without message {}, with several {}; exactly once: {}",
        r.api.scheduled_status,
        r.api.message_status,
        r.api.scheduled_without_message,
        r.api.scheduled_with_several_messages,
        r.exactly_once()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_times_parse_to_epoch_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.250Z"), Some(1250.0));
        assert_eq!(parse_rfc3339_ms("not a time"), None);
    }
}
