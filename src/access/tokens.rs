//! Access tokens: compact JWS (JWT) signed with HMAC-SHA256 under a key derived for this one
//! purpose. The header is pinned byte for byte to the one we issue (`{"alg":"HS256","typ":"JWT"}`),
//! so `alg: none`, algorithm confusion, a missing `typ` and any `kid`/`jku`/`x5u`/`crit` are
//! refused before any signature check. Issuer, audience, expiry and not-before are always
//! checked. Refresh tokens are opaque strings stored hashed: a login's first one is random,
//! each later one derived from its predecessor under a key of its own.
//!
//! Written against RFC 7519/7515 directly rather than with a JWT crate: one algorithm, one key,
//! ~100 lines, and no RSA/EC stack in the build (see docs/ARCHITECTURE.md).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::principal::Environment;
use super::secrets::Keys;
use crate::clock::now_ms;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub const ISSUER: &str = "rampart";
pub const AUDIENCE: &str = "rampart-api";
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// `HEADER` in base64url: the only first segment a token may have.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// Clock skew tolerated on `nbf`/`iat` between instances.
const LEEWAY_S: i64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    pub org: String,
    pub role: String,
    /// The refresh-token family this access token was issued from.
    pub sid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// `test` for a console session in test mode (sandbox data only); absent: live. Only the
    /// console mints it; a login never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Environment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token header or algorithm")]
    Algorithm,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer or audience")]
    Audience,
}

pub fn sign(keys: &Keys, claims: &Claims) -> String {
    let header = B64.encode(HEADER);
    let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let sig = B64.encode(keys.sign(signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

pub fn verify(keys: &Keys, token: &str) -> Result<Claims, TokenError> {
    if token.len() > 4096 {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    // Exactly the header we issue, compared before anything else is decoded: nothing in a
    // header can choose a key or an algorithm.
    if h != HEADER_B64 {
        return Err(TokenError::Algorithm);
    }
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    if !keys.verify(signing_input.as_bytes(), &sig) {
        return Err(TokenError::Signature);
    }
    let claims: Claims = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != ISSUER || claims.aud != AUDIENCE {
        return Err(TokenError::Audience);
    }
    let now = now_ms() / 1000;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now + LEEWAY_S || claims.iat > now + LEEWAY_S {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// A new opaque refresh token (`rt_` + 256 random bits) and its stored hash.
pub fn new_refresh_token(keys: &Keys) -> (String, String) {
    let raw: [u8; 32] = keys.random();
    let token = format!("rt_{}", B64.encode(raw));
    let hash = sha256_hex(&token);
    (token, hash)
}

/// The refresh token that succeeds `previous` in its family, and its stored hash. Derived,
/// not random, so that a retry of the same refresh within the reuse interval can be given the
/// same token again without the token ever being stored (see `sessions::refresh`).
pub fn successor_refresh_token(keys: &Keys, previous: &str) -> (String, String) {
    let token = format!(
        "rt_{}",
        B64.encode(keys.refresh_successor(previous.as_bytes()))
    );
    let hash = sha256_hex(&token);
    (token, hash)
}

pub fn sha256_hex(s: &str) -> String {
    crate::ids::hex(Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master(b"0123456789abcdef0123456789abcdef")
    }

    fn claims(exp_in: i64) -> Claims {
        let now = now_ms() / 1000;
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "usr_1".into(),
            org: "org_1".into(),
            role: "admin".into(),
            sid: "fam".into(),
            iat: now,
            nbf: now,
            exp: now + exp_in,
            jti: "j".into(),
            env: None,
        }
    }

    #[test]
    fn the_pinned_header_is_the_one_we_sign() {
        assert_eq!(B64.encode(HEADER), HEADER_B64);
    }

    #[test]
    fn successors_are_fixed_by_their_predecessor_and_the_key() {
        let k = keys();
        let (a, ha) = successor_refresh_token(&k, "rt_one");
        assert_eq!((a.clone(), ha), successor_refresh_token(&k, "rt_one"));
        assert_ne!(a, successor_refresh_token(&k, "rt_two").0);
        let other = Keys::from_master(b"fedcba9876543210fedcba9876543210");
        assert_ne!(a, successor_refresh_token(&other, "rt_one").0);
        assert!(a.starts_with("rt_") && a.len() == 3 + 43);
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let t = sign(&k, &claims(60));
        assert_eq!(verify(&k, &t).unwrap().sub, "usr_1");
    }

    #[test]
    fn attacks_are_refused() {
        let k = keys();
        let good = sign(&k, &claims(60));
        let parts: Vec<&str> = good.split('.').collect();
        // alg: none with no signature.
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(verify(&k, &none), Err(TokenError::Algorithm));
        // Algorithm confusion: claim RS256.
        let rs = format!(
            "{}.{}.{}",
            B64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            parts[1],
            parts[2]
        );
        assert_eq!(verify(&k, &rs), Err(TokenError::Algorithm));
        // Another key.
        let other = Keys::from_master(b"fedcba9876543210fedcba9876543210");
        assert_eq!(verify(&other, &good), Err(TokenError::Signature));
        // Tampered claims.
        let mut c = claims(60);
        c.role = "owner".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert_eq!(verify(&k, &forged), Err(TokenError::Signature));
        // Expired.
        assert_eq!(verify(&k, &sign(&k, &claims(-1))), Err(TokenError::Expired));
        // Wrong audience.
        let mut c = claims(60);
        c.aud = "someone-else".into();
        assert_eq!(verify(&k, &sign(&k, &c)), Err(TokenError::Audience));
        // Any header but the one we issue, even correctly signed: no `typ`, another order,
        // a key id, extra spaces.
        for header in [
            r#"{"alg":"HS256"}"#,
            r#"{"typ":"JWT","alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"JWT","kid":"other"}"#,
            r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
            r#"{"alg":"HS256", "typ":"JWT"}"#,
            r#"{"alg":"HS256","typ":"jwt"}"#,
        ] {
            let input = format!("{}.{}", B64.encode(header), parts[1]);
            let sig = B64.encode(k.sign(input.as_bytes()));
            assert_eq!(
                verify(&k, &format!("{input}.{sig}")),
                Err(TokenError::Algorithm),
                "{header}"
            );
        }
        assert_eq!(verify(&k, "a.b"), Err(TokenError::Malformed));
        assert_eq!(verify(&k, "a.b.c.d"), Err(TokenError::Malformed));
    }
}
