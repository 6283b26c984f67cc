//! Mapping profiles (映射方案): which source column feeds which reader field, with value maps,
//! defaults and transforms; saved as TOML and reused. Without a profile, plain headers (Chinese,
//! English, Koha, FOLIO) are recognised by [`Profile::detect`].
//!
//! A profile as a user writes it:
//!
//! ```toml
//! name = "教务处学生名单"
//! source = "registrar"            # optional: the source name imports with this profile use
//!
//! [columns."学号"]
//! field = "card_no"
//!
//! [columns."类型"]
//! field = "category"
//! values = { "本科" = "undergraduate", "研究生" = "graduate" }
//!
//! [columns."入学日期"]
//! field = "enrolled_on"
//! transforms = ["trim", "date"]
//!
//! [columns."兴趣"]
//! field = "tags"
//! split = ";"                     # one cell, several values
//!
//! [columns."研究方向"]
//! field = "attr.research_area"
//! optional = true                 # no error when the file or Lector lacks it
//!
//! [defaults]
//! category = "undergraduate"
//! status = "active"
//!
//! [options]
//! update_only_present = true
//! never_overwrite = ["notes"]
//! ```
//!
//! `field` is a reader field (`card_no`, `name`, `gender`, `birth_date`, `category`,
//! `affiliation`, `status`, `enrolled_on`, `expires_on`, `email`, `mobile`, `phone`, `qq`,
//! `wechat`, `tags`, `owner`, `notes`), a custom attribute `attr.CODE`, `external_id` (the
//! record's id in its source), `ignore`, or one of the mapping's own targets:
//! `family_name` / `given_name` (a name in two columns: 张 + 三 → 张三, John + Smith → John Smith)
//! and `patron_attributes` (Koha's `CODE:value,CODE:value`).
//!
//! Each cell is split (`split`: any of its characters separates values), then transformed in
//! order (`trim`, `halfwidth` full-width → half-width, `upper`, `lower`, `date` →
//! `2024-03-05`), then looked up in `values`. Date fields accept `2024-03-05`, `2024/3/5`,
//! `2024年3月5日`, `20240305` and Excel serial numbers (`45356`) without a transform. When
//! several columns feed one single-valued field, the first non-blank one wins; contact and tag
//! columns add up. A default fills a field whose cells are blank, and counts as a value of the
//! row (it is written even when `update_only_present` is set).

mod compile;
mod convert;
mod detect;
mod value;

pub use compile::Mapper;

use lector_domain::import::{ImportOptions, Target};
use lector_domain::{text, Msg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A mapping profile as saved (TOML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The source name imports with this profile use unless the job names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// By header text (compared trimmed, half-width and case-insensitively).
    #[serde(default)]
    pub columns: BTreeMap<String, Column>,
    /// Values for fields whose cells are blank (or that no column feeds), by field code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub options: ImportOptions,
}

/// What one source column feeds and how its cells are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub field: MapTarget,
    /// Cell value → stored value (`本科` → `undergraduate`); matched after the transforms,
    /// ignoring case and full-width forms. Values not listed pass through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// Characters that separate several values in one cell (`";"`, `",;"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Skip the column, rather than fail, when the file lacks it or Lector lacks its attribute.
    #[serde(default, skip_serializing_if = "is_default")]
    pub optional: bool,
}

impl Column {
    pub fn new(field: MapTarget) -> Self {
        Self { field, values: BTreeMap::new(), transforms: Vec::new(), split: None, optional: false }
    }
}

/// Where a column goes: a reader target, or a target only the mapping knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MapTarget {
    Target(Target),
    /// The family name (姓, Koha `surname`, FOLIO `personal.lastName`), joined with the given name.
    FamilyName,
    /// The given name (名, Koha `firstname`, FOLIO `personal.firstName`).
    GivenName,
    /// Koha's `patron_attributes` cell, `CODE:value,CODE:value`; codes Lector lacks are skipped.
    PatronAttributes,
}

