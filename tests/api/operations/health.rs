//! Deep health and alerts: checks, announcements, stale evaluations, worker heartbeats, metrics.

use std::time::Duration;

use crate::helpers::*;
use crate::receiver::{Receiver, verify};

crate::scenarios![
    deep_health_reports_checks_and_alerts,
    alerts_are_announced_once_and_posted_signed,
    a_stale_evaluation_never_flips_an_alert_back,
    metrics_cover_requests_guards_queues_and_dead_letters,
];

crate::plain_tests![a_worker_of_another_build_raises_build_mismatch_and_a_dead_one_worker_stale];

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
    let d = app_deep(&app).await;
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
        let d = app_deep(&app).await;
        (d["checks"]["workers:live"][0]["observedValue"].as_i64() >= Some(1)).then_some(())
    })
    .await;
    assert!(live.is_some());

    let org = app.org("Acme").await;
    for _ in 0..2 {
        insert_dead_letter(&app, &org, rampart::clock::now_ms()).await;
    }
    let d = app_deep(&app).await;
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
    let d = app_deep(&idle).await;
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
    // Both instances evaluate every 200 ms (the watchers are what is tested): four more rounds
    // for a duplicate announcement to show.
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
    // A later millisecond on the clock, so that `b`'s reading is newer than `read_at`.
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
        let d = app_deep(&api).await;
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
        alert_names(&app_deep(&api).await)
            .contains(&"worker_stale".to_owned())
            .then_some(())
    })
    .await
    .expect("worker_stale raised");
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
