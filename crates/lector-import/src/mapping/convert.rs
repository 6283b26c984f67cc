//! Converting one record: cells through transforms and value maps into a reader draft, the
//! draft through the domain's checks, and every problem back to the column that caused it.

use super::compile::{unknown_category, Col, Mapper, Slot, FIELDS, TAG_SEPARATORS};
use super::value::{attribute_code, iso_date, key, normalize_date};
use super::Transform;
use crate::library::koha_attributes;
use crate::Record;
use chrono::NaiveDate;
use lector_domain::attribute::{AttrInput, AttrKind};
use lector_domain::contact::lookup_key;
use lector_domain::import::{IncomingReader, ReaderField, Rejection};
use lector_domain::message::FieldError;
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::{text, Msg};
use std::borrow::Cow;

/// What one row has gathered so far, and from which column.
struct Row<'r> {
    record: &'r Record,
    draft: ReaderDraft,
    /// The column that fed each field (its first value, for contacts and tags).
    src: [Option<u32>; FIELDS],
    contact_src: Vec<u32>,
    tag_src: Vec<u32>,
    family: Option<(u32, String)>,
    given: Option<(u32, String)>,
    /// (attribute index, column, value).
    attr_values: Vec<(usize, u32, String)>,
    /// Lector attribute codes this row's `patron_attributes` carried.
    patron_codes: Vec<String>,
    external: Option<String>,
    rejections: Vec<Rejection>,
}

impl Mapper {
    /// Converts one record into a validated reader, or every problem in it, each naming the row,
    /// the column (header text), the value and what to fix.
    pub fn convert(&self, record: &Record, today: NaiveDate) -> Result<IncomingReader, Vec<Rejection>> {
        let mut row = Row {
            record,
            draft: ReaderDraft::default(),
            src: [None; FIELDS],
            contact_src: Vec::new(),
            tag_src: Vec::new(),
            family: None,
            given: None,
            attr_values: Vec::new(),
            patron_codes: Vec::new(),
            external: None,
            rejections: Vec::new(),
        };
        for (id, col) in self.cols.iter().enumerate() {
            let id = id as u32;
            let raw = match col.cell {
                Some(i) => record.cells.get(i).map_or("", String::as_str),
                None if filled(col.slot, &row) => continue,
                None => col.fixed.as_str(),
            };
            if raw.trim().is_empty() {
                continue;
            }
            if col.split.is_empty() {
                self.feed(id, col, raw, &mut row);
            } else {
                for part in raw.split(&col.split[..]).filter(|p| !p.trim().is_empty()) {
                    self.feed(id, col, part, &mut row);
                }
            }
        }
        self.finish(row, today)
    }

    fn feed(&self, id: u32, col: &Col, part: &str, row: &mut Row) {
        let mut v = Cow::Borrowed(part);
        for t in &col.transforms {
            v = match t {
                Transform::Trim => match v {
                    Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
                    Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
                },
                Transform::Halfwidth => Cow::Owned(text::clean(&v)),
                Transform::Upper => Cow::Owned(v.to_uppercase()),
                Transform::Lower => Cow::Owned(v.to_lowercase()),
                Transform::Date => match normalize_date(&v) {
                    Ok(d) => Cow::Owned(d.to_string()),
                    Err(m) => return row.reject(col, part, m),
                },
            };
        }
        if !col.values.is_empty() {
            // Most cells are already in compared form; normalise only when they are not.
            if let Some(mapped) = col.values.get(v.as_ref()).or_else(|| col.values.get(&key(&v))) {
                v = Cow::Borrowed(mapped.as_str());
            }
        }
        if v.trim().is_empty() {
            return;
        }
        match col.slot {
            Slot::Field(f) => self.put(f, id, col, part, v.into_owned(), row),
            Slot::Family => _ = row.family.get_or_insert_with(|| (id, v.into_owned())),
            Slot::Given => _ = row.given.get_or_insert_with(|| (id, v.into_owned())),
            Slot::External => _ = row.external.get_or_insert_with(|| text::clean(&v)),
            Slot::Attr(i) => {
                let value = if self.attrs[i].kind == AttrKind::Date { date_or_raw(v) } else { v.into_owned() };
                row.attr_values.push((i, id, value));
            }
            Slot::Patron => match koha_attributes(&v) {
                Ok(pairs) => {
                    for (code, value) in pairs {
                        let code = attribute_code(&code);
                        if let Some(&i) = self.attr_index.get(&code) {
                            row.attr_values.push((i, id, value));
                            if !row.patron_codes.contains(&code) {
                                row.patron_codes.push(code);
                            }
                        }
                    }
                }
                Err(m) => row.reject(col, part, m),
            },
        }
    }

