//! Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))
//! where the secret is the base64 part of `whsec_…`, decoded.

use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = crate::access::secrets::random_bytes();
    format!("whsec_{}", B64.encode(bytes))
}

/// The key bytes of a `whsec_` secret.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

/// `v1,<signature>` for one secret.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", B64.encode(ctx.sign().as_ref()))
}

/// The `webhook-signature` header: one signature per valid secret, space-separated (during a
/// rotation's overlap both the new and the old secret sign).
pub fn header(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_test_vector() {
        let secret = secret_bytes("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let sig = sign(
            &secret,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn secrets_have_enough_entropy() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_bytes(&s).unwrap().len(), 32);
        assert_ne!(new_secret(), s);
    }
}
