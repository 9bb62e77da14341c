//! The OpenAPI document and the docs page.

use crate::helpers::*;

crate::scenarios![
    openapi_document_lists_every_route_with_its_errors,
    docs_page_is_self_contained_with_a_nonce_csp,
];

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
