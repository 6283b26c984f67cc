//! Library system formats: Koha's patron import CSV and FOLIO's user-import JSON.
//!
//! A Koha file is a CSV whose headers [`crate::mapping::Profile::detect`] knows; what is Koha's
//! own is its `patron_attributes` cell, read by [`koha_attributes`]. A FOLIO document is read
//! here into records under FOLIO's field paths.

use crate::{Format, Opened, Record, RecordSource, SourceError, SourceHints};
use lector_domain::Msg;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Splits Koha's `patron_attributes` cell (`CODE:value,CODE:value`) into (code, value) pairs,
/// in order; a code may repeat. A pair whose value holds a comma is quoted, as Koha writes it
/// (`"NOTE:a, b"`) or around the value (`NOTE:"a, b"`), with `""` for a quote; an unquoted
/// piece without a code continues the value before it.
pub fn koha_attributes(cell: &str) -> Result<Vec<(String, String)>, Msg> {
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = cell.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' if in_quotes => in_quotes = false,
            '"' if current.trim().is_empty() || current.trim_end().ends_with(':') => {
                if current.trim().is_empty() {
                    current.clear();
                }
                in_quotes = true;
                quoted = true;
            }
            ',' if !in_quotes => pieces.push((std::mem::take(&mut current), std::mem::replace(&mut quoted, false))),
            _ => current.push(c),
        }
    }
    if in_quotes {
        return Err(Msg::new(
            format!("patron_attributes“{cell}”的引号没有闭合"),
            format!("patron_attributes '{cell}' has an unclosed quote"),
        ));
    }
    pieces.push((current, quoted));

    let mut pairs: Vec<(String, String)> = Vec::new();
    for (piece, was_quoted) in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        match piece.split_once(':') {
            Some((code, value)) if !code.trim().is_empty() && !code.trim().contains(char::is_whitespace) => {
                pairs.push((code.trim().to_string(), value.trim().to_string()));
            }
            _ => match pairs.last_mut() {
                Some((_, value)) if !was_quoted && !piece.contains(':') => {
                    value.push_str(", ");
                    value.push_str(piece);
                }
                _ => {
                    return Err(Msg::new(
                        format!("patron_attributes 中的“{piece}”应写作 代码:值，多个之间用逗号分隔"),
                        format!("'{piece}' in patron_attributes should be CODE:value, pairs separated by commas"),
                    ))
                }
            },
        }
    }
    Ok(pairs)
}

