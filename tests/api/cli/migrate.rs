//! `migrate verify`: a fresh database passes; gaps, edits, unknown versions and dialects that
//! disagree are reported.

use super::{as_refs, sqlite_env};
use crate::helpers::*;

crate::plain_tests![
    migrate_verify_passes_on_a_fresh_database,
    migrate_verify_reports_a_gap_or_duplicate,
    migrate_verify_reports_an_edited_migration,
    migrate_verify_reports_an_unknown_applied_version,
    migrate_verify_reports_dialect_disagreement,
];

async fn migrate_verify_passes_on_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (code, out, _) = run_bin(&["migrate", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 1, "pending migrations are drift: {out}");
    assert!(out.contains("[pending]"), "{out}");
    let (code, out, err) = run_bin(&["migrate"], &as_refs(&env), None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied"), "{out}");
    let (code, out, _) = run_bin(&["migrate"], &as_refs(&env), None).await;
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    let (code, out, err) = run_bin(&["migrate", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok:"), "{out}");
    let (code, out, _) = run_bin(&["migrate", "verify", "--json"], &as_refs(&env), None).await;
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    // The migration files in the source tree are what the binary embeds.
    let (code, out, _) = run_bin(
        &[
            "migrate",
            "verify",
            "--migrations-dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}");
}

/// A migrations directory with the given (dialect, file, text) entries.
fn migrations_dir(files: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["sqlite", "postgres"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    for (d, f, text) in files {
        std::fs::write(dir.path().join(d).join(f), text).unwrap();
    }
    dir
}

async fn verify_offline(dir: &tempfile::TempDir) -> (i32, String) {
    let (code, out, err) = run_bin(
        &[
            "migrate",
            "verify",
            "--offline",
            "--migrations-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
        None,
    )
    .await;
    (code, format!("{out}{err}"))
}

async fn migrate_verify_reports_a_gap_or_duplicate() {
    let gap = migrations_dir(&[
        ("sqlite", "0001_a.sql", "SELECT 1;"),
        ("sqlite", "0003_c.sql", "SELECT 1;"),
        ("postgres", "0001_a.sql", "SELECT 1;"),
        ("postgres", "0003_c.sql", "SELECT 1;"),
    ]);
    let (code, out) = verify_offline(&gap).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[gap]") && out.contains("0002 missing before 0003"),
        "{out}"
    );

    let dup = migrations_dir(&[
        ("sqlite", "0001_a.sql", "SELECT 1;"),
        ("sqlite", "0001_b.sql", "SELECT 1;"),
        ("postgres", "0001_a.sql", "SELECT 1;"),
    ]);
    let (code, out) = verify_offline(&dup).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[duplicate]") && out.contains("0001_b.sql"),
        "{out}"
    );
}

async fn migrate_verify_reports_an_edited_migration() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    assert_eq!(run_bin(&["migrate"], &as_refs(&env), None).await.0, 0);
    // The source tree with 0001 edited after it was applied.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let edited = tempfile::tempdir().unwrap();
    for d in ["sqlite", "postgres"] {
        std::fs::create_dir_all(edited.path().join(d)).unwrap();
        for e in std::fs::read_dir(format!("{src}/{d}")).unwrap() {
            let p = e.unwrap().path();
            let mut text = std::fs::read_to_string(&p).unwrap();
            if p.file_name().unwrap().to_str().unwrap().starts_with("0001") {
                text.push_str("\n-- an innocent-looking edit\n");
            }
            std::fs::write(edited.path().join(d).join(p.file_name().unwrap()), text).unwrap();
        }
    }
    let (code, out, _) = run_bin(
        &[
            "migrate",
            "verify",
            "--migrations-dir",
            edited.path().to_str().unwrap(),
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[edited]") && out.contains("0001_foundation.sql was edited"),
        "{out}"
    );
}

async fn migrate_verify_reports_an_unknown_applied_version() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    assert_eq!(run_bin(&["migrate"], &as_refs(&env), None).await.0, 0);
    {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            dir.path().join("r.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'from_the_future', 'x', 0)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let (code, out, _) = run_bin(&["migrate", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[unknown_applied]") && out.contains("9999"),
        "{out}"
    );
    // And `serve` refuses to start on it.
    let mut serve_env = env.clone();
    serve_env.push(("RAMPART_LISTEN".into(), "127.0.0.1:0".into()));
    serve_env.push(("RAMPART_OPS_LISTEN".into(), "127.0.0.1:0".into()));
    let (code, _, err) = run_bin(&["serve"], &as_refs(&serve_env), None).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("9999"), "{err}");
}

async fn migrate_verify_reports_dialect_disagreement() {
    let dir = migrations_dir(&[
        ("sqlite", "0001_a.sql", "SELECT 1;"),
        ("sqlite", "0002_b.sql", "SELECT 1;"),
        ("postgres", "0001_a.sql", "SELECT 1;"),
        ("postgres", "0002_other.sql", "SELECT 1;"),
        ("sqlite", "0003_only_sqlite.sql", "SELECT 1;"),
    ]);
    let (code, out) = verify_offline(&dir).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[dialect_mismatch]"), "{out}");
    assert!(
        out.contains("0002 is named b for sqlite but other for postgres"),
        "{out}"
    );
    assert!(
        out.contains("0003 (only_sqlite) exists for sqlite but not for postgres"),
        "{out}"
    );
}
