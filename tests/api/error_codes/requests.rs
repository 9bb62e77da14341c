//! Codes of the request itself: how it is framed, its body, its route, and a signature.

use std::time::Duration;

use rampart::http::ErrorCode;
use serde_json::json;

use super::{drew, drew_raw};
use crate::helpers::*;
use crate::hostile::raw;

pub async fn probe(app: &TestApp) -> Vec<String> {
    let org = app.org("Requests").await;
    let key = app.full_key(&org).await;
    let post = |content_type: &'static str, body: &'static str| {
        app.req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let mut drawn = vec![
        drew(
            post("application/json", "{\"external_key\":")
                .await
                .unwrap(),
            ErrorCode::BadRequest,
        )
        .await,
        drew(
            post("application/json", "{\"external_key\": \"\"}")
                .await
                .unwrap(),
            ErrorCode::ValidationFailed,
        )
        .await,
        drew(
            post("text/plain", "external_key=a").await.unwrap(),
            ErrorCode::UnsupportedMediaType,
        )
        .await,
        drew(
            app.get_as("/v1/contacts/ct_doesnotexist", &key).await,
            ErrorCode::NotFound,
        )
        .await,
        drew(
            app.req(reqwest::Method::PUT, "/v1/contacts", &key)
                .send()
                .await
                .unwrap(),
            ErrorCode::MethodNotAllowed,
        )
        .await,
    ];

    // A well-formed Stripe signature, made with another secret than the server's.
    let now = rampart::clock::now_ms() / 1000;
    let res = app
        .client
        .post(app.url("/v1/billing/events"))
        .header("stripe-signature", format!("t={now},v1={}", "0".repeat(64)))
        .header("content-type", "application/json")
        .body(json!({ "id": "evt_probe", "type": "customer.subscription.updated" }).to_string())
        .send()
        .await
        .unwrap();
    drawn.push(drew(res, ErrorCode::InvalidSignature).await);

    // What a client library will not send: raw HTTP/1.1.
    let auth = format!("authorization: Bearer {key}\r\n");
    let on_the_wire = [
        // A body declared over the 1 MiB limit is refused from its header.
        (
            format!(
                "POST /v1/contacts HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 2000000\r\n\r\n"
            ),
            ErrorCode::PayloadTooLarge,
        ),
        (
            format!(
                "GET /v1/contacts?cursor={} HTTP/1.1\r\nhost: x\r\n\r\n",
                "a".repeat(20_000)
            ),
            ErrorCode::UriTooLong,
        ),
        (
            format!(
                "GET /health/live HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\n\r\n",
                "b".repeat(40 * 1024)
            ),
            ErrorCode::HeadersTooLarge,
        ),
        // 10 of the 50 bytes announced, then nothing, past the body deadline (500 ms here).
        (
            format!(
                "POST /v1/contacts HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 50\r\n\r\n{{\"externa"
            ),
            ErrorCode::BodyTimeout,
        ),
    ];
    for (request, code) in on_the_wire {
        let mut s = raw::send(app.addr, request.as_bytes()).await;
        let res = raw::response(&mut s, Duration::from_secs(10)).await;
        drawn.push(drew_raw(&res, code));
    }
    drawn
}
