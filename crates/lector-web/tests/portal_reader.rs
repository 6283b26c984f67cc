//! Signed-in readers on the portal, in process: sign-in with a one-time code (read from the
//! outbox row the reader would be sent), its lock-out and expiry, sessions, their own cases only,
//! filing a case while signed in, preferences, and the one-click unsubscribe link.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{Method, Request, StatusCode};
use common::{form, Reply, TestApp};
use lector_domain::case::{CaseAction, CaseInput, CaseStatus, Priority, TriageOutcome};
use lector_domain::messaging::{ChannelKind, ChannelSettings, ConsentSource, Purpose, Trigger};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_store::audit::AuditQuery;
use lector_store::cases::{Case, CaseSource};
use lector_store::channels::ChannelInput;
use lector_store::readers::ReaderRecord;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::triggers::TriggerSettingInput;
use lector_store::Actor;
use std::net::SocketAddr;

const CARD: &str = "R2025001";
const EMAIL: &str = "zhang.xm@pku.edu.cn";
const MOBILE: &str = "13800138000";

async fn add_reader(app: &TestApp, card: &str, name: &str, contacts: &[(&str, &str)]) -> ReaderRecord {
    let d = ReaderDraft {
        card_no: card.into(),
        name: name.into(),
        category: "undergraduate".into(),
        contacts: contacts.iter().map(|(k, v)| ContactDraft { kind: (*k).into(), value: (*v).into(), ..Default::default() }).collect(),
        ..Default::default()
    };
    let input = d.parse(chrono::Local::now().date_naive()).unwrap_or_else(|e| panic!("{card}: {e}"));
    app.store.create_reader(&Actor::system("test"), &input).await.unwrap()
}

