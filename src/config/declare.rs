//! The `declare_config!` macro: from one row per variable it generates the `Config` struct (the
//! row's doc comment is the field's rustdoc), the list of declared names (unknown variables are
//! refused against it), the documentation rows (the variable table in docs/OPERATIONS.md is
//! checked against them) and the loader.
//!
//! A row reads:
//!
//! ```text
//! /// Meaning (one or more doc lines; the table joins them).
//! field: Type = "RAMPART_NAME", kind, DEFAULT;
//! ```
//!
//! where `kind` is a value kind from `kinds.rs` (parsing, validation and the type's name in
//! the table) and `DEFAULT` is one of:
//! - `default "text"`: the default written as an operator would write it, parsed by the kind
//!   like any value; the table shows the text;
//! - `unset "what that means"`: the field is an `Option`; empty counts as unset;
//! - `computed "what it is" => expr`: a default computed by `expr`, which may read fields
//!   declared above it.

/// One variable as the documentation shows it.
pub struct VarDoc {
    pub name: &'static str,
    /// The type, from the value kind.
    pub kind: String,
    pub default: String,
    pub meaning: String,
}

/// A row's doc lines as one sentence for the table.
pub fn join_doc(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

macro_rules! declare_config {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty = $name:literal, $kind:expr, $how:ident $default:literal $(=> $computed:expr)?;
    )+) => {
        /// The validated configuration; each field is declared once in `config/variables.rs`.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        /// Every declared variable, in declaration order.
        pub const NAMES: &[&str] = &[$($name),+];

        /// Every declared variable as the documentation shows it.
        pub fn docs() -> Vec<$crate::config::declare::VarDoc> {
            vec![$(
                $crate::config::declare::VarDoc {
                    name: $name,
                    kind: $crate::config::kinds::Kind::describe(&$kind),
                    default: $crate::config::declare::default_doc!($how $default),
                    meaning: $crate::config::declare::join_doc(&[$($doc),+]),
                }
            ),+]
        }

        /// Reads every variable in declaration order; the first bad one is the error.
        pub fn load(
            src: &$crate::config::sources::Sources,
        ) -> Result<Config, $crate::config::ConfigError> {
            $(
                let $field: $ty = $crate::config::declare::load_one!(
                    src, $name, $kind, $how $default $(=> $computed)?
                );
            )+
            Ok(Config { $($field),+ })
        }
    };
}

macro_rules! load_one {
    ($src:ident, $name:literal, $kind:expr, default $text:literal) => {
        $src.value($name, &$kind, $text)?
    };
    ($src:ident, $name:literal, $kind:expr, unset $doc:literal) => {
        $src.optional($name, &$kind)?
    };
    ($src:ident, $name:literal, $kind:expr, computed $doc:literal => $computed:expr) => {
        $src.value_or_else($name, &$kind, || $computed)?
    };
}

macro_rules! default_doc {
    (default $text:literal) => {
        format!("`{}`", $text)
    };
    (unset $doc:literal) => {
        format!("unset: {}", $doc)
    };
    (computed $doc:literal) => {
        String::from($doc)
    };
}

pub(crate) use {declare_config, default_doc, load_one};
