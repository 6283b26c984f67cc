//! The REST API driven in process: authentication, permissions, validation, concurrency,
//! masking and auditing of contact details, the OpenAPI document, health and metrics.

mod common;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use lector_domain::reader::ReaderDraft;
use lector_domain::role::Role;
use serde_json::{json, Value};

fn draft(card: &str, name: &str) -> Value {
    json!({
        "card_no": card,
        "name": name,
        "gender": "男",
        "birth_date": "2005/3/14",
        "category": "undergraduate",
        "affiliation": "信息科学技术学院",
        "enrolled_on": "2024-09-01",
        "tags": ["新生"],
        "contacts": [
            {"kind": "email", "value": "ZXM@pku.edu.cn"},
            {"kind": "mobile", "value": "138 0013 8000"}
        ],
        "related": [
            {"name": "李老师", "relation": "导师", "phone": "13912345678", "email": "li@pku.edu.cn"}
        ]
    })
}

/// Creates a reader through the API as the librarian; returns its record.
async fn create(app: &TestApp, body: &Value) -> Value {
    let (status, rec) = app.post_json(app.token(Role::Librarian), "/api/v1/readers", body).await;
    assert_eq!(status, StatusCode::CREATED, "{rec}");
    rec
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

fn cards(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|r| r["card_no"].as_str().unwrap().to_string()).collect()
}

async fn reader_count(app: &TestApp) -> i64 {
    app.store.reader_stats().await.unwrap().total
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let app = TestApp::new().await;
    let none = app.call(Method::GET, "/api/v1/readers", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&none.json()), "unauthorized");
    assert!(none.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")));

    let forged =
        app.call(Method::GET, "/api/v1/readers", Some("lec_0000000000000000000000000000000000000000000000000000000000000000"), None).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&forged.json()), "unauthorized");

    let basic = Request::builder().uri("/api/v1/me").header(AUTHORIZATION, "Basic YWRtaW46YWRtaW4=").body(Body::empty()).unwrap();
    assert_eq!(app.send(basic).await.status, StatusCode::UNAUTHORIZED);

    let (status, me) = app.get(app.token(Role::Department), "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "dept");
    assert_eq!(me["role"], "department");
    assert_eq!(me["department"], "circulation");
    assert!(me["display_name"].as_str().is_some_and(|s| !s.is_empty()));

    // A revoked token stops working at once.
    let (token, secret) = app.store.create_token(&app.actor(Role::Admin), "librarian", "to revoke").await.unwrap();
    let (status, _) = app.get(&secret, "/api/v1/readers").await;
    assert_eq!(status, StatusCode::OK);
    app.store.revoke_token(&app.actor(Role::Admin), token.id).await.unwrap();
    let (status, body) = app.get(&secret, "/api/v1/readers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthorized");
}

