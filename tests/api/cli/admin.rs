//! Admin commands print JSON; `audit verify` names the first broken entry.

use super::{as_refs, sqlite_env};
use crate::helpers::*;

crate::plain_tests![
    admin_commands_print_json,
    audit_verify_names_the_first_broken_entry,
];

async fn audit_verify_names_the_first_broken_entry() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (code, out, _) = run_bin(
        &["admin", "create-org", "--name", "A"],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0);
    let org = out.trim().to_owned();
    for _ in 0..3 {
        let (code, _, err) = run_bin(
            &[
                "admin",
                "create-key",
                "--org",
                &org,
                "--scopes",
                "contacts",
                "--permissions",
                "read",
                "--json",
            ],
            &as_refs(&env),
            None,
        )
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, _) = run_bin(&["audit", "verify"], &as_refs(&env), None).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 3 audit entries"), "{out}");
    {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            dir.path().join("r.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("UPDATE audit_logs SET actor_id = 'someone-else' WHERE seq = 2")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let (code, out, _) = run_bin(&["audit", "verify", "--org", &org], &as_refs(&env), None).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN") && out.contains("entry 2") && out.contains("edited"),
        "{out}"
    );
    let (code, out, _) = run_bin(&["audit", "verify", "--json"], &as_refs(&env), None).await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["first_break"]["seq"], 2);
}

async fn admin_commands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(&dir);
    let (code, out, err) = run_bin(
        &["admin", "create-org", "--name", "Acme", "--json"],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let org: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = org["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("org_"));
    let (code, out, _) = run_bin(
        &["admin", "create-org", "--name", "Plain"],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.trim().starts_with("org_"));

    let (code, out, err) = run_bin(
        &[
            "admin",
            "create-user",
            "--org",
            &id,
            "--email",
            "Ada@Example.com",
            "--role",
            "admin",
            "--password-stdin",
            "--json",
        ],
        &as_refs(&env),
        Some("correct horse battery staple\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let user: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["role"], "admin");

    let (code, _, err) = run_bin(
        &[
            "admin",
            "create-user",
            "--org",
            &id,
            "--email",
            "b@example.com",
            "--role",
            "emperor",
            "--password-stdin",
        ],
        &as_refs(&env),
        Some("correct horse battery staple\n"),
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.starts_with("--role:"), "{err}");
    let (code, _, err) = run_bin(
        &[
            "admin",
            "create-user",
            "--org",
            &id,
            "--email",
            "b@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        &as_refs(&env),
        Some("short\n"),
    )
    .await;
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = run_bin(
        &[
            "admin",
            "set-subscription",
            "--org",
            &id,
            "--status",
            "active",
            "--tier",
            "full",
            "--json",
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let sub: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["tier"], "full");
    let (code, _, err) = run_bin(
        &[
            "admin",
            "set-subscription",
            "--org",
            "org_00000000000000000000000000",
            "--status",
            "active",
            "--tier",
            "full",
        ],
        &as_refs(&env),
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
