//! Full exports of the org: the list with each one's status and, when ready, its download
//! link; start one; one export's page — through `/v1/exports`.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::common::{CursorQuery, can, denied, empty, list_rows, outcome, pager, refused, text};
use crate::access::grants::{Permission, Scope};
use crate::console::api::Call;
use crate::console::extract::{Ctx, Post};
use crate::console::html::{csrf_field, idempotency_field, page, url};

const BASE: &str = "/console/exports";

pub async fn list(ctx: Ctx, Query(q): Query<CursorQuery>) -> Response {
    render_list(&ctx, &q.cursor, None).await
}

async fn render_list(ctx: &Ctx, cursor: &str, note: Option<Markup>) -> Response {
    let (rows, next) = match list_rows(ctx, "Exports", "/v1/exports", cursor).await {
        Ok(page) => page,
        Err(refusal) => return refusal,
    };
    let s = &ctx.session;
    page(
        "Exports",
        Some(s),
        html! {
            @if let Some(n) = note { (n) }
            p { "A full export holds the org's data (this environment's) as NDJSON, built in the background. A download link works for a limited time; reload this page for a fresh one." }
            @if can(s, Scope::Exports, Permission::Write) {
                form class="card" method="post" action=(BASE) {
                    (csrf_field(s)) (idempotency_field())
                    button type="submit" { "Start an export" }
                }
            }
            @if rows.is_empty() { (empty("No exports yet.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Export" } th { "Status" } th { "Size" } th { "Started" } th { "Completed" } th { "Download" } } }
                    tbody { @for e in &rows { (row(e)) } }
                } }
            }
            (pager(BASE, next.as_deref(), &[]))
        },
    )
}

fn row(e: &Value) -> Markup {
    let id = text(&e["id"]);
    html! {
        tr {
            td { a href=(url(BASE, &[&id], &[])) { (id) } }
            td { (text(&e["status"])) }
            td { @if let Some(n) = e["bytes"].as_i64() { (n) " bytes" } }
            td { (text(&e["created_at"])) }
            td { (text(&e["completed_at"])) }
            td {
                @if let Some(link) = e["download_url"].as_str() {
                    a href=(link) { "Download" } " " span class="muted" { "(until " (text(&e["download_expires_at"])) ")" }
                }
            }
        }
    }
}

pub async fn start(post: Post) -> Response {
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            "/v1/exports".into(),
            None,
            post.form.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Exports", &post.ctx.session, &a);
    }
    let done = format!(
        "Export {} started; it is ready when its status says so.",
        text(&a.body["id"])
    );
    let note = outcome(&a, &done);
    render_list(&post.ctx, "", Some(note)).await
}

pub async fn detail(ctx: Ctx, Path(id): Path<String>) -> Response {
    let a = ctx.call(Call::get(url("/v1/exports", &[&id], &[]))).await;
    if !a.ok() {
        return refused("Export", &ctx.session, &a);
    }
    page(
        "Export",
        Some(&ctx.session),
        html! {
            div class="card" {
                @for k in ["id", "status", "bytes", "sha256", "created_at", "completed_at", "download_expires_at"] {
                    p { strong { (k) ": " } (text(&a.body[k])) }
                }
                @if let Some(link) = a.body["download_url"].as_str() {
                    p { a href=(link) { "Download" } }
                } @else {
                    p { a href=(url(BASE, &[&id], &[])) { "Refresh" } }
                }
            }
            p { a href=(BASE) { "All exports" } }
        },
    )
}