/// An SMS channel, a template and the `portal_code` trigger switched on.
async fn set_up_codes(app: &TestApp) {
    let setup = Actor::system("test");
    app.store
        .create_channel(
            &setup,
            &ChannelInput {
                code: "sms".into(),
                name: "短信".into(),
                settings: ChannelSettings::Sms {
                    url: "http://127.0.0.1:9/sms".into(),
                    mobile_field: "mobile".into(),
                    text_field: "text".into(),
                },
                secret: None,
                rate_per_second: 10,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let t = app
        .store
        .create_template(
            &setup,
            &TemplateInput {
                code: "portal_code".into(),
                name: "登录验证码".into(),
                purpose: Purpose::Service,
                variants: vec![TemplateVariant {
                    channel_kind: ChannelKind::Sms,
                    lang: "zh".into(),
                    subject: String::new(),
                    body_text: "【图书馆】您的登录验证码是 {{ code }}，{{ minutes }} 分钟内有效。".into(),
                    body_html: None,
                }],
            },
        )
        .await
        .unwrap();
    let on = TriggerSettingInput { template_id: Some(t.id), channels: vec!["sms".into()], enabled: true };
    app.store.set_trigger_setting(&setup, Trigger::PortalCode, &on).await.unwrap();
}

/// A test app with the reader (email and mobile on file) and sign-in codes set up.
async fn app_with_reader() -> (TestApp, ReaderRecord) {
    let app = TestApp::new().await;
    let r = add_reader(&app, CARD, "张晓明", &[("email", EMAIL), ("mobile", MOBILE)]).await;
    set_up_codes(&app).await;
    (app, r)
}

async fn db(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}/t.db", app.dir.path().display());
    sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("open the test database")
}

/// Counts rows with `sql` (one `$1` integer parameter).
async fn count(app: &TestApp, sql: &str, param: i64) -> i64 {
    let pool = db(app).await;
    let n: i64 = sqlx::query_scalar(sql).bind(param).fetch_one(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
    n
}

async fn exec(app: &TestApp, sql: &str, param: i64) {
    let pool = db(app).await;
    sqlx::query(sql).bind(param).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

/// The code in the newest sign-in message to `reader_id`: what the reader would receive.
async fn sent_code(app: &TestApp, reader_id: i64) -> String {
    let pool = db(app).await;
    let row: (String, String) = sqlx::query_as(
        "SELECT vars_json, address FROM outbox WHERE reader_id = $1 AND trigger_code = 'portal_code' ORDER BY id DESC LIMIT 1",
    )
    .bind(reader_id)
    .fetch_one(&pool)
    .await
    .expect("a sign-in message in the outbox");
    pool.close().await;
    assert_eq!(row.1, MOBILE, "the code goes to the reader's mobile on file");
    let vars: serde_json::Value = serde_json::from_str(&row.0).unwrap();
    vars["code"].as_str().expect("the code is a template variable").to_string()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no hidden {name} in:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_string()
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

/// The portal's double-submit CSRF cookie and token, from a fresh form page.
async fn portal_csrf(app: &TestApp, path: &str) -> (String, String) {
    let r = app.get_page(None, path).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    let set = r.header(SET_COOKIE.as_str()).expect("the form sets its CSRF cookie");
    (cookie_pair(&set), hidden(&r.text(), "csrf"))
}

/// A form POST with optional cookies, from `ip`.
async fn post(app: &TestApp, cookie: Option<&str>, path: &str, body: &str, ip: [u8; 4]) -> Reply {
    let mut b = Request::builder().method(Method::POST).uri(path).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(COOKIE, c);
    }
    let mut req = b.body(Body::from(body.to_string())).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    app.send(req).await
}

const IP: [u8; 4] = [10, 1, 2, 3];

async fn request_code(app: &TestApp, card: &str, contact: &str, ip: [u8; 4]) -> Reply {
    // The code form always has a form (the request form is hidden when sign-in is unavailable);
    // both carry the same double-submit cookie.
    let (cookie, csrf) = portal_csrf(app, "/portal/login/verify").await;
    post(app, Some(&cookie), "/portal/login", &form(&[("card_no", card), ("contact", contact), ("next", ""), ("csrf", &csrf)]), ip).await
}

async fn try_code(app: &TestApp, card: &str, code: &str) -> Reply {
    let (cookie, csrf) = portal_csrf(app, "/portal/login/verify").await;
    post(app, Some(&cookie), "/portal/login/verify", &form(&[("card_no", card), ("code", code), ("next", ""), ("csrf", &csrf)]), IP).await
}

/// A signed-in reader: the session cookie and the session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn sign_in(app: &TestApp, reader_id: i64) -> Session {
    let r = request_code(app, CARD, EMAIL, IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let code = sent_code(app, reader_id).await;
    let r = try_code(app, CARD, &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let set = r.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).find(|c| c.starts_with("lector_reader="));
    let set = set.expect("a session cookie");
    let cookie = cookie_pair(&set);
    let me = app.get_page(Some(&cookie), "/portal/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    Session { csrf: hidden(&me.text(), "csrf"), cookie }
}

fn location(r: &Reply) -> String {
    r.header(LOCATION.as_str()).unwrap_or_default()
}

async fn audits(app: &TestApp, action: &str) -> i64 {
    app.store.audit_log(&AuditQuery { action: Some(action.into()), page: 1, per_page: 1, ..Default::default() }).await.unwrap().total
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[tokio::test]
async fn the_whole_sign_in_flow() {
    let (app, reader) = app_with_reader().await;
    let page = app.get_page(None, "/portal/login?next=/portal/preferences").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("id=\"login-form\""), "{}", page.text());
    assert!(!page.text().contains("sign-in-unavailable"));

    let r = request_code(&app, "r2025001", "+86 138 0013 8000", IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("id=\"verify-form\"") && r.text().contains("id=\"login-notice\""), "{}", r.text());
    let code = sent_code(&app, reader.id).await;
    assert_eq!(code.len(), 6);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM portal_codes WHERE reader_id = $1", reader.id).await, 1);

    let (cookie, csrf) = portal_csrf(&app, "/portal/login/verify").await;
    let body = form(&[("card_no", CARD), ("code", &code), ("next", "/portal/preferences"), ("csrf", &csrf)]);
    let r = post(&app, Some(&cookie), "/portal/login/verify", &body, IP).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/portal/preferences", "back to where the reader was going");
    let set = r.header(SET_COOKIE.as_str()).unwrap();
    assert!(
        set.starts_with("lector_reader=") && set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/portal"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "no Secure flag over plain HTTP: {set}");
    let session = cookie_pair(&set);

    let me = app.get_page(Some(&session), "/portal/me").await;
    assert_eq!(me.status, StatusCode::OK);
    let html = me.text();
    assert!(html.contains("张晓明") && html.contains(CARD), "{html}");
    assert!(html.contains("class=\"my-message\"") && html.contains("门户登录验证码"), "the code message is listed: {html}");
    assert_eq!(me.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(audits(&app, "portal.sign_in").await, 1);

    // The code worked once.
    let again = try_code(&app, CARD, &code).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.text().contains("id=\"login-error\""));

    // Already signed in: the sign-in page goes straight on.
    let r = app.get_page(Some(&session), "/portal/login").await;
    assert_eq!((r.status, location(&r).as_str()), (StatusCode::SEE_OTHER, "/portal/me"));

    // Sign out: needs the session's CSRF token; then the cookie signs in nobody.
    let csrf = hidden(&html, "csrf");
    let bad = post(&app, Some(&session), "/portal/logout", &form(&[("csrf", "nope")]), IP).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get_page(Some(&session), "/portal/me").await.status, StatusCode::OK, "a refused sign-out changes nothing");
    let out = post(&app, Some(&session), "/portal/logout", &form(&[("csrf", &csrf)]), IP).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.header(SET_COOKIE.as_str()).unwrap().contains("Max-Age=0"));
    let after = app.get_page(Some(&session), "/portal/me").await;
    assert_eq!((after.status, location(&after).as_str()), (StatusCode::SEE_OTHER, "/portal/login?next=/portal/me"));
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_https() {
    use tower::ServiceExt;
    let (app, reader) = app_with_reader().await;
    let secure = lector_web::router(lector_web::AppState {
        store: app.store.clone(),
        secure_cookies: true,
        data_dir: app.dir.path().to_path_buf(),
        warehouse: app.warehouse.clone(),
    });
    request_code(&app, CARD, EMAIL, IP).await;
    let code = sent_code(&app, reader.id).await;
    let (cookie, csrf) = portal_csrf(&app, "/portal/login/verify").await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/portal/login/verify")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(COOKIE, cookie)
        .body(Body::from(form(&[("card_no", CARD), ("code", &code), ("csrf", &csrf)])))
        .unwrap();
    let resp = secure.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(set.starts_with("lector_reader=") && set.contains("; Secure"), "{set}");
}

#[tokio::test]
async fn the_answer_does_not_tell_who_is_a_reader() {
    let (app, reader) = app_with_reader().await;
    add_reader(&app, "R2025002", "李四", &[("email", "li.si@pku.edu.cn")]).await;
    let notice = |r: &Reply| {
        let html = r.text();
        let start = html.find("id=\"login-notice\"").unwrap_or_else(|| panic!("no notice:\n{html}"));
        html[start..].split("</div>").next().unwrap().to_string()
    };
    let matching = request_code(&app, CARD, EMAIL, IP).await;
    for (card, contact) in [(CARD, "li.si@pku.edu.cn"), ("R9999999", EMAIL), (CARD, "13900000000"), ("R2025002", EMAIL)] {
        let r = request_code(&app, card, contact, IP).await;
        assert_eq!(r.status, matching.status, "{card} / {contact}");
        assert_eq!(notice(&r), notice(&matching), "{card} / {contact}");
    }
    let pool = db(&app).await;
    let codes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM portal_codes").fetch_one(&pool).await.unwrap();
    let messages: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE trigger_code = 'portal_code'").fetch_one(&pool).await.unwrap();
    pool.close().await;
    assert_eq!((codes, messages), (1, 1), "only the matching request made and queued a code");
    sent_code(&app, reader.id).await;
}

#[tokio::test]
async fn the_sign_in_forms_need_their_csrf_token() {
    let (app, reader) = app_with_reader().await;
    let (cookie, _) = portal_csrf(&app, "/portal/login").await;
    let r = post(&app, Some(&cookie), "/portal/login", &form(&[("card_no", CARD), ("contact", EMAIL), ("csrf", "forged")]), IP).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post(&app, None, "/portal/login", &form(&[("card_no", CARD), ("contact", EMAIL)]), IP).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM portal_codes WHERE reader_id = $1", reader.id).await, 0);
}

#[tokio::test]
async fn five_wrong_codes_lock_the_code() {
    let (app, reader) = app_with_reader().await;
    request_code(&app, CARD, EMAIL, IP).await;
    let code = sent_code(&app, reader.id).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for left in (1..5).rev() {
        let r = try_code(&app, CARD, &wrong).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().contains(&format!("还可尝试 {left} 次")), "{}", r.text());
    }
    let r = try_code(&app, CARD, &wrong).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the fifth wrong code locks it");
    let r = try_code(&app, CARD, &code).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "even the right code is refused now");
    assert!(r.header(SET_COOKIE.as_str()).is_none_or(|c| !c.starts_with("lector_reader=")));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM portal_sessions WHERE reader_id = $1", reader.id).await, 0);
    // A new code works.
    request_code(&app, CARD, EMAIL, IP).await;
    let fresh = sent_code(&app, reader.id).await;
    assert_eq!(try_code(&app, CARD, &fresh).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let (app, reader) = app_with_reader().await;
    request_code(&app, CARD, EMAIL, IP).await;
    let code = sent_code(&app, reader.id).await;
    exec(&app, "UPDATE portal_codes SET expires_at = '2000-01-01T00:00:00.000Z' WHERE reader_id = $1", reader.id).await;
    let r = try_code(&app, CARD, &code).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("已过期"), "{}", r.text());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM portal_sessions WHERE reader_id = $1", reader.id).await, 0);
}

#[tokio::test]
async fn code_requests_are_limited_per_address() {
    let (app, _) = app_with_reader().await;
    for i in 0..lector_web::portal::reader::CODE_REQUESTS_PER_ADDRESS {
        let r = request_code(&app, &format!("NOBODY{i}"), EMAIL, [10, 9, 9, 9]).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
    }
    let r = request_code(&app, CARD, EMAIL, [10, 9, 9, 9]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(request_code(&app, CARD, EMAIL, [10, 9, 9, 8]).await.status, StatusCode::OK, "another address is not affected");
}

#[tokio::test]
async fn without_a_channel_sign_in_is_unavailable() {
    let app = TestApp::new().await;
    let reader = add_reader(&app, CARD, "张晓明", &[("email", EMAIL), ("mobile", MOBILE)]).await;
    let page = app.get_page(None, "/portal/login").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("id=\"sign-in-unavailable\"") && !page.text().contains("id=\"login-form\""), "{}", page.text());
    let r = request_code(&app, CARD, EMAIL, IP).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("请联系图书馆"), "{}", r.text());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM portal_codes WHERE reader_id = $1", reader.id).await, 0);
}

#[tokio::test]
async fn forged_or_expired_session_cookies_sign_in_nobody() {
    let (app, reader) = app_with_reader().await;
    let s = sign_in(&app, reader.id).await;
    for forged in ["lector_reader=forged", &format!("lector_reader={}", "ab".repeat(32)), "lector_reader="] {
        let r = app.get_page(Some(forged), "/portal/me").await;
        assert_eq!((r.status, location(&r).as_str()), (StatusCode::SEE_OTHER, "/portal/login?next=/portal/me"), "{forged}");
        let r = post(&app, Some(forged), "/portal/preferences", &form(&[("csrf", &s.csrf), ("c", "news.email")]), IP).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{forged}");
        assert!(location(&r).starts_with("/portal/login"));
    }
    assert!(!app.store.consent_matrix(reader.id).await.unwrap().granted(Purpose::News, ChannelKind::Email));
    exec(&app, "UPDATE portal_sessions SET expires_at = '2000-01-01T00:00:00.000Z' WHERE reader_id = $1", reader.id).await;
    let r = app.get_page(Some(&s.cookie), "/portal/me").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "an expired session is over");
}