    /// Puts a value into a reader field: single-valued fields keep their first value, contacts
    /// and tags add up.
    fn put(&self, f: ReaderField, id: u32, col: &Col, part: &str, value: String, row: &mut Row) {
        if let Some(kind) = f.contact_kind() {
            let d = &mut row.draft;
            if d.contacts.iter().any(|c| c.kind == kind.code()) {
                let k = lookup_key(kind, &text::clean(&value));
                if d.contacts.iter().any(|c| c.kind == kind.code() && lookup_key(kind, &text::clean(&c.value)) == k) {
                    return;
                }
            }
            d.contacts.push(ContactDraft { kind: kind.code().to_string(), value, primary: false, verified: false });
            row.contact_src.push(id);
            row.src[f as usize].get_or_insert(id);
            return;
        }
        if f == ReaderField::Tags {
            for t in value.split(TAG_SEPARATORS).map(str::trim).filter(|t| !t.is_empty()) {
                row.draft.tags.push(t.to_string());
                row.tag_src.push(id);
            }
            row.src[f as usize].get_or_insert(id);
            return;
        }
        if row.src[f as usize].is_some() {
            return;
        }
        row.src[f as usize] = Some(id);
        if f == ReaderField::Category {
            match self.category(&value) {
                Some(code) => row.draft.category = code.to_string(),
                None => {
                    row.reject(col, part, unknown_category(value.trim(), &self.categories));
                    // Kept as read so the domain's checks do not report it a second time.
                    row.draft.category = value;
                }
            }
            return;
        }
        let d = &mut row.draft;
        match f {
            ReaderField::CardNo => d.card_no = value,
            ReaderField::Name => d.name = value,
            ReaderField::Gender => d.gender = Some(value),
            ReaderField::BirthDate => d.birth_date = Some(date_or_raw(Cow::Owned(value))),
            ReaderField::EnrolledOn => d.enrolled_on = Some(date_or_raw(Cow::Owned(value))),
            ReaderField::ExpiresOn => d.expires_on = Some(date_or_raw(Cow::Owned(value))),
            ReaderField::Affiliation => d.affiliation = Some(value),
            ReaderField::Status => d.status = Some(value),
            ReaderField::Owner => d.owner = Some(value),
            ReaderField::Notes => d.notes = Some(value),
            ReaderField::Email
            | ReaderField::Mobile
            | ReaderField::Phone
            | ReaderField::Qq
            | ReaderField::Wechat
            | ReaderField::Tags
            | ReaderField::Category => {}
        }
    }

    /// A category code for a cell: the code itself (any case) or a common word for it.
    fn category(&self, v: &str) -> Option<&str> {
        if let Some(c) = self.categories.iter().find(|c| c.as_str() == v) {
            return Some(c);
        }
        self.category_words.get(v).or_else(|| self.category_words.get(&key(v))).map(String::as_str)
    }

    fn finish(&self, mut row: Row, today: NaiveDate) -> Result<IncomingReader, Vec<Rejection>> {
        let name = ReaderField::Name as usize;
        if row.src[name].is_none() {
            let (family, given) = (row.family.take(), row.given.take());
            if let Some((id, full)) = match (family, given) {
                (Some((id, f)), Some((_, g))) => Some((id, join_name(&f, &g))),
                (Some(part), None) | (None, Some(part)) => Some(part),
                (None, None) => None,
            } {
                row.draft.name = full;
                row.src[name] = Some(id);
            }
        }
        self.gather_attributes(&mut row);

        let input = match row.draft.parse(today) {
            Ok(input) => input,
            Err(errs) => {
                let located: Vec<Rejection> = errs.0.into_iter().map(|e| self.locate(&row, e)).collect();
                row.rejections.extend(located);
                return Err(row.rejections);
            }
        };
        if !row.rejections.is_empty() {
            return Err(row.rejections);
        }
        // A `patron_attributes` cell maps only the codes it carries: attributes kept in Lector
        // alone are never cleared by a Koha import.
        let mut mapped_attributes = self.mapped_attributes.clone();
        for code in row.patron_codes {
            if !mapped_attributes.contains(&code) {
                mapped_attributes.push(code);
            }
        }
        Ok(IncomingReader {
            row: row.record.row,
            external_id: row.external.unwrap_or_else(|| input.card_no.as_str().to_string()),
            input,
            mapped: self.mapped.clone(),
            present: ReaderField::ALL.iter().copied().filter(|f| row.src[*f as usize].is_some()).collect(),
            mapped_attributes,
        })
    }

