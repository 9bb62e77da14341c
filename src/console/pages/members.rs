//! Members: list, invite (with the one-time link), change role, remove — through
//! `/v1/members`. Owners and admins only, as the API says; others see its refusal.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::common::{CursorQuery, can, denied, empty, list_rows, outcome, pager, refused, text};
use crate::access::grants::{Permission, Role, Scope};
use crate::console::api::{Answer, Call};
use crate::console::extract::{Ctx, Post};
use crate::console::html::{csrf_field, field_error, idempotency_field, page, url};
use crate::console::session::Session;

const BASE: &str = "/console/members";

pub async fn list(ctx: Ctx, Query(q): Query<CursorQuery>) -> Response {
    render(&ctx, &q.cursor, None).await
}

async fn render(ctx: &Ctx, cursor: &str, after: Option<(Answer, Markup)>) -> Response {
    let (rows, next) = match list_rows(ctx, "Members", "/v1/members", cursor).await {
        Ok(page) => page,
        Err(refusal) => return refusal,
    };
    let s = &ctx.session;
    let errors = after
        .as_ref()
        .map(|x| x.0.field_errors())
        .unwrap_or_default();
    page(
        "Members",
        Some(s),
        html! {
            @if let Some((_, m)) = &after { (m) }
            @if rows.is_empty() { (empty("No members.")) } @else {
                div class="scroll" { table {
                    thead { tr { th { "Email" } th { "Role" } th { "Joined" } th { "Actions" } } }
                    tbody { @for m in &rows { (row(s, m)) } }
                } }
            }
            (pager(BASE, next.as_deref(), &[]))
            @if can(s, Scope::Org, Permission::Write) {
                h2 { "Invite a member" }
                form class="card" method="post" action=(BASE) {
                    (csrf_field(s)) (idempotency_field())
                    label for="email" { "Email" }
                    input id="email" name="email" type="email" required;
                    (field_error(&errors, "email"))
                    (role_select("role", Role::Viewer))
                    button type="submit" { "Invite" }
                }
            }
        },
    )
}

fn role_select(id: &str, current: Role) -> Markup {
    html! {
        label for=(id) { "Role" }
        select id=(id) name="role" {
            @for r in Role::ALL {
                option value=(r.as_str()) selected[r == current] { (r.as_str()) }
            }
        }
    }
}

fn row(s: &Session, m: &Value) -> Markup {
    let id = text(&m["user_id"]);
    let role = Role::parse(m["role"].as_str().unwrap_or("")).unwrap_or(Role::Viewer);
    html! {
        tr {
            td { (text(&m["email"])) }
            td { (role.as_str()) }
            td { (text(&m["created_at"])) }
            td {
                @if can(s, Scope::Org, Permission::Write) {
                    form class="inline" method="post" action=(url(BASE, &[&id, "role"], &[])) {
                        (csrf_field(s)) (idempotency_field())
                        (role_select(&format!("role-{id}"), role))
                        button class="secondary" type="submit" { "Change role" }
                    }
                }
                @if can(s, Scope::Org, Permission::Delete) {
                    form class="inline" method="post" action=(url(BASE, &[&id, "remove"], &[])) {
                        (csrf_field(s)) (idempotency_field())
                        button class="danger" type="submit" { "Remove" }
                    }
                }
            }
        }
    }
}

pub async fn invite(post: Post) -> Response {
    let f = &post.form;
    let body = json!({ "email": f.get("email"), "role": f.get("role") });
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            "/v1/members".into(),
            Some(body),
            f.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Members", &post.ctx.session, &a);
    }
    let m = if a.ok() {
        html! {
            p class="notice" role="status" { "Member added: " (text(&a.body["email"])) }
            @if let Some(link) = a.body["set_password_url"].as_str() {
                p { "Send them this one-time link to set their password (valid 24 hours, shown once):" }
                output class="secret" id="set-password-url" { (link) }
            }
        }
    } else {
        outcome(&a, "")
    };
    render(&post.ctx, "", Some((a, m))).await
}

pub async fn change_role(Path(id): Path<String>, post: Post) -> Response {
    let body = json!({ "role": post.form.get("role") });
    let a = post
        .ctx
        .call(Call::send(
            Method::PATCH,
            url("/v1/members", &[&id], &[]),
            Some(body),
            post.form.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Members", &post.ctx.session, &a);
    }
    let m = outcome(&a, "Role changed.");
    render(&post.ctx, "", Some((a, m))).await
}

pub async fn remove(Path(id): Path<String>, post: Post) -> Response {
    let a = post
        .ctx
        .call(Call::send(
            Method::DELETE,
            url("/v1/members", &[&id], &[]),
            None,
            post.form.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Members", &post.ctx.session, &a);
    }
    let m = outcome(&a, "Member removed.");
    render(&post.ctx, "", Some((a, m))).await
}
