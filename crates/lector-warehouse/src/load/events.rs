//! The events circulation files hold, as parsed from a row and as kept in the quarantine (so a
//! retry loads exactly what the file said), and their rows in the star schema.

use chrono::NaiveDateTime;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use lector_store::reader_refs::ReaderRef;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::etl::columns::{int, month, text, timestamps};

/// A row of one table, before its reader is resolved.
pub trait Event: Serialize + DeserializeOwned + Sized {
    const TABLE: &'static str;
    /// Whether the event names an item `dim_item` should know.
    const HAS_ITEM: bool;
    fn event_key(&self) -> &str;
    /// The reader the event names, if the table has readers.
    fn reader(&self) -> Option<&ReaderRef>;
    /// The item the event names, to check and to replace a barcode with the item's id.
    fn item_mut(&mut self) -> Option<&mut String> {
        None
    }
    /// The events as rows of [`Event::TABLE`]; `now` is when loans still out are counted to.
    fn rows(events: &[Keyed<Self>], now: NaiveDateTime) -> Result<RecordBatch, ArrowError>;
}

/// An event with its reader's key (none for tables without readers).
pub struct Keyed<E> {
    pub reader_key: Option<String>,
    pub event: E,
}

/// A stable key for an event without an id of its own: a hash of the source and the fields
/// that identify the event, so the same row loaded again gets the same key.
pub fn hashed_key(source: &str, kind: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in std::iter::once(source).chain(std::iter::once(kind)).chain(parts.iter().copied()) {
        hash.update(part.as_bytes());
        hash.update([0x1f]);
    }
    format!("{source}:{kind}:{}", hex::encode(&hash.finalize()[..12]))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loan {
    pub event_key: String,
    pub reader: ReaderRef,
    pub item_id: String,
    pub loaned_at: NaiveDateTime,
    pub due_at: Option<NaiveDateTime>,
    pub returned_at: Option<NaiveDateTime>,
    pub renewals: i64,
    pub branch: Option<String>,
    pub source: String,
}

impl Loan {
    /// Calendar days returned after due; for a loan still out, days past due as of `now`.
    pub fn overdue_days(&self, now: NaiveDateTime) -> i64 {
        let Some(due) = self.due_at else { return 0 };
        let end = self.returned_at.unwrap_or(now);
        (end.date() - due.date()).num_days().max(0)
    }
}

impl Event for Loan {
    const TABLE: &'static str = "fact_loan";
    const HAS_ITEM: bool = true;
    fn event_key(&self) -> &str {
        &self.event_key
    }
    fn reader(&self) -> Option<&ReaderRef> {
        Some(&self.reader)
    }
    fn item_mut(&mut self) -> Option<&mut String> {
        Some(&mut self.item_id)
    }
    fn rows(events: &[Keyed<Self>], now: NaiveDateTime) -> Result<RecordBatch, ArrowError> {
        let e = || events.iter().map(|k| &k.event);
        RecordBatch::try_from_iter([
            ("event_key", text(e().map(|l| Some(&l.event_key)))),
            ("month", text(e().map(|l| Some(month(l.loaned_at))))),
            ("reader_key", text(events.iter().map(|k| k.reader_key.as_ref()))),
            ("item_id", text(e().map(|l| Some(&l.item_id)))),
            ("loaned_at", timestamps(e().map(|l| l.loaned_at))),
            ("due_at", optional_timestamps(e().map(|l| l.due_at))),
            ("returned_at", optional_timestamps(e().map(|l| l.returned_at))),
            ("renewals", int(e().map(|l| Some(l.renewals)))),
            ("overdue_days", int(e().map(|l| Some(l.overdue_days(now))))),
            ("branch", text(e().map(|l| l.branch.as_ref()))),
            ("source", text(e().map(|l| Some(&l.source)))),
        ])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub event_key: String,
    pub reader: ReaderRef,
    pub visited_at: NaiveDateTime,
    pub gate: Option<String>,
    pub branch: Option<String>,
    pub source: String,
}

impl Event for Visit {
    const TABLE: &'static str = "fact_visit";
    const HAS_ITEM: bool = false;
    fn event_key(&self) -> &str {
        &self.event_key
    }
    fn reader(&self) -> Option<&ReaderRef> {
        Some(&self.reader)
    }
    fn rows(events: &[Keyed<Self>], _now: NaiveDateTime) -> Result<RecordBatch, ArrowError> {
        let e = || events.iter().map(|k| &k.event);
        RecordBatch::try_from_iter([
            ("event_key", text(e().map(|v| Some(&v.event_key)))),
            ("month", text(e().map(|v| Some(month(v.visited_at))))),
            ("reader_key", text(events.iter().map(|k| k.reader_key.as_ref()))),
            ("visited_at", timestamps(e().map(|v| v.visited_at))),
            ("gate", text(e().map(|v| v.gate.as_ref()))),
            ("branch", text(e().map(|v| v.branch.as_ref()))),
            ("source", text(e().map(|v| Some(&v.source)))),
        ])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EresourceUse {
    pub event_key: String,
    pub reader: ReaderRef,
    pub used_at: NaiveDateTime,
    pub resource: String,
    pub path: Option<String>,
    pub bytes: Option<i64>,
    pub status: Option<i64>,
    pub source: String,
}

impl Event for EresourceUse {
    const TABLE: &'static str = "fact_eresource_use";
    const HAS_ITEM: bool = false;
    fn event_key(&self) -> &str {
        &self.event_key
    }
    fn reader(&self) -> Option<&ReaderRef> {
        Some(&self.reader)
    }
    fn rows(events: &[Keyed<Self>], _now: NaiveDateTime) -> Result<RecordBatch, ArrowError> {
        let e = || events.iter().map(|k| &k.event);
        RecordBatch::try_from_iter([
            ("event_key", text(e().map(|u| Some(&u.event_key)))),
            ("month", text(e().map(|u| Some(month(u.used_at))))),
            ("reader_key", text(events.iter().map(|k| k.reader_key.as_ref()))),
            ("used_at", timestamps(e().map(|u| u.used_at))),
            ("resource", text(e().map(|u| Some(&u.resource)))),
            ("path", text(e().map(|u| u.path.as_ref()))),
            ("bytes", int(e().map(|u| u.bytes))),
            ("status", int(e().map(|u| u.status))),
            ("source", text(e().map(|u| Some(&u.source)))),
        ])
    }
}

/// Local times that may be missing, as the schema's microsecond timestamps.
fn optional_timestamps(values: impl IntoIterator<Item = Option<NaiveDateTime>>) -> datafusion::arrow::array::ArrayRef {
    std::sync::Arc::new(
        values
            .into_iter()
            .map(|t| t.map(|t| t.and_utc().timestamp_micros()))
            .collect::<datafusion::arrow::array::TimestampMicrosecondArray>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(10, 0, 0)).expect("valid date")
    }

    fn loan(due: Option<NaiveDateTime>, returned: Option<NaiveDateTime>) -> Loan {
        Loan {
            event_key: "k".into(),
            reader: ReaderRef::card("1"),
            item_id: "i".into(),
            loaned_at: at(2024, 3, 1),
            due_at: due,
            returned_at: returned,
            renewals: 0,
            branch: None,
            source: "t".into(),
        }
    }

    #[test]
    fn overdue_days_count_calendar_days_after_due() {
        let now = at(2024, 4, 10);
        assert_eq!(loan(Some(at(2024, 3, 20)), Some(at(2024, 3, 25))).overdue_days(now), 5);
        assert_eq!(loan(Some(at(2024, 3, 20)), Some(at(2024, 3, 19))).overdue_days(now), 0, "returned early");
        assert_eq!(loan(Some(at(2024, 4, 1)), None).overdue_days(now), 9, "still out: as of now");
        assert_eq!(loan(None, None).overdue_days(now), 0, "no due date");
    }

    #[test]
    fn hashed_keys_are_stable_and_tell_events_apart() {
        let a = hashed_key("koha", "loan", &["card 1", "item 2", "2024-03-01T10:00:00"]);
        assert_eq!(a, hashed_key("koha", "loan", &["card 1", "item 2", "2024-03-01T10:00:00"]));
        assert!(a.starts_with("koha:loan:"));
        assert_ne!(a, hashed_key("koha", "loan", &["card 1", "item 3", "2024-03-01T10:00:00"]));
        assert_ne!(hashed_key("s", "loan", &["ab", "c"]), hashed_key("s", "loan", &["a", "bc"]), "fields are separated");
    }
}
