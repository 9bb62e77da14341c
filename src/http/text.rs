//! Bounded text, declared once with its bounds: [`Line`] for query and path parameters (parsed
//! into the type), [`line`], [`label`] and [`text`] for the schemas of body fields (the body is checked
//! against the published schema, see [`super::schema_check`]). Either way the document states
//! the very bounds the server enforces, and an over-long value is a 4xx.

use std::borrow::Cow;

use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Characters that are never accepted in text: C0 and C1 controls (they corrupt logs and
/// terminals; NUL cannot be stored on Postgres). Written for ECMA 262, Python and Rust regex.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// White space as Rust's `char::is_whitespace` knows it, minus the controls above.
const SPACE: &str = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// One line: no control characters (what `Checks::printable` accepts).
pub fn line_pattern() -> String {
    format!("^[^{CONTROL}]*$")
}

/// One line with no white space at either end: keys and filters.
pub fn trimmed_pattern() -> String {
    format!("^(?:[^{CONTROL}{SPACE}](?:[^{CONTROL}]*[^{CONTROL}{SPACE}])?)?$")
}

/// One line that is not blank: names.
pub fn label_pattern() -> String {
    format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$")
}

/// Free text (a message body): anything but NUL, and not blank.
pub fn text_pattern() -> String {
    // Blank is Rust's white space: the SPACE class and the five ASCII controls \t to \r, U+0085.
    format!(r"^[^\u0000]*[^\u0000\u0009-\u000d\u0085{SPACE}][^\u0000]*$")
}

/// Whether `s` is one line in the sense of [`line_pattern`].
pub fn is_line(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Whether `s` is a trimmed line in the sense of [`trimmed_pattern`].
pub fn is_trimmed(s: &str) -> bool {
    is_line(s) && s.trim() == s
}

/// Whether `s` is a label in the sense of [`label_pattern`].
pub fn is_label(s: &str) -> bool {
    is_line(s) && !s.trim().is_empty()
}

/// Whether `s` is free text in the sense of [`text_pattern`].
pub fn is_text(s: &str) -> bool {
    !s.contains('\0') && !s.trim().is_empty()
}

fn bounded(min: usize, max: usize, pattern: String) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .into()
}

/// `schema`, or `null` (an `Option` field: `null` clears it or stands for absent).
pub fn or_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut o)) => {
            o.schema_type =
                utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]);
            RefOr::T(Schema::Object(o))
        }
        other => other,
    }
}

/// The schema of a trimmed one-line body field of `MIN..=MAX` characters (`schema_with`).
pub fn trimmed<const MIN: usize, const MAX: usize>() -> RefOr<Schema> {
    bounded(MIN, MAX, trimmed_pattern())
}

/// [`line`], or `null`.
pub fn line_or_null<const MIN: usize, const MAX: usize>() -> RefOr<Schema> {
    or_null(line::<MIN, MAX>())
}

/// [`label`], or `null`.
pub fn label_or_null<const MIN: usize, const MAX: usize>() -> RefOr<Schema> {
    or_null(label::<MIN, MAX>())
}

/// The schema of a one-line body field of `MIN..=MAX` characters (`schema_with`).
pub fn line<const MIN: usize, const MAX: usize>() -> RefOr<Schema> {
    bounded(MIN, MAX, line_pattern())
}

/// The schema of a non-blank one-line body field of `MIN..=MAX` characters (`schema_with`).
pub fn label<const MIN: usize, const MAX: usize>() -> RefOr<Schema> {
    bounded(MIN, MAX, label_pattern())
}

/// The schema of a free-text body field of `MIN..=MAX` characters (`schema_with`).
pub fn text<const MIN: usize, const MAX: usize>() -> RefOr<Schema> {
    bounded(MIN, MAX, text_pattern())
}

/// A query or path parameter of `MIN..=MAX` characters on one line, parsed where it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<const MIN: usize, const MAX: usize>(String);

impl<const MIN: usize, const MAX: usize> Line<MIN, MAX> {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n < MIN || n > MAX {
            return Err(format!("must be {MIN} to {MAX} characters"));
        }
        if !is_trimmed(s) {
            return Err(
                "must not contain control characters nor start or end with white space".into(),
            );
        }
        Ok(Line(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<const MIN: usize, const MAX: usize> std::ops::Deref for Line<MIN, MAX> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Line<MIN, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Line::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<const MIN: usize, const MAX: usize> utoipa::PartialSchema for Line<MIN, MAX> {
    fn schema() -> RefOr<Schema> {
        bounded(MIN, MAX, trimmed_pattern())
    }
}

impl<const MIN: usize, const MAX: usize> utoipa::ToSchema for Line<MIN, MAX> {
    fn name() -> Cow<'static, str> {
        format!("Line{MIN}to{MAX}").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &[&str] = &[
        "",
        "a",
        " a",
        "a ",
        "a b",
        "a\tb",
        "a\nb",
        "\n",
        " ",
        "\u{a0}x",
        "x\u{3000}",
        "\u{85}",
        "\u{feff}",
        "é",
        "🙂",
        "a\u{7f}",
        "a\u{9f}b",
        "a\u{a0}b",
        "\u{1c}",
        "a\r\n",
        "x\u{2028}",
        "\0",
        "a\0b",
    ];

    #[test]
    fn the_patterns_agree_with_the_checks() {
        type Rule = (String, fn(&str) -> bool);
        let rules: [Rule; 4] = [
            (line_pattern(), is_line),
            (trimmed_pattern(), is_trimmed),
            (label_pattern(), is_label),
            (text_pattern(), is_text),
        ];
        for (pattern, check) in rules {
            let re = regex::Regex::new(&pattern).unwrap();
            for s in SAMPLES {
                assert_eq!(re.is_match(s), check(s), "{pattern} {s:?}");
            }
        }
    }

    #[test]
    fn lines_are_bounded_in_characters() {
        assert!(Line::<1, 3>::parse("").is_err());
        assert!(Line::<1, 3>::parse("äöü").is_ok());
        assert!(Line::<1, 3>::parse("abcd").is_err());
        assert!(Line::<0, 3>::parse(" a").is_err());
    }
}
