//! Webhook endpoints: list, create, detail with the delivery log (every attempt) and resend of
//! one delivery, edit, pause/resume, rotate the secret, send a test event — through
//! `/v1/webhooks`.

use std::collections::HashMap;

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

const BASE: &str = "/console/webhooks";

pub async fn list(ctx: Ctx, Query(q): Query<CursorQuery>) -> Response {
    render_list(&ctx, &q.cursor, None).await
}

async fn render_list(ctx: &Ctx, cursor: &str, after: Option<(Answer, Markup)>) -> Response {
    let (rows, next) = match list_rows(ctx, "Webhooks", "/v1/webhooks", cursor).await {
        Ok(page) => page,
        Err(refusal) => return refusal,
    };
    // Each endpoint's success rate over the last 24 hours, counted by the API.
    let stats = ctx
        .call(Call::get("/v1/webhooks/delivery-stats?hours=24".into()))
        .await;
    if !stats.ok() {
        return refused("Webhooks", &ctx.session, &stats);
    }
    let rates = success_rates(&stats.body);
    let s = &ctx.session;
    let errors = after
        .as_ref()
        .map(|x| x.0.field_errors())
        .unwrap_or_default();
    page(
        "Webhook endpoints",
        Some(s),
        html! {
            @if let Some((_, m)) = &after { (m) }
            @if rows.is_empty() { (empty("No endpoints yet.")) } @else {
                div class="scroll" { table {
                    thead { tr {
                        th { "URL" } th { "Status" } th { "Success (24 h)" } th { "Events" }
                        th { "Description" }
                    } }
                    tbody { @for e in &rows {
                        tr {
                            td { a href=(url(BASE, &[&text(&e["id"])], &[])) { (text(&e["url"])) } }
                            td { (text(&e["status"])) }
                            td { (rate(rates.get(e["id"].as_str().unwrap_or_default()))) }
                            td { (events(e)) }
                            td { (text(&e["description"])) }
                        }
                    } }
                } }
            }
            (pager(BASE, next.as_deref(), &[]))
            @if can(s, Scope::Webhooks, Permission::Write) {
                h2 { "Add an endpoint" }
                form class="card" method="post" action=(BASE) {
                    (csrf_field(s)) (idempotency_field())
                    label for="url" { "URL" }
                    input id="url" name="url" type="url" required;
                    (field_error(&errors, "url"))
                    label for="description" { "Description" }
                    input id="description" name="description" maxlength="500";
                    (field_error(&errors, "description"))
                    label for="events" { "Events (comma-separated, * for all)" }
                    input id="events" name="events" value="*" required;
                    (field_error(&errors, "events"))
                    button type="submit" { "Add endpoint" }
                }
            }
        },
    )
}

/// Endpoint id → (succeeded, failed, success rate), from a `delivery_stats` answer.
fn success_rates(stats: &Value) -> HashMap<String, (i64, i64, f64)> {
    let mut rates = HashMap::new();
    for e in stats["endpoints"].as_array().into_iter().flatten() {
        if let (Some(id), Some(ok), Some(failed), Some(rate)) = (
            e["endpoint_id"].as_str(),
            e["succeeded"].as_i64(),
            e["failed"].as_i64(),
            e["success_rate"].as_f64(),
        ) {
            rates.insert(id.to_owned(), (ok, failed, rate));
        }
    }
    rates
}

/// "98.5 % of 200", or "no attempts".
fn rate(r: Option<&(i64, i64, f64)>) -> Markup {
    match r {
        Some((ok, failed, rate)) => html! {
            (format!("{:.1} %", rate * 100.0))
            span class="muted" { (format!(" of {}", ok + failed)) }
        },
        None => html! { span class="muted" { "no attempts" } },
    }
}

