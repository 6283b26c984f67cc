//! Segments (读者分组) over HTTP, role by role: the API with tokens and the pages with sessions,
//! forged CSRF tokens, bad filters answered 422 with the path of each problem, audited exports.

mod common;

use axum::http::{Method, StatusCode};
use common::{form, TestApp};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_store::audit::AuditQuery;
use serde_json::{json, Value};

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// Three readers: two undergraduates of 计算机学院 (one a volunteer) and a graduate of 物理学院.
async fn readers(app: &TestApp) -> Vec<i64> {
    let mut ids = Vec::new();
    for (card, name, category, affiliation, tags) in [
        ("S001", "张晓明", "undergraduate", "计算机学院", vec!["志愿者"]),
        ("S002", "李华", "undergraduate", "计算机学院", vec![]),
        ("S003", "王芳", "graduate", "物理学院", vec![]),
    ] {
        let draft = ReaderDraft {
            card_no: card.into(),
            name: name.into(),
            category: category.into(),
            affiliation: Some(affiliation.into()),
            contacts: vec![ContactDraft {
                kind: "email".into(),
                value: format!("{}@example.edu.cn", card.to_lowercase()),
                primary: true,
                verified: false,
            }],
            tags: tags.into_iter().map(String::from).collect(),
            ..Default::default()
        };
        let r = app.store.create_reader(&app.actor(Role::Librarian), &draft.parse(today()).unwrap()).await.unwrap();
        ids.push(r.id);
    }
    ids
}

