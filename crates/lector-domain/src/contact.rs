//! Contact points (联系方式): the ways to reach a reader.

use crate::{text, Msg};
use serde::{Deserialize, Serialize};

/// The kind of a contact point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactKind {
    Email,
    Mobile,
    Phone,
    Qq,
    Wechat,
    Address,
}

impl ContactKind {
    pub const ALL: [ContactKind; 6] =
        [ContactKind::Email, ContactKind::Mobile, ContactKind::Phone, ContactKind::Qq, ContactKind::Wechat, ContactKind::Address];

    pub fn code(self) -> &'static str {
        match self {
            ContactKind::Email => "email",
            ContactKind::Mobile => "mobile",
            ContactKind::Phone => "phone",
            ContactKind::Qq => "qq",
            ContactKind::Wechat => "wechat",
            ContactKind::Address => "address",
        }
    }

    pub fn parse(code: &str) -> Result<Self, Msg> {
        Self::ALL.into_iter().find(|k| k.code() == code).ok_or_else(|| {
            Msg::new(
                format!("未知的联系方式类型“{code}”，可选：email、mobile、phone、qq、wechat、address"),
                format!("unknown contact kind '{code}'; use email, mobile, phone, qq, wechat or address"),
            )
        })
    }

    pub fn label(self) -> Msg {
        let (zh, en) = match self {
            ContactKind::Email => ("电子邮箱", "Email"),
            ContactKind::Mobile => ("手机", "Mobile"),
            ContactKind::Phone => ("电话", "Phone"),
            ContactKind::Qq => ("QQ", "QQ"),
            ContactKind::Wechat => ("微信", "WeChat"),
            ContactKind::Address => ("通信地址", "Postal address"),
        };
        Msg::new(zh, en)
    }

    /// Parses a raw value of this kind into its canonical stored form.
    pub fn parse_value(self, raw: &str) -> Result<String, Msg> {
        let v = text::clean(raw);
        if v.is_empty() {
            return Err(Msg::new("请填写联系方式", "enter a value"));
        }
        match self {
            ContactKind::Email => Email::parse(&v).map(|e| e.0),
            ContactKind::Mobile => Mobile::parse(&v).map(|m| m.0),
            ContactKind::Phone => parse_phone(&v),
            ContactKind::Qq => parse_qq(&v),
            ContactKind::Wechat => parse_wechat(&v),
            ContactKind::Address => parse_address(&v),
        }
    }
}

/// A syntactically valid email address, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Msg> {
        let v = text::clean(raw).to_lowercase();
        let bad = || {
            Msg::new(
                format!("“{v}”不是有效的电子邮箱，应形如 name@example.edu.cn"),
                format!("'{v}' is not a valid email address; expected name@example.edu.cn"),
            )
        };
        if v.len() > 254 {
            return Err(bad());
        }
        let (local, domain) = v.split_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.');
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if local_ok && domain_ok {
            Ok(Email(v))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A mainland China mobile number (11 digits starting 1[3-9]); `+86` and separators are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mobile(String);

impl Mobile {
    pub fn parse(raw: &str) -> Result<Self, Msg> {
        let v = text::clean(raw);
        let digits: String = v.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = digits.strip_prefix("+86").or_else(|| digits.strip_prefix("0086")).unwrap_or(&digits);
        let b = digits.as_bytes();
        if b.len() == 11 && b.iter().all(u8::is_ascii_digit) && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
            Ok(Mobile(digits.to_string()))
        } else {
            Err(Msg::new(
                format!("“{v}”不是有效的手机号，应为以 1 开头的 11 位数字"),
                format!("'{v}' is not a valid mobile number; expected 11 digits starting with 1"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_phone(v: &str) -> Result<String, Msg> {
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let allowed = v.chars().all(|c| c.is_ascii_digit() || " -+()#转".contains(c));
    if allowed && (5..=20).contains(&digits) {
        Ok(v.to_string())
    } else {
        Err(Msg::new(format!("“{v}”不是有效的电话号码，如 010-62751234"), format!("'{v}' is not a valid phone number, e.g. 010-62751234")))
    }
}

fn parse_qq(v: &str) -> Result<String, Msg> {
    if (5..=11).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0') {
        Ok(v.to_string())
    } else {
        Err(Msg::new(
            format!("“{v}”不是有效的 QQ 号，应为 5 到 11 位数字"),
            format!("'{v}' is not a valid QQ number; expected 5 to 11 digits"),
        ))
    }
}

fn parse_wechat(v: &str) -> Result<String, Msg> {
    let ok = (6..=20).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(v.to_string())
    } else {
        Err(Msg::new(
            format!("“{v}”不是有效的微信号，应为字母开头的 6 到 20 位字母、数字、下划线或减号"),
            format!("'{v}' is not a valid WeChat id; expected 6 to 20 letters, digits, _ or -, starting with a letter"),
        ))
    }
}

fn parse_address(v: &str) -> Result<String, Msg> {
    if v.chars().count() > 200 || text::has_control(v) {
        Err(Msg::new("地址过长（最多 200 字）或含有控制字符", "address is longer than 200 characters or contains control characters"))
    } else {
        Ok(v.to_string())
    }
}

/// The form of a contact value used to look it up: e-mail lower-cased, numbers digits only.
pub fn lookup_key(kind: ContactKind, value: &str) -> String {
    match kind {
        ContactKind::Mobile | ContactKind::Phone | ContactKind::Qq => value.chars().filter(char::is_ascii_digit).collect(),
        _ => value.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Zhang.Wei@PKU.edu.cn ").unwrap().as_str(), "zhang.wei@pku.edu.cn");
        assert_eq!(Email::parse("ｗａｎｇ＠ｔｈｕ．ｅｄｕ．ｃｎ").unwrap().as_str(), "wang@thu.edu.cn");
        for bad in ["", "a@b", "@b.cn", "a@@b.cn", "a b@c.cn", "a@-b.cn", "张@b.cn", ".a@b.cn"] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
        let msg = Email::parse("nope").unwrap_err();
        assert!(msg.en.contains("'nope'"));
    }

    #[test]
    fn mobiles() {
        assert_eq!(Mobile::parse("+86 138-0013-8000").unwrap().as_str(), "13800138000");
        assert_eq!(Mobile::parse("１３９１２３４５６７８").unwrap().as_str(), "13912345678");
        for bad in ["1380013800", "12800138000", "2380013800a", "138001380001"] {
            assert!(Mobile::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn other_kinds() {
        assert!(ContactKind::Phone.parse_value("010-62751234").is_ok());
        assert!(ContactKind::Phone.parse_value("call me").is_err());
        assert!(ContactKind::Qq.parse_value("12345").is_ok());
        assert!(ContactKind::Qq.parse_value("0123").is_err());
        assert!(ContactKind::Wechat.parse_value("wxid_abc123").is_ok());
        assert!(ContactKind::Wechat.parse_value("1abcdef").is_err());
        assert!(ContactKind::Address.parse_value(&"路".repeat(201)).is_err());
        assert_eq!(lookup_key(ContactKind::Phone, "010-6275 1234"), "01062751234");
    }
}
