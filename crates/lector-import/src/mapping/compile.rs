//! Checking a profile against a source's headers and the store's configuration, once per
//! import, so that converting each row is a few indexed lookups.

use super::value::{category_words, check_default_key, key, normalize_date};
use super::{MapTarget, Profile, Transform};
use lector_domain::attribute::AttrDef;
use lector_domain::import::{ReaderField, Target};
use lector_domain::reader::{parse_tag, Gender, ReaderStatus};
use lector_domain::Msg;
use std::collections::HashMap;

pub(super) const FIELDS: usize = ReaderField::ALL.len();

/// Characters that separate tags in one cell, whatever the profile says.
pub(super) const TAG_SEPARATORS: [char; 5] = [',', ';', '，', '；', '、'];

/// A compiled profile: turns records into validated readers or rejections naming the column.
pub struct Mapper {
    /// Source columns in file order, then defaults.
    pub(super) cols: Vec<Col>,
    pub(super) attrs: Vec<AttrDef>,
    /// Attribute code → index in `attrs`, for Koha's `patron_attributes`.
    pub(super) attr_index: HashMap<String, usize>,
    pub(super) categories: Vec<String>,
    /// Lower-cased codes and common words (本科 → undergraduate) → category code.
    pub(super) category_words: HashMap<String, String>,
    /// The column an error about a field points to when no cell fed it in that row.
    pub(super) first_col: [Option<u32>; FIELDS],
    pub(super) mapped: Vec<ReaderField>,
    pub(super) mapped_attributes: Vec<String>,
}

/// One source column (or one default) ready for rows.
pub(super) struct Col {
    /// The cell index; `None` for a default.
    pub cell: Option<usize>,
    /// The header as the file writes it (or `defaults.FIELD`), for rejections.
    pub header: String,
    pub slot: Slot,
    pub transforms: Vec<Transform>,
    /// Keys in compared form (see `value::key`).
    pub values: HashMap<String, String>,
    pub split: Vec<char>,
    /// A default's value.
    pub fixed: String,
}

/// Where a column's values go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Field(ReaderField),
    Family,
    Given,
    /// Index into `Mapper::attrs`.
    Attr(usize),
    Patron,
    External,
}

impl Slot {
    /// The reader field this slot feeds, if any.
    pub fn field(self) -> Option<ReaderField> {
        match self {
            Slot::Field(f) => Some(f),
            Slot::Family | Slot::Given => Some(ReaderField::Name),
            Slot::Attr(_) | Slot::Patron | Slot::External => None,
        }
    }
}

pub(super) fn unknown_category(value: &str, categories: &[String]) -> Msg {
    Msg::new(
        format!("读者类型“{value}”不存在，可选：{}（或在映射方案的 values 中对应到其中之一）", categories.join("、")),
        format!("category '{value}' does not exist; use one of: {} (or map it to one with values in the profile)", categories.join(", ")),
    )
}

enum Resolved {
    Slot(Slot),
    Ignore,
    /// An attribute code Lector does not have.
    NoSuchAttribute(String),
}

fn resolve(target: &MapTarget, attr_index: &HashMap<String, usize>) -> Resolved {
    match target {
        MapTarget::Target(Target::Field(f)) => Resolved::Slot(Slot::Field(*f)),
        MapTarget::Target(Target::Attribute(code)) => match attr_index.get(code) {
            Some(i) => Resolved::Slot(Slot::Attr(*i)),
            None => Resolved::NoSuchAttribute(code.clone()),
        },
        MapTarget::Target(Target::ExternalId) => Resolved::Slot(Slot::External),
        MapTarget::Target(Target::Ignore) => Resolved::Ignore,
        MapTarget::FamilyName => Resolved::Slot(Slot::Family),
        MapTarget::GivenName => Resolved::Slot(Slot::Given),
        MapTarget::PatronAttributes => Resolved::Slot(Slot::Patron),
    }
}