impl MapTarget {
    pub fn parse(raw: &str) -> Result<Self, Msg> {
        match text::clean(raw).to_lowercase().as_str() {
            "family_name" => Ok(MapTarget::FamilyName),
            "given_name" => Ok(MapTarget::GivenName),
            "patron_attributes" => Ok(MapTarget::PatronAttributes),
            _ => Target::parse(raw).map(MapTarget::Target).map_err(|e| {
                Msg::new(
                    format!("{}；也可用 attr.代码、external_id、ignore、family_name、given_name、patron_attributes", e.zh),
                    format!("{}; or attr.CODE, external_id, ignore, family_name, given_name, patron_attributes", e.en),
                )
            }),
        }
    }

    pub fn code(&self) -> String {
        match self {
            MapTarget::Target(t) => t.code(),
            MapTarget::FamilyName => "family_name".into(),
            MapTarget::GivenName => "given_name".into(),
            MapTarget::PatronAttributes => "patron_attributes".into(),
        }
    }
}

/// Carries a [`Msg`] through serde's string-only errors; [`Profile::from_toml`] splits it back.
#[derive(Debug)]
pub struct TargetError(Msg);

/// Separates the two languages of a [`TargetError`] inside a serde message.
const LANG_SEP: char = '\u{1f}';

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{LANG_SEP}{}", self.0.zh, self.0.en)
    }
}

impl TryFrom<String> for MapTarget {
    type Error = TargetError;
    fn try_from(raw: String) -> Result<Self, TargetError> {
        MapTarget::parse(&raw).map_err(TargetError)
    }
}

impl From<MapTarget> for String {
    fn from(t: MapTarget) -> String {
        t.code()
    }
}

/// A change applied to each value of a column before its value map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Trim,
    /// Full-width letters, digits and punctuation to half-width (NFKC); also trims.
    #[serde(alias = "full_to_half")]
    Halfwidth,
    Upper,
    Lower,
    /// Any date form Lector reads (including Excel serial numbers) to `2024-03-05`.
    Date,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Profile {
    /// Reads a profile; an error names the line and what to fix.
    pub fn from_toml(text: &str) -> Result<Self, Msg> {
        let profile: Profile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let what = e.message().trim();
            let msg = match what.split_once(LANG_SEP) {
                Some((zh, en)) => Msg::new(zh, en),
                None => Msg::new(what, what),
            };
            located(line, msg)
        })?;
        for (key, value) in &profile.defaults {
            if let Err(m) = value::check_default_key(key, value) {
                return Err(located(default_line(text, key), m));
            }
        }
        for (header, column) in &profile.columns {
            if column.split.as_deref().is_some_and(str::is_empty) {
                let m = Msg::new(format!("列“{header}”的 split 不能为空"), format!("column '{header}': split cannot be empty"));
                return Err(located(column_line(text, header), m));
            }
        }
        Ok(profile)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# {e}\n"))
    }

    /// The profile Lector would use for these headers without one: each header it recognises
    /// mapped to its field, the rest ignored.
    pub fn detect(headers: &[String]) -> Self {
        detect::detect(headers)
    }

    /// Checks the profile against the source's headers and the store's configuration and returns
    /// the mapper for its rows. Errors name the missing column or unknown field.
    pub fn compile(
        &self,
        headers: &[String],
        attributes: &[lector_domain::attribute::AttrDef],
        categories: &[String],
    ) -> Result<Mapper, Msg> {
        compile::compile(self, headers, attributes, categories)
    }
}

fn located(line: Option<usize>, m: Msg) -> Msg {
    match line {
        Some(l) => Msg::new(format!("映射方案第 {l} 行有误：{}", m.zh), format!("mapping profile, line {l}: {}", m.en)),
        None => Msg::new(format!("映射方案有误：{}", m.zh), format!("mapping profile: {}", m.en)),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count() + 1
}

/// The line of the table `[columns."header"]`.
fn column_line(text: &str, header: &str) -> Option<usize> {
    text.lines().position(|l| l.trim_start().starts_with("[columns") && l.contains(header)).map(|i| i + 1)
}

/// The line of `key` inside the `[defaults]` table, for messages about a default.
fn default_line(text: &str, key: &str) -> Option<usize> {
    let mut in_defaults = false;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            in_defaults = l.trim_start_matches('[').trim_end_matches(']').trim() == "defaults";
        } else if in_defaults && l.trim_start_matches(['"', '\'']).starts_with(key) {
            return Some(i + 1);
        }
    }
    None
}
