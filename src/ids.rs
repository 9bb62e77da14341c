//! Typed, prefixed, time-sortable identifiers: `org_01jd…`, `key_01jd…`.
//!
//! The body is a UUIDv7 in lowercase Crockford base32 (26 characters), so ids sort by creation
//! time as text, which keyset pagination relies on. Each kind of id is its own type, parsed
//! once at the edge: a path id of the wrong kind is a 404 before any query runs, a body id of
//! the wrong kind a 422, and a column that holds something else a decode error.

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
fn new_id(prefix: &str) -> String {
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
fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|body| body.len() == 26 && body.bytes().all(|b| ALPHABET.contains(&b)))
}

/// Declares an id newtype that can only hold a well-formed id of its prefix.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new() -> Self {
                $name(new_id($prefix))
            }

            /// `None` unless `s` is shaped like an id of this kind.
            pub fn parse(s: &str) -> Option<Self> {
                is_id(s, $prefix).then(|| $name(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
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

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s).ok_or(IdError($prefix))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(IdError($prefix)))
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-hjkmnp-tv-z]{26}$")))
                    .examples([concat!($prefix, "_01jd5m0k9q8x7v6t5s4r3p2n1m")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

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

        impl From<Option<&$name>> for $crate::store::Arg {
            fn from(v: Option<&$name>) -> Self {
                $crate::store::Arg::Text(v.map(|v| v.0.clone()))
            }
        }

        $crate::store::text_column!($name, $name::parse);
    };
}

/// A string that is not an id of the expected kind. Its message names the prefix only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an id starting with `{0}_`")]
pub struct IdError(&'static str);

id_type!(OrgId, "org");
id_type!(UserId, "usr");
id_type!(ContactId, "con");
id_type!(ConversationId, "cnv");
id_type!(MessageId, "msg");
id_type!(ScheduledMessageId, "sch");
id_type!(EndpointId, "ep");
id_type!(DeliveryId, "dlv");
id_type!(AttemptId, "att");
id_type!(DeadLetterId, "dl");
id_type!(EventId, "evt");
id_type!(ApiKeyId, "key");
id_type!(ExportId, "exp");
id_type!(IncidentId, "inc");
id_type!(IncidentUpdateId, "iup");
id_type!(JobId, "job");
id_type!(AuditEntryId, "aud");
id_type!(IdempotencyRecordId, "idem");
id_type!(RefreshTokenId, "rt");
id_type!(RefreshFamilyId, "rtf");
id_type!(SandboxDeliveryId, "sbx");
id_type!(WorkerId, "wrk");
id_type!(InstanceId, "ins");
id_type!(
    /// The lease a worker claims jobs under; it fences their completion.
    LeaseToken,
    "lease"
);
id_type!(
    /// An access token's unique id.
    TokenId,
    "jti"
);

impl MessageId {
    /// The message a scheduled message becomes when dispatched: derived from its id, so an
    /// item can never produce two messages.
    pub fn for_scheduled(s: &ScheduledMessageId) -> MessageId {
        let body = s.as_str().strip_prefix("sch_").unwrap_or(s.as_str());
        MessageId(format!("msg_{body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_shape_and_sort_by_time() {
        let a = OrgId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = OrgId::new();
        assert!(OrgId::parse(a.as_str()).is_some() && OrgId::parse(b.as_str()).is_some());
        assert!(a < b);
        assert!(ApiKeyId::parse(a.as_str()).is_none());
        assert!(OrgId::parse("org_short").is_none());
        assert!(OrgId::parse("org_0000000000000000000000000I").is_none());
        let s = ScheduledMessageId::new();
        assert!(MessageId::parse(MessageId::for_scheduled(&s).as_str()).is_some());
    }

    #[test]
    fn ids_deserialize_only_from_their_own_kind() {
        let c = ContactId::new();
        let ok: Result<ContactId, _> = serde_json::from_value(serde_json::json!(c.as_str()));
        assert_eq!(ok.ok(), Some(c));
        let wrong: Result<ContactId, _> =
            serde_json::from_value(serde_json::json!(ConversationId::new().as_str()));
        let message = wrong.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(message, "must be an id starting with `con_`");
    }
}
