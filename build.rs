//! Embeds `migrations/{sqlite,postgres}/NNNN_name.sql` and the build id into the binary.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

// A build script fails the build by panicking: each `expect` says what was missing.
fn main() {
    let mut out = String::new();
    for dialect in ["sqlite", "postgres"] {
        let dir = Path::new("migrations").join(dialect);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
        files.sort();
        writeln!(
            out,
            "pub const {}: &[(&str, &str)] = &[",
            dialect.to_uppercase()
        )
        .expect("write to a String");
        for f in files {
            let name = f
                .file_name()
                .expect("a migration file has a name")
                .to_string_lossy()
                .into_owned();
            let abs = std::fs::canonicalize(&f).expect("the migration file exists");
            writeln!(
                out,
                "    ({name:?}, include_str!({:?})),",
                abs.display().to_string()
            )
            .expect("write to a String");
        }
        writeln!(out, "];").expect("write to a String");
    }
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");

    // The compiled-in build id: the git commit when there is one, else the version.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let sha = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty());
    let id = sha.unwrap_or_else(|| {
        std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION")
    });
    // Not RAMPART_-prefixed: `cargo run` also exports rustc-env variables to the running
    // binary, and the config rejects unknown RAMPART_* variables.
    println!("cargo:rustc-env=COMPILED_BUILD_ID_OF_RAMPART={id}");
}
