//! Batches: files and records, duplicates and corrections, failures, crashes and two writers.

use std::time::{Duration, SystemTime};

use lector_warehouse::{NewBatch, QuarantinedEvent, WarehouseError};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::*;

#[tokio::test]
async fn a_batch_is_written_to_month_partitions_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let mut new = batch(
        "store",
        vec![
            (
                "fact_loan",
                vec![rows(
                    "fact_loan",
                    &[
                        loan("koha:issue:1", "r1", "i1", "2025-03-04T10:00:00", 0),
                        loan("koha:issue:2", "r2", "i2", "2025-04-01T09:30:00", 2),
                        loan("koha:issue:3", "r1", "i3", "2025-04-15T16:00:00", 1),
                    ],
                )],
            ),
            ("dim_reader", vec![rows("dim_reader", &[reader_version("r1", "2025-01-01T00:00:00", "undergraduate")])]),
        ],
    );
    new.watermark = Some(json!({ "loans": 3 }));
    let record = wh.write_batch(new).await.unwrap();

    assert_eq!(record.id, 1);
    assert_eq!((record.rows_in, record.rows_out, record.duplicates, record.corrections), (4, 4, 0, 0));
    let loans = record.table("fact_loan").unwrap();
    assert_eq!(loans.files, ["fact_loan/month=2025-03/b00000001-0.parquet", "fact_loan/month=2025-04/b00000001-1.parquet"]);
    assert_eq!(record.table("dim_reader").unwrap().files, ["dim_reader/b00000001-0.parquet"]);
    assert_eq!(files(dir.path(), ".json"), ["_batches/b00000001.json"]);
    assert!(files(dir.path(), ".lock").is_empty());

    // The checksum covers the files' bytes in record order.
    let mut sha = Sha256::new();
    for file in record.tables.iter().flat_map(|t| &t.files) {
        sha.update(std::fs::read(dir.path().join(file)).unwrap());
    }
    assert_eq!(record.checksum, hex::encode(sha.finalize()));

    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 3);
    assert_eq!(scalar(&wh, "SELECT sum(renewals) FROM fact_loan WHERE month = '2025-04'").await, 3);
    assert_eq!(scalar(&wh, "SELECT max(batch_id) FROM fact_loan").await, 1);
    let rows =
        json_rows(&wh, "SELECT l.item_id, r.category FROM fact_loan l JOIN dim_reader r USING (reader_key) ORDER BY l.item_id").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["category"], "undergraduate");

    // A second instance sees the same history.
    let again = open(dir.path()).await;
    assert_eq!(again.batches().await.unwrap(), vec![record]);
    assert_eq!(again.last_watermark("store").await.unwrap(), Some(json!({ "loans": 3 })));
    assert_eq!(again.last_watermark("koha").await.unwrap(), None);
}

#[tokio::test]
async fn duplicates_are_dropped_and_corrections_supersede() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let first = wh
        .write_batch(loans_batch(
            "koha",
            &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0), loan("k:2", "r2", "i2", "2025-03-02T10:00:00", 0)],
        ))
        .await
        .unwrap();
    assert_eq!(first.duplicates + first.corrections, 0);
    assert!(!wh.describe(Some("fact_loan")).await.unwrap().tables[0].latest_per_key);

    let second = wh
        .write_batch(loans_batch(
            "koha",
            &[
                loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0), // stored as is: a duplicate
                loan("k:2", "r2", "i2", "2025-03-02T10:00:00", 1), // renewed since: a correction
                loan("k:3", "r3", "i3", "2025-03-03T10:00:00", 0), // superseded in the same batch
                loan("k:3", "r3", "i3", "2025-03-03T10:00:00", 2),
            ],
        ))
        .await
        .unwrap();
    assert_eq!((second.duplicates, second.corrections, second.rows_out), (2, 1, 2));
    assert_eq!(second.table("fact_loan").unwrap().corrections, 1);

    // Three events, each as its latest batch has it.
    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 3);
    let rows = json_rows(&wh, "SELECT event_key, renewals, batch_id FROM fact_loan ORDER BY event_key").await;
    let seen: Vec<_> = rows.iter().map(|r| (r["event_key"].clone(), r["renewals"].clone(), r["batch_id"].clone())).collect();
    assert_eq!(seen, [(json!("k:1"), json!(0), json!(1)), (json!("k:2"), json!(1), json!(2)), (json!("k:3"), json!(2), json!(2))]);
    assert!(wh.describe(Some("fact_loan")).await.unwrap().tables[0].latest_per_key);

    // Loading the corrected state again changes nothing.
    let third = wh.write_batch(loans_batch("koha", &[loan("k:2", "r2", "i2", "2025-03-02T10:00:00", 1)])).await.unwrap();
    assert_eq!((third.duplicates, third.corrections, third.rows_out), (1, 0, 0));
    assert!(third.tables[0].files.is_empty());
    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 3);
}