// ---------------------------------------------------------------------------------------------
// Own cases

async fn staff_case(app: &TestApp, card: &str, subject: &str) -> Case {
    let input = CaseInput {
        kind: lector_domain::case::CaseKind::Inquiry,
        subject: subject.into(),
        body: "详细情况".into(),
        card_no: Some(card.into()),
        contact_name: Some("读者".into()),
        contact: Some(MOBILE.into()),
    };
    app.store.create_case(&app.actor(Role::Librarian), &input, CaseSource::Staff, None).await.unwrap().0
}

#[tokio::test]
async fn a_reader_sees_only_their_own_cases() {
    let (app, reader) = app_with_reader().await;
    add_reader(&app, "R2025002", "李四", &[]).await;
    let mine = staff_case(&app, CARD, "开放时间咨询").await;
    let theirs = staff_case(&app, "R2025002", "李四的私事").await;
    let s = sign_in(&app, reader.id).await;

    let me = app.get_page(Some(&s.cookie), "/portal/me").await.text();
    assert!(me.contains(&mine.number) && !me.contains(&theirs.number), "{me}");

    let own = app.get_page(Some(&s.cookie), &format!("/portal/cases/{}", mine.number)).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.text().contains("开放时间咨询"));

    for path in [
        format!("/portal/cases/{}", theirs.number),
        "/portal/cases/GD2000-999999".to_string(),
        "/portal/cases/%27%20OR%201%3D1".to_string(),
    ] {
        let r = app.get_page(Some(&s.cookie), &path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text().contains("李四的私事"), "never its content");
    }
    // Someone else's case cannot be rated or answered either.
    let r = post(
        &app,
        Some(&s.cookie),
        &format!("/portal/cases/{}/rate", theirs.number),
        &form(&[("satisfaction", "5"), ("csrf", &s.csrf)]),
        IP,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(&app, Some(&s.cookie), &format!("/portal/cases/{}/reply", theirs.number), &form(&[("text", "x"), ("csrf", &s.csrf)]), IP)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.store.case(theirs.id).await.unwrap().version, theirs.version);

    // Not signed in: off to sign in, and back.
    let r = app.get_page(None, &format!("/portal/cases/{}", mine.number)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/portal/login?next=/portal/cases/{}", mine.number));
}

