//! Channel, template and messaging-settings administration over HTTP: who may do what (pages and
//! API), a channel's secret never coming back, template errors that name the line, preview for a
//! reader with the HTML kept in a sandbox, a test send through a real SMTP sink, and forged
//! form posts refused.

mod common;

use axum::http::StatusCode;
use common::{form, TestApp};
use lector_domain::reader::ReaderDraft;
use lector_domain::role::Role;
use lector_store::Actor;
use serde_json::{json, Value};
use smtp_sink::{RcptRule, Sink, SinkOptions};
use std::time::Duration;

const SECRET: &str = "Sup3r-S3cret-Passw0rd";

fn email_body(code: &str, port: u16, secret: Option<&str>) -> Value {
    json!({
        "code": code, "name": "图书馆邮箱",
        "settings": {"kind": "email", "host": "127.0.0.1", "port": port, "security": "plain", "username": "library",
                     "from_address": "library@example.edu.cn", "from_name": "示例大学图书馆"},
        "secret": secret, "rate_per_second": 20
    })
}

async fn create_channel(app: &TestApp, body: &Value) -> Value {
    let (status, created) = app.post_json(app.token(Role::Admin), "/api/v1/channels", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

fn notice_template() -> Value {
    json!({
        "code": "notice", "name": "通知", "purpose": "service",
        "variants": [
            {"channel_kind": "email", "lang": "zh", "subject": "{{ reader.name }}，您好",
             "body_text": "{{ reader.name }}（{{ reader.card_no }}）：您的读者证将于 {{ reader.expires_on }} 到期。",
             "body_html": "<p>{{ reader.name }}：您的读者证将于 <b>{{ reader.expires_on }}</b> 到期。</p>"},
            {"channel_kind": "sms", "lang": "zh", "body_text": "【图书馆】{{ reader.name }}，读者证即将到期"}
        ]
    })
}

#[tokio::test]
async fn roles_reach_only_what_they_may() {
    let app = TestApp::new().await;
    let channel = create_channel(&app, &email_body("mail", 25, None)).await;
    let (status, template) = app.post_json(app.token(Role::Librarian), "/api/v1/templates", &notice_template()).await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let (cid, tid) = (channel["id"].as_i64().unwrap(), template["id"].as_i64().unwrap());

    // Channels and settings: administrators only. Templates: administrators and librarians.
    let channel_pages = [
        "/messaging/channels".to_string(),
        "/messaging/channels/new?kind=sms".into(),
        format!("/messaging/channels/{cid}"),
        "/messaging/settings".into(),
    ];
    let template_pages =
        ["/messaging/templates".to_string(), format!("/messaging/templates/{tid}"), format!("/messaging/templates/{tid}/preview")];
    for role in Role::ALL {
        let (cookie, _) = app.session(role).await;
        for path in &channel_pages {
            let want = if role == Role::Admin { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(app.get_page(Some(&cookie), path).await.status, want, "{role:?} {path}");
        }
        for path in &template_pages {
            let want = if matches!(role, Role::Admin | Role::Librarian) { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(app.get_page(Some(&cookie), path).await.status, want, "{role:?} {path}");
        }
        let token = app.token(role);
        let (s, _) = app.get(token, "/api/v1/channels").await;
        assert_eq!(s, if role == Role::Admin { StatusCode::OK } else { StatusCode::FORBIDDEN }, "{role:?} channels");
        let (s, _) = app.get(token, &format!("/api/v1/templates/{tid}")).await;
        let may_templates = matches!(role, Role::Admin | Role::Librarian);
        assert_eq!(s, if may_templates { StatusCode::OK } else { StatusCode::FORBIDDEN }, "{role:?} templates");
    }
    // Refused before the body is even read: a malformed body still gets 403, not 400.
    let r = app.call(axum::http::Method::POST, "/api/v1/channels", Some(app.token(Role::Librarian)), Some(&json!("not a channel"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (s, _) = app.put_json(app.token(Role::Leader), &format!("/api/v1/templates/{tid}"), &notice_template()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Form posts too.
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let r = app.post_form(&cookie, &format!("/messaging/channels/{cid}/enabled"), &form(&[("csrf", &csrf), ("enabled", "0")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.post_form(&cookie, "/messaging/settings", &form(&[("csrf", &csrf), ("public_url", "https://evil.example")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app.store.channel(cid).await.unwrap().enabled);
    assert_eq!(app.store.public_url().await.unwrap(), lector_store::outbox::DEFAULT_PUBLIC_URL);
    // Nothing without credentials.
    assert_eq!(app.call(axum::http::Method::GET, "/api/v1/templates", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_page(None, "/messaging/channels").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_channel_secret_is_never_shown_back() {
    let app = TestApp::new().await;
    let token = app.token(Role::Admin);
    let created = create_channel(&app, &email_body("mail", 25, Some(SECRET))).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["has_secret"], true);
    assert!(!created.to_string().contains(SECRET), "{created}");
    for path in ["/api/v1/channels".to_string(), format!("/api/v1/channels/{id}")] {
        let (s, body) = app.get(token, &path).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!body.to_string().contains(SECRET), "{path}: {body}");
    }
    let (cookie, csrf) = app.session(Role::Admin).await;
    for path in ["/messaging/channels".to_string(), format!("/messaging/channels/{id}"), "/admin/audit".into()] {
        let page = app.get_page(Some(&cookie), &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.text().contains(SECRET), "{path} shows the secret");
    }
    let edit = app.get_page(Some(&cookie), &format!("/messaging/channels/{id}")).await.text();
    assert!(edit.contains("leave blank to keep") || edit.contains("留空则不修改"), "the secret field says how to keep it");

    // Saving the form with the secret left blank keeps it; a new one replaces it.
    let fields = |secret: &str, version: &str| {
        form(&[
            ("csrf", &csrf),
            ("kind", "email"),
            ("version", version),
            ("code", "mail"),
            ("name", "图书馆邮箱（新）"),
            ("host", "smtp.example.edu.cn"),
            ("port", "587"),
            ("security", "starttls"),
            ("username", "library"),
            ("from_address", "library@example.edu.cn"),
            ("from_name", "图书馆"),
            ("secret", secret),
            ("rate_per_second", "30"),
            ("enabled", "1"),
        ])
    };
    let r = app.post_form(&cookie, &format!("/messaging/channels/{id}"), &fields("", "1")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let (c, secret) = app.store.channel_for_sending(id).await.unwrap();
    assert_eq!((c.name.as_str(), c.rate_per_second, secret.as_deref()), ("图书馆邮箱(新)", 30, Some(SECRET)));
    let r = app.post_form(&cookie, &format!("/messaging/channels/{id}"), &fields("An0ther-Secret", "2")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.channel_for_sending(id).await.unwrap().1.as_deref(), Some("An0ther-Secret"));
    // A stale form is refused with a message, and the secret typed into a refused form is not echoed.
    let r = app.post_form(&cookie, &format!("/messaging/channels/{id}"), &fields("Typed-Secret-123", "1")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(!r.text().contains("Typed-Secret-123"));
    assert_eq!(app.store.channel_for_sending(id).await.unwrap().1.as_deref(), Some("An0ther-Secret"));
    // A mistake is a 422 naming the field, the secret not echoed either.
    let bad = fields("Typed-Secret-123", "3").replace("port=587", "port=99999");
    let r = app.post_form(&cookie, &format!("/messaging/channels/{id}"), &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("port") && !r.text().contains("Typed-Secret-123"));
    // Over the API an omitted secret keeps it too.
    let mut body = email_body("mail", 2525, None);
    body["version"] = json!(3);
    let (s, updated) = app.put_json(token, &format!("/api/v1/channels/{id}"), &body).await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["has_secret"], true);
    assert_eq!(app.store.channel_for_sending(id).await.unwrap().1.as_deref(), Some("An0ther-Secret"));
    let log = app.get_page(Some(&cookie), "/admin/audit?action=channel").await.text();
    assert!(log.contains("channel.update") && !log.contains("An0ther-Secret") && !log.contains(SECRET));
}

#[tokio::test]
async fn a_template_error_names_the_line() {
    let app = TestApp::new().await;
    let token = app.token(Role::Librarian);
    let mut body = notice_template();
    body["variants"][1]["body_text"] = json!("第一行\n第二行\n{% for x in %}\n第四行");
    let (s, err) = app.post_json(token, "/api/v1/templates", &body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let field = &err["error"]["fields"][0];
    assert_eq!(field["field"], "variants[1].body_text", "{err}");
    assert!(field["message"].as_str().unwrap().contains("line 3"), "{err}");
    assert!(field["message_zh"].as_str().unwrap().contains("第 3 行"), "{err}");
    assert!(app.store.templates().await.unwrap().is_empty(), "nothing saved");
    // An undefined variable is caught too, with its name.
    body["variants"][1]["body_text"] = json!("您好\n{{ reader.nmae }}");
    let (s, err) = app.post_json(token, "/api/v1/templates", &body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = err["error"]["fields"][0]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("line 2") && msg.contains("nmae"), "{msg}");
    // An unknown kind or purpose is named as well.
    let (s, err) = app
        .post_json(
            token,
            "/api/v1/templates",
            &json!({"code": "x", "name": "x", "purpose": "spam", "variants": [{"channel_kind": "fax", "lang": "zh", "body_text": "x"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = err["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["purpose", "variants[0].channel_kind"]);

    // The page: a bad variant comes back as 422 with the part and line beside it, nothing saved.
    let (s, created) = app.post_json(token, "/api/v1/templates", &notice_template()).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let cookie = format!("{cookie}; lang=en");
    let r = app
        .post_form(
            &cookie,
            &format!("/messaging/templates/{id}/variants"),
            &form(&[
                ("csrf", &csrf),
                ("version", "1"),
                ("channel_kind", "email"),
                ("lang", "en"),
                ("subject", "Hello"),
                ("body_text", "Dear reader,\n{{ reader.name }\nbye"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text();
    assert!(page.contains("text body, line 2"), "{page}");
    assert!(page.contains("Dear reader,"), "the entered text is kept for correcting");
    assert_eq!(app.store.template(id).await.unwrap().version, 1);
    // A good one is saved as a new English variant.
    let r = app
        .post_form(
            &cookie,
            &format!("/messaging/templates/{id}/variants"),
            &form(&[
                ("csrf", &csrf),
                ("version", "1"),
                ("channel_kind", "email"),
                ("lang", "en"),
                ("subject", "Hello {{ reader.name }}"),
                ("body_text", "Dear {{ reader.name }}"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let t = app.store.template(id).await.unwrap();
    assert_eq!(t.variants.len(), 3);
    // Deleting a variant.
    let r = app
        .post_form(
            &cookie,
            &format!("/messaging/templates/{id}/variants/delete"),
            &form(&[("csrf", &csrf), ("version", "2"), ("channel_kind", "sms"), ("lang", "zh")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.template(id).await.unwrap().variants.len(), 2);
}

#[tokio::test]
async fn preview_renders_for_a_reader_with_the_html_sandboxed() {
    let app = TestApp::new().await;
    let mut d = ReaderDraft { card_no: "2025001".into(), name: "王<芳>".into(), category: "undergraduate".into(), ..Default::default() };
    d.expires_on = Some("2027-07-01".into());
    app.store.create_reader(&Actor::system("test"), &d.parse(chrono::Local::now().date_naive()).unwrap()).await.unwrap();
    let token = app.token(Role::Librarian);
    let (_, created) = app.post_json(token, "/api/v1/templates", &notice_template()).await;
    let id = created["id"].as_i64().unwrap();

    let (s, p) =
        app.post_json(token, &format!("/api/v1/templates/{id}/preview"), &json!({"card_no": "2025001", "channel_kind": "email"})).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["subject"], "王<芳>，您好");
    assert!(p["text"].as_str().unwrap().contains("2027-07-01"), "{p}");
    assert_eq!(p["html"], "<p>王&lt;芳&gt;：您的读者证将于 <b>2027-07-01</b> 到期。</p>", "the reader's text is escaped in HTML");
    assert_eq!(p["reader"], "王<芳>");
    // English falls back to the Chinese variant; unknown readers and kinds are named.
    let (s, p) = app
        .post_json(token, &format!("/api/v1/templates/{id}/preview"), &json!({"card_no": "2025001", "channel_kind": "sms", "lang": "en"}))
        .await;
    assert_eq!((s, p["text"].as_str()), (StatusCode::OK, Some("【图书馆】王<芳>，读者证即将到期")));
    let (s, e) =
        app.post_json(token, &format!("/api/v1/templates/{id}/preview"), &json!({"card_no": "nobody", "channel_kind": "email"})).await;
    assert_eq!((s, e["error"]["fields"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("card_no")));
    let (s, e) = app.post_json(token, &format!("/api/v1/templates/{id}/preview"), &json!({"channel_kind": "wecom"})).await;
    assert_eq!((s, e["error"]["fields"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("channel_kind")));
    let (s, _) = app.post_json(token, "/api/v1/templates/999/preview", &json!({"channel_kind": "email"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The page shows the text escaped and the HTML only inside a sandboxed iframe's srcdoc.
    let (cookie, _) = app.session(Role::Librarian).await;
    let page = app.get_page(Some(&cookie), &format!("/messaging/templates/{id}/preview?card_no=2025001&kind=email&lang=zh")).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("sandbox=\"\""), "{html}");
    assert!(html.contains("srcdoc=\"&#60;p&#62;") || html.contains("srcdoc=\"&lt;p&gt;"), "the HTML is escaped into srcdoc: {html}");
    assert!(!html.contains("<p>王"), "the message's HTML is not part of the page");
    assert!(!html.contains("王<芳>"), "the reader's name is escaped");
    let page = app.get_page(Some(&cookie), &format!("/messaging/templates/{id}/preview?card_no=nobody&kind=email")).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.text().contains("nobody"));
}

#[tokio::test]
async fn a_test_send_reports_what_really_happened() {
    let app = TestApp::new().await;
    let sink = Sink::start(SinkOptions::default()).await;
    sink.set_rcpt_rule("gone@example.edu.cn", Some(RcptRule::Reject));
    let created = create_channel(&app, &email_body("mail", sink.addr().port(), None)).await;
    let id = created["id"].as_i64().unwrap();
    let (cookie, csrf) = app.session(Role::Admin).await;

    let r = app
        .post_form(&cookie, &format!("/messaging/channels/{id}/test"), &form(&[("csrf", &csrf), ("address", "me@example.edu.cn")]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("id=\"test-ok\""), "{}", r.text());
    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    assert_eq!(sink.messages()[0].rcpt_to, vec!["me@example.edu.cn".to_string()]);
    // The server's refusal is shown as it is.
    let r = app
        .post_form(&cookie, &format!("/messaging/channels/{id}/test"), &form(&[("csrf", &csrf), ("address", "gone@example.edu.cn")]))
        .await;
    let page = r.text();
    assert!(page.contains("id=\"test-error\"") && page.contains("550"), "{page}");
    // Not an address: 422 naming it. Over the API the same.
    let r =
        app.post_form(&cookie, &format!("/messaging/channels/{id}/test"), &form(&[("csrf", &csrf), ("address", "not-an-address")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, body) =
        app.post_json(app.token(Role::Admin), &format!("/api/v1/channels/{id}/test"), &json!({"address": "api@example.edu.cn"})).await;
    assert_eq!((s, body["sent"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    // An unreachable server is a clear failure, not a crash.
    let dead = create_channel(&app, &email_body("dead", 1, None)).await;
    let (s, body) = app
        .post_json(app.token(Role::Admin), &format!("/api/v1/channels/{}/test", dead["id"]), &json!({"address": "a@example.edu.cn"}))
        .await;
    assert_eq!((s, body["sent"].as_bool()), (StatusCode::OK, Some(false)), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(sink.count(), 2);
}

#[tokio::test]
async fn forged_forms_are_refused_and_settings_are_kept() {
    let app = TestApp::new().await;
    let (cookie, csrf) = app.session(Role::Admin).await;
    let channel = form(&[
        ("csrf", "forged"),
        ("kind", "wecom"),
        ("code", "robot"),
        ("name", "机器人"),
        ("url", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x"),
        ("rate_per_second", "10"),
        ("enabled", "1"),
    ]);
    let r = app.post_form(&cookie, "/messaging/channels", &channel).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(app.store.channels().await.unwrap().is_empty());
    let r = app.post_form(&cookie, "/messaging/channels", &channel.replace("csrf=forged", &format!("csrf={csrf}"))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let id = app.store.channel_by_code("robot").await.unwrap().id;
    for (path, body) in [
        (format!("/messaging/channels/{id}/enabled"), form(&[("enabled", "0")])),
        ("/messaging/settings".to_string(), form(&[("csrf", "forged"), ("public_url", "https://evil.example")])),
        ("/messaging/templates".to_string(), form(&[("csrf", "forged"), ("code", "t"), ("name", "t"), ("purpose", "news")])),
    ] {
        assert_eq!(app.post_form(&cookie, &path, &body).await.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert!(app.store.channel(id).await.unwrap().enabled);
    assert!(app.store.templates().await.unwrap().is_empty());
    // The public address: a bad one is refused with the reason; a good one kept without the slash.
    let r = app.post_form(&cookie, "/messaging/settings", &form(&[("csrf", &csrf), ("public_url", "lector.example.edu.cn")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r =
        app.post_form(&cookie, "/messaging/settings", &form(&[("csrf", &csrf), ("public_url", "https://lector.example.edu.cn/")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.public_url().await.unwrap(), "https://lector.example.edu.cn");
    let page = app.get_page(Some(&cookie), "/messaging/settings").await.text();
    assert!(page.contains("value=\"https://lector.example.edu.cn\""));
    // Disabling through the page.
    let r = app.post_form(&cookie, &format!("/messaging/channels/{id}/enabled"), &form(&[("csrf", &csrf), ("enabled", "0")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!app.store.channel(id).await.unwrap().enabled);
}

#[tokio::test]
async fn the_api_documents_its_routes() {
    let doc: Value = serde_json::from_str(lector_web::api::openapi_document()).unwrap();
    for path in [
        "/api/v1/channels",
        "/api/v1/channels/{id}",
        "/api/v1/channels/{id}/test",
        "/api/v1/templates",
        "/api/v1/templates/{id}",
        "/api/v1/templates/{id}/preview",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert!(doc["components"]["schemas"]["ChannelBody"]["properties"]["has_secret"].is_object());
    assert!(doc["components"]["schemas"]["ChannelBody"]["properties"].get("secret").is_none());
}