    /// Checks each attribute's values against its definition, so a bad value names its column.
    fn gather_attributes(&self, row: &mut Row) {
        if row.attr_values.is_empty() {
            return;
        }
        let mut gathered = std::mem::take(&mut row.attr_values);
        gathered.sort_by_key(|(i, _, _)| *i);
        let mut rest = gathered.as_slice();
        while let Some(&(i, id, _)) = rest.first() {
            let n = rest.iter().take_while(|(j, _, _)| *j == i).count();
            let values: Vec<String> = rest[..n].iter().map(|(_, _, v)| v.clone()).collect();
            rest = &rest[n..];
            let def = &self.attrs[i];
            match def.parse_values(&values) {
                Ok(mut stored) => {
                    let input =
                        if def.repeatable || stored.len() != 1 { AttrInput::Many(stored) } else { AttrInput::One(stored.remove(0)) };
                    row.draft.attributes.insert(def.code.clone(), input);
                }
                Err(m) => {
                    let col = &self.cols[id as usize];
                    row.reject(col, &values.join(", "), m);
                }
            }
        }
    }

    /// The rejection for a field error of the draft: the column that fed the field and its value.
    fn locate(&self, row: &Row, e: FieldError) -> Rejection {
        let item = |list: &str| {
            e.field.strip_prefix(list).map(|rest| rest.strip_prefix('[').and_then(|r| r.split(']').next()?.parse().ok()).unwrap_or(0))
        };
        let (col, value): (Option<u32>, String) = if let Some(i) = item("contacts") {
            (row.contact_src.get(i).copied(), row.draft.contacts.get(i).map(|c| c.value.clone()).unwrap_or_default())
        } else if let Some(i) = item("tags") {
            (row.tag_src.get(i).copied(), row.draft.tags.get(i).cloned().unwrap_or_default())
        } else if let Ok(f) = ReaderField::parse(&e.field) {
            let col = row.src[f as usize].or(self.first_col[f as usize]);
            let value = match (f, row.src[f as usize]) {
                (_, None) => String::new(),
                (ReaderField::Name, Some(_)) => row.draft.name.clone(),
                (_, Some(id)) => self.raw(id, row.record).to_string(),
            };
            (col, value)
        } else {
            (None, String::new())
        };
        let header = col.map(|id| self.cols[id as usize].header.as_str()).unwrap_or("");
        Rejection::new(row.record.row, header, &value, e.message)
    }

    fn raw<'a>(&'a self, id: u32, record: &'a Record) -> &'a str {
        let col = &self.cols[id as usize];
        match col.cell {
            Some(i) => record.cells.get(i).map_or("", String::as_str),
            None => &col.fixed,
        }
    }
}

impl Row<'_> {
    fn reject(&mut self, col: &Col, value: &str, reason: Msg) {
        self.rejections.push(Rejection::new(self.record.row, col.header.as_str(), value.trim(), reason));
    }
}

/// True when a default for this slot would be ignored because a cell already fed it.
fn filled(slot: Slot, row: &Row) -> bool {
    match slot {
        Slot::Field(f) => row.src[f as usize].is_some(),
        Slot::Attr(i) => row.attr_values.iter().any(|(j, _, _)| *j == i),
        Slot::Family | Slot::Given | Slot::Patron | Slot::External => false,
    }
}

/// The date in `2024-03-05` form, or the text as read so the domain's check names it.
fn date_or_raw(v: Cow<str>) -> String {
    if iso_date(v.trim()).is_some() {
        return v.trim().to_string();
    }
    match normalize_date(&v) {
        Ok(d) => d.to_string(),
        Err(_) => v.into_owned(),
    }
}

/// A name from its parts: Chinese names family first without a space (张 + 三 → 张三), others
/// given name first (John + Smith → John Smith).
fn join_name(family: &str, given: &str) -> String {
    let (f, g) = (family.trim(), given.trim());
    if f.chars().chain(g.chars()).any(text::is_han) {
        format!("{f}{g}")
    } else {
        format!("{g} {f}")
    }
}
