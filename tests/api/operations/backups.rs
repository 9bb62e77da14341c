//! Backups: restored into either store, consistent under write load, refused when corrupt,
//! complete.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixture::{Fixture, OWNER_EMAIL, OWNER_PASSWORD};
use crate::helpers::*;

crate::scenarios![
    backup_restores_into_either_store,
    backup_under_write_load_restores_consistently,
    a_corrupt_or_truncated_backup_is_refused_and_nothing_written,
    every_table_is_in_the_backup,
];

/// A small but complete dataset: users, keys, audit chain, contacts, events, deliveries.
async fn populate(app: &TestApp) -> Fixture {
    let f = app.fixture("Acme").await;
    for i in 0..3 {
        app.post_as(
            "/v1/developer/keys",
            &f.owner_token,
            &json!({ "name": format!("k{i}"), "scopes": ["contacts"], "permissions": ["read"] }),
        )
        .await;
    }
    for i in 0..20 {
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": format!("c{i}"), "attributes": { "n": i, "flag": true } }),
        )
        .await;
    }
    f
}

async fn backup_restores_into_either_store(store: Store) {
    let app = spawn_app(store).await;
    let f = populate(&app).await;
    let key = &f.key;
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
        let list = json_of(restored.get_as("/v1/contacts?limit=100", key).await, 200).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 20);
        assert_eq!(list["data"][0]["attributes"]["flag"], true);
        let ep = format!("/v1/webhooks/{}", f.endpoint_id);
        assert_eq!(restored.get_as(&ep, key).await.status(), 200);
        let login = restored.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        assert_eq!(login["org_id"], f.org.id.as_str());
        let owner = count(
            &restored,
            "SELECT COUNT(*) AS n FROM users WHERE id = $1",
            &[&f.owner_id],
        )
        .await;
        assert_eq!(owner, 1, "the owner keeps their id");
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
    let key = populate(&app).await.key;
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
