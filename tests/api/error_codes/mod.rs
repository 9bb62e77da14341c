//! Issue 20: every stable error `code` ([`ErrorCode::ALL`]) is answered to some request, and
//! the lists the API publishes (`x-rampart-error-codes` in `/openapi.json`, the table in
//! `/docs`) are exactly that enum.
//!
//! Each probe makes the real server answer one code, asserting the code's own status, and
//! returns the `code` the problem document carried. A code added to the enum without a way to
//! draw it fails [`every_error_code_is_produced`]; a response's `code` is an [`ErrorCode`] by
//! type, and the published lists are generated from the enum, which
//! [`the_published_error_code_lists_are_the_enum`] checks.

mod faults;
mod guards;
mod requests;
mod work;

use std::collections::BTreeSet;

use rampart::http::ErrorCode;
use serde_json::Value;

use crate::helpers::*;
use crate::hostile::raw::RawResponse;

crate::scenarios![
    every_error_code_is_produced,
    the_published_error_code_lists_are_the_enum,
];

/// The billing webhook secret of the probed server (for `invalid_signature`).
const BILLING_SECRET: &str = "whsec_error_codes_probe";

/// Asserts that `res` is the problem document of `code`, with that code's status; returns the
/// `code` the document carries.
pub async fn drew(res: reqwest::Response, code: ErrorCode) -> String {
    code_of(&problem(res, code).await)
}

/// [`drew`], returning the whole document.
pub async fn problem(res: reqwest::Response, code: ErrorCode) -> Value {
    problem_of(res, code.status().as_u16(), code.as_str()).await
}

/// [`drew`] for a response read off the wire.
pub fn drew_raw(res: &RawResponse, code: ErrorCode) -> String {
    code_of(&res.problem(code.status().as_u16(), code.as_str()))
}

/// One request per code against the real app: plain requests, guards, the domain's rules and
/// real failures (a stalled upload, a timeout, the store away, a table gone).
async fn every_error_code_is_produced(store: Store) {
    // No worker: the one probe that needs background work drains the jobs itself.
    let app = spawn_quiet(
        store,
        &[
            // Short enough for a stalled upload to end quickly; bodies that are sent arrive
            // long before it.
            ("RAMPART_BODY_TIMEOUT", "500ms"),
            ("RAMPART_BILLING_WEBHOOK_SECRET", BILLING_SECRET),
        ],
    )
    .await;
    // On SQLite the outage probe waits out the busy timeout (10 s): the others run meanwhile.
    let (requests, guards, work, timeout, unavailable, internal) = tokio::join!(
        requests::probe(&app),
        guards::probe(&app),
        work::probe(&app),
        faults::request_timeout(store),
        faults::service_unavailable(store),
        faults::internal_error(store),
    );
    let drawn: Vec<String> = [requests, guards, work]
        .into_iter()
        .flatten()
        .chain([timeout, unavailable, internal])
        .collect();
    let produced: BTreeSet<&str> = drawn.iter().map(String::as_str).collect();
    let listed: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let never: Vec<&&str> = listed.difference(&produced).collect();
    let unlisted: Vec<&&str> = produced.difference(&listed).collect();
    assert!(
        never.is_empty() && unlisted.is_empty(),
        "listed but never produced: {never:?}; produced but not listed: {unlisted:?}"
    );
    app.stop().await;
}

/// `(code, status, meaning)` of every code, in the enum's order.
fn the_enum() -> Vec<(String, u16, String)> {
    ErrorCode::ALL
        .iter()
        .map(|c| {
            (
                c.as_str().to_owned(),
                c.status().as_u16(),
                c.meaning().to_owned(),
            )
        })
        .collect()
}

/// `x-rampart-error-codes` and the API reference's table list [`ErrorCode::ALL`], no more and
/// no less, with each code's status and meaning; and every code a route's error response
/// names is a listed code of that status.
async fn the_published_error_code_lists_are_the_enum(store: Store) {
    let app = spawn_app(store).await;
    let doc = json_of(app.get("/openapi.json").await, 200).await;
    let published: Vec<(String, u16, String)> = doc["x-rampart-error-codes"]
        .as_array()
        .expect("x-rampart-error-codes is a list")
        .iter()
        .map(|c| {
            (
                c["code"].as_str().unwrap().to_owned(),
                u16::try_from(c["status"].as_u64().unwrap()).unwrap(),
                c["meaning"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(published, the_enum(), "x-rampart-error-codes");

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let status: u16 = status.parse().unwrap();
                if status < 400 {
                    continue;
                }
                let text = response["description"].as_str().unwrap_or("");
                for named in backticked_codes(text) {
                    let code = ErrorCode::ALL.iter().find(|c| c.as_str() == named);
                    assert!(
                        code.is_some_and(|c| c.status().as_u16() == status),
                        "{method} {path} {status} names `{named}`, which is not a listed code of that status"
                    );
                }
            }
        }
    }

    let res = app.get("/docs").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert_eq!(docs_error_table(&html), the_enum(), "the /docs error table");
    app.stop().await;
}

/// Words in backticks that look like codes (`snake_case`), in a description.
fn backticked_codes(text: &str) -> Vec<&str> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect()
}

/// The rows of the "Error codes" table of the API reference page.
fn docs_error_table(html: &str) -> Vec<(String, u16, String)> {
    let start = html.find("id=\"errors\"").expect("an error code section");
    let end = start + html[start..].find("</table>").expect("its table");
    let cells = |row: &str| -> Vec<String> {
        row.split("<td>")
            .skip(1)
            .map(|cell| {
                let text = cell.split("</td>").next().unwrap_or("");
                unescape(&strip_tags(text))
            })
            .collect()
    };
    html[start..end]
        .split("<tr>")
        .map(cells)
        .filter(|c| c.len() == 3)
        .map(|c| (c[0].clone(), c[1].parse().unwrap(), c[2].clone()))
        .collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The `code` of a problem document.
pub fn code_of(p: &Value) -> String {
    p["code"].as_str().unwrap_or("").to_owned()
}
