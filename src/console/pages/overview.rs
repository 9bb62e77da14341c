//! The overview: usage against the org's limits as the API reports it (its RateLimit
//! fields, drawn as meters by [`super::usage`]), delivery
//! attempts of the last 24 hours as a server-rendered SVG chart and the failing endpoints
//! (both counted by the database: `GET /v1/webhooks/delivery-stats`), open dead letters.
//! Everything from API answers.

use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::common::{empty, refused, text};
use super::usage::{meters, policies};
use crate::console::api::Call;
use crate::console::extract::Ctx;
use crate::console::html::{page as render, url};

pub async fn page(ctx: Ctx) -> Response {
    let stats = ctx
        .call(Call::get("/v1/webhooks/delivery-stats?hours=24".into()))
        .await;
    if !stats.ok() {
        return refused("Overview", &ctx.session, &stats);
    }
    let policy = stats.header("ratelimit-policy").unwrap_or("").to_owned();
    let remaining = stats.header("ratelimit").unwrap_or("").to_owned();
    let endpoints = ctx.call(Call::get("/v1/webhooks?limit=100".into())).await;
    let (eps, eps_more) = endpoints.page();
    let dead = ctx
        .call(Call::get("/v1/dead-letters?status=open&limit=100".into()))
        .await;
    let (dead_rows, dead_more) = dead.page();
    let hours = buckets(&stats.body["buckets"]);
    let failing = stats.body["failing_endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let s = &ctx.session;
    render(
        "Overview",
        Some(s),
        html! {
            div class="grid" {
                section class="card" aria-labelledby="usage" {
                    h2 id="usage" { "Usage" }
                    (meters(&policies(&policy, &remaining)))
                    p class="muted" { "As the API reports it on every answer (RateLimit-Policy and RateLimit fields); these pages' own requests count too." }
                }
                div class="card" {
                    h2 { "Open dead letters" }
                    p { strong { (dead_rows.len()) @if dead_more.is_some() { "+" } } }
                    p { a href="/console/dead-letters?status=open" { "See them" } }
                }
                div class="card" {
                    h2 { "Endpoints" }
                    p {
                        strong { (eps.len()) @if eps_more.is_some() { "+" } } " endpoints, "
                        strong { (failing.len()) } " failing or not active"
                    }
                }
            }
            h2 { "Delivery attempts, last 24 hours" }
            div class="card scroll" { (chart(&hours)) }
            h2 { "Failing endpoints" }
            @if failing.is_empty() { (empty("No failing endpoints.")) } @else {
                ul { @for e in &failing {
                    li { a href=(url("/console/webhooks", &[&text(&e["endpoint_id"])], &[])) { (text(&e["url"])) } " — " (why(e)) }
                } }
            }
        },
    )
}

/// (hour start, succeeded, failed) per hour, oldest first, as the API counted them.
fn buckets(v: &Value) -> Vec<(String, u32, u32)> {
    let n = |x: &Value| u32::try_from(x.as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|b| (text(&b["hour"]), n(&b["succeeded"]), n(&b["failed"])))
                .collect()
        })
        .unwrap_or_default()
}

/// Why an endpoint is listed as failing, in words.
fn why(e: &Value) -> String {
    if e["status"] != "active" {
        return text(&e["status"]);
    }
    format!(
        "last attempt failed at {} ({}: {})",
        text(&e["last_attempt_at"]),
        text(&e["last_error_class"]),
        text(&e["last_error"])
    )
}

/// Stacked bars per hour: green succeeded, red failed.
fn chart(hours: &[(String, u32, u32)]) -> Markup {
    let max = hours.iter().map(|h| h.1 + h.2).max().unwrap_or(0).max(1);
    let total_ok: u32 = hours.iter().map(|h| h.1).sum();
    let total_failed: u32 = hours.iter().map(|h| h.2).sum();
    let (h, bar) = (120u32, 20u32);
    let w = bar * u32::try_from(hours.len()).unwrap_or(24).max(1);
    let label =
        format!("{total_ok} delivered and {total_failed} failed attempts in the last 24 hours");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {}", h + 16)) width="100%" role="img" aria-label=(label) {
            title { (label) }
            @for (i, (hour, ok, failed)) in hours.iter().enumerate() {
                @let x = u32::try_from(i).unwrap_or(0) * bar;
                @let ok_h = ok * h / max;
                @let failed_h = failed * h / max;
                g {
                    title { (hour) ": " (ok) " delivered, " (failed) " failed" }
                    rect x=(x + 2) y=(h - ok_h) width=(bar - 4) height=(ok_h) fill="#2e7d32" {}
                    rect x=(x + 2) y=(h - ok_h - failed_h) width=(bar - 4) height=(failed_h) fill="#c62828" {}
                }
            }
            line x1="0" y1=(h) x2=(w) y2=(h) stroke="#8a939e" {}
            text x="0" y=(h + 14) font-size="11" fill="#5b6570" { "24 h ago" }
            text x=(w - 30) y=(h + 14) font-size="11" fill="#5b6570" { "now" }
        }
        p class="muted" { (label) "." }
    }
}
