//! The OpenAPI document says what the server enforces (issue 22, finding 5), as a class: every
//! string a request can carry is bounded, lists state their limits, enums are the words the API
//! uses, references resolve; and the server keeps the promises schemathesis found it broke.

use serde_json::{Value, json};

use crate::helpers::*;

crate::scenarios![
    an_integral_number_written_with_a_fraction_is_an_integer,
    every_string_the_server_takes_is_bounded_and_over_long_is_refused,
    a_key_given_twice_in_a_body_is_refused,
    length_bounds_count_characters_not_bytes,
];

crate::plain_tests![
    every_string_a_request_can_carry_is_bounded_in_the_document,
    the_document_has_no_dangling_references,
    every_list_states_its_limit_bounds_and_cursor,
    enums_are_published_as_the_words_the_api_uses,
    public_routes_state_the_refusals_of_their_handlers,
    every_time_in_a_response_is_a_date_time,
];

fn document() -> Value {
    rampart::http::openapi::document(&rampart::app::all_routes(), "test")
}

fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        s = &doc["components"]["schemas"][name];
    }
    s
}

fn types(s: &Value) -> Vec<&str> {
    match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// Every string in `s` that no bound, enum, pattern or format limits, by path.
fn unbounded(doc: &Value, s: &Value, path: &str, out: &mut Vec<String>) {
    let s = resolve(doc, s);
    for k in ["oneOf", "anyOf", "allOf"] {
        for sub in s[k].as_array().into_iter().flatten() {
            unbounded(doc, sub, path, out);
        }
    }
    let t = types(s);
    let bounded = s["enum"].is_array()
        || s["maxLength"].is_u64()
        || s["format"] == "date-time"
        || s["pattern"]
            .as_str()
            .is_some_and(|p| p.ends_with('$') && p.contains('{'));
    if t.contains(&"string") && !bounded {
        out.push(path.to_owned());
    }
    if t.contains(&"object") {
        for (k, v) in s["properties"].as_object().into_iter().flatten() {
            unbounded(doc, v, &format!("{path}.{k}"), out);
        }
    }
    if t.contains(&"array") {
        unbounded(doc, &s["items"], &format!("{path}[]"), out);
    }
}

async fn every_string_a_request_can_carry_is_bounded_in_the_document() {
    let doc = document();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let at = format!("{method} {path}");
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = format!("{at} {}:{}", p["in"].as_str().unwrap(), p["name"]);
                unbounded(&doc, &p["schema"], &name, &mut out);
            }
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            if !body.is_null() {
                unbounded(&doc, body, &format!("{at} body"), &mut out);
            }
        }
    }
    assert!(out.is_empty(), "unbounded strings: {out:#?}");
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

async fn the_document_has_no_dangling_references() {
    let doc = document();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").expect(r);
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} names nothing"
        );
    }
}

async fn every_list_states_its_limit_bounds_and_cursor() {
    let doc = document();
    let mut lists = 0;
    for r in rampart::app::all_routes().iter().filter(|r| r.docs.list) {
        lists += 1;
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        let param = |name: &str| {
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .unwrap_or_else(|| panic!("{} has no {name}", r.path))
                .clone()
        };
        let limit = param("limit");
        assert_eq!(limit["schema"]["type"], "integer", "{}", r.path);
        assert_eq!(limit["schema"]["minimum"], 1, "{}", r.path);
        assert_eq!(limit["schema"]["maximum"], 100, "{}", r.path);
        assert!(
            param("cursor")["schema"]["pattern"].is_string(),
            "{}",
            r.path
        );
    }
    assert!(lists >= 10, "{lists}");
}

