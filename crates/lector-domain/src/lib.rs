//! Lector's domain: the types every other layer speaks, and the rules they obey.
//!
//! Nothing here does I/O. Values that can be invalid are parsed once at the edge into types that
//! can only hold valid values ("parse, don't validate"); a failed parse says what to fix in
//! Chinese and English.

pub mod attribute;
pub mod contact;
pub mod message;
pub mod name;
pub mod reader;
pub mod role;
pub mod search;
pub mod text;

pub use message::{FieldErrors, Msg};
