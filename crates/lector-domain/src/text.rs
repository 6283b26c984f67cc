//! Normalisation of text typed by people or exported by other systems.

use crate::Msg;
use unicode_normalization::UnicodeNormalization;

/// NFKC-normalises (full-width letters, digits and punctuation become half-width, as Chinese
/// input methods often produce them) and trims surrounding white space, including the
/// ideographic space U+3000.
pub fn clean(input: &str) -> String {
    // Most text is already normalised (all ASCII is); skipping the rewrite keeps imports fast.
    if input.is_ascii() || unicode_normalization::is_nfkc_quick(input.chars()) == unicode_normalization::IsNormalized::Yes {
        return input.trim().to_string();
    }
    input.nfkc().collect::<String>().trim().to_string()
}

/// Free text (notes, subjects, messages, replies) as the writer meant it: surrounding white
/// space trimmed and line endings unified, and nothing else changed. Unlike [`clean`] it keeps
/// full-width punctuation, which Chinese prose uses (，：；！？).
pub fn prose(input: &str) -> String {
    input.replace("\r\n", "\n").trim_matches(|c: char| c.is_whitespace()).to_string()
}

/// A required free-text field of at most `max` characters, named `zh` / `en` in messages.
pub fn required_prose(raw: &str, max: usize, zh: &str, en: &str) -> Result<String, Msg> {
    let v = prose(raw);
    let n = v.chars().count();
    if v.is_empty() {
        Err(Msg::new(format!("请填写{zh}"), format!("enter the {en}")))
    } else if n > max {
        Err(Msg::new(format!("{zh}最多 {max} 个字符（现有 {n} 个）"), format!("the {en} has at most {max} characters (this one has {n})")))
    } else if has_control(&v) {
        Err(Msg::new(format!("{zh}含有控制字符"), format!("the {en} contains control characters")))
    } else {
        Ok(v)
    }
}

/// An optional free-text field: blank is `None`, otherwise as [`required_prose`].
pub fn optional_prose(raw: Option<&str>, max: usize, zh: &str, en: &str) -> Result<Option<String>, Msg> {
    match raw.map(prose).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => required_prose(&v, max, zh, en).map(Some),
    }
}

/// True when `c` is a CJK unified ideograph (the characters of Chinese names).
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2EBEF)
}

/// Rejects control characters, which have no place in names, notes or identifiers.
pub fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_becomes_half_width() {
        assert_eq!(clean("　ＡＢＣ１２３＠ｅｄｕ．ｃｎ "), "ABC123@edu.cn");
    }

    #[test]
    fn prose_keeps_chinese_punctuation() {
        assert_eq!(prose("　您好，问题已处理！\r\n谢谢。 "), "您好，问题已处理！\n谢谢。");
        assert!(required_prose(" ", 10, "主题", "subject").is_err());
        assert!(required_prose(&"字".repeat(11), 10, "主题", "subject").unwrap_err().en.contains("11"));
        assert_eq!(optional_prose(Some("  "), 10, "备注", "notes").unwrap(), None);
    }

    #[test]
    fn han_detection() {
        assert!(is_han('张'));
        assert!(!is_han('z'));
        assert!(!is_han('，'));
    }
}
