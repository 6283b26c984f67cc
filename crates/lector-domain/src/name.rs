//! Names and the keys they are found by: Chinese characters, full pinyin, pinyin initials.

use crate::{text, Msg};
use pinyin::ToPinyin;

/// A person's name as written (Chinese or otherwise), 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, Msg> {
        let v = text::clean(raw);
        if v.is_empty() {
            return Err(Msg::new("请填写姓名", "enter a name"));
        }
        if v.chars().count() > 64 || text::has_control(&v) || v.contains(['\n', '\r', '\t']) {
            return Err(Msg::new(
                "姓名最多 64 个字符，且不能包含换行或控制字符",
                "a name has at most 64 characters and no line breaks or control characters",
            ));
        }
        Ok(PersonName(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The pinyin spellings of a name, derived, never typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePinyin {
    /// Syllables joined without tones or spaces: 张晓明 → `zhangxiaoming`.
    pub full: String,
    /// First letters: 张晓明 → `zxm`.
    pub initials: String,
}

/// Derives the pinyin of `name`. Latin letters and digits are kept lower-cased; other
/// characters (spaces, dots of transliterated names) are dropped.
pub fn pinyin_of(name: &str) -> NamePinyin {
    let mut full = String::new();
    let mut initials = String::new();
    let mut in_word = false;
    for (c, py) in name.chars().zip(name.to_pinyin()) {
        if let Some(py) = py {
            full.push_str(py.plain());
            initials.push_str(py.first_letter());
            in_word = false;
        } else if c.is_ascii_alphanumeric() {
            let lc = c.to_ascii_lowercase();
            full.push(lc);
            if !in_word {
                initials.push(lc);
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    NamePinyin { full, initials }
}

/// The keys a reader's name is found by with a prefix match: the full pinyin, the initials and
/// every suffix of the name (so a prefix match on a suffix is a substring match on the name).
pub fn search_keys(name: &str) -> Vec<String> {
    const MAX_KEY_CHARS: usize = 16;
    let py = pinyin_of(name);
    let mut keys = Vec::new();
    for k in [py.full, py.initials] {
        if !k.is_empty() && !keys.contains(&k) {
            keys.push(k);
        }
    }
    let chars: Vec<char> = name.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
    for start in 0..chars.len().min(MAX_KEY_CHARS) {
        if !text::is_han(chars[start]) {
            continue;
        }
        let end = (start + MAX_KEY_CHARS).min(chars.len());
        let key: String = chars[start..end].iter().collect();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// The exclusive upper bound of the keys that start with `prefix`, for a range scan on an index
/// (`key >= prefix AND key < upper`): the last character incremented.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (last as u32 + 1..=0x10FFFF).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinyin_of_chinese_names() {
        let p = pinyin_of("张晓明");
        assert_eq!(p.full, "zhangxiaoming");
        assert_eq!(p.initials, "zxm");
        let p = pinyin_of("欧阳 Li");
        assert_eq!(p.full, "ouyangli");
        assert_eq!(p.initials, "oyl");
    }

    #[test]
    fn keys_allow_substring_search() {
        let keys = search_keys("张晓明");
        assert_eq!(keys, vec!["zhangxiaoming", "zxm", "张晓明", "晓明", "明"]);
    }

    #[test]
    fn names_are_checked() {
        assert!(PersonName::parse("  ").is_err());
        assert!(PersonName::parse(&"名".repeat(65)).is_err());
        assert!(PersonName::parse("a\u{7}b").is_err());
        assert_eq!(PersonName::parse(" 王　芳 ").unwrap().as_str(), "王 芳");
    }

    #[test]
    fn upper_bound() {
        assert_eq!(prefix_upper_bound("zh").as_deref(), Some("zi"));
        assert_eq!(prefix_upper_bound("晓").as_deref(), Some("晔"));
        assert_eq!(prefix_upper_bound(""), None);
    }
}
