//! SPEC §2: request ids, build id, security headers, problems for every error, OpenAPI, docs,
//! probes.

use std::time::Duration;

use axum::routing::get;
use rampart::http::middleware::{Conventions, conventions};

use crate::helpers::*;

crate::scenarios![
    request_id_is_echoed_when_sane_and_replaced_when_not,
    build_id_is_on_every_response_and_at_build_id_json,
    security_headers_are_on_json_problem_and_html_responses,
    unknown_routes_and_wrong_methods_are_problems,
    openapi_document_lists_every_route_with_its_errors,
    docs_page_is_self_contained_with_a_nonce_csp,
    readiness_passes_on_a_migrated_database,
    ops_endpoints_are_not_on_the_public_listener,
    bodies_are_parsed_strictly_with_problem_errors,
    transactions_with_deferred_writes_are_all_or_nothing,
    sqlite_checkpoints_in_the_background,
];

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

async fn request_id_is_echoed_when_sane_and_replaced_when_not(store: Store) {
    let app = spawn_app(store).await;
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc.123");

    for insane in ["has space", &"x".repeat(129), "semi;colon"] {
        let res = app
            .client
            .get(app.url("/nope"))
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(rid, insane);
        assert!(uuid::Uuid::parse_str(&rid).is_ok(), "{rid}");
        let p = problem_of(res, 404, "not_found").await;
        assert_eq!(p["request_id"], rid);
    }
    let a = app.get("/health/live").await.headers()["x-request-id"].clone();
    let b = app.get("/health/live").await.headers()["x-request-id"].clone();
    assert_ne!(a, b);
}