fn undergraduates() -> Value {
    json!({"all": [{"field": "category", "op": "eq", "value": "undergraduate"}]})
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

async fn create(app: &TestApp, role: Role, name: &str, filter: Value) -> Value {
    let (status, body) =
        app.post_json(app.token(role), "/api/v1/segments", &json!({"name": name, "description": "测试", "filter": filter})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn exports(app: &TestApp) -> Vec<lector_store::audit::AuditEntry> {
    app.store
        .audit_log(&AuditQuery { action: Some("segment.export".into()), page: 1, per_page: 50, ..Default::default() })
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn librarian_and_leader_use_the_api() {
    let app = TestApp::new().await;
    let ids = readers(&app).await;
    for (role, name) in [(Role::Librarian, "本科生（馆员）"), (Role::Leader, "本科生（馆领导）")] {
        let token = app.token(role);
        let created = create(&app, role, name, undergraduates()).await;
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["members"], json!(2));
        assert_eq!(created["filter"], undergraduates());

        let (status, list) = app.get(token, "/api/v1/segments").await;
        assert_eq!(status, StatusCode::OK);
        assert!(list.as_array().unwrap().iter().any(|s| s["id"] == json!(id)), "{list}");

        let (status, count) = app
            .post_json(token, "/api/v1/segments/count", &json!({"filter": {"any": [{"field": "tag", "op": "eq", "value": "志愿者"}]}}))
            .await;
        assert_eq!((status, count["count"].clone()), (StatusCode::OK, json!(1)));

        let (status, members) = app.get(token, &format!("/api/v1/segments/{id}/members?sort=card_no")).await;
        assert_eq!(status, StatusCode::OK, "{members}");
        assert_eq!(members["total"], json!(2));
        assert_eq!(members["items"][0]["card_no"], json!("S001"));
        assert_eq!(members["items"][0]["email"], json!("s***@example.edu.cn"), "contacts are masked");

        let (status, updated) = app
            .put_json(
                token,
                &format!("/api/v1/segments/{id}"),
                &json!({"name": name, "filter": {"all": [{"field": "card_no", "op": "eq", "value": "S003"}]}, "version": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!((updated["version"].clone(), updated["members"].clone()), (json!(2), json!(1)));
        let (status, stale) =
            app.put_json(token, &format!("/api/v1/segments/{id}"), &json!({"name": name, "filter": undergraduates(), "version": 1})).await;
        assert_eq!((status, code(&stale)), (StatusCode::CONFLICT, "conflict"));

        let (status, frozen) = app.post_json(token, &format!("/api/v1/segments/{id}/freeze"), &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{frozen}");
        assert!(frozen["frozen_at"].is_string());
        let (status, _) = app.post_json(token, &format!("/api/v1/segments/{id}/freeze"), &json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "freezing twice");
        let (status, live) = app.post_json(token, &format!("/api/v1/segments/{id}/unfreeze"), &json!({})).await;
        assert_eq!((status, live["frozen_at"].clone()), (StatusCode::OK, Value::Null));

        let (status, handed) =
            app.post_json(token, &format!("/api/v1/segments/{id}/hand-over"), &json!({"owner": "librarian", "reason": "按分组移交"})).await;
        assert_eq!(status, StatusCode::OK, "{handed}");
        assert_eq!(app.store.reader(ids[2]).await.unwrap().owner.as_deref(), Some("librarian"));

        let (status, tagged) = app.post_json(token, &format!("/api/v1/segments/{id}/tag"), &json!({"tag": "读书节"})).await;
        if role == Role::Librarian {
            assert_eq!((status, tagged["changed"].clone()), (StatusCode::OK, json!(1)));
            assert!(app.store.reader(ids[2]).await.unwrap().tags.contains(&"读书节".to_string()));
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "a leader may not edit readers");
        }

        let r = app.call(Method::GET, &format!("/api/v1/segments/{id}/export.csv"), Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("content-type").unwrap().starts_with("text/csv"));

        let (status, _) = app.delete(token, &format!("/api/v1/segments/{id}?version=1")).await;
        assert_eq!(status, StatusCode::CONFLICT, "a stale version");
        let (status, _) = app.delete(token, &format!("/api/v1/segments/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = app.get(token, &format!("/api/v1/segments/{id}")).await;
        assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    }
    let doc = app.get_page(None, "/api/openapi.json").await.json();
    for path in ["/api/v1/segments", "/api/v1/segments/count", "/api/v1/segments/{id}/members", "/api/v1/segments/{id}/hand-over"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
}

#[tokio::test]
async fn department_and_analyst_get_403_on_every_route() {
    let app = TestApp::new().await;
    readers(&app).await;
    let id = create(&app, Role::Librarian, "本科生", undergraduates()).await["id"].as_i64().unwrap();
    let body = json!({"name": "x", "filter": undergraduates(), "version": 1, "tag": "x", "owner": null, "reason": "x"});
    let api: Vec<(Method, String)> = vec![
        (Method::GET, "/api/v1/segments".into()),
        (Method::POST, "/api/v1/segments".into()),
        (Method::POST, "/api/v1/segments/count".into()),
        (Method::GET, format!("/api/v1/segments/{id}")),
        (Method::PUT, format!("/api/v1/segments/{id}")),
        (Method::DELETE, format!("/api/v1/segments/{id}")),
        (Method::GET, format!("/api/v1/segments/{id}/members")),
        (Method::POST, format!("/api/v1/segments/{id}/freeze")),
        (Method::POST, format!("/api/v1/segments/{id}/unfreeze")),
        (Method::GET, format!("/api/v1/segments/{id}/export.csv")),
        (Method::POST, format!("/api/v1/segments/{id}/tag")),
        (Method::POST, format!("/api/v1/segments/{id}/hand-over")),
        // A segment that does not exist is refused the same way: nothing leaks.
        (Method::GET, "/api/v1/segments/999999".into()),
    ];
    let pages_get = ["/segments".to_string(), "/segments/new".into(), format!("/segments/{id}"), format!("/segments/{id}/export.csv")];
    let pages_post = [
        "/segments/new".to_string(),
        "/segments/count".into(),
        format!("/segments/{id}"),
        format!("/segments/{id}/freeze"),
        format!("/segments/{id}/unfreeze"),
        format!("/segments/{id}/delete"),
        format!("/segments/{id}/tag"),
        format!("/segments/{id}/handover"),
    ];
    for role in [Role::Department, Role::Analyst] {
        for (method, path) in &api {
            let with_body = matches!(*method, Method::POST | Method::PUT);
            let r = app.call(method.clone(), path, Some(app.token(role)), with_body.then_some(&body)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?} {method} {path}: {}", r.text());
            assert_eq!(code(&r.json()), "forbidden");
        }
        let (cookie, csrf) = app.session(role).await;
        for path in &pages_get {
            assert_eq!(app.get_page(Some(&cookie), path).await.status, StatusCode::FORBIDDEN, "{role:?} GET {path}");
        }
        let posted = form(&[("csrf", &csrf), ("name", "x"), ("filter", &undergraduates().to_string()), ("tag", "x"), ("reason", "x")]);
        for path in &pages_post {
            assert_eq!(app.post_form(&cookie, path, &posted).await.status, StatusCode::FORBIDDEN, "{role:?} POST {path}");
        }
    }
    // Nothing changed.
    let s = app.store.segment(id).await.unwrap();
    assert_eq!((s.version, s.frozen_at), (1, None));
    assert!(exports(&app).await.is_empty());
    // The navigation shows segments to those who may use them.
    let (cookie, _) = app.session(Role::Department).await;
    assert!(!app.get_page(Some(&cookie), "/").await.text().contains("id=\"nav-segments\""));
    let (cookie, _) = app.session(Role::Leader).await;
    assert!(app.get_page(Some(&cookie), "/").await.text().contains("id=\"nav-segments\""));
}

#[tokio::test]
async fn forged_csrf_tokens_are_refused() {
    let app = TestApp::new().await;
    readers(&app).await;
    let id = create(&app, Role::Librarian, "本科生", undergraduates()).await["id"].as_i64().unwrap();
    let (cookie, _) = app.session(Role::Librarian).await;
    let forged = "0123456789abcdef0123456789abcdef";
    let filter = undergraduates().to_string();
    let r = app.post_form(&cookie, "/segments/new", &form(&[("csrf", forged), ("name", "伪造"), ("filter", &filter)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.post_form(&cookie, "/segments/count", &form(&[("csrf", forged), ("filter", &filter)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains("CSRF"), "{}", r.text());
    for action in ["freeze", "delete", "tag", "handover"] {
        let r =
            app.post_form(&cookie, &format!("/segments/{id}/{action}"), &form(&[("csrf", forged), ("tag", "x"), ("reason", "x")])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{action}");
    }
    let r = app.post_form(&cookie, &format!("/segments/{id}"), &form(&[("name", "无令牌"), ("filter", &filter), ("version", "1")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no token at all");
    let s = app.store.segment(id).await.unwrap();
    assert_eq!((s.name.as_str(), s.version, s.frozen_at), ("本科生", 1, None));
    assert_eq!(app.store.segments().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_filter_is_422_with_the_path() {
    let app = TestApp::new().await;
    readers(&app).await;
    let bad = json!({"all": [
        {"field": "category", "op": "eq", "value": "undergraduate"},
        {"any": [{"field": "created_at", "op": "before", "value": "2025-02-30"}]}
    ]});
    let token = app.token(Role::Librarian);
    let (status, body) = app.post_json(token, "/api/v1/segments", &json!({"name": "坏条件", "filter": bad})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"), "{body}");
    assert_eq!(fields(&body), vec!["all[1].any[0].value"]);
    let (status, body) = app.post_json(token, "/api/v1/segments/count", &json!({"filter": bad})).await;
    assert_eq!((status, fields(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["all[1].any[0].value".to_string()]));
    let (status, body) = app
        .post_json(token, "/api/v1/segments/count", &json!({"filter": {"all": [{"field": "shoe_size", "op": "eq", "value": "42"}]}}))
        .await;
    assert_eq!((status, fields(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["all[0].field".to_string()]));
    assert!(body["error"]["fields"][0]["message_zh"].as_str().unwrap().contains("未知字段"), "{body}");

    let (cookie, csrf) = app.session(Role::Librarian).await;
    let r = app.post_form(&cookie, "/segments/count", &form(&[("csrf", &csrf), ("filter", &bad.to_string())])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["errors"][0]["field"], json!("all[1].any[0].value"));
    let r = app.post_form(&cookie, "/segments/count", &form(&[("csrf", &csrf), ("filter", "{\"all\": [")])).await;
    assert_eq!((r.status, r.json()["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("filter")));
    let r = app.post_form(&cookie, "/segments/count", &form(&[("csrf", &csrf), ("filter", &undergraduates().to_string())])).await;
    assert_eq!((r.status, r.json()["count"].clone()), (StatusCode::OK, json!(2)));

    // The form comes back with the problem beside its path, and nothing is saved.
    let r = app.post_form(&cookie, "/segments/new", &form(&[("csrf", &csrf), ("name", "坏条件"), ("filter", &bad.to_string())])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text();
    assert!(html.contains("data-field=\"all[1].any[0].value\""), "{html}");
    assert!(html.contains("坏条件"), "the name is kept");
    assert!(app.store.segments().await.unwrap().is_empty());
}

#[tokio::test]
async fn exports_are_audited() {
    let app = TestApp::new().await;
    readers(&app).await;
    let id = create(&app, Role::Librarian, "本科生", undergraduates()).await["id"].as_i64().unwrap();
    let r = app.call(Method::GET, &format!("/api/v1/segments/{id}/export.csv"), Some(app.token(Role::Leader)), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines[0], "card_no,name,category,affiliation,status,email,mobile");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.contains(&"S001,张晓明,本科生,计算机学院,active,s001@example.edu.cn,"), "{text}");
    let audited = exports(&app).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].actor_name, "leader");
    assert_eq!(audited[0].entity_id.as_deref(), Some(id.to_string().as_str()));
    assert!(audited[0].summary.contains('2'), "{}", audited[0].summary);

    let (cookie, _) = app.session(Role::Librarian).await;
    let r = app.get_page(Some(&cookie), &format!("/segments/{id}/export.csv")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-disposition").unwrap().contains("attachment"));
    let audited = exports(&app).await;
    assert_eq!(audited.len(), 2);
    assert_eq!(audited[0].actor_name, "librarian", "newest first");
}

#[tokio::test]
async fn the_pages_create_show_members_and_act_on_them() {
    let app = TestApp::new().await;
    let ids = readers(&app).await;
    let (cookie, csrf) = app.session(Role::Librarian).await;
    let page = app.get_page(Some(&cookie), "/segments/new").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("id=\"builder\"") && html.contains("id=\"filter-json\"") && html.contains("/static/segments.js"));
    assert!(html.contains("<span id=\"live-count\" data-state=\"ok\">3</span>"), "the default filter (active readers) counts 3");
    let js = app.get_page(None, "/static/segments.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.text().contains("/segments/count"));

    let r = app
        .post_form(
            &cookie,
            "/segments/new",
            &form(&[("csrf", &csrf), ("name", "计算机学院"), ("description", "两位"), ("filter", &undergraduates().to_string())]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let location = r.header("location").unwrap();
    let id: i64 = location.trim_start_matches("/segments/").split('?').next().unwrap().parse().unwrap();
    let html = app.get_page(Some(&cookie), &location).await.text();
    assert!(html.contains("读者分组已创建"));
    assert!(html.contains("<span class=\"count\" id=\"member-count\">2</span>"), "{html}");
    assert!(html.contains("张晓明") && html.contains("李华") && !html.contains("王芳"));
    assert!(html.contains("s***@example.edu.cn") && !html.contains("s001@example.edu.cn"), "emails are masked");

    let list = app.get_page(Some(&cookie), "/segments").await.text();
    assert!(list.contains(&format!("href=\"/segments/{id}\">计算机学院</a>")));

    // Freeze, then a new undergraduate is not a member.
    let r = app.post_form(&cookie, &format!("/segments/{id}/freeze"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let newcomer = ReaderDraft { card_no: "S004".into(), name: "赵新".into(), category: "undergraduate".into(), ..Default::default() };
    app.store.create_reader(&app.actor(Role::Librarian), &newcomer.parse(today()).unwrap()).await.unwrap();
    let html = app.get_page(Some(&cookie), &format!("/segments/{id}")).await.text();
    assert!(html.contains("id=\"unfreeze\"") && !html.contains("赵新"), "the snapshot holds");
    let again = app.post_form(&cookie, &format!("/segments/{id}/freeze"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.text().contains("id=\"action-error\""));

    // Bulk tag: a bad tag comes back beside its field; a good one tags the snapshot.
    let r = app.post_form(&cookie, &format!("/segments/{id}/tag"), &form(&[("csrf", &csrf), ("tag", "a,b")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"tag\""));
    let r = app.post_form(&cookie, &format!("/segments/{id}/tag"), &form(&[("csrf", &csrf), ("tag", "读书节")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("location").unwrap().contains("n=2"));
    assert!(app.store.reader(ids[1]).await.unwrap().tags.contains(&"读书节".to_string()));

    // Bulk hand-over needs a reason.
    let r = app
        .post_form(&cookie, &format!("/segments/{id}/handover"), &form(&[("csrf", &csrf), ("owner", "librarian"), ("reason", "")]))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"reason\""));
    let r = app
        .post_form(&cookie, &format!("/segments/{id}/handover"), &form(&[("csrf", &csrf), ("owner", "librarian"), ("reason", "学院对接")]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.reader(ids[0]).await.unwrap().owner.as_deref(), Some("librarian"));

    // Editing: a frozen segment keeps its filter; after unfreezing it changes.
    let version = app.store.segment(id).await.unwrap().version.to_string();
    let other = json!({"all": [{"field": "affiliation", "op": "eq", "value": "物理学院"}]}).to_string();
    let r = app
        .post_form(
            &cookie,
            &format!("/segments/{id}"),
            &form(&[("csrf", &csrf), ("name", "物理"), ("filter", &other), ("version", &version)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app.post_form(&cookie, &format!("/segments/{id}/unfreeze"), &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let version = app.store.segment(id).await.unwrap().version.to_string();
    let r = app
        .post_form(
            &cookie,
            &format!("/segments/{id}"),
            &form(&[("csrf", &csrf), ("name", "物理"), ("filter", &other), ("version", &version)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let html = app.get_page(Some(&cookie), &format!("/segments/{id}")).await.text();
    assert!(html.contains("王芳") && !html.contains("张晓明"));

    // Delete.
    let version = app.store.segment(id).await.unwrap().version.to_string();
    let r = app.post_form(&cookie, &format!("/segments/{id}/delete"), &form(&[("csrf", &csrf), ("version", &version)])).await;
    assert_eq!((r.status, r.header("location").as_deref()), (StatusCode::SEE_OTHER, Some("/segments?done=deleted")));
    assert_eq!(app.get_page(Some(&cookie), &format!("/segments/{id}")).await.status, StatusCode::NOT_FOUND);
}
