//! Durable jobs in the application database.

pub mod queue;
pub mod runner;
