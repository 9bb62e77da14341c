//! Dead letters: filter, detail, replay one, and bulk replay after showing how many match —
//! through `/v1/dead-letters`.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::common::{can, denied, empty, outcome, pager, refused, text};
use crate::access::grants::{Permission, Scope};
use crate::console::api::Call;
use crate::console::extract::{Ctx, Post};
use crate::console::html::{csrf_field, idempotency_field, page, url};

const BASE: &str = "/console/dead-letters";

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    endpoint_id: String,
    #[serde(default)]
    event_type: String,
}

pub async fn list(ctx: Ctx, Query(q): Query<Filter>) -> Response {
    render(&ctx, &q, None).await
}

async fn render(ctx: &Ctx, q: &Filter, note: Option<Markup>) -> Response {
    let keep = [
        ("status", q.status.as_str()),
        ("endpoint_id", q.endpoint_id.as_str()),
        ("event_type", q.event_type.as_str()),
    ];
    let mut query = keep.to_vec();
    query.extend([("limit", "50"), ("cursor", q.cursor.as_str())]);
    let a = ctx
        .call(Call::get(url("/v1/dead-letters", &[], &query)))
        .await;
    if !a.ok() {
        return refused("Dead letters", &ctx.session, &a);
    }
    let s = &ctx.session;
    let (rows, next) = a.page();
    let open = rows.iter().filter(|d| d["status"] == "open").count();
    page(
        "Dead letters",
        Some(s),
        html! {
            @if let Some(n) = note { (n) }
            form class="card" method="get" action=(BASE) {
                label for="status" { "Status" }
                select id="status" name="status" {
                    @for st in ["", "open", "replaying", "resolved"] {
                        option value=(st) selected[q.status == st] { (if st.is_empty() { "any" } else { st }) }
                    }
                }
                label for="endpoint_id" { "Endpoint id" }
                input id="endpoint_id" name="endpoint_id" value=(q.endpoint_id);
                label for="event_type" { "Event type" }
                input id="event_type" name="event_type" value=(q.event_type);
                button type="submit" { "Filter" }
            }
            @if rows.is_empty() { (empty("No dead letters match.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Created" } th { "Event" } th { "Reason" } th { "Status" } th { "Attempts" } th { "Last error" } th { "Actions" } } }
                    tbody { @for d in &rows {
                        @let id = text(&d["id"]);
                        tr {
                            td { a href=(url(BASE, &[&id], &[])) { (text(&d["created_at"])) } }
                            td { (text(&d["event_type"])) }
                            td { (text(&d["reason"])) }
                            td { (text(&d["status"])) }
                            td { (text(&d["attempts"])) }
                            td { (text(&d["last_error"])) }
                            td {
                                @if d["status"] == "open" && can(s, Scope::DeadLetters, Permission::Write) {
                                    form class="inline" method="post" action=(url(BASE, &[&id, "replay"], &[])) {
                                        (csrf_field(s)) (idempotency_field())
                                        button type="submit" { "Replay" }
                                    }
                                }
                            }
                        }
                    } }
                } }
            }
            (pager(BASE, next.as_deref(), &keep))
            @if open > 0 && can(s, Scope::DeadLetters, Permission::Write) {
                h2 { "Bulk replay" }
                form class="card" method="post" action=(url(BASE, &["replay"], &[])) {
                    (csrf_field(s)) (idempotency_field())
                    input type="hidden" name="endpoint_id" value=(q.endpoint_id);
                    input type="hidden" name="event_type" value=(q.event_type);
                    p { strong { (open) } " open dead letters on this page match the filter" @if next.is_some() { " (more on later pages)" } "." }
                    button type="submit" { "Replay every open dead letter matching the filter" }
                }
            }
        },
    )
}

pub async fn detail(ctx: Ctx, Path(id): Path<String>) -> Response {
    let a = ctx
        .call(Call::get(url("/v1/dead-letters", &[&id], &[])))
        .await;
    if !a.ok() {
        return refused("Dead letter", &ctx.session, &a);
    }
    let s = &ctx.session;
    page(
        "Dead letter",
        Some(s),
        html! {
            div class="card" {
                @for k in ["id", "event_type", "endpoint_id", "reason", "status", "attempts", "last_error", "replay_count", "created_at"] {
                    p { strong { (k) ": " } (text(&a.body[k])) }
                }
                h2 { "Payload" }
                pre class="scroll" { (serde_json::to_string_pretty(&a.body["payload"]).unwrap_or_default()) }
            }
            @if a.body["status"] == "open" && can(s, Scope::DeadLetters, Permission::Write) {
                form method="post" action=(url(BASE, &[&id, "replay"], &[])) {
                    (csrf_field(s)) (idempotency_field())
                    button type="submit" { "Replay" }
                }
            }
        },
    )
}

pub async fn replay(Path(id): Path<String>, post: Post) -> Response {
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            url("/v1/dead-letters", &[&id, "replay"], &[]),
            Some(json!({})),
            post.form.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Dead letter", &post.ctx.session, &a);
    }
    let note = outcome(&a, "Replay queued.");
    render(&post.ctx, &Filter::default(), Some(note)).await
}

pub async fn bulk_replay(post: Post) -> Response {
    let f = &post.form;
    let mut body = json!({});
    for k in ["endpoint_id", "event_type"] {
        if !f.get(k).is_empty() {
            body[k] = json!(f.get(k));
        }
    }
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            "/v1/dead-letters/replay".into(),
            Some(body),
            f.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Dead letters", &post.ctx.session, &a);
    }
    let done = format!("{} dead letters replaying.", text(&a.body["replayed"]));
    let note = outcome(&a, &done);
    render(&post.ctx, &Filter::default(), Some(note)).await
}
