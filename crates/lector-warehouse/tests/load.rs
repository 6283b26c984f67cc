//! Loading circulation files: Koha and plain loans, gate logs, EZproxy logs and items into a
//! warehouse beside a SQLite store seeded with readers (some imported from a Koha-like source,
//! so their `borrowernumber`s are known).

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use lector_store::domain::import::{ImportOptions, IncomingReader, JobStatus, ReaderField};
use lector_store::domain::reader::ReaderDraft;
use lector_store::imports::NewImportJob;
use lector_store::{Actor, Store};
use lector_warehouse::load::{self, LoadError, LoadKind, LoadOptions, LoadReport};
use lector_warehouse::reader_key::ReaderKeyer;
use lector_warehouse::{Warehouse, WarehouseConfig};
use serde_json::Value;
use tempfile::TempDir;

/// The store, the warehouse and a folder for the files, all temporary.
struct Fixture {
    dir: TempDir,
    store: Store,
    wh: Warehouse,
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 1).expect("valid date")
}

/// The fixed "now" of the loads, so overdue days and plausible dates never drift.
fn now() -> NaiveDateTime {
    today().and_hms_opt(12, 0, 0).expect("valid time")
}

fn actor() -> Actor {
    Actor::system("test")
}

fn draft(card: &str) -> ReaderDraft {
    ReaderDraft { card_no: card.into(), name: format!("读者{card}"), category: "undergraduate".into(), ..Default::default() }
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("lector.db").display())).await.expect("open the store");
        let wh = Warehouse::open(WarehouseConfig::new(dir.path().join("warehouse"))).await.expect("open the warehouse");
        Fixture { dir, store, wh }
    }

    /// Creates the reader with card `card`; its id.
    async fn reader(&self, card: &str) -> i64 {
        let input = draft(card).parse(today()).expect("a valid draft");
        self.store.create_reader(&actor(), &input).await.expect("create a reader").id
    }

    /// Imports readers `(external id, card)` from source `source`, as lector-import does.
    async fn import(&self, source: &str, readers: &[(&str, &str)]) {
        let new = NewImportJob {
            source: source.into(),
            format: "csv".into(),
            label: "borrowers.csv".into(),
            options: ImportOptions::default(),
            dry_run: false,
            spec: serde_json::json!({ "kind": "file", "path": "/data/borrowers.csv" }),
        };
        let job = self.store.create_import_job(&actor(), &new, JobStatus::Running).await.expect("create the import job");
        let mapped = vec![ReaderField::CardNo, ReaderField::Name, ReaderField::Category];
        let rows: Vec<IncomingReader> = readers
            .iter()
            .enumerate()
            .map(|(i, (id, card))| IncomingReader {
                row: i as u64 + 2,
                external_id: id.to_string(),
                input: draft(card).parse(today()).expect("a valid draft"),
                mapped: mapped.clone(),
                present: mapped.clone(),
                mapped_attributes: vec![],
            })
            .collect();
        let mut writer = self.store.begin_import(&job).await.expect("begin the import");
        writer.apply(&rows).await.expect("apply the rows");
        writer.finish().await.expect("finish the import");
    }

    async fn id_of(&self, card: &str) -> i64 {
        self.store.reader_by_card(card).await.expect("the reader exists").id
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write the file");
        path
    }

    async fn load(&self, kind: LoadKind, path: &Path) -> Result<LoadReport, LoadError> {
        load::load_file(&self.store, &self.wh, kind, path, &LoadOptions { now: now(), ..LoadOptions::default() }).await
    }

    async fn rows(&self, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        self.wh.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).to_json_rows().expect("JSON rows")
    }

    async fn keyer(&self) -> ReaderKeyer {
        ReaderKeyer::from_store(&self.store).await.expect("the reader key secret")
    }
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "the text fits GBK");
    bytes.into_owned()
}

