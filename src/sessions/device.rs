//! Device tokens: OWASP's "device cookies" against account lockout.
//!
//! The per-account login limit stops distributed password guessing, but anyone can exhaust it
//! and lock the owner out. So a successful login also returns a device token (`dt_…`, 256
//! random bits, stored as SHA-256, bound to the user, expiring after
//! `RAMPART_DEVICE_TOKEN_TTL`); a client that presents it at its next login, for the same
//! account, is not subject to the per-account limit (the per-address limit still applies).
//! Instead each device token has its own, stricter budget: [`FAILURE_LIMIT`] wrong passwords
//! and it is locked for good. A successful login replaces the presented token with a new one.
//! Logins without a live device token of the account keep being refused while the account
//! is under attack.

use base64::Engine as _;

use super::store::{self, DeviceToken};
use crate::access::secrets::Keys;
use crate::access::tokens::sha256_hex;
use crate::store::{DbResult, Exec};

/// Wrong passwords a device token survives; the next one locks it.
pub const FAILURE_LIMIT: i64 = 5;

/// Device tokens kept per user (the newest); older ones are forgotten.
pub const KEEP_PER_USER: i64 = 20;

/// What a login learned about the device token it was given.
pub enum Device {
    /// None was presented.
    Absent,
    /// One was presented but is unknown, expired, locked or another account's.
    Untrusted,
    /// A live device token of this account.
    Trusted(DeviceToken),
}

impl Device {
    /// How the audit log names it.
    pub fn label(&self) -> &'static str {
        match self {
            Device::Absent => "absent",
            Device::Untrusted => "untrusted",
            Device::Trusted(_) => "trusted",
        }
    }

    /// The stored hash of a trusted token.
    pub fn trusted_hash(&self) -> Option<&str> {
        match self {
            Device::Trusted(d) => Some(&d.token_hash),
            Device::Absent | Device::Untrusted => None,
        }
    }
}

/// Looks up `presented` for the account whose normalised email is `email`.
pub async fn check(ex: &mut impl Exec, presented: Option<&str>, email: &str) -> DbResult<Device> {
    let Some(raw) = presented else {
        return Ok(Device::Absent);
    };
    Ok(
        match store::trusted_device(ex, &sha256_hex(raw), email).await? {
            Some(d) => Device::Trusted(d),
            None => Device::Untrusted,
        },
    )
}

/// A new device token and its stored hash.
pub fn new_token(keys: &Keys) -> (String, String) {
    let raw: [u8; 32] = keys.random();
    let token = format!(
        "dt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let hash = sha256_hex(&token);
    (token, hash)
}
