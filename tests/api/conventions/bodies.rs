//! Request bodies are parsed strictly, and every refusal is a problem document.

use crate::helpers::*;

crate::scenarios![bodies_are_parsed_strictly_with_problem_errors];

async fn bodies_are_parsed_strictly_with_problem_errors(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_BODY_LIMIT", "4096")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let raw = |body: &'static [u8], ct: Option<&'static str>| {
        let mut r = app
            .req(reqwest::Method::POST, "/v1/contacts", &key)
            .body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let p = problem_of(
        raw(b"{\"external_key\": ", Some("application/json"))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("not valid JSON"),
        "{p}"
    );
    problem_of(
        raw(b"{} trailing", Some("application/json")).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    problem_of(
        raw(b"{}", None).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    problem_of(
        raw(b"{}", Some("text/plain")).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let p = problem_of(
        raw(b"{\"external_key\": 42}", Some("application/json"))
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "external_key");
    let p = problem_of(
        raw(
            b"{\"external_key\": \"a\", \"attributes\": []}",
            Some("application/json"),
        )
        .await
        .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "attributes");
    let p = problem_of(
        raw(
            b"{\"external_key\": \"a\", \"is_admin\": true}",
            Some("application/json"),
        )
        .await
        .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("unknown field"),
        "{p}"
    );
    let p = problem_of(
        raw(b"{}", Some("application/json")).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "external_key", "{p}");
    let big = format!("{{\"external_key\": \"{}\"}}", "x".repeat(5000));
    let res = app
        .req(reqwest::Method::POST, "/v1/contacts", &key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    problem_of(res, 413, "payload_too_large").await;
    // Queries and paths too.
    problem_of(
        app.get_as("/v1/contacts?limit=0", &key).await,
        400,
        "bad_request",
    )
    .await;
    let p = problem_of(
        app.get_as("/v1/contacts?limit=abc", &key).await,
        400,
        "bad_request",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("from 1 to 100"),
        "{p}"
    );
    problem_of(
        app.get_as("/v1/contacts?bogus=1", &key).await,
        400,
        "bad_request",
    )
    .await;
    problem_of(
        app.get_as("/v1/contacts?cursor=%%%", &key).await,
        400,
        "bad_request",
    )
    .await;
    problem_of(
        app.get_as("/v1/contacts/con_nope", &key).await,
        404,
        "not_found",
    )
    .await;
    // Nothing was written by any of it.
    let list = json_of(app.get_as("/v1/contacts", &key).await, 200).await;
    assert!(list["data"].as_array().unwrap().is_empty());
}
