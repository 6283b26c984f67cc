//! Campaigns and triggered messages over HTTP, role by role: pages and API, CSRF, a move the
//! state does not allow (409, nothing changes), the audience before sending, a test sent to
//! yourself through a real SMTP sink, the reader's timeline, and one campaign end to end through
//! the real messaging worker to a real SMTP sink.

mod common;

use axum::http::StatusCode;
use common::{form, TestApp};
use lector_domain::campaign::CampaignInput;
use lector_domain::messaging::{CampaignStatus, ChannelKind, ConsentSource, Purpose};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_store::channels::ChannelInput;
use lector_store::segments::SegmentInput;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::Actor;
use mail_parser::MessageParser;
use serde_json::{json, Value};
use smtp_sink::{Sink, SinkOptions};
use std::time::Duration;

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

fn setup() -> Actor {
    Actor::system("test")
}

/// An email channel writing to `port` on this machine.
async fn email_channel(app: &TestApp, port: u16) -> i64 {
    let settings = json!({"kind": "email", "host": "127.0.0.1", "port": port, "security": "plain", "username": null,
        "from_address": "library@example.edu.cn", "from_name": "示例大学图书馆"});
    let input = ChannelInput {
        code: "email".into(),
        name: "图书馆邮箱".into(),
        settings: serde_json::from_value(settings).unwrap(),
        secret: None,
        rate_per_second: 50,
        enabled: true,
    };
    app.store.create_channel(&setup(), &input).await.unwrap().id
}

async fn lecture_template(app: &TestApp) -> i64 {
    let variant = TemplateVariant {
        channel_kind: ChannelKind::Email,
        lang: "zh".into(),
        subject: "讲座通知：{{ campaign.name }}".into(),
        body_text: "{{ reader.name }}同学，您好！本周五下午在图书馆报告厅举办文献检索讲座。".into(),
        body_html: Some("<p>{{ reader.name }}同学，您好！</p><p>本周五下午在图书馆报告厅举办文献检索讲座。</p>".into()),
    };
    let input = TemplateInput { code: "lecture".into(), name: "讲座通知".into(), purpose: Purpose::News, variants: vec![variant] };
    app.store.create_template(&setup(), &input).await.unwrap().id
}

async fn segment(app: &TestApp, tag: &str) -> i64 {
    let input = SegmentInput {
        name: format!("标签：{tag}"),
        description: String::new(),
        filter: json!({"all": [{"field": "tag", "op": "eq", "value": tag}]}),
    };
    app.store.create_segment(&setup(), &input).await.unwrap().id
}

async fn reader(app: &TestApp, card: &str, name: &str, tag: &str, news_by_email: bool) -> i64 {
    let d = ReaderDraft {
        card_no: card.into(),
        name: name.into(),
        category: "graduate".into(),
        tags: vec![tag.into()],
        contacts: vec![ContactDraft {
            kind: "email".into(),
            value: format!("{}@pku.edu.cn", card.to_lowercase()),
            primary: true,
            verified: true,
        }],
        ..Default::default()
    };
    let r = app.store.create_reader(&setup(), &d.parse(today()).unwrap()).await.unwrap();
    if news_by_email {
        app.store.set_consent(&setup(), r.id, Purpose::News, ChannelKind::Email, true, ConsentSource::Portal).await.unwrap();
    }
    r.id
}

