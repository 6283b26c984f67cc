//! Item files as `dim_item` versions: the item's id, barcode, title, CLC class (中图法分类号,
//! from a class column or the leading class of the call number) and holding branch. Each load
//! appends a version per item, valid from the load.

use chrono::NaiveDateTime;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use lector_store::reader_refs::ReaderRef;
use serde::{Deserialize, Serialize};

use super::circulation::{Parse, Rows, Table};
use super::events::{Event, Keyed};
use super::fields::{Column, Row};
use super::{Result, RowError};
use crate::etl::columns::{text, timestamps};

/// The 22 top classes of the Chinese Library Classification.
const CLC_TOP_CLASSES: &str = "ABCDEFGHIJKNOPQRSTUVXZ";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub item_id: String,
    pub barcode: Option<String>,
    pub title: Option<String>,
    pub clc_class: Option<String>,
    pub branch: Option<String>,
    pub valid_from: NaiveDateTime,
}

impl Event for Item {
    const TABLE: &'static str = "dim_item";
    const HAS_ITEM: bool = false;
    fn event_key(&self) -> &str {
        &self.item_id
    }
    fn reader(&self) -> Option<&ReaderRef> {
        None
    }
    fn rows(events: &[Keyed<Self>], _now: NaiveDateTime) -> Result<RecordBatch, ArrowError> {
        let e = || events.iter().map(|k| &k.event);
        RecordBatch::try_from_iter([
            ("item_id", text(e().map(|i| Some(&i.item_id)))),
            ("valid_from", timestamps(e().map(|i| i.valid_from))),
            ("barcode", text(e().map(|i| i.barcode.as_ref()))),
            ("title", text(e().map(|i| i.title.as_ref()))),
            ("clc_class", text(e().map(|i| i.clc_class.as_ref()))),
            ("clc_top", text(e().map(|i| i.clc_class.as_deref().and_then(clc_top)))),
            ("branch", text(e().map(|i| i.branch.as_ref()))),
        ])
    }
}

/// The CLC class of a call number `TP312.8/123`: the part before `/`, up to the first
/// character that is no letter, digit, `.` or `-`.
fn clc_class(call_number: &str) -> Option<String> {
    let head = call_number.split('/').next().unwrap_or_default().trim();
    let end = head.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')).unwrap_or(head.len());
    let class = head[..end].trim_end_matches(['.', '-']).to_ascii_uppercase();
    (!class.is_empty()).then_some(class)
}

/// The top class of a CLC class: its first letter when that is one of the 22.
fn clc_top(class: &str) -> Option<String> {
    class.chars().next().map(|c| c.to_ascii_uppercase()).filter(|c| CLC_TOP_CLASSES.contains(*c)).map(String::from)
}

/// The columns of an items file.
pub struct ItemParser {
    /// The item number, or the barcode when the file has no item numbers.
    id: Column,
    barcode: Option<Column>,
    title: Option<Column>,
    class: Option<Column>,
    call_number: Option<Column>,
    branch: Option<Column>,
    now: NaiveDateTime,
}

/// The items of `table`; an item without an id column is known by its barcode.
pub fn rows(table: Table, now: NaiveDateTime) -> Result<Rows<ItemParser>> {
    let h = &table.headers;
    let parser = ItemParser {
        id: h.require(&["itemnumber", "item_id", "单册号", "barcode", "条码"])?,
        barcode: h.find(&["barcode", "条码"]),
        title: h.find(&["title", "题名", "书名"]),
        class: h.find(&["clc_class", "分类号", "中图分类号"]),
        call_number: h.find(&["itemcallnumber", "call_number", "索书号"]),
        branch: h.find(&["homebranch", "branch", "馆藏地", "分馆"]),
        now,
    };
    Ok(Rows { table, parser })
}

impl Parse<Item> for ItemParser {
    fn parse(&self, row: &Row) -> Result<Item, RowError> {
        let barcode = row.get(self.barcode.as_ref()).map(str::to_string);
        let item_id = row.required(&self.id)?.to_string();
        let clc = row.get(self.class.as_ref()).and_then(clc_class).or_else(|| row.get(self.call_number.as_ref()).and_then(clc_class));
        Ok(Item {
            item_id,
            barcode,
            title: row.get(self.title.as_ref()).map(str::to_string),
            clc_class: clc,
            branch: row.get(self.branch.as_ref()).map(str::to_string),
            valid_from: self.now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_is_the_head_of_the_call_number() {
        assert_eq!(clc_class("TP312.8/123").as_deref(), Some("TP312.8"));
        assert_eq!(clc_class(" i247.5/1234:2 ").as_deref(), Some("I247.5"));
        assert_eq!(clc_class("/12"), None);
    }

    #[test]
    fn the_top_class_is_one_of_the_twenty_two_letters() {
        assert_eq!(clc_top("TP312").as_deref(), Some("T"));
        assert_eq!(clc_top("Z88").as_deref(), Some("Z"));
        assert_eq!(clc_top("L12"), None, "L is no CLC top class");
        assert_eq!(clc_top("123"), None);
    }
}
