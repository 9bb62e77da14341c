//! `?q=`: a list's text search. A substring, matched case-insensitively (`lower()` on both
//! sides: ASCII letters on SQLite, every letter on Postgres) with `LIKE … ESCAPE '\'`. The
//! text only ever travels as a bind: [`Search::pattern`] escapes the wildcards `%` and `_` (and
//! the escape character itself), so a search for `50%` finds "50%" and nothing else.
//!
//! A substring search cannot use a B-tree index: it reads the tenant's rows newest first
//! (through the `(org_id, environment, id)` index) until a page is full, which is fast while
//! matches are common and grows with the tenant's rows when they are rare.

use std::borrow::Cow;

use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::text::Line;

/// The longest search accepted, in characters.
pub const MAX_CHARS: usize = 100;

/// A search: one line of 1 to [`MAX_CHARS`] characters, with no white space at either end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search(Line<1, MAX_CHARS>);

impl Search {
    pub fn parse(s: &str) -> Result<Search, String> {
        Line::parse(s).map(Search)
    }

    /// The `LIKE` pattern that finds the text anywhere (the queries say `ESCAPE '\'`).
    pub fn pattern(&self) -> String {
        let mut p = String::with_capacity(self.0.len() + 2);
        p.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    }
}

impl<'de> Deserialize<'de> for Search {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Search::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Search {
    fn schema() -> RefOr<Schema> {
        <Line<1, MAX_CHARS> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Search {
    fn name() -> Cow<'static, str> {
        "Search".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_escaped() {
        let p = |s: &str| Search::parse(s).unwrap().pattern();
        assert_eq!(p("ada"), "%ada%");
        assert_eq!(p("50%"), "%50\\%%");
        assert_eq!(p("a_b\\c"), "%a\\_b\\\\c%");
        assert!(Search::parse("").is_err());
        assert!(Search::parse(" ada").is_err());
        assert!(Search::parse(&"x".repeat(MAX_CHARS + 1)).is_err());
    }
}