const KOHA_ISSUES: &str = "issue_id,borrowernumber,itemnumber,issuedate,date_due,returndate,renewals_count,branchcode
9001,101,5001,2024-03-01 10:00:00,2024-03-15 23:59:00,2024-03-20 09:30:00,1,总馆中文图书借阅区
9002,102,5002,2024-03-02 14:03:00,2024-03-16 23:59:00,2024-03-10 16:00:00,0,东区分馆自然科学书库
9003,101,5003,2024-05-20 11:00:00,2024-05-25 23:59:00,,2,总馆中文图书借阅区
";

#[tokio::test]
async fn a_koha_issues_export_in_gbk_is_loaded_with_reader_keys_and_overdue_days() {
    let f = Fixture::new().await;
    f.import("koha", &[("101", "K0101"), ("102", "K0102")]).await;
    let path = f.file("issues.csv", &gbk(KOHA_ISSUES));

    let report = f.load(LoadKind::Loans, &path).await.expect("the file loads");
    assert_eq!((report.rows_in, report.loaded, report.duplicates, report.quarantined, report.rejected), (3, 3, 0, 0, 0));
    assert_eq!(report.source, "koha");

    let keys = f.keyer().await;
    let (r101, r102) = (keys.key(f.id_of("K0101").await), keys.key(f.id_of("K0102").await));
    let rows =
        f.rows("SELECT event_key, reader_key, item_id, renewals, overdue_days, branch, month FROM fact_loan ORDER BY event_key").await;
    let got: Vec<(&str, &str, &str, i64, i64, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["event_key"].as_str().unwrap_or_default(),
                r["reader_key"].as_str().unwrap_or_default(),
                r["item_id"].as_str().unwrap_or_default(),
                r["renewals"].as_i64().unwrap_or(-1),
                r["overdue_days"].as_i64().unwrap_or(-1),
                r["branch"].as_str().unwrap_or_default(),
                r["month"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("koha:issue:9001", r101.as_str(), "5001", 1, 5, "总馆中文图书借阅区", "2024-03"),
            ("koha:issue:9002", r102.as_str(), "5002", 0, 0, "东区分馆自然科学书库", "2024-03"),
            // Still out on 2024-06-01, due 2024-05-25: seven days overdue as of the load.
            ("koha:issue:9003", r101.as_str(), "5003", 2, 7, "总馆中文图书借阅区", "2024-05"),
        ]
    );

    let again = f.load(LoadKind::Loans, &path).await.expect("the file loads again");
    assert_eq!((again.rows_in, again.loaded, again.duplicates), (3, 0, 3), "a file loaded twice is stored once");
    assert_ne!(again.batch_id, report.batch_id);
    assert_eq!(f.rows("SELECT COUNT(*) AS n FROM fact_loan").await[0]["n"], 3);
}

#[tokio::test]
async fn a_loan_of_an_unknown_card_is_quarantined_until_the_reader_exists() {
    let f = Fixture::new().await;
    f.reader("A0001").await;
    // Full-width, lower-case and padded card numbers are compared as the store keeps them.
    let csv = "读者证号,条码,借出时间,应还时间,归还时间,续借次数,馆藏地
 ａ0001 ,B1,2024/3/5 14:03,2024/3/19 14:03,2024/3/18 10:00,0,总馆
X9999,B2,2024年3月6日,2024年3月20日,,0,总馆
";
    let path = f.file("loans.csv", csv.as_bytes());
    let report = f.load(LoadKind::Loans, &path).await.expect("the file loads");
    assert_eq!((report.rows_in, report.loaded, report.quarantined, report.rejected), (2, 1, 1, 0));
    assert_eq!(report.source, "file");

    let pending = load::pending_quarantine(&f.wh).await.expect("the quarantine");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].table, "fact_loan");
    assert!(pending[0].reason.contains("unknown reader card X9999"), "{}", pending[0].reason);
    assert_eq!(pending[0].record["row"], 3);
    assert_eq!(pending[0].record["fields"]["条码"], "B2");

    let nothing = load::retry_quarantine(&f.store, &f.wh, now()).await.expect("a retry");
    assert_eq!((nothing.batch_id, nothing.pending, nothing.loaded, nothing.still_pending), (None, 1, 0, 1), "the reader is still unknown");

    let id = f.reader("X9999").await;
    let retried = load::retry_quarantine(&f.store, &f.wh, now()).await.expect("a retry");
    assert!(retried.batch_id.is_some());
    assert_eq!((retried.pending, retried.loaded, retried.still_pending), (1, 1, 0));
    assert!(load::pending_quarantine(&f.wh).await.expect("the quarantine").is_empty(), "a loaded event is no longer pending");
    let rows = f.rows("SELECT reader_key, item_id, overdue_days FROM fact_loan WHERE item_id = 'B2'").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["reader_key"], f.keyer().await.key(id).as_str());
    // Due 2024-03-20 and still out on 2024-06-01.
    assert_eq!(rows[0]["overdue_days"], 73);

    let after = load::retry_quarantine(&f.store, &f.wh, now()).await.expect("a retry");
    assert_eq!((after.batch_id, after.pending), (None, 0), "an event retried once is not retried again");
    assert_eq!(f.rows("SELECT COUNT(*) AS n FROM fact_loan").await[0]["n"], 2);
}

