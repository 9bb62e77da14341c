//! Conversations (search by contact, with their messages), messages (search by text), and
//! scheduled messages (search, filter by status, cancel) — through `/v1/conversations`,
//! `/v1/messages` and `/v1/scheduled-messages`.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::common::{can, denied, empty, outcome, pager, refused, text};
use crate::access::grants::{Permission, Scope};
use crate::console::api::Call;
use crate::console::extract::{Ctx, Post};
use crate::console::html::{csrf_field, idempotency_field, page, url};
use crate::http::search::MAX_CHARS;

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    contact_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    conversation_id: String,
    #[serde(default)]
    q: String,
}

/// The search box of a list page (`?q=`).
fn search_box(label: &str, q: &str) -> Markup {
    html! {
        label for="q" { (label) }
        input id="q" name="q" type="search" value=(q) maxlength=(MAX_CHARS);
    }
}

pub async fn conversations(ctx: Ctx, Query(q): Query<Filter>) -> Response {
    let keep = [("q", q.q.trim()), ("contact_id", q.contact_id.as_str())];
    let mut query = keep.to_vec();
    query.extend([("limit", "50"), ("cursor", q.cursor.as_str())]);
    let a = ctx
        .call(Call::get(url("/v1/conversations", &[], &query)))
        .await;
    if !a.ok() {
        return refused("Conversations", &ctx.session, &a);
    }
    let (rows, next) = a.page();
    page(
        "Conversations",
        Some(&ctx.session),
        html! {
            form class="card" method="get" action="/console/conversations" role="search" {
                (search_box("Search by contact (external key, name, email or phone contains)", &q.q))
                label for="contact_id" { "Or this contact id" }
                input id="contact_id" name="contact_id" value=(q.contact_id);
                button type="submit" { "Search" }
            }
            @if rows.is_empty() { (empty("No conversations match.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Conversation" } th { "Contact" } th { "Channel" } th { "Created" } } }
                    tbody { @for c in &rows {
                        tr {
                            td { a href=(url("/console/conversations", &[&text(&c["id"])], &[])) { (text(&c["id"])) } }
                            td { (text(&c["contact_id"])) }
                            td { (text(&c["channel"])) }
                            td { (text(&c["created_at"])) }
                        }
                    } }
                } }
            }
            (pager("/console/conversations", next.as_deref(), &keep))
        },
    )
}

pub async fn conversation(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Filter>) -> Response {
    let c = ctx
        .call(Call::get(url("/v1/conversations", &[&id], &[])))
        .await;
    if !c.ok() {
        return refused("Conversation", &ctx.session, &c);
    }
    let m = ctx
        .call(Call::get(url(
            "/v1/messages",
            &[],
            &[
                ("conversation_id", &id),
                ("limit", "50"),
                ("cursor", &q.cursor),
            ],
        )))
        .await;
    let (rows, next) = m.page();
    let here = url("/console/conversations", &[&id], &[]);
    page(
        "Conversation",
        Some(&ctx.session),
        html! {
            div class="card" {
                @for k in ["id", "contact_id", "channel", "created_at"] {
                    p { strong { (k) ": " } (text(&c.body[k])) }
                }
            }
            h2 { "Messages" }
            @if !m.ok() { p class="alert" { (m.detail()) } }
            @if rows.is_empty() { (empty("No messages.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Time" } th { "Direction" } th { "Status" } th { "Body" } } }
                    tbody { @for msg in &rows {
                        tr {
                            td { (text(&msg["created_at"])) }
                            td { (text(&msg["direction"])) }
                            td { (text(&msg["status"])) }
                            td { (text(&msg["body"])) }
                        }
                    } }
                } }
            }
            (pager(&here, next.as_deref(), &[]))
        },
    )
}

pub async fn scheduled(ctx: Ctx, Query(q): Query<Filter>) -> Response {
    render_scheduled(&ctx, &q, None).await
}

