//! What an incoming row means for a stored record: its fingerprint (to skip unchanged rows), and
//! the record with the row's fields applied as the job's options allow.

use lector_domain::contact::ContactKind;
use lector_domain::import::{ImportOptions, IncomingReader, ReaderField};
use lector_domain::reader::{Contact, ReaderInput};
use sha2::{Digest, Sha256};

/// Appends the canonical text of one field of `input` (values separated by U+001F, which no
/// validated value contains).
fn field_text(input: &ReaderInput, field: ReaderField, out: &mut String) {
    let opt = |out: &mut String, v: &Option<String>| out.push_str(v.as_deref().unwrap_or(""));
    let date = |out: &mut String, d: Option<chrono::NaiveDate>| {
        if let Some(d) = d {
            out.push_str(&d.to_string());
        }
    };
    match field {
        ReaderField::CardNo => out.push_str(input.card_no.as_str()),
        ReaderField::Name => out.push_str(input.name.as_str()),
        ReaderField::Gender => out.push_str(input.gender.code()),
        ReaderField::BirthDate => date(out, input.birth_date),
        ReaderField::Category => out.push_str(&input.category),
        ReaderField::Affiliation => opt(out, &input.affiliation),
        ReaderField::Status => out.push_str(input.status.code()),
        ReaderField::EnrolledOn => date(out, input.enrolled_on),
        ReaderField::ExpiresOn => date(out, input.expires_on),
        ReaderField::Tags => join(out, input.tags.iter().map(String::as_str)),
        ReaderField::Owner => out.push_str(&input.owner.as_deref().unwrap_or("").to_lowercase()),
        ReaderField::Notes => opt(out, &input.notes),
        contact => {
            let kind = contact.contact_kind();
            join(out, input.contacts.iter().filter(|c| Some(c.kind) == kind).map(|c| c.value.as_str()));
        }
    }
}

fn join<'a>(out: &mut String, values: impl Iterator<Item = &'a str>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push('\u{1f}');
        }
        out.push_str(v);
    }
}

fn attribute_text(input: &ReaderInput, code: &str, out: &mut String) {
    if let Some(values) = input.attributes.get(code) {
        join(out, values.iter().map(String::as_str));
    }
}

