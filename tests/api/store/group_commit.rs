//! Many transactions at once on one writer (SQLite's group commit): each is answered only once
//! its own writes are committed, and one that fails or is rolled back takes nobody else's
//! writes with it. The same promises hold on Postgres.

use crate::helpers::*;

crate::scenarios![concurrent_writers_are_answered_only_once_their_writes_are_committed];

/// How each of the concurrent writers ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    Commit,
    /// A duplicate key after its own insert: the transaction fails and is dropped.
    Conflict,
    Rollback,
    /// Dropped open, as a cancelled request's transaction is.
    Dropped,
    /// A statement on its own, outside any transaction of the caller's.
    Alone,
}

const WRITERS: usize = 300;

fn ending(i: usize) -> Ending {
    match i % 10 {
        3 => Ending::Conflict,
        5 => Ending::Rollback,
        7 => Ending::Dropped,
        8 => Ending::Alone,
        _ => Ending::Commit,
    }
}

pub async fn concurrent_writers_are_answered_only_once_their_writes_are_committed(store: Store) {
    use rampart::store::Q;
    let sqlite = store == Store::Sqlite;
    let app = spawn_app(store).await;
    let db = app.state.db.clone();
    Q::write("CREATE TABLE grouped (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&mut db.clone())
        .await
        .unwrap();
    Q::write("INSERT INTO grouped (id, n) VALUES ('taken', 0)")
        .execute(&mut db.clone())
        .await
        .unwrap();
    let ins = |id: String| Q::write("INSERT INTO grouped (id, n) VALUES ($1, 1)").bind(id);
    // A committed write must be visible at once to a reader: on SQLite the readers are other
    // connections, which see nothing of a group's transaction until its `COMMIT`.
    let visible = |db: rampart::store::Db, id: String| async move {
        Q::read("SELECT COUNT(*) AS n FROM grouped WHERE id = $1")
            .bind(id)
            .fetch_scalar::<i64>(&mut db.clone())
            .await
            .unwrap()
            == 1
    };
    let tasks = (0..WRITERS).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            let id = format!("w{i}");
            let how = ending(i);
            if how == Ending::Alone {
                ins(id.clone()).execute(&mut db.clone()).await.unwrap();
                assert!(
                    visible(db, id).await,
                    "writer {i} ({how:?}) answered before its commit"
                );
                return;
            }
            let mut tx = db.begin().await.unwrap();
            ins(id.clone()).execute(&mut tx).await.unwrap();
            // Let the others queue behind this transaction while it holds the writer.
            tokio::task::yield_now().await;
            match how {
                Ending::Commit => {
                    tx.commit().await.unwrap();
                    assert!(
                        visible(db, id).await,
                        "writer {i} answered before its commit"
                    );
                }
                Ending::Conflict => {
                    let err = ins("taken".into()).execute(&mut tx).await.unwrap_err();
                    assert!(err.unique_violation().is_some(), "{err:?}");
                    drop(tx);
                }
                Ending::Rollback => tx.rollback().await.unwrap(),
                Ending::Dropped | Ending::Alone => drop(tx),
            }
        })
    });
    for t in futures_util::future::join_all(tasks).await {
        t.unwrap();
    }
    // Let the rollbacks of dropped transactions (spawned) run: they hold the writer, so one
    // more write waits for them.
    ins("last".into()).execute(&mut db.clone()).await.unwrap();
    let rows = Q::read("SELECT id FROM grouped WHERE id LIKE 'w%'")
        .fetch_all::<(String,)>(&mut db.clone())
        .await
        .unwrap();
    let mut kept: Vec<usize> = rows
        .into_iter()
        .map(|(id,)| id[1..].parse().unwrap())
        .collect();
    kept.sort_unstable();
    let expected: Vec<usize> = (0..WRITERS)
        .filter(|&i| matches!(ending(i), Ending::Commit | Ending::Alone))
        .collect();
    assert_eq!(kept, expected, "exactly the committed writers' rows");
    if sqlite {
        // The writers queued behind each other, so some of them shared a commit.
        let metrics = app.metrics().await;
        assert!(
            metrics
                .contains("rampart_sqlite_group_commit_transactions_count{outcome=\"committed\"}"),
            "{metrics}"
        );
    }
    app.stop().await;
}
