//! SQLite's write-ahead log is checkpointed in the background.

use std::time::Duration;

use crate::helpers::*;

crate::scenarios![sqlite_checkpoints_in_the_background];

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
    // The checkpoint task runs on its own timer (what is tested): let one settle the schema,
    // then measure.
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
