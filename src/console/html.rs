//! The console's HTML: one layout, a nonce'd inline style (no script, no third-party asset),
//! the strict CSP every console response carries, and URL building. Every value goes through
//! maud, which escapes it; URLs are built from encoded parts, never concatenated from input.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Session;
use crate::access::principal::Environment;
use crate::http::middleware::csp_nonce;

/// The policy of a console page: only the page's own nonce'd style, forms posting to this
/// origin, no framing.
pub fn console_csp(nonce: &str) -> String {
    format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f6f7f9}
header{background:#14213d;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}
header a{color:#fff}
header .brand{font-weight:700;margin-right:auto}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem .9rem}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
a{color:#0b5cad}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #dde1e6;vertical-align:top;overflow-wrap:anywhere}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:1rem;margin:0 0 1rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem}
form.inline{display:inline}
label{display:block;font-weight:600;margin:.5rem 0 .2rem}
input,select,textarea{font:inherit;padding:.45rem;border:1px solid #8a939e;border-radius:4px;width:100%;max-width:32rem}
input[type=checkbox]{width:auto}
button{font:inherit;padding:.45rem .9rem;border-radius:4px;border:1px solid #0b5cad;background:#0b5cad;color:#fff;cursor:pointer;margin:.4rem .4rem .4rem 0}
button.secondary{background:#fff;color:#0b5cad}
button.danger{background:#b42318;border-color:#b42318}
:focus-visible{outline:3px solid #f5a524;outline-offset:2px}
.error{color:#b42318;font-weight:600}
.notice{background:#e7f3e8;border:1px solid #7bb77f;padding:.75rem;border-radius:4px;margin-bottom:1rem}
.alert{background:#fdecea;border:1px solid #e4a39c;padding:.75rem;border-radius:4px;margin-bottom:1rem}
.secret{font-family:ui-monospace,monospace;background:#fff8db;padding:.5rem;border:1px dashed #b08900;display:block;overflow-wrap:anywhere}
.muted{color:#5b6570}
.badge{display:inline-block;padding:0 .4rem;border-radius:3px;background:#e8ebef;color:#1b1f24;font-size:.85rem}
header .muted{color:#d5dbe3}
svg{max-height:16rem}
meter{display:block;width:100%;height:1.1rem;margin:.2rem 0}
.usage{margin-bottom:.6rem}
.usage label{font-weight:600;margin:0}
.usage p{margin:.1rem 0}
.test{background:#fff3cd;color:#5c4400}
.scroll{overflow-x:auto}
.scroll table{min-width:40rem}
@media (max-width:40rem){th,td{padding:.35rem .3rem;font-size:.92rem}main{padding:.6rem}}
"#;

/// A full console page.
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> Response {
    page_with_status(StatusCode::OK, title, session, body)
}

pub fn page_with_status(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: Markup,
) -> Response {
    let nonce = csp_nonce();
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rampart console" }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
            }
            body {
                (chrome(session))
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut res = (status, axum::response::Html(doc.into_string())).into_response();
    res.extensions_mut()
        .insert(crate::http::error::HtmlErrorPage);
    if let Ok(v) = HeaderValue::from_str(&console_csp(&nonce)) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    // The origin only, never a path or query (a set-password link's token stays put), and
    // the `Origin` of form posts stays this origin rather than `null`.
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin"),
    );
    res
}

/// The header: brand, navigation, the live/test switch and sign-out.
fn chrome(session: Option<&Session>) -> Markup {
    html! {
        header {
            a class="brand" href="/console" { "Rampart console" }
            @if let Some(s) = session {
                nav aria-label="Main" {
                    ul {
                        li { a href="/console" { "Overview" } }
                        li { a href="/console/api-keys" { "API keys" } }
                        li { a href="/console/webhooks" { "Webhooks" } }
                        li { a href="/console/dead-letters" { "Dead letters" } }
                        li { a href="/console/contacts" { "Contacts" } }
                        li { a href="/console/conversations" { "Conversations" } }
                        li { a href="/console/messages" { "Messages" } }
                        li { a href="/console/scheduled" { "Scheduled" } }
                        li { a href="/console/members" { "Members" } }
                        li { a href="/console/audit" { "Audit log" } }
                        li { a href="/console/branding" { "Branding" } }
                        li { a href="/console/gdpr" { "GDPR" } }
                        li { a href="/console/exports" { "Exports" } }
                    }
                }
                form class="inline" method="post" action="/console/environment" {
                    (csrf_field(s))
                    @let (other, label) = match s.environment {
                        Environment::Live => ("test", "Switch to test data"),
                        Environment::Test => ("live", "Switch to live data"),
                    };
                    input type="hidden" name="environment" value=(other);
                    span class={ "badge" @if s.environment == Environment::Test { " test" } } {
                        (s.environment.as_str())
                    }
                    " "
                    button class="secondary" type="submit" { (label) }
                }
                form class="inline" method="post" action="/console/logout" {
                    (csrf_field(s))
                    span class="muted" { (s.email) " · " (s.role.as_str()) } " "
                    button class="secondary" type="submit" { "Sign out" }
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A fresh `Idempotency-Key` for one form: a resubmitted form replays the first answer.
pub fn idempotency_field() -> Markup {
    html! { input type="hidden" name="idempotency_key" value=(uuid::Uuid::now_v7().to_string()); }
}

/// A redirect after a POST (303: the browser follows with a GET).
pub fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Percent-encodes one path segment (every byte but the unreserved ones).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base` followed by encoded path segments and an encoded query (pairs with empty values
/// are left out).
pub fn url(base: &str, segments: &[&str], query: &[(&str, &str)]) -> String {
    let mut u = base.to_owned();
    for s in segments {
        u.push('/');
        u.push_str(&segment(s));
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in query.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
        any = true;
    }
    if any {
        u.push('?');
        u.push_str(&q.finish());
    }
    u
}

/// Field errors of a problem document, beside their fields.
pub fn field_error(errors: &[(String, String)], field: &str) -> Markup {
    html! {
        @for (f, m) in errors.iter().filter(|(f, _)| f == field) {
            p class="error" id={ "err-" (f) } { (m) }
        }
    }
}

/// A labelled text input, with its errors.
pub fn text_input(
    name: &str,
    label: &str,
    kind: &str,
    value: &str,
    required: bool,
    errors: &[(String, String)],
) -> Markup {
    html! {
        label for=(name) { (label) }
        input id=(name) name=(name) type=(kind) value=(value) required[required];
        (field_error(errors, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded_part_by_part() {
        assert_eq!(
            url(
                "/console",
                &["webhooks", "ep_1/../x"],
                &[("q", "a&b=c"), ("cursor", "")]
            ),
            "/console/webhooks/ep_1%2F..%2Fx?q=a%26b%3Dc"
        );
    }
}
