//! Webhook endpoints: where events (kind `events`) or outbound messages (kind `channel`) go.
//! Secrets are encrypted at rest, bound to the endpoint id; a rotated-out secret keeps signing
//! until its overlap window ends. Deliveries to them live in [`crate::deliveries`], failed ones
//! in [`crate::dead_letters`].

pub mod routes;
pub mod signing;
pub mod store;
pub mod target;

use serde::{Deserialize, Serialize};

use crate::access::principal::Environment;
use crate::access::secrets::Keys;
use crate::clock::{now_ms, rfc3339};
use crate::events::is_valid_pattern;
use crate::http::validate::nullable;
use crate::http::{ApiError, Checks, Validate};
use crate::ids::{EndpointId, OrgId};
use crate::store::JsonText;

crate::text_enum::text_enum! {
    /// What an endpoint receives.
    pub enum EndpointKind {
        /// Events it subscribes to.
        Events = "events",
        /// The org's outbound messages (one per org).
        Channel = "channel",
    }
}

crate::text_enum::text_enum! {
    /// Whether an endpoint receives deliveries.
    pub enum EndpointStatus {
        Active = "active",
        /// Held back by its owner: deliveries wait.
        Paused = "paused",
        /// Answered 410 Gone, or deleted: deliveries become dead letters.
        Disabled = "disabled",
        /// Kept exhausting its retry budget: events become open dead letters until re-enabled.
        Failed = "failed",
    }
}

/// An endpoint as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Endpoint {
    pub id: EndpointId,
    pub org_id: OrgId,
    pub environment: Environment,
    pub kind: EndpointKind,
    pub url: String,
    pub description: Option<String>,
    pub events: JsonText<Vec<String>>,
    pub max_retries: i64,
    pub rate_limit: Option<i64>,
    pub status: EndpointStatus,
    pub status_reason: Option<String>,
    pub consecutive_failures: i64,
    pub created_at: i64,
    pub updated_at: i64,
    secret_enc: String,
    previous_secret_enc: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
}

impl Endpoint {
    /// The keys that sign a delivery now: the current secret, and the previous one while its
    /// overlap window lasts.
    pub fn signing_secrets(&self, keys: &Keys, now: i64) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(2);
        let open = |enc: &str| {
            keys.decrypt(enc, self.id.as_str())
                .and_then(|s| String::from_utf8(s).ok())
                .and_then(|s| signing::secret_bytes(&s))
        };
        if let Some(s) = open(&self.secret_enc) {
            out.push(s);
        }
        if let (Some(prev), Some(until)) =
            (&self.previous_secret_enc, self.previous_secret_expires_at)
            && until > now
            && let Some(s) = open(prev)
        {
            out.push(s);
        }
        out
    }

    /// The current secret's ciphertext (kept as the previous one on rotation).
    pub fn secret_ciphertext(&self) -> &str {
        &self.secret_enc
    }
}

/// The range of an endpoint's `max_retries`.
pub fn retry_bounds() -> std::ops::RangeInclusive<i64> {
    0..=i64::from(crate::jobs::retry::MAX_RETRIES)
}

/// A new endpoint, validated.
pub struct NewEndpoint<'a> {
    pub id: &'a EndpointId,
    pub kind: EndpointKind,
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub events: &'a [String],
    pub max_retries: i64,
    pub rate_limit: Option<i64>,
    pub secret_enc: &'a str,
}

/// A partial update; `None` keeps a field.
#[derive(Default)]
pub struct Patch {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    pub max_retries: Option<i64>,
    pub rate_limit: Option<Option<i64>>,
    pub status: Option<EndpointStatus>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// https URL (plain http only where private targets are allowed), stored normalised.
    #[schema(schema_with = crate::http::validate::webhook_url)]
    pub url: String,
    /// Event types or wildcards (`message.*`, `*`); at least one unless `kind` is `channel`
    /// (ignored there).
    #[serde(default)]
    #[schema(value_type = Vec<crate::events::EventPattern>, max_items = 50)]
    pub events: Vec<String>,
    /// Retries after the first attempt, 0..=20 (default 12).
    #[schema(minimum = 0, maximum = 20)]
    pub max_retries: Option<i64>,
    #[schema(schema_with = crate::http::text::line_or_null::<0, 500>)]
    pub description: Option<String>,
    /// `events` (default) or `channel` (outbound messages).
    pub kind: Option<EndpointKind>,
    /// Deliveries per second, 1..=10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<i64>,
}

