//! The webhooks section of docs/BENCHMARKS.md.

use super::WebhookCase;
use crate::profile::Profile;
use crate::report::markdown::{Table, met, ms, num, opt_num, statuses};
use crate::suite::{Suite, reference_line};
use crate::units::show_duration;

/// The case's target, and whether the run met it.
fn target(suite: &Suite, c: &WebhookCase) -> (String, bool) {
    let (r, d) = (&c.report, &c.report.deliveries);
    let e2e = |p: fn(&crate::stats::Percentiles) -> f64| r.e2e_ms.as_ref().map_or(f64::INFINITY, p);
    let rate = suite.knobs.webhook_rate;
    match c.case.as_str() {
        "everyday" => (
            "e2e p50 ≤ 3 ms, p99 ≤ 10 ms".into(),
            e2e(|p| p.p50) <= 3.0 && e2e(|p| p.p99) <= 10.0 && d.lost == 0,
        ),
        "latency" => (
            "e2e p99 ≤ 250 ms".into(),
            e2e(|p| p.p99) <= 250.0 && d.lost == 0,
        ),
        _ => (
            format!("≥ {rate} deliveries/s, backlog < 1 s"),
            d.window_rps >= rate && (d.backlog_at_end as f64) < rate && d.lost == 0,
        ),
    }
}

