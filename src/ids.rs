//! Typed, prefixed, time-sortable identifiers: `org_01jd…`, `key_01jd…`.
//!
//! The body is a UUIDv7 in lowercase Crockford base32 (26 characters), so ids sort by creation
//! time as text, which keyset pagination relies on.

use uuid::Uuid;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Writes the lowercase hex of `bytes` into `out` (twice as long), without allocating.
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

/// Lowercase hex of `bytes` (one allocation, no formatting machinery).
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// A new id with `prefix`.
pub fn new_id(prefix: &str) -> String {
    let mut n = Uuid::now_v7().as_u128();
    let mut buf = [0u8; 26];
    for slot in buf.iter_mut().rev() {
        *slot = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
    let mut s = String::with_capacity(prefix.len() + 27);
    s.push_str(prefix);
    s.push('_');
    s.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    s
}

/// Whether `s` has the shape of an id with `prefix` (it may still not exist).
pub fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|body| body.len() == 26 && body.bytes().all(|b| ALPHABET.contains(&b)))
}

/// Declares an id newtype that can only hold a well-formed id of its prefix.
macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new() -> Self {
                $name($crate::ids::new_id($prefix))
            }

            /// `None` unless `s` is shaped like an id of this kind.
            pub fn parse(s: &str) -> Option<Self> {
                $crate::ids::is_id(s, $prefix).then(|| $name(s.to_owned()))
            }

            /// For values read back from the store, which only ever holds well-formed ids.
            pub fn from_trusted(s: String) -> Self {
                $name(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&$name> for $crate::store::Arg {
            fn from(v: &$name) -> Self {
                $crate::store::Arg::Text(Some(v.0.clone()))
            }
        }

        impl From<$name> for $crate::store::Arg {
            fn from(v: $name) -> Self {
                $crate::store::Arg::Text(Some(v.0))
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use id_type;

id_type!(OrgId, "org");
id_type!(UserId, "usr");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_shape_and_sort_by_time() {
        let a = new_id("org");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("org");
        assert!(is_id(&a, "org") && is_id(&b, "org"));
        assert!(a < b);
        assert!(!is_id(&a, "key"));
        assert!(!is_id("org_short", "org"));
        assert!(OrgId::parse("org_0000000000000000000000000I").is_none());
    }
}
