//! Requests to addresses that users name (webhook endpoints): an HTTP client whose resolver
//! drops forbidden addresses, so the address checked is the address connected to.

pub mod client;
pub mod preflight;
pub mod ssrf;

/// Makes rustls use ring, the one crypto provider compiled in (for reqwest and sqlx alike).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
