//! Where a server's CPU goes under load, by perf (DWARF call graphs; the release profile keeps
//! line tables). Optional: needs `perf`, and `BENCH_PROFILE=0` skips it. A run of its own,
//! apart from the measurements, which it would perturb.

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Inclusive share of a process's on-CPU samples per function: `(percent, function)`.
pub type Profile = Vec<(String, String)>;

pub fn available(enabled: bool) -> bool {
    enabled
        && std::process::Command::new("perf")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Profiles `pid` for 4 s, starting `settle` after `load` starts; keeps the functions whose
/// name starts with one of `prefixes` and whose share is at least `min_percent`.
pub async fn profile<F: Future>(
    pid: u32,
    load: F,
    settle: Duration,
    data: &Path,
    prefixes: &[&str],
    min_percent: f64,
) -> Option<Profile> {
    let record = async {
        tokio::time::sleep(settle).await;
        let status = tokio::process::Command::new("perf")
            .args([
                "record",
                "-F",
                "499",
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(data)
            .args(["--", "sleep", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        status.is_ok_and(|s| s.success())
    };
    // The load runs to its end either way, so that the server is idle afterwards.
    let (recorded, _) = tokio::join!(record, load);
    if !recorded {
        eprintln!("perf record failed; no profile");
        return None;
    }
    let out = tokio::process::Command::new("perf")
        .args([
            "report",
            "--children",
            "--percent-limit",
            &min_percent.to_string(),
            "--stdio",
            "-g",
            "none",
            "-i",
        ])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    Some(parse(&String::from_utf8_lossy(&out.stdout), prefixes))
}

/// Lines of `perf report --children --stdio -g none`: `children% self% command dso [.] symbol`.
fn parse(report: &str, prefixes: &[&str]) -> Profile {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in report.lines() {
        let Some(pct) = line.split_whitespace().next().filter(|f| f.ends_with('%')) else {
            continue;
        };
        let Some((_, sym)) = line.split_once("] ") else {
            continue;
        };
        let sym = sym.trim().trim_end_matches("::{{closure}}");
        if prefixes.iter().any(|p| sym.starts_with(p)) && seen.insert(sym.to_owned()) {
            out.push((pct.to_owned(), sym.to_owned()));
        }
    }
    out
}

/// The markdown table of a profile.
pub fn table(p: &Profile) -> String {
    let mut t = crate::report::markdown::Table::new(&["Function", "Share of server CPU"], "lr");
    for (pct, sym) in p {
        t.row(vec![format!("`{sym}`"), pct.clone()]);
    }
    t.render()
}

/// Writes a profile as `percent<TAB>function` lines (bench/results/<name>-profile.tsv).
pub fn to_tsv(p: &Profile) -> String {
    p.iter()
        .map(|(pct, sym)| format!("{pct}\t{sym}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_the_chosen_functions_once_each() {
        let report = "# comment\n    42.10%     0.50%  rampart  rampart  [.] rampart::access::guard::{{closure}}\n    40.00%     0.10%  rampart  rampart  [.] rampart::access::guard\n    12.00%    12.00%  rampart  libc.so  [.] memcpy\n";
        let p = parse(report, &["rampart::"]);
        assert_eq!(
            p,
            vec![("42.10%".to_owned(), "rampart::access::guard".to_owned())]
        );
    }
}
