//! Help for every command, configuration errors, and the route list.

use crate::helpers::*;

crate::plain_tests![
    every_command_has_help,
    a_bad_variable_exits_2_naming_it,
    routes_json_lists_every_route_with_a_profile,
];

async fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["worker", "--help"],
        vec!["migrate", "--help"],
        vec!["migrate", "verify", "--help"],
        vec!["routes", "--help"],
        vec!["admin", "--help"],
        vec!["admin", "create-org", "--help"],
        vec!["admin", "create-user", "--help"],
        vec!["admin", "set-subscription", "--help"],
    ] {
        let (code, out, err) = run_bin(&args, &[], None).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    let (code, _, err) = run_bin(&["frobnicate"], &[], None).await;
    assert_eq!(code, 2, "{err}");
}

async fn a_bad_variable_exits_2_naming_it() {
    for (var, val) in [
        ("RAMPART_LISTEN", "not-an-address"),
        ("RAMPART_DATABASE_URL", "mysql://x/y"),
        ("RAMPART_PUBLIC_RATE_LIMIT", "lots"),
        ("RAMPART_RETRY_MAX_DELAY", "1ms"),
        ("RAMPART_BILLING_ENFORCE", "maybe"),
    ] {
        let (code, out, err) = run_bin(&["serve"], &[(var, val)], None).await;
        assert_eq!(code, 2, "{var}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with(&format!("{var}: ")), "{err}");
        assert!(out.is_empty());
    }
    let (code, _, err) = run_bin(
        &["serve"],
        &[
            (
                "RAMPART_DATABASE_URL",
                "postgres://u:hunter2@127.0.0.1:1/db",
            ),
            ("RAMPART_LISTEN", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(code, 2);
    assert!(!err.contains("hunter2"), "{err}");
}

async fn routes_json_lists_every_route_with_a_profile() {
    let (code, out, err) = run_bin(&["routes", "--json"], &[], None).await;
    assert_eq!(code, 0, "{err}");
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(routes.len(), rampart::app::all_routes().len());
    for r in &routes {
        for k in [
            "auth",
            "scope",
            "permission",
            "rate_limit",
            "idempotency",
            "billing",
            "audit",
        ] {
            assert!(r["profile"].get(k).is_some(), "{r} lacks {k}");
        }
    }
    let (code, table, _) = run_bin(&["routes"], &[], None).await;
    assert_eq!(code, 0);
    assert!(table.starts_with("METHOD"));
}