/// FOLIO's user-import document; fields Lector does not read are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FolioDocument {
    users: Option<Vec<FolioUser>>,
    source_type: Option<String>,
    deactivate_missing_users: Option<bool>,
    update_only_present_fields: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FolioUser {
    username: Option<String>,
    external_system_id: Option<String>,
    barcode: Option<String>,
    active: Option<bool>,
    patron_group: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    enrollment_date: Option<String>,
    expiration_date: Option<String>,
    personal: FolioPersonal,
    departments: Vec<String>,
    custom_fields: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FolioPersonal {
    last_name: Option<String>,
    first_name: Option<String>,
    middle_name: Option<String>,
    preferred_first_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    mobile_phone: Option<String>,
    date_of_birth: Option<String>,
    addresses: Vec<FolioAddress>,
    preferred_contact_type_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FolioAddress {
    address_line1: Option<String>,
    address_line2: Option<String>,
    city: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country_id: Option<String>,
    primary_address: Option<bool>,
}

/// The fixed headers of a FOLIO record, before its `customFields.CODE` columns.
const FOLIO_HEADERS: [&str; 19] = [
    "externalSystemId",
    "barcode",
    "username",
    "active",
    "patronGroup",
    "type",
    "enrollmentDate",
    "expirationDate",
    "personal.lastName",
    "personal.firstName",
    "personal.middleName",
    "personal.preferredFirstName",
    "personal.email",
    "personal.phone",
    "personal.mobilePhone",
    "personal.dateOfBirth",
    "personal.addresses",
    "personal.preferredContactTypeId",
    "departments",
];

/// Reads a FOLIO user-import document (`{"users": [...], "sourceType": …,
/// "deactivateMissingUsers": …, "updateOnlyPresentFields": …}`) as records under FOLIO's field
/// paths (`externalSystemId`, `barcode`, `personal.lastName`, `customFields.CODE` …), with its
/// flags as hints.
pub fn folio(json: &[u8]) -> Result<Opened, SourceError> {
    let json = json.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(json);
    let doc: FolioDocument = serde_json::from_slice(json).map_err(|e| {
        SourceError::whole(Msg::new(
            format!("不是有效的 FOLIO 用户导入文件（第 {} 行第 {} 列）：{e}", e.line(), e.column()),
            format!("not a valid FOLIO user-import document (line {}, column {}): {e}", e.line(), e.column()),
        ))
    })?;
    let Some(users) = doc.users else {
        return Err(SourceError::whole(Msg::new(
            "FOLIO 用户导入文件缺少 users 数组（应形如 {\"users\": [...], \"totalRecords\": 1}）",
            "the FOLIO user-import document has no users array (expected {\"users\": [...], \"totalRecords\": 1})",
        )));
    };
    let mut custom: Vec<String> = Vec::new();
    for u in &users {
        for code in u.custom_fields.keys() {
            if !custom.contains(code) {
                custom.push(code.clone());
            }
        }
    }
    let headers = FOLIO_HEADERS.iter().map(|h| h.to_string()).chain(custom.iter().map(|c| format!("customFields.{c}"))).collect();
    let hints = SourceHints {
        source: doc.source_type.filter(|s| !s.trim().is_empty()),
        update_only_present: doc.update_only_present_fields,
        deactivate_missing: doc.deactivate_missing_users,
    };
    Ok(Opened {
        records: Box::new(FolioRecords { headers, custom, users: users.into_iter(), row: 0 }),
        format: Format::Folio,
        encoding: Some("UTF-8"),
        hints,
    })
}

/// The users of a parsed document, turned into records one at a time.
struct FolioRecords {
    headers: Vec<String>,
    custom: Vec<String>,
    users: std::vec::IntoIter<FolioUser>,
    row: u64,
}

impl RecordSource for FolioRecords {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn next_record(&mut self) -> Option<Result<Record, SourceError>> {
        let u = self.users.next()?;
        self.row += 1;
        let p = u.personal;
        let text = |v: Option<String>| v.unwrap_or_default();
        let mut cells = vec![
            text(u.external_system_id),
            text(u.barcode),
            text(u.username),
            u.active.map(|a| a.to_string()).unwrap_or_default(),
            text(u.patron_group),
            text(u.kind),
            text(u.enrollment_date),
            text(u.expiration_date),
            text(p.last_name),
            text(p.first_name),
            text(p.middle_name),
            text(p.preferred_first_name),
            text(p.email),
            text(p.phone),
            text(p.mobile_phone),
            text(p.date_of_birth),
            primary_address(&p.addresses),
            text(p.preferred_contact_type_id),
            u.departments.join(","),
        ];
        cells.extend(self.custom.iter().map(|code| u.custom_fields.get(code).map(custom_text).unwrap_or_default()));
        Some(Ok(Record { row: self.row, cells }))
    }
}

/// The primary address (or the first) on one line.
fn primary_address(addresses: &[FolioAddress]) -> String {
    let Some(a) = addresses.iter().find(|a| a.primary_address == Some(true)).or(addresses.first()) else {
        return String::new();
    };
    [&a.address_line1, &a.address_line2, &a.city, &a.region, &a.postal_code, &a.country_id]
        .into_iter()
        .filter_map(|p| p.as_deref().map(str::trim).filter(|s| !s.is_empty()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A custom field's value as a cell: lists joined with `,`.
fn custom_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(custom_text).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
