#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
