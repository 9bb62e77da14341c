//! API keys: list, create (the secret shown once), rotate, revoke — through
//! `/v1/developer/keys`.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::common::{CursorQuery, can, denied, empty, list_rows, outcome, pager, refused, text};
use crate::access::grants::{Permission, Scope};
use crate::console::api::{Answer, Call};
use crate::console::extract::{Ctx, Post};
use crate::console::html::{csrf_field, field_error, idempotency_field, page, url};
use crate::console::session::Session;

const BASE: &str = "/console/api-keys";

pub async fn list(ctx: Ctx, Query(q): Query<CursorQuery>) -> Response {
    render(&ctx, &q.cursor, None).await
}

async fn render(ctx: &Ctx, cursor: &str, after: Option<(Answer, Markup)>) -> Response {
    let (rows, next) = match list_rows(ctx, "API keys", "/v1/developer/keys", cursor).await {
        Ok(page) => page,
        Err(refusal) => return refusal,
    };
    let s = &ctx.session;
    let errors = after
        .as_ref()
        .map(|x| x.0.field_errors())
        .unwrap_or_default();
    page(
        "API keys",
        Some(s),
        html! {
            @if let Some((_, m)) = &after { (m) }
            @if rows.is_empty() { (empty("No API keys yet.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Name" } th { "Prefix" } th { "Environment" } th { "Scopes" } th { "Status" } th { "Created" } th { "Actions" } } }
                    tbody { @for k in &rows { (row(s, k)) } }
                } }
            }
            (pager(BASE, next.as_deref(), &[]))
            @if can(s, Scope::ApiKeys, Permission::Write) { (create_form(s, &errors)) }
        },
    )
}

fn row(s: &Session, k: &Value) -> Markup {
    let id = text(&k["id"]);
    let live = k["status"] == "active";
    html! {
        tr {
            td { (text(&k["name"])) }
            td { code { (text(&k["prefix"])) } }
            td { (text(&k["environment"])) }
            td { (k["scopes"].as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
            td { (text(&k["status"])) }
            td { (text(&k["created_at"])) }
            td {
                @if live && can(s, Scope::ApiKeys, Permission::Write) {
                    form class="inline" method="post" action=(url(BASE, &[&id, "rotate"], &[])) {
                        (csrf_field(s)) (idempotency_field())
                        button class="secondary" type="submit" { "Rotate" }
                    }
                }
                @if live && can(s, Scope::ApiKeys, Permission::Delete) {
                    form class="inline" method="post" action=(url(BASE, &[&id, "revoke"], &[])) {
                        (csrf_field(s)) (idempotency_field())
                        button class="danger" type="submit" { "Revoke" }
                    }
                }
            }
        }
    }
}

fn create_form(s: &Session, errors: &[(String, String)]) -> Markup {
    html! {
        h2 { "Create a key" }
        form class="card" method="post" action=(BASE) {
            (csrf_field(s)) (idempotency_field())
            label for="name" { "Name" }
            input id="name" name="name" required maxlength="100";
            (field_error(errors, "name"))
            label for="environment" { "Environment" }
            select id="environment" name="environment" {
                option value="live" { "live" }
                option value="test" { "test" }
            }
            fieldset {
                legend { "Scopes" }
                @for sc in Scope::ALL.iter().filter(|s| s.key_grantable()) {
                    label { input type="checkbox" name="scopes" value=(sc.as_str()); " " (sc.as_str()) }
                }
            }
            (field_error(errors, "scopes"))
            fieldset {
                legend { "Permissions" }
                @for p in Permission::ALL {
                    label { input type="checkbox" name="permissions" value=(p.as_str()); " " (p.as_str()) }
                }
            }
            (field_error(errors, "permissions"))
            label for="expires_at" { "Expires at (optional, RFC 3339)" }
            input id="expires_at" name="expires_at" placeholder="2027-01-31T12:00:00Z";
            (field_error(errors, "expires_at"))
            button type="submit" { "Create key" }
        }
    }
}

pub async fn create(post: Post) -> Response {
    let f = &post.form;
    let mut body = json!({
        "name": f.get("name"),
        "scopes": f.all("scopes"),
        "permissions": f.all("permissions"),
    });
    for optional in ["environment", "expires_at"] {
        if !f.get(optional).is_empty() {
            body[optional] = json!(f.get(optional));
        }
    }
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            "/v1/developer/keys".into(),
            Some(body),
            f.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("API keys", &post.ctx.session, &a);
    }
    if !a.ok() {
        let m = outcome(&a, "");
        return render(&post.ctx, "", Some((a, m))).await;
    }
    secret_page(&post.ctx.session, "Key created", &a)
}

/// The secret, shown this once.
fn secret_page(s: &Session, title: &str, a: &Answer) -> Response {
    page(
        title,
        Some(s),
        html! {
            p class="notice" role="status" { "Copy the secret now: it is not shown again." }
            p { "Key " code { (text(&a.body["id"])) } " (" (text(&a.body["name"])) ")" }
            label for="secret" { "Secret" }
            output id="secret" class="secret" { (text(&a.body["secret"])) }
            p { a href=(BASE) { "Back to API keys" } }
        },
    )
}

pub async fn rotate(Path(id): Path<String>, post: Post) -> Response {
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            url("/v1/developer/keys", &[&id, "rotate"], &[]),
            None,
            post.form.idem(),
        ))
        .await;
    if !a.ok() {
        return refused("API keys", &post.ctx.session, &a);
    }
    secret_page(&post.ctx.session, "Key rotated", &a)
}

pub async fn revoke(Path(id): Path<String>, post: Post) -> Response {
    let a = post
        .ctx
        .call(Call::send(
            Method::DELETE,
            url("/v1/developer/keys", &[&id], &[]),
            None,
            post.form.idem(),
        ))
        .await;
    if !a.ok() {
        return refused("API keys", &post.ctx.session, &a);
    }
    let m = outcome(&a, "Key revoked.");
    render(&post.ctx, "", Some((a, m))).await
}
