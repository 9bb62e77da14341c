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
        let ok = value.chars().count() <= EMAIL_MAX
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

/// The longest key of a free-form object.
pub const OBJECT_KEY_MAX: usize = 100;

/// The schema of a free-form object field (or `null`) of at most `max_keys` keys of 1 to
/// [`OBJECT_KEY_MAX`] characters; its size in bytes is for the description to say.
pub fn object_schema(
    max_keys: usize,
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .max_properties(Some(max_keys))
        .property_names(Some(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(OBJECT_KEY_MAX)),
        ))
        .description(Some(description))
        .into()
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
    if v.keys()
        .any(|k| k.is_empty() || k.chars().count() > OBJECT_KEY_MAX)
    {
        c.fail(field, "keys must be 1-100 characters");
    }
}

/// White space (Rust's `char::is_whitespace`) and control characters, as a regex class body.
const BLANK_OR_CONTROL: &str =
    r"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The longest email address accepted.
pub const EMAIL_MAX: usize = 254;

/// What [`Checks::email`] accepts: something before the first `@`, a domain with a dot
/// neither first nor last, no white space or control character anywhere.
pub fn email_pattern() -> String {
    let w = BLANK_OR_CONTROL;
    format!("^[^@{w}]+@[^.{w}][^{w}]*\\.[^{w}]*[^.{w}]$")
}

/// The schema of an email field (`schema_with`).
pub fn email_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(EMAIL_MAX))
        .pattern(Some(email_pattern()))
        .examples(["ada@example.com"])
        .into()
}

/// [`email_schema`], or `null`.
pub fn email_or_null() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::text::or_null(email_schema())
}

/// [`phone_schema`], or `null`.
pub fn phone_or_null() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::text::or_null(phone_schema())
}

/// The https URLs the document states for a URL field: a lowercase host name (no IP address,
/// no punycode label), an optional port (1-65535), and a path, query and fragment of URL characters. A
/// subset of what the URL parser takes, so every URL of this form parses.
pub const HTTPS_URL_PATTERN: &str = "^https://([a-z0-9]+(-[a-z0-9]+)*\\.){0,9}[a-z][a-z0-9]*(-[a-z0-9]+)*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?([/?#][A-Za-z0-9._~!$&'()*+,;=:@/?#%-]*)?$";

/// The URLs the document states for a webhook target: like [`HTTPS_URL_PATTERN`] without a
/// fragment, and plain `http` and IPv4 addresses are stated too, since a deployment that allows private targets
/// takes them (one that does not refuses them with 422, as the field's description says).
/// It is the stored form: a path always follows the authority and the query holds no `'`
/// (the parser adds the one and percent-encodes the other), so a URL of this form is its own
/// normalised form and a schema-valid URL never outgrows `maxLength` once normalised.
pub const WEBHOOK_URL_PATTERN: &str = "^https?://(([a-z0-9]+(-[a-z0-9]+)*\\.){0,9}[a-z][a-z0-9]*(-[a-z0-9]+)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*(\\?[A-Za-z0-9._~!$&()*+,;=:@/?%-]*)?$";

/// The schema of a webhook URL field (`schema_with`). The pattern is the stored, normalised
/// form; other spellings of a URL are accepted and normalised to it by
/// `webhooks::target::TargetUrl` (which refuses the ambiguous ones with its own messages), so
/// the pattern is marked [`NORMALISED`] and not enforced by the body's schema check.
pub fn webhook_url() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(URL_MAX))
        .pattern(Some(WEBHOOK_URL_PATTERN))
        .description(Some(
            "Stored in this normalised form; other spellings of the same URL (upper-case scheme \
             or host, a default port, dot segments) are accepted and normalised to it.",
        ))
        .extensions(Some(
            utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add(NORMALISED, true)
                .build(),
        ))
        .examples(["https://example.com/hooks/rampart"])
        .into()
}

/// Marks a string schema whose `pattern` is the form the server stores, not a condition on
/// input: the body's schema check leaves such patterns to the field's own parser.
pub const NORMALISED: &str = "x-rampart-normalised";

