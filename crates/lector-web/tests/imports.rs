//! Importing readers and reviewing identities through the pages and the API, in process:
//! upload, mapping, preview, run, counts, the rejection report, undo, provenance; candidate
//! review, merge and its undo; and who may do each.

mod common;

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use axum::http::{Method, Request, StatusCode};
use common::{form, Reply, TestApp};
use lector_domain::import::JobStatus;
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_store::imports::ImportJob;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A small roster with Chinese headers; row 4 has a bad email.
const ROSTER: &str = "读者证号,姓名,读者类型,电子邮件,手机\n\
2026000001,张三,undergraduate,zs@example.edu.cn,13800138001\n\
2026000002,李四,undergraduate,ls@example.edu.cn,13800138002\n\
2026000003,王五,undergraduate,not-an-email,13800138003\n";

/// Where each column of [`ROSTER`] goes, as the mapping page's selects post it.
const ROSTER_TARGETS: [(&str, &str); 5] =
    [("col.0", "card_no"), ("col.1", "name"), ("col.2", "category"), ("col.3", "email"), ("col.4", "mobile")];

/// A multipart form: text fields, then the file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----lector-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_multipart(app: &TestApp, cookie: &str, fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Reply {
    let (content_type, body) = multipart(fields, file);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/imports/uploads")
        .header(COOKIE, cookie)
        .header(CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    app.send(req).await
}