fn events(e: &Value) -> String {
    e["events"]
        .as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn split_events(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn create(post: Post) -> Response {
    let f = &post.form;
    let mut body = json!({ "url": f.get("url"), "events": split_events(f.get("events")) });
    if !f.get("description").is_empty() {
        body["description"] = json!(f.get("description"));
    }
    let a = post
        .ctx
        .call(Call::send(
            Method::POST,
            "/v1/webhooks".into(),
            Some(body),
            f.idem(),
        ))
        .await;
    if denied(&a) {
        return refused("Webhooks", &post.ctx.session, &a);
    }
    if !a.ok() {
        let m = outcome(&a, "");
        return render_list(&post.ctx, "", Some((a, m))).await;
    }
    let id = text(&a.body["id"]);
    let m = html! {
        p class="notice" role="status" { "Endpoint created. Its signing secret, shown once:" }
        output class="secret" id="secret" { (text(&a.body["secret"])) }
    };
    render_detail(&post.ctx, &id, "", Some(m)).await
}

pub async fn detail(ctx: Ctx, Path(id): Path<String>, Query(q): Query<CursorQuery>) -> Response {
    render_detail(&ctx, &id, &q.cursor, None).await
}

async fn render_detail(ctx: &Ctx, id: &str, cursor: &str, note: Option<Markup>) -> Response {
    let e = ctx.call(Call::get(url("/v1/webhooks", &[id], &[]))).await;
    if !e.ok() {
        return refused("Endpoint", &ctx.session, &e);
    }
    let log = ctx
        .call(Call::get(url(
            "/v1/webhooks",
            &[id, "deliveries"],
            &[("limit", "50"), ("cursor", cursor)],
        )))
        .await;
    let (attempts, next) = log.page();
    let s = &ctx.session;
    let here = url(BASE, &[id], &[]);
    let resend = resendable(s, &e.body);
    // One button per delivery, on its newest attempt (the log is newest first).
    let mut offered = std::collections::HashSet::new();
    page(
        "Endpoint",
        Some(s),
        html! {
            @if let Some(n) = note { (n) }
            div class="card" {
                p { strong { "URL: " } (text(&e.body["url"])) }
                p { strong { "Description: " } (text(&e.body["description"])) }
                p { strong { "Events: " } (events(&e.body)) }
                p { strong { "Status: " } (text(&e.body["status"])) " " span class="muted" { (text(&e.body["status_reason"])) } }
            }
            @if can(s, Scope::Webhooks, Permission::Write) { (controls(s, &here, &e.body)) }
            h2 { "Delivery log" }
            @if attempts.is_empty() { (empty("No delivery attempts yet.")) } @else {
                div class="scroll" { table {
                    thead { tr {
                        th { "Time" } th { "Event" } th { "Attempt" } th { "Status" } th { "Latency" } th { "Response" } th { "Error" }
                        @if resend { th { "Actions" } }
                    } }
                    tbody { @for t in &attempts {
                        @let delivery = text(&t["delivery_id"]);
                        tr {
                            td { (text(&t["created_at"])) }
                            td { (text(&t["event_type"])) }
                            td { (text(&t["attempt"])) }
                            td { (text(&t["status_code"])) }
                            td { (text(&t["latency_ms"])) " ms" }
                            td { code { (text(&t["response_excerpt"])) } }
                            td { (text(&t["error"])) }
                            @if resend {
                                td { @if offered.insert(delivery.clone()) {
                                    form class="inline" method="post" action=(url(BASE, &[id, "deliveries", &delivery, "resend"], &[])) {
                                        (csrf_field(s)) (idempotency_field())
                                        button class="secondary" type="submit" aria-label=(format!("Resend delivery {delivery}")) { "Resend" }
                                    }
                                } }
                            }
                        }
                    } }
                } }
            }
            (pager(&here, next.as_deref(), &[]))
        },
    )
}

/// Whether to offer "Resend" on this endpoint's deliveries: the role may write webhooks and
/// the API would take it (an events endpoint that is active or paused). A display choice only.
fn resendable(s: &Session, e: &Value) -> bool {
    can(s, Scope::Webhooks, Permission::Write)
        && e["kind"] != "channel"
        && (e["status"] == "active" || e["status"] == "paused")
}

fn controls(s: &Session, here: &str, e: &Value) -> Markup {
    let paused = e["status"] != "active";
    html! {
        h2 { "Manage" }
        form class="card" method="post" action=(format!("{here}/edit")) {
            (csrf_field(s)) (idempotency_field())
            label for="url" { "URL" }
            input id="url" name="url" type="url" value=(text(&e["url"])) required;
            label for="description" { "Description" }
            input id="description" name="description" value=(text(&e["description"])) maxlength="500";
            button type="submit" { "Save" }
        }
        form class="inline" method="post" action=(format!("{here}/status")) {
            (csrf_field(s)) (idempotency_field())
            input type="hidden" name="status" value=(if paused { "active" } else { "paused" });
            button class="secondary" type="submit" { (if paused { "Resume" } else { "Pause" }) }
        }
        form class="inline" method="post" action=(format!("{here}/rotate-secret")) {
            (csrf_field(s)) (idempotency_field())
            button class="secondary" type="submit" { "Rotate secret" }
        }
        form class="inline" method="post" action=(format!("{here}/test")) {
            (csrf_field(s)) (idempotency_field())
            button class="secondary" type="submit" { "Send test event" }
        }
    }
}

async fn act(post: &Post, id: &str, call: Call<'_>, done: &str) -> Response {
    let a = post.ctx.call(call).await;
    if denied(&a) {
        return refused("Endpoint", &post.ctx.session, &a);
    }
    let mut note = outcome(&a, done);
    if a.ok()
        && let Some(secret) = a.body["secret"].as_str()
    {
        note = html! { (note) output class="secret" id="secret" { (secret) } };
    }
    render_detail(&post.ctx, id, "", Some(note)).await
}

pub async fn edit(Path(id): Path<String>, post: Post) -> Response {
    let f = &post.form;
    let description = Some(f.get("description")).filter(|d| !d.is_empty());
    let body = json!({ "url": f.get("url"), "description": description });
    let call = Call::send(
        Method::PATCH,
        url("/v1/webhooks", &[&id], &[]),
        Some(body),
        f.idem(),
    );
    act(&post, &id, call, "Saved.").await
}

pub async fn status(Path(id): Path<String>, post: Post) -> Response {
    let f = &post.form;
    let body = json!({ "status": f.get("status") });
    let call = Call::send(
        Method::PATCH,
        url("/v1/webhooks", &[&id], &[]),
        Some(body),
        f.idem(),
    );
    act(&post, &id, call, "Status changed.").await
}

pub async fn rotate_secret(Path(id): Path<String>, post: Post) -> Response {
    let call = Call::send(
        Method::POST,
        url("/v1/webhooks", &[&id, "rotate-secret"], &[]),
        None,
        post.form.idem(),
    );
    act(&post, &id, call, "Secret rotated; the new one, shown once:").await
}

pub async fn test(Path(id): Path<String>, post: Post) -> Response {
    let call = Call::send(
        Method::POST,
        url("/v1/webhooks", &[&id, "test"], &[]),
        None,
        post.form.idem(),
    );
    act(&post, &id, call, "Test event sent.").await
}

pub async fn resend(Path((id, delivery)): Path<(String, String)>, post: Post) -> Response {
    let call = Call::send(
        Method::POST,
        url(
            "/v1/webhooks",
            &[&id, "deliveries", &delivery, "resend"],
            &[],
        ),
        None,
        post.form.idem(),
    );
    act(
        &post,
        &id,
        call,
        "Resend queued: the event goes to the endpoint again as a new delivery.",
    )
    .await
}
