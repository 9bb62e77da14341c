//! The hostile-input battery, generated from the route registry and the OpenAPI document: every
//! path parameter, query parameter and string field of every body of every route gets NUL, an
//! invalid percent-encoding (or invalid UTF-8), an over-long value and a lone surrogate; every
//! body gets a JSON array instead of an object. Each must be a 4xx problem document naming no
//! Rust type, and the server must be healthy afterwards. A new route or field is covered
//! without editing this file.

use reqwest::Method;
use serde_json::{Value, json};

use rampart::http::routes::{AuthKind, Idempotency, Route};
use rampart::http::serde_message::names_rust_internals;

use crate::helpers::*;
use crate::scenarios;

scenarios![every_input_of_every_route_refuses_hostile_values];

/// Codes a route may answer before it reads its body at all (a signed webhook checks the
/// signature first): then the body's own refusal cannot be seen.
const BEFORE_THE_BODY: &[&str] = &["invalid_signature"];

/// Stands for the hostile text in a serialised body, replaced by raw bytes.
const MARK: &str = "__HOSTILE__";

/// One hostile request and what it must get.
struct Case {
    what: String,
    method: Method,
    target: String,
    body: Option<Vec<u8>>,
    expect: Expect,
}

enum Expect {
    /// Exactly this status.
    Status(u16),
    /// 422 naming this field (or a refusal made before the body is read).
    FieldNamed(String),
    /// Any 4xx.
    Refused,
}

async fn every_input_of_every_route_refuses_hostile_values(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("hostile").await;
    app.set_subscription(&org, "active", "full").await;
    let key = app.full_key(&org).await;
    let owner = app.token_for(&org, "owner");
    let doc = json_of(app.get("/openapi.json").await, 200).await;
    let mut sent = 0;
    for route in rampart::app::all_routes() {
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is documented",
            route.method,
            route.path
        );
        let token = credential(&route, &key, &owner);
        for case in cases(&doc, &route, method, op) {
            let mut req = app
                .client
                .request(case.method.clone(), app.url(&case.target));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if route.profile.idempotency != Idempotency::None {
                req = req.header("idempotency-key", uuid::Uuid::now_v7().to_string());
            }
            if let Some(body) = case.body.clone() {
                req = req.header("content-type", "application/json").body(body);
            }
            let res = req.send().await.expect("an answer");
            check(res, &case, &route).await;
            sent += 1;
        }
        assert_eq!(
            app.get("/health/live").await.status(),
            200,
            "alive after {}",
            route.path
        );
        assert_eq!(
            app.get_as("/v1/contacts?limit=1", &key).await.status(),
            200,
            "the store still answers after {}",
            route.path
        );
    }
    assert!(sent > 300, "only {sent} hostile requests were generated");
}

/// The credential that passes the route's guard, so that its input is what gets tested.
fn credential<'a>(route: &Route, key: &'a str, owner: &'a str) -> Option<&'a str> {
    let auth = &route.profile.auth;
    if auth.contains(&AuthKind::ApiKey) {
        Some(key)
    } else if auth.contains(&AuthKind::User) {
        Some(owner)
    } else {
        None
    }
}

