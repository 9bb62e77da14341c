//! The benchmark load generator (built with `--features bench-routes`); see bench/README.md.

fn main() {
    eprintln!("rampart-bench: not yet implemented");
    std::process::exit(2);
}
