//! Writing the results: markdown sections and docs/BENCHMARKS.md.

pub mod doc;
pub mod markdown;