#[tokio::test]
async fn a_signed_in_reader_files_answers_and_rates_their_own_case() {
    let (app, reader) = app_with_reader().await;
    let other = add_reader(&app, "R2025002", "李四", &[]).await;
    let s = sign_in(&app, reader.id).await;

    // The new-case form knows who is writing.
    let page = app.get_page(Some(&s.cookie), "/portal/new").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("id=\"filed-under\"") && !html.contains("id=\"card_no\""), "{html}");
    assert!(
        html.contains("id=\"contact_name\" value=\"张晓明\"") && html.contains(&format!("id=\"contact\" value=\"{EMAIL}\"")),
        "prefilled: {html}"
    );
    let set = page.header(SET_COOKIE.as_str()).unwrap();
    let cookies = format!("{}; {}", s.cookie, cookie_pair(&set));
    let body = form(&[
        ("kind", "suggestion"),
        ("subject", "希望延长开放时间"),
        ("body", "考试周希望通宵开放。"),
        ("contact_name", "张晓明"),
        ("contact", EMAIL),
        ("card_no", "R2025002"), // ignored: a signed-in reader files under their own card
        ("key", &hidden(&html, "key")),
        ("csrf", &hidden(&html, "csrf")),
    ]);
    let r = post(&app, Some(&cookies), "/portal/new", &body, IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("id=\"own-case-link\""));
    let cases = app.store.cases(&lector_store::cases::CaseQuery { page: 1, per_page: 10, ..Default::default() }).await.unwrap().items;
    let case = cases.iter().find(|c| c.subject == "希望延长开放时间").expect("the case was filed").clone();
    assert_eq!((case.reader_id, case.source), (Some(reader.id), CaseSource::Portal));
    assert_ne!(case.reader_id, Some(other.id));

    // Staff ask a question; the reader answers on their own case page.
    let admin = app.actor(Role::Admin);
    let asked = app
        .store
        .act_on_case(&admin, case.id, &CaseAction::RequestInfo { question: "请问是哪个校区？".into() }, case.version)
        .await
        .unwrap();
    let path = format!("/portal/cases/{}", case.number);
    let page = app.get_page(Some(&s.cookie), &path).await.text();
    assert!(page.contains("请问是哪个校区？") && page.contains(&format!("action=\"{path}/reply\"")), "{page}");
    let bad = post(&app, Some(&s.cookie), &format!("{path}/reply"), &form(&[("text", "本部"), ("csrf", "forged")]), IP).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.store.case(case.id).await.unwrap().version, asked.version, "a forged form changes nothing");
    let ok = post(&app, Some(&s.cookie), &format!("{path}/reply"), &form(&[("text", "本部"), ("csrf", &s.csrf)]), IP).await;
    assert_eq!((ok.status, location(&ok)), (StatusCode::SEE_OTHER, format!("{path}?flash=answered")));
    let answered = app.store.case(case.id).await.unwrap();
    assert_eq!(answered.status, CaseStatus::Received);
    let twice = post(&app, Some(&s.cookie), &format!("{path}/reply"), &form(&[("text", "本部"), ("csrf", &s.csrf)]), IP).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "no open question any more");

    // Through to resolution, then the reader rates it from the same page.
    let mut c = answered;
    let triage = CaseAction::Triage {
        outcome: TriageOutcome::Accepted,
        category: None,
        priority: Priority::Normal,
        duplicate_of: None,
        comment: None,
    };
    for a in [
        triage,
        CaseAction::Assign { department: common::DEPARTMENT.into(), comment: None },
        CaseAction::Claim,
        CaseAction::Propose { solution: "考试周延长".into() },
    ] {
        c = app.store.act_on_case(&admin, c.id, &a, c.version).await.unwrap_or_else(|e| panic!("{}: {e}", a.code()));
    }
    if c.status == CaseStatus::AwaitingApproval {
        c = app.store.act_on_case(&admin, c.id, &CaseAction::Approve { comment: None }, c.version).await.unwrap();
    }
    app.store.act_on_case(&admin, c.id, &CaseAction::Resolve { reply: "考试周开放到 24 点。".into() }, c.version).await.unwrap();
    let page = app.get_page(Some(&s.cookie), &path).await.text();
    assert!(page.contains("考试周开放到 24 点。") && page.contains(&format!("action=\"{path}/rate\"")), "{page}");
    let r =
        post(&app, Some(&s.cookie), &format!("{path}/rate"), &form(&[("satisfaction", "5"), ("recommend", "9"), ("csrf", &s.csrf)]), IP)
            .await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, format!("{path}?flash=rated")));
    let rated = app.store.case(case.id).await.unwrap();
    assert_eq!(rated.status, CaseStatus::Closed);
    assert_eq!(rated.rating.as_ref().map(|r| (r.satisfaction, r.recommend)), Some((5, Some(9))));
    let again = post(&app, Some(&s.cookie), &format!("{path}/rate"), &form(&[("satisfaction", "1"), ("csrf", &s.csrf)]), IP).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

