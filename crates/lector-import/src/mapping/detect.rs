//! Recognising plain headers without a profile: Chinese, English, Koha's borrower columns and
//! FOLIO's user paths.

use super::value::attribute_code;
use super::{Column, MapTarget, Profile};
use lector_domain::import::{ReaderField as F, Target};
use lector_domain::text;
use std::collections::{BTreeMap, HashMap};

/// What a recognised header feeds.
#[derive(Clone, Copy)]
enum Known {
    Field(F),
    Family,
    Given,
    External,
    Patron,
    /// FOLIO's `active`: `true`/`false` → status `active`/`deactivated`.
    Active,
    /// Recognised, and deliberately not stored (Koha `branchcode`, FOLIO `username` …).
    Skip,
}

/// Headers in their compared form (see [`header_key`]): half-width, lower-case, without
/// spaces, `_`, `-` or `*`.
const KNOWN: &[(&str, Known)] = &[
    // Chinese
    ("姓名", Known::Field(F::Name)),
    ("读者姓名", Known::Field(F::Name)),
    ("姓", Known::Family),
    ("名", Known::Given),
    ("证件号", Known::Field(F::CardNo)),
    ("读者证号", Known::Field(F::CardNo)),
    ("借书证号", Known::Field(F::CardNo)),
    ("借阅证号", Known::Field(F::CardNo)),
    ("卡号", Known::Field(F::CardNo)),
    ("学号", Known::Field(F::CardNo)),
    ("工号", Known::Field(F::CardNo)),
    ("读者类型", Known::Field(F::Category)),
    ("读者类别", Known::Field(F::Category)),
    ("类型", Known::Field(F::Category)),
    ("类别", Known::Field(F::Category)),
    ("性别", Known::Field(F::Gender)),
    ("单位", Known::Field(F::Affiliation)),
    ("院系", Known::Field(F::Affiliation)),
    ("学院", Known::Field(F::Affiliation)),
    ("部门", Known::Field(F::Affiliation)),
    ("工作单位", Known::Field(F::Affiliation)),
    ("所在单位", Known::Field(F::Affiliation)),
    ("手机", Known::Field(F::Mobile)),
    ("手机号", Known::Field(F::Mobile)),
    ("手机号码", Known::Field(F::Mobile)),
    ("移动电话", Known::Field(F::Mobile)),
    ("电话", Known::Field(F::Phone)),
    ("联系电话", Known::Field(F::Phone)),
    ("固定电话", Known::Field(F::Phone)),
    ("办公电话", Known::Field(F::Phone)),
    ("电子邮件", Known::Field(F::Email)),
    ("电子邮箱", Known::Field(F::Email)),
    ("邮箱", Known::Field(F::Email)),
    ("出生日期", Known::Field(F::BirthDate)),
    ("生日", Known::Field(F::BirthDate)),
    ("有效期", Known::Field(F::ExpiresOn)),
    ("有效期至", Known::Field(F::ExpiresOn)),
    ("到期日期", Known::Field(F::ExpiresOn)),
    ("失效日期", Known::Field(F::ExpiresOn)),
    ("办证日期", Known::Field(F::EnrolledOn)),
    ("注册日期", Known::Field(F::EnrolledOn)),
    ("状态", Known::Field(F::Status)),
    ("读者状态", Known::Field(F::Status)),
    ("qq", Known::Field(F::Qq)),
    ("qq号", Known::Field(F::Qq)),
    ("微信", Known::Field(F::Wechat)),
    ("微信号", Known::Field(F::Wechat)),
    ("标签", Known::Field(F::Tags)),
    ("备注", Known::Field(F::Notes)),
    ("业务负责人", Known::Field(F::Owner)),
    // English
    ("cardno", Known::Field(F::CardNo)),
    ("cardnumber", Known::Field(F::CardNo)),
    ("librarycard", Known::Field(F::CardNo)),
    ("name", Known::Field(F::Name)),
    ("fullname", Known::Field(F::Name)),
    ("familyname", Known::Family),
    ("lastname", Known::Family),
    ("givenname", Known::Given),
    ("firstname", Known::Given),
    ("gender", Known::Field(F::Gender)),
    ("sex", Known::Field(F::Gender)),
    ("birthdate", Known::Field(F::BirthDate)),
    ("dateofbirth", Known::Field(F::BirthDate)),
    ("category", Known::Field(F::Category)),
    ("readercategory", Known::Field(F::Category)),
    ("patrontype", Known::Field(F::Category)),
    ("affiliation", Known::Field(F::Affiliation)),
    ("department", Known::Field(F::Affiliation)),
    ("faculty", Known::Field(F::Affiliation)),
    ("status", Known::Field(F::Status)),
    ("enrolledon", Known::Field(F::EnrolledOn)),
    ("enrollmentdate", Known::Field(F::EnrolledOn)),
    ("registrationdate", Known::Field(F::EnrolledOn)),
    ("expireson", Known::Field(F::ExpiresOn)),
    ("expirydate", Known::Field(F::ExpiresOn)),
    ("expirationdate", Known::Field(F::ExpiresOn)),
    ("email", Known::Field(F::Email)),
    ("mail", Known::Field(F::Email)),
    ("mobile", Known::Field(F::Mobile)),
    ("mobilephone", Known::Field(F::Mobile)),
    ("cellphone", Known::Field(F::Mobile)),
    ("phone", Known::Field(F::Phone)),
    ("telephone", Known::Field(F::Phone)),
    ("wechat", Known::Field(F::Wechat)),
    ("weixin", Known::Field(F::Wechat)),
    ("tags", Known::Field(F::Tags)),
    ("notes", Known::Field(F::Notes)),
    ("owner", Known::Field(F::Owner)),
    ("externalid", Known::External),
    // Koha borrowers (cardnumber, firstname, email, phone, mobile, sex, dateofbirth above)
    ("surname", Known::Family),
    ("categorycode", Known::Field(F::Category)),
    ("dateenrolled", Known::Field(F::EnrolledOn)),
    ("dateexpiry", Known::Field(F::ExpiresOn)),
    ("borrowernumber", Known::External),
    ("bemail", Known::Field(F::Email)),
    ("emailpro", Known::Field(F::Email)),
    ("bphone", Known::Field(F::Phone)),
    ("phonepro", Known::Field(F::Phone)),
    ("borrowernotes", Known::Field(F::Notes)),
    ("patronattributes", Known::Patron),
    ("branchcode", Known::Skip),
    ("userid", Known::Skip),
    ("password", Known::Skip),
    // FOLIO users
    ("externalsystemid", Known::External),
    ("barcode", Known::Field(F::CardNo)),
    ("username", Known::Skip),
    ("active", Known::Active),
    ("patrongroup", Known::Field(F::Category)),
    ("personal.lastname", Known::Family),
    ("personal.firstname", Known::Given),
    ("personal.email", Known::Field(F::Email)),
    ("personal.phone", Known::Field(F::Phone)),
    ("personal.mobilephone", Known::Field(F::Mobile)),
    ("personal.dateofbirth", Known::Field(F::BirthDate)),
    ("departments", Known::Field(F::Affiliation)),
];

