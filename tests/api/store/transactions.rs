//! Transactions with deferred writes are all or nothing, on both stores.

use std::time::Duration;

use crate::helpers::*;

crate::scenarios![transactions_with_deferred_writes_are_all_or_nothing];

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
        // Time for b to reach a's row lock and wait on it: the lock wait is what is tested.
        tokio::time::sleep(Duration::from_millis(100)).await;
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
