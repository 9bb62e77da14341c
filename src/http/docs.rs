//! `GET /docs`: a readable API reference rendered on the server from the OpenAPI document.
//! No JavaScript and no external assets, so it works offline and under a strict CSP.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

const STYLE: &str = "
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:40px;border-bottom:1px solid #dde1e6;padding-bottom:4px}
.op{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;margin:12px 0}
.m{display:inline-block;min-width:64px;font-weight:700;font-family:monospace}
.GET{color:#116329}.POST{color:#0550ae}.PUT,.PATCH{color:#8a4600}.DELETE{color:#a40e26}
code,.path{font-family:ui-monospace,monospace}.path{font-weight:600}
table{border-collapse:collapse;width:100%;margin:6px 0}td,th{border-top:1px solid #eef0f2;padding:4px 6px;text-align:left;vertical-align:top;font-size:14px}
.muted{color:#5a6270}.badge{display:inline-block;background:#eef1f5;border-radius:4px;padding:0 6px;margin-right:4px;font-size:13px}
nav a{margin-right:12px}
";

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn schema_name(v: &Value) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    if let Some(items) = v.get("items") {
        return format!("{}[]", schema_name(items));
    }
    if v.get("properties").and_then(|p| p.get("data")).is_some() {
        let item = &v["properties"]["data"];
        return format!("page of {}", schema_name(item));
    }
    match v.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts.iter().map(s).collect::<Vec<_>>().join(" | "),
        _ => "object".into(),
    }
}

/// What a parameter's schema accepts, in a few words: its values, range, length, form.
fn constraints(v: &Value) -> String {
    let mut out = Vec::new();
    if let Some(values) = v["enum"].as_array() {
        out.push(format!(
            "one of {}",
            values.iter().map(s).collect::<Vec<_>>().join(", ")
        ));
    }
    match (v["minimum"].as_f64(), v["maximum"].as_f64()) {
        (Some(lo), Some(hi)) => out.push(format!("{lo} to {hi}")),
        (Some(lo), None) => out.push(format!("at least {lo}")),
        (None, Some(hi)) => out.push(format!("at most {hi}")),
        (None, None) => {}
    }
    match (v["minLength"].as_u64(), v["maxLength"].as_u64()) {
        (Some(lo), Some(hi)) => out.push(format!("{lo}-{hi} characters")),
        (None, Some(hi)) => out.push(format!("at most {hi} characters")),
        _ => {}
    }
    if let Some(f) = v["format"].as_str() {
        out.push(f.to_owned());
    }
    if let Some(p) = v["pattern"].as_str() {
        out.push(format!("matching {p}"));
    }
    if let Some(d) = v["default"].as_i64() {
        out.push(format!("default {d}"));
    }
    out.join("; ")
}

fn operation(method: &str, path: &str, op: &Value) -> Markup {
    let profile = &op["x-rampart-profile"];
    let auth: Vec<&str> = profile["auth"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    html! {
        div.op id=(s(&op["operationId"])) {
            div { span.m.(method) { (method) } " " span.path { (path) } }
            p { (s(&op["summary"])) " " span.muted { code { (s(&op["operationId"])) } } }
            p {
                @if auth.is_empty() { span.badge { "public" } }
                @else { span.badge { "auth: " (auth.join(" or ")) } }
                @if let Some(sc) = profile["scope"].as_str() { span.badge { "scope: " (sc) } }
                @if let Some(p) = profile["permission"].as_str() { span.badge { "permission: " (p) } }
                @if let Some(r) = profile["min_role"].as_str() { span.badge { "role ≥ " (r) } }
                @if s(&profile["billing"]) != "none" { span.badge { "billing: " (s(&profile["billing"])) } }
                @if s(&profile["idempotency"]) != "none" { span.badge { "Idempotency-Key: " (s(&profile["idempotency"])) } }
                @if s(&profile["rate_limit"]) != "none" { span.badge { "limit: " (s(&profile["rate_limit"])) } }
                @if s(&profile["audit"]) == "mutation" { span.badge { "audited" } }
            }
            @if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                table {
                    tr { th { "parameter" } th { "in" } th { "type" } th { "accepts" } th { "description" } }
                    @for p in params {
                        tr {
                            td { code { (s(&p["name"])) } @if p["required"].as_bool() == Some(true) { " *" } }
                            td { (s(&p["in"])) }
                            td { (schema_name(&p["schema"])) }
                            td { (constraints(&p["schema"])) }
                            td { (s(&p["description"])) " " (s(&p["schema"]["description"])) }
                        }
                    }
                }
            }
            @if let Some(body) = op["requestBody"]["content"]["application/json"]["schema"].as_object() {
                p { "Body: " a href=(format!("#schema-{}", schema_name(&Value::Object(body.clone())))) { code { (schema_name(&Value::Object(body.clone()))) } } }
            }
            table {
                tr { th { "status" } th { "response" } }
                @if let Some(resps) = op["responses"].as_object() {
                    @for (status, r) in resps {
                        tr {
                            td { (status) }
                            td {
                                (s(&r["description"]))
                                @if let Some(c) = r["content"].as_object() {
                                    @for (ct, body) in c {
                                        " " span.muted { (ct) }
                                        @if body.get("schema").is_some() { " " code { (schema_name(&body["schema"])) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn schema_table(name: &str, schema: &Value) -> Markup {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    html! {
        div.op id=(format!("schema-{name}")) {
            div.path { (name) }
            @if let Some(props) = schema["properties"].as_object() {
                table {
                    tr { th { "field" } th { "type" } th { "description" } }
                    @for (field, p) in props {
                        tr {
                            td { code { (field) } @if required.contains(&field.as_str()) { " *" } }
                            td { (schema_name(p)) @if let Some(e) = p["enum"].as_array() { " (" (e.iter().map(|v| s(v).to_owned()).collect::<Vec<_>>().join(", ")) ")" } }
                            td { (s(&p["description"])) }
                        }
                    }
                }
            } @else if let Some(e) = schema["enum"].as_array() {
                p { "one of: " (e.iter().map(|v| s(v).to_owned()).collect::<Vec<_>>().join(", ")) }
            } @else {
                p.muted { (schema_name(schema)) }
            }
        }
    }
}

/// Renders the page; `nonce` authorises its one inline style block.
pub fn render(doc: &Value, nonce: &str) -> String {
    let mut by_tag: std::collections::BTreeMap<String, Vec<(String, String, Value)>> =
        Default::default();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(ops) = item.as_object() {
                for (method, op) in ops {
                    let tag = op["tags"][0].as_str().unwrap_or("meta").to_owned();
                    by_tag.entry(tag).or_default().push((
                        method.to_uppercase(),
                        path.clone(),
                        op.clone(),
                    ));
                }
            }
        }
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Rampart API reference" }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
            }
            body { main {
                h1 { "Rampart API reference" }
                p.muted { "Version " (s(&doc["info"]["version"])) ". Machine-readable: " a href="/openapi.json" { "/openapi.json" } " (OpenAPI 3.1)." }
                p { (s(&doc["info"]["description"])) }
                nav { @for tag in by_tag.keys() { a href=(format!("#tag-{tag}")) { (tag) } } a href="#errors" { "error codes" } a href="#schemas" { "schemas" } }
                @for (tag, ops) in &by_tag {
                    h2 id=(format!("tag-{tag}")) { (tag) }
                    @for (m, p, op) in ops { (operation(m, p, op)) }
                }
                h2 id="errors" { "Error codes" }
                p { "Every error is " code { "application/problem+json" } ": " code { "{type, title, status, detail, code, request_id, errors?}" } "." }
                table {
                    tr { th { "code" } th { "status" } th { "meaning" } }
                    @if let Some(codes) = doc["x-rampart-error-codes"].as_array() {
                        @for c in codes { tr { td { code { (s(&c["code"])) } } td { (c["status"]) } td { (s(&c["meaning"])) } } }
                    }
                }
                h2 id="schemas" { "Schemas" }
                @if let Some(schemas) = doc["components"]["schemas"].as_object() {
                    @for (name, schema) in schemas { (schema_table(name, schema)) }
                }
            } }
        }
    };
    page.into_string()
}
