//! Masking of contact details for staff who may see a reader but not how to reach them.

use lector_domain::contact::ContactKind;

/// Hides most of a contact value: `z***@pku.edu.cn`, `138****8000`, `QQ 12***`.
pub fn mask(kind: ContactKind, value: &str) -> String {
    match kind {
        ContactKind::Email => match value.split_once('@') {
            Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
            None => "***".into(),
        },
        ContactKind::Mobile | ContactKind::Phone => {
            let chars: Vec<char> = value.chars().collect();
            if chars.len() <= 7 {
                "*".repeat(chars.len())
            } else {
                let head: String = chars[..3].iter().collect();
                let tail: String = chars[chars.len() - 4..].iter().collect();
                format!("{head}****{tail}")
            }
        }
        ContactKind::Address => value.chars().take(6).chain("……".chars()).collect(),
        ContactKind::Qq | ContactKind::Wechat => format!("{}***", value.chars().take(2).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask(ContactKind::Email, "zhang@pku.edu.cn"), "z***@pku.edu.cn");
        assert_eq!(mask(ContactKind::Mobile, "13800138000"), "138****8000");
        assert_eq!(mask(ContactKind::Qq, "123456"), "12***");
        assert!(!mask(ContactKind::Address, "北京市海淀区颐和园路5号").contains("5号"));
    }
}