/// A segment of three readers (two opted in to news by email), an email channel to `port`, a
/// news template and a draft campaign; returns the campaign id.
async fn draft_campaign(app: &TestApp, port: u16) -> i64 {
    email_channel(app, port).await;
    let tpl = lecture_template(app).await;
    let seg = segment(app, "讲座").await;
    reader(app, "G001", "李雷", "讲座", true).await;
    reader(app, "G002", "韩梅梅", "讲座", true).await;
    reader(app, "G003", "王五", "讲座", false).await;
    let input = CampaignInput {
        name: "文献检索讲座".into(),
        segment_id: seg,
        template_id: tpl,
        purpose: None,
        channels: vec!["email".into()],
        scheduled_at: None,
        quiet_hours: None,
    };
    app.store.create_campaign(&app.actor(Role::Librarian), &input).await.unwrap().id
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_route_checks_the_role() {
    let app = TestApp::new().await;
    let id = draft_campaign(&app, 9).await;
    let pages = ["/campaigns".to_string(), "/campaigns/new".into(), format!("/campaigns/{id}"), format!("/campaigns/{id}/report")];
    let api = [
        "/api/v1/campaigns".to_string(),
        format!("/api/v1/campaigns/{id}"),
        format!("/api/v1/campaigns/{id}/audience"),
        format!("/api/v1/campaigns/{id}/report"),
        format!("/api/v1/campaigns/{id}/recipients"),
    ];
    for role in [Role::Department, Role::Analyst, Role::Leader] {
        let (cookie, csrf) = app.session(role).await;
        for p in &pages {
            assert_eq!(app.get_page(Some(&cookie), p).await.status, StatusCode::FORBIDDEN, "{role:?} GET {p}");
        }
        for action in ["start", "pause", "resume", "cancel", "schedule", "delete"] {
            let r = app.post_form(&cookie, &format!("/campaigns/{id}/{action}"), &form(&[("csrf", &csrf)])).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?} POST {action}");
        }
        for p in &api {
            let (status, body) = app.get(app.token(role), p).await;
            assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"), "{role:?} GET {p}");
        }
        for action in ["start", "pause", "resume", "cancel", "schedule"] {
            let (status, _) = app.post_json(app.token(role), &format!("/api/v1/campaigns/{id}/{action}"), &json!({})).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role:?} API {action}");
        }
        let (status, _) = app.delete(app.token(role), &format!("/api/v1/campaigns/{id}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Nothing they tried changed anything.
    let c = app.store.campaign(id).await.unwrap();
    assert_eq!((c.status, c.version), (CampaignStatus::Draft, 1));
    // Librarians and administrators work on campaigns; only administrators configure triggers.
    for role in [Role::Librarian, Role::Admin] {
        let (cookie, _) = app.session(role).await;
        for p in &pages {
            assert_eq!(app.get_page(Some(&cookie), p).await.status, StatusCode::OK, "{role:?} GET {p}");
        }
        for p in &api {
            assert_eq!(app.get(app.token(role), p).await.0, StatusCode::OK, "{role:?} GET {p}");
        }
    }
    let (lib, lib_csrf) = app.session(Role::Librarian).await;
    assert_eq!(app.get_page(Some(&lib), "/campaigns/triggers").await.status, StatusCode::FORBIDDEN);
    let r = app.post_form(&lib, "/campaigns/triggers/welcome", &form(&[("csrf", &lib_csrf), ("enabled", "on")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (admin, _) = app.session(Role::Admin).await;
    assert_eq!(app.get_page(Some(&admin), "/campaigns/triggers").await.status, StatusCode::OK);
    // No session: sign in first.
    assert_eq!(app.get_page(None, "/campaigns").await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get(app.token(Role::Librarian), "/api/v1/campaigns/999999").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forms_without_the_csrf_token_change_nothing() {
    let app = TestApp::new().await;
    let id = draft_campaign(&app, 9).await;
    let (cookie, _) = app.session(Role::Librarian).await;
    for csrf in ["", "forged"] {
        let r = app.post_form(&cookie, &format!("/campaigns/{id}/start"), &form(&[("csrf", csrf)])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert!(r.text().contains("CSRF"));
        let r = app.post_form(&cookie, "/campaigns/new", &form(&[("csrf", csrf), ("name", "偷偷创建")])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = app.post_form(&cookie, &format!("/campaigns/{id}/test"), &form(&[("csrf", csrf), ("address", "x@example.com")])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let (admin, _) = app.session(Role::Admin).await;
    let r = app.post_form(&admin, "/campaigns/triggers/welcome", &form(&[("csrf", "forged"), ("enabled", "on")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.store.campaigns(None, 1, 10).await.unwrap().total, 1);
    let c = app.store.campaign(id).await.unwrap();
    assert_eq!((c.status, c.version), (CampaignStatus::Draft, 1));
    assert!(!app.store.trigger_setting(lector_domain::messaging::Trigger::Welcome).await.unwrap().enabled);
}

#[tokio::test]
async fn a_move_the_state_does_not_allow_is_409_and_changes_nothing() {
    let app = TestApp::new().await;
    let id = draft_campaign(&app, 9).await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    for action in ["pause", "resume"] {
        let r = app.post_form(&cookie, &format!("/campaigns/{id}/{action}"), &form(&[("csrf", &csrf)])).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{action}");
        assert!(r.text().contains("草稿"), "{}", r.text());
    }
    let (status, body) = app.post_json(app.token(Role::Librarian), &format!("/api/v1/campaigns/{id}/resume"), &json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    assert!(body["error"]["message"].as_str().unwrap().contains("draft"), "{body}");
    let c = app.store.campaign(id).await.unwrap();
    assert_eq!((c.status, c.version), (CampaignStatus::Draft, 1));
    // Sent, it can no longer be edited or deleted.
    let r = app.post_form(&cookie, &format!("/campaigns/{id}/start"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location").unwrap(), format!("/campaigns/{id}?flash=started"));
    let again = app.post_form(&cookie, &format!("/campaigns/{id}/start"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let (status, _) = app.delete(app.token(Role::Librarian), &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let c = app.store.campaign(id).await.unwrap();
    assert_eq!((c.status, c.recipients), (CampaignStatus::Sending, 2));
    // A segment matching nobody: refused with a clear message.
    let empty = segment(&app, "无人").await;
    let (status, body) = app
        .post_json(
            app.token(Role::Librarian),
            "/api/v1/campaigns",
            &json!({"name": "空分组", "segment_id": empty, "template_id": c.template_id, "channels": ["email"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let empty_id = body["id"].as_i64().unwrap();
    let r = app.post_form(&cookie, &format!("/campaigns/{empty_id}/start"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("没有任何读者"), "{}", r.text());
}

#[tokio::test]
async fn a_campaign_is_written_counted_and_reported_through_the_pages() {
    let app = TestApp::new().await;
    email_channel(&app, 9).await;
    let tpl = lecture_template(&app).await;
    let seg = segment(&app, "讲座").await;
    reader(&app, "G001", "李雷", "讲座", true).await;
    reader(&app, "G002", "韩梅梅", "讲座", false).await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let page = app.get_page(Some(&cookie), "/campaigns/new").await;
    assert!(page.text().contains("讲座通知") && page.text().contains("标签：讲座"), "the form offers the template and the segment");
    // A bad draft comes back with its errors beside the fields.
    let bad = app.post_form(&cookie, "/campaigns/new", &form(&[("csrf", &csrf), ("name", ""), ("quiet_hours", "晚上")])).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for f in ["name", "segment_id", "template_id", "channels", "quiet_hours"] {
        assert!(bad.text().contains(&format!("data-field=\"{f}\"")), "{f} not marked");
    }
    let seg_s = seg.to_string();
    let tpl_s = tpl.to_string();
    let fields = [
        ("csrf", csrf.as_str()),
        ("name", "读书月活动"),
        ("segment_id", &seg_s),
        ("template_id", &tpl_s),
        ("purpose", ""),
        ("channel", "email"),
        ("channel", ""),
        ("scheduled_at", ""),
        ("quiet_hours", "22:00-08:00"),
    ];
    let r = app.post_form(&cookie, "/campaigns/new", &form(&fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let location = r.header("location").unwrap();
    let id: i64 = location.trim_start_matches("/campaigns/").split('?').next().unwrap().parse().unwrap();
    let c = app.store.campaign(id).await.unwrap();
    assert_eq!((c.purpose, c.channels.clone(), c.quiet_start.as_deref()), (Purpose::News, vec!["email".to_string()], Some("22:00")));
    // The draft's page counts the audience before sending: one opted in, one not.
    let page = app.get_page(Some(&cookie), &location).await;
    let html = page.text();
    assert!(html.contains("id=\"audience-members\">2<"), "{html}");
    assert!(html.contains("id=\"audience-recipients\">1<"));
    assert!(html.contains("id=\"audience-consent\">1<"));
    assert!(html.contains("已创建"), "flash shown");
    // Edit it (the version guards against a stale form).
    let version = c.version.to_string();
    let mut edit = fields.to_vec();
    edit[1] = ("name", "读书月活动修订版");
    edit.push(("version", &version));
    let r = app.post_form(&cookie, &format!("/campaigns/{id}"), &form(&edit)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let stale = app.post_form(&cookie, &format!("/campaigns/{id}"), &form(&edit)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let r = app.post_form(&cookie, &format!("/campaigns/{id}/start"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Started: the campaign opens on its report.
    let report = app.get_page(Some(&cookie), &format!("/campaigns/{id}")).await;
    let html = report.text();
    assert!(html.contains("读书月活动修订版") && html.contains("id=\"report-recipients\">1<"), "{html}");
    assert!(html.contains("G001") && !html.contains("G002"), "recipients listed");
    assert!(html.contains("g***@pku.edu.cn") && !html.contains("g001@pku.edu.cn"), "addresses masked");
    assert!(html.contains("id=\"pause-campaign\""));
    let list = app.get_page(Some(&cookie), "/campaigns?status=sending").await;
    assert!(list.text().contains("读书月活动修订版"));
    let none = app.get_page(Some(&cookie), "/campaigns?status=completed").await;
    assert!(!none.text().contains("读书月活动"));
    let r = app.post_form(&cookie, &format!("/campaigns/{id}/pause"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let paused = app.get_page(Some(&cookie), &format!("/campaigns/{id}/report?status=pending")).await;
    assert!(paused.text().contains("id=\"resume-campaign\"") && paused.text().contains("G001"));
    // Every change is in the audit log.
    for action in ["campaign.create", "campaign.update", "campaign.start", "campaign.pause"] {
        let q = lector_store::audit::AuditQuery { action: Some(action.into()), page: 1, per_page: 10, ..Default::default() };
        assert_eq!(app.store.audit_log(&q).await.unwrap().total, 1, "{action}");
    }
}

#[tokio::test]
async fn the_api_writes_counts_sends_and_reports() {
    let app = TestApp::new().await;
    email_channel(&app, 9).await;
    let tpl = lecture_template(&app).await;
    let seg = segment(&app, "讲座").await;
    reader(&app, "G001", "李雷", "讲座", true).await;
    reader(&app, "G002", "韩梅梅", "讲座", false).await;
    let token = app.token(Role::Librarian);
    let (status, body) = app
        .post_json(
            token,
            "/api/v1/campaigns",
            &json!({"name": "", "segment_id": seg, "template_id": 4242, "channels": [], "quiet_hours": "夜里"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"name") && fields.contains(&"channels") && fields.contains(&"quiet_hours"), "{body}");
    let (status, body) = app
        .post_json(
            token,
            "/api/v1/campaigns",
            &json!({"name": "x", "segment_id": seg, "template_id": tpl, "channels": ["email"], "colour": "red"}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_request"));
    let (status, created) = app
        .post_json(token, "/api/v1/campaigns", &json!({"name": "讲座", "segment_id": seg, "template_id": tpl, "channels": ["email"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!((created["status"].as_str(), created["purpose"].as_str()), (Some("draft"), Some("news")));
    let (status, updated) = app
        .put_json(
            token,
            &format!("/api/v1/campaigns/{id}"),
            &json!({"version": 1, "name": "讲座（改）", "segment_id": seg, "template_id": tpl, "purpose": "news", "channels": ["email"], "quiet_hours": "12:00-13:30"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["version"].as_i64(), updated["quiet_hours"].as_str()), (Some(2), Some("12:00-13:30")));
    let (status, _) = app
        .put_json(
            token,
            &format!("/api/v1/campaigns/{id}"),
            &json!({"version": 1, "name": "旧", "segment_id": seg, "template_id": tpl, "channels": ["email"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, audience) = app.get(token, &format!("/api/v1/campaigns/{id}/audience")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (audience["members"].as_i64(), audience["recipients"].as_i64(), audience["excluded_consent"].as_i64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(audience["per_channel"][0]["code"], json!("email"));
    let (status, started) = app.post_json(token, &format!("/api/v1/campaigns/{id}/start"), &json!({})).await;
    assert_eq!((status, started["status"].as_str(), started["recipients"].as_i64()), (StatusCode::OK, Some("sending"), Some(1)));
    let (_, report) = app.get(token, &format!("/api/v1/campaigns/{id}/report")).await;
    assert_eq!(report["by_channel"], json!([{"channel": "email", "status": "pending", "count": 1}]));
    let (_, recipients) = app.get(token, &format!("/api/v1/campaigns/{id}/recipients?status=pending")).await;
    assert_eq!(recipients["total"], json!(1));
    assert_eq!(
        (recipients["items"][0]["card_no"].as_str(), recipients["items"][0]["address"].as_str()),
        (Some("G001"), Some("g***@pku.edu.cn"))
    );
    let (status, _) = app.get(token, &format!("/api/v1/campaigns/{id}/recipients?status=lost")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = app.get(token, "/api/v1/campaigns?status=sending").await;
    assert_eq!((list["total"].as_i64(), list["items"][0]["progress"]["pending"].as_i64()), (Some(1), Some(1)));
    for (action, to) in [("pause", "paused"), ("resume", "sending"), ("cancel", "cancelled")] {
        let (status, c) = app.post_json(token, &format!("/api/v1/campaigns/{id}/{action}"), &json!({})).await;
        assert_eq!((status, c["status"].as_str()), (StatusCode::OK, Some(to)), "{action}");
    }
    let (_, c) = app.get(token, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(c["progress"]["cancelled"], json!(1));
    // A draft can be deleted.
    let (_, draft) = app
        .post_json(token, "/api/v1/campaigns", &json!({"name": "草稿", "segment_id": seg, "template_id": tpl, "channels": ["email"]}))
        .await;
    let (status, _) = app.delete(token, &format!("/api/v1/campaigns/{}", draft["id"])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The OpenAPI document lists the routes.
    let doc = lector_web::api::openapi_document();
    for p in ["/api/v1/campaigns/{id}/audience", "/api/v1/campaigns/{id}/recipients", "/api/v1/campaigns/{id}/start"] {
        assert!(doc.contains(p), "{p} missing from the OpenAPI document");
    }
}

#[tokio::test]
async fn triggered_messages_are_configured_by_administrators() {
    let app = TestApp::new().await;
    email_channel(&app, 9).await;
    let tpl = lecture_template(&app).await;
    let (admin, csrf) = app.session(Role::Admin).await;
    let r = app.post_form(&admin, "/campaigns/triggers/case_received", &form(&[("csrf", &csrf), ("enabled", "on")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("启用前请选择消息模板"), "{}", r.text());
    let tpl_s = tpl.to_string();
    let r = app
        .post_form(
            &admin,
            "/campaigns/triggers/case_received",
            &form(&[("csrf", &csrf), ("template_id", &tpl_s), ("channel", "email"), ("enabled", "on")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let s = app.store.trigger_setting(lector_domain::messaging::Trigger::CaseReceived).await.unwrap();
    assert!(s.enabled && s.template_id == Some(tpl) && s.channels == ["email"]);
    let r = app.post_form(&admin, "/campaigns/triggers/no_such_trigger", &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let page = app.get_page(Some(&admin), "/campaigns/triggers?flash=saved").await;
    assert!(page.text().contains("已保存") && page.text().contains("已启用"));
}

#[tokio::test]
async fn a_test_goes_to_yourself_and_messages_show_on_the_reader_timeline() {
    let app = TestApp::new().await;
    let sink = Sink::start(SinkOptions::default()).await;
    let id = draft_campaign(&app, sink.addr().port()).await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    // With no address on file, the field starts empty; the result is shown on the page.
    let r = app
        .post_form(
            &cookie,
            &format!("/campaigns/{id}/test"),
            &form(&[("csrf", &csrf), ("channel", "email"), ("address", "me@library.example.edu.cn")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("id=\"test-result\""), "{}", r.text());
    assert!(sink.wait_for(1, Duration::from_secs(10)).await, "the test arrived");
    let got = &sink.messages()[0];
    assert_eq!(got.rcpt_to, ["me@library.example.edu.cn"]);
    let msg = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(msg.subject(), Some("[测试 Test] 讲座通知：文献检索讲座"));
    assert!(msg.body_text(0).unwrap().contains("李雷同学"), "rendered for the segment's first member");
    // For a chosen reader; an unknown card number is refused.
    let r = app
        .post_form(
            &cookie,
            &format!("/campaigns/{id}/test"),
            &form(&[("csrf", &csrf), ("channel", "email"), ("address", "me@library.example.edu.cn"), ("card_no", "G002")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(sink.wait_for(2, Duration::from_secs(10)).await);
    let second = sink.messages().remove(1);
    let msg = MessageParser::default().parse(&second.data).unwrap();
    assert!(msg.body_text(0).unwrap().contains("韩梅梅同学"));
    let r = app
        .post_form(
            &cookie,
            &format!("/campaigns/{id}/test"),
            &form(&[("csrf", &csrf), ("channel", "email"), ("address", "me@x.cn"), ("card_no", "NOPE")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("NOPE"));
    // A failure is shown as the channel answered it.
    sink.set_rcpt_rule("nobody@library.example.edu.cn", Some(smtp_sink::RcptRule::Reject));
    let r = app
        .post_form(
            &cookie,
            &format!("/campaigns/{id}/test"),
            &form(&[("csrf", &csrf), ("channel", "email"), ("address", "nobody@library.example.edu.cn")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("550"), "{}", r.text());
    assert_eq!(sink.count(), 2);
    let q = lector_store::audit::AuditQuery { action: Some("campaign.test".into()), page: 1, per_page: 10, ..Default::default() };
    assert_eq!(app.store.audit_log(&q).await.unwrap().total, 4);
    // Queued messages show on the reader's timeline.
    app.store.start_campaign(&app.actor(Role::Librarian), id).await.unwrap();
    let g1 = app.store.reader_by_card("G001").await.unwrap();
    let page = app.get_page(Some(&cookie), &format!("/readers/{}", g1.id)).await;
    let html = page.text();
    assert!(html.contains("data-action=\"message\""), "{html}");
    assert!(html.contains("群发：文献检索讲座") && html.contains("待发送"), "{html}");
}

/// A campaign to a small segment, sent by the real worker to a real SMTP sink: the readers who
/// consented get the rendered message with a one-click unsubscribe; the one who did not gets
/// nothing; the campaign completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_the_sink_through_the_worker() {
    let app = TestApp::new().await;
    let sink = Sink::start(SinkOptions::default()).await;
    let id = draft_campaign(&app, sink.addr().port()).await;
    let options = lector_messaging::worker::WorkerOptions { poll: Duration::from_millis(50), ..Default::default() };
    let worker = tokio::spawn(lector_messaging::worker::run(app.store.clone(), options));
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let r = app.post_form(&cookie, &format!("/campaigns/{id}/start"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(sink.wait_for(2, Duration::from_secs(30)).await, "two messages arrive; got {}", sink.count());
    // Done when the worker completes the campaign (nothing pending any more).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = app.store.campaign(id).await.unwrap();
        if c.status == CampaignStatus::Completed {
            assert_eq!((c.progress.sent, c.progress.failed, c.progress.pending), (2, 0, 0));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the campaign did not complete: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.abort();
    let mut got = sink.messages();
    assert_eq!(got.len(), 2, "nobody got a second copy, the reader without consent got nothing");
    got.sort_by(|a, b| a.rcpt_to.cmp(&b.rcpt_to));
    let names = ["李雷", "韩梅梅"];
    for (m, (addr, name)) in got.iter().zip([("g001@pku.edu.cn", names[0]), ("g002@pku.edu.cn", names[1])]) {
        assert_eq!(m.rcpt_to, [addr]);
        let msg = MessageParser::default().parse(&m.data).unwrap();
        assert_eq!(msg.subject(), Some("讲座通知：文献检索讲座"));
        assert!(msg.body_text(0).unwrap().contains(&format!("{name}同学，您好")), "{:?}", msg.body_text(0));
        assert!(msg.body_html(0).unwrap().contains(&format!("<p>{name}同学，您好！</p>")));
        let unsubscribe = msg.header_raw("List-Unsubscribe").expect("List-Unsubscribe").trim().to_string();
        assert!(unsubscribe.starts_with('<') && unsubscribe.contains("/portal/unsubscribe/"), "{unsubscribe}");
        assert_eq!(msg.header_raw("List-Unsubscribe-Post").unwrap().trim(), "List-Unsubscribe=One-Click");
    }
    assert!(!sink.messages().iter().any(|m| m.rcpt_to.iter().any(|r| r == "g003@pku.edu.cn")));
    let report = app.get_page(Some(&cookie), &format!("/campaigns/{id}/report")).await;
    assert!(report.text().contains("id=\"report-sent\">2<"), "{}", report.text());
}
