//! The OpenAPI 3.1 document, generated from the route registry: every route with its guard
//! profile, parameters, body, success response and every error response its profile can
//! produce. DTO schemas come from `utoipa::ToSchema` derives on the types the handlers use.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::{ErrorCode, Problem};
use super::routes::{AuthKind, Billing, Idempotency, RateClass, Route};

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn problem_ref() -> Value {
    json!({ "$ref": "#/components/schemas/Problem" })
}

/// Every error a route can answer, by status: what the edge refuses on any route, what its
/// profile's guards, its body and its parameters imply, and its handler's own rules.
fn error_responses(route: &Route) -> BTreeMap<u16, Vec<(ErrorCode, &'static str)>> {
    use ErrorCode as E;
    let p = &route.profile;
    let d = &route.docs;
    let mut out: Vec<(ErrorCode, &'static str)> = vec![
        (
            E::BadRequest,
            "malformed percent-encoding, or NUL, in the path or query",
        ),
        (E::UriTooLong, "the path and query exceed 8 KiB"),
        (E::HeadersTooLarge, "the request headers are too large"),
        (
            E::PayloadTooLarge,
            "a declared Content-Length over the body limit",
        ),
        (E::InternalError, "unexpected; quote the request id"),
        (
            E::RequestTimeout,
            "the request took longer than the server allows",
        ),
        (
            E::ServiceUnavailable,
            "a dependency is unavailable; retry later",
        ),
    ];
    if d.query.is_some() {
        out.push((E::BadRequest, "a query parameter is unknown or invalid"));
    }
    if !path_params(route.path).is_empty() {
        out.push((
            E::NotFound,
            "no such object in this org (also a malformed id)",
        ));
    }
    if !p.auth.is_empty() {
        out.push((
            E::Unauthenticated,
            "no credentials, or an invalid or expired token",
        ));
        if p.auth.contains(&AuthKind::ApiKey) {
            out.push((E::InvalidApiKey, "the API key is unknown or malformed"));
            out.push((E::ApiKeyRevoked, "the API key was revoked"));
            out.push((E::ApiKeyExpired, "the API key has expired"));
        }
        out.push((E::TenantMismatch, "the identity belongs to another tenant"));
        out.push((
            E::InsufficientScope,
            "the credential lacks the route's scope",
        ));
        out.push((
            E::InsufficientPermission,
            "the credential lacks the route's permission",
        ));
        out.push((
            E::InsufficientRole,
            "the user's role is below what the route needs",
        ));
        out.push((E::NotFound, "no such object in this org"));
        if p.billing != Billing::None {
            out.push((
                E::SubscriptionInactive,
                "the org's subscription is not active",
            ));
            out.push((
                E::TierInsufficient,
                "the org's plan tier does not include this route",
            ));
        }
    }
    match p.rate_limit {
        RateClass::None => {}
        RateClass::PublicIp => out.push((E::RateLimited, "too many requests from this address")),
        RateClass::Principal => {
            out.push((E::RateLimited, "too many requests; see Retry-After"));
            out.push((
                E::QuotaExceeded,
                "the period's quota is used up; see Retry-After",
            ));
        }
    }
    if p.idempotency != Idempotency::None {
        out.push((E::BadRequest, "a malformed Idempotency-Key"));
        if p.idempotency == Idempotency::Required {
            out.push((E::IdempotencyKeyRequired, "no Idempotency-Key"));
        }
        out.push((
            E::IdempotencyInFlight,
            "a request with this key is still running",
        ));
        out.push((
            E::IdempotencyKeyReused,
            "this key was used with another request",
        ));
    }
    if route.method != axum::http::Method::GET {
        out.push((
            E::Conflict,
            "it conflicts with an existing object or a concurrent write",
        ));
    }
    if d.body.is_some() {
        out.push((E::BadRequest, "the body is not valid JSON"));
        out.push((E::BodyTimeout, "the body did not arrive in time"));
        out.push((E::PayloadTooLarge, "the body exceeds the size limit"));
        out.push((E::UnsupportedMediaType, "the body is not application/json"));
        out.push((
            E::ValidationFailed,
            "the body is not an object, or a field is invalid (errors[] names it)",
        ));
    }
    out.extend(d.errors.iter().copied());
    let mut by_status: BTreeMap<u16, Vec<(ErrorCode, &'static str)>> = BTreeMap::new();
    for (code, when) in out {
        let list = by_status.entry(code.status().as_u16()).or_default();
        if !list.iter().any(|(c, w)| *c == code && *w == when) {
            list.push((code, when));
        }
    }
    by_status
}

/// The description of one error response: each code with when it is answered.
fn error_description(codes: &[(ErrorCode, &'static str)]) -> String {
    codes
        .iter()
        .map(|(c, when)| format!("`{c}`: {when}."))
        .collect::<Vec<_>>()
        .join(" ")
}

fn operation(route: &Route, components: &mut Vec<(String, Value)>) -> Value {
    let p = &route.profile;
    let mut params: Vec<Value> = path_params(route.path)
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            // Undeclared, a path parameter is still bounded by the request target's limit.
            let schema = match route.docs.path.get(i) {
                Some(f) => f(components),
                None => json!({ "type": "string", "maxLength": super::edge::MAX_URI_BYTES }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    if let Some(query) = &route.docs.query {
        params.extend(query());
    }
    for h in &route.docs.headers {
        params.push(json!({
            "name": h.name, "in": "header", "required": h.required,
            "description": h.description,
            "schema": serde_json::to_value((h.schema)()).unwrap_or(Value::Null),
        }));
    }
    if p.idempotency != Idempotency::None {
        params.push(json!({
            "name": "Idempotency-Key", "in": "header",
            "required": p.idempotency == Idempotency::Required,
            "description": "A retry with the same key and payload replays the first response. \
                Printable ASCII, as the bare token shown or as a quoted structured-field string.",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": crate::traffic::idempotency::KEY_MAX_LEN,
                "pattern": crate::traffic::idempotency::KEY_PATTERN,
            }
        }));
    }

    let mut responses = Map::new();
    let ok_desc = match route.docs.ok_status {
        201 => "Created.",
        202 => "Accepted.",
        204 => "No content.",
        _ => "OK.",
    };
    let ok = match (&route.docs.ok, route.docs.list) {
        (Some(f), true) => {
            let item = f(components);
            Some(json!({
                "type": "object",
                "required": ["data", "next_cursor"],
                "properties": {
                    "data": { "type": "array", "items": item },
                    "next_cursor": { "type": ["string", "null"], "description": "pass as ?cursor= for the next page" }
                }
            }))
        }
        (Some(f), false) => Some(f(components)),
        (None, _) => None,
    };
    let ct = route.docs.ok_content_type.unwrap_or("application/json");
    let mut ok_resp = json!({ "description": ok_desc });
    if let Some(schema) = ok {
        ok_resp["content"] = json!({ ct: { "schema": schema } });
    } else if route.docs.ok_content_type.is_some() {
        ok_resp["content"] = json!({ ct: {} });
    }
    if p.rate_limit != RateClass::None {
        ok_resp["headers"] = json!({
            "RateLimit-Policy": { "schema": { "type": "string" }, "description": "IETF httpapi RateLimit policy" },
            "RateLimit": { "schema": { "type": "string" }, "description": "remaining quota in the current window" }
        });
    }
    responses.insert(route.docs.ok_status.to_string(), ok_resp);
    for (status, codes) in error_responses(route) {
        responses.insert(
            status.to_string(),
            json!({
                "description": error_description(&codes),
                "content": { "application/problem+json": { "schema": problem_ref() } }
            }),
        );
    }

    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.docs.summary,
        "tags": [if route.docs.tag.is_empty() { "meta" } else { route.docs.tag }],
        "parameters": params,
        "responses": responses,
        "x-rampart-profile": serde_json::to_value(&route.profile).unwrap_or(Value::Null),
    });
    if let Some(body) = &route.docs.body {
        op["requestBody"] = json!({
            "required": !route.docs.body_optional,
            "content": { "application/json": { "schema": body(components) } }
        });
    }
    let security: Vec<Value> = p
        .auth
        .iter()
        .map(|k| match k {
            AuthKind::User => json!({ "userToken": [] }),
            AuthKind::ApiKey => json!({ "apiKey": [] }),
        })
        .collect();
    op["security"] = Value::Array(security);
    op
}

/// The whole document.
pub fn document(routes: &[Route], version: &str) -> Value {
    let mut components: Vec<(String, Value)> = Vec::new();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for r in routes {
        let op = operation(r, &mut components);
        paths
            .entry(r.path)
            .or_default()
            .insert(r.method.as_str().to_ascii_lowercase(), op);
    }
    let mut schemas = Map::new();
    schemas.insert(
        "Problem".into(),
        serde_json::to_value(<Problem as utoipa::PartialSchema>::schema()).unwrap_or(Value::Null),
    );
    let mut nested = Vec::new();
    <Problem as utoipa::ToSchema>::schemas(&mut nested);
    for (n, s) in nested {
        schemas.insert(n, serde_json::to_value(s).unwrap_or(Value::Null));
    }
    for (name, schema) in components {
        schemas.entry(name).or_insert(schema);
    }
    let codes: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| json!({ "code": c, "status": c.status().as_u16(), "meaning": c.meaning() }))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Rampart API",
            "version": version,
            "description": "Hardened API runtime for multi-tenant messaging. Errors are RFC 9457 problem documents with a stable `code` (see x-rampart-error-codes). No string in a request may hold NUL (U+0000): in a path or query it is 400, in a body 422 naming the field. Request bodies are checked against the schemas below, so every bound they state is enforced; numbers are JSON numbers (an integer may be written `3.0`), and a key given twice in one object is 422.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "userToken": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "access_token from POST /v1/auth/login" },
                "apiKey": { "type": "http", "scheme": "bearer", "description": "an API key, rk_live_… or rk_test_…" }
            }
        },
        "x-rampart-error-codes": codes,
    })
}