/// Uploads `bytes` as `name` for source `source` and returns the mapping page's path.
async fn upload(app: &TestApp, cookie: &str, csrf: &str, name: &str, bytes: &[u8], source: &str) -> String {
    let r = post_multipart(app, cookie, &[("csrf", csrf), ("source", source), ("profile", ""), ("format", "")], Some((name, bytes))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let to = r.header("location").expect("a redirect to the mapping page");
    assert!(to.starts_with("/imports/uploads/"), "{to}");
    to
}

/// The path of a mapping page without its query.
fn mapping_path(location: &str) -> &str {
    location.split('?').next().unwrap()
}

/// The job id a redirect to `/imports/{id}?…` names.
fn job_in(r: &Reply) -> i64 {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let to = r.header("location").unwrap();
    to.trim_start_matches("/imports/").split('?').next().unwrap().parse().unwrap_or_else(|_| panic!("a job page, not {to}"))
}

/// Posts the mapping page with the roster's column choices.
async fn submit_mapping(app: &TestApp, cookie: &str, csrf: &str, path: &str, source: &str, action: &str) -> Reply {
    let mut fields = vec![("csrf", csrf), ("source", source), ("toml", ""), ("toml_original", ""), ("action", action)];
    fields.extend(ROSTER_TARGETS);
    app.post_form(cookie, path, &form(&fields)).await
}

/// Runs the oldest queued job to its end, as the server's worker would.
async fn run_next(app: &TestApp) -> ImportJob {
    let job = app.store.claim_import_job("test", 60).await.unwrap().expect("a queued job");
    lector_import::runner::run_job(&app.store, job).await.unwrap()
}

async fn reader_count(app: &TestApp) -> i64 {
    app.store.reader_stats().await.unwrap().total
}

#[tokio::test]
async fn upload_map_preview_run_report_and_undo() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let list = app.get_page(Some(&cookie), "/imports").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text().contains("id=\"upload-form\"") && list.text().contains("enctype=\"multipart/form-data\""));

    let to = upload(&app, &cookie, &csrf, "C:\\fakepath\\学生 名单.csv", ROSTER.as_bytes(), "教务处").await;
    let saved: Vec<_> = std::fs::read_dir(app.dir.path().join("imports")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(saved.len(), 1);
    assert!(saved[0].to_string_lossy().ends_with("-学生_名单.csv"), "kept under a sanitised name: {saved:?}");

    // The mapping page shows what was detected and the first rows.
    let page = app.get_page(Some(&cookie), &to).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    for header in ["读者证号", "姓名", "电子邮件", "手机"] {
        assert!(html.contains(&format!("data-header=\"{header}\"")), "header {header} on the mapping page");
    }
    assert!(html.contains("id=\"detected-format\">csv<"), "detected format");
    assert!(html.contains("2026000002") && html.contains("李四"), "sample rows");
    assert!(html.contains("value=\"教务处\""), "the source carried over");

    // Preview: a dry run that writes nothing.
    let before = reader_count(&app).await;
    let preview = job_in(&submit_mapping(&app, &cookie, &csrf, mapping_path(&to), "教务处", "preview").await);
    let job = app.store.import_job(preview).await.unwrap();
    assert!(job.dry_run);
    assert_eq!(job.status, JobStatus::Queued);
    let queued = app.get_page(Some(&cookie), &format!("/imports/{preview}")).await;
    assert!(queued.text().contains("http-equiv=\"refresh\""), "a queued job's page refreshes itself");
    let done = run_next(&app).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.error);
    assert_eq!((done.counts.created, done.counts.rejected), (2, 1));
    assert_eq!(reader_count(&app).await, before, "a preview writes nothing");
    let shown = app.get_page(Some(&cookie), &format!("/imports/{preview}")).await.text();
    assert!(shown.contains("id=\"count-created\">2<") && shown.contains("id=\"count-rejected\">1<"), "{shown}");
    assert!(!shown.contains("http-equiv=\"refresh\""), "a finished job's page stays put");
    assert!(shown.contains("id=\"run-for-real\"") && !shown.contains("id=\"undo-link\""));

    // Run it for real.
    let real = job_in(&app.post_form(&cookie, &format!("/imports/{preview}/run"), &form(&[("csrf", &csrf)])).await);
    assert_ne!(real, preview);
    let done = run_next(&app).await;
    assert_eq!(done.id, real);
    assert!(!done.dry_run);
    assert_eq!((done.counts.created, done.counts.rejected), (2, 1), "{:?}", done.error);
    assert_eq!(reader_count(&app).await, before + 2);
    let shown = app.get_page(Some(&cookie), &format!("/imports/{real}")).await.text();
    assert!(shown.contains("id=\"count-created\">2<") && shown.contains("id=\"undo-link\""));
    assert!(shown.contains("not-an-email") && shown.contains("data-row=\"4\""), "the rejected row is listed");

    // The error report: UTF-8 with a BOM, row, column, value and reason in the user's language.
    let csv = app.get_page(Some(&cookie), &format!("/imports/{real}/rejections.csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.header("content-disposition").unwrap().contains("attachment"));
    assert!(csv.body.starts_with(&[0xEF, 0xBB, 0xBF]), "a BOM for Excel");
    let text = csv.text();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    assert_eq!(lines.next(), Some("行号,列,值,原因"));
    let row = lines.next().expect("one rejection");
    assert!(row.starts_with("4,电子邮件,not-an-email,"), "{row}");
    assert!(row.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "the reason in Chinese: {row}");
    assert_eq!(lines.next(), None);

    // The reader page shows where the fields came from.
    let zhang = app.store.reader_by_card("2026000001").await.unwrap();
    let reader = app.get_page(Some(&cookie), &format!("/readers/{}", zhang.id)).await.text();
    assert!(reader.contains("id=\"provenance\"") && reader.contains("教务处"), "provenance on the reader page");
    assert!(reader.contains(&format!("href=\"/imports/{real}\"")), "the job links to its page");

    // Undo: a confirmation step, then the readers it created are gone.
    let confirm = app.get_page(Some(&cookie), &format!("/imports/{real}/undo")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.text().contains("id=\"confirm-undo\""));
    let r = app.post_form(&cookie, &format!("/imports/{real}/undo"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(job_in(&r), real);
    assert_eq!(app.store.import_job(real).await.unwrap().status, JobStatus::Undone);
    assert_eq!(reader_count(&app).await, before);
    assert!(app.store.reader_by_card("2026000001").await.is_err());
}

#[tokio::test]
async fn undo_is_refused_to_roles_without_imports() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let to = upload(&app, &cookie, &csrf, "roster.csv", ROSTER.as_bytes(), "registrar").await;
    let id = job_in(&submit_mapping(&app, &cookie, &csrf, mapping_path(&to), "registrar", "run").await);
    assert_eq!(run_next(&app).await.status, JobStatus::Succeeded);
    for role in [Role::Department, Role::Analyst, Role::Leader] {
        let (c, t) = app.session(role).await;
        let r = app.post_form(&c, &format!("/imports/{id}/undo"), &form(&[("csrf", &t)])).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?}");
        let r = app.call(Method::POST, &format!("/api/v1/imports/{id}/undo"), Some(app.token(role)), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?} through the API");
    }
    assert_eq!(app.store.import_job(id).await.unwrap().status, JobStatus::Succeeded, "nothing was undone");
}

#[tokio::test]
async fn a_gbk_file_reads_as_chinese() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let mut text = String::from("读者证号,姓名,读者类型,单位\r\n");
    for (i, (name, unit)) in
        [("赵六", "计算机学院"), ("钱七", "外国语学院"), ("孙八", "经济管理学院"), ("周九", "马克思主义学院")].iter().enumerate()
    {
        text.push_str(&format!("20260001{i:02},{name},undergraduate,{unit}\r\n"));
    }
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&gbk).is_err(), "the file is not UTF-8");
    let to = upload(&app, &cookie, &csrf, "名单.csv", &gbk, "人事处").await;
    let page = app.get_page(Some(&cookie), &to).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(html.contains("data-header=\"姓名\"") && html.contains("data-header=\"单位\""), "GBK headers decoded");
    assert!(html.contains("外国语学院"), "GBK cells decoded");
    assert!(html.contains("id=\"detected-encoding\">GB"), "the encoding is named");
}

