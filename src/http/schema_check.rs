//! Request bodies are checked against the very schema the OpenAPI document publishes for them
//! (JSON Schema 2020-12, compiled once per body type). A bound written on a field's schema
//! (`maxLength`, `pattern`, `maximum`, `maxItems` …) is therefore enforced by construction:
//! the document cannot promise less than the server refuses, nor more.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{Map, Value, json};

use super::error::{ApiError, FieldError};

type Validators = RwLock<HashMap<TypeId, Arc<jsonschema::Validator>>>;

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(Default::default)
}

/// `T`'s schema as a standalone JSON Schema document: a `$ref` to `T` beside the components
/// it refers to, at the same paths as in the OpenAPI document.
pub fn standalone_schema<T: utoipa::ToSchema>() -> Value {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    let mut schemas = Map::new();
    for (name, s) in nested {
        schemas.insert(name, serde_json::to_value(s).unwrap_or(Value::Null));
    }
    let name = T::name().to_string();
    schemas.insert(
        name.clone(),
        serde_json::to_value(<T as utoipa::PartialSchema>::schema()).unwrap_or(Value::Null),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": { "schemas": schemas },
    })
}

fn validator<T: utoipa::ToSchema + 'static>() -> Result<Arc<jsonschema::Validator>, ApiError> {
    let id = TypeId::of::<T>();
    if let Some(v) = validators().read().ok().and_then(|m| m.get(&id).cloned()) {
        return Ok(v);
    }
    // Formats are the types' own business (an `Rfc3339` parses its time); the schema's
    // keywords decide lengths, patterns, ranges, enums and shapes.
    let mut schema = standalone_schema::<T>();
    drop_normalised_patterns(&mut schema);
    let compiled = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|e| {
            ApiError::internal_msg(format!("the schema of a body does not compile: {e}"))
        })?;
    let compiled = Arc::new(compiled);
    if let Ok(mut m) = validators().write() {
        m.insert(id, compiled.clone());
    }
    Ok(compiled)
}

/// Removes the `pattern` of every schema marked [`super::validate::NORMALISED`]: its field's
/// parser accepts other spellings and stores them in that form.
fn drop_normalised_patterns(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get(super::validate::NORMALISED) == Some(&Value::Bool(true)) {
                map.remove("pattern");
            }
            map.values_mut().for_each(drop_normalised_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_normalised_patterns),
        _ => {}
    }
}

/// `a/b/0` (a JSON pointer) as the field names of `errors[]` read: `a.b[0]`.
fn field_name(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// What is wrong, in the words of the other field errors (never the schema's internals).
fn message(kind: &jsonschema::error::ValidationErrorKind) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match kind {
        K::MaxLength { limit } => format!("must be at most {limit} characters"),
        K::MinLength { limit: 1 } => "must not be empty".into(),
        K::MinLength { limit } => format!("must be at least {limit} characters"),
        K::Pattern { .. } => "is not in the accepted form (see the API reference)".into(),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::MaxItems { limit } => format!("must have at most {limit} entries"),
        K::MinItems { limit } => format!("must have at least {limit} entries"),
        K::MaxProperties { limit } => format!("must have at most {limit} keys"),
        K::Enum { options } => format!("must be one of {options}"),
        K::Required { property } => format!("{property} is required"),
        K::AdditionalProperties { unexpected } => {
            format!("unknown field(s): {}", unexpected.join(", "))
        }
        _ => "is not valid here".into(),
    }
}

/// Each field of the JSON `body` that breaks `T`'s published schema.
pub fn field_errors<T: utoipa::ToSchema + 'static>(
    body: &Value,
) -> Result<Vec<FieldError>, ApiError> {
    let v = validator::<T>()?;
    Ok(v.iter_errors(body)
        .map(|e| FieldError {
            field: field_name(e.instance_path().as_str()),
            message: message(e.kind()),
        })
        .collect())
}

/// One answer from the handler type's own checks and the schema's: the type's messages first
/// (they say most), then the schema's for every field they did not name.
pub fn merge(own: Result<(), ApiError>, schema: Vec<FieldError>) -> Result<(), ApiError> {
    let mut errors = match own {
        Ok(()) if schema.is_empty() => return Ok(()),
        Ok(()) => Vec::new(),
        Err(ApiError::Validation { errors, .. }) => errors,
        Err(other) if schema.is_empty() => return Err(other),
        Err(_) => Vec::new(),
    };
    for e in schema {
        if !errors.iter().any(|x| x.field == e.field) {
            errors.push(e);
        }
    }
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError::Validation { detail, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_field_names() {
        assert_eq!(field_name(""), "");
        assert_eq!(field_name("/name"), "name");
        assert_eq!(field_name("/events/3"), "events[3]");
        assert_eq!(field_name("/a~1b/c"), "a/b.c");
    }
}
