//! Versions of the reader dimension (type 2): what a reader looks like to the warehouse, its
//! hash, and when a new version takes effect.
//!
//! The age band is taken as of the day the version is recorded, so a reader who grows into the
//! next band gets a new version then. The hash covers exactly the values written, so it can be
//! recomputed from a version read back from the warehouse.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type};
use datafusion::arrow::error::ArrowError;
use lector_store::warehouse_extract::ReaderAttributes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::columns::{dates, local, text, timestamps};
use crate::error::{Result, WarehouseError};
use crate::Warehouse;

/// A reader's attributes as `dim_reader` holds them (no name, card number or contact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attributes {
    category: Option<String>,
    affiliation: Option<String>,
    status: Option<String>,
    gender: Option<String>,
    age_band: Option<String>,
    enrolled_on: Option<NaiveDate>,
    expires_on: Option<NaiveDate>,
}

impl Attributes {
    /// The attributes of `reader` for a version recorded on `today`.
    pub fn of(reader: &ReaderAttributes, today: NaiveDate) -> Attributes {
        Attributes {
            category: Some(reader.category.clone()),
            affiliation: reader.affiliation.clone(),
            status: Some(reader.status.clone()),
            gender: gender_code(&reader.gender).map(str::to_string),
            age_band: reader.birth_date.and_then(|b| age_band(b, today)).map(str::to_string),
            enrolled_on: reader.enrolled_on,
            expires_on: reader.expires_on,
        }
    }

    /// SHA-256 (hex) over the values: equal hashes, equal versions.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(canonical))
    }
}

/// `m` or `f`; other genders are left empty.
fn gender_code(stored: &str) -> Option<&'static str> {
    match stored {
        "male" => Some("m"),
        "female" => Some("f"),
        _ => None,
    }
}

/// The age band of someone born on `birth`, on `on`; none for a birth date after `on`.
pub fn age_band(birth: NaiveDate, on: NaiveDate) -> Option<&'static str> {
    let age = on.years_since(birth)?;
    Some(match age {
        0..=17 => "0-17",
        18..=22 => "18-22",
        23..=29 => "23-29",
        30..=39 => "30-39",
        40..=49 => "40-49",
        50..=59 => "50-59",
        _ => "60+",
    })
}

/// What is known of a reader's previous version when a new one is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// The reader has no version yet.
    None,
    /// Its last version was recorded then: a change since shows in `updated_at`.
    RecordedAt(DateTime<Utc>),
    /// It has a version, recorded at an unknown time.
    Unknown,
}

/// A version to append.
#[derive(Debug, Clone)]
pub struct Version {
    pub key: String,
    pub attributes: Attributes,
    pub hash: String,
    pub valid_from: DateTime<Utc>,
}

impl Version {
    /// The version of `reader` (whose key is `key`) as of `now`. The first takes effect when
    /// the reader was created, so that the reader's earlier facts find it; a later one when the
    /// reader was last updated, if that was after the previous version, else now.
    pub fn new(reader: &ReaderAttributes, key: String, previous: Previous, now: DateTime<Utc>) -> Version {
        let attributes = Attributes::of(reader, local(now).date());
        let valid_from = match previous {
            Previous::None => reader.created_at,
            Previous::RecordedAt(at) if reader.updated_at > at => reader.updated_at,
            Previous::RecordedAt(_) | Previous::Unknown => now,
        };
        Version { key, hash: attributes.hash(), attributes, valid_from }
    }
}

/// The versions as `dim_reader` rows.
pub fn dimension_rows(versions: &[Version]) -> std::result::Result<RecordBatch, ArrowError> {
    let attrs: Vec<&Attributes> = versions.iter().map(|v| &v.attributes).collect();
    RecordBatch::try_from_iter([
        ("reader_key", text(versions.iter().map(|v| Some(&v.key)))),
        ("valid_from", timestamps(versions.iter().map(|v| local(v.valid_from)))),
        ("category", text(attrs.iter().map(|a| a.category.as_ref()))),
        ("affiliation", text(attrs.iter().map(|a| a.affiliation.as_ref()))),
        ("status", text(attrs.iter().map(|a| a.status.as_ref()))),
        ("gender", text(attrs.iter().map(|a| a.gender.as_ref()))),
        ("age_band", text(attrs.iter().map(|a| a.age_band.as_ref()))),
        ("enrolled_on", dates(attrs.iter().map(|a| a.enrolled_on))),
        ("expires_on", dates(attrs.iter().map(|a| a.expires_on))),
    ])
}

