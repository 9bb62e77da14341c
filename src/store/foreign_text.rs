//! Text from outside that we keep as evidence rather than validate (what a webhook receiver
//! answered): made storable on both stores. Postgres refuses U+0000 in text, so a receiver
//! answering a NUL must not be able to fail the write that records its answer.

/// `bytes` as text: invalid UTF-8 and NUL become U+FFFD.
pub fn storable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nul_and_invalid_utf8_become_replacement_characters() {
        assert_eq!(super::storable(b"a\0b\xffc"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(super::storable(b"plain"), "plain");
    }
}
