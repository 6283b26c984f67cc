//! Normalisation of text typed by people or exported by other systems.

use unicode_normalization::UnicodeNormalization;

/// NFKC-normalises (full-width letters, digits and punctuation become half-width, as Chinese
/// input methods often produce them) and trims surrounding white space, including the
/// ideographic space U+3000.
pub fn clean(input: &str) -> String {
    input.nfkc().collect::<String>().trim().to_string()
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
    fn han_detection() {
        assert!(is_han('张'));
        assert!(!is_han('z'));
        assert!(!is_han('，'));
    }
}