// ---------------------------------------------------------------------------------------------
// Preferences and unsubscribe

#[tokio::test]
async fn preferences_are_saved_with_source_portal_and_audited() {
    let (app, reader) = app_with_reader().await;
    let s = sign_in(&app, reader.id).await;
    let page = app.get_page(Some(&s.cookie), "/portal/preferences").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("value=\"service.email\" id=\"c-service.email\" checked"), "service defaults to granted: {html}");
    assert!(html.contains("value=\"news.email\" id=\"c-news.email\" aria"), "news defaults to not granted: {html}");
    let was = hidden(&html, "was");

    // Forged CSRF: nothing changes.
    let body = |csrf: &str| {
        form(&[("csrf", csrf), ("was", &was), ("c", "service.email"), ("c", "service.wecom"), ("c", "news.email"), ("lang", "en")])
    };
    let r = post(&app, Some(&s.cookie), "/portal/preferences", &body("forged"), IP).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(audits(&app, "consent.update").await, 0);

    let r = post(&app, Some(&s.cookie), "/portal/preferences", &body(&s.csrf), IP).await;
    assert_eq!((r.status, location(&r).as_str()), (StatusCode::SEE_OTHER, "/portal/preferences?flash=saved"));
    let m = app.store.consent_matrix(reader.id).await.unwrap();
    let news = m.cell(Purpose::News, ChannelKind::Email).unwrap();
    assert!(news.granted && news.source == Some(ConsentSource::Portal));
    assert!(m.granted(Purpose::Service, ChannelKind::Wecom));
    assert!(!m.granted(Purpose::Service, ChannelKind::Sms), "an unticked box is a withdrawal");
    assert_eq!(m.cell(Purpose::Service, ChannelKind::Sms).unwrap().source, Some(ConsentSource::Portal));
    assert_eq!(app.store.reader_lang(reader.id).await.unwrap(), "en");
    let trail = app.store.audit_trail("reader", &reader.id.to_string()).await.unwrap();
    let entry = trail.iter().rev().find(|e| e.action == "consent.update").expect("audited");
    assert_eq!(entry.actor_name, format!("reader:{}", reader.id));
    assert_eq!(entry.origin, "10.1.2.3");
    let history = app.store.consent_history(reader.id, 50).await.unwrap();
    assert!(history.iter().all(|e| e.source == ConsentSource::Portal && e.actor == format!("reader:{}", reader.id)));
    let changed = history.len();

    // A page loaded before an unsubscribe does not undo it when saved unchanged.
    let before = hidden(&app.get_page(Some(&s.cookie), "/portal/preferences").await.text(), "was");
    assert!(before.split(',').any(|k| k == "news.email"), "{before}");
    app.store
        .set_consent(&Actor::system("unsubscribe"), reader.id, Purpose::News, ChannelKind::Email, false, ConsentSource::Unsubscribe)
        .await
        .unwrap();
    let stale =
        form(&[("csrf", &s.csrf), ("was", &before), ("c", "service.email"), ("c", "service.wecom"), ("c", "news.email"), ("lang", "en")]);
    let r = post(&app, Some(&s.cookie), "/portal/preferences", &stale, IP).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        !app.store.consent_matrix(reader.id).await.unwrap().granted(Purpose::News, ChannelKind::Email),
        "the older page left it withdrawn"
    );
    assert_eq!(app.store.consent_history(reader.id, 50).await.unwrap().len(), changed + 1, "only the unsubscribe was added");
}

