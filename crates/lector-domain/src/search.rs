//! What a search box query means: a card number, an email, a phone, pinyin or a name fragment.

use crate::text;

/// A classified search query. The store picks an index for each kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchTerm {
    /// Contains `@`: an email address (exact, lower-cased).
    Email(String),
    /// Digits only (separators removed): a card number prefix, or a phone, mobile or QQ number.
    Number(String),
    /// Latin letters only: full pinyin or initials prefix (`zhanghui`, `zh`), lower-cased.
    Pinyin(String),
    /// Contains Chinese characters: a fragment of the name.
    Name(String),
    /// Anything else (letters and digits mixed): a card number prefix, upper-cased.
    Card(String),
}

impl SearchTerm {
    /// Classifies a query; `None` when it is blank.
    pub fn parse(raw: &str) -> Option<Self> {
        let q = text::clean(raw);
        if q.is_empty() {
            return None;
        }
        if q.contains('@') {
            return Some(SearchTerm::Email(q.to_lowercase()));
        }
        if q.chars().any(text::is_han) {
            let frag: String = q.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
            return Some(SearchTerm::Name(frag));
        }
        let compact: String = q.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix("+86").unwrap_or(&compact);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Some(SearchTerm::Number(digits.to_string()));
        }
        if q.chars().all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '\'') {
            let py: String = q.chars().filter(char::is_ascii_alphabetic).collect::<String>().to_lowercase();
            return Some(SearchTerm::Pinyin(py));
        }
        Some(SearchTerm::Card(q.to_uppercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(SearchTerm::parse("  "), None);
        assert_eq!(SearchTerm::parse("ZH"), Some(SearchTerm::Pinyin("zh".into())));
        assert_eq!(SearchTerm::parse("zhang hui"), Some(SearchTerm::Pinyin("zhanghui".into())));
        assert_eq!(SearchTerm::parse("晓明"), Some(SearchTerm::Name("晓明".into())));
        assert_eq!(SearchTerm::parse("A@B.CN"), Some(SearchTerm::Email("a@b.cn".into())));
        assert_eq!(SearchTerm::parse("138-0013-8000"), Some(SearchTerm::Number("13800138000".into())));
        assert_eq!(SearchTerm::parse("s2021001"), Some(SearchTerm::Card("S2021001".into())));
        assert_eq!(SearchTerm::parse("２０２１"), Some(SearchTerm::Number("2021".into())));
    }
}
