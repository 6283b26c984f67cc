//! The readers' portal under `/portal`, in process: filing a case without an account, its CSRF
//! protection, idempotency and rate limit, the tracking page, answering the library's question,
//! and the rating.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{Method, Request, StatusCode};
use common::{form, Reply, TestApp};
use lector_domain::case::{CaseAction, CaseKind, CaseStatus, Priority, TriageOutcome};
use lector_domain::role::Role;
use lector_store::cases::{CaseCategory, CaseQuery, CaseSource};
use std::net::SocketAddr;

/// The CSRF cookie and the hidden idempotency key of a fresh portal form.
struct FormTokens {
    cookie: String,
    csrf: String,
    key: String,
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no hidden {name} in the form:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_string()
}

async fn open_form(app: &TestApp) -> FormTokens {
    let r = app.get_page(None, "/portal/new").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let set = r.header(SET_COOKIE.as_str()).expect("the form sets its CSRF cookie");
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    assert!(cookie.starts_with("lector_portal_csrf="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let html = r.text();
    let csrf = hidden(&html, "csrf");
    assert_eq!(cookie, format!("lector_portal_csrf={csrf}"), "double-submit: the cookie and the field carry the same token");
    FormTokens { cookie, csrf, key: hidden(&html, "key") }
}

fn complaint<'a>(t: &'a FormTokens, subject: &'a str, contact: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("kind", "complaint"),
        ("subject", subject),
        ("body", "三楼自习室晚上太吵，希望加强管理。"),
        ("contact_name", "陈读者"),
        ("contact", contact),
        ("card_no", ""),
        ("key", &t.key),
        ("csrf", &t.csrf),
    ]
}

/// Posts the portal form, optionally as coming from `ip`.
async fn post(app: &TestApp, cookie: &str, body: &str, ip: Option<[u8; 4]>) -> Reply {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/portal/new")
        .header(COOKIE, cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .expect("request");
    if let Some(ip) = ip {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    }
    app.send(req).await
}

/// The tracking path (`/portal/track/…`) shown on the confirmation page.
fn tracking_path(r: &Reply) -> String {
    let html = r.text();
    let marker = "id=\"tracking-link\" class=\"mono\" href=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no tracking link on the page:\n{html}")) + marker.len();
    let path = html[start..].split('"').next().unwrap_or_default().to_string();
    assert!(path.starts_with("/portal/track/"), "{path}");
    path
}

fn token_of(path: &str) -> &str {
    path.trim_start_matches("/portal/track/")
}

