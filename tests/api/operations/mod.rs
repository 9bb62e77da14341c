//! SPEC §7: deep health and alerts, heartbeats, operator actions, the status page, backups.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Receiver, verify};

crate::scenarios![
    deep_health_reports_checks_and_alerts,
    alerts_are_announced_once_and_posted_signed,
    a_stale_evaluation_never_flips_an_alert_back,
    operator_actions_are_guarded_validated_and_audited,
    incidents_reach_the_status_page_and_summary,
    branding_white_labels_the_status_page,
    metrics_cover_requests_guards_queues_and_dead_letters,
    backup_restores_into_either_store,
    backup_under_write_load_restores_consistently,
    a_corrupt_or_truncated_backup_is_refused_and_nothing_written,
    every_table_is_in_the_backup,
];

crate::plain_tests![a_worker_of_another_build_raises_build_mismatch_and_a_dead_one_worker_stale,];

/// Browser tests (ignored without Chromium).
pub fn chromium_tests() -> Vec<(&'static str, crate::Plain)> {
    vec![(
        "the_status_page_renders_in_chromium_without_csp_violations",
        || Box::pin(the_status_page_renders_in_chromium_without_csp_violations()),
    )]
}

async fn deep(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.ops_url("/health/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/health+json");
    res.json().await.unwrap()
}

