//! Field validation: DTOs implement [`Validate`] and collect every failing field at once.

use super::error::{ApiError, FieldError};

pub trait Validate {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Collects field errors; `finish` turns them into one 422 `validation_failed`.
#[derive(Default, Debug)]
pub struct Checks {
    errors: Vec<FieldError>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.fail(field, message);
        }
    }

    /// Length in characters (not bytes), inclusive bounds.
    pub fn len(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min || n > max {
            if min == max {
                self.fail(field, format!("must be exactly {min} characters"));
            } else if min > 0 && n < min {
                self.fail(field, format!("must be between {min} and {max} characters"));
            } else {
                self.fail(field, format!("must be at most {max} characters"));
            }
        }
    }

    pub fn opt_len(&mut self, field: &str, value: Option<&String>, min: usize, max: usize) {
        if let Some(v) = value {
            self.len(field, v, min, max);
        }
    }

    /// No control characters (they corrupt logs and terminals).
    pub fn printable(&mut self, field: &str, value: &str) {
        if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        let ok = value.len() <= 254
            && value.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
            })
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        self.check(ok, field, "must be an email address");
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let detail = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ApiError::Validation {
            detail,
            errors: self.errors,
        })
    }
}

impl Validate for serde_json::Value {}
impl Validate for () {}

/// For PATCH bodies: distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`). Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// Checks a free-form JSON object: at most `max_keys` keys and `max_bytes` serialized.
pub fn check_object(
    c: &mut Checks,
    field: &str,
    v: &serde_json::Map<String, serde_json::Value>,
    max_keys: usize,
    max_bytes: usize,
) {
    if v.len() > max_keys {
        c.fail(field, format!("must have at most {max_keys} keys"));
    }
    let size = serde_json::Value::Object(v.clone()).to_string().len();
    if size > max_bytes {
        c.fail(
            field,
            format!("must be at most {max_bytes} bytes as JSON (is {size})"),
        );
    }
    if v.keys().any(|k| k.is_empty() || k.chars().count() > 100) {
        c.fail(field, "keys must be 1-100 characters");
    }
}

/// A phone number: optional `+`, then 3-32 digits, spaces, dashes or parentheses.
pub fn check_phone(c: &mut Checks, field: &str, v: &str) {
    let body = v.strip_prefix('+').unwrap_or(v);
    let ok = (3..=32).contains(&v.len())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b" -()".contains(&b))
        && body.bytes().filter(u8::is_ascii_digit).count() >= 3;
    c.check(ok, field, "must be a phone number such as +14155550123");
}