#[tokio::test]
async fn a_batch_that_fails_halfway_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    // A file where the visit table's folder should be: the loan file is written, the visit file cannot be.
    std::fs::write(dir.path().join("fact_visit"), b"in the way").unwrap();
    let visit =
        json!({ "event_key": "gate:1", "month": "2025-03", "reader_key": "r1", "visited_at": "2025-03-01T08:00:00", "source": "gate" });
    let failing = batch(
        "store",
        vec![
            ("fact_loan", vec![rows("fact_loan", &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0)])]),
            ("fact_visit", vec![rows("fact_visit", &[visit])]),
        ],
    );
    let err = wh.write_batch(failing.clone()).await.unwrap_err();
    assert!(matches!(err, WarehouseError::Storage { .. }), "{err}");
    assert!(files(dir.path(), ".parquet").is_empty(), "{:?}", files(dir.path(), ""));
    assert_eq!(files(dir.path(), ""), ["fact_visit"]);
    assert!(wh.batches().await.unwrap().is_empty());

    // A bad schema on the second table is refused before anything is written, naming the column.
    std::fs::remove_file(dir.path().join("fact_visit")).unwrap();
    let mut bad = failing;
    bad.tables[1] = ("fact_visit", vec![rows("fact_loan", &[loan("k:2", "r1", "i1", "2025-03-01T10:00:00", 0)])]);
    let err = wh.write_batch(bad).await.unwrap_err().to_string();
    assert!(err.contains("fact_visit") && err.contains("item_id"), "{err}");
    assert!(files(dir.path(), ".parquet").is_empty());
    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 0);
}

#[tokio::test]
async fn rows_that_do_not_fit_the_schema_are_refused_by_column() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let mut wrong_month = loan("k:1", "r1", "i1", "2025-03-31T23:00:00", 0);
    wrong_month["month"] = json!("2025-04");
    let err = wh.write_batch(loans_batch("x", &[wrong_month])).await.unwrap_err().to_string();
    assert!(err.contains("month is '2025-04' but loaned_at is in 2025-03"), "{err}");

    let renamed = rows("fact_loan", &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0)]);
    let mut fields: Vec<_> = renamed.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[4] = fields[4].clone().with_name("item");
    let renamed = lector_warehouse::arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(lector_warehouse::arrow::datatypes::Schema::new(fields)),
        renamed.columns().to_vec(),
    )
    .unwrap();
    let err = wh.write_batch(batch("x", vec![("fact_loan", vec![renamed])])).await.unwrap_err().to_string();
    assert!(err.contains("has no column item"), "{err}");

    let err = wh.write_batch(batch("x", vec![("dim_date", vec![])])).await.unwrap_err().to_string();
    assert!(err.contains("generated"), "{err}");
    assert!(wh.batches().await.unwrap().is_empty());
}

