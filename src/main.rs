#![forbid(unsafe_code)]

// glibc's allocator spends a large and erratic share of a small request's CPU consolidating
// and freeing; mimalloc is steadier and faster on this workload (see docs/BENCHMARKS.md).
// Built with `no_thp` (Cargo.toml): otherwise it asks for transparent huge pages on its
// arenas, and an idle server held 20 MB of 2 MB pages it had barely touched.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