#[tokio::test]
async fn impossible_dates_are_rejected_with_their_row() {
    let f = Fixture::new().await;
    f.reader("A0001").await;
    let csv = "card_no,item_id,loaned_at,due_at,returned_at
A0001,I1,2024-03-05 10:00,2024-03-19 10:00,2024-03-10 10:00
A0001,I2,2024-03-05 10:00,2024-03-19 10:00,2024-03-01 10:00
A0001,I3,1899-03-05,,
A0001,I4,2030-01-01,,
";
    let path = f.file("loans.csv", csv.as_bytes());
    let report = f.load(LoadKind::Loans, &path).await.expect("the valid row loads");
    assert_eq!((report.rows_in, report.loaded, report.rejected), (4, 1, 3));
    let errors: Vec<(u64, &str)> = report.errors.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(errors, [(3, "returned_at"), (4, "loaned_at"), (5, "loaned_at")]);
    assert_eq!(report.errors[0].value, "2024-03-01 10:00");
    assert!(report.errors[0].reason.en.contains("returned before"), "{}", report.errors[0].reason);
    let batch = f.wh.batches().await.expect("batches").pop().expect("one batch");
    assert_eq!((batch.rows_in, batch.rejected), (4, 3));
}

#[tokio::test]
async fn an_ezproxy_log_is_loaded_as_e_resource_use_by_host() {
    let f = Fixture::new().await;
    let id = f.reader("20240001").await;
    let log = concat!(
        "10.1.2.3 - 20240001 [05/Mar/2024:14:03:00 +0800] \"GET https://www.jstor.org/stable/123?seq=1 HTTP/1.1\" 200 5120 \"-\" \"Mozilla\"\n",
        "10.1.2.3 - 20240001 [05/Mar/2024:14:04:10 +0800] \"GET http://kns.cnki.net:80/kcms/detail HTTP/1.1\" 302 -\n",
        "10.1.2.4 - - [05/Mar/2024:14:05:00 +0800] \"GET http://kns.cnki.net/ HTTP/1.1\" 200 10\n",
    );
    let path = f.file("ezproxy.log", log.as_bytes());
    let report = f.load(LoadKind::Eresource, &path).await.expect("the log loads");
    assert_eq!((report.rows_in, report.loaded, report.rejected), (3, 2, 1));
    assert_eq!((report.errors[0].row, report.errors[0].column.as_str()), (3, "%u"));
    let rows = f
        .rows("SELECT reader_key, resource, path, status, bytes, CAST(used_at AS VARCHAR) AS at FROM fact_eresource_use ORDER BY used_at")
        .await;
    let key = f.keyer().await.key(id);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["resource"].as_str(), rows[0]["path"].as_str(), rows[0]["bytes"].as_i64()),
        (Some("www.jstor.org"), Some("/stable/123"), Some(5120))
    );
    assert_eq!(
        (rows[1]["resource"].as_str(), rows[1]["status"].as_i64(), rows[1]["bytes"].as_i64()),
        (Some("kns.cnki.net"), Some(302), None)
    );
    assert!(rows.iter().all(|r| r["reader_key"] == key.as_str()));
    assert!(
        rows[0]["at"].as_str().is_some_and(|t| t.starts_with("2024-03-05T14:03:00") || t.starts_with("2024-03-05 14:03:00")),
        "{:?}",
        rows[0]["at"]
    );
}

