//! The warehouse pages and API over HTTP, role by role: the data dictionary, the load history
//! and quarantine, read-only SQL (refusals, CSV with a BOM, audit rows, HTML escaping), saved
//! queries per user, CSRF on every form post.

mod common;

use axum::http::{Method, StatusCode};
use common::{form, Reply, TestApp};
use lector_domain::role::Role;
use lector_store::audit::AuditQuery;
use lector_warehouse::arrow::array::RecordBatch;
use lector_warehouse::arrow::json::ReaderBuilder;
use lector_warehouse::{schema, NewBatch, QuarantinedEvent};
use serde_json::{json, Value};

/// The branch of one loan: a value a page must escape.
const SCRIPT: &str = "<script>alert(1)</script>";

/// `rows` (JSON objects in the table's columns) as one record batch.
fn rows(table: &str, rows: &[Value]) -> RecordBatch {
    let def = schema::table(table).expect("a table of the schema");
    let mut decoder = ReaderBuilder::new(def.schema()).build_decoder().expect("decoder");
    let rows: Vec<Value> = rows
        .iter()
        .cloned()
        .map(|mut r| {
            r["batch_id"] = json!(0);
            r
        })
        .collect();
    decoder.serialize(&rows).expect("rows fit the schema");
    decoder.flush().expect("flush").expect("some rows")
}

fn loan(key: &str, reader: &str, loaned_at: &str, branch: &str) -> Value {
    json!({
        "event_key": key,
        "month": &loaned_at[..7],
        "reader_key": reader,
        "item_id": "item-1",
        "loaned_at": loaned_at,
        "due_at": null,
        "returned_at": null,
        "renewals": 0,
        "overdue_days": 0,
        "branch": branch,
        "source": "test",
    })
}

/// An app whose warehouse holds one batch: three loans (one with a `<script>` branch) and a
/// quarantined loan of an unknown card.
async fn app_with_loans() -> TestApp {
    let app = TestApp::new().await;
    let loans = [
        loan("test:loan:1", "r1", "2025-03-01T10:00:00", "总馆"),
        loan("test:loan:2", "r2", "2025-03-02T10:00:00", "总馆"),
        loan("test:loan:3", "r1", "2025-04-01T10:00:00", SCRIPT),
    ];
    let batch = NewBatch {
        source: "test".into(),
        tables: vec![("fact_loan", vec![rows("fact_loan", &loans)])],
        rows_in: 4,
        quarantine: vec![QuarantinedEvent {
            table: "fact_loan",
            event_key: "test:loan:4".into(),
            reason: "unknown reader".into(),
            record: json!({"card_no": "S20250099"}),
        }],
        ..Default::default()
    };
    app.warehouse.write_batch(batch).await.expect("write the test batch");
    app
}

