//! Domain enums stored and sent as text (statuses, kinds, roles …), declared once.
//!
//! `text_enum!` gives an enum its text form in one place: `as_str`, `parse`, `ALL`, serde
//! (so the API and OpenAPI use the same words), and decoding from a TEXT column of either
//! store (an unknown word in the database is a decode error, never a silent default).

/// Declares an enum whose variants have fixed text forms:
///
/// ```text
/// text_enum! {
///     /// What an endpoint is doing.
///     pub enum EndpointStatus { Active = "active", Paused = "paused" }
/// }
/// ```
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        // By hand, not derived: utoipa's derive does not see a `serde(rename)` whose text
        // comes from a macro argument, and would publish the variant names instead.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for $crate::store::Arg {
            fn from(v: $name) -> Self {
                $crate::store::Arg::Text(Some(v.as_str().to_owned()))
            }
        }

        impl From<Option<$name>> for $crate::store::Arg {
            fn from(v: Option<$name>) -> Self {
                $crate::store::Arg::Text(v.map(|v| v.as_str().to_owned()))
            }
        }

        $crate::store::text_column!($name, $name::parse);
    };
}
pub(crate) use text_enum;

/// Stores an existing enum with `as_str` and `parse` as text (binds and column decoding), for
/// the few enums that need more derives than `text_enum!` gives (an order, say).
macro_rules! stored_as_text {
    ($name:ident) => {
        impl From<$name> for $crate::store::Arg {
            fn from(v: $name) -> Self {
                $crate::store::Arg::Text(Some(v.as_str().to_owned()))
            }
        }

        $crate::store::text_column!($name, $name::parse);
    };
}
pub(crate) use stored_as_text;