fn check_events(c: &mut Checks, events: &[String], required: bool) {
    if required && events.is_empty() {
        c.fail("events", "at least one event type is required");
    }
    if events.len() > 50 {
        c.fail("events", "at most 50 entries");
    }
    for (i, e) in events.iter().enumerate() {
        c.check(
            is_valid_pattern(e),
            &format!("events[{i}]"),
            format!("{e:?} is not an event type of the catalog"),
        );
    }
}

fn check_common(
    c: &mut Checks,
    max_retries: Option<i64>,
    rate_limit: Option<i64>,
    description: Option<&str>,
) {
    if let Some(m) = max_retries {
        c.check(
            retry_bounds().contains(&m),
            "max_retries",
            format!("must be between 0 and {}", retry_bounds().end()),
        );
    }
    if let Some(r) = rate_limit {
        c.check(
            (1..=10_000).contains(&r),
            "rate_limit",
            "must be between 1 and 10000 deliveries per second",
        );
    }
    if let Some(d) = description {
        c.len("description", d, 0, 500);
        c.printable("description", d);
    }
}

impl Validate for EndpointIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        let kind = self.kind.unwrap_or(EndpointKind::Events);
        check_events(&mut c, &self.events, kind == EndpointKind::Events);
        check_common(
            &mut c,
            self.max_retries,
            self.rate_limit,
            self.description.as_deref(),
        );
        c.finish()
    }
}

/// The statuses a client may set: re-enable, or pause.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettableStatus {
    Active,
    Paused,
}

impl From<SettableStatus> for EndpointStatus {
    fn from(s: SettableStatus) -> EndpointStatus {
        match s {
            SettableStatus::Active => EndpointStatus::Active,
            SettableStatus::Paused => EndpointStatus::Paused,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchIn {
    #[schema(schema_with = crate::http::validate::webhook_url_or_null)]
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<crate::events::EventPattern>>, min_items = 1, max_items = 50)]
    pub events: Option<Vec<String>>,
    #[schema(minimum = 0, maximum = 20)]
    pub max_retries: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::http::text::line_or_null::<0, 500>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<Option<i64>>,
    /// `active` (re-enable) or `paused`.
    pub status: Option<SettableStatus>,
}

impl Validate for EndpointPatchIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        if let Some(e) = &self.events {
            check_events(&mut c, e, true);
        }
        check_common(
            &mut c,
            self.max_retries,
            self.rate_limit.flatten(),
            self.description.clone().flatten().as_deref(),
        );
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointOut {
    pub id: EndpointId,
    pub object: &'static str,
    pub url: String,
    pub kind: EndpointKind,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub max_retries: i64,
    pub rate_limit: Option<i64>,
    pub status: EndpointStatus,
    pub status_reason: Option<String>,
    pub livemode: bool,
    /// While a rotated-out secret still signs.
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub previous_secret_expires_at: Option<String>,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub updated_at: String,
}

impl From<&Endpoint> for EndpointOut {
    fn from(e: &Endpoint) -> Self {
        EndpointOut {
            id: e.id.clone(),
            object: "webhook_endpoint",
            url: e.url.clone(),
            kind: e.kind,
            description: e.description.clone(),
            events: e.events.0.clone(),
            max_retries: e.max_retries,
            rate_limit: e.rate_limit,
            status: e.status,
            status_reason: e.status_reason.clone(),
            livemode: e.environment.is_live(),
            previous_secret_expires_at: e
                .previous_secret_expires_at
                .filter(|t| *t > now_ms())
                .map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointSecretOut {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    /// `whsec_…`: shown in this response only.
    pub secret: String,
}