fn cases(doc: &Value, route: &Route, method: Method, op: &Value) -> Vec<Case> {
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let path_params: Vec<&Value> = params.iter().filter(|p| p["in"] == "path").collect();
    // Path ids we can make valid (from the schema's example) let the body be reached.
    let mut exact_path = true;
    let base: Vec<(String, String)> = path_params
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_owned();
            let value = resolve(doc, &p["schema"])["examples"][0]
                .as_str()
                .map(str::to_owned);
            exact_path &= value.is_some();
            (name, value.unwrap_or_else(|| "x".into()))
        })
        .collect();
    let target = |swap: Option<(&str, &str)>, query: &str| {
        let mut path = route.path.to_owned();
        for (name, value) in &base {
            let v = match swap {
                Some((n, hostile)) if n == name => hostile,
                _ => value.as_str(),
            };
            path = path.replace(&format!("{{{name}}}"), v);
        }
        path + query
    };
    let body = body_schema(doc, op);
    let baseline = body.map(|s| baseline(doc, s));
    let mut out = Vec::new();
    let long = "a".repeat(9_000);
    let url_values: [(&str, &str, u16); 5] = [
        ("NUL", "a%00b", 400),
        ("a malformed escape", "%zz", 400),
        ("an escape that is not UTF-8", "%ff", 400),
        ("a lone surrogate", "%ED%A0%80", 400),
        ("an over-long value", &long, 414),
    ];
    for (name, _) in &base {
        for (what, v, status) in url_values {
            out.push(Case {
                what: format!("{what} in path parameter {name}"),
                method: method.clone(),
                target: target(Some((name, v)), ""),
                body: baseline.as_ref().map(|b| serde_json::to_vec(b).unwrap()),
                expect: Expect::Status(status),
            });
        }
    }
    for q in params.iter().filter(|p| p["in"] == "query") {
        let name = q["name"].as_str().unwrap();
        for (what, v, status) in url_values {
            out.push(Case {
                what: format!("{what} in query parameter {name}"),
                method: method.clone(),
                target: target(None, &format!("?{name}={v}")),
                body: baseline.as_ref().map(|b| serde_json::to_vec(b).unwrap()),
                expect: Expect::Status(status),
            });
        }
    }
    let (Some(schema), Some(baseline)) = (body, baseline) else {
        return out;
    };
    let url = target(None, "");
    let exact = |status| {
        if exact_path {
            Expect::Status(status)
        } else {
            Expect::Refused
        }
    };
    out.push(Case {
        what: "a JSON array instead of the body object".into(),
        method: method.clone(),
        target: url.clone(),
        body: Some(br#"["k","Ada",null,null,null]"#.to_vec()),
        expect: exact(422),
    });
    let resolved = resolve(doc, schema);
    let props = resolved["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (field, prop) in &props {
        let (named, max) = if let Some(max) = string_field(doc, prop) {
            (field.clone(), max)
        } else if let Some(max) = array_of_strings(doc, prop) {
            (format!("{field}[0]"), max)
        } else {
            continue;
        };
        let in_array = named.ends_with("[0]");
        let with = |text: Value| {
            let mut b = baseline.clone();
            b[field.as_str()] = if in_array { json!([text]) } else { text };
            b
        };
        let raw = |bytes: &[u8]| {
            let text = serde_json::to_vec(&with(json!(MARK))).unwrap();
            replace(&text, format!("\"{MARK}\"").as_bytes(), bytes)
        };
        let over = max.map_or(100_000, |m| m as usize + 1);
        out.extend([
            Case {
                what: format!("NUL in body field {named}"),
                method: method.clone(),
                target: url.clone(),
                body: Some(serde_json::to_vec(&with(json!("a\u{0}b"))).unwrap()),
                expect: if exact_path {
                    Expect::FieldNamed(named.clone())
                } else {
                    Expect::Refused
                },
            },
            Case {
                what: format!("invalid UTF-8 in body field {named}"),
                method: method.clone(),
                target: url.clone(),
                body: Some(raw(b"\"a\xff\xfeb\"")),
                expect: exact(400),
            },
            Case {
                what: format!("a lone surrogate in body field {named}"),
                method: method.clone(),
                target: url.clone(),
                body: Some(raw(br#""\ud800""#)),
                expect: exact(400),
            },
            Case {
                what: format!("{over} characters in body field {named}"),
                method: method.clone(),
                target: url.clone(),
                body: Some(serde_json::to_vec(&with(json!("a".repeat(over)))).unwrap()),
                expect: Expect::Refused,
            },
        ]);
    }
    out
}

async fn check(res: reqwest::Response, case: &Case, route: &Route) {
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.unwrap_or_default();
    let at = format!("{} {} — {}", route.method, route.path, case.what);
    assert!(
        (400..500).contains(&status),
        "{at}: {status} is not a refusal: {text}"
    );
    assert_eq!(ct, "application/problem+json", "{at}: {text}");
    let p: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{at}: {text}"));
    let code = p["code"].as_str().unwrap_or("");
    assert!(!code.is_empty(), "{at}: {p}");
    let mut messages = vec![p["detail"].as_str().unwrap_or("").to_owned()];
    for e in p["errors"].as_array().into_iter().flatten() {
        messages.push(e["message"].as_str().unwrap_or("").to_owned());
    }
    for m in &messages {
        assert!(!names_rust_internals(m), "{at}: names Rust internals: {m}");
    }
    let before_the_body = case.body.is_some() && BEFORE_THE_BODY.contains(&code);
    match &case.expect {
        _ if before_the_body => {}
        Expect::Status(s) => assert_eq!(status, *s, "{at}: {p}"),
        Expect::FieldNamed(field) => {
            assert_eq!(status, 422, "{at}: {p}");
            assert_eq!(p["errors"][0]["field"], field.as_str(), "{at}: {p}");
        }
        Expect::Refused => {}
    }
}

fn body_schema<'a>(doc: &'a Value, op: &'a Value) -> Option<&'a Value> {
    let s = &op["requestBody"]["content"]["application/json"]["schema"];
    (!s.is_null()).then(|| resolve(doc, s))
}

/// Follows `$ref`s, and picks the non-null member of a `oneOf` (an optional value).
fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(members) = s["oneOf"].as_array()
        && let Some(m) = members.iter().find(|m| m["type"] != "null")
    {
        return resolve(doc, m);
    }
    s
}

fn has_type(s: &Value, ty: &str) -> bool {
    s["type"] == ty
        || s["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == ty))
}

/// `Some(maxLength)` when `prop` is a string.
fn string_field(doc: &Value, prop: &Value) -> Option<Option<u64>> {
    let s = resolve(doc, prop);
    has_type(s, "string").then(|| s["maxLength"].as_u64())
}

fn array_of_strings(doc: &Value, prop: &Value) -> Option<Option<u64>> {
    let s = resolve(doc, prop);
    if !has_type(s, "array") {
        return None;
    }
    string_field(doc, &s["items"])
}

/// A valid body: every required field with an example value.
fn baseline(doc: &Value, schema: &Value) -> Value {
    let s = resolve(doc, schema);
    let mut out = serde_json::Map::new();
    for name in s["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or("");
        out.insert(name.to_owned(), example(doc, &s["properties"][name]));
    }
    Value::Object(out)
}

/// A value the schema accepts, as far as the schema tells.
fn example(doc: &Value, schema: &Value) -> Value {
    let s = resolve(doc, schema);
    if let Some(e) = s["examples"].as_array().and_then(|e| e.first()) {
        return e.clone();
    }
    if let Some(e) = s["enum"].as_array().and_then(|e| e.first()) {
        return e.clone();
    }
    if has_type(s, "string") {
        return match s["format"].as_str() {
            Some("date-time") => json!("2030-01-01T00:00:00Z"),
            _ => json!("x"),
        };
    }
    if has_type(s, "integer") || has_type(s, "number") {
        return json!(s["minimum"].as_i64().unwrap_or(1).max(1));
    }
    if has_type(s, "boolean") {
        return json!(false);
    }
    if has_type(s, "array") {
        return json!([example(doc, &s["items"])]);
    }
    if has_type(s, "object") {
        return baseline(doc, s);
    }
    Value::Null
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = hay
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the mark is in the body");
    [&hay[..at], with, &hay[at + needle.len()..]].concat()
}