/// A 64-bit hash of what the row maps (field codes and values, attribute codes and values) and of
/// the options that decide what of it is applied, the same on every run and backend: equal
/// fingerprints mean the job has nothing new to apply.
pub(super) fn fingerprint(row: &IncomingReader, options: &ImportOptions) -> i64 {
    let mut text = String::with_capacity(256);
    text.push_str(if options.update_only_present { "present\u{1e}" } else { "all\u{1e}" });
    for field in ReaderField::ALL.iter().filter(|f| options.never_overwrite.contains(f)) {
        text.push_str(field.code());
        text.push('\u{1e}');
    }
    for field in ReaderField::ALL.iter().filter(|f| row.mapped.contains(f)) {
        text.push_str(field.code());
        text.push('=');
        field_text(&row.input, *field, &mut text);
        text.push('\u{1e}');
    }
    let mut codes: Vec<&String> = row.mapped_attributes.iter().collect();
    codes.sort();
    codes.dedup();
    for code in codes {
        text.push_str("attr.");
        text.push_str(code);
        text.push('=');
        attribute_text(&row.input, code, &mut text);
        text.push('\u{1e}');
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Whether a job takes the row's value of `field` for a reader that already exists.
fn applies(row: &IncomingReader, options: &ImportOptions, field: ReaderField) -> bool {
    row.mapped.contains(&field)
        && !options.never_overwrite.contains(&field)
        && (!options.update_only_present || row.present.contains(&field))
}

/// Whether the row sets this card number on an existing reader.
pub(super) fn sets_card(row: &IncomingReader, options: &ImportOptions) -> bool {
    applies(row, options, ReaderField::CardNo)
}

/// `stored` with the row's fields applied as `options` allow, and the codes of the fields
/// (`attr.CODE` for attributes) whose value that changed.
pub(super) fn apply(stored: &ReaderInput, row: &IncomingReader, options: &ImportOptions) -> (ReaderInput, Vec<String>) {
    let incoming = &row.input;
    let mut merged = stored.clone();
    let mut kinds = Vec::new();
    for field in ReaderField::ALL.iter().copied().filter(|f| applies(row, options, *f)) {
        match field {
            ReaderField::CardNo => merged.card_no = incoming.card_no.clone(),
            ReaderField::Name => merged.name = incoming.name.clone(),
            ReaderField::Gender => merged.gender = incoming.gender,
            ReaderField::BirthDate => merged.birth_date = incoming.birth_date,
            ReaderField::Category => merged.category = incoming.category.clone(),
            ReaderField::Affiliation => merged.affiliation = incoming.affiliation.clone(),
            ReaderField::Status => merged.status = incoming.status,
            ReaderField::EnrolledOn => merged.enrolled_on = incoming.enrolled_on,
            ReaderField::ExpiresOn => merged.expires_on = incoming.expires_on,
            ReaderField::Tags => merged.tags = incoming.tags.clone(),
            ReaderField::Owner => merged.owner = incoming.owner.clone(),
            ReaderField::Notes => merged.notes = incoming.notes.clone(),
            contact => kinds.extend(contact.contact_kind()),
        }
    }
    if !kinds.is_empty() {
        merged.contacts = replace_contacts(&stored.contacts, &incoming.contacts, &kinds);
    }
    for code in &row.mapped_attributes {
        match incoming.attributes.get(code) {
            Some(values) => {
                merged.attributes.insert(code.clone(), values.clone());
            }
            None if !options.update_only_present => {
                merged.attributes.remove(code);
            }
            None => {}
        }
    }
    let mut changed = Vec::new();
    let (mut before, mut after) = (String::new(), String::new());
    for field in ReaderField::ALL.iter().copied() {
        before.clear();
        after.clear();
        field_text(stored, field, &mut before);
        field_text(&merged, field, &mut after);
        if before != after {
            changed.push(field.code().to_string());
        }
    }
    for code in &row.mapped_attributes {
        let key = format!("attr.{code}");
        if stored.attributes.get(code) != merged.attributes.get(code) && !changed.contains(&key) {
            changed.push(key);
        }
    }
    // A contact whose flags alone changed changes the record, though no field's text.
    if changed.is_empty() && merged != *stored {
        changed.extend(kinds.iter().map(|k| k.code().to_string()));
    }
    (merged, changed)
}

/// The stored contacts with those of `kinds` replaced by the incoming ones, each kind where its
/// first stored contact was (new kinds at the end). A value kept keeps its verified flag.
fn replace_contacts(stored: &[Contact], incoming: &[Contact], kinds: &[ContactKind]) -> Vec<Contact> {
    let fresh = |kind: ContactKind| {
        incoming.iter().filter(move |c| c.kind == kind).map(move |c| {
            let verified = c.verified || stored.iter().any(|s| s.kind == kind && s.value == c.value && s.verified);
            Contact { verified, ..c.clone() }
        })
    };
    let mut out = Vec::with_capacity(stored.len() + incoming.len());
    let mut placed = Vec::new();
    for c in stored {
        if !kinds.contains(&c.kind) {
            out.push(c.clone());
        } else if !placed.contains(&c.kind) {
            placed.push(c.kind);
            out.extend(fresh(c.kind));
        }
    }
    for kind in kinds.iter().filter(|k| !placed.contains(k)) {
        out.extend(fresh(*kind));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lector_domain::reader::{ContactDraft, ReaderDraft};

    fn input(name: &str, email: &str, affiliation: Option<&str>) -> ReaderInput {
        ReaderDraft {
            card_no: "S1".into(),
            name: name.into(),
            category: "undergraduate".into(),
            affiliation: affiliation.map(String::from),
            contacts: vec![
                ContactDraft { kind: "mobile".into(), value: "13800138000".into(), ..Default::default() },
                ContactDraft { kind: "email".into(), value: email.into(), verified: true, ..Default::default() },
            ],
            ..Default::default()
        }
        .parse(chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap())
        .unwrap()
    }

    fn row(input: ReaderInput, mapped: &[ReaderField], present: &[ReaderField]) -> IncomingReader {
        IncomingReader {
            row: 2,
            external_id: "S1".into(),
            input,
            mapped: mapped.to_vec(),
            present: present.to_vec(),
            mapped_attributes: vec![],
        }
    }

    const MAPPED: &[ReaderField] = &[ReaderField::CardNo, ReaderField::Name, ReaderField::Email, ReaderField::Affiliation];

    #[test]
    fn fingerprints_cover_only_mapped_fields() {
        let all = ImportOptions::default();
        let a = row(input("张三", "a@x.cn", Some("数学系")), MAPPED, MAPPED);
        let mut b = a.clone();
        b.input.notes = Some("not mapped".into());
        assert_eq!(fingerprint(&a, &all), fingerprint(&b, &all));
        b.input.affiliation = Some("物理系".into());
        assert_ne!(fingerprint(&a, &all), fingerprint(&b, &all));
        let mut c = a.clone();
        c.mapped.push(ReaderField::Notes);
        assert_ne!(fingerprint(&a, &all), fingerprint(&c, &all), "mapping one more field is news");
        let keep = ImportOptions { never_overwrite: vec![ReaderField::Name], ..Default::default() };
        assert_ne!(fingerprint(&a, &all), fingerprint(&a, &keep), "other options may apply more of the row");
        let missing = ImportOptions { deactivate_missing: true, all_or_nothing: true, ..Default::default() };
        assert_eq!(fingerprint(&a, &all), fingerprint(&a, &missing));
    }

    #[test]
    fn options_decide_what_is_overwritten() {
        let stored = input("张三", "a@x.cn", Some("数学系"));
        let incoming = input("张叁", "b@x.cn", None);
        let present = [ReaderField::CardNo, ReaderField::Name, ReaderField::Email];
        let r = row(incoming, MAPPED, &present);

        let (all, changed) = apply(&stored, &r, &ImportOptions::default());
        assert_eq!(all.name.as_str(), "张叁");
        assert_eq!(all.affiliation, None, "a mapped blank clears");
        assert_eq!(changed, ["name", "affiliation", "email"]);
        assert_eq!(all.contacts.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(), ["13800138000", "b@x.cn"]);

        let keep = ImportOptions { update_only_present: true, never_overwrite: vec![ReaderField::Name], ..Default::default() };
        let (some, changed) = apply(&stored, &r, &keep);
        assert_eq!(some.name.as_str(), "张三");
        assert_eq!(some.affiliation.as_deref(), Some("数学系"));
        assert_eq!(changed, ["email"]);
    }

    #[test]
    fn a_kept_contact_stays_verified() {
        let stored = input("张三", "a@x.cn", None);
        let mut incoming = input("张三", "a@x.cn", None);
        incoming.contacts.iter_mut().for_each(|c| c.verified = false);
        let (merged, changed) = apply(&stored, &row(incoming, MAPPED, MAPPED), &ImportOptions::default());
        assert!(changed.is_empty(), "{changed:?}");
        assert_eq!(merged, stored);
    }
}
