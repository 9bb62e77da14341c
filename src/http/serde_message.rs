//! serde's error messages in the API's words: they name Rust types ("expected struct
//! ContactIn", "expected u32"), which say nothing to a client and describe our internals.
//! Every message a body or query parse produces passes through [`client_words`].

/// `message` with every Rust type name replaced by what the client should send.
pub fn client_words(message: &str) -> String {
    let message = strip_position(message);
    if message.starts_with("data did not match any variant of untagged enum") {
        return "the value does not match any accepted form".to_owned();
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, got {}", expectation(expected), found(got));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, got {}", expectation(expected), found(got));
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}", expectation(expected));
    }
    message.to_owned()
}

/// What serde expected, in API terms.
fn expectation(e: &str) -> String {
    let e = e.trim();
    let words = match e {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "option" => "a value or null",
        "unit" => "null",
        "a borrowed string" | "a string" | "string" => "a string",
        "char" | "a character" => "a single character",
        "bool" | "a boolean" => "true or false",
        "a sequence" | "sequence" => "an array",
        "a map" | "map" => "an object",
        _ if e.starts_with("struct ")
            || e.starts_with("tuple struct ")
            || e.starts_with("a map") =>
        {
            "an object"
        }
        _ if e.contains("enum ") => "one of the documented values",
        _ if e.starts_with("a tuple") || e.starts_with("tuple") => "an array",
        _ => return e.to_owned(),
    };
    words.to_owned()
}

/// What serde found, in API terms (JSON's names, not serde's data model).
fn found(f: &str) -> String {
    match f.trim() {
        "sequence" => "an array".to_owned(),
        "map" => "an object".to_owned(),
        "unit value" | "unit" => "null".to_owned(),
        "newtype struct" | "newtype variant" | "unit variant" | "tuple variant"
        | "struct variant" | "enum" => "a value".to_owned(),
        other => other.to_owned(),
    }
}

/// serde_json's messages end with "at line 1 column 9", which says nothing useful about a
/// field.
fn strip_position(m: &str) -> &str {
    match m.rfind(" at line ") {
        Some(i) => &m[..i],
        None => m,
    }
}

/// Whether `message` names something only a Rust programmer would know: the test of
/// [`client_words`], shared with the hostile-input tests.
pub fn names_rust_internals(message: &str) -> bool {
    const WORDS: &[&str] = &[
        "struct", "enum", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
        "i128", "isize", "f32", "f64", "Vec", "Option", "String", "HashMap", "BTreeMap", "serde",
        "rampart",
    ];
    message.contains("::")
        || message
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|w| WORDS.contains(&w) || (w.len() > 2 && w.ends_with("In") && is_camel(w)))
}

fn is_camel(w: &str) -> bool {
    w.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && w.chars().skip(1).any(|c| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_type_names_become_json_words() {
        let cases = [
            (
                "invalid type: sequence, expected struct ContactIn at line 1 column 2",
                "expected an object, got an array",
            ),
            (
                "invalid type: string \"x\", expected u32",
                "expected a non-negative integer, got string \"x\"",
            ),
            (
                "invalid value: integer `-1`, expected u64",
                "expected a non-negative integer, got integer `-1`",
            ),
            (
                "invalid length 2, expected struct LoginIn with 3 elements",
                "expected an object",
            ),
            (
                "data did not match any variant of untagged enum Filter",
                "the value does not match any accepted form",
            ),
            (
                "invalid type: map, expected internally tagged enum Action",
                "expected one of the documented values, got an object",
            ),
            ("missing field `name`", "missing field `name`"),
        ];
        for (serde, ours) in cases {
            let w = client_words(serde);
            assert_eq!(w, ours);
            assert!(!names_rust_internals(&w), "{w}");
            assert!(
                names_rust_internals(serde) || !serde.contains("expected"),
                "{serde}"
            );
        }
    }
}
