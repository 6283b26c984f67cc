//! Analyst SQL: read-only, within its limits, over views that answer "as of" questions.

use std::time::{Duration, Instant};

use lector_warehouse::WarehouseError;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn an_empty_warehouse_answers_with_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 0);
    let result = wh.sql("SELECT * FROM dim_reader").await.unwrap();
    assert_eq!(result.row_count(), 0);
    assert!(result.columns.iter().any(|c| c == "valid_to") && result.columns.iter().any(|c| c == "is_current"), "{:?}", result.columns);
    assert_eq!(result.to_csv().unwrap().lines().next().unwrap(), result.columns.join(","));
    // The date dimension spans the years around today.
    assert!(scalar(&wh, "SELECT count(*) FROM dim_date").await >= 365 * 3);
}

#[tokio::test]
async fn the_reader_dimension_has_validity_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let dim = |versions: &[serde_json::Value]| batch("store", vec![("dim_reader", vec![rows("dim_reader", versions)])]);
    wh.write_batch(dim(&[
        reader_version("r1", "2025-01-01T00:00:00", "undergraduate"),
        reader_version("r2", "2025-01-05T00:00:00", "teacher"),
    ]))
    .await
    .unwrap();
    wh.write_batch(dim(&[reader_version("r1", "2025-02-01T00:00:00", "graduate")])).await.unwrap();

    let rows =
        json_rows(&wh, "SELECT reader_key, category, valid_from, valid_to, is_current FROM dim_reader ORDER BY reader_key, valid_from")
            .await;
    let seen: Vec<_> =
        rows.iter().map(|r| (r["reader_key"].clone(), r["category"].clone(), r["valid_to"].clone(), r["is_current"].clone())).collect();
    assert_eq!(
        seen,
        [
            (json!("r1"), json!("undergraduate"), json!("2025-02-01T00:00:00"), json!(false)),
            (json!("r1"), json!("graduate"), json!(null), json!(true)),
            (json!("r2"), json!("teacher"), json!(null), json!(true)),
        ]
    );
    // "As of" a date: the version valid then.
    let asof = json_rows(
        &wh,
        "SELECT category FROM dim_reader WHERE reader_key = 'r1' AND valid_from <= TIMESTAMP '2025-01-15 00:00:00' \
         AND (valid_to IS NULL OR valid_to > TIMESTAMP '2025-01-15 00:00:00')",
    )
    .await;
    assert_eq!(asof.len(), 1);
    assert_eq!(asof[0]["category"], "undergraduate");
}

#[tokio::test]
async fn the_date_dimension_covers_the_years_of_the_facts() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    wh.write_batch(loans_batch(
        "x",
        &[loan("k:1", "r1", "i1", "2019-06-01T10:00:00", 0), loan("k:2", "r1", "i1", "2021-02-01T10:00:00", 0)],
    ))
    .await
    .unwrap();
    assert_eq!(scalar(&wh, "SELECT count(*) FROM dim_date").await, 365 + 366 + 365);
    assert_eq!(scalar(&wh, "SELECT min(year) FROM dim_date").await, 2019);
    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan l JOIN dim_date d ON d.ym = l.month AND d.day = 1").await, 2);
    let info = wh.describe(Some("dim_date")).await.unwrap();
    assert_eq!((info.tables[0].kind, info.tables[0].rows), ("generated", 1096));
}

#[tokio::test]
async fn only_read_only_queries_run() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    wh.write_batch(loans_batch("x", &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0)])).await.unwrap();
    for sql in [
        "INSERT INTO fact_loan SELECT * FROM fact_loan",
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
        "COPY fact_loan TO '/tmp/stolen.parquet'",
        "DROP TABLE fact_loan",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; DROP TABLE fact_loan",
        "CREATE TABLE t AS SELECT 1",
        "DELETE FROM fact_loan",
    ] {
        match wh.sql(sql).await {
            Err(WarehouseError::Refused(m)) => {
                assert!(m.zh.contains("只读") && m.en.contains("read-only") || m.en.contains("one query"), "{sql}: {m}")
            }
            other => panic!("{sql} was not refused: {other:?}"),
        }
    }
    // A query that would create a table is stopped by the planner's options.
    assert!(matches!(wh.sql("SELECT 1 AS x INTO t").await, Err(WarehouseError::Refused(_))));
    // Files cannot be read as tables, nor through table functions.
    for sql in [
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'file:///etc/passwd'",
    ] {
        let err = wh.sql(sql).await.unwrap_err();
        assert!(matches!(err, WarehouseError::Query(_)), "{sql}: {err:?}");
        assert!(!err.to_string().contains("root:"), "{sql}: {err}");
    }
    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 1);
    assert!(!std::path::Path::new("/tmp/stolen.parquet").exists());
}

#[tokio::test]
async fn mistakes_in_queries_get_datafusions_message() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let err = wh.sql("SELECT no_such_column FROM fact_loan").await.unwrap_err().to_string();
    assert!(err.starts_with("查询失败 (query failed)") && err.contains("no_such_column"), "{err}");
    let err = wh.sql("SELEC 1").await.unwrap_err().to_string();
    assert!(err.contains("SELEC"), "{err}");
}

