//! GDPR: a contact's data export and erasure (behind typed confirmation) — through
//! `/v1/gdpr/contacts/{external_key}`. Full exports of the org are on their own page
//! ([`super::exports`]).

use axum::extract::Query;
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::common::{can, denied, outcome, refused};
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
            p { "A full export of the org's data is on the " a href="/console/exports" { "Exports" } " page." }
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
