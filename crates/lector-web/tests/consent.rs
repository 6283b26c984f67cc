//! A reader's consent as staff see and record it: the page `/readers/{id}/consent` and the API
//! `GET/PUT /api/v1/readers/{id}/consents` (+ history), per role, with CSRF.

mod common;

use axum::http::header::LOCATION;
use axum::http::StatusCode;
use common::{form, TestApp};
use lector_domain::messaging::{ChannelKind, ConsentSource, Purpose};
use lector_domain::reader::ReaderDraft;
use lector_domain::role::Role;
use lector_store::audit::AuditQuery;
use lector_store::readers::ReaderRecord;
use lector_store::Actor;
use serde_json::json;

async fn reader(app: &TestApp) -> ReaderRecord {
    let d = ReaderDraft { card_no: "R2025001".into(), name: "张晓明".into(), category: "undergraduate".into(), ..Default::default() };
    let input = d.parse(chrono::Local::now().date_naive()).unwrap();
    app.store.create_reader(&Actor::system("test"), &input).await.unwrap()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no hidden {name} in:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_string()
}

async fn audits(app: &TestApp) -> i64 {
    app.store
        .audit_log(&AuditQuery { action: Some("consent.update".into()), page: 1, per_page: 1, ..Default::default() })
        .await
        .unwrap()
        .total
}

#[tokio::test]
async fn the_page_shows_the_matrix_and_history_to_readers_view() {
    let app = TestApp::new().await;
    let r = reader(&app).await;
    app.store
        .set_consent(&Actor::system("unsubscribe"), r.id, Purpose::Service, ChannelKind::Sms, false, ConsentSource::Unsubscribe)
        .await
        .unwrap();
    let path = format!("/readers/{}/consent", r.id);
    for role in [Role::Admin, Role::Leader, Role::Librarian, Role::Department] {
        let (cookie, _) = app.session(role).await;
        let page = app.get_page(Some(&cookie), &path).await;
        assert_eq!(page.status, StatusCode::OK, "{role:?}");
        let html = page.text();
        assert!(html.contains("data-key=\"service.sms\" data-granted=\"false\" data-default=\"false\""), "{role:?}: {html}");
        assert!(html.contains("data-key=\"news.email\" data-granted=\"false\" data-default=\"true\""));
        assert!(html.contains("class=\"consent-event\"") && html.contains("退订链接"), "the history names the source: {html}");
        // Only ConsentManage gets a form that can change anything.
        let can = matches!(role, Role::Admin | Role::Librarian);
        assert_eq!(html.contains("id=\"consent-save\""), can, "{role:?}");
        assert_eq!(html.contains(" disabled aria-label"), !can, "{role:?}");
        assert!(!html.contains("13800138000"), "no contact details on this page");
    }
    let (cookie, _) = app.session(Role::Analyst).await;
    assert_eq!(app.get_page(Some(&cookie), &path).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get_page(None, &path).await.status, StatusCode::SEE_OTHER, "signed out: sign in first");
    let (cookie, _) = app.session(Role::Librarian).await;
    assert_eq!(app.get_page(Some(&cookie), "/readers/999999/consent").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get_page(Some(&cookie), "/readers/abc/consent").await.status, StatusCode::NOT_FOUND);
    // The reader page links here.
    let detail = app.get_page(Some(&cookie), &format!("/readers/{}", r.id)).await.text();
    assert!(detail.contains(&format!("href=\"/readers/{}/consent\"", r.id)));
}

#[tokio::test]
async fn staff_record_consent_with_csrf_and_audit() {
    let app = TestApp::new().await;
    let r = reader(&app).await;
    let path = format!("/readers/{}/consent", r.id);
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let was = hidden(&app.get_page(Some(&cookie), &path).await.text(), "was");
    assert!(was.split(',').all(|k| k.starts_with("service.")), "{was}");
    let ticked: Vec<String> = was.split(',').filter(|k| *k != "service.qq").map(String::from).chain(["news.wecom".to_string()]).collect();
    let body = |csrf: &str| {
        let mut pairs: Vec<(&str, &str)> = vec![("csrf", csrf), ("was", &was)];
        pairs.extend(ticked.iter().map(|k| ("c", k.as_str())));
        form(&pairs)
    };

    // Without the right CSRF token nothing happens.
    let r1 = app.post_form(&cookie, &path, &body("forged")).await;
    assert_eq!(r1.status, StatusCode::BAD_REQUEST);
    assert_eq!(audits(&app).await, 0);
    // Department staff and leaders may look but not change.
    for role in [Role::Department, Role::Leader, Role::Analyst] {
        let (c, t) = app.session(role).await;
        assert_eq!(app.post_form(&c, &path, &body(&t)).await.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    assert_eq!(audits(&app).await, 0);

    let ok = app.post_form(&cookie, &path, &body(&csrf)).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.header(LOCATION.as_str()).as_deref(), Some(format!("{path}?flash=saved").as_str()));
    let m = app.store.consent_matrix(r.id).await.unwrap();
    assert!(m.granted(Purpose::News, ChannelKind::Wecom) && !m.granted(Purpose::Service, ChannelKind::Qq));
    assert_eq!(m.cell(Purpose::News, ChannelKind::Wecom).unwrap().source, Some(ConsentSource::Staff));
    assert!(m.cell(Purpose::Service, ChannelKind::Email).unwrap().is_default, "untouched cells stay defaults");
    let history = app.store.consent_history(r.id, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|e| e.actor == "librarian" && e.source == ConsentSource::Staff));
    let trail = app.store.audit_trail("reader", &r.id.to_string()).await.unwrap();
    let entry = trail.iter().find(|e| e.action == "consent.update").unwrap();
    assert_eq!(entry.actor_name, "librarian");
    // Saved again: nothing more.
    assert_eq!(app.post_form(&cookie, &path, &body(&csrf)).await.status, StatusCode::SEE_OTHER);
    assert_eq!(audits(&app).await, 1);
    // The reader's timeline names the change.
    let detail = app.get_page(Some(&cookie), &format!("/readers/{}", r.id)).await.text();
    assert!(detail.contains("授权变更"), "{detail}");
}

