//! The audit log: filter by actor, action and time, and the hash chain's status — through
//! `/v1/audit-logs` and `/v1/audit-logs/verify`.

use axum::extract::Query;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::common::{empty, pager, refused, text};
use crate::console::api::{Answer, Call};
use crate::console::extract::Ctx;
use crate::console::html::{page, url};

const BASE: &str = "/console/audit";

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    since: String,
}

pub async fn list(ctx: Ctx, Query(q): Query<Filter>) -> Response {
    let keep = [
        ("action", q.action.as_str()),
        ("actor", q.actor.as_str()),
        ("since", q.since.as_str()),
    ];
    let mut query = keep.to_vec();
    query.extend([("limit", "50"), ("cursor", q.cursor.as_str())]);
    let a = ctx
        .call(Call::get(url("/v1/audit-logs", &[], &query)))
        .await;
    if !a.ok() {
        return refused("Audit log", &ctx.session, &a);
    }
    let (rows, next) = a.page();
    let chain = ctx.call(Call::get("/v1/audit-logs/verify".into())).await;
    page(
        "Audit log",
        Some(&ctx.session),
        html! {
            (chain_status(&chain))
            form class="card" method="get" action=(BASE) {
                label for="action" { "Action" }
                input id="action" name="action" value=(q.action) placeholder="member.added";
                label for="actor" { "Actor id" }
                input id="actor" name="actor" value=(q.actor);
                label for="since" { "Since (RFC 3339)" }
                input id="since" name="since" value=(q.since) placeholder="2026-12-01T00:00:00Z";
                button type="submit" { "Filter" }
            }
            @if rows.is_empty() { (empty("No entries match.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Time" } th { "Actor" } th { "Action" } th { "Target" } th { "Outcome" } th { "IP" } } }
                    tbody { @for e in &rows {
                        tr {
                            td { (text(&e["created_at"])) }
                            td { (text(&e["actor_type"])) " " (text(&e["actor_id"])) }
                            td { (text(&e["action"])) }
                            td { (text(&e["target_type"])) " " (text(&e["target_id"])) }
                            td { (text(&e["outcome"])) }
                            td { (text(&e["ip"])) }
                        }
                    } }
                } }
            }
            (pager(BASE, next.as_deref(), &keep))
        },
    )
}

/// The chain's status as `GET /v1/audit-logs/verify` reports it.
fn chain_status(a: &Answer) -> Markup {
    let b = &a.body;
    html! {
        section class="card" aria-labelledby="chain" {
            h2 id="chain" { "Chain status" }
            @if !a.ok() {
                p class="alert" role="alert" { (a.detail()) }
            } @else if b["valid"] == true {
                p class="notice" role="status" {
                    "Intact: " (text(&b["entries_checked"])) " entries verified, each unchanged and linked to the one before."
                }
            } @else {
                p class="alert" role="alert" {
                    "Broken at entry " (text(&b["first_broken_seq"]))
                    @if let Some(id) = b["first_broken_id"].as_str() { " (" code { (id) } ")" }
                    ": " (text(&b["problem"]))
                }
            }
        }
    }
}
