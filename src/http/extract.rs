//! Extractors whose rejections are problems: [`Json`] (strict: content type, syntax → 400,
//! fields → 422 with paths, then the published schema, then [`Validate`]), [`Query`] and
//! [`Path`].

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
use super::serde_message::client_words;
use super::validate::Validate;

/// A JSON body, parsed strictly and validated.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate + utoipa::ToSchema + 'static,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = super::body::read(req).await?;
        let json = parse_json_value(&bytes)?;
        let schema_errors = super::schema_check::field_errors::<T>(&json)?;
        let value = from_json_value::<T>(json)?;
        super::schema_check::merge(value.validate(), schema_errors)?;
        Ok(Json(value))
    }
}

/// Parses a JSON body as [`parse_json`] does, then checks it against `T`'s published schema.
pub fn parse_checked_json<T>(bytes: &[u8]) -> Result<T, ApiError>
where
    T: DeserializeOwned + utoipa::ToSchema + 'static,
{
    let value = parse_json_value(bytes)?;
    let schema_errors = super::schema_check::field_errors::<T>(&value)?;
    let parsed = from_json_value::<T>(value)?;
    super::schema_check::merge(Ok(()), schema_errors)?;
    Ok(parsed)
}

/// Parses a JSON body: malformed → 400 `bad_request`; anything but an object, a NUL anywhere,
/// or the wrong shape → 422 `validation_failed` naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    from_json_value(parse_json_value(bytes)?)
}

/// The body as a JSON value: malformed → 400; not an object, a NUL anywhere or a key given
/// twice → 422. JSON has one kind of number, so an integral one written with a fraction or an
/// exponent (`10.0`, `1e1`) is read as the integer it is (JSON Schema's `integer` admits it).
pub fn parse_json_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    // Syntax first, so that malformed JSON is always 400 whatever its shape.
    let keys = serde_json::from_slice::<super::json_keys::UniqueKeys>(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not valid JSON: {}",
            client_words(&e.to_string())
        ))
    })?;
    super::json_text::require_object(bytes)?;
    super::json_text::refuse_nul(bytes)?;
    if let Some(field) = keys.duplicate {
        let message = "is given more than once".to_owned();
        return Err(ApiError::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError { field, message }],
        });
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_request("the body is not valid JSON"))?;
    super::json_keys::integral_numbers_as_integers(&mut value);
    Ok(value)
}

/// Deserializes a parsed body into `T`: the wrong shape → 422 naming the field.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = client_words(&e.into_inner().to_string());
        // serde names a missing field only in its message: "missing field `x`".
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
            .map(str::to_owned);
        let field = match (path.as_str(), missing) {
            (".", Some(m)) => m,
            (".", None) => String::new(),
            (p, Some(m)) => format!("{p}.{m}"),
            (p, None) => p.to_owned(),
        };
        ApiError::Validation {
            detail: if field.is_empty() {
                message.clone()
            } else {
                format!("{field}: {message}")
            },
            errors: vec![FieldError { field, message }],
        }
    })
}

/// Query parameters; a parse failure is 400 `bad_request` with serde's explanation.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(q));
        let v: T = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let msg = client_words(&e.into_inner().to_string());
            if path == "." || path.is_empty() {
                ApiError::bad_request(format!("invalid query: {msg}"))
            } else {
                ApiError::bad_request(format!("invalid query parameter {path}: {msg}"))
            }
        })?;
        v.validate().map_err(|e| match e {
            ApiError::Validation { detail, .. } => ApiError::bad_request(detail),
            other => other,
        })?;
        Ok(Query(v))
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// Path parameters. One that does not parse (an id of the wrong kind or shape) names nothing
/// that exists: 404 `not_found`, before any query runs.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// A JSON body that may be absent: an empty body is `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate + Default + utoipa::ToSchema + 'static,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (!req.headers().contains_key(header::CONTENT_TYPE)
                && !req.headers().contains_key(header::TRANSFER_ENCODING));
        if empty {
            return Ok(OptionalJson(T::default()));
        }
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| OptionalJson(v))
    }
}