#[tokio::test]
async fn a_gate_log_is_loaded_as_visits() {
    let f = Fixture::new().await;
    let id = f.reader("G0001").await;
    let csv = "读者证号,时间,门禁,branch\nG0001,2024-04-01 08:01:02,北门1号,总馆\nG0001,2024-04-02 09:00:00,南门,总馆\n";
    let path = f.file("gate.csv", csv.as_bytes());
    let report = f.load(LoadKind::Visits, &path).await.expect("the log loads");
    assert_eq!((report.rows_in, report.loaded), (2, 2));
    let rows = f.rows("SELECT reader_key, gate, branch FROM fact_visit ORDER BY visited_at").await;
    let gates: Vec<&str> = rows.iter().filter_map(|r| r["gate"].as_str()).collect();
    assert_eq!(gates, ["北门1号", "南门"]);
    let key = f.keyer().await.key(id);
    assert!(rows.iter().all(|r| r["reader_key"] == key.as_str() && r["branch"] == "总馆"));
}

#[tokio::test]
async fn once_items_are_loaded_loans_of_unknown_items_are_quarantined_and_barcodes_become_item_ids() {
    let f = Fixture::new().await;
    f.reader("A0001").await;
    let items =
        "itemnumber,barcode,title,itemcallnumber,homebranch\n5001,B5001,红楼梦,I242.47/12,总馆\n5002,B5002,线性代数,O151.2/3,总馆\n";
    let report = f.load(LoadKind::Items, &f.file("items.csv", items.as_bytes())).await.expect("the items load");
    assert_eq!((report.rows_in, report.loaded), (2, 2));
    let classes = f.rows("SELECT item_id, clc_class, clc_top FROM dim_item ORDER BY item_id").await;
    assert_eq!((classes[0]["clc_class"].as_str(), classes[0]["clc_top"].as_str()), (Some("I242.47"), Some("I")));
    assert_eq!(classes[1]["clc_top"], "O");

    let loans = "card_no,barcode,loaned_at\nA0001,B5002,2024-03-05 10:00\nA0001,B9999,2024-03-05 11:00\n";
    let report = f.load(LoadKind::Loans, &f.file("loans.csv", loans.as_bytes())).await.expect("the loans load");
    assert_eq!((report.loaded, report.quarantined), (1, 1));
    assert_eq!(f.rows("SELECT item_id FROM fact_loan").await[0]["item_id"], "5002", "the barcode is replaced by the item id");
    let pending = load::pending_quarantine(&f.wh).await.expect("the quarantine");
    assert!(pending[0].reason.contains("unknown item B9999"), "{}", pending[0].reason);
}

#[tokio::test]
async fn a_bad_file_is_refused_whole_and_records_no_batch() {
    let f = Fixture::new().await;
    f.reader("A0001").await;
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let cases: [(&str, Vec<u8>, LoadKind); 5] = [
        ("garbage.csv", garbage.clone(), LoadKind::Loans),
        ("garbage.log", garbage, LoadKind::Eresource),
        ("header.csv", b"card_no,item_id,loaned_at\n".to_vec(), LoadKind::Loans),
        ("columns.csv", b"name,phone\nZhang,123\n".to_vec(), LoadKind::Loans),
        ("types.csv", b"card_no,item_id,loaned_at\nA0001,I1,not a date\nA0001,I2,soon\n".to_vec(), LoadKind::Loans),
    ];
    for (name, bytes, kind) in cases {
        match f.load(kind, &f.file(name, &bytes)).await {
            Err(LoadError::File(msg)) => assert!(!msg.zh.is_empty() && !msg.en.is_empty(), "{name}: {msg}"),
            other => panic!("{name}: expected a file error, got {other:?}"),
        }
    }
    assert!(f.wh.batches().await.expect("batches").is_empty(), "no batch is recorded for a bad file");
}