/// The hash of the current `dim_reader` version of each of `keys` that has one, read back
/// from the warehouse: the check used when the store's record of exported versions may be
/// behind the warehouse (a crash between a commit and its record).
pub async fn current_hashes(wh: &Warehouse, keys: &[String]) -> Result<HashMap<String, String>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    // Keys are hex made by ReaderKeyer: nothing in them needs quoting.
    let list = keys.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
    let result = wh
        .sql(&format!(
            "SELECT reader_key, category, affiliation, status, gender, age_band, enrolled_on, expires_on
             FROM dim_reader WHERE is_current AND reader_key IN ({list})"
        ))
        .await?;
    let mut out = HashMap::with_capacity(keys.len());
    for batch in &result.batches {
        let texts = |name: &str| -> Result<ArrayRef> { column(batch, name, &DataType::Utf8) };
        let (key, category, affiliation, status, gender, band) =
            (texts("reader_key")?, texts("category")?, texts("affiliation")?, texts("status")?, texts("gender")?, texts("age_band")?);
        let (enrolled, expires) = (column(batch, "enrolled_on", &DataType::Date32)?, column(batch, "expires_on", &DataType::Date32)?);
        let string = |a: &ArrayRef, i: usize| (!a.is_null(i)).then(|| a.as_string::<i32>().value(i).to_string());
        let date = |a: &ArrayRef, i: usize| {
            if a.is_null(i) {
                None
            } else {
                Date32Type::to_naive_date_opt(a.as_primitive::<Date32Type>().value(i))
            }
        };
        for i in 0..batch.num_rows() {
            let attributes = Attributes {
                category: string(&category, i),
                affiliation: string(&affiliation, i),
                status: string(&status, i),
                gender: string(&gender, i),
                age_band: string(&band, i),
                enrolled_on: date(&enrolled, i),
                expires_on: date(&expires, i),
            };
            if let Some(k) = string(&key, i) {
                out.insert(k, attributes.hash());
            }
        }
    }
    Ok(out)
}

/// Column `name` of a query result, cast to `ty` (the engine may hand text back as views).
fn column(batch: &RecordBatch, name: &str, ty: &DataType) -> Result<ArrayRef> {
    let c = batch.column_by_name(name).ok_or_else(|| {
        WarehouseError::invalid(format!("dim_reader 查询结果缺少列 {name}"), format!("the dim_reader query returned no column {name}"))
    })?;
    Ok(cast(c, ty)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn age_bands_turn_on_the_birthday() {
        let birth = date(2003, 5, 17);
        assert_eq!(age_band(birth, date(2021, 5, 16)), Some("0-17"));
        assert_eq!(age_band(birth, date(2021, 5, 17)), Some("18-22"));
        assert_eq!(age_band(birth, date(2026, 5, 16)), Some("18-22"));
        assert_eq!(age_band(birth, date(2026, 5, 17)), Some("23-29"));
        assert_eq!(age_band(birth, date(2070, 1, 1)), Some("60+"));
        assert_eq!(age_band(birth, date(2000, 1, 1)), None, "born after the day asked about");
    }

    fn reader(category: &str, updated_at: DateTime<Utc>) -> ReaderAttributes {
        ReaderAttributes {
            id: 7,
            category: category.into(),
            affiliation: Some("物理学院".into()),
            status: "active".into(),
            gender: "female".into(),
            birth_date: Some(date(2003, 5, 17)),
            enrolled_on: Some(date(2021, 9, 1)),
            expires_on: None,
            created_at: DateTime::from_timestamp(1_600_000_000, 0).expect("valid time"),
            updated_at,
            exported: None,
        }
    }

    #[test]
    fn the_hash_follows_the_written_values_only() {
        let now = Utc::now();
        let key = || "k7".to_string();
        let a = Version::new(&reader("undergraduate", now), key(), Previous::None, now);
        let b = Version::new(&reader("undergraduate", now - chrono::Duration::days(3)), key(), Previous::Unknown, now);
        assert_eq!(a.hash, b.hash, "times are not attributes");
        assert_eq!(a.attributes.gender.as_deref(), Some("f"));
        let c = Version::new(&reader("graduate", now), key(), Previous::None, now);
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn a_version_takes_effect_at_creation_then_at_the_change() {
        let now = Utc::now();
        let key = || "k7".to_string();
        let changed = now - chrono::Duration::minutes(5);
        let r = reader("graduate", changed);
        assert_eq!(Version::new(&r, key(), Previous::None, now).valid_from, r.created_at);
        let recorded_before = changed - chrono::Duration::hours(1);
        assert_eq!(Version::new(&r, key(), Previous::RecordedAt(recorded_before), now).valid_from, changed);
        let recorded_after = changed + chrono::Duration::minutes(1);
        assert_eq!(Version::new(&r, key(), Previous::RecordedAt(recorded_after), now).valid_from, now, "aged into a new band");
        assert_eq!(Version::new(&r, key(), Previous::Unknown, now).valid_from, now);
    }
}