#[tokio::test]
async fn roles_are_enforced_without_revealing_records() {
    let app = TestApp::new().await;
    let rec = create(&app, &draft("S2024001", "张晓明")).await;
    let id = rec["id"].as_i64().unwrap();

    for path in ["/api/v1/readers".to_string(), format!("/api/v1/readers/{id}"), "/api/v1/readers/by-card/S2024001".into()] {
        let r = app.call(Method::GET, &path, Some(app.token(Role::Analyst)), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(code(&r.json()), "forbidden");
        assert!(!r.text().contains("S2024001") && !r.text().contains("张晓明"), "{}", r.text());
    }
    // 403 for a record that exists and one that does not look the same.
    let exists = app.call(Method::GET, &format!("/api/v1/readers/{id}"), Some(app.token(Role::Analyst)), None).await;
    let missing = app.call(Method::GET, "/api/v1/readers/999999", Some(app.token(Role::Analyst)), None).await;
    assert_eq!((exists.status, exists.body), (missing.status, missing.body));

    let (status, body) = app.delete(app.token(Role::Librarian), &format!("/api/v1/readers/{id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "forbidden");
    assert!(!body.to_string().contains("张晓明"));
    let (status, _) = app.delete(app.token(Role::Librarian), "/api/v1/readers/999999").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Permission is checked before the body is read: a bad body still gets 403.
    for role in [Role::Analyst, Role::Department, Role::Leader] {
        let r = app.call(Method::POST, "/api/v1/readers", Some(app.token(role)), Some(&json!({"nonsense": 1}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?}");
        let r = app.call(Method::PUT, &format!("/api/v1/readers/{id}"), Some(app.token(role)), Some(&json!({}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    assert_eq!(reader_count(&app).await, 1);

    // The admin may delete, with the version or without.
    let (status, body) = app.delete(app.token(Role::Admin), &format!("/api/v1/readers/{id}?version=7")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app.delete(app.token(Role::Admin), &format!("/api/v1/readers/{id}?version=x")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&body), vec!["version"]);
    let (status, body) = app.delete(app.token(Role::Admin), &format!("/api/v1/readers/{id}?version=1")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get(app.token(Role::Librarian), &format!("/api/v1/readers/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, _) = app.delete(app.token(Role::Admin), &format!("/api/v1/readers/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(app.token(Role::Librarian), "/api/v1/readers/abc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.get(app.token(Role::Librarian), "/api/v1/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
}

#[tokio::test]
async fn create_read_and_search() {
    let app = TestApp::new().await;
    let lib = app.token(Role::Librarian);
    let r = app.call(Method::POST, "/api/v1/readers", Some(lib), Some(&draft("s2024001", "张晓明"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let rec = r.json();
    let id = rec["id"].as_i64().unwrap();
    assert_eq!(r.header("location").as_deref(), Some(format!("/api/v1/readers/{id}").as_str()));
    assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(rec["card_no"], "S2024001");
    assert_eq!(rec["version"], 1);
    assert_eq!(rec["gender"], "male");
    assert_eq!(rec["status"], "active");
    assert_eq!(rec["birth_date"], "2005-03-14");
    assert_eq!(rec["category"]["code"], "undergraduate");
    assert_eq!(rec["contacts"][0]["value"], "zxm@pku.edu.cn");
    assert_eq!(rec["contacts"][1]["value"], "13800138000");
    assert_eq!(rec["contacts_masked"], false);

    let (status, got) = app.get(lib, &format!("/api/v1/readers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "张晓明");
    assert_eq!(got["initials"], "zxm");
    let (status, by_card) = app.get(lib, "/api/v1/readers/by-card/s2024001").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_card["id"], id);
    let (status, _) = app.get(lib, "/api/v1/readers/by-card/NOPE").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut other = draft("T1001", "王芳");
    other["category"] = json!("faculty");
    other["affiliation"] = json!("历史学系");
    other["status"] = json!("suspended");
    other["tags"] = json!(["荐购活跃"]);
    other["contacts"] = json!([{"kind": "email", "value": "wangfang@pku.edu.cn"}]);
    other["related"] = json!([]);
    create(&app, &other).await;
    create(&app, &json!({"card_no": "S2024002", "name": "张晓红", "category": "undergraduate"})).await;

    let a = &app;
    let search = |q: &'static str| async move { a.get(lib, &format!("/api/v1/readers?q={q}")).await };
    let (status, page) = search("zxm").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(cards(&page), vec!["S2024001"]);
    assert_eq!(page["total"], 1);
    assert_eq!(page["total_capped"], false);
    assert_eq!(page["page"], 1);
    assert!(page["items"][0].get("contacts").is_none(), "lists carry no contact details");
    let (_, page) = search("zx").await;
    assert_eq!(cards(&page).len(), 2);
    // A name fragment (晓明), URL-encoded.
    let (_, page) = search("%E6%99%93%E6%98%8E").await;
    assert_eq!(cards(&page), vec!["S2024001"]);
    let (_, page) = search("wangfang%40pku.edu.cn").await;
    assert_eq!(cards(&page), vec!["T1001"]);
    // Searches sort by name (pinyin) unless told otherwise.
    let (_, page) = search("s2024").await;
    assert_eq!(cards(&page), vec!["S2024002", "S2024001"]);
    let (_, page) = search("s2024&sort=card_no").await;
    assert_eq!(cards(&page), vec!["S2024001", "S2024002"]);

    let (_, page) = app.get(lib, "/api/v1/readers?category=faculty").await;
    assert_eq!(cards(&page), vec!["T1001"]);
    let (_, page) = app.get(lib, "/api/v1/readers?status=suspended").await;
    assert_eq!(cards(&page), vec!["T1001"]);
    let (_, page) = app.get(lib, "/api/v1/readers?tag=%E6%96%B0%E7%94%9F").await;
    assert_eq!(cards(&page), vec!["S2024001"]);
    let (_, page) = app.get(lib, "/api/v1/readers?affiliation=%E5%8E%86%E5%8F%B2%E5%AD%A6%E7%B3%BB").await;
    assert_eq!(cards(&page), vec!["T1001"]);
    let (_, page) = app.get(lib, "/api/v1/readers?sort=card_no&order=desc").await;
    assert_eq!(cards(&page), vec!["T1001", "S2024002", "S2024001"]);
    let (_, page) = app.get(lib, "/api/v1/readers?sort=card_no&per_page=2&page=2").await;
    assert_eq!(cards(&page), vec!["T1001"]);
    assert_eq!(page["total"], 3);
    assert_eq!(page["per_page"], 2);
    let (_, page) = app.get(lib, "/api/v1/readers?q=&status=&sort=").await;
    assert_eq!(page["total"], 3);

    // The department role may list and search too.
    let (status, page) = app.get(app.token(Role::Department), "/api/v1/readers?q=zxm").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cards(&page), vec!["S2024001"]);

    for (query, field) in [
        ("status=gone", "status"),
        ("sort=age", "sort"),
        ("order=up", "order"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("per_page=500", "per_page"),
    ] {
        let (status, body) = app.get(lib, &format!("/api/v1/readers?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(code(&body), "invalid_input");
        assert_eq!(fields(&body), vec![field], "{query}");
    }
}

#[tokio::test]
async fn invalid_input_names_its_fields() {
    let app = TestApp::new().await;
    let lib = app.token(Role::Librarian);
    let mut bad = draft("S1", "张三");
    bad["contacts"] = json!([{"kind": "email", "value": "not-an-email"}, {"kind": "mobile", "value": "12345"}]);
    bad["birth_date"] = json!("2005-02-30");
    bad["related"][0]["email"] = json!("li@");
    let (status, body) = app.post_json(lib, "/api/v1/readers", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "invalid_input");
    let f = fields(&body);
    for want in ["contacts[0].value", "contacts[1].value", "birth_date", "related[0].email"] {
        assert!(f.contains(&want.to_string()), "no {want} in {f:?}");
    }
    assert!(body["error"]["fields"][0]["message_zh"].as_str().is_some());

    let mut bad = draft("S1", "张三");
    bad["category"] = json!("astronaut");
    let (status, body) = app.post_json(lib, "/api/v1/readers", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(fields(&body), vec!["category"]);

    let mut bad = draft("S1", "张三");
    bad["nickname"] = json!("小张");
    let (status, body) = app.post_json(lib, "/api/v1/readers", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("nickname"), "{body}");

    let mut bad = draft("S1", "张三");
    bad["contacts"][0]["label"] = json!("work");
    let (status, body) = app.post_json(lib, "/api/v1/readers", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("label"), "{body}");

    let mut bad = draft("S1", "张三");
    bad["card_no"] = json!(12);
    let (status, body) = app.post_json(lib, "/api/v1/readers", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("card_no"), "{body}");

    let raw = |ct: &'static str, body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/readers")
            .header(AUTHORIZATION, format!("Bearer {lib}"))
            .header(CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap()
    };
    let r = app.send(raw("application/json", "{\"card_no\": ")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&r.json()), "bad_request");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("EOF"), "{}", r.text());
    let r = app.send(raw("text/plain", "{}")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(code(&r.json()), "unsupported_media_type");

    assert_eq!(reader_count(&app).await, 0);
}

#[tokio::test]
async fn duplicate_card_is_a_conflict() {
    let app = TestApp::new().await;
    create(&app, &draft("S2024001", "张晓明")).await;
    let (status, body) = app.post_json(app.token(Role::Librarian), "/api/v1/readers", &draft("s2024001", "李四")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    assert!(body["error"]["message"].as_str().unwrap().contains("S2024001"), "{body}");
    assert_eq!(reader_count(&app).await, 1);
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let app = TestApp::new().await;
    let mut big = draft("S1", "张三");
    big["notes"] = json!("备".repeat(700 * 1024));
    let body = serde_json::to_vec(&big).unwrap();
    assert!(body.len() > 2 * 1024 * 1024);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/readers")
        .header(AUTHORIZATION, format!("Bearer {}", app.token(Role::Librarian)))
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    assert_eq!(code(&r.json()), "payload_too_large");
    assert_eq!(reader_count(&app).await, 0);
}

#[tokio::test]
async fn updates_need_the_current_version() {
    let app = TestApp::new().await;
    let lib = app.token(Role::Librarian);
    let rec = create(&app, &draft("S2024001", "张晓明")).await;
    let path = format!("/api/v1/readers/{}", rec["id"]);

    let mut edit = draft("S2024001", "张晓明");
    edit["affiliation"] = json!("数学科学学院");
    edit["version"] = json!(1);
    let (status, updated) = app.put_json(lib, &path, &edit).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["affiliation"], "数学科学学院");

    // Someone else edits version 1 again: refused, nothing written.
    let mut stale = draft("S2024001", "张晓明");
    stale["affiliation"] = json!("物理学院");
    stale["version"] = json!(1);
    let (status, body) = app.put_json(lib, &path, &stale).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    let (_, now) = app.get(lib, &path).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["affiliation"], "数学科学学院");

    // The version may come in If-Match instead.
    let mut by_header = draft("S2024001", "张晓明");
    by_header["notes"] = json!("毕业设计需要古籍");
    let req = |tag: &str| {
        Request::builder()
            .method(Method::PUT)
            .uri(&path)
            .header(AUTHORIZATION, format!("Bearer {lib}"))
            .header(CONTENT_TYPE, "application/json")
            .header(IF_MATCH, tag)
            .body(Body::from(serde_json::to_vec(&by_header).unwrap()))
            .unwrap()
    };
    let r = app.send(req("\"1\"")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app.send(req("\"2\"")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["version"], 3);
    assert_eq!(r.header("etag").as_deref(), Some("\"3\""));

    // No version at all; an unknown field; invalid values.
    let (status, body) = app.put_json(lib, &path, &draft("S2024001", "张晓明")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("version"), "{body}");
    let mut unknown = draft("S2024001", "张晓明");
    unknown["version"] = json!(3);
    unknown["nickname"] = json!("小张");
    let (status, body) = app.put_json(lib, &path, &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("nickname"), "{body}");
    let mut invalid = draft("S2024001", "张晓明");
    invalid["version"] = json!(3);
    invalid["expires_on"] = json!("2020-01-01");
    let (status, body) = app.put_json(lib, &path, &invalid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&body), vec!["expires_on"]);
    let (status, _) =
        app.put_json(lib, "/api/v1/readers/999999", &json!({"version": 1, "card_no": "X1", "name": "张三", "category": "staff"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Taking another reader's card number is a conflict.
    create(&app, &json!({"card_no": "S2024002", "name": "张晓红", "category": "undergraduate"})).await;
    let mut clash = draft("S2024002", "张晓明");
    clash["version"] = json!(3);
    let (status, body) = app.put_json(lib, &path, &clash).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains("S2024002"));
    let (_, now) = app.get(lib, &path).await;
    assert_eq!((now["version"].as_i64(), now["card_no"].as_str()), (Some(3), Some("S2024001")));
}

#[tokio::test]
async fn contact_details_are_masked_or_audited() {
    let app = TestApp::new().await;
    let rec = create(&app, &draft("S2024001", "张晓明")).await;
    let id = rec["id"].as_i64().unwrap();
    let a = &app;
    let views = || async move {
        a.store
            .audit_trail("reader", &id.to_string())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "reader.view_contacts")
            .collect::<Vec<_>>()
    };
    assert!(views().await.is_empty());

    for path in [format!("/api/v1/readers/{id}"), "/api/v1/readers/by-card/S2024001".to_string()] {
        let r = app.call(Method::GET, &path, Some(app.token(Role::Department)), None).await;
        assert_eq!(r.status, StatusCode::OK);
        let masked = r.json();
        assert_eq!(masked["name"], "张晓明");
        assert_eq!(masked["contacts_masked"], true);
        assert_eq!(masked["contacts"][0]["value"], "z***@pku.edu.cn");
        assert_eq!(masked["contacts"][1]["value"], "138****8000");
        assert_eq!(masked["related"][0]["phone"], "139****5678");
        assert_eq!(masked["related"][0]["email"], "l***@pku.edu.cn");
        for secret in ["zxm@", "13800138000", "13912345678", "li@pku"] {
            assert!(!r.text().contains(secret), "{secret} leaked: {}", r.text());
        }
    }
    assert!(views().await.is_empty(), "masked views are not audited");

    // Without asking, contacts are masked for everyone and nothing is audited.
    let (status, plain) = app.get(app.token(Role::Librarian), &format!("/api/v1/readers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plain["contacts_masked"], true);
    assert!(views().await.is_empty());
    // Department staff may not ask for them.
    let (status, body) = app.get(app.token(Role::Department), &format!("/api/v1/readers/{id}?contacts=full")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.to_string().contains("zxm@"));
    let (status, _) = app.get(app.token(Role::Librarian), &format!("/api/v1/readers/{id}?contacts=everything")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, full) = app.get(app.token(Role::Librarian), &format!("/api/v1/readers/{id}?contacts=full")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(full["contacts_masked"], false);
    assert_eq!(full["contacts"][0]["value"], "zxm@pku.edu.cn");
    assert_eq!(full["contacts"][1]["value"], "13800138000");
    assert_eq!(full["related"][0]["phone"], "13912345678");
    let v = views().await;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].actor_name, "librarian");
    assert_eq!(v[0].entity_id.as_deref(), Some(id.to_string().as_str()));

    let (status, _) = app.get(app.token(Role::Leader), "/api/v1/readers/by-card/S2024001?contacts=full").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(views().await.len(), 2);
}

#[tokio::test]
async fn openapi_document_describes_the_api() {
    let app = TestApp::new().await;
    let r = app.get_page(None, "/api/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let doc: Value = serde_json::from_slice(&r.body).expect("the document is JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in ["/api/v1/readers", "/api/v1/readers/{id}", "/api/v1/readers/by-card/{card_no}", "/api/v1/me"] {
        assert!(paths.contains_key(p), "no {p} in {:?}", paths.keys().collect::<Vec<_>>());
    }
    for (p, methods) in [("/api/v1/readers", &["get", "post"][..]), ("/api/v1/readers/{id}", &["get", "put", "delete"][..])] {
        for m in methods {
            let op = &paths[p][m];
            assert!(op.is_object(), "{m} {p}");
            assert!(op["responses"]["401"].is_object(), "{m} {p} documents 401");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in ["Reader", "ReaderPage", "ReaderDraftBody", "ReaderUpdateBody", "ErrorBody", "Me"] {
        assert!(schemas.contains_key(s), "no schema {s}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let list_params: Vec<&str> =
        paths["/api/v1/readers"]["get"]["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for q in ["q", "category", "status", "sort", "order", "page", "per_page"] {
        assert!(list_params.contains(&q), "no parameter {q}");
    }

    // Every reference resolves.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }

    // The documented request body has exactly the fields the API accepts.
    let documented: std::collections::BTreeSet<String> =
        schemas["ReaderDraftBody"]["properties"].as_object().unwrap().keys().cloned().collect();
    let accepted: std::collections::BTreeSet<String> =
        serde_json::to_value(ReaderDraft::default()).unwrap().as_object().unwrap().keys().cloned().collect();
    assert_eq!(documented, accepted);
}

#[tokio::test]
async fn health_and_metrics() {
    let app = TestApp::new().await;
    let r = app.get_page(None, "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    let _ = app.get(app.token(Role::Librarian), "/api/v1/readers").await;
    let r = app.get_page(None, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(text.contains("lector_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/readers\""), "{text}");
}
