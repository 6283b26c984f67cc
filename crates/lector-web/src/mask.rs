//! Masking of contact details for staff who may see a reader but not how to reach them.

use lector_domain::contact::ContactKind;

/// Masks a contact value for a user who may not see contact details.
pub fn mask(kind: ContactKind, value: &str) -> String {
    match kind {
        ContactKind::Email => mask_email(value),
        ContactKind::Mobile | ContactKind::Phone | ContactKind::Qq => mask_number(value),
        ContactKind::Wechat => keep_first(value, 2),
        ContactKind::Address => keep_first(value, 6),
    }
}

/// `zxm@pku.edu.cn` → `z***@pku.edu.cn`.
pub fn mask_email(v: &str) -> String {
    match v.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// `13800138000` → `138****8000`; shorter numbers keep their last two digits.
pub fn mask_number(v: &str) -> String {
    let digits: Vec<usize> = v.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
    let n = digits.len();
    let (head, tail) = if n >= 10 {
        (3, 4)
    } else if n >= 5 {
        (0, 2)
    } else {
        (0, 0)
    };
    let hidden: std::collections::HashSet<usize> = digits[head..n - tail].iter().copied().collect();
    v.char_indices().map(|(i, c)| if hidden.contains(&i) { '*' } else { c }).collect()
}

fn keep_first(v: &str, n: usize) -> String {
    let kept: String = v.chars().take(n).collect();
    format!("{kept}****")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_email("zxm@pku.edu.cn"), "z***@pku.edu.cn");
        assert_eq!(mask_number("13800138000"), "138****8000");
        assert_eq!(mask_number("010-62751234"), "010-****1234");
        assert_eq!(mask_number("12345678"), "******78");
        assert_eq!(mask(ContactKind::Address, "北京市海淀区颐和园路5号"), "北京市海淀区****");
        assert_eq!(mask(ContactKind::Wechat, "wx_zhang"), "wx****");
    }
}
