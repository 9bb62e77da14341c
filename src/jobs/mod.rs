//! Durable jobs in the application database.

pub mod runner;
