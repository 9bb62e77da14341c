//! Password hashing: argon2id with the crate's recommended parameters, off the async runtime.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes `password` (PHC string). Runs on the blocking pool: a hash takes tens of ms.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await?
}

/// Verifies `password` against `phc`. With `phc = None` (unknown user) it still spends the
/// time of a verification against a dummy hash, so the two failures cannot be told apart.
pub async fn verify(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let target = phc.unwrap_or_else(|| DUMMY.with(Clone::clone));
        let Ok(parsed) = PasswordHash::new(&target) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && !target.is_empty()
    })
    .await
    .unwrap_or(false)
}

thread_local! {
    static DUMMY: String = Argon2::default()
        .hash_password(b"rampart-dummy-password")
        .map(|h| h.to_string())
        .unwrap_or_default();
}

/// The rule for a new password.
pub fn check_strength(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if n < 12 {
        return Err("must be at least 12 characters".into());
    }
    if n > 256 {
        return Err("must be at most 256 characters".into());
    }
    Ok(())
}
