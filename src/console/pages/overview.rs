//! The overview: the org's limits as the API reports them (its RateLimit fields), deliveries
//! of the last 24 hours as a server-rendered SVG chart, open dead letters, failing endpoints.
//! Everything from API answers.

use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::common::{empty, refused, text};
use crate::clock::{now_ms, parse_rfc3339};
use crate::console::api::Call;
use crate::console::extract::Ctx;
use crate::console::html::{page as render, url};

const HOUR_MS: i64 = 3_600_000;

pub async fn page(ctx: Ctx) -> Response {
    let endpoints = ctx.call(Call::get("/v1/webhooks?limit=100".into())).await;
    if !endpoints.ok() {
        return refused("Overview", &ctx.session, &endpoints);
    }
    let (eps, _) = endpoints.page();
    let policy = endpoints
        .header("ratelimit-policy")
        .unwrap_or("")
        .to_owned();
    let remaining = endpoints.header("ratelimit").unwrap_or("").to_owned();
    let dead = ctx
        .call(Call::get("/v1/dead-letters?status=open&limit=100".into()))
        .await;
    let (dead_rows, dead_more) = dead.page();
    let (hours, failing) = tally(&ctx, &eps).await;
    let s = &ctx.session;
    render(
        "Overview",
        Some(s),
        html! {
            div class="grid" {
                div class="card" {
                    h2 { "Limits" }
                    p { "Policy: " code { (if policy.is_empty() { "none reported" } else { policy.as_str() }) } }
                    p { "Now: " code { (remaining) } }
                    p class="muted" { "As the API reports them in its RateLimit fields (q: allowed, w: window in seconds, r: remaining)." }
                }
                div class="card" {
                    h2 { "Open dead letters" }
                    p { strong { (dead_rows.len()) @if dead_more.is_some() { "+" } } }
                    p { a href="/console/dead-letters?status=open" { "See them" } }
                }
                div class="card" {
                    h2 { "Endpoints" }
                    p { strong { (eps.len()) } " endpoints, " strong { (failing.len()) } " failing or paused" }
                }
            }
            h2 { "Deliveries, last 24 hours" }
            div class="card scroll" { (chart(&hours)) }
            h2 { "Failing endpoints" }
            @if failing.is_empty() { (empty("No failing endpoints.")) } @else {
                ul { @for (e, why) in &failing {
                    li { a href=(url("/console/webhooks", &[&text(&e["id"])], &[])) { (text(&e["url"])) } " — " (why) }
                } }
            }
        },
    )
}

/// Attempts per hour of the last 24 (succeeded, failed), and the endpoints that are paused,
/// disabled or whose last attempt failed (with why), from each endpoint's delivery log.
async fn tally(ctx: &Ctx, eps: &[Value]) -> ([(u32, u32); 24], Vec<(Value, String)>) {
    let now = now_ms();
    // Per hour of the last 24: (succeeded, failed) attempts.
    let mut hours = [(0u32, 0u32); 24];
    let mut failing: Vec<(Value, String)> = Vec::new();
    for e in eps {
        let id = text(&e["id"]);
        let log = ctx
            .call(Call::get(url(
                "/v1/webhooks",
                &[&id, "deliveries"],
                &[("limit", "100")],
            )))
            .await;
        let (attempts, _) = log.page();
        for a in &attempts {
            let Some(at) = a["created_at"].as_str().and_then(parse_rfc3339) else {
                continue;
            };
            let age = now - at;
            if !(0..24 * HOUR_MS).contains(&age) {
                continue;
            }
            let slot = 23 - usize::try_from(age / HOUR_MS).unwrap_or(23).min(23);
            if a["error"].is_null() && a["status_code"].as_i64().is_some_and(|c| c < 300) {
                hours[slot].0 += 1;
            } else {
                hours[slot].1 += 1;
            }
        }
        let last_failed = attempts.first().is_some_and(|a| !a["error"].is_null());
        if e["status"] != "active" || last_failed {
            let why = if e["status"] != "active" {
                text(&e["status"])
            } else {
                attempts
                    .first()
                    .map(|a| text(&a["error"]))
                    .unwrap_or_default()
            };
            failing.push((e.clone(), why));
        }
    }
    (hours, failing)
}

/// Stacked bars per hour: green succeeded, red failed.
fn chart(hours: &[(u32, u32); 24]) -> Markup {
    let max = hours.iter().map(|(a, b)| a + b).max().unwrap_or(0).max(1);
    let total_ok: u32 = hours.iter().map(|h| h.0).sum();
    let total_failed: u32 = hours.iter().map(|h| h.1).sum();
    let (w, h, bar) = (480u32, 120u32, 20u32);
    let label =
        format!("{total_ok} delivered and {total_failed} failed attempts in the last 24 hours");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {}", h + 16)) width="100%" role="img" aria-label=(label) {
            title { (label) }
            @for (i, (ok, failed)) in hours.iter().enumerate() {
                @let x = u32::try_from(i).unwrap_or(0) * bar;
                @let ok_h = ok * h / max;
                @let failed_h = failed * h / max;
                rect x=(x + 2) y=(h - ok_h) width=(bar - 4) height=(ok_h) fill="#2e7d32" {}
                rect x=(x + 2) y=(h - ok_h - failed_h) width=(bar - 4) height=(failed_h) fill="#c62828" {}
            }
            line x1="0" y1=(h) x2=(w) y2=(h) stroke="#8a939e" {}
            text x="0" y=(h + 14) font-size="11" fill="#5b6570" { "24 h ago" }
            text x=(w - 30) y=(h + 14) font-size="11" fill="#5b6570" { "now" }
        }
        p class="muted" { (label) "." }
    }
}
