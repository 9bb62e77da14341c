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

fn error_responses(route: &Route) -> Vec<(u16, &'static str)> {
    let p = &route.profile;
    let mut out = vec![(
        400,
        "The query, path or body could not be parsed (`bad_request`).",
    )];
    if !p.auth.is_empty() {
        out.push((401, "Missing or invalid credentials (`unauthenticated`, `invalid_api_key`, `api_key_revoked`, `api_key_expired`)."));
        out.push((403, "Refused by a guard (`tenant_mismatch`, `insufficient_scope`, `insufficient_permission`, `insufficient_role`, `tier_insufficient`)."));
    }
    if p.billing != Billing::None && !p.auth.is_empty() {
        out.push((
            402,
            "The org's subscription is not active (`subscription_inactive`).",
        ));
    }
    if path_params(route.path).iter().any(|_| true) || !p.auth.is_empty() {
        out.push((404, "No such object in this org (`not_found`)."));
    }
    if p.idempotency != Idempotency::None {
        out.push((409, "A request with this Idempotency-Key is still running (`idempotency_in_flight`), or a conflict."));
    }
    if route.docs.body.is_some() {
        out.push((
            413,
            "The body exceeds the size limit (`payload_too_large`).",
        ));
        out.push((415, "The body is not JSON (`unsupported_media_type`)."));
    }
    if route.docs.body.is_some() || p.idempotency != Idempotency::None {
        out.push((
            422,
            "A field failed validation (`validation_failed` with `errors[]`, or a rule code).",
        ));
    }
    if p.rate_limit != RateClass::None {
        out.push((
            429,
            "Rate limit or quota reached (`rate_limited`, `quota_exceeded`); see `Retry-After`.",
        ));
    }
    out.push((
        500,
        "Unexpected error (`internal_error`); quote the request id.",
    ));
    out.push((503, "A dependency is unavailable or the request timed out (`service_unavailable`, `request_timeout`)."));
    out
}

fn operation(route: &Route, components: &mut Vec<(String, Value)>) -> Value {
    let p = &route.profile;
    let mut params: Vec<Value> = path_params(route.path)
        .into_iter()
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
        })
        .collect();
    for (name, ty, desc) in &route.docs.params {
        params.push(json!({
            "name": name, "in": "query", "required": false,
            "description": desc, "schema": { "type": ty }
        }));
    }
    if p.idempotency != Idempotency::None {
        params.push(json!({
            "name": "Idempotency-Key", "in": "header",
            "required": p.idempotency == Idempotency::Required,
            "description": "1-255 characters; a retry with the same key and payload replays the first response.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 }
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
    for (status, desc) in error_responses(route) {
        responses.insert(
            status.to_string(),
            json!({
                "description": desc,
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
            "required": true,
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
            "description": "Hardened API runtime for multi-tenant messaging. Errors are RFC 9457 problem documents with a stable `code` (see x-rampart-error-codes).",
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
