//! Branding with a preview of the status page's header — through `/v1/branding`.

use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::common::{can, denied, outcome, refused, text};
use crate::access::grants::{Permission, Scope};
use crate::console::api::Call;
use crate::console::extract::{Ctx, Post};
use crate::console::html::{csrf_field, field_error, idempotency_field, page};

pub async fn show(ctx: Ctx) -> Response {
    render(&ctx, None, &[]).await
}

async fn render(ctx: &Ctx, note: Option<Markup>, errors: &[(String, String)]) -> Response {
    let a = ctx.call(Call::get("/v1/branding".into())).await;
    if !a.ok() {
        return refused("Branding", &ctx.session, &a);
    }
    let b = &a.body;
    let s = &ctx.session;
    page(
        "Branding",
        Some(s),
        html! {
            @if let Some(n) = note { (n) }
            h2 { "Status page preview" }
            div class="card" { (preview(b)) }
            p { a href=(text(&b["status_page_url"])) { "Open the status page" } }
            @if can(s, Scope::Org, Permission::Write) {
                h2 { "Edit" }
                form class="card" method="post" action="/console/branding" {
                    (csrf_field(s)) (idempotency_field())
                    label for="name" { "Name" }
                    input id="name" name="name" value=(text(&b["name"])) required maxlength="100";
                    (field_error(errors, "name"))
                    label for="primary_color" { "Primary colour (#rrggbb)" }
                    input id="primary_color" name="primary_color" value=(text(&b["primary_color"]));
                    (field_error(errors, "primary_color"))
                    label for="accent_color" { "Accent colour (#rrggbb)" }
                    input id="accent_color" name="accent_color" value=(text(&b["accent_color"]));
                    (field_error(errors, "accent_color"))
                    label for="logo_url" { "Logo URL (https)" }
                    input id="logo_url" name="logo_url" value=(text(&b["logo_url"]));
                    (field_error(errors, "logo_url"))
                    button type="submit" { "Save" }
                }
            }
        },
    )
}

/// The status page's header as an SVG (presentation attributes, so no inline style is
/// needed under the page's CSP); the name is escaped like any text.
fn preview(b: &Value) -> Markup {
    let color = |k: &str, d: &'static str| b[k].as_str().unwrap_or(d).to_owned();
    let name = b["name"].as_str().unwrap_or("Status");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 480 90" width="100%" role="img" aria-label={ "Preview: " (name) } {
            rect x="0" y="0" width="480" height="56" fill=(color("primary_color", "#14213d")) {}
            text x="16" y="36" font-size="20" fill="#ffffff" { (name) }
            rect x="16" y="66" width="120" height="14" rx="3" fill=(color("accent_color", "#2e7d32")) {}
            text x="146" y="78" font-size="12" fill="#5b6570" { "All systems operational" }
        }
    }
}

pub async fn save(post: Post) -> Response {
    let f = &post.form;
    let mut body = json!({ "name": f.get("name") });
    for k in ["primary_color", "accent_color", "logo_url"] {
        if !f.get(k).is_empty() {
            body[k] = json!(f.get(k));
        }
    }
    let a = post
        .ctx
        .call(Call::send(
            Method::PUT,
            "/v1/branding".into(),
            Some(body),
            f.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Branding", &post.ctx.session, &a);
    }
    render(&post.ctx, Some(outcome(&a, "Saved.")), &a.field_errors()).await
}