/// `place` names where the profile uses the code, in Chinese and English.
fn no_such_attribute(code: &str, place: &(String, String), attrs: &[AttrDef]) -> Msg {
    let known: Vec<&str> = attrs.iter().map(|a| a.code.as_str()).collect();
    let (zh_known, en_known) = if known.is_empty() {
        ("（尚未定义任何属性）".into(), "(none defined yet)".into())
    } else {
        (known.join("、"), known.join(", "))
    };
    Msg::new(
        format!("{}：没有代码为“{code}”的自定义属性；现有：{zh_known}", place.0),
        format!("{}: there is no custom attribute with code '{code}'; existing: {en_known}", place.1),
    )
}

/// Checks one value a profile writes itself (a default, a value map's result) for its slot and
/// returns it in the form the row will carry.
fn check_value(slot: Slot, v: &str, attrs: &[AttrDef], categories: &[String], words: &HashMap<String, String>) -> Result<String, Msg> {
    match slot {
        Slot::Field(ReaderField::Category) => {
            if categories.iter().any(|c| c == v) {
                return Ok(v.to_string());
            }
            words.get(&key(v)).cloned().ok_or_else(|| unknown_category(v, categories))
        }
        Slot::Field(ReaderField::Status) => ReaderStatus::parse(v).map(|s| s.code().to_string()),
        Slot::Field(ReaderField::Gender) => Gender::parse(v).map(|g| g.code().to_string()),
        Slot::Field(ReaderField::BirthDate | ReaderField::EnrolledOn | ReaderField::ExpiresOn) => normalize_date(v).map(|d| d.to_string()),
        Slot::Field(ReaderField::Tags) => {
            v.split(TAG_SEPARATORS).filter(|t| !t.trim().is_empty()).try_for_each(|t| parse_tag(t).map(drop)).map(|()| v.to_string())
        }
        Slot::Field(f) => match f.contact_kind() {
            Some(kind) => kind.parse_value(v),
            None => Ok(v.to_string()),
        },
        Slot::Attr(i) => attrs[i].parse_values(&[v.to_string()]).map(|_| v.to_string()),
        Slot::Family | Slot::Given | Slot::Patron | Slot::External => Ok(v.to_string()),
    }
}

