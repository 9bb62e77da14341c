//! Outbound webhooks: endpoints, signing, delivery, retries, dead letters.

pub mod dead_letters;
pub mod fanout;