async fn file(app: &TestApp, subject: &str) -> String {
    let t = open_form(app).await;
    let r = post(app, &t.cookie, &form(&complaint(&t, subject, "chen@example.com")), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    tracking_path(&r)
}

async fn all_cases(app: &TestApp) -> i64 {
    app.store.cases(&CaseQuery { page: 1, per_page: 100, ..Default::default() }).await.expect("cases").total
}

#[tokio::test]
async fn portal_home_lists_what_readers_can_send() {
    let app = TestApp::new().await;
    let r = app.get_page(None, "/portal").await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    for k in CaseKind::ALL {
        assert!(html.contains(&format!("data-kind=\"{}\"", k.code())), "the portal offers {k:?}");
    }
    assert!(html.contains("/portal/new") && html.contains("/portal/track/"), "it explains filing and the tracking link");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
}

#[tokio::test]
async fn submit_files_a_portal_case_with_a_tracking_link() {
    let app = TestApp::new().await;
    let path = file(&app, "自习室噪音").await;
    let case = app.store.case_by_token(token_of(&path)).await.expect("the link finds the case");
    assert_eq!(case.source, CaseSource::Portal);
    assert_eq!(case.kind, CaseKind::Complaint);
    assert_eq!(case.status, CaseStatus::Received);
    assert_eq!(case.subject, "自习室噪音");
    assert_eq!(case.contact_name.as_deref(), Some("陈读者"));
    assert!(case.contact.is_some());
    assert_eq!(all_cases(&app).await, 1);

    let r = app.get_page(None, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(html.contains(&case.number), "the tracking page names the case number");
    assert!(html.contains("data-status=\"received\""), "{html}");
    assert!(html.contains("data-step=\"received\""), "the history starts with receipt");
    assert!(!html.contains("id=\"rate-form\""), "no rating before an answer");
    assert_eq!(r.header("referrer-policy").as_deref(), Some("no-referrer"), "the secret link never leaks as a referrer");
}

#[tokio::test]
async fn double_submit_with_the_same_key_makes_one_case() {
    let app = TestApp::new().await;
    let t = open_form(&app).await;
    let body = form(&complaint(&t, "同一份表单", "chen@example.com"));
    let first = post(&app, &t.cookie, &body, None).await;
    let second = post(&app, &t.cookie, &body, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(all_cases(&app).await, 1, "one case for a form sent twice");
    // The browser shows only the second answer: it still carries the same link.
    assert_eq!(tracking_path(&first), tracking_path(&second));
}

#[tokio::test]
async fn missing_contact_or_bad_email_is_422_beside_the_field() {
    let app = TestApp::new().await;
    let t = open_form(&app).await;
    let r = post(&app, &t.cookie, &form(&complaint(&t, "无联系方式", "")), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("data-field=\"contact\""), "the error sits beside the contact field:\n{}", r.text());
    assert!(r.text().contains("无联系方式"), "the form keeps what was typed");

    let r = post(&app, &t.cookie, &form(&complaint(&t, "邮箱不对", "chen@")), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("data-field=\"contact\""), "{}", r.text());

    let mut fields = complaint(&t, "无姓名", "chen@example.com");
    fields.retain(|(k, _)| *k != "contact_name");
    let r = post(&app, &t.cookie, &form(&fields), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("data-field=\"contact_name\""), "{}", r.text());

    let long = "很".repeat(5000);
    let mut fields = complaint(&t, "太长", "chen@example.com");
    fields.retain(|(k, _)| *k != "body");
    fields.push(("body", &long));
    let r = post(&app, &t.cookie, &form(&fields), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "oversized text is refused");
    assert!(r.text().contains("data-field=\"body\""));
    assert_eq!(all_cases(&app).await, 0, "nothing filed");
}

#[tokio::test]
async fn missing_or_wrong_csrf_is_400() {
    let app = TestApp::new().await;
    let t = open_form(&app).await;
    let mut fields = complaint(&t, "无令牌", "chen@example.com");
    fields.retain(|(k, _)| *k != "csrf");
    let r = post(&app, &t.cookie, &form(&fields), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no csrf field");
    // A field without the cookie (a forged cross-site post) is refused too.
    let r = post(&app, "lang=zh", &form(&complaint(&t, "无 cookie", "chen@example.com")), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no csrf cookie");
    let r = post(&app, "lector_portal_csrf=00000000000000000000000000000000", &form(&complaint(&t, "错", "chen@example.com")), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "mismatched cookie");
    assert_eq!(all_cases(&app).await, 0);
}

#[tokio::test]
async fn sixth_submission_from_one_address_in_ten_minutes_is_429() {
    let app = TestApp::new().await;
    // Without ConnectInfo (this harness) every request counts as the address "local".
    for i in 0..5 {
        let t = open_form(&app).await;
        let r = post(&app, &t.cookie, &form(&complaint(&t, &format!("第 {i} 件"), "chen@example.com")), None).await;
        assert_eq!(r.status, StatusCode::OK, "submission {i}: {}", r.text());
    }
    let t = open_form(&app).await;
    let r = post(&app, &t.cookie, &form(&complaint(&t, "第 6 件", "chen@example.com")), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.text().contains("5"), "the message says the limit: {}", r.text());
    assert_eq!(all_cases(&app).await, 5);

    // Another address is counted on its own, and an address with ConnectInfo has its own quota.
    for i in 0..5 {
        let t = open_form(&app).await;
        let r = post(&app, &t.cookie, &form(&complaint(&t, &format!("B {i}"), "b@example.com")), Some([192, 0, 2, 7])).await;
        assert_eq!(r.status, StatusCode::OK, "address B, submission {i}");
    }
    let t = open_form(&app).await;
    let r = post(&app, &t.cookie, &form(&complaint(&t, "B 6", "b@example.com")), Some([192, 0, 2, 7])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = post(&app, &t.cookie, &form(&complaint(&t, "C 1", "c@example.com")), Some([192, 0, 2, 8])).await;
    assert_eq!(r.status, StatusCode::OK, "address C is not limited by B");
}

#[tokio::test]
async fn forged_token_is_a_404_page() {
    let app = TestApp::new().await;
    file(&app, "真实的").await;
    for path in ["/portal/track/0123456789abcdef0123456789abcdef", "/portal/track/x", "/portal/track/%3Cscript%3E"] {
        let r = app.get_page(None, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        let html = r.text();
        assert!(html.contains("链接无效"), "the page says the link is not valid: {html}");
        assert!(!html.contains("panicked") && !html.contains("src/"), "never a stack trace");
    }
    let r = app.get_page(Some("lang=en"), "/portal/track/0123456789abcdef0123456789abcdef").await;
    assert!(r.text().contains("not valid"), "in English too");
}

/// Drives the case to Resolved through the store as staff would.
async fn resolve(app: &TestApp, id: i64, reply: &str) {
    let admin = app.actor(Role::Admin);
    let _ = app
        .store
        .create_case_category(
            &admin,
            &CaseCategory {
                kind: CaseKind::Complaint, code: "environment".into(), name_zh: "环境".into(), name_en: "Environment".into()
            },
        )
        .await;
    let mut c = app.store.case(id).await.expect("case");
    let act = |who: Role, action: CaseAction, version: i64| {
        let actor = app.actor(who);
        async move { app.store.act_on_case(&actor, id, &action, version).await.unwrap_or_else(|e| panic!("{who:?} {action:?}: {e}")) }
    };
    c = act(
        Role::Librarian,
        CaseAction::Triage {
            outcome: TriageOutcome::Accepted,
            category: Some("environment".into()),
            priority: Priority::Normal,
            duplicate_of: None,
            comment: Some("内部备注：已核实".into()),
        },
        c.version,
    )
    .await;
    c = act(Role::Librarian, CaseAction::Assign { department: common::DEPARTMENT.into(), comment: None }, c.version).await;
    c = act(Role::Department, CaseAction::Claim, c.version).await;
    c = act(Role::Department, CaseAction::Propose { solution: "晚间增加巡查".into() }, c.version).await;
    if c.status == CaseStatus::AwaitingApproval {
        c = act(Role::Leader, CaseAction::Approve { comment: None }, c.version).await;
    }
    assert_eq!(c.status, CaseStatus::InProgress);
    c = act(Role::Department, CaseAction::Resolve { reply: reply.into() }, c.version).await;
    assert_eq!(c.status, CaseStatus::Resolved);
}

async fn rate(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Reply {
    let page = app.get_page(None, path).await;
    let set = page.header(SET_COOKIE.as_str()).expect("the tracking page sets the CSRF cookie");
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let csrf = cookie.trim_start_matches("lector_portal_csrf=").to_string();
    let mut fields = fields.to_vec();
    fields.push(("csrf", &csrf));
    app.post_form(&cookie, &format!("{path}/rate"), &form(&fields)).await
}

#[tokio::test]
async fn rating_is_refused_before_resolution_then_closes_the_case_once() {
    let app = TestApp::new().await;
    let path = file(&app, "需要答复").await;
    let id = app.store.case_by_token(token_of(&path)).await.expect("case").id;

    let r = rate(&app, &path, &[("satisfaction", "5"), ("recommend", "9")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.text().contains("答复之后才能评价"), "a clear message: {}", r.text());
    assert!(app.store.case(id).await.expect("case").rating.is_none());

    resolve(&app, id, "已安排晚间巡查，感谢反馈。").await;
    let r = app.get_page(None, &path).await;
    let html = r.text();
    assert!(html.contains("已安排晚间巡查"), "the reader sees the reply");
    assert!(!html.contains("内部备注") && !html.contains("晚间增加巡查"), "never internal comments or the proposal");
    assert!(html.contains("data-status=\"resolved\"") && html.contains("id=\"rate-form\""));

    let r = rate(&app, &path, &[("satisfaction", "9")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "satisfaction is 1–5");
    assert!(r.text().contains("data-field=\"satisfaction\""));

    let r = rate(&app, &path, &[("satisfaction", "4"), ("recommend", "8"), ("comment", "处理及时")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let c = app.store.case(id).await.expect("case");
    assert_eq!(c.status, CaseStatus::Closed, "rating closes the case");
    let rating = c.rating.expect("rating stored");
    assert_eq!((rating.satisfaction, rating.recommend, rating.comment.as_deref()), (4, Some(8), Some("处理及时")));

    let r = rate(&app, &path, &[("satisfaction", "1")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "rating twice is refused");
    assert!(r.text().contains("已评价"), "{}", r.text());
    assert_eq!(app.store.case(id).await.expect("case").rating.map(|r| r.satisfaction), Some(4));
    let html = app.get_page(None, &path).await.text();
    assert!(html.contains("data-status=\"closed\"") && !html.contains("id=\"rate-form\""));
}

/// Staff ask the reader of case `id` a question (as the librarian, before triage).
async fn ask(app: &TestApp, id: i64, question: &str) {
    let c = app.store.case(id).await.expect("case");
    let action = CaseAction::RequestInfo { question: question.into() };
    let asked = app.store.act_on_case(&app.actor(Role::Librarian), id, &action, c.version).await.expect("ask the reader");
    assert_eq!(asked.status, CaseStatus::AwaitingReader);
}

/// The tracking page's CSRF cookie and the reply form's fields (the idempotency key, once shown).
async fn reply_form(app: &TestApp, path: &str) -> (String, String, String) {
    let page = app.get_page(None, path).await;
    let set = page.header(SET_COOKIE.as_str()).expect("the tracking page sets the CSRF cookie");
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let csrf = cookie.trim_start_matches("lector_portal_csrf=").to_string();
    let html = page.text();
    let key = if html.contains("id=\"reply-form\"") { hidden(&html, "key") } else { "no-reply-form-key-000".into() };
    (cookie, csrf, key)
}

async fn answer(app: &TestApp, path: &str, text: &str) -> Reply {
    let (cookie, csrf, key) = reply_form(app, path).await;
    app.post_form(&cookie, &format!("{path}/reply"), &form(&[("text", text), ("key", &key), ("csrf", &csrf)])).await
}

async fn events(app: &TestApp, id: i64, action: &str) -> usize {
    app.store.case_events(id).await.expect("events").iter().filter(|e| e.action == action).count()
}

#[tokio::test]
async fn the_reader_answers_the_librarys_question_on_the_tracking_page() {
    let app = TestApp::new().await;
    let path = file(&app, "借书证无法使用").await;
    let id = app.store.case_by_token(token_of(&path)).await.expect("case").id;

    // No question yet: no form, and an answer is a 409 that says why.
    assert!(!app.get_page(None, &path).await.text().contains("id=\"reply-form\""));
    let r = answer(&app, &path, "补充").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.text().contains("没有需要您补充的问题"), "{}", r.text());

    ask(&app, id, "请问您的读者证号是多少？").await;
    let html = app.get_page(None, &path).await.text();
    assert!(html.contains("data-status=\"awaiting_reader\"") && html.contains("需要您补充信息"), "{html}");
    assert!(html.contains("id=\"reply-form\"") && html.contains("id=\"case-question\"") && html.contains("请问您的读者证号是多少？"));
    assert!(html.contains("data-step=\"question\""), "the question is in the history");

    // Without the CSRF cookie and field, oversized or empty: refused, nothing changes.
    let before = app.store.case(id).await.expect("case");
    let r = app.post_form("lang=zh", &format!("{path}/reply"), &form(&[("text", "2024001"), ("key", "k-000000000000000001")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no CSRF");
    let long = "很".repeat(2001);
    let r = answer(&app, &path, &long).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "oversized text is refused");
    assert!(r.text().contains("data-field=\"text\"") && r.text().contains("最多 2000 个字"), "a clear message beside the field");
    let r = answer(&app, &path, "   ").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"text\""));
    assert_eq!(app.store.case(id).await.expect("case"), before);

    // The same form sent twice (a double click): one answer, and both see it accepted.
    let (cookie, csrf, key) = reply_form(&app, &path).await;
    let body = form(&[("text", "读者证号 2024001，刷卡时提示无效。"), ("key", &key), ("csrf", &csrf)]);
    for _ in 0..2 {
        let r = app.post_form(&cookie, &format!("{path}/reply"), &body).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        assert_eq!(r.header("location").as_deref(), Some(&*format!("{path}?flash=answered")));
    }
    assert_eq!(events(&app, id, "reader_reply").await, 1);
    let c = app.store.case(id).await.expect("case");
    assert_eq!((c.status, c.question), (CaseStatus::Received, None), "back where it was asked");
    let html = app.get_page(None, &format!("{path}?flash=answered")).await.text();
    assert!(html.contains("data-step=\"answered\"") && html.contains("刷卡时提示无效") && !html.contains("id=\"reply-form\""));
    assert!(html.contains("已收到您补充的信息"), "a thank-you");

    // Staff see the answer in the case history, by the reader.
    let (lib, _) = app.session(Role::Librarian).await;
    let staff_page = app.get_page(Some(&lib), &format!("/cases/{id}")).await.text();
    let row = &staff_page[staff_page.find("data-action=\"reader_reply\"").expect("the answer is in the history")..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    assert!(row.contains("读者") && row.contains("刷卡时提示无效"), "{row}");

    // A new form now that no question is open: 409, nothing changes.
    let before = app.store.case(id).await.expect("case");
    let r = answer(&app, &path, "再补充一点").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(app.store.case(id).await.expect("case"), before);
    // A forged token is the invalid-link page.
    let forged = "/portal/track/0123456789abcdef0123456789abcdef/reply";
    let r = app.post_form(&cookie, forged, &form(&[("text", "x"), ("key", "k-000000000000000002"), ("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("链接无效"));
}

#[tokio::test]
async fn sixth_answer_from_one_address_in_ten_minutes_is_429() {
    let app = TestApp::new().await;
    let path = file(&app, "多次补充").await;
    let id = app.store.case_by_token(token_of(&path)).await.expect("case").id;
    for i in 0..5 {
        ask(&app, id, &format!("第 {i} 个问题")).await;
        let r = answer(&app, &path, &format!("第 {i} 个回答")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "answer {i}: {}", r.text());
    }
    ask(&app, id, "第 6 个问题").await;
    let r = answer(&app, &path, "第 6 个回答").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.text().contains("5"), "the message says the limit");
    assert_eq!(app.store.case(id).await.expect("case").status, CaseStatus::AwaitingReader, "nothing recorded");
    assert_eq!(events(&app, id, "reader_reply").await, 5);
    // Answers have their own quota: the same address may still file a case.
    file(&app, "另一件事").await;
}