async fn render_scheduled(ctx: &Ctx, q: &Filter, note: Option<Markup>) -> Response {
    let keep = [("q", q.q.trim()), ("status", q.status.as_str())];
    let mut query = keep.to_vec();
    query.extend([("limit", "50"), ("cursor", q.cursor.as_str())]);
    let a = ctx
        .call(Call::get(url("/v1/scheduled-messages", &[], &query)))
        .await;
    if !a.ok() {
        return refused("Scheduled messages", &ctx.session, &a);
    }
    let s = &ctx.session;
    let (rows, next) = a.page();
    page(
        "Scheduled messages",
        Some(s),
        html! {
            @if let Some(n) = note { (n) }
            form class="card" method="get" action="/console/scheduled" role="search" {
                (search_box("Search (body contains)", &q.q))
                label for="status" { "Status" }
                select id="status" name="status" {
                    @for st in ["", "pending", "sent", "canceled", "failed"] {
                        option value=(st) selected[q.status == st] { (if st.is_empty() { "any" } else { st }) }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if rows.is_empty() { (empty("No scheduled messages match.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Send at" } th { "Conversation" } th { "Status" } th { "Body" } th { "Actions" } } }
                    tbody { @for m in &rows {
                        @let id = text(&m["id"]);
                        tr {
                            td { (text(&m["send_at"])) }
                            td { (text(&m["conversation_id"])) }
                            td { (text(&m["status"])) }
                            td { (text(&m["body"])) }
                            td {
                                @if m["status"] == "pending" && can(s, Scope::ScheduledMessages, Permission::Delete) {
                                    form class="inline" method="post" action=(url("/console/scheduled", &[&id, "cancel"], &[])) {
                                        (csrf_field(s)) (idempotency_field())
                                        button class="danger" type="submit" { "Cancel" }
                                    }
                                }
                            }
                        }
                    } }
                } }
            }
            (pager("/console/scheduled", next.as_deref(), &keep))
        },
    )
}

pub async fn cancel(Path(id): Path<String>, post: Post) -> Response {
    let a = post
        .ctx
        .call(Call::send(
            Method::DELETE,
            url("/v1/scheduled-messages", &[&id], &[]),
            None,
            post.form.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Scheduled messages", &post.ctx.session, &a);
    }
    let note = outcome(&a, "Canceled.");
    render_scheduled(&post.ctx, &Filter::default(), Some(note)).await
}

pub async fn messages(ctx: Ctx, Query(q): Query<Filter>) -> Response {
    let keep = [
        ("q", q.q.trim()),
        ("conversation_id", q.conversation_id.as_str()),
    ];
    let mut query = keep.to_vec();
    query.extend([("limit", "50"), ("cursor", q.cursor.as_str())]);
    let a = ctx.call(Call::get(url("/v1/messages", &[], &query))).await;
    if denied(&a) {
        return refused("Messages", &ctx.session, &a);
    }
    let (rows, next) = a.page();
    page(
        "Messages",
        Some(&ctx.session),
        html! {
            form class="card" method="get" action="/console/messages" role="search" {
                (search_box("Search (body contains)", &q.q))
                label for="conversation_id" { "In this conversation (id)" }
                input id="conversation_id" name="conversation_id" value=(q.conversation_id);
                button type="submit" { "Search" }
            }
            @if !a.ok() { (outcome(&a, "")) }
            @if rows.is_empty() { (empty("No messages match.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Time" } th { "Conversation" } th { "Direction" } th { "Status" } th { "Body" } } }
                    tbody { @for m in &rows {
                        @let conv = text(&m["conversation_id"]);
                        tr {
                            td { (text(&m["created_at"])) }
                            td { a href=(url("/console/conversations", &[&conv], &[])) { (conv) } }
                            td { (text(&m["direction"])) }
                            td { (text(&m["status"])) }
                            td { (text(&m["body"])) }
                        }
                    } }
                } }
            }
            (pager("/console/messages", next.as_deref(), &keep))
        },
    )
}
