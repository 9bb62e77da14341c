//! `GET/PUT /v1/branding`: the white-label name, colours and logo of an org's status page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, Checks, Json, Validate};
use crate::store::sql;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/branding",
            Profile::users(Scope::Org, Permission::Read).billing(Billing::Standard),
            get_branding,
        )
        .summary("The org's white-label branding")
        .tag("enterprise")
        .returns::<BrandingOut>(200),
        Route::put(
            "/v1/branding",
            Profile::users(Scope::Org, Permission::Write).audited(),
            put_branding,
        )
        .summary("Set the org's white-label branding (status page name, colours, logo)")
        .tag("enterprise")
        .body::<BrandingIn>()
        .returns::<BrandingOut>(200),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandingIn {
    pub name: String,
    /// `#rrggbb`
    pub primary_color: Option<String>,
    /// `#rrggbb`
    pub accent_color: Option<String>,
    /// An https URL of an image.
    pub logo_url: Option<String>,
}

fn is_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl Validate for BrandingIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.len("name", &self.name, 1, 100);
        c.printable("name", &self.name);
        for (f, v) in [
            ("primary_color", &self.primary_color),
            ("accent_color", &self.accent_color),
        ] {
            if let Some(v) = v {
                // Colours go into the page's style sheet: nothing but #rrggbb is accepted.
                c.check(is_color(v), f, "must be a colour such as #1d4ed8");
            }
        }
        if let Some(u) = &self.logo_url {
            let ok = u.len() <= 2048
                && reqwest::Url::parse(u).is_ok_and(|p| {
                    p.scheme() == "https" && p.host_str().is_some() && p.username().is_empty()
                });
            c.check(ok, "logo_url", "must be an https URL");
        }
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrandingOut {
    pub object: &'static str,
    pub name: Option<String>,
    pub primary_color: Option<String>,
    pub accent_color: Option<String>,
    pub logo_url: Option<String>,
    /// The white-labelled status page of this org.
    pub status_page_url: String,
    pub updated_at: Option<String>,
}

async fn load(app: &AppState, p: &Principal) -> ApiResult<BrandingOut> {
    let row = sql("SELECT name, primary_color, accent_color, logo_url, updated_at FROM branding WHERE org_id = $1")
        .bind(&p.org)
        .fetch_optional(&mut app.db.clone())
        .await?;
    let url = format!("{}/status?org={}", app.config.base_url(), p.org);
    Ok(match row {
        Some(r) => BrandingOut {
            object: "branding",
            name: r.get("name")?,
            primary_color: r.get("primary_color")?,
            accent_color: r.get("accent_color")?,
            logo_url: r.get("logo_url")?,
            status_page_url: url,
            updated_at: Some(rfc3339(r.get("updated_at")?)),
        },
        None => BrandingOut {
            object: "branding",
            name: None,
            primary_color: None,
            accent_color: None,
            logo_url: None,
            status_page_url: url,
            updated_at: None,
        },
    })
}

async fn get_branding(
    p: Principal,
    State(app): State<AppState>,
) -> ApiResult<axum::Json<BrandingOut>> {
    Ok(axum::Json(load(&app, &p).await?))
}

async fn put_branding(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(b): Json<BrandingIn>,
) -> ApiResult<Response> {
    let mut tx = app.db.begin().await?;
    sql("INSERT INTO branding (org_id, name, primary_color, accent_color, logo_url, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org_id) DO UPDATE SET name = excluded.name, primary_color = excluded.primary_color,
             accent_color = excluded.accent_color, logo_url = excluded.logo_url, updated_at = excluded.updated_at")
        .bind(&p.org)
        .bind(b.name.trim())
        .bind(b.primary_color.clone())
        .bind(b.accent_color.clone())
        .bind(b.logo_url.clone())
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "branding.updated").details(json!({ "name": b.name })),
    )
    .await?;
    let url = format!("{}/status?org={}", app.config.base_url(), p.org);
    let out = BrandingOut {
        object: "branding",
        name: Some(b.name.trim().to_owned()),
        primary_color: b.primary_color,
        accent_color: b.accent_color,
        logo_url: b.logo_url,
        status_page_url: url,
        updated_at: Some(rfc3339(now_ms())),
    };
    idem.commit(tx, StatusCode::OK, &out).await
}