#[tokio::test]
async fn unsubscribe_shows_what_stops_then_withdraws_once() {
    let (app, reader) = app_with_reader().await;
    app.store.set_consent(&Actor::system("test"), reader.id, Purpose::News, ChannelKind::Email, true, ConsentSource::Staff).await.unwrap();
    let token = app.store.unsubscribe_token(reader.id, Purpose::News, ChannelKind::Email).await.unwrap();
    let path = format!("/portal/unsubscribe/{token}");

    let page = app.get_page(None, &path).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("data-state=\"confirm\""), "{html}");
    assert!(
        html.contains("新闻与活动") && html.contains("News and events") && html.contains("电子邮件") && html.contains("Email"),
        "bilingual: {html}"
    );
    assert!(html.contains(&format!("action=\"{path}\"")) && html.contains("href=\"/portal/preferences\""));
    assert!(app.store.consent_matrix(reader.id).await.unwrap().granted(Purpose::News, ChannelKind::Email), "a GET changes nothing");

    // The confirm button: the same one-click POST.
    let r = post(&app, None, &path, "List-Unsubscribe=One-Click", IP).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("data-state=\"done\""));
    let cell = app.store.consent_matrix(reader.id).await.unwrap().cell(Purpose::News, ChannelKind::Email).cloned().unwrap();
    assert!(!cell.granted && cell.source == Some(ConsentSource::Unsubscribe));
    let events = app.store.consent_history(reader.id, 10).await.unwrap().len();
    assert_eq!(audits(&app, "consent.update").await, 2);

    // Idempotent.
    let again = post(&app, None, &path, "List-Unsubscribe=One-Click", IP).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(app.store.consent_history(reader.id, 10).await.unwrap().len(), events);
    assert_eq!(audits(&app, "consent.update").await, 2);
    assert!(app.get_page(None, &path).await.text().contains("data-state=\"already\""));
    // Other cells are untouched.
    assert!(app.store.consent_matrix(reader.id).await.unwrap().granted(Purpose::Service, ChannelKind::Email));
}

