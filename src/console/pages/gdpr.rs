//! GDPR: a contact's data export and erasure (behind typed confirmation), and full exports
//! of the org — through `/v1/gdpr/contacts/{external_key}` and `/v1/exports`.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::common::{can, denied, outcome, refused, text};
use crate::access::grants::{Permission, Scope};
use crate::console::api::Call;
use crate::console::extract::{Ctx, Post};
use crate::console::html::{csrf_field, idempotency_field, page, url};

#[derive(Deserialize, Default)]
pub struct Subject {
    #[serde(default)]
    external_key: String,
}

pub async fn show(ctx: Ctx, Query(q): Query<Subject>) -> Response {
    render(&ctx, &q.external_key, None).await
}

async fn render(ctx: &Ctx, key: &str, note: Option<Markup>) -> Response {
    let s = &ctx.session;
    let export = if key.is_empty() {
        None
    } else {
        let a = ctx
            .call(Call::get(url("/v1/gdpr/contacts", &[key, "export"], &[])))
            .await;
        if denied(&a) && a.status.as_u16() != 404 {
            return refused("GDPR", s, &a);
        }
        Some(a)
    };
    page(
        "GDPR requests",
        Some(s),
        html! {
            @if let Some(n) = note { (n) }
            form class="card" method="get" action="/console/gdpr" role="search" {
                label for="external_key" { "Contact's external key" }
                input id="external_key" name="external_key" value=(key) required;
                button type="submit" { "Look up" }
            }
            @if let Some(a) = &export {
                @if a.ok() {
                    h2 { "Everything held about this contact" }
                    pre class="card scroll" { (serde_json::to_string_pretty(&a.body).unwrap_or_default()) }
                    @if can(s, Scope::Gdpr, Permission::Delete) {
                        h2 { "Erase" }
                        form class="card" method="post" action="/console/gdpr/erase" {
                            (csrf_field(s)) (idempotency_field())
                            input type="hidden" name="external_key" value=(key);
                            p { "Erasing removes the contact and their messages' content for good; a tombstone is kept for audit." }
                            label for="confirm" { "Type the external key to confirm" }
                            input id="confirm" name="confirm" required autocomplete="off";
                            button class="danger" type="submit" { "Erase this contact" }
                        }
                    }
                } @else {
                    p class="alert" role="alert" { (a.detail()) }
                }
            }
            h2 { "Full export of the org" }
            @if can(s, Scope::Exports, Permission::Write) {
                form class="card" method="post" action="/console/exports" {
                    (csrf_field(s)) (idempotency_field())
                    button type="submit" { "Start an export" }
                }
            }
        },
    )
}

pub async fn erase(post: Post) -> Response {
    let key = post.form.get("external_key").to_owned();
    if post.form.get("confirm") != key {
        let note = html! { p class="alert" role="alert" { "The confirmation did not match the external key: nothing was erased." } };
        return render(&post.ctx, &key, Some(note)).await;
    }
    let a = post
        .ctx
        .call(Call::send(
            Method::DELETE,
            url("/v1/gdpr/contacts", &[&key], &[]),
            None,
            post.form.idem(),
        ))
        .await;
    if denied(&a) && a.status.as_u16() != 404 {
        return refused("GDPR", &post.ctx.session, &a);
    }
    let note = outcome(&a, "Erased.");
    render(&post.ctx, "", Some(note)).await
}

pub async fn start_export(post: Post) -> Response {
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            "/v1/exports".into(),
            None,
            post.form.idem(),
        ))
        .await;
    if !a.ok() {
        return refused("Exports", &post.ctx.session, &a);
    }
    render_export(&post.ctx, &text(&a.body["id"])).await
}

pub async fn export(ctx: Ctx, Path(id): Path<String>) -> Response {
    render_export(&ctx, &id).await
}

async fn render_export(ctx: &Ctx, id: &str) -> Response {
    let a = ctx.call(Call::get(url("/v1/exports", &[id], &[]))).await;
    if !a.ok() {
        return refused("Export", &ctx.session, &a);
    }
    page(
        "Export",
        Some(&ctx.session),
        html! {
            div class="card" {
                @for k in ["id", "status", "bytes", "sha256", "created_at", "download_expires_at"] {
                    p { strong { (k) ": " } (text(&a.body[k])) }
                }
                @if let Some(link) = a.body["download_url"].as_str() {
                    p { a href=(link) { "Download" } }
                } @else {
                    p { a href=(url("/console/exports", &[id], &[])) { "Refresh" } }
                }
            }
        },
    )
}