#[tokio::test]
async fn the_api_reads_and_records_consent_per_role() {
    let app = TestApp::new().await;
    let r = reader(&app).await;
    let path = format!("/api/v1/readers/{}/consents", r.id);

    for role in [Role::Admin, Role::Leader, Role::Librarian, Role::Department] {
        let (status, body) = app.get(app.token(role), &path).await;
        assert_eq!(status, StatusCode::OK, "{role:?}");
        assert_eq!(body["cells"].as_array().unwrap().len(), 18);
    }
    let (status, body) = app.get(app.token(Role::Analyst), &path).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let anon = app.call(axum::http::Method::GET, &path, None, None).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);

    let change = json!({"changes": [{"purpose": "news", "channel": "email", "granted": true}, {"purpose": "service", "channel": "sms", "granted": true}]});
    for role in [Role::Leader, Role::Department, Role::Analyst] {
        let (status, _) = app.put_json(app.token(role), &path, &change).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role:?}");
    }
    assert_eq!(audits(&app).await, 0);

    let (status, body) = app.put_json(app.token(Role::Librarian), &path, &change).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], json!([{"purpose": "news", "channel": "email", "granted": true}]), "service/sms was already granted");
    let cell =
        body["consents"]["cells"].as_array().unwrap().iter().find(|c| c["purpose"] == "news" && c["channel"] == "email").unwrap().clone();
    assert_eq!((cell["granted"].as_bool(), cell["source"].as_str(), cell["is_default"].as_bool()), (Some(true), Some("api"), Some(false)));
    let (_, again) = app.put_json(app.token(Role::Librarian), &path, &change).await;
    assert_eq!(again["changed"], json!([]));
    assert_eq!(audits(&app).await, 1);

    let (status, history) = app.get(app.token(Role::Department), &format!("{path}/history")).await;
    assert_eq!(status, StatusCode::OK);
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!((items[0]["actor"].as_str(), items[0]["source"].as_str()), (Some("librarian"), Some("api")));
    assert_eq!(app.get(app.token(Role::Analyst), &format!("{path}/history")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get(app.token(Role::Admin), &format!("{path}/history?limit=0")).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_api_refuses_bad_input_and_unknown_readers() {
    let app = TestApp::new().await;
    let r = reader(&app).await;
    let path = format!("/api/v1/readers/{}/consents", r.id);
    let token = app.token(Role::Admin);
    let (status, body) = app.put_json(token, &path, &json!({"changes": [{"purpose": "ads", "channel": "fax", "granted": true}]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["changes[0].purpose", "changes[0].channel"]);
    assert_eq!(app.put_json(token, &path, &json!({"changes": []})).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.put_json(token, &path, &json!({"changes": [], "extra": 1})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.put_json(token, &path, &json!({"changes": [{"purpose": "news", "channel": "email"}]})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(token, "/api/v1/readers/999999/consents").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(token, "/api/v1/readers/999999/consents/history").await.0, StatusCode::NOT_FOUND);
    let ok = json!({"changes": [{"purpose": "news", "channel": "email", "granted": true}]});
    assert_eq!(app.put_json(token, "/api/v1/readers/999999/consents", &ok).await.0, StatusCode::NOT_FOUND);
    assert!(app.store.consent_history(r.id, 10).await.unwrap().is_empty());
    assert_eq!(audits(&app).await, 0);
    // Described in the OpenAPI document.
    let doc = app.call(axum::http::Method::GET, "/api/openapi.json", None, None).await.json();
    assert!(doc["paths"]["/api/v1/readers/{id}/consents"]["put"].is_object());
    assert!(doc["paths"]["/api/v1/readers/{id}/consents/history"]["get"].is_object());
}
