//! Lector's domain: the types every other layer speaks, and the rules they obey.
//!
//! Nothing here does I/O. Values that can be invalid are parsed once at the edge into types that
//! can only hold valid values ("parse, don't validate"); a failed parse says what to fix in
//! Chinese and English.

/// Declares an enum of stable codes with Chinese and English labels; `parse` accepts the code,
/// either label or an alias.
macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $zh:literal, $en:literal $(| $alias:literal)*;)+ } $what_zh:literal, $what_en:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code stored and used by the API.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            pub fn label(self) -> Msg {
                match self { $($name::$variant => Msg::new($zh, $en)),+ }
            }

            /// Parses a code, or its Chinese or English label.
            pub fn parse(raw: &str) -> Result<Self, Msg> {
                let v = text::clean(raw).to_lowercase();
                $(if v == $code || v == $zh || v == $en.to_lowercase() $(|| v == $alias)* {
                    return Ok($name::$variant);
                })+
                let codes = [$($code),+].join(", ");
                Err(Msg::new(
                    format!("“{v}”不是有效的{}，可选：{codes}", $what_zh),
                    format!("'{v}' is not a valid {}; use one of {codes}", $what_en),
                ))
            }
        }
    };
}

pub mod attribute;
pub mod campaign;
pub mod case;
pub mod contact;
pub mod identity;
pub mod import;
pub mod message;
pub mod messaging;
pub mod name;
pub mod quiet;
pub mod reader;
pub mod role;
pub mod search;
pub mod segment;
pub mod text;
pub mod tracking;

pub use message::{FieldErrors, Msg};
