//! Rules every JSON body follows before it is read into its type: it is an object (never
//! positional fields in an array), and no string or key in it holds U+0000, which Postgres
//! cannot store in text or jsonb. Refusing NUL at the edge makes the two stores accept the same
//! data, so a SQLite backup always restores into Postgres.

use serde_json::Value;

use super::error::{ApiError, FieldError};

/// 422 unless the body's top-level value is an object.
pub fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::Validation {
            detail: "the body must be a JSON object".to_owned(),
            errors: vec![FieldError {
                field: String::new(),
                message: "the body must be a JSON object".to_owned(),
            }],
        }),
    }
}

/// 422 naming the field if any string or key holds NUL. JSON can only carry NUL as the escape
/// `\u0000`, so bodies without that text (nearly all) are not walked.
pub fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    // The text may be an escaped backslash followed by "u0000": walk the value to be sure.
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    match nul_path(&value, String::new()) {
        Some(field) => Err(ApiError::field(
            &field,
            "must not contain a NUL character (U+0000)",
        )),
        None => Ok(()),
    }
}

/// The path (`a.b[2]`) of the first string or key holding NUL.
fn nul_path(v: &Value, at: String) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let here = if at.is_empty() {
                k.replace('\0', "\\u0000")
            } else {
                format!("{at}.{}", k.replace('\0', "\\u0000"))
            };
            if k.contains('\0') {
                return Some(here);
            }
            nul_path(item, here)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        match refuse_nul(body.as_bytes()) {
            Ok(()) => None,
            Err(ApiError::Validation { errors, .. }) => Some(errors[0].field.clone()),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nul_is_found_in_strings_and_keys_at_any_depth() {
        assert_eq!(
            field_of(r#"{"email":"a\u0000b"}"#).as_deref(),
            Some("email")
        );
        assert_eq!(
            field_of(r#"{"attributes":{"tags":["x","\u0000"]}}"#).as_deref(),
            Some("attributes.tags[1]")
        );
        assert_eq!(
            field_of(r#"{"metadata":{"k\u0000":1}}"#).as_deref(),
            Some("metadata.k\\u0000")
        );
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_text_not_nul() {
        assert_eq!(field_of(r#"{"note":"C:\\u0000"}"#), None);
    }

    #[test]
    fn only_objects_are_bodies() {
        assert!(require_object(br#" {"a":1}"#).is_ok());
        for bad in [r#"["k","Ada",null]"#, "\"text\"", "1", "null", "true"] {
            assert!(require_object(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
