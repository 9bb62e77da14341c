//! Time as the store keeps it (epoch milliseconds) and as the API shows it (RFC 3339, UTC).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339 as Rfc3339Format;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The application's clock (`AppState::clock`): the system's, moved by an offset that only
/// tests set, so that expiry can be tested without sleeping and without editing rows. Code
/// that decides with time it also stored (console sessions) reads this one; tokens verified
/// against the system clock elsewhere keep [`now_ms`].
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Milliseconds since the Unix epoch, as this clock reads them.
    pub fn now_ms(&self) -> i64 {
        now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `ms` (tests).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// `2026-11-22T18:30:13.123Z` for a stored time.
pub fn rfc3339(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Always three fractional digits and a `Z`: fixed width, so times sort as text.
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// Parses an RFC 3339 time (any offset) into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339Format).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A time given as RFC 3339 text (`2026-01-31T12:00:00Z`), parsed once where it arrives: a
/// body field or query parameter of this type refuses anything else with the field named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rfc3339(i64);

impl Rfc3339 {
    /// Epoch milliseconds.
    pub fn ms(self) -> i64 {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for Rfc3339 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        parse_rfc3339(&s).map(Rfc3339).ok_or_else(|| {
            serde::de::Error::custom("must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
        })
    }
}

/// Documented as what it parses: an RFC 3339 `date-time`.
impl utoipa::PartialSchema for Rfc3339 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .examples(["2026-01-31T12:00:00Z"])
            .into()
    }
}

impl utoipa::ToSchema for Rfc3339 {}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_runs_ahead_of_the_system() {
        let c = Clock::default();
        let before = c.now_ms();
        c.advance(31 * 60_000);
        let after = c.now_ms();
        assert!(after - before >= 31 * 60_000 && after - before < 32 * 60_000);
    }

    #[test]
    fn round_trips() {
        let ms = 1_764_000_000_123;
        let s = rfc3339(ms);
        assert_eq!(s, "2025-11-24T16:00:00.123Z");
        assert_eq!(parse_rfc3339(&s), Some(ms));
        assert_eq!(parse_rfc3339("2025-11-24T17:00:00.123+01:00"), Some(ms));
        assert_eq!(parse_rfc3339("tomorrow"), None);
        assert_eq!(rfc3339(1_764_000_000_000), "2025-11-24T16:00:00.000Z");
    }
}
