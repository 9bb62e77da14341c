//! Branding: the white-label name, colours and logo of an org's status page.

pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::http::{ApiError, Checks, Validate};

/// An org's branding as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Branding {
    pub name: String,
    pub primary_color: Option<String>,
    pub accent_color: Option<String>,
    pub logo_url: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandingIn {
    #[schema(schema_with = crate::http::text::line::<1, 100>)]
    pub name: String,
    /// `#rrggbb`
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub primary_color: Option<String>,
    /// `#rrggbb`
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub accent_color: Option<String>,
    /// An https URL of an image.
    #[schema(schema_with = crate::http::validate::https_url_or_null)]
    pub logo_url: Option<String>,
}

fn is_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl Validate for BrandingIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
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
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub updated_at: Option<String>,
}
