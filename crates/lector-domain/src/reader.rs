//! The reader (读者) record and the rules its fields obey.

use crate::attribute::AttrInput;
use crate::contact::ContactKind;
use crate::name::PersonName;
use crate::{text, FieldErrors, Msg};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A library card number (读者证号): 1 to 32 letters, digits, `-` or `_`, upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CardNo(String);

impl CardNo {
    pub fn parse(raw: &str) -> Result<Self, Msg> {
        let v = text::clean(raw).to_uppercase();
        if v.is_empty() {
            return Err(Msg::new("请填写读者证号", "enter a card number"));
        }
        if v.len() > 32 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Msg::new(
                format!("读者证号“{v}”无效：最多 32 位字母、数字、- 或 _"),
                format!("card number '{v}' is invalid: at most 32 letters, digits, - or _"),
            ));
        }
        Ok(CardNo(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

code_enum!(
    /// Gender as recorded by the library.
    Gender {
        Male = "male", "男", "Male" | "m";
        Female = "female", "女", "Female" | "f";
        Unknown = "unknown", "未知", "Unknown" | "";
    } "性别", "gender"
);

code_enum!(
    /// Where a reader's card stands.
    ReaderStatus {
        Active = "active", "有效", "Active" | "正常";
        Expired = "expired", "过期", "Expired" | "已过期";
        Suspended = "suspended", "暂停", "Suspended" | "停借";
        Deactivated = "deactivated", "注销", "Deactivated" | "已注销";
    } "读者状态", "reader status"
);

/// Parses a calendar date as Chinese systems write it: `2024-09-01`, `2024/9/1`, `2024.09.01`,
/// `20240901` or `2024年9月1日`.
pub fn parse_date(raw: &str) -> Result<NaiveDate, Msg> {
    let v = text::clean(raw);
    // `2024-09-01` needs no rewriting and no format string.
    if let Ok(d) = v.parse::<NaiveDate>() {
        if (1900..=2200).contains(&chrono::Datelike::year(&d)) {
            return Ok(d);
        }
    }
    let normalized = v.replace(['/', '.'], "-").replace(['年', '月'], "-").replace('日', "");
    let parsed = NaiveDate::parse_from_str(&normalized, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(&normalized, "%Y%m%d"));
    match parsed {
        Ok(d) if (1900..=2200).contains(&chrono::Datelike::year(&d)) => Ok(d),
        _ => Err(Msg::new(format!("“{v}”不是有效日期，请写作 2024-09-01"), format!("'{v}' is not a valid date; write it as 2024-09-01"))),
    }
}

/// A contact point as entered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactDraft {
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub verified: bool,
}

/// A related contact (联系人) as entered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelatedDraft {
    pub name: String,
    pub relation: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A reader record as entered through a form, the API or an import: strings, not yet trusted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderDraft {
    pub card_no: String,
    pub name: String,
    #[serde(default)]
    pub gender: Option<String>,
    #[serde(default)]
    pub birth_date: Option<String>,
    pub category: String,
    #[serde(default)]
    pub affiliation: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub enrolled_on: Option<String>,
    #[serde(default)]
    pub expires_on: Option<String>,
    #[serde(default)]
    pub contacts: Vec<ContactDraft>,
    #[serde(default)]
    pub related: Vec<RelatedDraft>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrInput>,
    /// The user name of the staff member responsible for the reader.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// A validated contact point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub kind: ContactKind,
    pub value: String,
    pub primary: bool,
    pub verified: bool,
}

/// A validated related contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    pub name: String,
    pub relation: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A reader record whose every field has been checked. References to configured things
/// (category, owner, custom attributes) are checked against the store when it is saved.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderInput {
    pub card_no: CardNo,
    pub name: PersonName,
    pub gender: Gender,
    pub birth_date: Option<NaiveDate>,
    pub category: String,
    pub affiliation: Option<String>,
    pub status: ReaderStatus,
    pub enrolled_on: Option<NaiveDate>,
    pub expires_on: Option<NaiveDate>,
    pub contacts: Vec<Contact>,
    pub related: Vec<Related>,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    pub owner: Option<String>,
    pub notes: Option<String>,
}

const MAX_CONTACTS: usize = 20;
const MAX_RELATED: usize = 10;
const MAX_TAGS: usize = 30;

fn optional(raw: &Option<String>) -> Option<String> {
    raw.as_deref().map(text::clean).filter(|s| !s.is_empty())
}