#[tokio::test]
async fn one_click_works_for_mail_clients_without_cookies_or_body() {
    let (app, reader) = app_with_reader().await;
    let token = app.store.unsubscribe_token(reader.id, Purpose::Service, ChannelKind::Sms).await.unwrap();
    // RFC 8058: a POST with the one-click body and nothing else (no cookie, no CSRF token).
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/portal/unsubscribe/{token}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("List-Unsubscribe=One-Click"))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!app.store.consent_matrix(reader.id).await.unwrap().granted(Purpose::Service, ChannelKind::Sms));
    // Some clients send multipart or nothing at all.
    let token = app.store.unsubscribe_token(reader.id, Purpose::Survey, ChannelKind::Email).await.unwrap();
    app.store
        .set_consent(&Actor::system("test"), reader.id, Purpose::Survey, ChannelKind::Email, true, ConsentSource::Staff)
        .await
        .unwrap();
    let req = Request::builder().method(Method::POST).uri(format!("/portal/unsubscribe/{token}")).body(Body::empty()).unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);
    assert!(!app.store.consent_matrix(reader.id).await.unwrap().granted(Purpose::Survey, ChannelKind::Email));
    let events = app.store.consent_history(reader.id, 10).await.unwrap();
    assert!(events.iter().filter(|e| e.source == ConsentSource::Unsubscribe).all(|e| e.actor == "unsubscribe"));
}

