#![expect(
    dead_code,
    reason = "each test module uses a different part of the helpers"
)]
//! Spawning the real application on port 0 against a fresh store, and talking to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rampart::app::{App, ServeOptions};
use rampart::config::Config;
use rampart::state::AppState;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> Option<String> {
    std::env::var("RAMPART_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn redis_url() -> Option<String> {
    std::env::var("RAMPART_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A shared secret so that several instances of one test read each other's tokens.
pub const TEST_SECRET: &str = "test-secret-key-0123456789abcdef0123456789";

/// A fresh database: a SQLite file in a temporary directory, or a new Postgres database that
/// is dropped when this value is.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(store: Store) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match store {
            Store::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("rampart.db").display()),
                dir,
                pg_name: None,
            },
            Store::Postgres => {
                let admin = postgres_url().expect("RAMPART_TEST_POSTGRES_URL");
                let name = format!("rampart_t_{}", uuid::Uuid::now_v7().simple());
                pg_admin(&admin, &format!("CREATE DATABASE \"{name}\"")).await;
                TestDb {
                    url: with_db_name(&admin, &name),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub fn store(&self) -> Store {
        if self.pg_name.is_some() {
            Store::Postgres
        } else {
            Store::Sqlite
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let (Some(name), Some(admin)) = (self.pg_name.take(), postgres_url()) {
            // Drop runs outside async; a short-lived runtime on its own thread does the work.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(pg_admin(
                        &admin,
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                    ));
                }
            })
            .join();
        }
    }
}

pub fn with_db_name(admin: &str, name: &str) -> String {
    let base = admin.split('?').next().unwrap_or(admin);
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |i| start + i);
    format!("{}/{name}", &base[..end])
}

pub async fn pg_admin(admin: &str, statement: &str) {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to RAMPART_TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    let _ = c.close().await;
}

/// The base configuration of a test instance.
pub fn base_env(db: &TestDb) -> HashMap<String, String> {
    let mut env = HashMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("RAMPART_DATABASE_URL", db.url.clone());
    set("RAMPART_LISTEN", "127.0.0.1:0".into());
    set("RAMPART_OPS_LISTEN", "127.0.0.1:0".into());
    set("RAMPART_DATA_DIR", db.dir.path().display().to_string());
    set("RAMPART_SECRET_KEY", TEST_SECRET.into());
    set("RAMPART_WEBHOOK_ALLOW_PRIVATE", "true".into());
    set("RAMPART_RETRY_BASE_DELAY", "100ms".into());
    set("RAMPART_RETRY_MAX_DELAY", "1s".into());
    set("RAMPART_SHUTDOWN_TIMEOUT", "5s".into());
    set("RAMPART_PUBLIC_RATE_LIMIT", "100000/min".into());
    set("RAMPART_LOGIN_RATE_LIMIT", "100000/min".into());
    // Tests fire bursts from one org; the plan limits have their own tests.
    set("RAMPART_PLAN_STANDARD_RATE_LIMIT", "100000/s".into());
    env
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub ops: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub env: HashMap<String, String>,
    pub db: std::sync::Arc<TestDb>,
    /// The job handlers [`TestApp::drain_jobs`] runs, built on first use.
    jobs: std::sync::OnceLock<rampart::jobs::Registry>,
    token: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app(store: Store) -> TestApp {
    spawn_app_with(store, &[]).await
}

/// An instance without its in-process worker: background work runs only when the test calls
/// [`TestApp::drain_jobs`].
pub async fn spawn_quiet(store: Store, extra: &[(&str, &str)]) -> TestApp {
    let db = std::sync::Arc::new(TestDb::new(store).await);
    spawn_on(db, extra, ServeOptions { no_worker: true }).await
}

pub async fn spawn_app_with(store: Store, extra: &[(&str, &str)]) -> TestApp {
    let db = std::sync::Arc::new(TestDb::new(store).await);
    spawn_on(db, extra, ServeOptions::default()).await
}

/// Starts an instance on an existing test database (a second instance of the same
/// deployment shares it).
pub async fn spawn_on(
    db: std::sync::Arc<TestDb>,
    extra: &[(&str, &str)],
    options: ServeOptions,
) -> TestApp {
    rampart::outbound::install_crypto_provider();
    let mut env = base_env(&db);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::from_map(env.clone()).expect("test config");
    let app = App::build(config, options).await.expect("app builds");
    let addr = app.api_addr();
    let ops = app.ops_addr();
    let state = app.state().clone();
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move {
        app.run(t).await.expect("app runs");
    });
    TestApp {
        addr,
        ops,
        client: client(),
        state,
        env,
        db,
        jobs: std::sync::OnceLock::new(),
        token,
        handle: Some(handle),
    }
}

