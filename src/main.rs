#![forbid(unsafe_code)]

// glibc's allocator spends a large and erratic share of a small request's CPU consolidating
// and freeing; mimalloc is steadier and faster on this workload (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