fn bounded(field_zh: &str, field_en: &str, v: Option<String>, max: usize) -> Result<Option<String>, Msg> {
    match v {
        Some(s) if s.chars().count() > max || text::has_control(&s) => Err(Msg::new(
            format!("{field_zh}最多 {max} 个字符，且不能包含控制字符"),
            format!("{field_en} has at most {max} characters and no control characters"),
        )),
        other => Ok(other),
    }
}

/// Parses a tag: 1 to 32 characters without commas.
pub fn parse_tag(raw: &str) -> Result<String, Msg> {
    let t = text::clean(raw);
    if t.is_empty() || t.chars().count() > 32 || t.contains([',', '，']) || text::has_control(&t) {
        return Err(Msg::new(
            format!("标签“{t}”无效：1 到 32 个字符，不含逗号"),
            format!("tag '{t}' is invalid: 1 to 32 characters, no commas"),
        ));
    }
    Ok(t)
}

impl ReaderDraft {
    /// Checks every field and reports all problems at once, each under its field name
    /// (`contacts[1].value`, `birth_date` …).
    pub fn parse(&self, today: NaiveDate) -> Result<ReaderInput, FieldErrors> {
        let mut errs = FieldErrors::default();
        let card_no = errs.take("card_no", CardNo::parse(&self.card_no));
        let name = errs.take("name", PersonName::parse(&self.name));
        let gender = errs.take("gender", Gender::parse(self.gender.as_deref().unwrap_or("")));
        let status = errs.take("status", ReaderStatus::parse(self.status.as_deref().unwrap_or("active")));
        let date = |errs: &mut FieldErrors, field: &str, raw: &Option<String>| optional(raw).and_then(|s| errs.take(field, parse_date(&s)));
        let birth_date = date(&mut errs, "birth_date", &self.birth_date);
        if birth_date.is_some_and(|d| d > today) {
            errs.push("birth_date", Msg::new("出生日期不能晚于今天", "birth date cannot be in the future"));
        }
        let enrolled_on = date(&mut errs, "enrolled_on", &self.enrolled_on);
        let expires_on = date(&mut errs, "expires_on", &self.expires_on);
        if let (Some(e), Some(x)) = (enrolled_on, expires_on) {
            if x < e {
                errs.push("expires_on", Msg::new("有效期至不能早于办证日期", "expiry date cannot be before the enrolment date"));
            }
        }
        let category = text::clean(&self.category);
        if category.is_empty() {
            errs.push("category", Msg::new("请选择读者类型", "choose a reader category"));
        }
        let affiliation = errs.take("affiliation", bounded("单位/院系", "affiliation", optional(&self.affiliation), 100)).flatten();
        let notes = errs.take("notes", text::optional_prose(self.notes.as_deref(), 4000, "备注", "notes")).flatten();
        let owner = optional(&self.owner);

        if self.contacts.len() > MAX_CONTACTS {
            errs.push("contacts", Msg::new(format!("联系方式最多 {MAX_CONTACTS} 条"), format!("at most {MAX_CONTACTS} contact points")));
        }
        let mut contacts: Vec<Contact> = Vec::new();
        for (i, c) in self.contacts.iter().take(MAX_CONTACTS).enumerate() {
            let Some(kind) = errs.take(&format!("contacts[{i}].kind"), ContactKind::parse(&text::clean(&c.kind))) else {
                continue;
            };
            if let Some(value) = errs.take(&format!("contacts[{i}].value"), kind.parse_value(&c.value)) {
                if contacts.iter().any(|o| o.kind == kind && o.value == value) {
                    errs.push(
                        format!("contacts[{i}].value"),
                        Msg::new(format!("重复的联系方式“{value}”"), format!("duplicate contact point '{value}'")),
                    );
                    continue;
                }
                contacts.push(Contact { kind, value, primary: c.primary, verified: c.verified });
            }
        }
        // One primary per kind: the first marked wins, or the first of its kind.
        for kind in ContactKind::ALL {
            let mut seen_primary = false;
            for c in contacts.iter_mut().filter(|c| c.kind == kind) {
                c.primary = c.primary && !seen_primary;
                seen_primary |= c.primary;
            }
            if !seen_primary {
                if let Some(first) = contacts.iter_mut().find(|c| c.kind == kind) {
                    first.primary = true;
                }
            }
        }

        if self.related.len() > MAX_RELATED {
            errs.push("related", Msg::new(format!("联系人最多 {MAX_RELATED} 位"), format!("at most {MAX_RELATED} related contacts")));
        }
        let mut related = Vec::new();
        for (i, r) in self.related.iter().take(MAX_RELATED).enumerate() {
            let name = errs.take(&format!("related[{i}].name"), PersonName::parse(&r.name));
            let relation = errs
                .take(&format!("related[{i}].relation"), bounded("关系", "relation", optional(&Some(r.relation.clone())), 32))
                .flatten();
            if relation.is_none() && !errs.0.iter().any(|e| e.field == format!("related[{i}].relation")) {
                errs.push(format!("related[{i}].relation"), Msg::new("请填写与读者的关系，如 导师", "enter the relation, e.g. advisor"));
            }
            let phone = optional(&r.phone).and_then(|p| errs.take(&format!("related[{i}].phone"), ContactKind::Phone.parse_value(&p)));
            let email = optional(&r.email).and_then(|e| errs.take(&format!("related[{i}].email"), ContactKind::Email.parse_value(&e)));
            if let (Some(name), Some(relation)) = (name, relation) {
                related.push(Related { name: name.as_str().to_string(), relation, phone, email });
            }
        }

        if self.tags.len() > MAX_TAGS {
            errs.push("tags", Msg::new(format!("标签最多 {MAX_TAGS} 个"), format!("at most {MAX_TAGS} tags")));
        }
        let mut tags: Vec<String> = Vec::new();
        for (i, t) in self.tags.iter().take(MAX_TAGS).enumerate() {
            if let Some(t) = errs.take(&format!("tags[{i}]"), parse_tag(t)) {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
        }

        let mut attributes = BTreeMap::new();
        for (code, input) in &self.attributes {
            let values: Vec<String> = input.values().iter().map(|v| text::clean(v)).filter(|v| !v.is_empty()).collect();
            if !values.is_empty() {
                attributes.insert(code.clone(), values);
            }
        }

        errs.finish(|| ReaderInput {
            card_no: card_no.expect("checked"),
            name: name.expect("checked"),
            gender: gender.expect("checked"),
            birth_date,
            category,
            affiliation,
            status: status.expect("checked"),
            enrolled_on,
            expires_on,
            contacts,
            related,
            tags,
            attributes,
            owner,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    fn draft() -> ReaderDraft {
        ReaderDraft {
            card_no: "２０２４０１０１".into(),
            name: "张晓明".into(),
            category: "undergraduate".into(),
            contacts: vec![
                ContactDraft { kind: "email".into(), value: "ZXM@pku.edu.cn".into(), ..Default::default() },
                ContactDraft { kind: "mobile".into(), value: "13800138000".into(), ..Default::default() },
            ],
            tags: vec!["新生".into(), "新生".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_good_draft_parses() {
        let r = draft().parse(today()).unwrap();
        assert_eq!(r.card_no.as_str(), "20240101");
        assert_eq!(r.status, ReaderStatus::Active);
        assert_eq!(r.gender, Gender::Unknown);
        assert_eq!(r.contacts[0].value, "zxm@pku.edu.cn");
        assert!(r.contacts.iter().all(|c| c.primary));
        assert_eq!(r.tags, vec!["新生"]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut d = draft();
        d.card_no = "卡号!".into();
        d.birth_date = Some("2030-01-01".into());
        d.enrolled_on = Some("2024-09-01".into());
        d.expires_on = Some("2020/1/1".into());
        d.contacts[1].value = "12345".into();
        d.gender = Some("x".into());
        let errs = d.parse(today()).unwrap_err();
        for f in ["card_no", "birth_date", "expires_on", "contacts[1].value", "gender"] {
            assert!(errs.get(f).is_some(), "no error for {f}: {errs}");
        }
    }

    #[test]
    fn dates_in_chinese_forms() {
        let d = NaiveDate::from_ymd_opt(2024, 9, 1).unwrap();
        for s in ["2024-09-01", "2024/9/1", "2024.09.01", "20240901", "2024年9月1日"] {
            assert_eq!(parse_date(s).unwrap(), d, "{s}");
        }
        assert!(parse_date("2024-02-30").is_err());
        assert!(parse_date("1800-01-01").is_err());
    }

    #[test]
    fn labels_parse_back() {
        assert_eq!(Gender::parse("女").unwrap(), Gender::Female);
        assert_eq!(ReaderStatus::parse("Suspended").unwrap(), ReaderStatus::Suspended);
        assert!(ReaderStatus::parse("gone").unwrap_err().en.contains("active"));
    }

    #[test]
    fn only_one_primary_per_kind() {
        let mut d = draft();
        d.contacts.push(ContactDraft { kind: "email".into(), value: "b@x.cn".into(), primary: true, verified: false });
        d.contacts[0].primary = true;
        let r = d.parse(today()).unwrap();
        let primaries = r.contacts.iter().filter(|c| c.kind == ContactKind::Email && c.primary).count();
        assert_eq!(primaries, 1);
    }
}
