//! Contacts: search (text in the external key, name, email or phone; or one exact external
//! key) and detail — through `/v1/contacts`.

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::common::{empty, pager, refused, text};
use crate::console::api::Call;
use crate::console::extract::Ctx;
use crate::console::html::{page, url};
use crate::http::search::MAX_CHARS;

const BASE: &str = "/console/contacts";

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    external_key: String,
    #[serde(default)]
    q: String,
}

pub async fn list(ctx: Ctx, Query(q): Query<Search>) -> Response {
    let keep = [("q", q.q.trim()), ("external_key", q.external_key.as_str())];
    let mut query = keep.to_vec();
    query.extend([("limit", "50"), ("cursor", q.cursor.as_str())]);
    let a = ctx.call(Call::get(url("/v1/contacts", &[], &query))).await;
    if !a.ok() {
        return refused("Contacts", &ctx.session, &a);
    }
    let (rows, next) = a.page();
    page(
        "Contacts",
        Some(&ctx.session),
        html! {
            form class="card" method="get" action=(BASE) role="search" {
                label for="q" { "Search (external key, name, email or phone contains)" }
                input id="q" name="q" type="search" value=(q.q) maxlength=(MAX_CHARS);
                label for="external_key" { "Or exactly this external key" }
                input id="external_key" name="external_key" value=(q.external_key);
                button type="submit" { "Search" }
            }
            @if rows.is_empty() { (empty("No contacts match.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Name" } th { "External key" } th { "Email" } th { "Created" } } }
                    tbody { @for c in &rows {
                        tr {
                            td { a href=(url(BASE, &[&text(&c["id"])], &[])) { (text(&c["name"])) @if c["name"].is_null() { "(no name)" } } }
                            td { (text(&c["external_key"])) }
                            td { (text(&c["email"])) }
                            td { (text(&c["created_at"])) }
                        }
                    } }
                } }
            }
            (pager(BASE, next.as_deref(), &keep))
        },
    )
}

pub async fn detail(ctx: Ctx, Path(id): Path<String>) -> Response {
    let a = ctx.call(Call::get(url("/v1/contacts", &[&id], &[]))).await;
    if !a.ok() {
        return refused("Contact", &ctx.session, &a);
    }
    page(
        "Contact",
        Some(&ctx.session),
        html! {
            div class="card" {
                @for k in ["id", "name", "external_key", "email", "phone", "livemode", "created_at", "updated_at"] {
                    p { strong { (k) ": " } (text(&a.body[k])) }
                }
                h2 { "Attributes" }
                pre class="scroll" { (serde_json::to_string_pretty(&a.body["attributes"]).unwrap_or_default()) }
            }
        },
    )
}
