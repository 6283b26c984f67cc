//! HTML pages driven in process: sign-in, CSRF, permissions, reader forms, audit, export.

mod common;

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{Method, Request, StatusCode};
use common::{form, TestApp, PASSWORD};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_store::audit::AuditQuery;

async fn reader(app: &TestApp, card: &str, name: &str, email: &str) -> i64 {
    let draft = ReaderDraft {
        card_no: card.into(),
        name: name.into(),
        category: "undergraduate".into(),
        affiliation: Some("计算机学院".into()),
        contacts: vec![ContactDraft { kind: "email".into(), value: email.into(), primary: true, verified: false }],
        ..Default::default()
    };
    let input = draft.parse(chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()).unwrap();
    app.store.create_reader(&app.actor(Role::Librarian), &input).await.unwrap().id
}

/// The form fields of reader `id` as the edit page would post them back.
fn edit_fields<'a>(csrf: &'a str, version: &'a str, affiliation: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("version", version),
        ("card_no", "2024000001"),
        ("name", "张晓明"),
        ("gender", "male"),
        ("category", "undergraduate"),
        ("status", "active"),
        ("affiliation", affiliation),
        ("contacts[0].kind", "email"),
        ("contacts[0].value", email),
        ("contacts[1].kind", "mobile"),
        ("contacts[1].value", ""),
        ("tags", "新生，读书会"),
    ]
}

