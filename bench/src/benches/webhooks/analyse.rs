//! From writes and arrivals to the webhooks report: deliveries matched to their writes,
//! delivered rate, backlog and drain, end-to-end latency, duplicates, losses and signatures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::measure::WebhooksArgs;
use crate::cpu::CpuUse;
use crate::receiver::Arrival;
use crate::stats::Percentiles;

/// One write: `POST /v1/contacts` with external key `<prefix>-<k>`.
pub struct Write {
    pub k: u64,
    pub due: Instant,
    /// When the POST was handed to its (ready, idle) connection to be written.
    pub sent: Instant,
    pub done: Instant,
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Write {
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The write number `k` from a delivery's `external_key`, if it is one of this run's.
pub fn key_parser(prefix: &str) -> impl Fn(&str) -> Option<u64> + use<> {
    let prefix = format!("{prefix}-");
    move |ext: &str| ext.strip_prefix(prefix.as_str())?.parse().ok()
}

#[derive(Clone, Serialize, Deserialize)]
pub struct WritesReport {
    /// Writes sent over the whole run (warm-up included).
    pub sent: u64,
    pub accepted: u64,
    pub status: BTreeMap<String, u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Scheduled writes never sent (every connection was waiting on the API until the end).
    pub unsent: u64,
    /// Writes per second offered in the measured window (the schedule's rate).
    pub offered_rps: f64,
    /// 2xx writes per second among those due in the measured window.
    pub accepted_rps: f64,
    /// Send → response of the window's writes.
    pub api_latency_ms: Option<Percentiles>,
    /// How late writes left relative to their schedule.
    pub send_lag_ms: Option<Percentiles>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct DeliveriesReport {
    /// Accepted writes × endpoints.
    pub expected: u64,
    /// Distinct (write, endpoint) pairs received.
    pub received: u64,
    /// Requests received in all (duplicates and strays included).
    pub requests: u64,
    /// Requests whose `webhook-id` an endpoint had already received.
    pub duplicates: u64,
    /// Expected deliveries not received within the drain deadline.
    pub lost: u64,
    /// Deliveries for writes that did not get a 2xx, or not from this run.
    pub unexpected: u64,
    /// Requests whose signature did not verify with the endpoint's secret.
    pub bad_signatures: u64,
    /// Requests the receiver could not read as a delivery.
    pub malformed: u64,
    /// Distinct deliveries received per second during the measured window.
    pub window_rps: f64,
    /// Slowest and fastest whole second of the window.
    pub window_second_min: u64,
    pub window_second_max: u64,
    /// Deliveries owed at the end of the offered load: those of the accepted writes due before
    /// it, not received by then, including writes the API had not answered yet.
    pub backlog_at_end: u64,
    /// Deliveries received after the end of the offered load.
    pub received_after_end: u64,
    /// From the end of the offered load to the last expected delivery (null: some were lost).
    pub drain_s: Option<f64>,
    /// `received_after_end / drain_s`: the delivery rate once the writes have stopped.
    pub drain_rps: Option<f64>,
    /// Every delivery, from the first write to the last delivery.
    pub overall_rps: f64,
    /// Per second since the first write: distinct deliveries received.
    pub per_second: Vec<u64>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct WebhooksReport {
    pub endpoints: usize,
    pub concurrency: usize,
    pub target_rate: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub writes: WritesReport,
    pub deliveries: DeliveriesReport,
    /// Write sent (handed to its connection) → delivery received, for the window's accepted
    /// writes, every endpoint.
    pub e2e_ms: Option<Percentiles>,
    /// Write due (scheduled) → delivery received, i.e. with the generator's lag.
    pub e2e_from_due_ms: Option<Percentiles>,
    /// CPU in cores over the measured window (generator = this process: writer and receiver).
    pub cpu: CpuUse,
}

/// What one run produced.
pub struct Run<'a> {
    pub t0: Instant,
    pub start: Instant,
    pub end: Instant,
    pub writes: &'a [Write],
    pub unsent: u64,
    pub arrivals: &'a [Arrival],
    pub malformed: u64,
    pub key_of: &'a dyn Fn(&str) -> Option<u64>,
    pub cpu: CpuUse,
}

pub fn report(a: &WebhooksArgs, r: Run<'_>) -> WebhooksReport {
    let Run {
        t0,
        start,
        end,
        writes,
        ..
    } = r;
    let accepted: HashSet<u64> = writes
        .iter()
        .filter(|w| w.accepted())
        .map(|w| w.k)
        .collect();
    let expected = accepted.len() as u64 * a.endpoints as u64;
    // The first arrival of each (endpoint, write); every webhook-id per endpoint.
    let mut first: HashMap<(usize, u64), Instant> = HashMap::new();
    let mut ids: HashMap<(usize, &str), u64> = HashMap::new();
    let (mut bad_signatures, mut unexpected) = (0u64, 0u64);
    for x in r.arrivals {
        if !x.signed {
            bad_signatures += 1;
        }
        *ids.entry((x.endpoint, x.webhook_id.as_str())).or_default() += 1;
        match x.external_key.as_deref().and_then(r.key_of) {
            Some(k) if accepted.contains(&k) => {
                let t = first.entry((x.endpoint, k)).or_insert(x.at);
                *t = (*t).min(x.at);
            }
            _ => unexpected += 1,
        }
    }
    let received = first.len() as u64;
    let lost = expected - received.min(expected);

    let in_window = |t: Instant| t >= start && t < end;
    let window_writes: Vec<&Write> = writes.iter().filter(|w| in_window(w.due)).collect();
    let accepted_in_window = window_writes.iter().filter(|w| w.accepted()).count();
    let mut api_latency: Vec<u64> = window_writes
        .iter()
        .filter(|w| w.status.is_some())
        .map(|w| (w.done - w.sent).as_nanos() as u64)
        .collect();
    let mut lags: Vec<u64> = window_writes
        .iter()
        .map(|w| w.sent.saturating_duration_since(w.due).as_nanos() as u64)
        .collect();
    let (mut e2e, mut e2e_due) = (Vec::new(), Vec::new());
    for w in window_writes.iter().filter(|w| w.accepted()) {
        for n in 0..a.endpoints {
            if let Some(at) = first.get(&(n, w.k)) {
                e2e.push(at.saturating_duration_since(w.sent).as_nanos() as u64);
                e2e_due.push(at.saturating_duration_since(w.due).as_nanos() as u64);
            }
        }
    }

    // Delivered rate, per second since t0, and the backlog at the end of the load.
    let last = first.values().copied().max();
    let seconds = last.map_or(0, |l| {
        l.saturating_duration_since(t0).as_secs() as usize + 1
    });
    let mut per_second = vec![0u64; seconds];
    for at in first.values() {
        if let Some(slot) = per_second.get_mut(at.saturating_duration_since(t0).as_secs() as usize)
        {
            *slot += 1;
        }
    }
    let window_secs = (a.warmup.as_secs() as usize)..((a.warmup + a.duration).as_secs() as usize);
    let window_per_second: Vec<u64> = window_secs
        .map(|s| per_second.get(s).copied().unwrap_or(0))
        .collect();
    let delivered_in_window = first.values().filter(|t| in_window(**t)).count();
    // Owed at the end: deliveries of the accepted writes due before it, including writes the
    // API had not answered yet.
    let by_k: HashMap<u64, &Write> = writes.iter().map(|w| (w.k, w)).collect();
    let owed = writes
        .iter()
        .filter(|w| w.accepted() && w.due < end)
        .count() as u64
        * a.endpoints as u64;
    let paid = first
        .iter()
        .filter(|((_, k), at)| **at < end && by_k.get(k).is_some_and(|w| w.due < end))
        .count() as u64;
    let after_end = first.values().filter(|t| **t >= end).count() as u64;
    let drain_s = match last {
        Some(l) if lost == 0 => Some(l.saturating_duration_since(end).as_secs_f64()),
        _ => None,
    };
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    for w in writes {
        if let Some(s) = w.status {
            *status.entry(s.to_string()).or_default() += 1;
        }
    }
    let errors: Vec<&String> = writes.iter().filter_map(|w| w.error.as_ref()).collect();
    let window = a.duration.as_secs_f64();
    WebhooksReport {
        endpoints: a.endpoints,
        concurrency: a.concurrency,
        target_rate: a.rate,
        warmup_s: a.warmup.as_secs_f64(),
        duration_s: window,
        writes: WritesReport {
            sent: writes.len() as u64,
            accepted: accepted.len() as u64,
            status,
            errors: errors.len() as u64,
            first_error: errors.first().map(|e| (*e).clone()),
            unsent: r.unsent,
            offered_rps: a.rate,
            accepted_rps: accepted_in_window as f64 / window,
            api_latency_ms: Percentiles::of_ns(&mut api_latency),
            send_lag_ms: Percentiles::of_ns(&mut lags),
        },
        deliveries: DeliveriesReport {
            expected,
            received,
            requests: r.arrivals.len() as u64,
            duplicates: ids.values().map(|n| n - 1).sum(),
            lost,
            unexpected,
            bad_signatures,
            malformed: r.malformed,
            window_rps: delivered_in_window as f64 / window,
            window_second_min: window_per_second.iter().copied().min().unwrap_or(0),
            window_second_max: window_per_second.iter().copied().max().unwrap_or(0),
            backlog_at_end: owed.saturating_sub(paid),
            received_after_end: after_end,
            drain_s,
            drain_rps: drain_s.filter(|d| *d > 0.05).map(|d| after_end as f64 / d),
            overall_rps: match last {
                Some(l) if l > t0 => received as f64 / (l - t0).as_secs_f64(),
                _ => 0.0,
            },
            per_second,
        },
        e2e_ms: Percentiles::of_ns(&mut e2e),
        e2e_from_due_ms: Percentiles::of_ns(&mut e2e_due),
        cpu: r.cpu,
    }
}

pub fn print(r: &WebhooksReport) {
    let (w, d) = (&r.writes, &r.deliveries);
    println!(
        "webhooks: {} endpoint(s), open loop at {} writes/s, {:.0} s + {:.0} s warm-up",
        r.endpoints, r.target_rate, r.duration_s, r.warmup_s
    );
    println!(
        "  writes     offered {:.0}/s, accepted {:.0}/s; sent {}, accepted {}, errors {}, unsent {}, status {:?}",
        w.offered_rps, w.accepted_rps, w.sent, w.accepted, w.errors, w.unsent, w.status
    );
    if let Some(e) = &w.first_error {
        println!("  first error {e}");
    }
    if let Some(l) = &w.api_latency_ms {
        println!(
            "  API ms     p50 {:.2}  p99 {:.2}  max {:.2}",
            l.p50, l.p99, l.max
        );
    }
    println!(
        "  deliveries {:.0}/s in the window (seconds {}..{}), {:.0}/s overall; backlog at end {}, drain {}",
        d.window_rps,
        d.window_second_min,
        d.window_second_max,
        d.overall_rps,
        d.backlog_at_end,
        d.drain_s
            .map_or_else(|| "incomplete".to_owned(), |s| format!("{s:.2} s"))
    );
    println!(
        "             expected {}, received {}, duplicates {}, lost {}, unexpected {}, bad signatures {}, malformed {}",
        d.expected, d.received, d.duplicates, d.lost, d.unexpected, d.bad_signatures, d.malformed
    );
    if let Some(l) = &r.e2e_ms {
        println!(
            "  e2e ms     p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.max
        );
    }
    let cores = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
    println!(
        "  CPU cores  bench {}, server {}, helpers {}, rest {}",
        cores(r.cpu.generator),
        cores(r.cpu.server),
        cores(r.cpu.helpers),
        cores(r.cpu.rest)
    );
}
