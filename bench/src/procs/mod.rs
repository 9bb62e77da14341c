//! The processes and services a benchmark runs against.

pub mod rampart;
pub mod services;
