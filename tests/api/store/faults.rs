//! Faults of the real database under a running deployment: Postgres going away and coming
//! back. A TCP proxy in front of the real Postgres stands in for the outage, so that nothing
//! else on the machine is disturbed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;
use crate::receiver::Receiver;
use crate::webhooks::endpoint;

/// Tests that only make sense on Postgres (ignored without `RAMPART_TEST_POSTGRES_URL`).
pub fn postgres_only() -> Vec<(&'static str, crate::Plain)> {
    vec![
        ("postgres_down_and_back", || {
            Box::pin(postgres_down_and_back())
        }),
        ("scheduled_messages_survive_an_outage", || {
            Box::pin(scheduled_messages_survive_an_outage())
        }),
        ("enqueueing_notifies_listeners_after_commit", || {
            Box::pin(enqueueing_notifies_listeners_after_commit())
        }),
    ]
}

/// A TCP proxy that can cut every connection and refuse new ones, then let them through again.
pub struct Outage {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: Arc<Mutex<CancellationToken>>,
}

impl Outage {
    async fn start(upstream: SocketAddr) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let (u, c) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused as soon as it opens
                }
                let token = c.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Outage { addr, up, cut }
    }

    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn create_contact(app: &TestApp, key: &str, external_key: &str) -> reqwest::Response {
    app.post_as(
        "/v1/contacts",
        key,
        &json!({ "external_key": external_key, "name": "Ada" }),
    )
    .await
}

/// A server whose Postgres goes through the proxy ([`Outage`]).
pub async fn spawn_behind_outage() -> (TestApp, Outage) {
    let db = TestDb::new(Store::Postgres).await;
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .expect("RAMPART_TEST_POSTGRES_URL names an IP address");
    let outage = Outage::start(upstream).await;
    url.set_port(Some(outage.addr.port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    let app = spawn_on(
        Arc::new(db),
        &[("RAMPART_DATABASE_URL", url.as_str())],
        Default::default(),
    )
    .await;
    (app, outage)
}

/// Postgres goes away under a server with its worker, then comes back: in between, requests get
/// a 503 `service_unavailable` problem (nothing panics, nothing is half written) and readiness
/// says so; afterwards the same process serves and delivers again without a restart.
async fn postgres_down_and_back() {
    let (app, outage) = spawn_behind_outage().await;
    let rx = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    let before = json_of(create_contact(&app, &key, "before").await, 201).await;
    let before_path = format!("/v1/contacts/{}", before["id"].as_str().unwrap());
    rx.wait_for(1, Duration::from_secs(15)).await;

    outage.down();
    let ready = eventually(Duration::from_secs(20), || async {
        let res = app.get("/health/ready").await;
        (res.status() == 503).then_some(res)
    })
    .await
    .expect("readiness reports the outage");
    problem_of(ready, 503, "service_unavailable").await;
    let p = problem_of(
        create_contact(&app, &key, "during").await,
        503,
        "service_unavailable",
    )
    .await;
    let text = p.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.to_lowercase().contains("sqlx"),
        "no internals leak: {text}"
    );
    // Concurrent reads share a batch (`contacts/reads.rs`): when it fails, each read is
    // answered with its own error, none hangs.
    let reads = (0..8).map(|_| app.get_as(&before_path, &key));
    for res in futures_util::future::join_all(reads).await {
        problem_of(res, 503, "service_unavailable").await;
    }

    outage.restore();
    eventually(Duration::from_secs(30), || async {
        (app.get("/health/ready").await.status() == 200).then_some(())
    })
    .await
    .expect("ready again once Postgres is back");
    json_of(create_contact(&app, &key, "after").await, 201).await;
    let reads = (0..8).map(|_| app.get_as(&before_path, &key));
    for res in futures_util::future::join_all(reads).await {
        assert_eq!(json_of(res, 200).await["external_key"], "before");
    }
    // The refused write left nothing behind, and the worker delivers again.
    let listed: Value = json_of(
        app.get_as("/v1/contacts?external_key=during", &key).await,
        200,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");
    let hits = rx.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(hits.len(), 2, "the delivery after the outage arrives");
    assert!(
        String::from_utf8_lossy(&hits[1].body).contains("\"after\""),
        "{}",
        String::from_utf8_lossy(&hits[1].body)
    );
    app.stop().await;
}

/// Scheduled messages fall due while Postgres is away: the scheduler fails to take them, backs
/// off, and once the database is back dispatches every one exactly once; none is failed or
/// dead-lettered for the outage.
async fn scheduled_messages_survive_an_outage() {
    let (app, outage) = spawn_behind_outage().await;
    let (channel, key, conv) = crate::messaging::channel_setup(&app).await;
    // Far enough ahead that 20 sequential creates finish first on a slow, busy machine
    // (1.5 s was not, once: a create answered 422 send_at_not_in_future).
    let due = rampart::clock::now_ms() + 5000;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let s = json_of(
            crate::messaging::schedule(&app, &key, &conv, due).await,
            201,
        )
        .await;
        ids.push(s["id"].as_str().unwrap().to_owned());
    }
    outage.down();
    let wait = u64::try_from(due + 2000 - rampart::clock::now_ms()).unwrap_or(0);
    // Well past send_at, with the database still away: the schedule and the outage's length
    // are what is tested, so the wait is real time.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(
        channel.hits().len(),
        0,
        "nothing can be dispatched meanwhile"
    );
    outage.restore();
    crate::messaging::assert_each_dispatched_once(&app, &key, &channel, &ids).await;
    let dls = json_of(app.get_as("/v1/dead-letters?status=open", &key).await, 200).await;
    assert_eq!(dls["data"].as_array().unwrap().len(), 0, "{dls}");
    app.stop().await;
}

/// Other instances' workers are woken by `NOTIFY rampart_jobs`, sent after the enqueueing
/// transaction commits (not inside it): a `LISTEN`ing connection gets a notification once a
/// write has enqueued a delivery, and the delivery is already visible when it arrives; a burst
/// of writes sends no more notifications than writes (requests in flight are merged).
async fn enqueueing_notifies_listeners_after_commit() {
    let app = spawn_on(
        Arc::new(TestDb::new(Store::Postgres).await),
        &[],
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let rx = Receiver::start().await;
    endpoint(&app, &key, &rx.url("/"), json!({})).await;
    let mut listener = sqlx::postgres::PgListener::connect(&app.db.url)
        .await
        .unwrap();
    listener.listen("rampart_jobs").await.unwrap();

    let res = create_contact(&app, &key, "first").await;
    assert_eq!(res.status(), 201);
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a NOTIFY within 5 s")
        .unwrap();
    assert_eq!(n.channel(), "rampart_jobs");
    let queued = count(
        &app,
        "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'webhook.deliver'",
        &[],
    )
    .await;
    assert_eq!(queued, 1, "the job is committed before its wake-up arrives");

    let writes = 40;
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..writes {
        let (client, url, key) = (app.client.clone(), app.url("/v1/contacts"), key.clone());
        burst.spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({ "external_key": format!("burst-{i}") }))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), 201);
    }
    let mut notified = 0;
    while let Ok(n) = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await {
        assert_eq!(n.unwrap().channel(), "rampart_jobs");
        notified += 1;
    }
    assert!(
        (1..=writes).contains(&notified),
        "{notified} notifications for {writes} writes"
    );
}
