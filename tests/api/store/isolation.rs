//! Issue 20: a transaction's isolation level is the code's, not the server's. The suite's
//! transactional promises hold on a Postgres database whose default isolation is
//! `repeatable read`, because the store begins each transaction at `READ COMMITTED` itself.

use rampart::store::{ConnectOptions, Db, Dialect, Q};
use sqlx::Connection as _;

use crate::helpers::*;

/// Tests that need Postgres (ignored without `RAMPART_TEST_POSTGRES_URL`).
pub fn postgres_only() -> Vec<(&'static str, crate::Plain)> {
    vec![(
        "transactional_promises_hold_on_a_database_that_defaults_to_repeatable_read",
        || Box::pin(transactional_promises_hold_on_a_database_that_defaults_to_repeatable_read()),
    )]
}

async fn transactional_promises_hold_on_a_database_that_defaults_to_repeatable_read() {
    let db = TestDb::new(Store::Postgres).await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    pg_admin(
        &db.url,
        &format!("ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'"),
    )
    .await;

    // A new session really defaults to it, and a plain `BEGIN` then keeps one snapshot: a row
    // committed meanwhile by another session stays unseen. That is what the promises check
    // (under READ COMMITTED each statement sees what was committed before it), so they fail
    // unless the store sets its own level.
    let mut reader = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut writer = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let level: (String,) = sqlx::query_as("SELECT current_setting('transaction_isolation')")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(level.0, "repeatable read");
    let count = "SELECT COUNT(*) FROM control";
    sqlx::raw_sql("CREATE TABLE control (id INTEGER)")
        .execute(&mut reader)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut reader).await.unwrap();
    let before: (i64,) = sqlx::query_as(count).fetch_one(&mut reader).await.unwrap();
    sqlx::raw_sql("INSERT INTO control VALUES (1)")
        .execute(&mut writer)
        .await
        .unwrap();
    let after: (i64,) = sqlx::query_as(count).fetch_one(&mut reader).await.unwrap();
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    assert_eq!(
        (before.0, after.0),
        (0, 0),
        "under the database's default, a transaction does not see a later commit"
    );
    reader.close().await.unwrap();
    writer.close().await.unwrap();

    // The store's sessions have the same default; its transactions do not.
    let store = Db::connect(&db.url, &ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.dialect(),
        Dialect::Postgres,
        "the promises' Postgres part runs"
    );
    let setting = || Q::read("SELECT current_setting('transaction_isolation') AS level");
    let outside: String = setting().fetch_scalar(&mut store.clone()).await.unwrap();
    assert_eq!(outside, "repeatable read");
    let mut tx = store.begin().await.unwrap();
    let inside: String = setting().fetch_scalar(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(inside, "read committed");

    super::transactions::transactional_promises(&store).await;
    store.close().await;
}
