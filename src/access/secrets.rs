//! The instance secret (`RAMPART_SECRET_KEY`, or one generated into the data directory with
//! mode 0600) and the purpose-bound keys derived from it: token signing, encryption of webhook
//! secrets at rest, link signing. A fingerprint stored in the database stops an instance with
//! a different secret from starting against data it could not read.

use std::io::Write as _;
use std::path::Path;

use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::Config;
use crate::store::{Db, DbError, Q};

/// Keys derived for one purpose each, so that one can never be replayed as another.
pub struct Keys {
    signing: hmac::Key,
    encryption: LessSafeKey,
    links: hmac::Key,
    refresh_successor: hmac::Key,
    fingerprint: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error(
        "RAMPART_SECRET_KEY: does not match the key this database was initialised with (tokens and webhook secrets written with it could not be read); restore the original key"
    )]
    Mismatch,
}

fn derive(master: &[u8], label: &str) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, master);
    let tag = hmac::sign(&k, label.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Keys {
    /// The configured secret, or the one in `<data_dir>/secret.key`, created on first start.
    pub fn load(config: &Config) -> anyhow::Result<Keys> {
        let master = match &config.secret_key {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => read_or_create(&config.data_dir.join("secret.key"))?,
        };
        Ok(Keys::from_master(&master))
    }

    pub fn from_master(master: &[u8]) -> Keys {
        let enc = derive(master, "rampart/v1/encryption");
        Keys {
            signing: hmac::Key::new(
                hmac::HMAC_SHA256,
                &derive(master, "rampart/v1/token-signing"),
            ),
            encryption: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, &enc).expect("32-byte key"),
            ),
            links: hmac::Key::new(hmac::HMAC_SHA256, &derive(master, "rampart/v1/links")),
            refresh_successor: hmac::Key::new(
                hmac::HMAC_SHA256,
                &derive(master, "rampart/v1/refresh-successor"),
            ),
            fingerprint: hex(&derive(master, "rampart/v1/fingerprint")),
            rng: SystemRandom::new(),
        }
    }

    /// Records the fingerprint on first start; refuses a different key afterwards.
    pub async fn check_against_store(&self, db: &Db) -> Result<(), KeyCheckError> {
        let mut tx = db.begin().await?;
        let stored: Option<(String,)> =
            Q::read("SELECT value FROM settings WHERE key = 'secret_key_fingerprint'")
                .fetch_optional(&mut tx)
                .await?;
        match stored {
            Some((stored,)) => {
                if !constant_time_eq(stored.as_bytes(), self.fingerprint.as_bytes()) {
                    return Err(KeyCheckError::Mismatch);
                }
            }
            None => {
                Q::write("INSERT INTO settings (key, value, updated_at) VALUES ('secret_key_fingerprint', $1, $2)")
                    .bind(&self.fingerprint)
                    .bind(crate::clock::now_ms())
                    .execute(&mut tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// HMAC-SHA256 tag for access tokens.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.signing, data).as_ref().to_vec()
    }

    /// Constant-time verification of a token tag.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.signing, data, tag).is_ok()
    }

    pub fn sign_link(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.links, data).as_ref().to_vec()
    }

    pub fn verify_link(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.links, data, tag).is_ok()
    }

    /// The secret of the refresh token that succeeds `previous`: a PRF of the previous token
    /// under a key of its own, so only a holder of `previous` (through the server) can obtain
    /// it again, and nothing about it needs storing (see `sessions::refresh`).
    pub fn refresh_successor(&self, previous: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.refresh_successor, previous);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Encrypts with ChaCha20-Poly1305; output is `v1.` + base64(nonce ‖ ciphertext ‖ tag).
    /// `context` (e.g. the endpoint id) is bound as associated data, so a ciphertext copied to
    /// another row does not decrypt.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> String {
        use base64::Engine as _;
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut buf = plaintext.to_vec();
        self.encryption
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!(
            "v1.{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    pub fn decrypt(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed.strip_prefix("v1.")?)
            .ok()?;
        if raw.len() < 12 + aead::CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let mut buf = ct.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .encryption
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }

    /// Cryptographically random bytes.
    pub fn random<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill(&mut b).expect("system randomness");
        b
    }
}

/// Cryptographically random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).expect("system randomness");
    b
}

/// Compares secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn read_or_create(path: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim();
        anyhow::ensure!(
            s.len() >= 32,
            "{} is too short to be a secret key",
            path.display()
        );
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let key = hex(&bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(key.as_bytes())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "generated a new secret key (mode 0600); back it up with the database");
            Ok(key.into_bytes())
        }
        // Another process created it between our read and our create: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trips_and_binds_context() {
        let k = Keys::from_master(b"0123456789abcdef0123456789abcdef");
        let c = k.encrypt(b"whsec_secret", "ep_1");
        assert!(c.starts_with("v1."));
        assert_eq!(k.decrypt(&c, "ep_1").unwrap(), b"whsec_secret");
        assert!(k.decrypt(&c, "ep_2").is_none());
        let other = Keys::from_master(b"fedcba9876543210fedcba9876543210");
        assert!(other.decrypt(&c, "ep_1").is_none());
        assert_ne!(k.encrypt(b"x", "a"), k.encrypt(b"x", "a"));
    }

    #[test]
    fn generated_key_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret.key");
        let a = read_or_create(&p).unwrap();
        let b = read_or_create(&p).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