/// [`webhook_url`], or `null`.
pub fn webhook_url_or_null() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::text::or_null(webhook_url())
}

/// The longest URL accepted.
pub const URL_MAX: usize = 2048;

/// The schema of an https URL field, or `null` (`schema_with`).
pub fn https_url_or_null() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::text::or_null(https_url())
}

/// The schema of an https URL field (`schema_with`).
pub fn https_url() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(URL_MAX))
        .pattern(Some(HTTPS_URL_PATTERN))
        .examples(["https://example.com/hooks/rampart"])
        .into()
}

/// What [`check_phone`] accepts (with a length of 3 to 32).
pub const PHONE_PATTERN: &str = r"^\+?[ ()-]*[0-9][ ()-]*[0-9][ ()-]*[0-9][0-9 ()-]*$";

/// The schema of a phone field (`schema_with`).
pub fn phone_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(3))
        .max_length(Some(32))
        .pattern(Some(PHONE_PATTERN))
        .examples(["+14155550123"])
        .into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_and_phone_patterns_agree_with_the_checks() {
        let email = regex::Regex::new(&email_pattern()).unwrap();
        for e in [
            "a@b.c",
            "ada@example.com",
            "a@b@c.d",
            "@b.c",
            "a@.b",
            "a@b.",
            "a@bc",
            "a b@c.d",
            "a@b\u{a0}.c",
            "é@ü.fr",
            "a@b.c\u{7}",
            "a@b..c",
            "a@b.c\n",
        ] {
            let mut c = Checks::new();
            c.email("e", e);
            assert_eq!(email.is_match(e), c.is_empty(), "{e:?}");
        }
        // Every URL of the documented forms parses, with the parts the checks look at.
        let https = regex::Regex::new(HTTPS_URL_PATTERN).unwrap();
        let webhook = regex::Regex::new(WEBHOOK_URL_PATTERN).unwrap();
        for u in [
            "https://example.com/h",
            "https://a-b.example.com:65535/x?y=1",
            "http://127.0.0.1:9/h",
            "https://localhost:40123/hook",
            "https://1.2.3.4/",
            "https://a.1/",
            "https://xn--a.com/",
            "https://a.b/#frag",
            "https://a.b:65536/",
            "https://a.b:0/",
            "https://u:p@a.b/",
        ] {
            for re in [&https, &webhook] {
                if re.is_match(u) {
                    let p = reqwest::Url::parse(u).unwrap();
                    assert!(p.host_str().is_some() && p.username().is_empty(), "{u}");
                    assert!(p.port() != Some(0), "{u}");
                }
            }
            if webhook.is_match(u) {
                assert!(reqwest::Url::parse(u).unwrap().fragment().is_none(), "{u}");
            }
        }
        assert!(webhook.is_match("http://127.0.0.1:40123/hook"));
        // A webhook URL of the documented form is already normalised: storing it changes nothing.
        for u in [
            "http://a/",
            "http://a/?0",
            "https://a-b.example.com:8443/x/'y'?q=1&r=/?:@%zz",
            "https://1.2.3.4/%2",
        ] {
            assert!(webhook.is_match(u), "{u}");
            assert_eq!(reqwest::Url::parse(u).unwrap().as_str(), u);
        }
        for grows in ["http://a", "http://a?0", "https://a/?'"] {
            assert!(!webhook.is_match(grows), "{grows}");
            assert_ne!(reqwest::Url::parse(grows).unwrap().as_str(), grows);
        }
        assert!(https.is_match("https://cdn.example.com/logo.png"));
        let phone = regex::Regex::new(PHONE_PATTERN).unwrap();
        for p in [
            "+14155550123",
            "123",
            "12",
            "+1-2-3",
            "(1) 2 3",
            "++123",
            "1a23",
            "+",
            "1 2",
            "12345678901234567890123456789012",
            "123456789012345678901234567890123",
        ] {
            let mut c = Checks::new();
            check_phone(&mut c, "p", p);
            let by_schema = phone.is_match(p) && (3..=32).contains(&p.chars().count());
            assert_eq!(by_schema, c.is_empty(), "{p:?}");
        }
    }
}
