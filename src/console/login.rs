//! Sign-in, sign-out, setting a password with a link, and the live/test switch.
//!
//! Sign-in runs the API login's own check (`sessions::routes::verify_login`: the same limits,
//! the same failure audit) and then opens a console session instead of issuing tokens.

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::api::{self, Api, Call, Origin};
use super::extract::{Post, read_form, same_origin};
use super::html::{page, page_with_status, see_other, text_input};
use super::session;
use crate::access::client_ip::ClientIp;
use crate::access::principal::{Actor, Environment};
use crate::audit::{self, Entry, RequestMeta};
use crate::http::ApiError;
use crate::ids::OrgId;
use crate::sessions::routes::{Verified, chosen_org, verify_login};
use crate::state::AppState;

/// What the sign-in form shows again after a refusal.
#[derive(Default)]
struct Filled<'a> {
    email: &'a str,
    error: Option<String>,
    /// The user's orgs, once their password checked out and they belong to several.
    orgs: Vec<(OrgId, String)>,
}

fn login_page(status: StatusCode, f: &Filled<'_>) -> Response {
    page_with_status(
        status,
        "Sign in",
        None,
        html! {
            div class="card" {
                @if let Some(e) = &f.error { p class="alert" role="alert" { (e) } }
                form method="post" action="/console/login" {
                    (text_input("email", "Email", "email", f.email, true, &[]))
                    (text_input("password", "Password", "password", "", true, &[]))
                    @if !f.orgs.is_empty() {
                        label for="org_id" { "Organisation" }
                        select id="org_id" name="org_id" required {
                            @for (id, name) in &f.orgs {
                                option value=(id.as_str()) { (name) " (" (id.as_str()) ")" }
                            }
                        }
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

pub async fn form(State(app): State<AppState>, req: Request) -> Response {
    if let Ok(Some(_)) = session::load(&app, req.headers()).await {
        return see_other("/console");
    }
    login_page(StatusCode::OK, &Filled::default())
}

pub async fn submit(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = same_origin(&app, &parts).await {
        return r;
    }
    let form = match read_form(body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let meta = RequestMeta::from_parts(&parts);
    let ip = parts.extensions.get::<ClientIp>();
    let email = form.get("email");
    let refused = |status, error: String| {
        login_page(
            status,
            &Filled {
                email,
                error: Some(error),
                orgs: Vec::new(),
            },
        )
    };
    if email.is_empty() || email.len() > 254 || form.get("password").len() > 1024 {
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your email and password.".into(),
        );
    }
    let password = form.get("password").to_owned();
    let v = match verify_login(&app, &meta, ip, email, password, None).await {
        Ok(Ok(v)) => v,
        Ok(Err(limited)) => {
            let status = limited.status();
            return refused(
                status,
                "Too many sign-in attempts; wait a minute and retry.".into(),
            );
        }
        Err(e) => return refused(e.status(), e.problem().detail),
    };
    let named = OrgId::parse(form.get("org_id"));
    match chosen_org(&v.memberships, named.as_ref()) {
        Ok((org, _)) => open_session(&app, &meta, &v, &org).await,
        Err(ApiError::Invalid(..)) => {
            let orgs = org_names(&app, &v).await;
            login_page(
                StatusCode::OK,
                &Filled {
                    email,
                    error: Some("You belong to several organisations: choose one.".into()),
                    orgs,
                },
            )
        }
        Err(e) => refused(e.status(), e.problem().detail),
    }
}

async fn org_names(app: &AppState, v: &Verified) -> Vec<(OrgId, String)> {
    let mut out = Vec::new();
    for (id, _) in &v.memberships {
        let name = crate::orgs::get(&mut app.db.clone(), id)
            .await
            .ok()
            .flatten()
            .map_or_else(String::new, |o| o.name);
        out.push((id.clone(), name));
    }
    out
}

async fn open_session(app: &AppState, meta: &RequestMeta, v: &Verified, org: &OrgId) -> Response {
    let result: Result<String, ApiError> = async {
        let mut tx = app.db.begin().await?;
        let raw = session::create(app, &mut tx, &v.user.id, org).await?;
        audit::record(
            &mut tx,
            meta,
            Entry::new(Some(org), Actor::User(v.user.id.clone()), "auth.login")
                .details(json!({ "via": "console" })),
        )
        .await?;
        tx.commit().await?;
        Ok(raw)
    }
    .await;
    match result {
        Ok(raw) => {
            let mut res = see_other("/console");
            res.headers_mut()
                .insert(header::SET_COOKIE, session::set_cookie(app, &raw));
            res
        }
        Err(e) => e.into_response(),
    }
}

pub async fn logout(post: Post) -> Response {
    let ctx = &post.ctx;
    let s = &ctx.session;
    let result: Result<(), ApiError> = async {
        let mut tx = ctx.app.db.begin().await?;
        session::revoke(&mut tx, &s.id).await?;
        audit::record(
            &mut tx,
            &RequestMeta::system(),
            Entry::new(
                Some(&s.org_id),
                Actor::User(s.user_id.clone()),
                "auth.logout",
            )
            .details(json!({ "via": "console" })),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        return e.into_response();
    }
    let mut res = see_other("/console/login");
    res.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    res
}

pub async fn environment(post: Post) -> Response {
    let env = Environment::parse(post.form.get("environment")).unwrap_or(Environment::Live);
    let ctx = &post.ctx;
    if let Err(e) = session::set_environment(&mut ctx.app.db.clone(), &ctx.session.id, env).await {
        return ApiError::from(e).into_response();
    }
    see_other("/console")
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn set_password_page(status: StatusCode, token: &str, message: Option<Markup>) -> Response {
    page_with_status(
        status,
        "Set your password",
        None,
        html! {
            div class="card" {
                @if let Some(m) = message { (m) }
                form method="post" action="/console/set-password" {
                    input type="hidden" name="token" value=(token);
                    (text_input("password", "New password (at least 12 characters)", "password", "", true, &[]))
                    button type="submit" { "Set password" }
                }
            }
        },
    )
}

pub async fn set_password_form(Query(q): Query<TokenQuery>) -> Response {
    set_password_page(StatusCode::OK, &q.token, None)
}

/// Sets the password through the API's own route (`POST /v1/auth/set-password`).
pub async fn set_password(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = same_origin(&app, &parts).await {
        return r;
    }
    let Some(api) = parts.extensions.get::<Api>().cloned() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let form = match read_form(body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let origin = Origin::from_parts(&parts);
    let body = json!({ "token": form.get("token"), "password": form.0.iter().find(|(k, _)| k == "password").map_or("", |(_, v)| v.as_str()) });
    let answer = api::call(
        &app,
        &api,
        None,
        &origin,
        Call::send(
            axum::http::Method::POST,
            "/v1/auth/set-password".into(),
            Some(body),
            "",
        ),
    )
    .await;
    if answer.ok() {
        return page(
            "Password set",
            None,
            html! {
                p class="notice" { "Your password is set. Every earlier session was signed out." }
                p { a href="/console/login" { "Sign in" } }
            },
        );
    }
    let errors = answer.field_errors();
    let message = html! {
        p class="alert" role="alert" { (answer.detail()) }
        @for (_, m) in &errors { p class="error" { (m) } }
    };
    set_password_page(answer.status, form.get("token"), Some(message))
}
