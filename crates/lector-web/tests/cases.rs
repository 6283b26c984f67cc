//! Service cases driven in process, role by role: filing, triage, assignment, the department's
//! work, leadership approval, resolution, questions to the reader; refusals (409, 403, 400, 422)
//! that change nothing; the service dashboard; the settings (service levels included); and the
//! API equivalents.

mod common;

use axum::http::StatusCode;
use common::{form, TestApp, PASSWORD};
use lector_domain::case::{CaseInput, CaseKind, CaseStatus, ServiceLevels, WorkCalendar};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_store::auth::NewUser;
use lector_store::cases::{Case, CaseSource};
use lector_store::config::NamedInput;
use lector_store::Actor;
use serde_json::{json, Value};

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

async fn reader(app: &TestApp, card: &str, name: &str) -> i64 {
    let draft = ReaderDraft {
        card_no: card.into(),
        name: name.into(),
        category: "undergraduate".into(),
        contacts: vec![ContactDraft { kind: "email".into(), value: format!("{card}@pku.edu.cn"), primary: true, verified: false }],
        ..Default::default()
    };
    let input = draft.parse(today()).unwrap();
    app.store.create_reader(&app.actor(Role::Librarian), &input).await.unwrap().id
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["field"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

async fn case(app: &TestApp, id: i64) -> Case {
    app.store.case(id).await.unwrap()
}

/// Posts an action form on the case page as the session `cookie`, with the case's current version.
async fn act(app: &TestApp, cookie: &str, csrf: &str, id: i64, pairs: &[(&str, &str)]) -> common::Reply {
    let version = case(app, id).await.version.to_string();
    let mut all: Vec<(&str, &str)> = vec![("csrf", csrf), ("version", &version)];
    all.extend_from_slice(pairs);
    app.post_form(cookie, &format!("/cases/{id}/act"), &form(&all)).await
}

/// A librarian files a complaint through the staff form; returns its id.
async fn file_complaint(app: &TestApp, subject: &str, card: Option<&str>) -> i64 {
    let (lib, csrf) = app.session(Role::Librarian).await;
    let r = app
        .post_form(
            &lib,
            "/cases/new",
            &form(&[
                ("csrf", &csrf),
                ("form_key", &format!("k-{subject}")),
                ("kind", "complaint"),
                ("subject", subject),
                ("body", "三楼自习室晚上很吵，希望加强管理"),
                ("card_no", card.unwrap_or("")),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let location = r.header("location").unwrap();
    let id = location.trim_start_matches("/cases/").split('?').next().unwrap().parse::<i64>().expect(&location);
    assert!(location.ends_with("flash=created"), "{location}");
    id
}

/// Moves a case from received to assigned to circulation, as the librarian.
async fn triage_and_assign(app: &TestApp, id: i64) {
    let (lib, csrf) = app.session(Role::Librarian).await;
    let r = act(app, &lib, &csrf, id, &[("action", "triage"), ("outcome", "accepted"), ("priority", "high")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let r = act(app, &lib, &csrf, id, &[("action", "assign"), ("department", common::DEPARTMENT), ("comment", "请流通部处理")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
}

/// A second department with one member; returns the member's session and API token.
async fn other_department_user(app: &TestApp) -> ((String, String), String) {
    let setup = Actor::system("test");
    app.store
        .create_department(&setup, &NamedInput { code: "reference".into(), name_zh: "参考咨询部".into(), name_en: "Reference".into() })
        .await
        .unwrap();
    let user = app
        .store
        .create_user(
            &setup,
            NewUser {
                username: "refdesk".into(),
                display_name: "参考馆员".into(),
                role: Role::Department,
                department: Some("reference".into()),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    let (token, csrf) = app.store.create_session(user.id).await.unwrap();
    let (_, secret) = app.store.create_token(&setup, "refdesk", "tests").await.unwrap();
    ((format!("{}={token}", lector_web::auth::SESSION_COOKIE), csrf), secret)
}

#[tokio::test]
async fn a_complaint_goes_from_filing_to_resolution_role_by_role() {
    let app = TestApp::new().await;
    let rid = reader(&app, "2024200001", "李雷").await;
    // The librarian's entry form, and the filing itself, linked to the reader.
    let (lib, lib_csrf) = app.session(Role::Librarian).await;
    let page = app.get_page(Some(&lib), "/cases/new").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("id=\"case-form\"") && page.text().contains("name=\"csrf\""));
    let id = file_complaint(&app, "自习室噪音", Some("2024200001")).await;
    let c = case(&app, id).await;
    assert_eq!((c.status, c.reader_id), (CaseStatus::Received, Some(rid)));

    // Triage is offered to the librarian; nothing else is.
    let html = app.get_page(Some(&lib), &format!("/cases/{id}")).await.text();
    assert!(html.contains("id=\"triage-form\"") && !html.contains("id=\"resolve-form\"") && !html.contains("id=\"claim-form\""));
    assert!(html.contains(&format!("href=\"/readers/{rid}\"")), "the reader link");
    triage_and_assign(&app, id).await;
    let c = case(&app, id).await;
    assert_eq!((c.status, c.department.as_deref()), (CaseStatus::Assigned, Some(common::DEPARTMENT)));
    assert!(c.due_at.is_some(), "triage sets the deadline");

    // The department sees it in its queue (the default tab) and the header count; claims and proposes.
    let (dept, dept_csrf) = app.session(Role::Department).await;
    let queue = app.get_page(Some(&dept), "/cases").await;
    assert_eq!(queue.status, StatusCode::OK);
    let queue = queue.text();
    assert!(queue.contains("id=\"tab-dept\"") && queue.contains("自习室噪音") && queue.contains("id=\"open-case-count\""));
    assert!(!queue.contains("id=\"tab-open\""), "department staff do not see all cases");
    let html = app.get_page(Some(&dept), &format!("/cases/{id}")).await.text();
    assert!(html.contains("id=\"claim-form\"") && html.contains("id=\"propose-form\"") && !html.contains("id=\"triage-form\""));
    let r = act(&app, &dept, &dept_csrf, id, &[("action", "claim")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(case(&app, id).await.assignee.as_deref(), Some("dept"));
    let mine = app.get_page(Some(&dept), "/cases?view=mine").await.text();
    assert!(mine.contains("自习室噪音"));
    // An empty proposal is refused beside its field.
    let r = act(&app, &dept, &dept_csrf, id, &[("action", "propose"), ("solution", "  ")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"solution\""));
    let r = act(&app, &dept, &dept_csrf, id, &[("action", "propose"), ("solution", "晚间增加巡查，张贴静音提示")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(case(&app, id).await.status, CaseStatus::AwaitingApproval, "complaints need approval");

    // The department may not approve its own proposal.
    let r = act(&app, &dept, &dept_csrf, id, &[("action", "approve")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The leader finds it awaiting approval, rejects once with a comment, then approves.
    let (leader, leader_csrf) = app.session(Role::Leader).await;
    let default_tab = app.get_page(Some(&leader), "/cases").await.text();
    assert!(default_tab.contains(r#"id="tab-approval" href="/cases?view=approval" class="active""#), "leaders start on approvals");
    let waiting = app.get_page(Some(&leader), "/cases?view=approval").await.text();
    assert!(waiting.contains("自习室噪音") && waiting.contains("id=\"open-case-count\""));
    let html = app.get_page(Some(&leader), &format!("/cases/{id}")).await.text();
    assert!(html.contains("id=\"approve-form\"") && !html.contains("id=\"claim-form\""));
    let r = act(&app, &leader, &leader_csrf, id, &[("action", "reject_proposal"), ("comment", "")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "rejecting needs a comment");
    assert!(r.text().contains("data-field=\"comment\""));
    let r = act(&app, &leader, &leader_csrf, id, &[("action", "reject_proposal"), ("comment", "请补充时间安排")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(case(&app, id).await.status, CaseStatus::Assigned);
    let r = act(&app, &dept, &dept_csrf, id, &[("action", "propose"), ("solution", "每晚 19–22 点巡查，张贴静音提示")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = act(&app, &leader, &leader_csrf, id, &[("action", "approve"), ("comment", "同意")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(case(&app, id).await.status, CaseStatus::InProgress);

    // The department resolves with a reply to the reader.
    let r = act(&app, &dept, &dept_csrf, id, &[("action", "resolve"), ("reply", "已安排晚间巡查，感谢您的反馈")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let c = case(&app, id).await;
    assert_eq!(c.status, CaseStatus::Resolved);
    assert!(c.reply.is_some() && c.resolved_at.is_some());

    // Every step is in the history, with who and why.
    let events = app.store.case_events(id).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["create", "triage", "assign", "claim", "propose", "reject_proposal", "propose", "approve", "resolve"],
        "{events:?}"
    );
    assert!(events.iter().any(|e| e.actor == "leader" && e.comment.as_deref() == Some("请补充时间安排")));
    let html = app.get_page(Some(&lib), &format!("/cases/{id}")).await.text();
    assert!(html.contains("请补充时间安排") && html.contains("data-action=\"approve\""));
    assert!(html.contains("id=\"close-form\"") && html.contains("id=\"reopen-form\""));
    // The librarian closes it; the reader page lists the case.
    let r = act(&app, &lib, &lib_csrf, id, &[("action", "close"), ("comment", "读者电话确认满意")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(case(&app, id).await.status, CaseStatus::Closed);
    let reader_page = app.get_page(Some(&lib), &format!("/readers/{rid}")).await.text();
    assert!(reader_page.contains("id=\"reader-cases\"") && reader_page.contains(&format!("href=\"/cases/{id}\"")));
}

#[tokio::test]
async fn illegal_and_stale_actions_are_409_and_change_nothing() {
    let app = TestApp::new().await;
    let id = file_complaint(&app, "借书证丢失", None).await;
    let before = case(&app, id).await;
    let (lib, csrf) = app.session(Role::Librarian).await;
    // Assigning a case that has not been triaged.
    let r = act(&app, &lib, &csrf, id, &[("action", "assign"), ("department", common::DEPARTMENT)]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(case(&app, id).await, before);
    // A stale version.
    let stale = (before.version - 1).to_string();
    let r = app
        .post_form(
            &lib,
            &format!("/cases/{id}/act"),
            &form(&[("csrf", &csrf), ("version", &stale), ("action", "triage"), ("outcome", "accepted"), ("priority", "normal")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(case(&app, id).await, before);
    assert_eq!(app.store.case_events(id).await.unwrap().len(), 1);
    // The same through the API.
    let token = app.token(Role::Librarian);
    let path = format!("/api/v1/cases/{id}/actions");
    let (status, body) = app.post_json(token, &path, &json!({"version": before.version, "action": "resolve", "reply": "x"})).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"), "librarians do not resolve");
    let (status, body) = app.post_json(token, &path, &json!({"version": before.version, "action": "close"})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"), "{body}");
    let (status, body) =
        app.post_json(token, &path, &json!({"version": before.version + 5, "action": "triage", "outcome": "accepted"})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"), "{body}");
    assert_eq!(case(&app, id).await, before);
}

#[tokio::test]
async fn another_departments_staff_get_403_and_learn_nothing() {
    let app = TestApp::new().await;
    let id = file_complaint(&app, "还书箱故障", None).await;
    triage_and_assign(&app, id).await;
    let before = case(&app, id).await;
    let ((other, csrf), token) = other_department_user(&app).await;
    let r = app.get_page(Some(&other), &format!("/cases/{id}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.text().contains("还书箱故障"));
    // A case that does not exist looks the same.
    assert_eq!(app.get_page(Some(&other), "/cases/999999").await.status, StatusCode::FORBIDDEN);
    let r = act(&app, &other, &csrf, id, &[("action", "claim")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = act(&app, &other, &csrf, id, &[("action", "assign"), ("department", "reference")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no transfer of another department's case");
    let list = app.get_page(Some(&other), "/cases").await.text();
    assert!(!list.contains("还书箱故障"));
    let list = app.get_page(Some(&other), "/cases?view=open&department=circulation").await.text();
    assert!(!list.contains("还书箱故障"), "the department filter cannot widen the scope");

    let (status, body) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    assert!(!body.to_string().contains("还书箱"));
    let (status, body) = app.get(&token, "/api/v1/cases?department=circulation").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 0, "{body}");
    let (status, _) =
        app.post_json(&token, &format!("/api/v1/cases/{id}/actions"), &json!({"version": before.version, "action": "claim"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(case(&app, id).await, before);

    // The case's own department may transfer it to the other one, which then works on it.
    let (dept, dept_csrf) = app.session(Role::Department).await;
    let r = act(&app, &dept, &dept_csrf, id, &[("action", "assign"), ("department", "reference"), ("comment", "属参考咨询部")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(app.get_page(Some(&other), &format!("/cases/{id}")).await.status, StatusCode::OK);
    assert_eq!(app.get_page(Some(&dept), &format!("/cases/{id}")).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn analysts_see_the_dashboard_but_no_cases() {
    let app = TestApp::new().await;
    let id = file_complaint(&app, "空调太冷", None).await;
    let token = app.token(Role::Librarian);
    for (kind, subject) in [("complaint", "座位被占"), ("inquiry", "开放时间")] {
        let (status, body) = app.post_json(token, "/api/v1/cases", &json!({"kind": kind, "subject": subject, "body": "详情"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (analyst, _) = app.session(Role::Analyst).await;
    for path in ["/cases".to_string(), format!("/cases/{id}"), "/cases/new".into(), "/admin/cases".into()] {
        let r = app.get_page(Some(&analyst), &path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!r.text().contains("空调太冷"), "{path}");
    }
    let home = app.get_page(Some(&analyst), "/").await.text();
    assert!(
        home.contains("id=\"nav-service-dashboard\"") && !home.contains("id=\"nav-cases\"") && !home.contains("id=\"tile-open-cases\"")
    );

    let r = app.get_page(Some(&analyst), "/cases/dashboard").await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains("<svg") && html.contains("id=\"chart-by-kind\""), "server-drawn charts");
    assert!(html.contains("id=\"stat-total\">3<"), "three cases in the period");
    let kinds = &html[html.find("id=\"table-by-kind\"").unwrap()..];
    assert!(kinds.contains("投诉") && kinds.contains(">2<") && kinds.contains(">1<"));
    assert!(!html.contains("空调太冷"), "aggregates only");
    // A period before the cases has none; a bad date is named beside its field.
    let html = app.get_page(Some(&analyst), "/cases/dashboard?from=2020-01-01&to=2020-01-31").await.text();
    assert!(html.contains("id=\"stat-total\">0<"));
    let r = app.get_page(Some(&analyst), "/cases/dashboard?from=someday").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"from\""));

    let t = app.token(Role::Analyst);
    let (status, body) = app.get(t, "/api/v1/cases/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3);
    for path in ["/api/v1/cases".to_string(), format!("/api/v1/cases/{id}")] {
        let (status, body) = app.get(t, &path).await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"), "{path}");
    }
    let (status, _) = app.post_json(t, "/api/v1/cases", &json!({"kind": "praise", "subject": "s", "body": "b"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.get(t, "/api/v1/cases/stats?from=2026-13-01").await;
    assert_eq!((status, fields(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["from".to_string()]));
}

#[tokio::test]
async fn forms_need_csrf_and_text_within_limits() {
    let app = TestApp::new().await;
    let (lib, csrf) = app.session(Role::Librarian).await;
    let r = app.post_form(&lib, "/cases/new", &form(&[("kind", "complaint"), ("subject", "无令牌"), ("body", "x")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let long = "很".repeat(5000);
    let r = app.post_form(&lib, "/cases/new", &form(&[("csrf", &csrf), ("kind", "complaint"), ("subject", ""), ("body", &long)])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text();
    assert!(html.contains("data-field=\"subject\"") && html.contains("data-field=\"body\""), "errors beside their fields");
    let r = app.post_form(&lib, "/cases/new", &form(&[("csrf", &csrf), ("kind", "gossip"), ("subject", "s"), ("body", "b")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"kind\""));
    let list = app.store.cases(&lector_store::cases::CaseQuery { page: 1, per_page: 10, ..Default::default() }).await.unwrap();
    assert_eq!(list.total, 0, "nothing filed");

    let id = file_complaint(&app, "网络慢", None).await;
    let before = case(&app, id).await;
    let v = before.version.to_string();
    let r =
        app.post_form(&lib, &format!("/cases/{id}/act"), &form(&[("version", &v), ("action", "triage"), ("outcome", "accepted")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = act(&app, &lib, &csrf, id, &[("action", "triage"), ("outcome", "accepted"), ("comment", &long)]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"comment\""));
    assert_eq!(case(&app, id).await, before);
    // Filing the same form twice (a double submit) makes one case.
    let again = file_complaint(&app, "网络慢", None).await;
    assert_eq!(again, id);
}

#[tokio::test]
async fn the_api_files_reads_and_moves_cases() {
    let app = TestApp::new().await;
    let lib = app.token(Role::Librarian);
    let (status, body) = app
        .post_json(lib, "/api/v1/cases", &json!({"kind": "purchase", "subject": "荐购《三体》", "body": "希望增加复本", "colour": "red"}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_request"), "unknown field");
    let (status, body) = app.post_json(lib, "/api/v1/cases", &json!({"kind": "purchase", "subject": "", "body": "希望增加复本"})).await;
    assert_eq!((status, fields(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["subject".to_string()]));
    let (status, body) =
        app.post_json(lib, "/api/v1/cases", &json!({"kind": "purchase", "subject": "荐购《三体》", "body": "希望增加复本"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["status"].as_str(), body["source"].as_str()), (Some("received"), Some("api")));
    let id = body["id"].as_i64().unwrap();
    let path = format!("/api/v1/cases/{id}/actions");
    let version = body["version"].as_i64().unwrap();

    fn step(status: StatusCode, body: &Value) -> i64 {
        assert_eq!(status, StatusCode::OK, "{body}");
        body["version"].as_i64().unwrap()
    }
    let (s, b) =
        app.post_json(lib, &path, &json!({"version": version, "action": "triage", "outcome": "accepted", "priority": "normal"})).await;
    let v = step(s, &b);
    let (s, b) = app.post_json(lib, &path, &json!({"version": v, "action": "assign", "department": "circulation", "extra": 1})).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "bad_request"), "unknown field in an action");
    let (s, b) = app.post_json(lib, &path, &json!({"version": v, "action": "teleport"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app.post_json(lib, &path, &json!({"action": "claim"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no version: {b}");
    let (s, b) = app.post_json(lib, &path, &json!({"version": v, "action": "assign", "department": "nowhere"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = app.post_json(lib, &path, &json!({"version": v, "action": "assign", "department": "circulation"})).await;
    let v = step(s, &b);
    let dept = app.token(Role::Department);
    let (s, b) = app.post_json(dept, &path, &json!({"version": v, "action": "claim"})).await;
    let v = step(s, &b);
    assert_eq!(b["assignee"], "dept");
    let (s, b) = app.post_json(dept, &path, &json!({"version": v, "action": "propose", "solution": "采购 3 册"})).await;
    let v = step(s, &b);
    assert_eq!(b["status"], "awaiting_approval");
    let leader = app.token(Role::Leader);
    let (s, b) = app.post_json(leader, &path, &json!({"version": v, "action": "approve"})).await;
    let v = step(s, &b);
    assert_eq!(b["status"], "in_progress");
    let (s, b) = app.post_json(dept, &path, &json!({"version": v, "action": "resolve", "reply": "已下单，预计两周到馆"})).await;
    step(s, &b);
    assert_eq!(b["status"], "resolved");

    let (status, body) = app.get(dept, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let actions: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "triage", "assign", "claim", "propose", "approve", "resolve"]);
    let (status, body) = app.get(dept, "/api/v1/cases?status=resolved").await;
    assert_eq!((status, body["total"].as_i64()), (StatusCode::OK, Some(1)), "{body}");
    let (status, body) = app.get(lib, "/api/v1/cases?status=sleeping").await;
    assert_eq!((status, fields(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["status".to_string()]));
    let (status, body) = app.get(leader, "/api/v1/cases/stats").await;
    assert_eq!((status, body["total"].as_i64()), (StatusCode::OK, Some(1)), "{body}");
    assert_eq!(app.get(lib, "/api/v1/cases/stats").await.0, StatusCode::FORBIDDEN, "librarians have no dashboard");
    assert_eq!(app.get(lib, "/api/v1/cases/999999").await.0, StatusCode::NOT_FOUND);

    // The OpenAPI document describes the case routes.
    let doc = app.call(axum::http::Method::GET, "/api/openapi.json", None, None).await.json();
    for p in ["/api/v1/cases", "/api/v1/cases/{id}", "/api/v1/cases/{id}/actions", "/api/v1/cases/stats"] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
}

#[tokio::test]
async fn admins_configure_categories_workflows_and_the_calendar() {
    let app = TestApp::new().await;
    let (admin, csrf) = app.session(Role::Admin).await;
    let (lib, lib_csrf) = app.session(Role::Librarian).await;
    assert_eq!(app.get_page(Some(&lib), "/admin/cases").await.status, StatusCode::FORBIDDEN);
    let r = app.post_form(&lib, "/admin/cases/categories", &form(&[("csrf", &lib_csrf), ("kind", "complaint"), ("code", "noise")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = app.get_page(Some(&admin), "/admin/cases").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("id=\"calendar-form\"") && page.text().contains("id=\"workflow-inquiry\""));

    let r = app
        .post_form(
            &admin,
            "/admin/cases/categories",
            &form(&[("csrf", &csrf), ("kind", "complaint"), ("code", "noise"), ("name_zh", "噪音"), ("name_en", "Noise")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let r = app.post_form(&admin, "/admin/cases/categories", &form(&[("csrf", &csrf), ("kind", "complaint"), ("code", "bad code!")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"code\"") && r.text().contains("data-field=\"name_zh\""));
    let cats = app.store.case_categories(Some(lector_domain::case::CaseKind::Complaint)).await.unwrap();
    assert_eq!(cats.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(), ["noise"]);

    // Inquiries need no approval by default; require it.
    let r = app
        .post_form(
            &admin,
            "/admin/cases/workflow",
            &form(&[("csrf", &csrf), ("kind", "inquiry"), ("requires_approval", "on"), ("auto_close_days", "5")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let wf = app.store.workflow(lector_domain::case::CaseKind::Inquiry).await.unwrap();
    assert!(wf.requires_approval && wf.auto_close_days == 5);
    let r = app.post_form(&admin, "/admin/cases/workflow", &form(&[("csrf", &csrf), ("kind", "inquiry"), ("auto_close_days", "0")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    let r = app
        .post_form(
            &admin,
            "/admin/cases/calendar",
            &form(&[
                ("csrf", &csrf),
                ("day_start", "09:00"),
                ("day_end", "08:00"),
                ("holidays", "2026-10-01\nsomeday"),
                ("extra_workdays", ""),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"day_end\"") && r.text().contains("data-field=\"holidays\""));
    let r = app
        .post_form(
            &admin,
            "/admin/cases/calendar",
            &form(&[
                ("csrf", &csrf),
                ("day_start", "08:00"),
                ("day_end", "17:00"),
                ("holidays", "2026-10-01 2026-10-02"),
                ("extra_workdays", "2026-10-10"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let cal = app.store.work_calendar().await.unwrap();
    assert_eq!((cal.holidays.len(), cal.extra_workdays.len()), (2, 1));
    assert_eq!(cal.day_end, chrono::NaiveTime::from_hms_opt(17, 0, 0).unwrap());

    // The configured category is offered at triage.
    let id = file_complaint(&app, "施工噪音", None).await;
    let html = app.get_page(Some(&lib), &format!("/cases/{id}")).await.text();
    assert!(html.contains("value=\"noise\""));
    let r = act(&app, &lib, &lib_csrf, id, &[("action", "triage"), ("outcome", "accepted"), ("category", "noise"), ("priority", "urgent")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(case(&app, id).await.category.as_deref(), Some("noise"));
}

#[tokio::test]
async fn home_and_navigation_show_case_counts() {
    let app = TestApp::new().await;
    let id = file_complaint(&app, "灯光昏暗", None).await;
    triage_and_assign(&app, id).await;
    let (dept, _) = app.session(Role::Department).await;
    let home = app.get_page(Some(&dept), "/").await.text();
    assert!(home.contains("id=\"nav-cases\"") && home.contains("id=\"open-case-count\"") && home.contains("id=\"tile-open-cases\""));
    assert!(home.contains("id=\"tile-overdue-cases\"") && !home.contains("id=\"nav-service-dashboard\""));
    let (leader, _) = app.session(Role::Leader).await;
    let home = app.get_page(Some(&leader), "/").await.text();
    assert!(home.contains("id=\"nav-cases\"") && home.contains("id=\"nav-service-dashboard\""));
    assert!(!home.contains("id=\"open-case-count\""), "nothing awaits approval yet");
    // Triage outcomes that end the case: a duplicate closes with a link to the first.
    let dup = file_complaint(&app, "灯光太暗", None).await;
    let (lib, csrf) = app.session(Role::Librarian).await;
    let first = id.to_string();
    let r =
        act(&app, &lib, &csrf, dup, &[("action", "triage"), ("outcome", "duplicate"), ("duplicate_of", &first), ("priority", "normal")])
            .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let c = case(&app, dup).await;
    assert_eq!((c.status, c.duplicate_of), (CaseStatus::Closed, Some(id)));
    let html = app.get_page(Some(&lib), "/cases?view=open&kind=complaint").await.text();
    assert!(html.contains("灯光昏暗") && !html.contains("灯光太暗"), "closed cases are not open");
}

/// A complaint filed on the portal (only such a case has a tracking page where its reader can
/// be asked); returns its id.
async fn portal_complaint(app: &TestApp, subject: &str) -> i64 {
    let input = CaseInput {
        kind: CaseKind::Complaint,
        subject: subject.into(),
        body: "借书证刷卡无反应。".into(),
        card_no: None,
        contact_name: Some("陈读者".into()),
        contact: Some("chen@example.com".into()),
    };
    app.store.create_case(&Actor::system("portal"), &input, CaseSource::Portal, None).await.unwrap().0.id
}

fn local(v: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M").unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[tokio::test]
async fn staff_ask_the_reader_and_withdraw_the_question() {
    let app = TestApp::new().await;
    let id = portal_complaint(&app, "借书证无法使用").await;
    let (lib, csrf) = app.session(Role::Librarian).await;
    let html = app.get_page(Some(&lib), &format!("/cases/{id}")).await.text();
    assert!(html.contains("id=\"request-info-form\"") && html.contains("id=\"triage-form\""), "triage staff may ask before triage");

    // A case filed by staff has no tracking page: no question form, and a forged one is a 409.
    let by_staff = file_complaint(&app, "电话投诉", None).await;
    assert!(!app.get_page(Some(&lib), &format!("/cases/{by_staff}")).await.text().contains("id=\"request-info-form\""));
    let before = case(&app, by_staff).await;
    let r = act(&app, &lib, &csrf, by_staff, &[("action", "request_info"), ("question", "您的邮箱？")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(case(&app, by_staff).await, before);

    // An empty or oversized question is refused beside its field and changes nothing.
    let before = case(&app, id).await;
    for question in ["  ".to_string(), "问".repeat(2001)] {
        let r = act(&app, &lib, &csrf, id, &[("action", "request_info"), ("question", &question)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().contains("data-field=\"question\""));
    }
    assert_eq!(case(&app, id).await, before);

    let r = act(&app, &lib, &csrf, id, &[("action", "request_info"), ("question", "请问您的读者证号是多少？")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let c = case(&app, id).await;
    assert_eq!((c.status, c.resume_status), (CaseStatus::AwaitingReader, Some(CaseStatus::Received)));
    let html = app.get_page(Some(&lib), &format!("/cases/{id}")).await.text();
    assert!(
        html.contains("data-status=\"awaiting_reader\"")
            && html.contains("id=\"case-question\"")
            && html.contains("请问您的读者证号是多少？")
    );
    assert!(html.contains("id=\"withdraw-form\"") && !html.contains("id=\"triage-form\"") && !html.contains("id=\"request-info-form\""));
    assert!(html.contains("data-action=\"request_info\"") && html.contains("id=\"clock-paused\""));
    // Asking again, or triaging while the reader is asked, is a 409 that changes nothing.
    let before = case(&app, id).await;
    let r = act(&app, &lib, &csrf, id, &[("action", "request_info"), ("question", "还有吗？")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = act(&app, &lib, &csrf, id, &[("action", "triage"), ("outcome", "accepted"), ("priority", "normal")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(case(&app, id).await, before);
    // The librarian withdraws it (the reader called instead): back to received.
    let r = act(&app, &lib, &csrf, id, &[("action", "withdraw_question"), ("comment", "读者已来电告知")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let c = case(&app, id).await;
    assert_eq!((c.status, c.question), (CaseStatus::Received, None));
    let events = app.store.case_events(id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!((last.action.as_str(), last.actor.as_str()), ("withdraw_question", "librarian"));
    assert!(last.comment.as_deref().unwrap_or_default().contains("读者已来电告知"));

    // Once assigned, the question is the department's to ask (here through the API).
    triage_and_assign(&app, id).await;
    let r = act(&app, &lib, &csrf, id, &[("action", "request_info"), ("question", "?")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the librarian no longer handles an assigned case");
    let path = format!("/api/v1/cases/{id}/actions");
    let version = case(&app, id).await.version;
    let dept = app.token(Role::Department);
    let (s, b) = app.post_json(dept, &path, &json!({"version": version, "action": "request_info", "question": "哪台自助机？"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["status"].as_str(), b["question"].as_str(), b["resume_status"].as_str()),
        (Some("awaiting_reader"), Some("哪台自助机？"), Some("assigned"))
    );
    assert!(b["awaiting_since"].is_string(), "{b}");
    let v = b["version"].as_i64().unwrap();
    // Staff cannot answer for the reader; a librarian cannot withdraw the department's question.
    let (s, b) = app.post_json(dept, &path, &json!({"version": v, "action": "reader_reply", "text": "一楼"})).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "bad_request"), "{b}");
    let (s, _) = app.post_json(app.token(Role::Librarian), &path, &json!({"version": v, "action": "withdraw_question"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app.post_json(dept, &path, &json!({"version": v, "action": "request_info", "question": "再问"})).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "conflict"), "{b}");
    let (s, b) = app.post_json(dept, &path, &json!({"version": v, "action": "withdraw_question", "comment": "已线下联系"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b["status"].as_str(), b["question"].is_null()), (Some("assigned"), true));
    let doc = app.call(axum::http::Method::GET, "/api/openapi.json", None, None).await.json();
    let schema = doc["components"]["schemas"]["ActionBody"].to_string();
    assert!(schema.contains("request_info") && schema.contains("withdraw_question"), "{schema}");
}

#[tokio::test]
async fn admins_set_service_levels_for_new_deadlines() {
    let app = TestApp::new().await;
    let (admin, csrf) = app.session(Role::Admin).await;
    let (lib, lib_csrf) = app.session(Role::Librarian).await;
    let levels = |urgent: &'static str, high: &'static str, normal: &'static str, low: &'static str| {
        move |csrf: &str| {
            form(&[("csrf", csrf), ("kind", "complaint"), ("urgent", urgent), ("high", high), ("normal", normal), ("low", low)])
        }
    };
    let quick = levels("2", "4", "6", "8");
    let r = app.post_form(&lib, "/admin/cases/service-levels", &quick(&lib_csrf)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = app.get_page(Some(&admin), "/admin/cases").await.text();
    assert!(page.contains("id=\"levels-complaint\"") && page.contains("id=\"levels-purchase\""));
    assert!(page.contains("name=\"normal\" min=\"1\" max=\"2000\" value=\"40\""), "the default complaint level is shown");

    // A complaint triaged before the change.
    let early = file_complaint(&app, "早先的投诉", None).await;
    let r = act(&app, &lib, &lib_csrf, early, &[("action", "triage"), ("outcome", "accepted"), ("priority", "normal")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let early_due = case(&app, early).await.due_at;

    // Not a number, and swapped levels, are refused beside their field; nothing is stored.
    for (bad, field) in
        [(levels("x", "4", "6", "8"), "urgent"), (levels("9", "4", "6", "8"), "urgent"), (levels("2", "4", "6", "0"), "low")]
    {
        let r = app.post_form(&admin, "/admin/cases/service-levels", &bad(&csrf)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(r.text().contains(&format!("data-field=\"{field}\"")), "{field}: {}", r.text());
    }
    assert_eq!(app.store.service_levels(CaseKind::Complaint).await.unwrap(), ServiceLevels::default_for(CaseKind::Complaint));
    let r = app.post_form(&admin, "/admin/cases/service-levels", &form(&[("kind", "complaint"), ("urgent", "1")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no CSRF token");

    let r = app.post_form(&admin, "/admin/cases/service-levels", &quick(&csrf)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(app.store.service_levels(CaseKind::Complaint).await.unwrap(), ServiceLevels { urgent: 2, high: 4, normal: 6, low: 8 });
    let trail = app.store.audit_trail("settings", "case.service_levels.complaint").await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].actor_name, "admin");
    assert!(app.get_page(Some(&admin), "/admin/cases").await.text().contains("name=\"normal\" min=\"1\" max=\"2000\" value=\"6\""));

    // The open case keeps its deadline; the next complaint gets six working hours.
    assert_eq!(case(&app, early).await.due_at, early_due);
    let next = file_complaint(&app, "之后的投诉", None).await;
    let cal = WorkCalendar::standard();
    let before = chrono::Local::now().naive_local() - chrono::Duration::minutes(1);
    let r = act(&app, &lib, &lib_csrf, next, &[("action", "triage"), ("outcome", "accepted"), ("priority", "normal")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let after = chrono::Local::now().naive_local() + chrono::Duration::minutes(1);
    let due = local(case(&app, next).await.due_at.as_deref().unwrap());
    assert!(cal.add_working_hours(before, 6) <= due && due <= cal.add_working_hours(after, 6), "{due}");
}