#[tokio::test]
async fn a_garbage_file_gets_a_clear_error() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    // Bytes of no text encoding, NULs included (as in any binary file).
    let garbage: Vec<u8> = (0..4096u32).map(|i| if i % 64 == 0 { 0 } else { (i.wrapping_mul(2_654_435_761) >> 13) as u8 }).collect();
    let to = upload(&app, &cookie, &csrf, "data.bin", &garbage, "x").await;
    let page = app.get_page(Some(&cookie), &to).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.text());
    assert!(page.text().contains("id=\"mapping-error\"") && page.text().contains("无法读取文件"), "{}", page.text());
    // Trying to import it anyway says the same, not 500.
    let r = submit_mapping(&app, &cookie, &csrf, mapping_path(&to), "x", "run").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("无法读取文件"));
    assert_eq!(app.store.import_jobs(1, 10).await.unwrap().total, 0, "no job queued");
}

#[tokio::test]
async fn upload_form_errors() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    // No file chosen: the list again with the error.
    let r = post_multipart(&app, &cookie, &[("csrf", &csrf), ("source", "x")], Some(("", b""))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"upload-error\""));
    // Without the CSRF token: refused, and the file is not kept.
    let r = post_multipart(&app, &cookie, &[("source", "x")], Some(("a.csv", ROSTER.as_bytes()))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let kept = std::fs::read_dir(app.dir.path().join("imports")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(kept, 0, "a refused upload leaves no file");
    // A mapping posted without the token is refused too, and queues nothing.
    let to = upload(&app, &cookie, &csrf, "a.csv", ROSTER.as_bytes(), "x").await;
    let mut fields = vec![("source", "x"), ("toml", ""), ("toml_original", ""), ("action", "run")];
    fields.extend(ROSTER_TARGETS);
    let r = app.post_form(&cookie, mapping_path(&to), &form(&fields)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A missing source name is asked for on the mapping page.
    let r = submit_mapping(&app, &cookie, &csrf, mapping_path(&to), " ", "run").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("请填写数据源名称"));
    // An unknown upload token is a 404.
    let r = app.get_page(Some(&cookie), "/imports/uploads/0123456789abcdef0123456789abcdef").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.store.import_jobs(1, 10).await.unwrap().total, 0);
}

