//! Finding 1 of issue 22, for data at rest: every kind of text the API accepts moves between
//! the stores through backup and restore, and NUL text that SQLite holds from before is refused
//! by a restore into Postgres, named, with nothing written.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::scenarios;

scenarios![every_kind_of_text_the_api_accepts_survives_backup_and_restore_across_stores];

/// Tests that need Postgres whatever the scenario's store.
pub fn postgres_only() -> Vec<(&'static str, crate::Plain)> {
    vec![(
        "a_backup_holding_nul_text_is_refused_by_postgres_naming_each_value_and_writing_nothing",
        || {
            Box::pin(
                a_backup_holding_nul_text_is_refused_by_postgres_naming_each_value_and_writing_nothing(),
            )
        },
    )]
}

/// Text that has broken stores, encoders and drivers before; all of it valid API input.
fn kinds_of_text() -> Vec<(&'static str, String)> {
    vec![
        ("ascii", "Ada Lovelace".into()),
        ("accents", "Zoë Ångström-Ñúñez".into()),
        ("cjk", "李小龍 東京都 서울".into()),
        ("emoji", "👩🏽‍💻 🇺🇦 🏳️‍🌈".into()),
        ("rtl", "مرحبا بالعالم עברית".into()),
        ("combining", "e\u{301}\u{302} Z\u{335}\u{33f}".into()),
        (
            "controls",
            "tab\tnewline\ncr\r bell\u{7} unit\u{1f} del\u{7f}".into(),
        ),
        (
            "separators",
            "line\u{2028}para\u{2029}nbsp\u{a0}zwsp\u{200b}".into(),
        ),
        (
            "bom and replacement",
            "\u{feff}bom \u{fffd} \u{ffff}".into(),
        ),
        (
            "quotes",
            r#"'"`\ \\ \" ' OR 1=1; DROP TABLE contacts; --"#.into(),
        ),
        ("escaped nul text", r"\u0000 %00 \0".into()),
        ("markup", "<script>alert(1)</script>&amp;".into()),
        ("astral", "\u{10FFFF}\u{1F600}\u{20000}".into()),
        ("long", "é".repeat(200)),
    ]
}

async fn every_kind_of_text_the_api_accepts_survives_backup_and_restore_across_stores(
    store: Store,
) {
    let target = match store {
        Store::Sqlite if postgres_url().is_some() => Store::Postgres,
        Store::Sqlite => return,
        Store::Postgres => Store::Sqlite,
    };
    // No worker: messages stay as written, so the two listings can be compared whole.
    let quiet = rampart::app::ServeOptions { no_worker: true };
    let app = spawn_on(std::sync::Arc::new(TestDb::new(store).await), &[], quiet).await;
    let org = app.org("texts").await;
    let key = app.full_key(&org).await;
    // Messages go out through a channel endpoint (it need not answer for this test).
    json_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "http://127.0.0.1:9/channel", "kind": "channel" }),
        )
        .await,
        201,
    )
    .await;
    for (i, (kind, text)) in kinds_of_text().into_iter().enumerate() {
        let contact = json_of(
            app.post_as(
                "/v1/contacts",
                &key,
                &json!({
                    "external_key": format!("{i}-{}", printable(&text).chars().take(100).collect::<String>()),
                    "name": printable(&text),
                    "attributes": {
                        kind: text,
                        text.chars().take(100).collect::<String>(): [text, { "nested": text }],
                    },
                }),
            )
            .await,
            201,
        )
        .await;
        let conv = json_of(
            app.post_as(
                "/v1/conversations",
                &key,
                &json!({ "contact_id": contact["id"], "channel": "sms" }),
            )
            .await,
            201,
        )
        .await;
        json_of(
            app.post_as(
                "/v1/messages",
                &key,
                &json!({ "conversation_id": conv["id"], "body": text, "metadata": { kind: text } }),
            )
            .await,
            202,
        )
        .await;
    }
    let before = listed(&app, &key).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.ndjson");
    rampart::ops::backup::backup(&app.state.db, &file, "test", &mut |_| {})
        .await
        .unwrap();
    let db = std::sync::Arc::new(TestDb::new(target).await);
    let target_db = rampart::store::Db::connect(&db.url, &Default::default())
        .await
        .unwrap();
    rampart::ops::backup::restore(&target_db, &file, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("{store:?} → {target:?}: {e:#}"));
    target_db.close().await;
    let restored = spawn_on(db, &[], quiet).await;
    assert_eq!(
        listed(&restored, &key).await,
        before,
        "{store:?} → {target:?}: every text comes back as it was"
    );
}

/// Names and keys refuse control characters; free text and JSON values keep them.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Contacts and messages as the API shows them.
async fn listed(app: &TestApp, key: &str) -> (Value, Value) {
    let contacts = json_of(app.get_as("/v1/contacts?limit=100", key).await, 200).await;
    let messages = json_of(app.get_as("/v1/messages?limit=100", key).await, 200).await;
    (contacts["data"].clone(), messages["data"].clone())
}

/// NUL in text can only be in a SQLite database written before the API refused it (or by
/// hand): simulated with a direct write.
async fn a_backup_holding_nul_text_is_refused_by_postgres_naming_each_value_and_writing_nothing() {
    let app = spawn_app(Store::Sqlite).await;
    let org = app.org("nul").await;
    let key = app.full_key(&org).await;
    let c = json_of(
        app.post_as("/v1/contacts", &key, &json!({ "external_key": "k1" }))
            .await,
        201,
    )
    .await;
    let id = c["id"].as_str().unwrap();
    rampart::store::Q::write("UPDATE contacts SET name = $1, email = $2 WHERE id = $3")
        .bind("Ada\0Lovelace")
        .bind("a\0@example.com")
        .bind(id)
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nul.ndjson");
    rampart::ops::backup::backup(&app.state.db, &file, "test", &mut |_| {})
        .await
        .unwrap();

    let pg = TestDb::new(Store::Postgres).await;
    let pg_db = rampart::store::Db::connect(&pg.url, &Default::default())
        .await
        .unwrap();
    let err = rampart::ops::backup::restore(&pg_db, &file, &mut |_| {})
        .await
        .unwrap_err()
        .to_string();
    for column in ["name", "email"] {
        assert!(
            err.contains(&format!("contacts id={id} column={column}")),
            "{err}"
        );
    }
    assert!(err.contains("nothing was restored"), "{err}");
    let tables = rampart::store::Q::read(
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_row(&mut pg_db.clone())
    .await
    .unwrap()
    .get::<i64>("n")
    .unwrap();
    assert_eq!(tables, 0, "not even the schema was written");
    pg_db.close().await;

    // SQLite stores NUL, so the same backup restores there unchanged.
    let lite = TestDb::new(Store::Sqlite).await;
    let lite_db = rampart::store::Db::connect(&lite.url, &Default::default())
        .await
        .unwrap();
    rampart::ops::backup::restore(&lite_db, &file, &mut |_| {})
        .await
        .unwrap();
    lite_db.close().await;
}
