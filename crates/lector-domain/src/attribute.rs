//! Custom attributes (自定义属性): fields an admin adds to the reader record.

use crate::reader::parse_date;
use crate::{text, Msg};
use serde::{Deserialize, Serialize};

/// What a custom attribute holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrKind {
    Text,
    Number,
    Date,
    Choice,
}

impl AttrKind {
    pub const ALL: [AttrKind; 4] = [AttrKind::Text, AttrKind::Number, AttrKind::Date, AttrKind::Choice];

    pub fn code(self) -> &'static str {
        match self {
            AttrKind::Text => "text",
            AttrKind::Number => "number",
            AttrKind::Date => "date",
            AttrKind::Choice => "choice",
        }
    }

    pub fn label(self) -> Msg {
        match self {
            AttrKind::Text => Msg::new("文本", "Text"),
            AttrKind::Number => Msg::new("数字", "Number"),
            AttrKind::Date => Msg::new("日期", "Date"),
            AttrKind::Choice => Msg::new("选项", "Choice"),
        }
    }

    pub fn parse(code: &str) -> Result<Self, Msg> {
        Self::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .ok_or_else(|| Msg::new(format!("未知的属性类型“{code}”"), format!("unknown attribute kind '{code}'")))
    }
}

/// The definition of a custom attribute, as configured by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttrDef {
    /// Stable machine name used by the API and imports: `[a-z][a-z0-9_]{0,31}`.
    pub code: String,
    pub label_zh: String,
    pub label_en: String,
    pub kind: AttrKind,
    /// Allowed values of a `Choice` attribute.
    pub choices: Vec<String>,
    pub repeatable: bool,
    pub unique: bool,
    pub searchable: bool,
}

/// Parses an attribute code.
pub fn parse_code(raw: &str) -> Result<String, Msg> {
    let v = text::clean(raw);
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(v)
    } else {
        Err(Msg::new(
            format!("代码“{v}”无效：小写字母开头，只含小写字母、数字和下划线，最多 32 位"),
            format!("code '{v}' is invalid: start with a lower-case letter; letters, digits and _ only; at most 32"),
        ))
    }
}

impl AttrDef {
    /// Checks values entered for this attribute and returns them in stored form.
    pub fn parse_values(&self, values: &[String]) -> Result<Vec<String>, Msg> {
        if values.len() > 1 && !self.repeatable {
            return Err(Msg::new(format!("“{}”只能填写一个值", self.label_zh), format!("'{}' takes a single value", self.label_en)));
        }
        values.iter().map(|v| self.parse_value(v)).collect()
    }

    fn parse_value(&self, raw: &str) -> Result<String, Msg> {
        let v = text::clean(raw);
        match self.kind {
            AttrKind::Text if v.chars().count() <= 500 && !text::has_control(&v) => Ok(v),
            AttrKind::Text => {
                Err(Msg::new(format!("“{}”最多 500 个字符", self.label_zh), format!("'{}' has at most 500 characters", self.label_en)))
            }
            AttrKind::Number => match v.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(v),
                _ => Err(Msg::new(
                    format!("“{}”应为数字，而不是“{v}”", self.label_zh),
                    format!("'{}' must be a number, not '{v}'", self.label_en),
                )),
            },
            AttrKind::Date => parse_date(&v).map(|d| d.to_string()),
            AttrKind::Choice if self.choices.contains(&v) => Ok(v),
            AttrKind::Choice => Err(Msg::new(
                format!("“{}”只能选择：{}", self.label_zh, self.choices.join("、")),
                format!("'{}' must be one of: {}", self.label_en, self.choices.join(", ")),
            )),
        }
    }
}

/// An attribute value as it arrives in JSON: a string, a number, or several of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrInput {
    One(String),
    Number(f64),
    Many(Vec<String>),
}

impl AttrInput {
    pub fn values(&self) -> Vec<String> {
        match self {
            AttrInput::One(s) => vec![s.clone()],
            AttrInput::Number(n) => vec![n.to_string()],
            AttrInput::Many(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: AttrKind) -> AttrDef {
        AttrDef {
            code: "x".into(),
            label_zh: "研究方向".into(),
            label_en: "Research area".into(),
            kind,
            choices: vec!["理科".into(), "文科".into()],
            repeatable: false,
            unique: false,
            searchable: true,
        }
    }

    #[test]
    fn values_by_kind() {
        assert!(def(AttrKind::Number).parse_values(&["3.5".into()]).is_ok());
        assert!(def(AttrKind::Number).parse_values(&["abc".into()]).is_err());
        assert_eq!(def(AttrKind::Date).parse_values(&["2024/9/1".into()]).unwrap(), vec!["2024-09-01"]);
        assert!(def(AttrKind::Choice).parse_values(&["工科".into()]).unwrap_err().en.contains("理科"));
        assert!(def(AttrKind::Text).parse_values(&["a".into(), "b".into()]).is_err());
    }

    #[test]
    fn codes() {
        assert!(parse_code("research_area").is_ok());
        assert!(parse_code("Research").is_err());
        assert!(parse_code("1x").is_err());
    }
}