async fn loan_count(app: &TestApp) -> String {
    let result = app.warehouse.sql("SELECT count(*) AS n FROM fact_loan").await.expect("count the loans");
    result.to_json_rows().expect("rows")[0]["n"].to_string()
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<lector_store::audit::AuditEntry> {
    let q = AuditQuery { action: Some(action.into()), page: 1, per_page: 50, ..Default::default() };
    app.store.audit_log(&q).await.expect("audit log").items
}

/// Posts the SQL form (`path` picks run, download or save) as `role` with the session's token.
async fn post_sql(app: &TestApp, role: Role, path: &str, fields: &[(&str, &str)]) -> Reply {
    let (cookie, csrf) = app.session(role).await;
    let mut pairs = vec![("csrf", csrf.as_str())];
    pairs.extend_from_slice(fields);
    app.post_form(&cookie, path, &form(&pairs)).await
}

#[tokio::test]
async fn the_dictionary_lists_every_table_and_a_tables_columns() {
    let app = app_with_loans().await;
    let (cookie, _) = app.session(Role::Analyst).await;
    let page = app.get_page(Some(&cookie), "/warehouse").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    for table in schema::tables() {
        assert!(html.contains(&format!("data-table=\"{}\"", table.name)), "{} is listed", table.name);
    }
    assert!(html.contains("<td class=\"n table-rows\">3</td>"), "fact_loan shows its 3 rows");
    assert!(html.contains("id=\"warehouse-rules\"") && html.contains("event_key"), "the rules are shown");

    let page = app.get_page(Some(&cookie), "/warehouse/tables/fact_loan").await;
    assert_eq!(page.status, StatusCode::OK);
    for column in &schema::table("fact_loan").expect("fact_loan").columns {
        assert!(page.text().contains(&format!("data-column=\"{}\"", column.name)), "column {}", column.name);
    }
    assert_eq!(app.get_page(Some(&cookie), "/warehouse/tables/no_such_table").await.status, StatusCode::NOT_FOUND);

    let (status, body) = app.get(app.token(Role::Analyst), "/api/v1/warehouse/tables").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["tables"].as_array().expect("tables").iter().filter_map(|t| t["name"].as_str()).collect();
    let expected: Vec<&str> = schema::tables().iter().map(|t| t.name).collect();
    assert_eq!(names, expected);
    let (status, body) = app.get(app.token(Role::Analyst), "/api/v1/warehouse/tables/fact_loan").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rows"], 3);
    assert!(body["columns"].as_array().expect("columns").iter().any(|c| c["name"] == "loaned_at"));
    assert_eq!(app.get(app.token(Role::Analyst), "/api/v1/warehouse/tables/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_load_history_shows_batches_and_only_admins_see_the_quarantine() {
    let app = app_with_loans().await;
    let (analyst, _) = app.session(Role::Analyst).await;
    let page = app.get_page(Some(&analyst), "/warehouse/batches").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("data-batch=\"1\""), "the batch is listed");
    assert!(!page.text().contains("quarantine-summary"), "analysts do not see the quarantine count");
    let quarantine = app.get_page(Some(&analyst), "/warehouse/quarantine").await;
    assert_eq!(quarantine.status, StatusCode::FORBIDDEN);
    assert!(!quarantine.text().contains("S20250099"));

    let (admin, _) = app.session(Role::Admin).await;
    assert!(app.get_page(Some(&admin), "/warehouse/batches").await.text().contains("quarantine-summary"));
    let page = app.get_page(Some(&admin), "/warehouse/quarantine").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("test:loan:4") && page.text().contains("S20250099"), "the raw record is shown to admins");
}

#[tokio::test]
async fn the_sql_page_runs_a_count_and_audits_it() {
    let app = app_with_loans().await;
    let sql = "SELECT count(*) AS loans FROM fact_loan";
    let reply = post_sql(&app, Role::Analyst, "/warehouse/sql", &[("sql", sql)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = reply.text();
    assert!(html.contains("<th>loans</th>"), "the column is shown");
    assert!(html.contains("<td>3</td>"), "the count is shown");
    assert!(html.contains("<strong id=\"row-count\">1</strong>"), "one row");
    assert!(html.contains(sql), "the SQL stays in the textarea");
    let audited = audit_rows(&app, "warehouse.query").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].summary, sql);
    assert_eq!(audited[0].actor_name, "analyst");
}

#[tokio::test]
async fn writing_statements_are_refused_and_change_nothing() {
    let app = app_with_loans().await;
    for sql in [
        "DROP TABLE fact_loan",
        "COPY fact_loan TO 'stolen.csv'",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO fact_loan SELECT * FROM fact_loan",
    ] {
        let reply = post_sql(&app, Role::Analyst, "/warehouse/sql", &[("sql", sql)]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{sql}");
        let html = reply.text();
        assert!(html.contains("id=\"sql-error\""), "{sql}: the refusal is shown");
        let kept = sql.replace('\'', "&#39;");
        assert!(html.contains(&kept), "{sql}: the SQL stays in the textarea");
        assert!(!html.contains("id=\"sql-result\""), "{sql}: no result");
    }
    assert_eq!(loan_count(&app).await, "3");
    assert_eq!(app.warehouse.batches().await.expect("batches").len(), 1);
    assert!(!app.dir.path().join("stolen.csv").exists() && !std::path::Path::new("stolen.csv").exists());
    assert_eq!(audit_rows(&app, "warehouse.query").await.len(), 4, "refusals are audited too");

    let (status, body) = app.post_json(app.token(Role::Analyst), "/api/v1/warehouse/query", &json!({"sql": "DROP TABLE fact_loan"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_input");
    assert_eq!(body["error"]["fields"][0]["field"], "sql");
    assert_eq!(loan_count(&app).await, "3");
}

#[tokio::test]
async fn csv_downloads_have_a_bom_a_header_and_an_audit_row() {
    let app = app_with_loans().await;
    let sql = "SELECT event_key, branch FROM fact_loan ORDER BY event_key";
    let reply = post_sql(&app, Role::Analyst, "/warehouse/sql/csv", &[("sql", sql), ("name", "借阅清单")]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type").as_deref(), Some("text/csv; charset=utf-8"));
    let disposition = reply.header("content-disposition").expect("a download");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("filename*=UTF-8''%E5%80%9F%E9%98%85%E6%B8%85%E5%8D%95-"), "{disposition}");
    assert!(reply.body.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM");
    let text = reply.text();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    assert_eq!(lines.next(), Some("event_key,branch"));
    assert_eq!(lines.next(), Some("test:loan:1,总馆"));
    assert_eq!(lines.count(), 2);
    let exports = audit_rows(&app, "warehouse.export").await;
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].summary, sql);

    let reply =
        app.call(Method::POST, "/api/v1/warehouse/query", Some(app.token(Role::Leader)), Some(&json!({"sql": sql, "format": "csv"}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.starts_with(b"\xEF\xBB\xBFevent_key,branch"));
    assert_eq!(audit_rows(&app, "warehouse.export").await.len(), 2);

    let (status, body) = app.post_json(app.token(Role::Analyst), "/api/v1/warehouse/query", &json!({"sql": sql})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["row_count"], 3);
    assert_eq!(body["columns"], json!(["event_key", "branch"]));
    assert_eq!(body["rows"][2]["branch"], SCRIPT);
    assert_eq!(body["truncated"], false);
}

#[tokio::test]
async fn the_audit_summary_keeps_the_first_500_characters() {
    let app = app_with_loans().await;
    let sql = format!("SELECT 1 AS one -- {}", "长".repeat(600));
    let reply = post_sql(&app, Role::Analyst, "/warehouse/sql", &[("sql", &sql)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let audited = audit_rows(&app, "warehouse.query").await;
    assert_eq!(audited[0].summary.chars().count(), 501, "500 characters and an ellipsis");
    assert!(audited[0].summary.ends_with('…'));
}

#[tokio::test]
async fn values_are_escaped_in_the_result_table() {
    let app = app_with_loans().await;
    let reply =
        post_sql(&app, Role::Analyst, "/warehouse/sql", &[("sql", "SELECT branch FROM fact_loan WHERE event_key = 'test:loan:3'")]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = reply.text();
    assert!(html.contains("<td>&#60;script&#62;alert(1)&#60;/script&#62;</td>"), "the value is shown escaped");
    assert!(!html.contains(SCRIPT), "never as markup");
}

#[tokio::test]
async fn roles_anonymous_users_and_csrf() {
    let app = app_with_loans().await;
    let pages = ["/warehouse", "/warehouse/tables/fact_loan", "/warehouse/batches", "/warehouse/sql"];
    for role in [Role::Analyst, Role::Leader, Role::Admin] {
        let (cookie, _) = app.session(role).await;
        for path in pages {
            assert_eq!(app.get_page(Some(&cookie), path).await.status, StatusCode::OK, "{role:?} {path}");
        }
        assert!(app.get_page(Some(&cookie), "/").await.text().contains("id=\"nav-warehouse\""), "{role:?} sees the entry");
        assert_eq!(app.get(app.token(role), "/api/v1/warehouse/tables").await.0, StatusCode::OK, "{role:?}");
    }
    for role in [Role::Librarian, Role::Department] {
        let (cookie, csrf) = app.session(role).await;
        assert!(!app.get_page(Some(&cookie), "/").await.text().contains("nav-warehouse"), "{role:?} has no entry");
        for path in pages.iter().chain(&["/warehouse/quarantine"]) {
            assert_eq!(app.get_page(Some(&cookie), path).await.status, StatusCode::FORBIDDEN, "{role:?} {path}");
        }
        let post = form(&[("csrf", csrf.as_str()), ("sql", "SELECT 1"), ("name", "x")]);
        for path in ["/warehouse/sql", "/warehouse/sql/csv", "/warehouse/queries", "/warehouse/queries/1/delete"] {
            assert_eq!(app.post_form(&cookie, path, &post).await.status, StatusCode::FORBIDDEN, "{role:?} POST {path}");
        }
        let token = app.token(role);
        assert_eq!(app.get(token, "/api/v1/warehouse/tables").await.0, StatusCode::FORBIDDEN, "{role:?}");
        assert_eq!(app.get(token, "/api/v1/warehouse/tables/fact_loan").await.0, StatusCode::FORBIDDEN, "{role:?}");
        assert_eq!(app.post_json(token, "/api/v1/warehouse/query", &json!({"sql": "SELECT 1"})).await.0, StatusCode::FORBIDDEN, "{role:?}");
    }
    for path in pages {
        let reply = app.get_page(None, path).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert!(reply.header("location").is_some_and(|l| l.starts_with("/login?next=")), "{path}");
    }
    assert_eq!(app.call(Method::GET, "/api/v1/warehouse/tables", None, None).await.status, StatusCode::UNAUTHORIZED);

    let (cookie, _) = app.session(Role::Analyst).await;
    for csrf in [Some("forged"), None] {
        let mut pairs = vec![("sql", "SELECT 1")];
        if let Some(c) = csrf {
            pairs.push(("csrf", c));
        }
        for path in ["/warehouse/sql", "/warehouse/sql/csv"] {
            assert_eq!(app.post_form(&cookie, path, &form(&pairs)).await.status, StatusCode::BAD_REQUEST, "{path} csrf {csrf:?}");
        }
        pairs.push(("name", "mine"));
        assert_eq!(app.post_form(&cookie, "/warehouse/queries", &form(&pairs)).await.status, StatusCode::BAD_REQUEST);
    }
    assert!(audit_rows(&app, "warehouse").await.is_empty(), "refused posts ran nothing");
    assert!(app.store.saved_queries(app.user(Role::Analyst).id).await.expect("saved queries").is_empty());
}

#[tokio::test]
async fn saved_queries_are_private_unless_shared() {
    let app = app_with_loans().await;
    let save = |name: &'static str, shared: bool| {
        let app = &app;
        async move {
            let mut fields = vec![("sql", "SELECT count(*) FROM fact_loan"), ("name", name), ("description", "每月借阅")];
            if shared {
                fields.push(("shared", "on"));
            }
            post_sql(app, Role::Analyst, "/warehouse/queries", &fields).await
        }
    };
    let private = save("我的私有查询", false).await;
    assert_eq!(private.status, StatusCode::SEE_OTHER);
    let shared = save("共享的借阅统计", true).await;
    assert_eq!(shared.status, StatusCode::SEE_OTHER);
    assert_eq!(save("共享的借阅统计", true).await.status, StatusCode::SEE_OTHER, "saving the same name again replaces it");
    let mine = app.store.saved_queries(app.user(Role::Analyst).id).await.expect("saved queries");
    assert_eq!(mine.len(), 2);
    let private_id = mine.iter().find(|q| !q.shared).expect("the private query").id;
    let shared_id = mine.iter().find(|q| q.shared).expect("the shared query").id;
    assert_eq!(audit_rows(&app, "saved_query.create").await.len(), 2);
    assert_eq!(audit_rows(&app, "saved_query.update").await.len(), 1);

    let (analyst, csrf) = app.session(Role::Analyst).await;
    let page = app.get_page(Some(&analyst), &format!("/warehouse/sql?saved={private_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("我的私有查询") && page.text().contains("SELECT count(*) FROM fact_loan"), "loaded into the form");

    let (leader, leader_csrf) = app.session(Role::Leader).await;
    let page = app.get_page(Some(&leader), "/warehouse/sql").await.text();
    assert!(page.contains("共享的借阅统计"), "a shared query is visible to others");
    assert!(!page.contains("我的私有查询"), "a private query is not");
    assert!(!page.contains(&format!("/warehouse/queries/{shared_id}/delete")), "others may not delete it");
    assert_eq!(app.get_page(Some(&leader), &format!("/warehouse/sql?saved={private_id}")).await.status, StatusCode::NOT_FOUND);
    let delete = form(&[("csrf", leader_csrf.as_str())]);
    assert_eq!(app.post_form(&leader, &format!("/warehouse/queries/{shared_id}/delete"), &delete).await.status, StatusCode::NOT_FOUND);

    let invalid = post_sql(&app, Role::Analyst, "/warehouse/queries", &[("sql", "SELECT 1"), ("name", "  ")]).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.text().contains("data-field=\"name\""), "the name's error is shown beside it");

    let deleted = app.post_form(&analyst, &format!("/warehouse/queries/{private_id}/delete"), &form(&[("csrf", csrf.as_str())])).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let left = app.store.saved_queries(app.user(Role::Analyst).id).await.expect("saved queries");
    assert_eq!(left.iter().map(|q| q.id).collect::<Vec<_>>(), [shared_id]);
    assert_eq!(audit_rows(&app, "saved_query.delete").await.len(), 1);
}

#[tokio::test]
async fn the_openapi_document_describes_the_warehouse_routes() {
    let doc: Value = serde_json::from_str(lector_web::api::openapi_document()).expect("the document is JSON");
    for (path, method) in
        [("/api/v1/warehouse/tables", "get"), ("/api/v1/warehouse/tables/{name}", "get"), ("/api/v1/warehouse/query", "post")]
    {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is documented");
    }
    assert!(doc["components"]["schemas"]["QueryRequest"].is_object());
}