#[tokio::test]
async fn leftovers_of_a_crash_are_invisible_and_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let record = wh.write_batch(loans_batch("koha", &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0)])).await.unwrap();
    let committed = dir.path().join(&record.tables[0].files[0]);
    let partition = committed.parent().unwrap().to_path_buf();

    // Batch 2 crashed after its files (no lock left); batch 3 died long ago holding its lock;
    // batch 4 is being written right now by another process.
    for id in [2, 3, 4] {
        std::fs::copy(&committed, partition.join(format!("b{id:08}-0.parquet"))).unwrap();
    }
    let batches = dir.path().join("_batches");
    std::fs::write(batches.join("b00000003.lock"), "{}").unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    std::fs::File::options().write(true).open(batches.join("b00000003.lock")).unwrap().set_modified(long_ago).unwrap();
    std::fs::write(batches.join("b00000004.lock"), "{}").unwrap();

    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 1, "uncommitted files are invisible");
    let reopened = open(dir.path()).await;
    assert_eq!(
        files(dir.path(), ".parquet"),
        ["fact_loan/month=2025-03/b00000001-0.parquet", "fact_loan/month=2025-03/b00000004-0.parquet"]
    );
    assert_eq!(files(dir.path(), ".lock"), ["_batches/b00000004.lock"]);
    assert_eq!(scalar(&reopened, "SELECT count(*) FROM fact_loan").await, 1);

    // The id of the writer at work stays reserved.
    let next = reopened.write_batch(loans_batch("koha", &[loan("k:2", "r1", "i2", "2025-03-02T10:00:00", 0)])).await.unwrap();
    assert_eq!(next.id, 5);
    assert!(next.concurrent, "a batch written beside another writer says so");
    assert_eq!(scalar(&reopened, "SELECT count(*) FROM fact_loan").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_get_distinct_ids_and_both_batches_count() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(dir.path()).await, open(dir.path()).await);
    // Both load k:shared with the same content; each has events of its own.
    let from_a =
        loans_batch("a", &[loan("k:shared", "r1", "i1", "2025-03-01T10:00:00", 0), loan("k:a", "r1", "i2", "2025-03-02T10:00:00", 0)]);
    let from_b =
        loans_batch("b", &[loan("k:shared", "r1", "i1", "2025-03-01T10:00:00", 0), loan("k:b", "r2", "i3", "2025-04-02T10:00:00", 0)]);
    let (ra, rb) = tokio::join!(a.write_batch(from_a), b.write_batch(from_b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_ne!(ra.id, rb.id);
    let mut ids = vec![ra.id, rb.id];
    ids.sort();
    assert_eq!(ids, [1, 2]);
    assert_eq!(a.batches().await.unwrap().len(), 2);
    assert_eq!(b.batches().await.unwrap().len(), 2);
    // However the two interleaved, every event counts once.
    assert_eq!(scalar(&a, "SELECT count(*) FROM fact_loan").await, 3);
    assert_eq!(scalar(&b, "SELECT count(DISTINCT event_key) FROM fact_loan").await, 3);
    assert!(files(dir.path(), ".lock").is_empty());
}

#[tokio::test]
async fn an_empty_batch_is_recorded_so_its_watermark_advances() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let record =
        wh.write_batch(NewBatch { source: "store".into(), watermark: Some(json!("2025-03-01")), ..Default::default() }).await.unwrap();
    assert!(record.tables.is_empty() && record.quarantine_file.is_none());
    assert_eq!(record.checksum, hex::encode(Sha256::digest(b"")));
    assert!(files(dir.path(), ".parquet").is_empty());
    let later =
        wh.write_batch(NewBatch { source: "store".into(), watermark: Some(json!("2025-03-02")), ..Default::default() }).await.unwrap();
    assert_eq!(later.id, 2);
    assert_eq!(wh.last_watermark("store").await.unwrap(), Some(json!("2025-03-02")));
}

#[tokio::test]
async fn quarantined_events_are_kept_for_admins_and_out_of_sql() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let held = QuarantinedEvent {
        table: "fact_loan",
        event_key: "koha:issue:9".into(),
        reason: "unknown reader".into(),
        record: json!({ "cardnumber": "20250001", "itemnumber": 5 }),
    };
    let mut new = loans_batch("koha", &[loan("koha:issue:1", "r1", "i1", "2025-03-01T10:00:00", 0)]);
    new.quarantine = vec![held.clone()];
    let record = wh.write_batch(new).await.unwrap();
    assert_eq!(record.quarantined, 1);
    assert_eq!(record.quarantine_file.as_deref(), Some("_quarantine/b00000001-0.parquet"));
    assert_eq!(wh.quarantine().await.unwrap(), vec![held]);

    let err = wh.sql("SELECT * FROM _quarantine").await.unwrap_err().to_string();
    assert!(err.contains("_quarantine") && err.contains("not found"), "{err}");
    let tables = json_rows(&wh, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").await;
    assert!(!tables.is_empty() && tables.iter().all(|t| !t["table_name"].as_str().unwrap().starts_with('_')), "{tables:?}");

    let bad = NewBatch {
        source: "koha".into(),
        quarantine: vec![QuarantinedEvent { table: "fact_nothing", ..wh.quarantine().await.unwrap()[0].clone() }],
        ..Default::default()
    };
    assert!(wh.write_batch(bad).await.unwrap_err().to_string().contains("fact_nothing"));
}