pub(super) fn compile(p: &Profile, headers: &[String], attributes: &[AttrDef], categories: &[String]) -> Result<Mapper, Msg> {
    let header_keys: Vec<String> = headers.iter().map(|h| key(h)).collect();
    let attr_index: HashMap<String, usize> = attributes.iter().enumerate().map(|(i, a)| (a.code.clone(), i)).collect();
    let words = category_words(categories);

    let mut cols = Vec::new();
    for (header, column) in &p.columns {
        let place = (format!("列“{header}”"), format!("column '{header}'"));
        let slot = match resolve(&column.field, &attr_index) {
            Resolved::Slot(s) => s,
            Resolved::Ignore => continue,
            Resolved::NoSuchAttribute(_) if column.optional => continue,
            Resolved::NoSuchAttribute(code) => return Err(no_such_attribute(&code, &place, attributes)),
        };
        let wanted = key(header);
        let cells: Vec<usize> = header_keys.iter().enumerate().filter(|(_, k)| **k == wanted).map(|(i, _)| i).collect();
        if cells.is_empty() {
            if column.optional {
                continue;
            }
            return Err(missing_column(header, headers));
        }
        let mut values = HashMap::new();
        for (from, to) in &column.values {
            let checked = match slot {
                Slot::Field(ReaderField::Category | ReaderField::Status | ReaderField::Gender) => {
                    check_value(slot, to, attributes, categories, &words).map_err(|e| {
                        Msg::new(
                            format!("{}的对应“{from}”→“{to}”无效：{}", place.0, e.zh),
                            format!("{}: the value map '{from}' → '{to}' is invalid: {}", place.1, e.en),
                        )
                    })?
                }
                _ => to.clone(),
            };
            values.insert(key(from), checked);
        }
        let split: Vec<char> = column.split.as_deref().unwrap_or("").chars().collect();
        for i in cells {
            cols.push(Col {
                cell: Some(i),
                header: headers[i].trim().to_string(),
                slot,
                transforms: column.transforms.clone(),
                values: values.clone(),
                split: split.clone(),
                fixed: String::new(),
            });
        }
    }
    cols.sort_by_key(|c| c.cell);

    for (field, value) in &p.defaults {
        let place = (format!("默认值 {field}"), format!("default {field}"));
        let in_defaults = |e: Msg| Msg::new(format!("{}：{}", place.0, e.zh), format!("{}: {}", place.1, e.en));
        let target = check_default_key(field, value).map_err(in_defaults)?;
        let slot = match resolve(&target, &attr_index) {
            Resolved::Slot(s) => s,
            Resolved::Ignore => continue,
            Resolved::NoSuchAttribute(code) => return Err(no_such_attribute(&code, &place, attributes)),
        };
        let fixed = check_value(slot, value.trim(), attributes, categories, &words).map_err(in_defaults)?;
        cols.push(Col {
            cell: None,
            header: format!("defaults.{field}"),
            slot,
            transforms: Vec::new(),
            values: HashMap::new(),
            split: Vec::new(),
            fixed,
        });
    }

    let mut first_col = [None; FIELDS];
    let mut mapped_attributes = Vec::new();
    for (id, col) in cols.iter().enumerate() {
        if let Some(f) = col.slot.field() {
            first_col[f as usize].get_or_insert(id as u32);
        }
        if let Slot::Attr(i) = col.slot {
            let code = &attributes[i].code;
            if !mapped_attributes.contains(code) {
                mapped_attributes.push(code.clone());
            }
        }
    }
    let fed_by_cell = |f: ReaderField| cols.iter().any(|c| c.cell.is_some() && c.slot.field() == Some(f));
    if !fed_by_cell(ReaderField::CardNo) {
        return Err(Msg::new(
            "没有列对应读者证号：请在映射方案中把一列（如“学号”“证件号”）设为 card_no",
            "no column feeds the card number: map one (e.g. 学号 or card number) to card_no in the profile",
        ));
    }
    if !fed_by_cell(ReaderField::Name) {
        return Err(Msg::new(
            "没有列对应姓名：请把一列设为 name，或把姓、名两列设为 family_name 和 given_name",
            "no column feeds the name: map one to name, or two to family_name and given_name",
        ));
    }
    if first_col[ReaderField::Category as usize].is_none() {
        return Err(Msg::new(
            format!("没有列对应读者类型，也没有默认值：请映射一列，或在 [defaults] 中设置 category（可选：{}）", categories.join("、")),
            format!(
                "no column feeds the category and there is no default: map one, or set category under [defaults] (one of: {})",
                categories.join(", ")
            ),
        ));
    }
    let mapped = ReaderField::ALL.iter().copied().filter(|f| first_col[*f as usize].is_some()).collect();
    Ok(Mapper {
        cols,
        attrs: attributes.to_vec(),
        attr_index,
        categories: categories.to_vec(),
        category_words: words,
        first_col,
        mapped,
        mapped_attributes,
    })
}

fn missing_column(header: &str, headers: &[String]) -> Msg {
    let shown: Vec<&str> = headers.iter().map(|h| h.trim()).filter(|h| !h.is_empty()).take(30).collect();
    Msg::new(
        format!("文件中没有映射方案所需的列“{header}”；文件的列有：{}（若此列可以没有，请在方案中设置 optional = true）", shown.join("、")),
        format!(
            "the file has no column '{header}', which the profile needs; its columns are: {} (set optional = true if it may be absent)",
            shown.join(", ")
        ),
    )
}
