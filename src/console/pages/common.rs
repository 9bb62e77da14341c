//! Pieces every page uses: refusals, pagination, and whether to offer a write control.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use crate::access::grants::{Permission, Scope};
use crate::console::api::{Answer, Call};
use crate::console::extract::Ctx;
use crate::console::html::{page_with_status, url};
use crate::console::session::Session;
use serde::Deserialize;

/// Whether to show a write control: what the session's role grants, read from the one role
/// table (`access::grants`). Only a display choice: the API route decides.
pub fn can(s: &Session, scope: Scope, perm: Permission) -> bool {
    s.role.grants().allows(scope, perm)
}

/// The page for an API refusal (403, 404, …), with the API's own words.
pub fn refused(title: &str, s: &Session, a: &Answer) -> Response {
    let status = if a.status.is_success() {
        StatusCode::BAD_GATEWAY
    } else {
        a.status
    };
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => title,
    };
    page_with_status(
        status,
        heading,
        Some(s),
        html! {
            p class="alert" role="alert" { (a.detail()) }
            p { a href="/console" { "Back to the overview" } }
        },
    )
}

/// Whether the API refused the caller (rather than the input): the refusal is the page.
pub fn denied(a: &Answer) -> bool {
    matches!(a.status.as_u16(), 401 | 403 | 404)
}

/// An outcome box after an action: the API's answer in words.
pub fn outcome(a: &Answer, done: &str) -> Markup {
    html! {
        @if a.ok() {
            p class="notice" role="status" { (done) }
        } @else {
            p class="alert" role="alert" { (a.detail()) }
            @for (f, m) in a.field_errors() { p class="error" { (f) ": " (m) } }
        }
    }
}

/// "Next page" when the API returned a cursor.
pub fn pager(base: &str, next: Option<&str>, keep: &[(&str, &str)]) -> Markup {
    let Some(c) = next else {
        return html! {};
    };
    let mut q: Vec<(&str, &str)> = keep.to_vec();
    q.push(("cursor", c));
    html! { p { a href=(url(base, &[], &q)) { "Next page →" } } }
}

/// The text of a JSON value for a table cell.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An empty state.
pub fn empty(what: &str) -> Markup {
    html! { p class="muted" { (what) } }
}

/// A list page's query: where its API list resumes.
#[derive(Deserialize, Default)]
pub struct CursorQuery {
    #[serde(default)]
    pub cursor: String,
}

/// 50 rows of the API list `api_path` from `cursor`, and the next cursor; or the page for
/// the API's refusal, titled `title`.
pub async fn list_rows(
    ctx: &Ctx,
    title: &str,
    api_path: &str,
    cursor: &str,
) -> Result<(Vec<Value>, Option<String>), Response> {
    let a = ctx
        .call(Call::get(url(
            api_path,
            &[],
            &[("limit", "50"), ("cursor", cursor)],
        )))
        .await;
    if !a.ok() {
        return Err(refused(title, &ctx.session, &a));
    }
    Ok(a.page())
}
