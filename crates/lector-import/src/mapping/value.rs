//! Single values as other systems write them: dates (Excel serial numbers, database
//! timestamps), category words, attribute codes.

use super::MapTarget;
use chrono::{Datelike, NaiveDate};
use lector_domain::import::{ReaderField, Target};
use lector_domain::reader::parse_date;
use lector_domain::{text, Msg};
use std::collections::HashMap;

/// The form values and headers are compared in: half-width, trimmed, lower-case.
pub(super) fn key(s: &str) -> String {
    text::clean(s).to_lowercase()
}

/// Reads a date in any form Lector accepts: those of [`parse_date`], Excel serial numbers
/// (`45356` → 2024-03-05, as a spreadsheet stores a date cell) and timestamps from databases
/// and FOLIO (`2024-03-05 10:20:00`, `2024-03-05T00:00:00.000+0000`).
pub fn normalize_date(raw: &str) -> Result<NaiveDate, Msg> {
    if let Some(d) = iso_date(raw.trim()) {
        return Ok(d);
    }
    let v = text::clean(raw);
    if let Some(d) = excel_serial(&v) {
        return Ok(d);
    }
    if let Some((day, _time)) = v.split_once(['T', ' ']) {
        if let Ok(d) = parse_date(day) {
            return Ok(d);
        }
    }
    parse_date(&v)
}

/// A date already written `2024-03-05` (the common case, read without a format parser).
pub(super) fn iso_date(v: &str) -> Option<NaiveDate> {
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| v[r].parse::<u32>().ok();
    let d = NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    (1900..=2200).contains(&d.year()).then_some(d)
}

/// An Excel date serial (days since 1899-12-30; 1900 counted as a leap year, as Excel does).
/// Eight-digit numbers are `20240305`-style dates, not serials.
fn excel_serial(v: &str) -> Option<NaiveDate> {
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 6 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let n: i64 = whole.parse().ok()?;
    let base = match n {
        0 | 60 => return None,
        1..=59 => NaiveDate::from_ymd_opt(1899, 12, 31)?,
        _ => NaiveDate::from_ymd_opt(1899, 12, 30)?,
    };
    let d = base.checked_add_days(chrono::Days::new(n.unsigned_abs()))?;
    (d.year() <= 2200).then_some(d)
}

/// Common words for the usual category codes, used when a library has those codes.
const CATEGORY_WORDS: &[(&str, &[&str])] = &[
    ("undergraduate", &["本科", "本科生", "本科学生", "undergrad", "undergraduate student"]),
    ("graduate", &["研究生", "硕士", "硕士生", "硕士研究生", "grad", "postgraduate", "master"]),
    ("doctoral", &["博士", "博士生", "博士研究生", "phd", "doctoral student"]),
    ("faculty", &["教师", "教职工", "教工", "老师", "teacher"]),
    ("staff", &["职工", "员工"]),
    ("external", &["校外", "校外读者", "社会读者", "guest"]),
];

/// Lower-cased codes and the common words for codes that exist, each to its code.
pub(super) fn category_words(categories: &[String]) -> HashMap<String, String> {
    let mut words: HashMap<String, String> = categories.iter().map(|c| (key(c), c.clone())).collect();
    for (code, list) in CATEGORY_WORDS {
        if categories.iter().any(|c| c == code) {
            for w in *list {
                words.entry(key(w)).or_insert_with(|| code.to_string());
            }
        }
    }
    words
}

/// Lector's attribute code for another system's (`researchArea` → `research_area`,
/// Koha's `SCHOOL` → `school`).
pub fn attribute_code(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 4);
    let mut prev_lower = false;
    for c in text::clean(raw).chars() {
        if c.is_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        match c {
            '-' | ' ' | '.' => out.push('_'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Checks a `[defaults]` key: a field that can sensibly have one value for every row.
pub(super) fn check_default_key(key: &str, value: &str) -> Result<MapTarget, Msg> {
    let target = MapTarget::parse(key)?;
    let allowed = match &target {
        MapTarget::Target(Target::Field(f)) => !matches!(f, ReaderField::CardNo | ReaderField::Name),
        MapTarget::Target(Target::Attribute(_)) => true,
        _ => false,
    };
    if !allowed {
        return Err(Msg::new(
            format!("“{key}”不能有默认值：每位读者各不相同"),
            format!("'{key}' cannot have a default: it differs for every reader"),
        ));
    }
    if value.trim().is_empty() {
        return Err(Msg::new(format!("默认值“{key}”不能为空"), format!("the default for '{key}' cannot be blank")));
    }
    Ok(target)
}