#[tokio::test]
async fn uploads_may_exceed_the_default_body_limit() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let mut big = String::from(ROSTER);
    let mut n = 0;
    while big.len() < 3 * 1024 * 1024 {
        n += 1;
        big.push_str(&format!("20269{n:05},某某,undergraduate,r{n}@example.edu.cn,138{n:08}\n"));
    }
    let to = upload(&app, &cookie, &csrf, "big.csv", big.as_bytes(), "x").await;
    let saved = std::fs::read_dir(app.dir.path().join("imports")).unwrap().next().unwrap().unwrap();
    assert_eq!(saved.metadata().unwrap().len(), big.len() as u64, "the whole file was kept");
    assert_eq!(app.get_page(Some(&cookie), &to).await.status, StatusCode::OK);
    // Other forms keep the default limit.
    let long = "x".repeat(2 * 1024 * 1024);
    let r = app.post_form(&cookie, "/imports/profiles", &form(&[("csrf", &csrf), ("name", "p"), ("toml", &long)])).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn an_edited_profile_wins_over_the_selects() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let to = upload(&app, &cookie, &csrf, "a.csv", ROSTER.as_bytes(), "x").await;
    // The TOML says the email column is ignored; the selects (which say email) do not count.
    let toml = "[columns.\"读者证号\"]\nfield = \"card_no\"\n[columns.\"姓名\"]\nfield = \"name\"\n[columns.\"电子邮件\"]\nfield = \"ignore\"\n\n[defaults]\ncategory = \"undergraduate\"\n";
    let mut fields =
        vec![("csrf", csrf.as_str()), ("source", "x"), ("toml", toml), ("toml_original", ""), ("action", "run"), ("save_as", "只取姓名")];
    fields.extend(ROSTER_TARGETS);
    let id = job_in(&app.post_form(&cookie, mapping_path(&to), &form(&fields)).await);
    let done = run_next(&app).await;
    assert_eq!(done.id, id);
    assert_eq!((done.counts.created, done.counts.rejected), (3, 0), "the bad email column was ignored: {:?}", done.error);
    let saved = app.store.mapping_profile("只取姓名").await.expect("saved as a profile");
    assert!(saved.toml.contains("ignore"));
    // A broken TOML is shown with its error, and nothing is queued.
    let mut fields =
        vec![("csrf", csrf.as_str()), ("source", "x"), ("toml", "[columns.\"姓名\"\nfield = "), ("toml_original", ""), ("action", "run")];
    fields.extend(ROSTER_TARGETS);
    let r = app.post_form(&cookie, mapping_path(&to), &form(&fields)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"mapping-error\""));
    assert_eq!(app.store.import_jobs(1, 10).await.unwrap().total, 1);
}