#[tokio::test]
async fn a_query_over_the_memory_limit_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open_with(dir.path(), |c| c.memory_limit_mb = 1).await;
    let sql = "SELECT max(a.value + b.value) FROM generate_series(1, 2000000) a CROSS JOIN generate_series(1, 3) b";
    match wh.sql(sql).await {
        Err(e @ WarehouseError::MemoryLimit { limit_mb: 1, .. }) => assert!(e.to_string().contains("memory limit of 1 MB"), "{e}"),
        other => panic!("expected the memory limit: {other:?}"),
    }
    // Small queries still run under the same limit.
    assert_eq!(scalar(&wh, "SELECT count(*) FROM fact_loan").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_time_limit_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open_with(dir.path(), |c| c.query_timeout_secs = 1).await;
    let started = Instant::now();
    let sql = "SELECT max(a.value * b.value) FROM generate_series(1, 300000) a CROSS JOIN generate_series(1, 300000) b";
    match wh.sql(sql).await {
        Err(e @ WarehouseError::Timeout { secs: 1 }) => assert!(e.to_string().contains("time limit of 1 s"), "{e}"),
        other => panic!("expected the time limit: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20), "stopped after {:?}", started.elapsed());
}

#[tokio::test]
async fn results_are_capped_at_max_rows() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open_with(dir.path(), |c| c.max_rows = 5).await;
    let capped = wh.sql("SELECT value FROM generate_series(1, 100) ORDER BY value").await.unwrap();
    assert_eq!((capped.row_count(), capped.truncated), (5, true));
    assert_eq!(capped.to_json_rows().unwrap().last().unwrap()["value"], 5);
    let exact = wh.sql("SELECT value FROM generate_series(1, 5)").await.unwrap();
    assert_eq!((exact.row_count(), exact.truncated), (5, false));
    let table = exact.to_text_table().unwrap();
    assert!(table.contains("| value |") && table.contains("| 5     |"), "{table}");
}

#[tokio::test]
async fn a_damaged_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let record = wh.write_batch(loans_batch("x", &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0)])).await.unwrap();
    let file = dir.path().join(&record.tables[0].files[0]);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    match wh.sql("SELECT count(*), max(renewals) FROM fact_loan").await {
        Err(e @ WarehouseError::Corrupt { .. }) => assert!(e.to_string().contains(&file.display().to_string()), "{e}"),
        other => panic!("expected a corrupt file: {other:?}"),
    }
}

#[tokio::test]
async fn the_dictionary_describes_tables_and_their_loads() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let empty = wh.describe(None).await.unwrap();
    assert_eq!(empty.batches, 0);
    assert_eq!(empty.tables.len(), lector_warehouse::schema::tables().len());
    assert!(empty.tables.iter().all(|t| t.rows == 0 || t.kind == "generated"));

    wh.write_batch(loans_batch(
        "x",
        &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0), loan("k:2", "r1", "i1", "2025-04-01T10:00:00", 0)],
    ))
    .await
    .unwrap();
    wh.write_batch(loans_batch("x", &[loan("k:3", "r1", "i1", "2025-04-02T10:00:00", 0)])).await.unwrap();
    let dict = wh.describe(Some("fact_loan")).await.unwrap();
    let loan = &dict.tables[0];
    assert_eq!((loan.rows, loan.batches, loan.kind, loan.time_column), (3, 2, "fact", Some("loaned_at")));
    assert!(loan.age_secs.is_some_and(|s| (0..600).contains(&s)));
    assert!(loan.columns.iter().any(|c| c.name == "event_key" && c.sql_type == "VARCHAR" && !c.nullable));
    let text = dict.to_text();
    assert!(text.contains("fact_loan [fact]") && text.contains("3 行 rows · 2 个批次 batches"), "{text}");

    let readers = wh.describe(Some("dim_reader")).await.unwrap();
    assert!(readers.tables[0].columns.iter().any(|c| c.name == "is_current" && c.computed));
    assert!(wh.describe(Some("fact_nothing")).await.unwrap_err().to_string().contains("no table named fact_nothing"));
    let json = serde_json::to_value(wh.describe(None).await.unwrap()).unwrap();
    assert_eq!(json["batches"], 2);
    assert_eq!(json["rules"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_on_spawned_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let wh = std::sync::Arc::new(open(dir.path()).await);
    let writer = wh.clone();
    let written = tokio::spawn(async move {
        let record = writer.write_batch(loans_batch("x", &[loan("k:1", "r1", "i1", "2025-03-01T10:00:00", 0)])).await?;
        writer.last_watermark("x").await?;
        Ok::<_, WarehouseError>(record)
    });
    assert_eq!(written.await.unwrap().unwrap().id, 1);
    let reader = wh.clone();
    let counted = tokio::spawn(async move {
        reader.batches().await?;
        reader.quarantine().await?;
        reader.describe(None).await?;
        reader.sql("SELECT count(*) FROM fact_loan").await
    });
    assert_eq!(counted.await.unwrap().unwrap().row_count(), 1);
}