fn alert_names(d: &Value) -> Vec<String> {
    d["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn insert_dead_letter(app: &TestApp, org: &Org, created_at: i64) -> String {
    let id = rampart::ids::DeadLetterId::new().to_string();
    rampart::store::Q::write("INSERT INTO dead_letters (id, org_id, environment, source, event_type, payload, reason, status, attempts, created_at, updated_at)
         VALUES ($1, $2, 'live', 'webhook_delivery', 'contact.created', '{}', 'retries_exhausted', 'open', 1, $3, $3)",
    )
    .bind(id.as_str())
    .bind(org.id.as_str())
    .bind(created_at)
    .execute(&mut app.state.db.clone())
    .await
    .unwrap();
    id
}

async fn deep_health_reports_checks_and_alerts(store: Store) {
    let app = spawn_app_with(
        store,
        &[
            ("RAMPART_ALERT_DLQ_SPIKE", "2"),
            ("RAMPART_ALERT_QUEUE_BACKLOG", "3"),
        ],
    )
    .await;
    let d = deep(&app).await;
    assert_eq!(d["status"], "pass", "{d}");
    assert_eq!(d["releaseId"], app.state.config.build_id.as_str());
    let store_key = format!(
        "{}:responseTime",
        if store == Store::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    for k in [
        store_key.as_str(),
        "jobs:backlog",
        "deadLetters:last5m",
        "workers:live",
        "workers:stale",
        "quota:failOpens",
    ] {
        let c = &d["checks"][k][0];
        assert!(
            c["status"].is_string() && c["time"].is_string() && c.get("observedValue").is_some(),
            "{k}: {d}"
        );
        assert!(
            c["componentType"].is_string() && c["observedUnit"].is_string(),
            "{k}"
        );
    }
    // A worker is running in this instance.
    let live = eventually(Duration::from_secs(5), || async {
        let d = deep(&app).await;
        (d["checks"]["workers:live"][0]["observedValue"].as_i64() >= Some(1)).then_some(())
    })
    .await;
    assert!(live.is_some());

    let org = app.org("Acme").await;
    for _ in 0..2 {
        insert_dead_letter(&app, &org, rampart::clock::now_ms()).await;
    }
    let d = deep(&app).await;
    assert!(alert_names(&d).contains(&"dlq_spike".to_owned()), "{d}");
    assert_eq!(d["status"], "warn");
    assert_eq!(d["checks"]["deadLetters:last5m"][0]["status"], "warn");

    // Due jobs pile up where no worker runs.
    let idle = spawn_on(
        std::sync::Arc::new(TestDb::new(store).await),
        &[("RAMPART_ALERT_QUEUE_BACKLOG", "3")],
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    /// A kind of job no worker here runs: it only waits in the queue.
    struct Noop;
    impl rampart::jobs::JobKind for Noop {
        const KIND: &'static str = "test.noop";
        type Payload = rampart::jobs::NoPayload;
    }
    let mut tx = idle.state.db.begin().await.unwrap();
    for _ in 0..4 {
        let job = rampart::jobs::queue::NewJob::of::<Noop>(None, &Default::default()).unwrap();
        rampart::jobs::queue::enqueue(&mut tx, job).await.unwrap();
    }
    tx.commit().await.unwrap();
    let d = deep(&idle).await;
    assert!(alert_names(&d).contains(&"queue_backlog".to_owned()), "{d}");
    assert_eq!(d["checks"]["jobs:backlog"][0]["observedValue"], 4);
}

/// Moves a dead letter out of the 5-minute window that dlq_spike counts.
async fn age_out(app: &TestApp, dead_letter: &str) {
    rampart::store::Q::write("UPDATE dead_letters SET created_at = $2 WHERE id = $1")
        .bind(dead_letter)
        .bind(rampart::clock::now_ms() - 600_000)
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
}

async fn alerts_are_announced_once_and_posted_signed(store: Store) {
    const SECRET: &str = "whsec_QWxlcnRzQXJlU2lnbmVkVG9vMTIzNDU2Nzg5MA==";
    let rx = Receiver::start().await;
    let url = rx.url("/ops");
    let extra = [
        ("RAMPART_OPS_WEBHOOK_URL", url.as_str()),
        ("RAMPART_OPS_WEBHOOK_SECRET", SECRET),
        ("RAMPART_ALERT_INTERVAL", "200ms"),
        ("RAMPART_ALERT_DLQ_SPIKE", "1"),
    ];
    let a = spawn_app_with(store, &extra).await;
    // Two instances watch; each transition must be announced once.
    let _b = spawn_on(a.db.clone(), &extra, Default::default()).await;
    let org = a.org("Acme").await;
    let dl = insert_dead_letter(&a, &org, rampart::clock::now_ms()).await;
    let hits = rx.wait_for(1, Duration::from_secs(10)).await;
    let h = &hits[0];
    assert_eq!(verify(h, &[SECRET]), vec![0], "alerts are signed");
    assert_eq!(h.json()["type"], "alert.started");
    assert_eq!(h.json()["data"]["alert"], "dlq_spike");
    // Out of the 5-minute window: the alert ends.
    age_out(&a, &dl).await;
    let hits = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(hits[1].json()["type"], "alert.ended");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let all: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        all,
        ["alert.started", "alert.ended"],
        "each transition once across both instances"
    );
}

/// Two instances race: one reads the figures (alert on), the other then sees the alert end and
/// announces it; the first one's stale reading must not start the alert again.
async fn a_stale_evaluation_never_flips_an_alert_back(store: Store) {
    use rampart::ops::alerts::{announce, evaluate};
    // The test drives the evaluations itself (the watchers evaluate once, at start-up).
    let extra = [
        ("RAMPART_ALERT_INTERVAL", "1h"),
        ("RAMPART_ALERT_DLQ_SPIKE", "1"),
    ];
    let a = spawn_app_with(store, &extra).await;
    let b = spawn_on(a.db.clone(), &extra, Default::default()).await;
    let org = a.org("Acme").await;
    let dl = insert_dead_letter(&a, &org, rampart::clock::now_ms()).await;
    let is_on = |active: &[rampart::ops::deep_health::Alert]| {
        active
            .iter()
            .any(|x| x.name == rampart::ops::deep_health::AlertName::DlqSpike)
    };
    assert!(is_on(&evaluate(&a.state).await.unwrap()), "started");

    // `a` reads its figures: still on.
    let read_at = rampart::clock::now_ms();
    let stale = evaluate(&a.state).await.unwrap();
    assert!(is_on(&stale));
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Meanwhile the spike leaves the window and `b` announces the end.
    age_out(&a, &dl).await;
    assert!(!is_on(&evaluate(&b.state).await.unwrap()), "ended");
    // `a` now records what it read before that.
    announce(&a.state, &stale, read_at).await.unwrap();
    let active = rampart::store::Q::read("SELECT active FROM alert_state WHERE name = 'dlq_spike'")
        .fetch_row(&mut a.state.db.clone())
        .await
        .unwrap()
        .get::<bool>("active")
        .unwrap();
    assert!(!active, "the stale reading flipped the alert back on");
}

async fn a_worker_of_another_build_raises_build_mismatch_and_a_dead_one_worker_stale() {
    use crate::cli::{sigkill, start_worker};
    let store = if postgres_url().is_some() {
        Store::Postgres
    } else {
        Store::Sqlite
    };
    let db = std::sync::Arc::new(TestDb::new(store).await);
    let extra = [("RAMPART_ALERT_WORKER_STALE", "2s")];
    let api = spawn_on(
        db.clone(),
        &extra,
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let mut env: Vec<(String, String)> = api
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.push(("RAMPART_BUILD_ID".into(), "some-other-build".into()));
    let mut worker = start_worker(&env).await;
    let d = eventually(Duration::from_secs(10), || async {
        let d = deep(&api).await;
        alert_names(&d)
            .contains(&"build_mismatch".to_owned())
            .then_some(d)
    })
    .await
    .expect("build_mismatch raised");
    let a = d["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "build_mismatch")
        .unwrap();
    assert_eq!(a["observedValue"][0]["build_id"], "some-other-build");
    let row =
        rampart::store::Q::read("SELECT build_id, hostname, started_at, last_seen FROM workers")
            .fetch_row(&mut api.state.db.clone())
            .await
            .unwrap();
    assert_eq!(row.get::<String>("build_id").unwrap(), "some-other-build");
    assert!(row.get::<i64>("last_seen").unwrap() >= row.get::<i64>("started_at").unwrap());
    sigkill(&mut worker).await;
    eventually(Duration::from_secs(10), || async {
        alert_names(&deep(&api).await)
            .contains(&"worker_stale".to_owned())
            .then_some(())
    })
    .await
    .expect("worker_stale raised");
}

async fn operator(app: &TestApp, token: &str, action: &str, params: Value) -> reqwest::Response {
    app.post_as(
        "/v1/operator/actions",
        token,
        &json!({ "action": action, "params": params }),
    )
    .await
}

async fn operator_actions_are_guarded_validated_and_audited(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let admin = app.token_for(&org, "admin");
    // Tier full is required.
    problem_of(
        operator(&app, &admin, "pause_endpoint", json!({})).await,
        403,
        "tier_insufficient",
    )
    .await;
    app.set_subscription(&org, "active", "full").await;
    problem_of(
        operator(
            &app,
            &app.token_for(&org, "developer"),
            "pause_endpoint",
            json!({}),
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
    let key = app.full_key(&org).await;
    problem_of(
        operator(&app, &key, "pause_endpoint", json!({})).await,
        403,
        "insufficient_scope",
    )
    .await;
    let res = app
        .req(Method::POST, "/v1/operator/actions", &admin)
        .json(&json!({ "action": "pause_endpoint", "params": {} }))
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "idempotency_key_required").await;
    let p = problem_of(
        operator(&app, &admin, "reboot_universe", json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "action");
    let p = problem_of(
        operator(&app, &admin, "pause_endpoint", json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "params.endpoint_id");
    // A malformed id in a body is a 422; a well-formed unknown one a 404.
    problem_of(
        operator(
            &app,
            &admin,
            "pause_endpoint",
            json!({ "endpoint_id": "ep_nope" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem_of(
        operator(
            &app,
            &admin,
            "pause_endpoint",
            json!({ "endpoint_id": rampart::ids::EndpointId::new() }),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    let ep = json_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "https://example.com/h", "events": ["*"] }),
        )
        .await,
        201,
    )
    .await;
    let ep_id = ep["id"].as_str().unwrap();
    let res = app
        .req(Method::POST, "/v1/operator/actions", &admin)
        .header("idempotency-key", "op-1")
        .header("x-request-id", "op-request-1")
        .json(&json!({ "action": "pause_endpoint", "params": { "endpoint_id": ep_id } }))
        .send()
        .await
        .unwrap();
    let out = json_of(res, 200).await;
    assert_eq!(out["result"]["status"], "paused");
    let out = json_of(
        operator(
            &app,
            &admin,
            "resume_endpoint",
            json!({ "endpoint_id": ep_id }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(out["result"]["status"], "active");
    let out = json_of(
        operator(
            &app,
            &admin,
            "replay_dead_letters",
            json!({ "endpoint_id": ep_id }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(out["result"]["replayed"], 0);
    // Incidents are the platform org's.
    let p = problem_of(
        operator(
            &app,
            &admin,
            "open_incident",
            json!({ "title": "x", "message": "y" }),
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("platform"));
    let row = rampart::store::Q::read("SELECT actor_type, actor_id, action, target_id, request_id FROM audit_logs WHERE request_id = 'op-request-1'")
        .fetch_row(&mut app.state.db.clone())
        .await
        .unwrap();
    assert_eq!(row.get::<String>("action").unwrap(), "operator.action");
    assert_eq!(row.get::<String>("actor_type").unwrap(), "user");
    assert_eq!(
        row.get::<Option<String>>("target_id").unwrap().as_deref(),
        Some(ep_id)
    );
    let actions = app.audit_actions(&org).await;
    assert!(
        actions.contains(&("operator.action".into(), "denied".into())),
        "{actions:?}"
    );
}

async fn platform(app: &TestApp) -> (Org, String) {
    let mut tx = app.state.db.begin().await.unwrap();
    let org = rampart::orgs::create(&mut tx, "Platform", true, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let org = Org {
        id: org.id.to_string(),
    };
    app.set_subscription(&org, "active", "full").await;
    let token = app.token_for(&org, "owner");
    (org, token)
}

async fn incidents_reach_the_status_page_and_summary(store: Store) {
    let app = spawn_app(store).await;
    let (_, op) = platform(&app).await;
    let s = json_of(app.get("/status/summary.json").await, 200).await;
    for k in [
        "page",
        "status",
        "components",
        "incidents",
        "scheduled_maintenances",
    ] {
        assert!(s.get(k).is_some(), "{k}: {s}");
    }
    let ids: Vec<&str> = s["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["api", "webhooks", "scheduler", "workers"]);
    for c in s["components"].as_array().unwrap() {
        assert!(
            [
                "operational",
                "degraded_performance",
                "partial_outage",
                "major_outage",
                "under_maintenance"
            ]
            .contains(&c["status"].as_str().unwrap())
        );
    }
    let p = problem_of(
        operator(
            &app,
            &op,
            "open_incident",
            json!({ "title": "Webhook delays", "message": "Looking", "components": ["nope"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "params.components[0]");
    let out = json_of(
        operator(&app, &op, "open_incident", json!({ "title": "Webhook delays", "message": "We are looking into it", "impact": "major", "components": ["webhooks"] })).await,
        200,
    )
    .await;
    let inc = out["result"]["incident_id"].as_str().unwrap().to_owned();
    json_of(operator(&app, &op, "update_incident", json!({ "incident_id": inc, "status": "identified", "message": "A slow receiver pool" })).await, 200).await;
    let s = json_of(app.get("/status/summary.json").await, 200).await;
    assert_eq!(s["status"]["indicator"], "major");
    let webhooks = s["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "webhooks")
        .unwrap();
    assert_eq!(webhooks["status"], "partial_outage");
    let i = &s["incidents"][0];
    assert_eq!(i["name"], "Webhook delays");
    assert_eq!(i["status"], "identified");
    assert_eq!(i["incident_updates"].as_array().unwrap().len(), 2);
    let html = app.get("/status").await;
    let csp = html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("'nonce-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = html.text().await.unwrap();
    assert!(page.contains("Webhook delays") && page.contains("A slow receiver pool"));
    assert_eq!(
        page.matches("class=\"bar ").count(),
        90 * 4,
        "90 uptime bars per component"
    );
    assert!(!page.contains("<script"), "works without JavaScript");
    for secret in ["127.0.0.1", "sqlite", "postgres", "org_", "rk_live"] {
        assert!(!page.contains(secret), "status page leaks {secret}");
        assert!(!s.to_string().contains(secret), "summary leaks {secret}");
    }
    json_of(
        operator(&app, &op, "resolve_incident", json!({ "incident_id": inc })).await,
        200,
    )
    .await;
    let s = json_of(app.get("/status/summary.json").await, 200).await;
    assert!(s["incidents"].as_array().unwrap().is_empty());
    assert_eq!(s["status"]["indicator"], "none");
    let page = app.get("/status").await.text().await.unwrap();
    assert!(page.contains("Past incidents"));
    problem_of(
        operator(&app, &op, "resolve_incident", json!({ "incident_id": inc })).await,
        422,
        "validation_failed",
    )
    .await;
}

async fn branding_white_labels_the_status_page(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Partner").await;
    let admin = app.token_for(&org, "admin");
    let p = problem_of(
        app.req(Method::PUT, "/v1/branding", &admin).json(&json!({ "name": "Acme", "primary_color": "red;}body{display:none", "logo_url": "javascript:alert(1)" })).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 2);
    let res = app
        .req(Method::PUT, "/v1/branding", &admin)
        .json(&json!({ "name": "Acme Messaging", "primary_color": "#aa0000", "accent_color": "#00aa00", "logo_url": "https://cdn.example.com/logo.png" }))
        .send()
        .await
        .unwrap();
    let b = json_of(res, 200).await;
    assert!(
        b["status_page_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/status?org={}", org.id))
    );
    problem_of(
        app.req(
            Method::PUT,
            "/v1/branding",
            &app.token_for(&org, "developer"),
        )
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap(),
        403,
        "insufficient_permission",
    )
    .await;
    let page = app
        .get(&format!("/status?org={}", org.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Acme Messaging status")
            && page.contains("#aa0000")
            && page.contains("https://cdn.example.com/logo.png")
    );
    let s = json_of(
        app.get(&format!("/status/summary.json?org={}", org.id))
            .await,
        200,
    )
    .await;
    assert_eq!(s["page"]["name"], "Acme Messaging");
    let default = app.get("/status").await.text().await.unwrap();
    assert!(default.contains("Rampart status"));
}

async fn metrics_cover_requests_guards_queues_and_dead_letters(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["messages"], &["read"]).await;
    problem_of(
        app.get_as("/v1/contacts", &key).await,
        403,
        "insufficient_scope",
    )
    .await;
    insert_dead_letter(&app, &org, rampart::clock::now_ms()).await;
    let text = app.metrics().await;
    for m in [
        "rampart_http_requests_total",
        "rampart_http_request_duration_seconds_bucket",
        "rampart_guard_refusals_total{code=\"insufficient_scope\"}",
        "rampart_dead_letters_open",
        "rampart_jobs_due_backlog",
        "rampart_workers_live",
        "rampart_db_pool_connections",
    ] {
        assert!(text.contains(m), "{m} missing from /metrics");
    }
}

/// A small but complete dataset: users, keys, audit chain, contacts, events, deliveries.
async fn populate(app: &TestApp) -> (Org, String) {
    let org = app.org("Acme").await;
    app.user(
        &org,
        "ada@example.com",
        "owner",
        "correct horse battery staple",
    )
    .await;
    let key = app.full_key(&org).await;
    let admin = app.token_for(&org, "admin");
    for i in 0..3 {
        app.post_as(
            "/v1/developer/keys",
            &admin,
            &json!({ "name": format!("k{i}"), "scopes": ["contacts"], "permissions": ["read"] }),
        )
        .await;
    }
    app.post_as(
        "/v1/webhooks",
        &key,
        &json!({ "url": "https://example.com/h", "events": ["*"] }),
    )
    .await;
    for i in 0..20 {
        app.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": format!("c{i}"), "attributes": { "n": i, "flag": true } }),
        )
        .await;
    }
    (org, key)
}

async fn backup_restores_into_either_store(store: Store) {
    let app = spawn_app(store).await;
    let (org, key) = populate(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.ndjson");
    let summary = rampart::ops::backup::backup(&app.state.db, &file, "test", &mut |_| {})
        .await
        .unwrap();
    assert_eq!(summary.tables["contacts"], 20);
    let mut targets = vec![Store::Sqlite];
    if postgres_url().is_some() {
        targets.push(Store::Postgres);
    }
    for target in targets {
        let db = std::sync::Arc::new(TestDb::new(target).await);
        let restored_db = rampart::store::Db::connect(&db.url, &Default::default())
            .await
            .unwrap();
        let counts = rampart::ops::backup::restore(&restored_db, &file, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(counts, summary.tables, "{store:?} → {target:?}");
        let (n, brk) = rampart::audit::verify(&mut restored_db.clone(), None)
            .await
            .unwrap();
        assert!(
            n > 0 && brk.is_none(),
            "the audit chain survives {store:?} → {target:?}: {brk:?}"
        );
        restored_db.close().await;
        // The restored deployment serves the same data with the same keys.
        let restored = spawn_on(db.clone(), &[], Default::default()).await;
        let list = json_of(restored.get_as("/v1/contacts?limit=100", &key).await, 200).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 20);
        assert_eq!(list["data"][0]["attributes"]["flag"], true);
        let login = restored
            .login("ada@example.com", "correct horse battery staple")
            .await;
        assert_eq!(login["org_id"], org.id.as_str());
        // Restoring twice is refused: the target is no longer empty.
        let again = rampart::store::Db::connect(&db.url, &Default::default())
            .await
            .unwrap();
        let err = rampart::ops::backup::restore(&again, &file, &mut |_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}

async fn backup_under_write_load_restores_consistently(store: Store) {
    let app = spawn_app(store).await;
    let (_, key) = populate(&app).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let req = app.client.clone();
        let url = app.url("/v1/contacts");
        let key = key.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                req.post(&url)
                    .bearer_auth(&key)
                    .json(&json!({ "external_key": format!("load-{i}") }))
                    .send()
                    .await
                    .unwrap();
                i += 1;
                written.store(i, std::sync::atomic::Ordering::Release);
            }
        })
    };
    let so_far = || written.load(std::sync::atomic::Ordering::Acquire);
    let at_least = |n: usize| {
        eventually(Duration::from_secs(20), move || async move {
            (so_far() >= n).then_some(())
        })
    };
    at_least(3).await.expect("the writer is writing");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.ndjson");
    rampart::ops::backup::backup(&app.state.db, &file, "test", &mut |_| {})
        .await
        .unwrap();
    // The writer goes on after the snapshot too, so the backup saw writes on both sides of it.
    at_least(so_far() + 3)
        .await
        .expect("writes go on after the backup");
    stop.cancel();
    writer.await.unwrap();
    let db = TestDb::new(Store::Sqlite).await;
    let target = rampart::store::Db::connect(&db.url, &Default::default())
        .await
        .unwrap();
    rampart::ops::backup::restore(&target, &file, &mut |_| {})
        .await
        .unwrap();
    let n = |q: &'static str| {
        let t = target.clone();
        async move {
            rampart::store::Q::read(q)
                .fetch_row(&mut t.clone())
                .await
                .unwrap()
                .get::<i64>("n")
                .unwrap()
        }
    };
    // Each contact and its event are written together: a consistent snapshot has as many of one
    // as of the other, and every delivery's event.
    assert_eq!(
        n("SELECT COUNT(*) AS n FROM contacts").await,
        n("SELECT COUNT(*) AS n FROM events WHERE type = 'contact.created'").await
    );
    assert_eq!(n("SELECT COUNT(*) AS n FROM deliveries d WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id)").await, 0);
    assert!(
        rampart::audit::verify(&mut target.clone(), None)
            .await
            .unwrap()
            .1
            .is_none()
    );
}

async fn a_corrupt_or_truncated_backup_is_refused_and_nothing_written(store: Store) {
    let app = spawn_app(store).await;
    populate(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.ndjson");
    rampart::ops::backup::backup(&app.state.db, &file, "test", &mut |_| {})
        .await
        .unwrap();
    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    let pos = good.len() / 2;
    flipped[pos] = if flipped[pos] == b'a' { b'b' } else { b'a' };
    let cases = [
        ("flipped", flipped),
        ("truncated", good[..good.len() * 2 / 3].to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in cases {
        let bad = dir.path().join(format!("{name}.ndjson"));
        std::fs::write(&bad, bytes).unwrap();
        let db = TestDb::new(store).await;
        let target = rampart::store::Db::connect(&db.url, &Default::default())
            .await
            .unwrap();
        let err = rampart::ops::backup::restore(&target, &bad, &mut |_| {})
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("corrupt or truncated"),
            "{name}: {err}"
        );
        let orgs = rampart::store::Q::read("SELECT COUNT(*) AS n FROM orgs")
            .fetch_row(&mut target.clone())
            .await;
        // Either the schema was never created or it holds nothing.
        if let Ok(r) = orgs {
            assert_eq!(
                r.get::<i64>("n").unwrap(),
                0,
                "{name}: nothing half-restored"
            );
        }
    }
    // Through the CLI too: a clear message, exit code 1.
    if store == Store::Sqlite {
        let bad = dir.path().join("truncated.ndjson");
        let target = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", target.path().join("r.db").display());
        let (code, _, err) = run_bin(
            &["restore", "--from", bad.to_str().unwrap()],
            &[("RAMPART_DATABASE_URL", url.as_str())],
            None,
        )
        .await;
        assert_eq!(code, 1);
        assert!(err.contains("corrupt or truncated"), "{err}");
        let (code, out, err) = run_bin(
            &[
                "backup",
                "--out",
                dir.path().join("cli.ndjson").to_str().unwrap(),
                "--json",
            ],
            &[("RAMPART_DATABASE_URL", app.db.url.as_str())],
            None,
        )
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("contacts: 20 rows"),
            "progress is shown: {err}"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["tables"]["contacts"], 20);
    }
}

async fn every_table_is_in_the_backup(store: Store) {
    let app = spawn_app(store).await;
    let missing = rampart::ops::backup::unlisted_tables(&app.state.db)
        .await
        .unwrap();
    assert!(
        missing.is_empty(),
        "tables the backup does not cover: {missing:?}"
    );
}

async fn the_status_page_renders_in_chromium_without_csp_violations() {
    let app = spawn_app(Store::Sqlite).await;
    let (_, op) = platform(&app).await;
    json_of(operator(&app, &op, "open_incident", json!({ "title": "Scheduled dispatch delayed", "message": "Investigating", "components": ["scheduler"] })).await, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("status.png");
    let out = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1400",
            "--virtual-time-budget=3000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(app.url("/status"))
        .output()
        .await
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        shot.exists(),
        "a screenshot was taken; chromium said: {stderr}"
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "the screenshot has content"
    );
    if let Ok(dest) = std::env::var("RAMPART_TEST_SCREENSHOT") {
        std::fs::copy(&shot, dest).unwrap();
    }
    assert!(
        !stderr.contains("Content Security Policy") && !stderr.contains("Content-Security-Policy"),
        "CSP violation: {stderr}"
    );
    // The browser had a report endpoint for violations and used it for none.
    let metrics = app.metrics().await;
    assert!(
        !metrics.contains("rampart_csp_violations_total"),
        "violations were reported"
    );
}