async fn build_id_is_on_every_response_and_at_build_id_json(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_BUILD_ID", "build-42")]).await;
    let res = app.get("/build-id.json").await;
    assert_eq!(res.headers()["x-build-id"], "build-42");
    let body = json_of(res, 200).await;
    assert_eq!(body["build_id"], "build-42");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        app.get("/missing").await.headers()["x-build-id"],
        "build-42"
    );
    let ops = app
        .client
        .get(app.ops_url("/health/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(ops.headers()["x-build-id"], "build-42");
}

fn assert_security_headers(h: &reqwest::header::HeaderMap) {
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("content-security-policy"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

async fn security_headers_are_on_json_problem_and_html_responses(store: Store) {
    let app = spawn_app(store).await;
    let json = app.get("/health/live").await;
    assert_security_headers(json.headers());
    assert_eq!(
        json.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(!json.headers().contains_key("strict-transport-security"));
    assert_security_headers(app.get("/nope").await.headers());
    let html = app.get("/docs").await;
    assert_security_headers(html.headers());
    assert!(
        html.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("'nonce-")
    );

    let tls = spawn_app_with(store, &[("RAMPART_HSTS", "true")]).await;
    let res = tls.get("/health/live").await;
    assert!(
        res.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}

async fn unknown_routes_and_wrong_methods_are_problems(store: Store) {
    let app = spawn_app(store).await;
    let p = problem_of(app.get("/v1/nothing-here").await, 404, "not_found").await;
    assert_eq!(p["type"], "https://rampart.dev/problems/not_found");
    assert_eq!(p["title"], "Not Found");
    let res = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    problem_of(res, 405, "method_not_allowed").await;
}

async fn openapi_document_lists_every_route_with_its_errors(store: Store) {
    let app = spawn_app(store).await;
    let doc = json_of(app.get("/openapi.json").await, 200).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    for r in rampart::app::all_routes() {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from the document",
            r.method,
            r.path
        );
        assert_eq!(op["operationId"], r.operation_id);
        assert!(
            op["responses"]["500"].is_object(),
            "{} {}",
            r.method,
            r.path
        );
        assert_eq!(
            op["x-rampart-profile"],
            serde_json::to_value(&r.profile).unwrap()
        );
        if !r.profile.auth.is_empty() {
            for s in ["401", "403"] {
                assert_eq!(
                    op["responses"][s]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem"
                );
            }
        }
    }
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(ops, rampart::app::all_routes().len());
}

async fn docs_page_is_self_contained_with_a_nonce_csp(store: Store) {
    let app = spawn_app(store).await;
    let res = app.get("/docs").await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = res.text().await.unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap()
        .to_owned();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")));
    assert!(!html.contains("<script src"), "no external scripts");
    assert!(!html.contains("https://cdn"), "no CDN assets");
    assert!(html.contains("/openapi.json"));
    for r in rampart::app::all_routes() {
        assert!(html.contains(r.path), "{} not in docs", r.path);
    }
    let again = app.get("/docs").await.headers()["content-security-policy"].clone();
    assert_ne!(again.to_str().unwrap(), csp, "a fresh nonce per response");
}

async fn readiness_passes_on_a_migrated_database(store: Store) {
    let app = spawn_app(store).await;
    let body = json_of(app.get("/health/ready").await, 200).await;
    assert_eq!(body["status"], "pass");
    let body = json_of(app.get("/health/live").await, 200).await;
    assert_eq!(body["status"], "pass");
}

async fn ops_endpoints_are_not_on_the_public_listener(store: Store) {
    let app = spawn_app(store).await;
    problem_of(app.get("/metrics").await, 404, "not_found").await;
    problem_of(app.get("/health/deep").await, 404, "not_found").await;
    let res = app
        .client
        .get(app.ops_url("/health/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/health+json");
    let body = json_of(res, 200).await;
    assert_eq!(body["status"], "pass");
    let metrics = app
        .client
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("rampart_http_requests_total"), "{text}");

    let guarded = spawn_app_with(store, &[("RAMPART_OPS_TOKEN", "ops-token-0123456789")]).await;
    let res = guarded
        .client
        .get(guarded.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    problem_of(res, 401, "unauthenticated").await;
    let res = guarded
        .client
        .get(guarded.ops_url("/metrics"))
        .bearer_auth("ops-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The conventions middleware turns a panic into a generic 500 and enforces the timeout.
pub async fn panics_and_timeouts_become_generic_problems() {
    let conv = std::sync::Arc::new(Conventions {
        build_id: "b".parse().unwrap(),
        body_limit: 1024,
        body_timeout: Duration::from_millis(100),
        hsts: false,
        timeout: Duration::from_millis(200),
    });
    let router = axum::Router::new()
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret internal detail /etc/passwd");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .layer(axum::middleware::from_fn_with_state(conv, conventions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let c = client();
    let res = c.get(format!("http://{addr}/panic")).send().await.unwrap();
    let p = problem_of(res, 500, "internal_error").await;
    let text = p.to_string();
    assert!(
        !text.contains("passwd") && !text.contains("secret"),
        "{text}"
    );
    let res = c.get(format!("http://{addr}/slow")).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
    problem_of(res, 503, "request_timeout").await;
}

/// Readiness is 503 while the database is down; liveness never looks at it.
pub async fn readiness_fails_while_postgres_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = std::collections::HashMap::new();
    for (k, v) in [
        (
            "RAMPART_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/down",
        ),
        ("RAMPART_LISTEN", "127.0.0.1:0"),
        ("RAMPART_OPS_LISTEN", "127.0.0.1:0"),
        ("RAMPART_SECRET_KEY", TEST_SECRET),
        ("RAMPART_DATA_DIR", dir.path().to_str().unwrap()),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    rampart::outbound::install_crypto_provider();
    let config = rampart::config::Config::from_map(env).unwrap();
    let app = rampart::app::App::build(config, Default::default())
        .await
        .unwrap();
    let addr = app.api_addr();
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move { app.run(t).await });
    let c = client();
    let res = c
        .get(format!("http://{addr}/health/ready"))
        .send()
        .await
        .unwrap();
    let p = problem_of(res, 503, "service_unavailable").await;
    assert!(
        !p.to_string().contains("127.0.0.1:1"),
        "no internal address leaks: {p}"
    );
    let res = c
        .get(format!("http://{addr}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    token.cancel();
}

crate::plain_tests![
    panics_and_timeouts_become_generic_problems,
    readiness_fails_while_postgres_is_unreachable,
];

/// `Tx::defer` (deferred writes go with or just before the next statement or the `COMMIT`;
/// Postgres merges runs of mergeable ones into one statement): results are the caller's own
/// statement's, a failing deferred write fails the transaction, leaves nothing and is named in
/// the error, and a transaction dropped open is rolled back without holding on to the (single,
/// on SQLite) writer connection.
pub async fn transactions_with_deferred_writes_are_all_or_nothing(store: Store) {
    let app = spawn_app(store).await;
    transactional_promises(&app.state.db).await;
    app.stop().await;
}

/// The promises of [`transactions_with_deferred_writes_are_all_or_nothing`], on `db` (also run
/// against a Postgres database whose default isolation is `repeatable read`).
pub async fn transactional_promises(db: &rampart::store::Db) {
    use rampart::store::{DbError, Q, Table};
    let scratch = Table::named("scratch");
    let scratch2 = Table::named("scratch2");
    let ins = |id: &str, n: i64| {
        Q::write("INSERT INTO scratch (id, n) VALUES ($1, $2)")
            .bind(id)
            .bind(n)
    };
    let ids = || async {
        let rows = Q::read("SELECT id, n FROM scratch ORDER BY id")
            .fetch_rows(&mut db.clone())
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.get::<String>("id").unwrap(), r.get::<i64>("n").unwrap()))
            .collect::<Vec<_>>()
    };
    let mut tx = db.begin().await.unwrap();
    Q::write("CREATE TABLE scratch (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&mut tx)
        .await
        .unwrap();
    Q::write("CREATE TABLE scratch2 (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Deferred writes run before the next statement, which reports only its own rows.
    let mut tx = db.begin().await.unwrap();
    tx.defer_merged(scratch, ins("a", 1)).await.unwrap();
    tx.defer_merged(scratch, ins("b", 2)).await.unwrap();
    let changed = Q::write("UPDATE scratch SET n = n + $2 WHERE id = $1")
        .bind("a")
        .bind(10)
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(changed, 1, "the update's own count, not the inserts'");
    tx.defer(scratch, ins("c", 3)).await.unwrap();
    let seen: i64 = Q::read("SELECT COUNT(*) AS n FROM scratch")
        .fetch_scalar(&mut tx)
        .await
        .unwrap();
    assert_eq!(seen, 3);
    tx.defer(scratch, ins("d", 4)).await.unwrap();
    tx.commit().await.unwrap();
    let committed = vec![
        ("a".to_owned(), 11),
        ("b".to_owned(), 2),
        ("c".to_owned(), 3),
        ("d".to_owned(), 4),
    ];
    assert_eq!(ids().await, committed);

    // A deferred write that fails (a duplicate key) fails the transaction, nothing is written,
    // and the error names that write (not the statement that carried it).
    let mut tx = db.begin().await.unwrap();
    Q::write("UPDATE scratch SET n = 0")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.defer(scratch, ins("e", 5)).await.unwrap();
    tx.defer(scratch, ins("a", 6)).await.unwrap();
    let err = Q::read("SELECT COUNT(*) AS n FROM scratch2")
        .fetch_scalar::<i64>(&mut tx)
        .await
        .unwrap_err();
    drop(tx);
    assert!(err.unique_violation().is_some(), "{err:?}");
    match &err {
        DbError::Deferred { write, .. } => {
            assert!(write.starts_with("scratch: INSERT INTO scratch"), "{write}")
        }
        other => panic!("the error names the deferred write: {other:?}"),
    }
    assert_eq!(ids().await, committed);

    // A statement that fails after deferred writes: the transaction is dropped, nothing stays.
    let mut tx = db.begin().await.unwrap();
    tx.defer(scratch, ins("f", 7)).await.unwrap();
    assert!(
        Q::write("UPDATE no_such_table SET n = 1")
            .execute(&mut tx)
            .await
            .is_err()
    );
    drop(tx);

    // Dropped open after a statement was sent: rolled back, and the writer is free at once.
    let mut tx = db.begin().await.unwrap();
    ins("g", 8).execute(&mut tx).await.unwrap();
    drop(tx);
    let next = async {
        let mut tx = db.begin().await.unwrap();
        ins("h", 9).execute(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("the writer is released after a dropped transaction");
    let mut expected = committed.clone();
    expected.push(("h".to_owned(), 9));
    assert_eq!(ids().await, expected);

    // Only deferred writes, then an explicit rollback: nothing.
    let mut tx = db.begin().await.unwrap();
    tx.defer(scratch, ins("k", 12)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(ids().await, expected);

    // Only deferred writes, then a commit: written (nothing else was ever sent).
    let mut tx = db.begin().await.unwrap();
    tx.defer(scratch, ins("k", 12)).await.unwrap();
    tx.commit().await.unwrap();
    expected.push(("k".to_owned(), 12));
    assert_eq!(ids().await, expected);

    // Mergeable deferred writes to several tables (which Postgres sends as one statement):
    // each sees the writes before it, on its own table as on the others, and one failing
    // fails them all.
    let ins2 = |id: &str, n: i64| {
        Q::write("INSERT INTO scratch2 (id, n) VALUES ($1, $2)")
            .bind(id)
            .bind(n)
    };
    let bump = |table: &'static str| match table {
        "scratch" => Q::write("UPDATE scratch SET n = n + 100 WHERE id = $1"),
        _ => Q::write("UPDATE scratch2 SET n = n + 100 WHERE id = $1"),
    };
    let mut tx = db.begin().await.unwrap();
    tx.defer_merged(scratch, ins("k2", 1)).await.unwrap();
    tx.defer_merged(scratch2, ins2("k2", 2)).await.unwrap();
    tx.defer_merged(scratch, bump("scratch").bind("k2"))
        .await
        .unwrap();
    tx.defer_merged(scratch2, bump("scratch2").bind("k2"))
        .await
        .unwrap();
    tx.defer_merged(
        scratch2,
        Q::write("DELETE FROM scratch2 WHERE id = $1").bind("k2"),
    )
    .await
    .unwrap();
    tx.defer_merged(scratch2, ins2("k3", 3)).await.unwrap();
    tx.commit().await.unwrap();
    expected.push(("k2".to_owned(), 101));
    assert_eq!(ids().await, expected);
    let second = Q::read("SELECT id, n FROM scratch2 ORDER BY id")
        .fetch_all::<(String, i64)>(&mut db.clone())
        .await
        .unwrap();
    assert_eq!(second, vec![("k3".to_owned(), 3)]);
    let mut tx = db.begin().await.unwrap();
    tx.defer_merged(scratch, ins("k4", 4)).await.unwrap();
    tx.defer_merged(scratch2, ins2("k3", 5)).await.unwrap(); // a duplicate key
    tx.defer_merged(scratch, bump("scratch").bind("k2"))
        .await
        .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(err.unique_violation().is_some(), "{err:?}");
    match &err {
        DbError::Deferred { write, .. } => {
            assert!(write.contains("scratch2: INSERT INTO scratch2"), "{write}")
        }
        other => panic!("the error names the deferred write: {other:?}"),
    }
    assert_eq!(ids().await, expected, "nothing of the failed run stays");
    // The same in a transaction that begins at its first write (on Postgres, a read first
    // and the writes as one statement sent without a `BEGIN`, atomic on its own).
    let mut tx = db.begin_at_first_write().await.unwrap();
    let n: i64 = Q::read("SELECT COUNT(*) AS n FROM scratch2")
        .fetch_scalar(&mut tx)
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.defer_merged(scratch, ins("k4", 4)).await.unwrap();
    tx.defer_merged(scratch2, ins2("k3", 5)).await.unwrap(); // a duplicate key
    let err = tx.commit().await.unwrap_err();
    assert!(err.unique_violation().is_some(), "{err:?}");
    assert_eq!(
        ids().await,
        expected,
        "nothing of the failed statement stays"
    );

    // A prefetched read sees the transaction as it was when asked for, travels with the next
    // statement, and its rows come back later; one still unsent when asked for is sent then.
    let count = || Q::read("SELECT COUNT(*) AS n FROM scratch");
    let n_of = |rows: Vec<rampart::store::Row>| rows[0].get::<i64>("n").unwrap();
    let mut tx = db.begin().await.unwrap();
    let before = tx.prefetch(count()).await.unwrap();
    ins("l", 13).execute(&mut tx).await.unwrap();
    let between = tx
        .prefetch(Q::read("SELECT n FROM scratch WHERE id = 'l'"))
        .await
        .unwrap();
    tx.defer(scratch, ins("m", 14)).await.unwrap();
    let after = tx.prefetch(count()).await.unwrap();
    assert_eq!(
        n_of(tx.prefetched(before).await.unwrap()),
        expected.len() as i64
    );
    assert_eq!(
        n_of(tx.prefetched(after).await.unwrap()),
        expected.len() as i64 + 2
    );
    assert_eq!(n_of(tx.prefetched(between).await.unwrap()), 13);
    // Asked for and never used: no harm to the commit.
    let _unused = tx.prefetch(count()).await.unwrap();
    tx.commit().await.unwrap();
    expected.push(("l".to_owned(), 13));
    expected.push(("m".to_owned(), 14));
    assert_eq!(ids().await, expected);

    // A prefetch alone writes nothing, and a failing one fails the transaction.
    let mut tx = db.begin().await.unwrap();
    let _alone = tx.prefetch(count()).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let bad = tx.prefetch(Q::read("SELECT n FROM no_such_table")).await;
    let failed = match bad {
        Err(_) => true, // Postgres runs it at once
        Ok(_) => ins("n", 15).execute(&mut tx).await.is_err(),
    };
    assert!(
        failed,
        "a failing prefetch fails the statement it travels with"
    );
    drop(tx);
    assert_eq!(ids().await, expected);

    // SQLite: a transaction dropped open whose rollback fails (here the transaction had
    // already ended) leaves its writer connection closed, and the next write runs on a new
    // one. A temporary table exists on its own connection only: it shows which one runs.
    if db.dialect() == rampart::store::Dialect::Sqlite {
        let marked = || async {
            let mut tx = db.begin().await.unwrap();
            let n: i64 =
                Q::read("SELECT COUNT(*) AS n FROM temp.sqlite_master WHERE name = 'marker'")
                    .fetch_scalar(&mut tx)
                    .await
                    .unwrap();
            tx.commit().await.unwrap();
            n == 1
        };
        let mut tx = db.begin().await.unwrap();
        Q::write("CREATE TEMP TABLE marker (x INTEGER)")
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(
            marked().await,
            "the writer connection is handed on, not replaced"
        );
        let mut tx = db.begin().await.unwrap();
        Q::write("COMMIT").execute(&mut tx).await.unwrap();
        drop(tx); // its ROLLBACK fails: no transaction is open
        let next = async {
            let mut tx = db.begin().await.unwrap();
            ins("o", 16).execute(&mut tx).await.unwrap();
            tx.commit().await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("a write after a failed rollback gets a connection");
        assert!(
            !marked().await,
            "the connection whose rollback failed was replaced"
        );
        expected.push(("o".to_owned(), 16));
        assert_eq!(ids().await, expected);
    }

    // Postgres: a locking read holds its lock until the commit (another transaction cannot
    // take the row meanwhile), and a transaction runs at READ COMMITTED whatever the server's
    // default: a row committed by another transaction after its first statement is seen.
    if db.dialect() == rampart::store::Dialect::Postgres {
        let lock = |nowait: bool| {
            Q::write(if nowait {
                "SELECT id FROM scratch WHERE id = 'a' FOR UPDATE NOWAIT"
            } else {
                "SELECT id FROM scratch WHERE id = 'a' FOR UPDATE"
            })
        };
        let mut holder = db.begin().await.unwrap();
        lock(false).fetch_rows(&mut holder).await.unwrap();
        let mut other = db.begin().await.unwrap();
        assert!(
            lock(true).fetch_rows(&mut other).await.is_err(),
            "the first transaction's row lock is still held"
        );
        drop(other);
        holder.commit().await.unwrap();
        let mut other = db.begin().await.unwrap();
        lock(true).fetch_rows(&mut other).await.unwrap();
        other.commit().await.unwrap();

        let mut reader = db.begin().await.unwrap();
        let first: i64 = Q::read("SELECT COUNT(*) AS n FROM scratch")
            .fetch_scalar(&mut reader)
            .await
            .unwrap();
        let mut writer = db.begin().await.unwrap();
        ins("p", 17).execute(&mut writer).await.unwrap();
        writer.commit().await.unwrap();
        let second: i64 = Q::read("SELECT COUNT(*) AS n FROM scratch")
            .fetch_scalar(&mut reader)
            .await
            .unwrap();
        reader.commit().await.unwrap();
        assert_eq!(
            second,
            first + 1,
            "READ COMMITTED: each statement sees what was committed before it"
        );
        // Two transactions updating one row: the second waits, then re-reads it (under
        // REPEATABLE READ it would fail with a serialization error instead).
        let mut a = db.begin().await.unwrap();
        Q::write("UPDATE scratch SET n = n + 1 WHERE id = 'p'")
            .execute(&mut a)
            .await
            .unwrap();
        let mut b = db.begin().await.unwrap();
        Q::read("SELECT COUNT(*) AS n FROM scratch")
            .fetch_scalar::<i64>(&mut b)
            .await
            .unwrap();
        let pending = tokio::spawn(async move {
            Q::write("UPDATE scratch SET n = n + 1 WHERE id = 'p'")
                .execute(&mut b)
                .await
                .map(|n| (n, b))
        });
        tokio::time::sleep(Duration::from_millis(100)).await; // b now waits on a's row lock
        a.commit().await.unwrap();
        let (n, b) = pending.await.unwrap().expect("no serialization failure");
        assert_eq!(n, 1);
        b.commit().await.unwrap();
        let p: i64 = Q::read("SELECT n FROM scratch WHERE id = 'p'")
            .fetch_scalar(&mut db.clone())
            .await
            .unwrap();
        assert_eq!(p, 19);
    }
}

/// SQLite: the WAL is checkpointed by a task of its own (`store::checkpoint`), not only when
/// the writer's threshold (10,000 pages) is crossed: a few hundred pages written reach the
/// database file within a couple of seconds. (Nothing to check on Postgres.)
async fn sqlite_checkpoints_in_the_background(store: Store) {
    use rampart::store::Q;
    let sql = Q::write;
    let app = spawn_app(store).await;
    let Some(path) = app.state.db.sqlite_path().map(|p| p.to_path_buf()) else {
        return app.stop().await;
    };
    let db = &app.state.db;
    let mut tx = db.begin().await.unwrap();
    sql("CREATE TABLE scratch_pages (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Let a checkpoint settle the schema, then measure.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = std::fs::metadata(&path).unwrap().len();
    // About 300 pages (1.2 MB), in 30 commits: under any automatic threshold.
    for i in 0..30 {
        let mut tx = db.begin().await.unwrap();
        for j in 0..10 {
            sql("INSERT INTO scratch_pages (id, body) VALUES ($1, $2)")
                .bind(i * 10 + j)
                .bind("x".repeat(4000))
                .execute(&mut tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let grown = eventually(Duration::from_secs(5), || {
        let path = path.clone();
        async move {
            let now = std::fs::metadata(&path).unwrap().len();
            (now >= before + 1_000_000).then_some(now)
        }
    })
    .await;
    assert!(
        grown.is_some(),
        "the database file stayed at {before} bytes: the WAL was not checkpointed"
    );
    app.stop().await;
}
