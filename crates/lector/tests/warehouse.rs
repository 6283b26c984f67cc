//! End-to-end: `lector warehouse describe | sql | batches` on a warehouse a loader filled.

mod common;

use common::*;
use lector_warehouse::arrow::json::ReaderBuilder;
use lector_warehouse::{schema, NewBatch, Warehouse, WarehouseConfig};
use serde_json::json;
use std::path::Path;

/// Loads two loans into the warehouse under `root`, as a refresh would.
fn load_loans(root: &Path) {
    let def = schema::table("fact_loan").unwrap();
    let rows: Vec<_> = [("koha:issue:1", "2025-03-04T10:00:00", 1), ("koha:issue:2", "2025-04-01T09:00:00", 0)]
        .iter()
        .map(|(key, at, renewals)| {
            json!({ "event_key": key, "batch_id": 0, "month": &at[..7], "reader_key": "5f2c", "item_id": "39001",
                    "loaned_at": at, "renewals": renewals, "overdue_days": 0, "source": "koha" })
        })
        .collect();
    let mut decoder = ReaderBuilder::new(def.schema()).build_decoder().unwrap();
    decoder.serialize(&rows).unwrap();
    let batch = decoder.flush().unwrap().unwrap();
    tokio_runtime().block_on(async {
        let wh = Warehouse::open(WarehouseConfig::new(root)).await.unwrap();
        let new = NewBatch { source: "koha".into(), tables: vec![("fact_loan", vec![batch])], rows_in: 2, ..Default::default() };
        wh.write_batch(new).await.unwrap();
    });
}

#[test]
fn describe_sql_and_batches_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = lector(dir.path(), &["warehouse", "sql", "SELECT count(*) AS n FROM fact_loan", "--format", "json"]);
    assert!(empty.status.success(), "{}", stderr(&empty));
    let out: serde_json::Value = serde_json::from_str(&stdout(&empty)).unwrap();
    assert_eq!(out["rows"], json!([{ "n": 0 }]));
    assert!(dir.path().join("warehouse").is_dir(), "the default root is in the data dir");

    load_loans(&dir.path().join("warehouse"));

    let described = lector(dir.path(), &["warehouse", "describe", "--json"]);
    assert!(described.status.success(), "{}", stderr(&described));
    let dict: serde_json::Value = serde_json::from_str(&stdout(&described)).unwrap();
    assert_eq!(dict["batches"], 1);
    let loan = dict["tables"].as_array().unwrap().iter().find(|t| t["name"] == "fact_loan").unwrap();
    assert_eq!((loan["rows"].clone(), loan["kind"].clone()), (json!(2), json!("fact")));
    assert!(loan["columns"].as_array().unwrap().iter().any(|c| c["name"] == "reader_key" && c["zh"].as_str().unwrap().contains("读者键")));

    let text = lector(dir.path(), &["warehouse", "describe", "fact_loan"]);
    assert!(text.status.success() && stdout(&text).contains("fact_loan [fact]"), "{}", stdout(&text));

    let table =
        lector(dir.path(), &["warehouse", "sql", "SELECT month, sum(renewals) AS renewals FROM fact_loan GROUP BY month ORDER BY month"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let shown = stdout(&table);
    assert!(shown.contains("| 2025-03 | 1        |") && shown.contains("2 行 2 rows"), "{shown}");

    let csv = lector(dir.path(), &["warehouse", "sql", "SELECT event_key FROM fact_loan ORDER BY event_key", "--format", "csv"]);
    assert_eq!(stdout(&csv), "event_key\nkoha:issue:1\nkoha:issue:2\n");

    let batches = lector(dir.path(), &["warehouse", "batches", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&batches)).unwrap();
    assert_eq!((list[0]["id"].clone(), list[0]["source"].clone(), list[0]["rows_out"].clone()), (json!(1), json!("koha"), json!(2)));

    // Refusals and mistakes are one clear line each.
    let refused = lector(dir.path(), &["warehouse", "sql", "DROP TABLE fact_loan"]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains("只读") && err.contains("read-only queries only") && err.trim().lines().count() == 1, "{err}");
    let unknown = lector(dir.path(), &["warehouse", "sql", "SELECT * FROM fact_nothing"]);
    assert!(!unknown.status.success() && stderr(&unknown).contains("fact_nothing") && !stderr(&unknown).contains("panicked"));
}

#[test]
fn the_warehouse_section_of_the_configuration_applies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lector.toml"), "[warehouse]\nroot = \"elsewhere\"\nmax_rows = 3\n").unwrap();
    load_loans(&dir.path().join("elsewhere"));
    let o = lector(dir.path(), &["warehouse", "sql", "SELECT value FROM generate_series(1, 10)", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 4, "a header and three rows: {}", stdout(&o));
    assert!(stderr(&o).contains("cut at 3 rows"), "{}", stderr(&o));
    let counted = lector(dir.path(), &["warehouse", "sql", "SELECT count(*) AS n FROM fact_loan", "--format", "json"]);
    let out: serde_json::Value = serde_json::from_str(&stdout(&counted)).unwrap();
    assert_eq!(out["rows"][0]["n"], 2);
    assert!(!dir.path().join("warehouse").exists());

    let bad = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["warehouse", "batches"])
        .env("LECTOR_WAREHOUSE_MAX_ROWS", "0")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("warehouse.max_rows must be greater than 0"), "{}", stderr(&bad));
}