async fn enums_are_published_as_the_words_the_api_uses() {
    use rampart::dead_letters::DeadLetterStatus;
    let doc = document();
    let words: Vec<&str> = DeadLetterStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        doc["components"]["schemas"]["DeadLetterStatus"]["enum"],
        json!(words)
    );
    assert_eq!(
        doc["components"]["schemas"]["MessageStatus"]["enum"],
        json!(["queued", "sent", "failed", "received"])
    );
    let status = doc["paths"]["/v1/dead-letters"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap()["schema"]
        .clone();
    assert_eq!(status["enum"], json!(words));
    let since = doc["paths"]["/v1/dead-letters"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "since")
        .unwrap()["schema"]
        .clone();
    assert_eq!(since["format"], "date-time");
    let id = &doc["paths"]["/v1/contacts/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(id["pattern"], "^con_[0-9a-hjkmnp-tv-z]{26}$");
}

async fn public_routes_state_the_refusals_of_their_handlers() {
    let doc = document();
    for path in ["/v1/auth/login", "/v1/auth/refresh"] {
        let d = &doc["paths"][path]["post"]["responses"]["401"]["description"];
        assert!(
            d.as_str().unwrap().contains("unauthenticated"),
            "{path}: {d}"
        );
    }
    let billing = &doc["paths"]["/v1/billing/events"]["post"]["responses"]["400"]["description"];
    let billing = billing.as_str().unwrap();
    assert!(
        billing.contains("invalid_signature") && billing.contains("not configured"),
        "{billing}"
    );
    let signature = doc["paths"]["/v1/billing/events"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Stripe-Signature")
        .cloned()
        .unwrap_or_default();
    assert_eq!(signature["in"], "header", "{signature}");
    assert_eq!(signature["required"], true, "{signature}");
    let key = doc["paths"]["/v1/messages"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap()
        .clone();
    assert_eq!(key["required"], true);
    assert_eq!(key["schema"]["maxLength"], 255);
    assert!(key["schema"]["pattern"].is_string());
    for status in ["408", "413", "414", "431"] {
        assert!(
            doc["paths"]["/v1/contacts"]["post"]["responses"][status].is_object(),
            "{status}"
        );
    }
}

/// Every `*_at` property in `s` whose schema is not a `date-time` (or `null`), by path.
fn untyped_times(doc: &Value, s: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    let s = resolve(doc, s);
    if depth > 8 {
        return;
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        for sub in s[k].as_array().into_iter().flatten() {
            untyped_times(doc, sub, path, depth + 1, out);
        }
    }
    for (k, v) in s["properties"].as_object().into_iter().flatten() {
        let at = format!("{path}.{k}");
        if k.ends_with("_at") {
            let v = resolve(doc, v);
            let alternatives: Vec<&Value> = match v["oneOf"].as_array() {
                Some(a) => a.iter().map(|x| resolve(doc, x)).collect(),
                None => vec![v],
            };
            let ok = alternatives
                .iter()
                .all(|a| a["format"] == "date-time" || a["type"] == "null");
            if !ok {
                out.push(at.clone());
            }
        }
        untyped_times(doc, v, &at, depth + 1, out);
    }
    if !s["items"].is_null() {
        untyped_times(doc, &s["items"], &format!("{path}[]"), depth + 1, out);
    }
}

async fn every_time_in_a_response_is_a_date_time() {
    let doc = document();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().unwrap() {
                let schema = &r["content"]["application/json"]["schema"];
                if status.starts_with('2') && !schema.is_null() {
                    untyped_times(&doc, schema, &format!("{method} {path}"), 0, &mut out);
                }
            }
        }
    }
    assert!(out.is_empty(), "times without format date-time: {out:#?}");
}

async fn an_integral_number_written_with_a_fraction_is_an_integer(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    // JSON Schema's `integer` admits 3.0, so the document's promise holds: it is 3.
    let created = json_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "http://127.0.0.1:9/h", "events": ["*"], "max_retries": 3.0 }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["max_retries"], 3);
    let p = problem_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "http://127.0.0.1:9/h", "events": ["*"], "max_retries": 3.5 }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "max_retries", "{p}");
}

async fn every_string_the_server_takes_is_bounded_and_over_long_is_refused(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    // Query filters that used to take any length.
    let long = "a".repeat(101);
    for path in [
        format!("/v1/audit-logs?action={long}"),
        format!("/v1/audit-logs?actor={long}"),
        format!("/v1/contacts?external_key={}", "k".repeat(256)),
    ] {
        problem_of(app.get_as(&path, &key).await, 400, "bad_request").await;
    }
    problem_of(
        app.get_as(
            &format!("/v1/gdpr/contacts/{}/export", "k".repeat(256)),
            &key,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // Body fields: the published bound is the enforced one, with the field named.
    for (path, body, field) in [
        (
            "/v1/contacts",
            json!({ "external_key": "k", "name": "n".repeat(201) }),
            "name",
        ),
        (
            "/v1/contacts",
            json!({ "external_key": "k", "attributes": { "x".repeat(101): 1 } }),
            "attributes",
        ),
        (
            "/v1/webhooks",
            json!({ "url": "http://127.0.0.1:9/h", "events": ["*"], "description": "d".repeat(501) }),
            "description",
        ),
    ] {
        let p = problem_of(
            app.post_as(path, &key, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    assert_eq!(app.get("/health/ready").await.status(), 200);
}

async fn a_key_given_twice_in_a_body_is_refused(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let res = client()
        .post(app.url("/v1/contacts"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(r#"{"external_key":"a","external_key":"b"}"#)
        .send()
        .await
        .unwrap();
    let p = problem_of(res, 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "external_key", "{p}");
}

async fn length_bounds_count_characters_not_bytes(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    // 254 characters (more bytes): the documented maxLength counts characters, and so does
    // the server.
    let email = format!("{}@example.fr", "é".repeat(254 - "@example.fr".len()));
    assert_eq!(email.chars().count(), 254);
    let c = json_of(
        app.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": "k", "email": email, "attributes": { "ü".repeat(100): 1 } }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(c["email"], email);
    let too_long = format!("{}@example.fr", "é".repeat(255 - "@example.fr".len()));
    let p = problem_of(
        app.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": "k2", "email": too_long }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "email", "{p}");
}