pub fn section(
    suite: &Suite,
    runs: &[WebhookCase],
    reference: Option<f64>,
    profile: Option<&Profile>,
) -> String {
    let k = &suite.knobs;
    let mut md = format!(
        "## Webhook delivery\n\n{}\n\n\
One `rampart serve` with its in-process worker (`RAMPART_LOG={log}`, `RAMPART_WEBHOOK_ALLOW_PRIVATE=true`), on a fresh SQLite database, then on a fresh Postgres database; not pinned, so the server, its worker, the database and `rampart-bench` share both cores. `rampart-bench` runs a real HTTP/1.1 receiver (axum) on 127.0.0.1 that answers `200` at once, verifies every `webhook-signature` with the endpoint's secret and records the arrival; it registers the endpoints (`POST /v1/webhooks`, events `contact.created`) and offers `POST /v1/contacts` writes on a fixed schedule (its open loop over {conns} keep-alive connections, {warmup} warm-up then the case's window measured), each with a unique `external_key` by which its `contact.created` delivery is matched to it. A write fans out to every endpoint: *deliveries* = accepted writes × endpoints. Once the load ends, outstanding deliveries are waited for (at most {drain}) and then counted lost.\n\n\
- *Delivered/s*: distinct deliveries received during the measured window, divided by its length; *slowest/fastest s*: the extreme whole seconds of the window.\n\
- *Backlog at end*: deliveries owed at the end of the offered load (of the accepted writes due before it, including those still waiting for a free connection or for the API's answer) and not received by then; *drain*: from the end of the load to the last delivery; *drain delivered/s*: deliveries received after the end of the load / drain, i.e. the delivery rate once the API writes have stopped.\n\
- *e2e*: from the moment the write's POST is handed to its idle keep-alive connection to be written to the moment its signed delivery arrives at the receiver, over the window's writes and every endpoint. *API p99*: the write's own send → response.\n\
- *Duplicates*: requests repeating a `webhook-id` the endpoint already had; *lost*: expected deliveries never received.\n\n",
        suite.stamp(),
        log = k.server_log,
        conns = k.webhook_connections,
        warmup = show_duration(k.warmup),
        drain = show_duration(k.drain_timeout),
    );
    if let Some(r) = reference {
        md.push_str(&reference_line(r));
        md.push_str("\n\n");
    }
    let mut t = Table::new(
        &[
            "Store",
            "Case",
            "Endpoints",
            "Window",
            "Writes offered/s",
            "Writes accepted/s",
            "Deliveries offered/s (writes × endpoints)",
            "Delivered/s",
            "Slowest / fastest s",
            "Backlog at end",
            "Drain",
            "Drain delivered/s",
            "e2e p50",
            "e2e p90",
            "e2e p99",
            "e2e max",
            "API p99",
            "Duplicates",
            "Lost",
            "Target",
            "Met",
        ],
        "llrrrrrrrrrrrrrrrrrlc",
    );
    for c in runs {
        let (r, w, d) = (&c.report, &c.report.writes, &c.report.deliveries);
        let e2e = |p: fn(&crate::stats::Percentiles) -> f64| ms(r.e2e_ms.as_ref().map(p));
        let (goal, ok) = target(suite, c);
        t.row(vec![
            c.store.clone(),
            c.case.clone(),
            r.endpoints.to_string(),
            format!("{} s", num(r.duration_s, 0)),
            num(w.offered_rps, 0),
            num(w.accepted_rps, 0),
            num(w.offered_rps * r.endpoints as f64, 0),
            num(d.window_rps, 0),
            format!("{} / {}", d.window_second_min, d.window_second_max),
            d.backlog_at_end.to_string(),
            d.drain_s
                .map_or_else(|| "incomplete".to_owned(), |s| format!("{} s", num(s, 2))),
            opt_num(d.drain_rps, 0),
            e2e(|p| p.p50),
            e2e(|p| p.p90),
            e2e(|p| p.p99),
            e2e(|p| p.max),
            ms(w.api_latency_ms.as_ref().map(|l| l.p99)),
            d.duplicates.to_string(),
            d.lost.to_string(),
            goal,
            met(ok),
        ]);
    }
    md.push_str(&t.render());
    md.push_str(&format!(
        "\nCases: *everyday*: one endpoint, {} writes/s for {} (issue 24: the latency users feel at an everyday load). *latency*: one endpoint, {} writes/s. *sustained*: one endpoint, {} writes/s, i.e. {} deliveries/s offered if the API accepts them all (above the {}/s target, so that keeping up shows the target sustained; offering exactly the target would leave *delivered ≥ target* to chance). *fanout*: {} endpoints, {} writes/s, so {} deliveries/s offered (above the {}/s target likewise) at a write rate the API sustains. Store *postgres-notls*: the same Postgres with `?sslmode=disable` in `RAMPART_DATABASE_URL` (by default sqlx negotiates TLS even over the loopback, and this Postgres offers it), fan-out case only. Store *sqlite-normal*: the same SQLite with `RAMPART_SQLITE_SYNCHRONOUS=normal` (the default, *sqlite*, is `full`: every acknowledged commit is flushed to disk), one-endpoint cases only.\n\n",
        k.webhook_everyday_rate,
        show_duration(k.webhook_everyday_duration),
        k.webhook_latency_rate,
        k.webhook_sustained_offer,
        k.webhook_sustained_offer,
        k.webhook_rate,
        k.webhook_fanout,
        num(k.webhook_fanout_offer / k.webhook_fanout as f64, 1),
        k.webhook_fanout_offer,
        k.webhook_rate,
    ));
    md.push_str(&format!(
        "### Every run\n\n*Unsent*: scheduled writes the generator never sent because every connection was still waiting on the API ({} connections; past the run's deadline they are dropped). *Requests*: all the receiver got, duplicates included; *bad sig.*: signatures that did not verify (target 0); *unexpected*: deliveries of writes that were not accepted. *e2e from due p99*: from the write's scheduled time instead of its send, i.e. with the generator's lag. CPU in cores over the measured window: *server* is `rampart serve` with its worker, *database* the `postgres` processes, *bench* the writer and the receiver, *rest* everything else (a run with more than {} cores of *rest* was repeated, *attempts*).\n\n",
        k.webhook_connections, k.max_rest
    ));
    let mut t = Table::new(
        &[
            "Store",
            "Case",
            "Writes sent",
            "Accepted",
            "Unsent",
            "Errors",
            "Statuses",
            "Expected deliveries",
            "Received",
            "Requests",
            "Bad sig.",
            "Unexpected",
            "API p50",
            "Send lag p99",
            "e2e from due p99",
            "Overall delivered/s",
            "CPU server",
            "CPU database",
            "CPU bench",
            "CPU rest",
            "Attempts",
        ],
        "llrrrrlrrrrrrrrrrrrrr",
    );
    let r2 = |v: Option<f64>| opt_num(v, 2);
    let r3 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{} ms", num(v, 3)));
    for c in runs {
        let (r, w, d) = (&c.report, &c.report.writes, &c.report.deliveries);
        t.row(vec![
            c.store.clone(),
            c.case.clone(),
            w.sent.to_string(),
            w.accepted.to_string(),
            w.unsent.to_string(),
            w.errors.to_string(),
            statuses(&w.status),
            d.expected.to_string(),
            d.received.to_string(),
            d.requests.to_string(),
            d.bad_signatures.to_string(),
            d.unexpected.to_string(),
            r3(w.api_latency_ms.as_ref().map(|l| l.p50)),
            r3(w.send_lag_ms.as_ref().map(|l| l.p99)),
            ms(r.e2e_from_due_ms.as_ref().map(|l| l.p99)),
            num(d.overall_rps, 0),
            r2(r.cpu.server),
            r2(r.cpu.helpers),
            r2(r.cpu.generator),
            r2(r.cpu.rest),
            c.attempts.to_string(),
        ]);
    }
    md.push_str(&t.render());
    if let Some(p) = profile {
        md.push_str("\n### Where the server's CPU goes while delivering (SQLite, sustained case)\n\nA separate run of the *sustained* case under `perf record -F 499 --call-graph dwarf` (4 s in the middle of the load, server process only). Inclusive share of the server's on-CPU samples per function above 2 %, Rampart's own, sqlx's SQLite driver and SQLite's (`sqlite3*`); nested functions are counted in their callers too. On-CPU only: time spent waiting (for SQLite's single write connection, in particular) does not show.\n\n");
        md.push_str(&crate::profile::table(p));
    }
    md
}
