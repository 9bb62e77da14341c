//! The variable table of docs/OPERATIONS.md, rendered from the declaration. A test fails when
//! the file's table differs, printing the expected one; `UPDATE_DOCS=1` rewrites it in place.

use super::rules::RULES;
use super::sources::CONFIG_FILE_VAR;
use super::variables::docs;

/// Where the generated block starts and ends in docs/OPERATIONS.md.
pub const BEGIN: &str =
    "<!-- BEGIN variables: generated from src/config/variables.rs, checked by `cargo test` -->";
pub const END: &str = "<!-- END variables -->";

/// The Markdown block between [`BEGIN`] and [`END`]: the table, then the rules across variables.
pub fn markdown() -> String {
    let mut out = String::from("| variable | type | default | meaning |\n|---|---|---|---|\n");
    out.push_str(&row(
        CONFIG_FILE_VAR,
        "path",
        "unset: environment only",
        "TOML file with the variables below as keys: the name without `RAMPART_`, in lower \
         case (`RAMPART_LOG` is `log`); the environment wins.",
    ));
    for v in docs() {
        out.push_str(&row(v.name, &v.kind, &v.default, &v.meaning));
    }
    out.push_str(
        "\nRules across variables, checked once every value has parsed (the error names the \
         variable to change):\n\n",
    );
    for rule in RULES {
        out.push_str(&format!("- {}\n", rule.doc));
    }
    out
}

fn row(name: &str, kind: &str, default: &str, meaning: &str) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    format!(
        "| `{name}` | {} | {} | {} |\n",
        cell(kind),
        cell(default),
        cell(meaning)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md");

    #[test]
    fn operations_doc_table_matches_the_declaration() {
        let doc = std::fs::read_to_string(DOC).expect("docs/OPERATIONS.md");
        let start = doc.find(BEGIN).expect("the BEGIN marker") + BEGIN.len();
        let end = doc.find(END).expect("the END marker");
        let expected = format!("\n{}", markdown());
        if doc[start..end] == expected {
            return;
        }
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{expected}{}", &doc[..start], &doc[end..]);
            std::fs::write(DOC, updated).expect("write docs/OPERATIONS.md");
            return;
        }
        panic!(
            "docs/OPERATIONS.md's variable table differs from src/config/variables.rs; \
             run `UPDATE_DOCS=1 cargo test --lib config::docs` or put this between the markers:\n{expected}"
        );
    }
}
