//! What console handlers take: [`Ctx`] (a live session, for pages) and [`Post`] (a live
//! session, a same-origin request and a valid CSRF token, with the form's fields).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::json;

use super::api::{self, Answer, Api, Call, Origin};
use super::html::{page_with_status, see_other};
use super::session::{self, Session};
use crate::access::principal::Actor;
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::state::AppState;

/// Largest console form accepted.
const FORM_LIMIT: usize = 64 * 1024;

/// A page request with a live session.
pub struct Ctx {
    pub app: AppState,
    pub api: Api,
    pub session: Session,
    pub origin: Origin,
}

impl Ctx {
    /// Sends a request to the API as the session's user.
    pub async fn call(&self, c: Call<'_>) -> Answer {
        api::call(&self.app, &self.api, Some(&self.session), &self.origin, c).await
    }
}

/// Loads the session of a request, or answers with the sign-in page.
async fn ctx_of(parts: &mut Parts, app: &AppState) -> Result<Ctx, Response> {
    let api = parts
        .extensions
        .get::<Api>()
        .cloned()
        .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
    match session::load(app, &parts.headers).await {
        Ok(Some(session)) => Ok(Ctx {
            app: app.clone(),
            api,
            session,
            origin: Origin::from_parts(parts),
        }),
        Ok(None) => Err(see_other("/console/login")),
        Err(e) => Err(crate::http::ApiError::from(e).into_response()),
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        ctx_of(parts, app).await
    }
}

/// A form's fields, in order (a name may repeat: checkboxes).
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn parse(bytes: &[u8]) -> Form {
        Form(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The form's `Idempotency-Key`.
    pub fn idem(&self) -> &str {
        self.get("idempotency_key")
    }
}

/// A state-changing request: same origin, a live session, and that session's CSRF token.
pub struct Post {
    pub ctx: Ctx,
    pub form: Form,
}

/// The refusal of a request that fails the origin or CSRF check (audited).
async fn forged(app: &AppState, meta: &RequestMeta, s: Option<&Session>, why: &str) -> Response {
    audit::record_alone(
        &app.db,
        meta,
        Entry::new(
            s.map(|s| &s.org_id),
            s.map_or(Actor::Anonymous, |s| Actor::User(s.user_id.clone())),
            "console.request_refused",
        )
        .outcome(Outcome::Denied)
        .details(json!({ "reason": why })),
    )
    .await;
    page_with_status(
        StatusCode::FORBIDDEN,
        "Request refused",
        None,
        html! {
            p { "This form could not be accepted (" (why) "). Go back, reload the page and try again." }
            p { a href="/console" { "Back to the console" } }
        },
    )
}

/// Whether the request comes from this server's own pages (see [`session::origin_ok`]).
pub async fn same_origin(app: &AppState, parts: &Parts) -> Result<(), Response> {
    if session::origin_ok(app, &parts.headers) {
        return Ok(());
    }
    Err(forged(
        app,
        &RequestMeta::from_parts(parts),
        None,
        "cross-origin request",
    )
    .await)
}

/// Reads a form body (`application/x-www-form-urlencoded`, bounded).
pub async fn read_form(body: axum::body::Body) -> Result<Form, Response> {
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    Ok(Form::parse(&bytes))
}

impl FromRequest<AppState> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        same_origin(app, &parts).await?;
        let ctx = ctx_of(&mut parts, app).await?;
        let form = read_form(body).await?;
        if !session::csrf_ok(&ctx.session, form.get("csrf")) {
            let meta = RequestMeta::from_parts(&parts);
            return Err(forged(
                app,
                &meta,
                Some(&ctx.session),
                "missing or wrong CSRF token",
            )
            .await);
        }
        Ok(Post { ctx, form })
    }
}
