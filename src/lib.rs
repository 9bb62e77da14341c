//! Rampart: a hardened, self-hostable API runtime for multi-tenant messaging SaaS.
#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod audit;
#[cfg(feature = "bench-routes")]
pub mod bench_routes;
pub mod cache;
pub mod cli;
pub mod cli_support;
pub mod clock;
pub mod config;
pub mod contacts;
pub mod conversations;
pub mod events;
pub mod exports;
pub mod gdpr;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod messages;
pub mod meta;
pub mod ops;
pub mod orgs;
pub mod partners;
pub mod scheduled;
pub mod store;
pub mod telemetry;
pub mod traffic;
pub mod users;
pub mod webhooks;