/// Recognised only when nothing better feeds the field: Koha's `sort1` is the faculty (院系)
/// in many Chinese installations.
const FALLBACK: &[(&str, Known)] = &[("sort1", Known::Field(F::Affiliation))];

/// A header in the form [`KNOWN`] lists it; a trailing note in brackets (`手机（必填）`) is dropped.
fn header_key(header: &str) -> String {
    let mut k = text::clean(header).to_lowercase();
    if k.ends_with(')') {
        if let Some(open) = k.rfind('(').filter(|i| *i > 0) {
            k.truncate(open);
        }
    }
    k.chars().filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '*')).collect()
}

/// A recognised header's column and its rank (higher wins a single-valued field).
fn recognise(header: &str) -> Option<(Column, u8)> {
    let k = header_key(header);
    let clean = text::clean(header);
    if let Some(code) = clean.get(..13).filter(|p| p.eq_ignore_ascii_case("customfields.")).and_then(|_| clean.get(13..)) {
        let mut col = Column::new(MapTarget::Target(Target::Attribute(attribute_code(code))));
        col.optional = true;
        return Some((col, 2));
    }
    let find = |table: &[(&str, Known)]| table.iter().find(|(key, _)| *key == k).map(|(_, known)| *known);
    let (known, rank) = find(KNOWN).map(|kn| (kn, 2)).or_else(|| find(FALLBACK).map(|kn| (kn, 1)))?;
    let target = match known {
        Known::Field(f) => MapTarget::Target(Target::Field(f)),
        Known::Active => MapTarget::Target(Target::Field(F::Status)),
        Known::Family => MapTarget::FamilyName,
        Known::Given => MapTarget::GivenName,
        Known::External => MapTarget::Target(Target::ExternalId),
        Known::Patron => MapTarget::PatronAttributes,
        Known::Skip => MapTarget::Target(Target::Ignore),
    };
    let mut col = Column::new(target);
    if matches!(known, Known::Active) {
        col.values.insert("true".into(), "active".into());
        col.values.insert("false".into(), "deactivated".into());
    }
    Some((col, rank))
}

/// True when one column is enough for the target (a second one would compete, not add).
fn single_valued(t: &MapTarget) -> bool {
    match t {
        MapTarget::Target(Target::Field(f)) => !matches!(f, F::Email | F::Mobile | F::Phone | F::Qq | F::Wechat | F::Tags),
        MapTarget::Target(Target::Attribute(_) | Target::ExternalId) | MapTarget::FamilyName | MapTarget::GivenName => true,
        MapTarget::Target(Target::Ignore) | MapTarget::PatronAttributes => false,
    }
}

pub(super) fn detect(headers: &[String]) -> Profile {
    let mut columns: BTreeMap<String, Column> = BTreeMap::new();
    // Single-valued targets already taken: by which header, at which rank.
    let mut taken: HashMap<MapTarget, (String, u8)> = HashMap::new();
    for raw in headers {
        let header = raw.trim();
        if header.is_empty() || columns.contains_key(header) {
            continue;
        }
        let mut column = Column::new(MapTarget::Target(Target::Ignore));
        if let Some((col, rank)) = recognise(header) {
            if !single_valued(&col.field) {
                column = col;
            } else {
                match taken.get(&col.field) {
                    Some((_, held)) if *held >= rank => {}
                    previous => {
                        if let Some((other, _)) = previous {
                            columns.insert(other.clone(), Column::new(MapTarget::Target(Target::Ignore)));
                        }
                        taken.insert(col.field.clone(), (header.to_string(), rank));
                        column = col;
                    }
                }
            }
        }
        columns.insert(header.to_string(), column);
    }
    Profile { columns, ..Profile::default() }
}
