//! The benchmarks, one module each: its orchestration under `rampart-bench run`, its section
//! of docs/BENCHMARKS.md, and, where the measurement is our own, the standalone subcommand.

pub mod console;
pub mod guard;
mod guard_report;
pub mod instructions;
pub mod limits;
pub mod read;
pub mod scheduler;
pub mod startup;
pub mod webhooks;