#[tokio::test]
async fn profiles_page_saves_valid_toml_only() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let good = "[columns.\"学号\"]\nfield = \"card_no\"\n";
    let r = app.post_form(&cookie, "/imports/profiles", &form(&[("csrf", &csrf), ("name", "教务处"), ("toml", good)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let page = app.get_page(Some(&cookie), "/imports/profiles").await.text();
    assert!(page.contains("教务处"));
    let edit = app.get_page(Some(&cookie), &r.header("location").unwrap()).await.text();
    assert!(edit.contains("card_no"), "the editor holds the saved TOML");
    let bad = "[columns.\"学号\"]\nfield = \"card_no\"\nfield = \"name\"\n";
    let r = app.post_form(&cookie, "/imports/profiles", &form(&[("csrf", &csrf), ("name", "坏的"), ("toml", bad)])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = r.text().split("id=\"profile-error\">").nth(1).and_then(|e| e.split("</div>").next()).map(str::to_string);
    assert!(error.as_deref().is_some_and(|e| e.contains("第 3 行")), "the error names line 3: {error:?}");
    assert!(app.store.mapping_profile("坏的").await.is_err());
}

#[tokio::test]
async fn sources_page_is_for_admins_and_refuses_uploads_only_sources() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let to = upload(&app, &cookie, &csrf, "a.csv", ROSTER.as_bytes(), "registrar").await;
    job_in(&submit_mapping(&app, &cookie, &csrf, mapping_path(&to), "registrar", "run").await);
    assert_eq!(app.get_page(Some(&cookie), "/imports/sources").await.status, StatusCode::FORBIDDEN);
    let (admin, admin_csrf) = app.session(Role::Admin).await;
    let page = app.get_page(Some(&admin), "/imports/sources").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("data-source=\"registrar\""));
    let r = app
        .post_form(&admin, "/imports/sources/schedule", &form(&[("csrf", &admin_csrf), ("name", "registrar"), ("every_minutes", "60")]))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"schedule-error\""));
    let source = app.store.import_sources().await.unwrap().into_iter().find(|s| s.name == "registrar").unwrap();
    assert_eq!(source.every_minutes, None);

    // A file at a path on the server can be read again: it may be scheduled, and unscheduled.
    let exports = tempfile::tempdir().unwrap();
    let path = exports.path().join("hr.csv");
    std::fs::write(&path, ROSTER).unwrap();
    let spec =
        serde_json::to_value(lector_import::runner::JobSpec::File { path: path.clone(), open: Default::default(), profile: None }).unwrap();
    let new = lector_store::imports::NewImportJob {
        source: "人事处".into(),
        format: "csv".into(),
        label: "hr.csv".into(),
        options: Default::default(),
        dry_run: false,
        spec,
    };
    app.store.create_import_job(&app.actor(Role::Admin), &new, JobStatus::Queued).await.unwrap();
    let page = app.get_page(Some(&admin), "/imports/sources").await.text();
    assert!(page.contains(&path.display().to_string()), "what a re-sync reads is shown");
    let schedule = |every: &'static str| form(&[("csrf", &admin_csrf), ("name", "人事处"), ("every_minutes", every)]);
    let r = app.post_form(&admin, "/imports/sources/schedule", &schedule("60")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let hr = app.store.import_sources().await.unwrap().into_iter().find(|s| s.name == "人事处").unwrap();
    assert_eq!(hr.every_minutes, Some(60));
    assert!(hr.spec.is_some() && hr.next_run_at.is_some());
    let r = app.post_form(&admin, "/imports/sources/schedule", &schedule("0")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let hr = app.store.import_sources().await.unwrap().into_iter().find(|s| s.name == "人事处").unwrap();
    assert_eq!(hr.every_minutes, None);
    let r = app.post_form(&admin, "/imports/sources/schedule", &schedule("often")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Polls the API until the job is done (the server's worker runs it).
async fn wait_done(app: &TestApp, token: &str, id: i64) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = app.get(token, &format!("/api/v1/imports/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if matches!(body["status"].as_str(), Some("succeeded" | "failed")) {
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "job {id} did not finish: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_upload_runs_on_the_worker() {
    let app = TestApp::new().await;
    let worker = tokio::spawn(lector_import::runner::worker(app.store.clone(), Duration::from_millis(50)));
    let token = app.token(Role::Librarian).to_string();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/imports?source=hr&file_name=staff.csv&never_overwrite=notes")
        .header("authorization", format!("Bearer {token}"))
        .header(CONTENT_TYPE, "text/csv")
        .body(Body::from(ROSTER))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let job = r.json();
    let id = job["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/v1/imports/{id}")));
    assert_eq!(job["label"], "staff.csv");
    assert_eq!(job["options"]["never_overwrite"], json!(["notes"]));
    assert!(job.get("spec").is_none(), "how a job reads its source is not shown");
    let done = wait_done(&app, &token, id).await;
    worker.abort();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["counts"]["created"], 2);
    assert_eq!(done["counts"]["rejected"], 1);

    let (status, list) = app.get(&token, "/api/v1/imports?per_page=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], id);
    let (status, rejections) = app.get(&token, &format!("/api/v1/imports/{id}/rejections")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rejections[0]["row"], 4);
    assert_eq!(rejections[0]["column"], "电子邮件");
    assert_eq!(rejections[0]["value"], "not-an-email");
    assert!(rejections[0]["reason_zh"].as_str().is_some_and(|s| !s.is_empty()));

    let zhang = app.store.reader_by_card("2026000001").await.unwrap();
    let (status, provenance) = app.get(&token, &format!("/api/v1/readers/{}/provenance", zhang.id)).await;
    assert_eq!(status, StatusCode::OK);
    let fields: Vec<&str> = provenance.as_array().unwrap().iter().filter_map(|p| p["field"].as_str()).collect();
    assert!(fields.contains(&"name") && fields.contains(&"email"), "{provenance}");
    assert!(provenance.as_array().unwrap().iter().all(|p| p["source"] == "hr" && p["job_id"] == id));

    let (status, undone) = app.post_json(&token, &format!("/api/v1/imports/{id}/undo"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    assert_eq!(undone["status"], "undone");
    let (status, again) = app.post_json(&token, &format!("/api/v1/imports/{id}/undo"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
}

#[tokio::test]
async fn api_upload_errors() {
    let app = TestApp::new().await;
    let token = app.token(Role::Librarian);
    let send = |uri: &str, body: &'static [u8], length: Option<&str>| {
        let mut b = Request::builder().method(Method::POST).uri(uri).header("authorization", format!("Bearer {token}"));
        if let Some(n) = length {
            b = b.header(CONTENT_LENGTH, n);
        }
        b.body(Body::from(body)).unwrap()
    };
    let r = app.send(send("/api/v1/imports?format=docx&dry_run=maybe", ROSTER.as_bytes(), None)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> =
        r.json()["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap().to_string()).collect();
    assert_eq!(fields, vec!["source", "format", "dry_run"]);
    let r = app.send(send("/api/v1/imports?source=x", b"\x00\x01\x02\xff\xfe garbage \x00", None)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.json()["error"]["fields"][0]["field"], "body");
    let r = app.send(send("/api/v1/imports?source=x&profile=nope", ROSTER.as_bytes(), None)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["fields"][0]["field"], "profile");
    let r = app.send(send("/api/v1/imports?source=x", b"", Some("300000000"))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"]["code"], "payload_too_large");
    assert_eq!(app.store.import_jobs(1, 10).await.unwrap().total, 0);
}

// ---- identity review ----

async fn reader(app: &TestApp, card: &str, name: &str, affiliation: &str, email: &str) -> i64 {
    let draft = ReaderDraft {
        card_no: card.into(),
        name: name.into(),
        category: "undergraduate".into(),
        affiliation: Some(affiliation.into()),
        contacts: vec![ContactDraft { kind: "email".into(), value: email.into(), primary: true, verified: false }],
        ..Default::default()
    };
    let input = draft.parse(chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()).unwrap();
    app.store.create_reader(&app.actor(Role::Librarian), &input).await.unwrap().id
}

/// Two likely duplicates, queued for review rather than merged automatically.
async fn duplicates(app: &TestApp) -> (i64, i64) {
    let mut rules = app.store.match_rules().await.unwrap();
    rules.merge_at = 1.0e6;
    rules.review_at = 0.01;
    app.store.save_match_rules(&app.actor(Role::Admin), &rules).await.unwrap();
    let a = reader(app, "2026100001", "张伟", "计算机学院", "zhangwei@example.edu.cn").await;
    let b = reader(app, "S2026100001", "张伟", "软件学院", "ZhangWei@Example.edu.cn").await;
    (a, b)
}

#[tokio::test]
async fn review_merge_and_undo_through_the_pages() {
    let app = TestApp::new().await;
    let (a, b) = duplicates(&app).await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let r = app.post_form(&cookie, "/identity/resolve", &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(html.contains("id=\"resolve-report\"") && html.contains("id=\"report-queued\">1<"), "{html}");
    assert!(html.contains("电子邮件相同"), "evidence in words");
    let candidate = app.store.match_candidates("pending", 1, 10).await.unwrap().items.remove(0);
    let page = app.get_page(Some(&cookie), &format!("/identity/candidates/{}", candidate.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("计算机学院") && html.contains("软件学院"), "both records side by side");
    assert!(html.contains("id=\"field-affiliation-right\""), "a choice where the values differ");
    assert!(!html.contains("id=\"field-name-left\""), "no choice where they agree");

    // Keep the left record, with the right one's affiliation.
    let right_affiliation = candidate.right.affiliation.clone().unwrap();
    let r = app
        .post_form(
            &cookie,
            &format!("/identity/candidates/{}/merge", candidate.id),
            &form(&[("csrf", &csrf), ("survivor", "left"), ("field.affiliation", "right")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let survivor = app.store.reader(candidate.left.id).await.unwrap();
    assert_eq!(survivor.affiliation.as_deref(), Some(right_affiliation.as_str()));
    assert!(app.store.reader(candidate.right.id).await.is_err(), "the other record was absorbed");

    let merges = app.get_page(Some(&cookie), "/identity/merges").await.text();
    let merge = app.store.merges(1, 10).await.unwrap().items.remove(0);
    assert!(merges.contains(&format!("data-merge=\"{}\"", merge.id)));
    let r = app.post_form(&cookie, &format!("/identity/merges/{}/undo", merge.id), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(app.store.reader(a).await.is_ok() && app.store.reader(b).await.is_ok(), "both records are back");
    assert!(app.store.merges(1, 10).await.unwrap().items[0].undone_at.is_some());
}

#[tokio::test]
async fn not_the_same_person_is_remembered() {
    let app = TestApp::new().await;
    duplicates(&app).await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    app.post_form(&cookie, "/identity/resolve", &form(&[("csrf", &csrf)])).await;
    let candidate = app.store.match_candidates("pending", 1, 10).await.unwrap().items.remove(0);
    let r = app.post_form(&cookie, &format!("/identity/candidates/{}/distinct", candidate.id), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = app.post_form(&cookie, "/identity/resolve", &form(&[("csrf", &csrf)])).await;
    assert!(r.text().contains("id=\"report-queued\">0<"), "not proposed again");
    assert_eq!(app.store.match_candidates("pending", 1, 10).await.unwrap().total, 0);
    let list = app.get_page(Some(&cookie), "/identity").await;
    assert!(!list.text().contains("class=\"candidate\""));
}

#[tokio::test]
async fn identity_through_the_api() {
    let app = TestApp::new().await;
    let (a, _) = duplicates(&app).await;
    let token = app.token(Role::Librarian);
    let (status, report) = app.post_json(token, "/api/v1/identity/resolve", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["queued"], 1);
    let (status, page) = app.get(token, "/api/v1/identity/candidates").await;
    assert_eq!(status, StatusCode::OK);
    let c = &page["items"][0];
    assert!(c["evidence"].as_array().unwrap().contains(&json!("same_email")));
    assert!(c["left"]["contacts"][0]["value"].as_str().unwrap().contains("***"), "contacts masked");
    let id = c["id"].as_i64().unwrap();
    let left_affiliation = c["left"]["affiliation"].clone();
    let (status, err) =
        app.post_json(token, &format!("/api/v1/identity/candidates/{id}/merge"), &json!({"survivor": "middle", "fields": {}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (status, survivor) = app
        .post_json(
            token,
            &format!("/api/v1/identity/candidates/{id}/merge"),
            &json!({"survivor": "right", "fields": {"affiliation": "left"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{survivor}");
    assert_eq!(survivor["affiliation"], left_affiliation, "the right record kept the left one's affiliation");
    assert_eq!(survivor["id"], c["right"]["id"]);
    let (status, merges) = app.get(token, "/api/v1/identity/merges").await;
    assert_eq!(status, StatusCode::OK);
    let merge = merges["items"][0]["id"].as_i64().unwrap();
    let r = app.call(Method::POST, &format!("/api/v1/identity/merges/{merge}/undo"), Some(token), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(app.store.reader(a).await.is_ok());
}

#[tokio::test]
async fn rules_are_edited_by_admins() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let r = app.get_page(Some(&cookie), "/identity/rules").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.post_form(&cookie, "/identity/rules", &form(&[("csrf", &csrf), ("rule.merge_at", "0.5")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (admin, admin_csrf) = app.session(Role::Admin).await;
    let page = app.get_page(Some(&admin), "/identity/rules").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("name=\"rule.merge_at\"") && page.text().contains("name=\"rule.review_at\""));
    let rules = app.store.match_rules().await.unwrap();
    let review = format!("{}", rules.review_at / 2.0);
    let r = app
        .post_form(
            &admin,
            "/identity/rules",
            &form(&[("csrf", &admin_csrf), ("rule.merge_at", &rules.merge_at.to_string()), ("rule.review_at", &review)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(app.store.match_rules().await.unwrap().review_at, rules.review_at / 2.0);
    // A number that is not one is named beside its field.
    let r = app.post_form(&admin, "/identity/rules", &form(&[("csrf", &admin_csrf), ("rule.merge_at", "high")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"merge_at\""));
}

// ---- who may do what ----

const PAGES: &[&str] = &[
    "/imports",
    "/imports/1",
    "/imports/1/rejections.csv",
    "/imports/1/undo",
    "/imports/profiles",
    "/imports/uploads/0123456789abcdef0123456789abcdef",
    "/identity",
    "/identity/candidates/1",
    "/identity/merges",
    "/identity/rules",
    "/imports/sources",
];

const POSTS: &[&str] = &[
    "/imports/1/run",
    "/imports/1/undo",
    "/imports/profiles",
    "/imports/uploads/0123456789abcdef0123456789abcdef",
    "/imports/sources/schedule",
    "/identity/resolve",
    "/identity/candidates/1/merge",
    "/identity/candidates/1/distinct",
    "/identity/merges/1/undo",
    "/identity/rules",
];

const API: &[(&str, &str)] = &[
    ("GET", "/api/v1/imports"),
    ("POST", "/api/v1/imports?source=x"),
    ("GET", "/api/v1/imports/1"),
    ("GET", "/api/v1/imports/1/rejections"),
    ("POST", "/api/v1/imports/1/undo"),
    ("GET", "/api/v1/identity/candidates"),
    ("POST", "/api/v1/identity/candidates/1/merge"),
    ("POST", "/api/v1/identity/candidates/1/distinct"),
    ("POST", "/api/v1/identity/resolve"),
    ("GET", "/api/v1/identity/merges"),
    ("POST", "/api/v1/identity/merges/1/undo"),
];

#[tokio::test]
async fn every_route_checks_its_permission() {
    let app = TestApp::new().await;
    for role in [Role::Department, Role::Analyst, Role::Leader] {
        let (cookie, csrf) = app.session(role).await;
        for path in PAGES {
            let r = app.get_page(Some(&cookie), path).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?} GET {path}");
            assert!(!r.text().contains("2026"), "a 403 says nothing about records");
        }
        for path in POSTS {
            let r = app.post_form(&cookie, path, &form(&[("csrf", &csrf)])).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?} POST {path}");
        }
        let r = post_multipart(&app, &cookie, &[("csrf", &csrf)], Some(("a.csv", ROSTER.as_bytes()))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?} upload");
        for (method, path) in API {
            let r = app.call(method.parse().unwrap(), path, Some(app.token(role)), None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?} {method} {path}");
            assert_eq!(r.json()["error"]["code"], "forbidden");
        }
    }
    // A librarian may import and review, but not schedule sources or edit the rules.
    let (cookie, _) = app.session(Role::Librarian).await;
    assert_eq!(app.get_page(Some(&cookie), "/imports").await.status, StatusCode::OK);
    assert_eq!(app.get_page(Some(&cookie), "/identity").await.status, StatusCode::OK);
    assert_eq!(app.get_page(Some(&cookie), "/imports/sources").await.status, StatusCode::FORBIDDEN);
    let nav = app.get_page(Some(&cookie), "/").await.text();
    assert!(nav.contains("id=\"nav-imports\"") && nav.contains("id=\"nav-identity\""));
    let (cookie, _) = app.session(Role::Department).await;
    let nav = app.get_page(Some(&cookie), "/").await.text();
    assert!(!nav.contains("id=\"nav-imports\"") && !nav.contains("id=\"nav-identity\""));
    // Provenance is part of the reader record: analysts may not see it.
    let id = reader(&app, "2026200001", "刘一", "化学学院", "ly@example.edu.cn").await;
    let (status, _) = app.get(app.token(Role::Analyst), &format!("/api/v1/readers/{id}/provenance")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.get(app.token(Role::Department), &format!("/api/v1/readers/{id}/provenance")).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn anonymous_visitors_sign_in_first() {
    let app = TestApp::new().await;
    for path in PAGES {
        let r = app.get_page(None, path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "GET {path}");
        assert!(r.header("location").unwrap().starts_with("/login?next="), "GET {path}");
    }
    for (method, path) in API.iter().chain([("GET", "/api/v1/readers/1/provenance")].iter()) {
        let r = app.call(method.parse().unwrap(), path, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = TestApp::new().await;
    let (a, _) = duplicates(&app).await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    app.post_form(&cookie, "/identity/resolve", &form(&[("csrf", &csrf)])).await;
    let candidate = app.store.match_candidates("pending", 1, 10).await.unwrap().items.remove(0);
    for path in [
        "/identity/resolve".to_string(),
        format!("/identity/candidates/{}/merge", candidate.id),
        format!("/identity/candidates/{}/distinct", candidate.id),
        "/imports/profiles".to_string(),
    ] {
        let r = app.post_form(&cookie, &path, &form(&[("survivor", "left"), ("name", "p"), ("toml", "")])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "POST {path}");
    }
    assert_eq!(app.store.match_candidates("pending", 1, 10).await.unwrap().total, 1, "nothing decided");
    assert!(app.store.reader(a).await.is_ok());
}

#[tokio::test]
async fn the_api_is_documented() {
    let app = TestApp::new().await;
    let doc = app.get_page(None, "/api/openapi.json").await.json();
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in API.iter().chain([("GET", "/api/v1/readers/1/provenance")].iter()) {
        let documented = path.split('?').next().unwrap().replace("/1", "/{id}");
        let op = paths.get(&documented).and_then(|p| p.get(method.to_lowercase()));
        assert!(op.is_some_and(|op| op["responses"]["403"].is_object()), "{method} {documented} is documented with its 403");
    }
    let upload = &paths["/api/v1/imports"]["post"];
    assert!(upload["responses"]["202"].is_object() && upload["responses"]["413"].is_object());
    let params: Vec<&str> = upload["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    for name in ["source", "format", "dry_run", "profile", "update_only_present", "deactivate_missing", "all_or_nothing", "file_name"] {
        assert!(params.contains(&name), "query parameter {name}: {params:?}");
    }
}
