//! Cursor pagination: `?limit=` 1..=100 (default 20) and `?cursor=`; responses are
//! `{data, next_cursor}`. Lists are ordered newest first by id (ids sort by creation time), and
//! the cursor is the last id seen, so rows inserted while a client pages never shift a page.
//!
//! [`Limit`] and [`Cursor`] are the query parameter types every list parses; their OpenAPI
//! schemas come from the same constants, so the document states exactly what is accepted.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use super::error::ApiError;
use super::validate::Validate;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The smallest, largest and default page size.
pub const LIMIT_MIN: i64 = 1;
pub const LIMIT_MAX: i64 = 100;
pub const LIMIT_DEFAULT: i64 = 20;

/// What a cursor looks like: the last id of the previous page (every id has a short
/// lowercase prefix and a 26-character Crockford base32 body).
pub const CURSOR_PATTERN: &str = "^[a-z]{1,8}_[0-9a-hjkmnp-tv-z]{26}$";

/// `?limit=`: a page size from [`LIMIT_MIN`] to [`LIMIT_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(i64);

impl Limit {
    pub fn get(self) -> i64 {
        self.0
    }

    pub fn parse(s: &str) -> Result<Limit, String> {
        match s.parse::<i64>() {
            Ok(n) if (LIMIT_MIN..=LIMIT_MAX).contains(&n) => Ok(Limit(n)),
            _ => Err(format!(
                "limit must be an integer from {LIMIT_MIN} to {LIMIT_MAX}; got {s:?}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Limit::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(LIMIT_MIN as f64))
            .maximum(Some(LIMIT_MAX as f64))
            .default(Some(LIMIT_DEFAULT.into()))
            .description(Some(format!(
                "page size, {LIMIT_MIN} to {LIMIT_MAX} (default {LIMIT_DEFAULT})"
            )))
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

/// `?cursor=`: `next_cursor` of the previous page. Empty means the first page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(Option<String>);

impl Cursor {
    pub fn parse(c: &str) -> Result<Cursor, String> {
        if c.is_empty() {
            return Ok(Cursor(None));
        }
        decode_cursor(c)
            .map(|id| Cursor(Some(id)))
            .ok_or_else(|| "cursor is not a cursor this API returned".to_owned())
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cursor::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Cursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(CURSOR_PATTERN))
            .description(Some("next_cursor of the previous page"))
            .into()
    }
}

impl utoipa::ToSchema for Cursor {}

/// The paging parameters of a list: the whole query of a list without filters, or built by a
/// list's own query struct from its fields.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(inline)]
    pub limit: Option<Limit>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

impl Validate for PageQuery {}

/// Validated paging: how many, and the id to continue below.
#[derive(Debug, Clone)]
pub struct PageParams {
    pub limit: i64,
    pub after: Option<String>,
}

impl PageQuery {
    /// The page to fetch. Infallible now that both parameters are parsed where they arrive;
    /// kept a `Result` so that list handlers read the same.
    pub fn parse(self) -> Result<PageParams, ApiError> {
        Ok(PageParams {
            limit: self.limit.map_or(LIMIT_DEFAULT, Limit::get),
            after: self.cursor.and_then(|c| c.0),
        })
    }
}

/// The cursor that continues after `id`: the id itself.
pub fn encode_cursor(id: &str) -> String {
    id.to_owned()
}

/// The id a cursor continues after. Besides the documented form (an id), the base64 form
/// earlier versions returned is still read, so a client paging across an upgrade goes on.
fn decode_cursor(c: &str) -> Option<String> {
    let id_shaped = |id: &str| {
        !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if is_documented_cursor(c) {
        return Some(c.to_owned());
    }
    let raw = B64.decode(c).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let id = s.strip_prefix("v1:")?;
    id_shaped(id).then(|| id.to_owned())
}

/// Whether `c` matches [`CURSOR_PATTERN`] (checked by hand: a prefix of 1-8 lowercase letters,
/// `_`, and 26 characters of the id alphabet).
fn is_documented_cursor(c: &str) -> bool {
    let Some((prefix, body)) = c.split_once('_') else {
        return false;
    };
    (1..=8).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_lowercase())
        && body.len() == 26
        && body
            .bytes()
            .all(|b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b))
}

/// One page of results.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items (the extra one says there is more).
    pub fn from_rows(mut items: Vec<T>, limit: i64, id_of: impl Fn(&T) -> &str) -> Page<T> {
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more {
            items.last().map(|t| encode_cursor(id_of(t)))
        } else {
            None
        };
        Page {
            data: items,
            next_cursor,
        }
    }

    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            data: self.data.into_iter().map(f).collect::<Result<_, E>>()?,
            next_cursor: self.next_cursor,
        })
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        assert_eq!(Limit::parse("1").unwrap().get(), 1);
        assert_eq!(Limit::parse("100").unwrap().get(), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            let e = Limit::parse(bad).unwrap_err();
            assert!(e.contains("from 1 to 100"), "{bad}");
        }
        let c = encode_cursor("con_01jd5m0k9q8x7v6t5s4r3p2n1m");
        let p = PageQuery {
            limit: None,
            cursor: Some(Cursor::parse(&c).unwrap()),
        }
        .parse()
        .unwrap();
        assert_eq!(p.after.as_deref(), Some("con_01jd5m0k9q8x7v6t5s4r3p2n1m"));
        assert_eq!(p.limit, LIMIT_DEFAULT);
        // The base64 form earlier versions returned still reads.
        let legacy = B64.encode("v1:con_01abc");
        assert_eq!(
            Cursor::parse(&legacy).unwrap().0.as_deref(),
            Some("con_01abc")
        );
        assert_eq!(Cursor::parse("").unwrap().0, None);
        for bad in ["garbage!", "con_short", "CON_01jd5m0k9q8x7v6t5s4r3p2n1m"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_documented_cursor_pattern_is_what_the_parser_accepts() {
        let re = regex::Regex::new(CURSOR_PATTERN).unwrap();
        for c in [
            "con_01jd5m0k9q8x7v6t5s4r3p2n1m",
            "lease_01jd5m0k9q8x7v6t5s4r3p2n1m",
            "a_00000000000000000000000000",
            "con_01jd5m0k9q8x7v6t5s4r3p2n1",
            "con_01jd5m0k9q8x7v6t5s4r3p2n1i",
            "abcdefghi_01jd5m0k9q8x7v6t5s4r3p2n1m",
        ] {
            assert_eq!(re.is_match(c), is_documented_cursor(c), "{c}");
            if re.is_match(c) {
                assert!(Cursor::parse(c).is_ok(), "{c}");
            }
        }
    }
}
