//! Codes of real failures: a request slower than the server allows, the store away, a table
//! gone from under the running server. No route exists for tests: each is the real thing.

use std::time::Duration;

use rampart::http::ErrorCode;
use serde_json::json;
use sqlx::Connection as _;

use super::{code_of, drew, problem};
use crate::helpers::*;

/// Another connection holds the lock a write needs (SQLite's write lock, or a table lock on
/// Postgres) for longer than the server allows a request (1 s here).
pub async fn request_timeout(store: Store) -> String {
    let app = spawn_app_with(
        store,
        // The body deadline must stay below the request's.
        &[
            ("RAMPART_REQUEST_TIMEOUT", "1s"),
            ("RAMPART_BODY_TIMEOUT", "500ms"),
        ],
    )
    .await;
    let org = app.org("Hasty").await;
    let key = app.full_key(&org).await;
    let lock = WriteLock::take(store, &app).await;
    let res = app
        .post_as("/v1/contacts", &key, &json!({ "external_key": "late" }))
        .await;
    assert_eq!(res.headers()["retry-after"], "1");
    let code = drew(res, ErrorCode::RequestTimeout).await;
    lock.release().await;
    app.stop().await;
    code
}

/// A lock taken by a connection of its own, as another process would.
enum WriteLock {
    /// `BEGIN IMMEDIATE`: no other connection writes until it ends.
    Sqlite(sqlx::SqliteConnection),
    /// `LOCK TABLE contacts IN EXCLUSIVE MODE`: reads go on, writes to contacts wait.
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn take(store: Store, app: &TestApp) -> WriteLock {
        match store {
            Store::Sqlite => {
                let options: sqlx::sqlite::SqliteConnectOptions = app.db.url.parse().unwrap();
                let mut c = sqlx::SqliteConnection::connect_with(
                    &options.busy_timeout(Duration::from_secs(10)),
                )
                .await
                .unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                WriteLock::Sqlite(c)
            }
            Store::Postgres => {
                let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
                sqlx::raw_sql("BEGIN; LOCK TABLE contacts IN EXCLUSIVE MODE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                WriteLock::Postgres(c)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteLock::Sqlite(mut c) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            WriteLock::Postgres(mut c) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

/// The store stops answering: Postgres goes away (a proxy in front of it cuts every
/// connection, as in `faults`), or SQLite stays locked by another process.
pub async fn service_unavailable(store: Store) -> String {
    let body = json!({ "external_key": "during" });
    match store {
        Store::Postgres => {
            let (app, outage) = crate::store::faults::spawn_behind_outage().await;
            let org = app.org("Outage").await;
            let key = app.full_key(&org).await;
            outage.down();
            let code = drew(
                app.post_as("/v1/contacts", &key, &body).await,
                ErrorCode::ServiceUnavailable,
            )
            .await;
            outage.restore();
            code
        }
        Store::Sqlite => {
            let app = spawn_app(store).await;
            let org = app.org("Locked").await;
            let key = app.full_key(&org).await;
            let lock = WriteLock::take(store, &app).await;
            // The server waits out its busy timeout (10 s) for the write lock, then gives up.
            let code = drew(
                app.post_as("/v1/contacts", &key, &body).await,
                ErrorCode::ServiceUnavailable,
            )
            .await;
            lock.release().await;
            app.stop().await;
            code
        }
    }
}

/// A table the server reads is dropped under it (by another connection, as a mistaken
/// migration or a hand-typed statement would): the read fails with a generic 500 that says
/// nothing of the table.
pub async fn internal_error(store: Store) -> String {
    let app = spawn_app(store).await;
    let org = app.org("Broken").await;
    let key = app.full_key(&org).await;
    let drop_table = "DROP TABLE dead_letters";
    match store {
        Store::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::raw_sql(drop_table).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
        Store::Postgres => pg_admin(&app.db.url, drop_table).await,
    }
    let p = problem(
        app.get_as("/v1/dead-letters", &key).await,
        ErrorCode::InternalError,
    )
    .await;
    let text = p.to_string();
    assert!(!text.contains("dead_letters"), "nothing leaks: {text}");
    app.stop().await;
    code_of(&p)
}