pub fn client() -> reqwest::Client {
    rampart::outbound::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{}", self.ops, path)
    }

    /// The ops listener's `/metrics` text (no ops token configured).
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.ops_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Runs every due job (and those they enqueue) to completion, here and now: how a test
    /// waits for background work when time is not what it tests. Spawn the app with
    /// `ServeOptions { no_worker: true }` (see [`spawn_quiet`]) so no worker races it.
    pub async fn drain_jobs(&self) -> usize {
        let jobs = self
            .jobs
            .get_or_init(|| rampart::app::job_registry(&self.state));
        rampart::jobs::runner::drain(&self.state, jobs)
            .await
            .expect("the jobs run")
    }

    /// Stops the instance and waits for it to finish draining.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Reads a JSON body, asserting the status first (with the body in the failure message).
pub async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({ct}): {text}"))
}

/// Asserts a problem response with `status` and `code`, returning the document.
pub async fn problem_of(res: reqwest::Response, status: u16, code: &str) -> Value {
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let rid = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let p = json_of(res, status).await;
    assert_eq!(ct, "application/problem+json", "{p}");
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status, "{p}");
    assert_eq!(p["request_id"], rid.as_str(), "{p}");
    p
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        // A poll interval: what `f` waits for happens in another task or process.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The path of the real binary, for tests that run it as a process.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// Runs the binary with `args`, only the given `RAMPART_*` variables, and optional stdin.
/// Returns (exit code, stdout, stderr).
pub async fn run_bin(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("RAMPART_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn rampart");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(input.as_bytes()).await.unwrap();
        drop(si);
    } else {
        drop(child.stdin.take());
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("rampart finished in time")
        .expect("rampart output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tenant made for a test: an org with an admin user, and helpers to mint credentials.
pub struct Org {
    pub id: String,
}

impl TestApp {
    /// Creates an org (trialing/standard, as `create-org` does) straight in the store.
    pub async fn org(&self, name: &str) -> Org {
        let mut tx = self.state.db.begin().await.unwrap();
        let org = rampart::orgs::create(&mut tx, name, false, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Org {
            id: org.id.to_string(),
        }
    }

    pub async fn set_subscription(&self, org: &Org, status: &str, tier: &str) {
        let mut tx = self.state.db.begin().await.unwrap();
        let sub = rampart::billing::Subscription {
            status: rampart::billing::SubStatus::parse(status).unwrap(),
            tier: rampart::billing::Tier::parse(tier).unwrap(),
        };
        rampart::billing::store::set_subscription(
            &mut tx,
            &rampart::ids::OrgId::parse(&org.id).unwrap(),
            sub,
            rampart::billing::store::Source::Admin,
            None,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        self.state
            .plans
            .forget(&rampart::ids::OrgId::parse(&org.id).unwrap());
    }

    /// Creates an API key straight in the store; returns (id, secret).
    pub async fn key_with(
        &self,
        org: &Org,
        scopes: &[&str],
        perms: &[&str],
        env: &str,
        rate_limit: Option<&str>,
        quota: Option<&str>,
    ) -> (String, String) {
        use rampart::access::grants::{Permission, Scope};
        let new = rampart::api_keys::NewKey {
            name: "test".into(),
            environment: rampart::access::principal::Environment::parse(env).unwrap(),
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            permissions: perms
                .iter()
                .map(|p| Permission::parse(p).unwrap())
                .collect(),
            rate_limit: rate_limit.map(|r| rampart::config::Rate::parse(r).unwrap()),
            quota: quota.map(|r| rampart::config::Rate::parse(r).unwrap()),
            expires_at: None,
            created_by: None,
        };
        let mut tx = self.state.db.begin().await.unwrap();
        let (k, secret) = rampart::api_keys::store::create(
            &mut tx,
            &rampart::ids::OrgId::parse(&org.id).unwrap(),
            &new,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (k.id.to_string(), secret)
    }

    /// A live key with every key-grantable scope and permission.
    pub async fn full_key(&self, org: &Org) -> String {
        self.key_with(
            org,
            &[
                "messages",
                "contacts",
                "conversations",
                "scheduled_messages",
                "webhooks",
                "dead_letters",
                "audit_logs",
                "exports",
                "gdpr",
            ],
            &["read", "write", "delete"],
            "live",
            None,
            None,
        )
        .await
        .1
    }

    pub async fn key(&self, org: &Org, scopes: &[&str], perms: &[&str]) -> String {
        self.key_with(org, scopes, perms, "live", None, None)
            .await
            .1
    }

    /// Creates a user with `role` in `org` (argon2 hashing included); returns the user id.
    pub async fn user(&self, org: &Org, email: &str, role: &str, password: &str) -> String {
        let hash = rampart::access::password::hash(password.to_owned())
            .await
            .unwrap();
        let mut tx = self.state.db.begin().await.unwrap();
        let existing = rampart::users::by_email(&mut tx, email).await.unwrap();
        let id = match existing {
            Some(u) => u.id,
            None => rampart::users::create(&mut tx, email, &hash).await.unwrap(),
        };
        rampart::users::add_membership(
            &mut tx,
            &rampart::ids::OrgId::parse(&org.id).unwrap(),
            &id,
            rampart::access::grants::Role::parse(role).unwrap(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id.to_string()
    }

    /// An access token for a (fictitious, membership-less) user of `org` with `role`, minted
    /// with the instance's signing key: enough for the guards, which trust the signature.
    pub fn token_for(&self, org: &Org, role: &str) -> String {
        let now = rampart::clock::now_ms() / 1000;
        let claims = rampart::access::tokens::Claims {
            iss: rampart::access::tokens::ISSUER.into(),
            aud: rampart::access::tokens::AUDIENCE.into(),
            sub: rampart::ids::UserId::new().to_string(),
            org: org.id.clone(),
            role: role.into(),
            sid: "rtf_test".into(),
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: "test".into(),
            env: None,
        };
        rampart::access::tokens::sign(&self.state.keys, &claims)
    }

    /// Logs in through the API; returns the token response.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let res = self
            .post_json(
                "/v1/auth/login",
                &serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        json_of(res, 200).await
    }

    pub fn req(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, path, token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, path, token)
            .json(body)
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.req(reqwest::Method::DELETE, path, token)
            .send()
            .await
            .unwrap()
    }

    /// The org's audit entries, newest first, as the store holds them.
    pub async fn audit_actions(&self, org: &Org) -> Vec<(String, String)> {
        let rows = rampart::store::Q::read(
            "SELECT action, outcome FROM audit_logs WHERE org_id = $1 ORDER BY chain, seq DESC",
        )
        .bind(org.id.as_str())
        .fetch_rows(&mut self.state.db.clone())
        .await
        .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.get::<String>("action").unwrap(),
                    r.get::<String>("outcome").unwrap(),
                )
            })
            .collect()
    }
}

/// `SELECT COUNT(*) AS n …` straight in the app's store, with `$1…` bound to `args`.
pub async fn count(app: &TestApp, query: &'static str, args: &[&str]) -> i64 {
    let mut q = rampart::store::Q::read(query);
    for a in args {
        q = q.bind(*a);
    }
    q.fetch_row(&mut app.state.db.clone())
        .await
        .unwrap()
        .get::<i64>("n")
        .unwrap()
}

/// `GET /health/deep` on the ops listener (always `application/health+json`).
pub async fn app_deep(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.ops_url("/health/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/health+json");
    res.json().await.unwrap()
}

/// The names of the alerts in a deep health answer.
pub fn alert_names(d: &Value) -> Vec<String> {
    d["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}
