//! The integration suite: one binary, every scenario run against a fresh SQLite file and, when
//! `RAMPART_TEST_POSTGRES_URL` is set, against a fresh Postgres database too.
//!
//! A custom harness (libtest-mimic) so that the Postgres half shows up as `ignored` with a
//! banner when no Postgres is configured, rather than silently passing.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod fixture;
mod helpers;

mod cli;
mod console;
mod conventions;
mod enterprise;
mod error_codes;
mod hostile;
mod identity;
mod members;
mod messaging;
mod operations;
mod receiver;
mod store;
mod traffic;
mod webhooks;

use helpers::Store;
use libtest_mimic::{Arguments, Trial};

/// A scenario runs once per store.
pub type Scenario = fn(Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Declares scenarios: `scenarios![a, b]` turns `async fn a(store: Store)` into list entries.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        pub fn scenarios() -> Vec<(&'static str, $crate::Scenario)> {
            vec![$((stringify!($name), |s| Box::pin($name(s)))),*]
        }
    };
}

/// Tests that do not depend on the store (CLI, config).
pub type Plain = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

#[macro_export]
macro_rules! plain_tests {
    ($($name:ident),* $(,)?) => {
        pub fn plain() -> Vec<(&'static str, $crate::Plain)> {
            vec![$((stringify!($name), || Box::pin($name()))),*]
        }
    };
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
}

fn main() {
    let mut args = Arguments::from_args();
    // Most tests wait on the network, not the CPU: run more than the 2 cores at once.
    if args.test_threads.is_none() {
        args.test_threads = Some(8);
    }
    let pg = helpers::postgres_url();
    let mut trials = Vec::new();
    let groups: Vec<(&str, Vec<(&'static str, Scenario)>)> = vec![
        ("conventions", conventions::scenarios()),
        ("console", console::scenarios()),
        ("identity", identity::scenarios()),
        ("members", members::scenarios()),
        ("traffic", traffic::scenarios()),
        ("webhooks", webhooks::scenarios()),
        ("messaging", messaging::scenarios()),
        ("operations", operations::scenarios()),
        ("enterprise", enterprise::scenarios()),
        ("hostile", hostile::scenarios()),
        ("error_codes", error_codes::scenarios()),
        ("store", store::scenarios()),
    ];
    // Scenarios that need a real Redis besides the store.
    let redis_groups: Vec<(&str, Vec<(&'static str, Scenario)>)> =
        vec![("traffic", traffic::redis_scenarios())];
    let redis = helpers::redis_url();
    let all = groups
        .into_iter()
        .map(|g| (g, false))
        .chain(redis_groups.into_iter().map(|g| (g, true)));
    for ((module, list), needs_redis) in all {
        let no_redis = needs_redis && redis.is_none();
        for (name, f) in list {
            trials.push(
                Trial::test(format!("sqlite::{module}::{name}"), move || {
                    runtime().block_on(f(Store::Sqlite));
                    Ok(())
                })
                .with_ignored_flag(no_redis),
            );
            trials.push(
                Trial::test(format!("postgres::{module}::{name}"), move || {
                    if helpers::postgres_url().is_none() {
                        return Err("RAMPART_TEST_POSTGRES_URL is not set".into());
                    }
                    runtime().block_on(f(Store::Postgres));
                    Ok(())
                })
                .with_ignored_flag(pg.is_none() || no_redis),
            );
        }
    }
    let plain: Vec<(&str, Vec<(&'static str, Plain)>)> = vec![
        ("cli", cli::plain()),
        ("conventions", conventions::plain()),
        ("webhooks", webhooks::plain()),
        ("operations", operations::plain()),
    ];
    for (module, list) in plain {
        for (name, f) in list {
            trials.push(Trial::test(format!("{module}::{name}"), move || {
                runtime().block_on(f());
                Ok(())
            }));
        }
    }
    let postgres_only = store::postgres_only()
        .into_iter()
        .map(|t| ("store", t))
        .chain(hostile::postgres_only().into_iter().map(|t| ("hostile", t)));
    for (module, (name, f)) in postgres_only {
        trials.push(
            Trial::test(format!("postgres::{module}::{name}"), move || {
                runtime().block_on(f());
                Ok(())
            })
            .with_ignored_flag(pg.is_none()),
        );
    }
    let chromium = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for (name, f) in operations::chromium_tests() {
        trials.push(
            Trial::test(format!("browser::{name}"), move || {
                runtime().block_on(f());
                Ok(())
            })
            .with_ignored_flag(!chromium),
        );
    }
    // The console in a real browser, on both stores.
    let webdriver = console::browser::available();
    for store in [helpers::Store::Sqlite, helpers::Store::Postgres] {
        let name = match store {
            helpers::Store::Sqlite => "sqlite",
            helpers::Store::Postgres => "postgres",
        };
        let no_pg = store == helpers::Store::Postgres && pg.is_none();
        trials.push(
            Trial::test(
                format!("browser::{name}::the_console_in_a_real_browser"),
                move || {
                    runtime().block_on(console::browser::the_console_in_a_real_browser(store));
                    Ok(())
                },
            )
            .with_ignored_flag(!webdriver || no_pg),
        );
    }
    if !webdriver {
        eprintln!();
        eprintln!(" NOTE: the console's browser tests did NOT run (shown as `ignored`): install");
        eprintln!(
            " Chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run does)."
        );
    }
    if !chromium {
        eprintln!();
        eprintln!(" NOTE: the browser test did NOT run (shown as `ignored`): install Chromium");
        eprintln!(" (apt-get install chromium; .ci/run does).");
    }
    if redis.is_none() {
        eprintln!();
        eprintln!(" NOTE: the Redis scenarios did NOT run (shown as `ignored`): set");
        eprintln!(" RAMPART_TEST_REDIS_URL=redis://127.0.0.1:6379 (.ci/run does).");
    }
    if pg.is_none() {
        eprintln!();
        eprintln!("=================================================================");
        eprintln!(" NOTE: the Postgres suite did NOT run (shown as `ignored`).");
        eprintln!(" Set RAMPART_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres");
        eprintln!(" to run every scenario on Postgres as well (.ci/run does).");
        eprintln!("=================================================================");
        eprintln!();
    }
    libtest_mimic::run(&args, trials).exit();
}