#[tokio::test]
async fn pages_require_sign_in() {
    let app = TestApp::new().await;
    let r = app.get_page(None, "/readers?q=zh").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location").as_deref(), Some("/login?next=/readers%3Fq%3Dzh"));
    let r = app.get_page(Some("lector_session=forged"), "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sign_in_sets_a_protected_session_cookie() {
    let app = TestApp::new().await;
    let page = app.get_page(None, "/login").await;
    assert_eq!(page.status, StatusCode::OK);
    let pre = page.header("set-cookie").expect("login CSRF cookie");
    let token = pre.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    assert!(page.text().contains(&token), "the form carries the same token");

    let post = |body: String, cookie: String| {
        Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, cookie)
            .body(Body::from(body))
            .unwrap()
    };
    let cookie = format!("lector_login_csrf={token}");
    // Without the matching token: refused.
    let r = app.send(post(form(&[("username", "librarian"), ("password", PASSWORD), ("csrf", "nope")]), cookie.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.header("set-cookie").is_some_and(|c| !c.contains("lector_session")));
    // Wrong password: same page, an error, no session.
    let r = app.send(post(form(&[("username", "librarian"), ("password", "wrong password!"), ("csrf", &token)]), cookie.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text().contains("用户名或密码不正确"));
    // Right password: a session cookie that scripts cannot read.
    let r =
        app.send(post(form(&[("username", "librarian"), ("password", PASSWORD), ("csrf", &token), ("next", "/readers")]), cookie)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location").as_deref(), Some("/readers"));
    let session = r
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("lector_session="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"), "{session}");
    let cookie = session.split(';').next().unwrap().to_string();
    let home = app.get_page(Some(&cookie), "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text().contains("读者总数"));
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let app = TestApp::new().await;
    let page = app.get_page(None, "/login").await;
    let pre = page.header("set-cookie").unwrap();
    let token = pre.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let attempt = |pw: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, format!("lector_login_csrf={token}"))
            .body(Body::from(form(&[("username", "leader"), ("password", pw), ("csrf", &token)])))
            .unwrap()
    };
    let mut last = StatusCode::OK;
    for _ in 0..5 {
        last = app.send(attempt("not the password")).await.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let r = app.send(attempt(PASSWORD)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "locked even with the right password");
    assert!(r.text().contains("锁定"));
}

#[tokio::test]
async fn librarian_creates_and_edits_a_reader_and_the_audit_shows_it() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let new = app.get_page(Some(&cookie), "/readers/new").await;
    assert_eq!(new.status, StatusCode::OK);
    assert!(new.text().contains(&csrf), "the form carries the session's CSRF token");

    let mut fields = edit_fields(&csrf, "0", "计算机学院", "ZXM@pku.edu.cn");
    let r = app.post_form(&cookie, "/readers/new", &form(&fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let location = r.header("location").unwrap();
    let id: i64 = location.trim_start_matches("/readers/").split('?').next().unwrap().parse().unwrap();
    let created = app.store.reader(id).await.unwrap();
    assert_eq!(created.contacts[0].value, "zxm@pku.edu.cn");
    assert_eq!(created.tags, vec!["新生", "读书会"]);

    let detail = app.get_page(Some(&cookie), &location).await;
    assert!(detail.text().contains("id=\"flash\""));
    assert!(detail.text().contains("z***@pku.edu.cn"), "contacts masked until asked for");

    // Edit: change the affiliation.
    fields = edit_fields(&csrf, "1", "历史学院", "zxm@pku.edu.cn");
    let r = app.post_form(&cookie, &format!("/readers/{id}/edit"), &form(&fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(app.store.reader(id).await.unwrap().affiliation.as_deref(), Some("历史学院"));

    // A second edit based on the old version is refused and changes nothing.
    fields = edit_fields(&csrf, "1", "物理学院", "zxm@pku.edu.cn");
    let r = app.post_form(&cookie, &format!("/readers/{id}/edit"), &form(&fields)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("已被他人修改"));
    assert_eq!(app.store.reader(id).await.unwrap().affiliation.as_deref(), Some("历史学院"));

    // The admin sees the update in the audit log with the changed field.
    let (admin, _) = app.session(Role::Admin).await;
    let audit = app.get_page(Some(&admin), "/admin/audit?action=reader.update").await;
    assert_eq!(audit.status, StatusCode::OK);
    let html = audit.text();
    assert!(html.contains("<code>reader.update</code>") && html.contains("affiliation"), "{html}");
    // The reader's timeline lists creation and update.
    let detail = app.get_page(Some(&cookie), &format!("/readers/{id}")).await.text();
    assert!(detail.contains("data-action=\"reader.create\"") && detail.contains("data-action=\"reader.update\""));
}

#[tokio::test]
async fn bad_form_input_is_shown_beside_the_field_and_nothing_is_written() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let mut fields = edit_fields(&csrf, "0", "计算机学院", "not-an-email");
    fields.push(("birth_date", "2099-01-01"));
    let r = app.post_form(&cookie, "/readers/new", &form(&fields)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text();
    assert!(html.contains("class=\"field-error\""));
    assert!(html.contains("不是有效的电子邮箱") && html.contains("出生日期不能晚于今天"), "{html}");
    assert!(html.contains("value=\"not-an-email\""), "the input is kept for correction");
    assert_eq!(app.store.reader_stats().await.unwrap().total, 0);

    // Without the CSRF token nothing happens either.
    let fields = edit_fields("forged", "0", "计算机学院", "a@b.cn");
    let r = app.post_form(&cookie, "/readers/new", &form(&fields)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.store.reader_stats().await.unwrap().total, 0);
}

#[tokio::test]
async fn roles_are_enforced_on_every_page() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024000009", "王芳", "wangfang@pku.edu.cn").await;
    let (analyst, _) = app.session(Role::Analyst).await;
    let (dept, dept_csrf) = app.session(Role::Department).await;
    let (lib, lib_csrf) = app.session(Role::Librarian).await;
    let (leader, _) = app.session(Role::Leader).await;

    for path in ["/readers", &format!("/readers/{id}"), "/readers/export.csv"] {
        let r = app.get_page(Some(&analyst), path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!r.text().contains("王芳"), "nothing about the record leaks");
    }
    // Department staff see the reader, masked, and cannot open full contacts or edit.
    let r = app.get_page(Some(&dept), &format!("/readers/{id}?contacts=full")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("w***@pku.edu.cn") && !r.text().contains("wangfang@"));
    assert_eq!(app.get_page(Some(&dept), &format!("/readers/{id}/edit")).await.status, StatusCode::FORBIDDEN);
    let r = app.post_form(&dept, &format!("/readers/{id}/delete"), &form(&[("csrf", &dept_csrf)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Librarians cannot delete or administer.
    let r = app.post_form(&lib, &format!("/readers/{id}/delete"), &form(&[("csrf", &lib_csrf)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app.store.reader(id).await.is_ok());
    for path in ["/admin/users", "/admin/tokens", "/admin/categories", "/admin/attributes", "/admin/departments", "/admin/audit"] {
        assert_eq!(app.get_page(Some(&lib), path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Leaders read the audit log but cannot administer.
    assert_eq!(app.get_page(Some(&leader), "/admin/audit").await.status, StatusCode::OK);
    assert_eq!(app.get_page(Some(&leader), "/admin/users").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn viewing_full_contacts_and_exporting_are_audited() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024000010", "李雷", "lilei@pku.edu.cn").await;
    let (lib, _) = app.session(Role::Librarian).await;
    let r = app.get_page(Some(&lib), &format!("/readers/{id}?contacts=full")).await;
    assert!(r.text().contains("lilei@pku.edu.cn"));
    let r = app.get_page(Some(&lib), "/readers/export.csv?q=lilei").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let csv = r.text();
    assert!(csv.starts_with('\u{feff}') && csv.contains("2024000010,李雷,lilei"), "{csv}");
    let log =
        app.store.audit_log(&AuditQuery { actor: Some("librarian".into()), page: 1, per_page: 50, ..Default::default() }).await.unwrap();
    let actions: Vec<&str> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"reader.view_contacts") && actions.contains(&"reader.export"), "{actions:?}");
}

#[tokio::test]
async fn output_is_escaped() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024000011", "<script>alert(1)</script>", "x@pku.edu.cn").await;
    let (lib, _) = app.session(Role::Librarian).await;
    let html = app.get_page(Some(&lib), &format!("/readers/{id}")).await.text();
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
}

#[tokio::test]
async fn search_by_pinyin_from_the_list_page() {
    let app = TestApp::new().await;
    reader(&app, "2024000001", "张晓明", "a1@pku.edu.cn").await;
    reader(&app, "2024000002", "张辉", "a2@pku.edu.cn").await;
    reader(&app, "2024000003", "王芳", "a3@pku.edu.cn").await;
    let (lib, _) = app.session(Role::Librarian).await;
    let html = app.get_page(Some(&lib), "/readers?q=zxm").await.text();
    assert!(html.contains("张晓明") && !html.contains("张辉") && !html.contains("王芳"));
    let html = app.get_page(Some(&lib), "/readers?q=zh").await.text();
    assert!(html.contains("张晓明") && html.contains("张辉") && !html.contains("王芳"));
    assert!(html.contains("<span id=\"result-count\">2</span>"), "{html}");
}

#[tokio::test]
async fn language_switch_persists() {
    let app = TestApp::new().await;
    let r = app.get_page(None, "/lang?to=en&back=/readers").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location").as_deref(), Some("/readers"));
    assert!(r.header("set-cookie").unwrap().starts_with("lang=en"));
    let (lib, _) = app.session(Role::Librarian).await;
    let html = app.get_page(Some(&format!("{lib}; lang=en")), "/readers").await.text();
    assert!(html.contains(">Readers</a>") && html.contains("lang=\"en\""));
    // An open redirect is refused.
    let r = app.get_page(None, "/lang?to=en&back=//evil.example").await;
    assert_eq!(r.header("location").as_deref(), Some("/"));
}

#[tokio::test]
async fn admin_manages_staff_and_tokens() {
    let app = TestApp::new().await;
    let (admin, csrf) = app.session(Role::Admin).await;
    let r = app
        .post_form(
            &admin,
            "/admin/users",
            &form(&[
                ("csrf", &csrf),
                ("username", "zhangsan"),
                ("display_name", "张三"),
                ("role", "librarian"),
                ("password", "long-enough-pw"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(app.store.user_by_name("zhangsan").await.unwrap().display_name, "张三");
    // Too short a password: the page says so and no account is made.
    let r = app
        .post_form(
            &admin,
            "/admin/users",
            &form(&[("csrf", &csrf), ("username", "lisi"), ("display_name", ""), ("role", "librarian"), ("password", "short")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("密码至少 10 个字符"));
    assert!(app.store.user_by_name("lisi").await.is_err());
    // A token's secret is shown once; the list shows only its prefix.
    let r = app.post_form(&admin, "/admin/tokens", &form(&[("csrf", &csrf), ("username", "zhangsan"), ("name", "同步脚本")])).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    let start = html.find("id=\"token-secret\">").expect("secret shown") + "id=\"token-secret\">".len();
    let secret = &html[start..start + 68];
    assert!(secret.starts_with("lec_"));
    assert_eq!(app.store.token_user(secret).await.unwrap().unwrap().username, "zhangsan");
    let list = app.get_page(Some(&admin), "/admin/tokens").await.text();
    assert!(!list.contains(secret) && list.contains(&secret[..10]));
    // Department staff need a department.
    let r = app
        .post_form(
            &admin,
            "/admin/users",
            &form(&[("csrf", &csrf), ("username", "wangwu"), ("display_name", ""), ("role", "department"), ("password", "long-enough-pw")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}