#[tokio::test]
async fn forged_or_malformed_unsubscribe_tokens_are_400_and_change_nothing() {
    let (app, reader) = app_with_reader().await;
    let good = app.store.unsubscribe_token(reader.id, Purpose::Service, ChannelKind::Email).await.unwrap();
    let other = add_reader(&app, "R2025002", "李四", &[]).await;
    let forged = good.replacen(&format!("{}.", reader.id), &format!("{}.", other.id), 1);
    let tampered = good.replace(".service.", ".news.");
    let truncated = good[..good.len() - 3].to_string();
    for t in [forged, tampered, truncated, "abc".to_string(), "1.news.email.x".to_string()] {
        let path = format!("/portal/unsubscribe/{t}");
        let page = app.get_page(None, &path).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{t}");
        let html = page.text();
        assert!(
            html.contains("data-state=\"invalid\"") && html.contains("退订链接无效") && html.contains("not valid"),
            "bilingual: {html}"
        );
        let r = post(&app, None, &path, "List-Unsubscribe=One-Click", IP).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{t}");
    }
    assert!(app.store.consent_history(reader.id, 10).await.unwrap().is_empty());
    assert!(app.store.consent_history(other.id, 10).await.unwrap().is_empty());
    assert_eq!(audits(&app, "consent.update").await, 0);

    // A valid token whose reader was deleted: nobody to unsubscribe.
    let token = app.store.unsubscribe_token(other.id, Purpose::News, ChannelKind::Email).await.unwrap();
    app.store.delete_reader(&Actor::system("test"), other.id, None).await.unwrap();
    let r = post(&app, None, &format!("/portal/unsubscribe/{token}"), "List-Unsubscribe=One-Click", IP).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("data-state=\"gone\""));
}
