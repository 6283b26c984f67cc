//! Message templates: minijinja sources per channel kind and language, rendered with a reader's
//! variables. CONTRACT STUB — the senders helper replaces this file.

use serde::{Deserialize, Serialize};

/// One template variant's sources (subject, plain text, optional HTML for email).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// A template that does not parse or render: which part, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} line {line}: {detail}")]
pub struct TemplateError {
    /// `subject`, `body_text` or `body_html`.
    pub part: &'static str,
    pub line: usize,
    pub detail: String,
}

/// Renders `variant` with `vars` (an object: `reader.name`, `reader.card_no`, …, plus extras).
pub fn render(_variant: &Variant, _vars: &serde_json::Value) -> Result<Rendered, TemplateError> {
    todo!("senders helper")
}

/// Checks a variant parses (and renders with sample variables) before it is saved.
pub fn check(_variant: &Variant) -> Result<(), TemplateError> {
    todo!("senders helper")
}
