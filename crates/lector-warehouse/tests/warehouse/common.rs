//! Rows and warehouses for the tests: batches are written as JSON objects in a table's schema.

use std::path::{Path, PathBuf};

use lector_warehouse::arrow::array::{Array, AsArray, RecordBatch};
use lector_warehouse::arrow::datatypes::Int64Type;
use lector_warehouse::arrow::json::ReaderBuilder;
use lector_warehouse::{schema, NewBatch, Warehouse, WarehouseConfig};
use serde_json::{json, Value};

pub async fn open(root: &Path) -> Warehouse {
    Warehouse::open(WarehouseConfig::new(root)).await.expect("open the warehouse")
}

pub async fn open_with(root: &Path, change: impl FnOnce(&mut WarehouseConfig)) -> Warehouse {
    let mut cfg = WarehouseConfig::new(root);
    change(&mut cfg);
    Warehouse::open(cfg).await.expect("open the warehouse")
}

/// `rows` (JSON objects with the table's columns; `batch_id` is added) as one record batch.
pub fn rows(table: &str, rows: &[Value]) -> RecordBatch {
    let def = schema::table(table).expect("a table of the schema");
    let mut reader = ReaderBuilder::new(def.schema()).build_decoder().expect("decoder");
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["batch_id"] = json!(0);
            r
        })
        .collect();
    reader.serialize(&rows).expect("rows fit the schema");
    reader.flush().expect("flush").expect("some rows")
}

/// A loan of `item` by `reader` at `loaned_at` (`YYYY-MM-DDTHH:MM:SS`) with `renewals`.
pub fn loan(key: &str, reader: &str, item: &str, loaned_at: &str, renewals: i64) -> Value {
    json!({
        "event_key": key,
        "month": &loaned_at[..7],
        "reader_key": reader,
        "item_id": item,
        "loaned_at": loaned_at,
        "due_at": null,
        "returned_at": null,
        "renewals": renewals,
        "overdue_days": 0,
        "branch": "总馆",
        "source": "test",
    })
}

/// A version of a reader valid from `valid_from`.
pub fn reader_version(key: &str, valid_from: &str, category: &str) -> Value {
    json!({ "reader_key": key, "valid_from": valid_from, "category": category, "status": "active" })
}

pub fn batch(source: &str, tables: Vec<(&'static str, Vec<RecordBatch>)>) -> NewBatch {
    let rows_in = tables.iter().flat_map(|(_, b)| b).map(|b| b.num_rows() as u64).sum();
    NewBatch { source: source.into(), tables, rows_in, ..Default::default() }
}

pub fn loans_batch(source: &str, loans: &[Value]) -> NewBatch {
    batch(source, vec![("fact_loan", vec![rows("fact_loan", loans)])])
}

/// The single integer a query returns.
pub async fn scalar(wh: &Warehouse, sql: &str) -> i64 {
    let result = wh.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batch = result.batches.iter().find(|b| b.num_rows() > 0).unwrap_or_else(|| panic!("{sql}: no rows"));
    let column = batch.column(0);
    assert!(!column.is_null(0), "{sql}: null");
    column.as_primitive_opt::<Int64Type>().unwrap_or_else(|| panic!("{sql}: not BIGINT")).value(0)
}

/// The query's rows as JSON objects.
pub async fn json_rows(wh: &Warehouse, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    wh.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).to_json_rows().expect("JSON rows")
}

/// Every file under `root` whose name ends with `suffix`, relative to `root`, sorted.
pub fn files(root: &Path, suffix: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    walk(root, &mut all);
    let mut names: Vec<String> = all
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .filter(|p| p.ends_with(suffix))
        .collect();
    names.sort();
    names
}
