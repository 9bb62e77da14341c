//! Issue 22: hostile input and protocol edges. No input gives a 5xx or a hang; every refusal
//! is a problem document; both stores accept the same text.

mod edges;
mod generated;
pub mod raw;
mod restore;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    let mut all = generated::scenarios();
    all.extend(edges::scenarios());
    all.extend(restore::scenarios());
    all
}

pub fn postgres_only() -> Vec<(&'static str, crate::Plain)> {
    restore::postgres_only()
}
