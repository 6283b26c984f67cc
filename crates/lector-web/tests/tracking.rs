//! Reader tracking driven in process: interactions, follow-up tasks, hand-over and
//! notifications, through the pages (sessions) and the API (tokens), role by role.

mod common;

use axum::http::{Method, StatusCode};
use common::{form, TestApp};
use lector_domain::reader::{ContactDraft, ReaderDraft};
use lector_domain::role::Role;
use lector_domain::tracking::{TaskInput, TaskStatus};
use lector_store::tracking::{InteractionQuery, TaskQuery};
use serde_json::{json, Value};

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

fn day(offset: i64) -> String {
    (today() + chrono::Duration::days(offset)).format("%Y-%m-%d").to_string()
}

/// A local time `hours` from now, as a browser's datetime-local input sends it.
fn local_time(hours: i64) -> String {
    (chrono::Local::now() + chrono::Duration::hours(hours)).format("%Y-%m-%dT%H:%M").to_string()
}

async fn reader(app: &TestApp, card: &str, name: &str) -> i64 {
    let draft = ReaderDraft {
        card_no: card.into(),
        name: name.into(),
        category: "undergraduate".into(),
        affiliation: Some("计算机学院".into()),
        contacts: vec![ContactDraft { kind: "email".into(), value: format!("{card}@pku.edu.cn"), primary: true, verified: false }],
        ..Default::default()
    };
    let input = draft.parse(today()).unwrap();
    app.store.create_reader(&app.actor(Role::Librarian), &input).await.unwrap().id
}

async fn interaction_count(app: &TestApp, reader_id: i64) -> i64 {
    app.store
        .interactions(&InteractionQuery { reader_id: Some(reader_id), page: 1, per_page: 50, ..Default::default() })
        .await
        .unwrap()
        .total
}

async fn tasks_of(app: &TestApp, reader_id: i64) -> Vec<lector_store::tracking::Task> {
    app.store.tasks(&TaskQuery { reader_id: Some(reader_id), page: 1, per_page: 50, ..Default::default() }).await.unwrap().items
}

/// A task about `reader_id` created by the librarian for `assignee`.
async fn task(app: &TestApp, reader_id: i64, assignee: &str) -> lector_store::tracking::Task {
    let input =
        TaskInput {
            title: "回电确认荐购结果".into(), notes: None, due_on: today() + chrono::Duration::days(2), assignee: assignee.into()
        };
    app.store.create_task(&app.actor(Role::Librarian), Some(reader_id), &input).await.unwrap()
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

/// The part of a reader page inside `<ol id="timeline">`.
fn timeline(html: &str) -> &str {
    let start = html.find("id=\"timeline\"").expect("a timeline");
    let end = html[start..].find("</ol>").map(|e| start + e).unwrap_or(html.len());
    &html[start..end]
}

#[tokio::test]
async fn department_records_an_interaction_shown_on_the_reader_page_and_timeline() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024100001", "张晓明").await;
    let (dept, csrf) = app.session(Role::Department).await;
    let page = app.get_page(Some(&dept), &format!("/readers/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("id=\"interaction-form\"") && html.contains("id=\"task-form\""), "department staff record");
    assert!(!html.contains("id=\"handover-form\""), "department staff cannot hand over");
    assert!(html.contains("type=\"datetime-local\""));

    let two_days_ago = local_time(-48);
    let r = app
        .post_form(
            &dept,
            &format!("/readers/{id}/interactions"),
            &form(&[
                ("csrf", &csrf),
                ("channel", "phone"),
                ("direction", "inbound"),
                ("subject", "咨询馆际互借"),
                ("notes", "需要一本外校的书"),
                ("occurred_at", &two_days_ago),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let location = r.header("location").unwrap();
    assert!(location.starts_with(&format!("/readers/{id}?flash=recorded")), "{location}");

    let stored =
        app.store.interactions(&InteractionQuery { reader_id: Some(id), page: 1, per_page: 10, ..Default::default() }).await.unwrap();
    assert_eq!(stored.total, 1);
    assert_eq!(stored.items[0].staff, "dept");
    assert_eq!(stored.items[0].occurred_at, two_days_ago.replace('T', " "));

    let html = app.get_page(Some(&dept), &location).await.text();
    assert!(html.contains("id=\"flash\""));
    assert!(html.contains("咨询馆际互借") && html.contains("需要一本外校的书"));
    let tl = timeline(&html);
    let interaction = tl.find("data-action=\"interaction\"").expect("the interaction is on the timeline");
    let created = tl.find("data-action=\"reader.create\"").expect("the creation is on the timeline");
    assert!(created < interaction, "newest first: the reader was created after the contact two days ago");

    // Across readers, with filters and a link to the reader.
    let list = app.get_page(Some(&dept), "/interactions").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text().contains("咨询馆际互借") && list.text().contains(&format!("href=\"/readers/{id}\"")));
    let list = app.get_page(Some(&dept), "/interactions?channel=email").await.text();
    assert!(!list.contains("咨询馆际互借"));
    let list = app.get_page(Some(&dept), &format!("/interactions?staff=dept&from={}&to={}", day(-3), day(0))).await.text();
    assert!(list.contains("咨询馆际互借"));
    let bad = app.get_page(Some(&dept), "/interactions?from=someday").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().contains("data-field=\"from\""));
    // The navigation links to the tracking pages.
    let home = app.get_page(Some(&dept), "/").await.text();
    assert!(home.contains("id=\"nav-interactions\"") && home.contains("id=\"nav-tasks\"") && home.contains("id=\"nav-notifications\""));
    assert!(home.contains("id=\"tile-my-tasks\"") && home.contains("id=\"tile-overdue-tasks\""));
}

#[tokio::test]
async fn analysts_are_refused_everywhere_and_nothing_is_written() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024100002", "王芳").await;
    let t = task(&app, id, "librarian").await;
    let (analyst, csrf) = app.session(Role::Analyst).await;
    for path in ["/interactions", "/tasks", "/tasks?view=overdue", "/tasks?view=all"] {
        let r = app.get_page(Some(&analyst), path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!r.text().contains("回电确认荐购结果"), "{path}");
    }
    let posts = [
        (format!("/readers/{id}/interactions"), form(&[("csrf", &csrf), ("channel", "phone"), ("subject", "x")])),
        (format!("/readers/{id}/tasks"), form(&[("csrf", &csrf), ("title", "x"), ("due_on", &day(1)), ("assignee", "analyst")])),
        (format!("/readers/{id}/handover"), form(&[("csrf", &csrf), ("owner", "analyst"), ("reason", "x")])),
        ("/readers/handover".to_string(), form(&[("csrf", &csrf), ("ids", &id.to_string()), ("owner", "analyst"), ("reason", "x")])),
        (format!("/tasks/{}/status", t.id), form(&[("csrf", &csrf), ("status", "done"), ("version", &t.version.to_string())])),
    ];
    for (path, body) in &posts {
        assert_eq!(app.post_form(&analyst, path, body).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Everyone signed in has notifications; analysts see no tracking links.
    assert_eq!(app.get_page(Some(&analyst), "/notifications").await.status, StatusCode::OK);
    let home = app.get_page(Some(&analyst), "/").await.text();
    assert!(
        home.contains("id=\"nav-notifications\"") && !home.contains("id=\"nav-interactions\"") && !home.contains("id=\"tile-my-tasks\"")
    );

    let token = app.token(Role::Analyst);
    for path in [
        "/api/v1/interactions".to_string(),
        "/api/v1/tasks".into(),
        format!("/api/v1/readers/{id}/interactions"),
        format!("/api/v1/readers/{id}/owners"),
        "/api/v1/readers/999999/owners".into(),
    ] {
        let (status, body) = app.get(token, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(!body.to_string().contains("回电"), "{path}");
    }
    let api_posts = [
        (format!("/api/v1/readers/{id}/interactions"), json!({"channel": "phone", "subject": "x"})),
        ("/api/v1/tasks".into(), json!({"title": "x", "due_on": day(1), "assignee": "analyst"})),
        (format!("/api/v1/tasks/{}/status", t.id), json!({"status": "done", "version": t.version})),
        ("/api/v1/readers/handover".into(), json!({"reader_ids": [id], "owner": "analyst", "reason": "x"})),
        ("/api/v1/readers/handover".into(), json!({"nonsense": true})),
    ];
    for (path, body) in &api_posts {
        let (status, body) = app.post_json(token, path, body).await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"), "{path}");
    }
    assert_eq!(interaction_count(&app, id).await, 0);
    assert_eq!(app.store.task(t.id).await.unwrap().status, TaskStatus::Open);
    assert!(app.store.owner_history(id).await.unwrap().is_empty());
    assert_eq!(app.store.reader(id).await.unwrap().owner, None);
}

#[tokio::test]
async fn leaders_hand_over_but_do_not_record() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024100003", "李雷").await;
    let (leader, csrf) = app.session(Role::Leader).await;
    let html = app.get_page(Some(&leader), &format!("/readers/{id}")).await.text();
    assert!(html.contains("id=\"handover-form\"") && !html.contains("id=\"interaction-form\"") && !html.contains("id=\"task-form\""));

    let r = app
        .post_form(&leader, &format!("/readers/{id}/interactions"), &form(&[("csrf", &csrf), ("channel", "phone"), ("subject", "x")]))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post_form(
            &leader,
            &format!("/readers/{id}/tasks"),
            &form(&[("csrf", &csrf), ("title", "x"), ("due_on", &day(1)), ("assignee", "dept")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(interaction_count(&app, id).await, 0);
    assert!(tasks_of(&app, id).await.is_empty());

    // No reason: refused beside the field, nothing changes.
    let r = app
        .post_form(&leader, &format!("/readers/{id}/handover"), &form(&[("csrf", &csrf), ("owner", "librarian"), ("reason", " ")]))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("class=\"field-error\" data-field=\"reason\""), "{}", r.text());
    assert_eq!(app.store.reader(id).await.unwrap().owner, None);
    // An unknown owner: refused beside the owner.
    let r = app
        .post_form(&leader, &format!("/readers/{id}/handover"), &form(&[("csrf", &csrf), ("owner", "nobody"), ("reason", "调岗")]))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"owner\""));
    assert_eq!(app.store.reader(id).await.unwrap().owner, None);

    let r = app
        .post_form(&leader, &format!("/readers/{id}/handover"), &form(&[("csrf", &csrf), ("owner", "librarian"), ("reason", "调岗交接")]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(app.store.reader(id).await.unwrap().owner.as_deref(), Some("librarian"));
    let html = app.get_page(Some(&leader), &format!("/readers/{id}")).await.text();
    assert!(html.contains("id=\"owner-history\"") && html.contains("调岗交接"));
    assert!(timeline(&html).contains("data-action=\"reader.handover\""));
    // And back to nobody.
    let r = app.post_form(&leader, &format!("/readers/{id}/handover"), &form(&[("csrf", &csrf), ("owner", ""), ("reason", "离职")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.reader(id).await.unwrap().owner, None);
    assert_eq!(app.store.owner_history(id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn bad_input_is_refused_beside_the_field_and_nothing_is_written() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024100004", "韩梅梅").await;
    let (lib, csrf) = app.session(Role::Librarian).await;
    let path = format!("/readers/{id}/interactions");
    let in_two_days = local_time(48);
    for (pairs, field) in [
        (vec![("channel", "phone"), ("subject", "来电"), ("occurred_at", in_two_days.as_str())], "occurred_at"),
        (vec![("channel", "pigeon"), ("subject", "来电")], "channel"),
        (vec![("channel", "phone"), ("subject", "  ")], "subject"),
    ] {
        let mut pairs = pairs;
        pairs.push(("csrf", &csrf));
        let r = app.post_form(&lib, &path, &form(&pairs)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let html = r.text();
        assert!(html.contains(&format!("class=\"field-error\" data-field=\"{field}\"")), "{field}: {html}");
        assert!(html.contains("id=\"reader-name\""), "the reader page comes back");
    }
    assert_eq!(interaction_count(&app, id).await, 0);

    let path = format!("/readers/{id}/tasks");
    let yesterday = day(-1);
    let tomorrow = day(1);
    for (pairs, field) in [
        (vec![("title", "回电"), ("due_on", yesterday.as_str()), ("assignee", "dept")], "due_on"),
        (vec![("title", "回电"), ("due_on", tomorrow.as_str()), ("assignee", "nobody")], "assignee"),
        (vec![("title", ""), ("due_on", tomorrow.as_str()), ("assignee", "dept")], "title"),
    ] {
        let mut pairs = pairs;
        pairs.push(("csrf", &csrf));
        let r = app.post_form(&lib, &path, &form(&pairs)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(r.text().contains(&format!("class=\"field-error\" data-field=\"{field}\"")), "{field}: {}", r.text());
        assert!(r.text().contains("value=\"回电\"") || field == "title", "the input is kept");
    }
    assert!(tasks_of(&app, id).await.is_empty());

    // Without the CSRF token nothing happens.
    let t = task(&app, id, "librarian").await;
    for (path, body) in [
        (format!("/readers/{id}/interactions"), form(&[("channel", "phone"), ("subject", "来电")])),
        (format!("/readers/{id}/tasks"), form(&[("csrf", "forged"), ("title", "回电"), ("due_on", &tomorrow), ("assignee", "dept")])),
        (format!("/readers/{id}/handover"), form(&[("owner", "dept"), ("reason", "调岗")])),
        ("/readers/handover".into(), form(&[("ids", &id.to_string()), ("owner", "dept"), ("reason", "调岗")])),
        (format!("/tasks/{}/status", t.id), form(&[("status", "done"), ("version", &t.version.to_string())])),
        ("/notifications/read".into(), String::new()),
    ] {
        assert_eq!(app.post_form(&lib, &path, &body).await.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(interaction_count(&app, id).await, 0);
    assert_eq!(tasks_of(&app, id).await.len(), 1);
    assert_eq!(app.store.task(t.id).await.unwrap().status, TaskStatus::Open);
    assert_eq!(app.store.reader(id).await.unwrap().owner, None);
}

#[tokio::test]
async fn task_status_changes_follow_the_rules() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024100005", "赵敏").await;
    let (lib, lib_csrf) = app.session(Role::Librarian).await;
    let tomorrow = day(1);
    let r = app
        .post_form(
            &lib,
            &format!("/readers/{id}/tasks"),
            &form(&[("csrf", &lib_csrf), ("title", "回电确认"), ("due_on", &tomorrow), ("assignee", "dept"), ("notes", "下午")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let t = tasks_of(&app, id).await.pop().expect("the task");
    assert_eq!((t.assignee.as_str(), t.created_by.as_str(), t.status), ("dept", "librarian", TaskStatus::Open));
    assert!(app.store.unread_notifications(app.user(Role::Department).id).await.unwrap() >= 1, "the assignee is notified");

    // The assignee sees it as theirs, with a count in the navigation.
    let (dept, dept_csrf) = app.session(Role::Department).await;
    let mine = app.get_page(Some(&dept), "/tasks").await;
    assert_eq!(mine.status, StatusCode::OK);
    assert!(mine.text().contains("回电确认") && mine.text().contains("id=\"open-task-count\">1<"), "{}", mine.text());
    assert!(!app.get_page(Some(&lib), "/tasks").await.text().contains("回电确认"), "not the librarian's task");
    assert!(app.get_page(Some(&lib), "/tasks?view=all").await.text().contains("回电确认"));
    assert!(!app.get_page(Some(&lib), "/tasks?view=overdue").await.text().contains("回电确认"), "not overdue");
    assert!(app.get_page(Some(&dept), &format!("/readers/{id}")).await.text().contains("data-action=\"task.create\""));

    let status = |csrf: &str, s: &str, v: i64| form(&[("csrf", csrf), ("status", s), ("version", &v.to_string()), ("back", "/tasks")]);
    let path = format!("/tasks/{}/status", t.id);
    // A leader may see it but is neither assignee nor creator.
    let (leader, leader_csrf) = app.session(Role::Leader).await;
    assert_eq!(app.post_form(&leader, &path, &status(&leader_csrf, "done", t.version)).await.status, StatusCode::FORBIDDEN);
    // The assignee completes it.
    let r = app.post_form(&dept, &path, &status(&dept_csrf, "done", t.version)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(r.header("location").unwrap().starts_with("/tasks?flash=task_updated"));
    let done = app.store.task(t.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert!(app.get_page(Some(&dept), &format!("/readers/{id}")).await.text().contains("data-action=\"task.done\""));
    // Done → done is not a transition; a stale version is refused.
    assert_eq!(app.post_form(&dept, &path, &status(&dept_csrf, "done", done.version)).await.status, StatusCode::CONFLICT);
    assert_eq!(app.post_form(&dept, &path, &status(&dept_csrf, "open", t.version)).await.status, StatusCode::CONFLICT);
    assert_eq!(app.post_form(&dept, &path, &status(&dept_csrf, "finished", done.version)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.store.task(t.id).await.unwrap().status, TaskStatus::Done);
    // The creator reopens it, an admin cancels it.
    assert_eq!(app.post_form(&lib, &path, &status(&lib_csrf, "open", done.version)).await.status, StatusCode::SEE_OTHER);
    let reopened = app.store.task(t.id).await.unwrap();
    assert_eq!(reopened.status, TaskStatus::Open);
    let (admin, admin_csrf) = app.session(Role::Admin).await;
    assert_eq!(app.post_form(&admin, &path, &status(&admin_csrf, "cancelled", reopened.version)).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.task(t.id).await.unwrap().status, TaskStatus::Cancelled);
    let all = app.get_page(Some(&admin), "/tasks?view=all&status=cancelled").await.text();
    assert!(all.contains("回电确认") && all.contains("class=\"task-reopen\""));
}

#[tokio::test]
async fn bulk_hand_over_changes_owners_and_notifies_the_new_owner() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for (card, name) in [("2024100011", "张一"), ("2024100012", "张二"), ("2024100013", "张三")] {
        ids.push(reader(&app, card, name).await);
    }
    let other = reader(&app, "2024100014", "李四").await;
    let (lib, csrf) = app.session(Role::Librarian).await;
    let list = app.get_page(Some(&lib), "/readers").await.text();
    assert!(list.contains("id=\"bulk-handover-form\"") && list.contains(&format!("name=\"ids\" value=\"{}\"", ids[0])));
    let (dept, dept_csrf) = app.session(Role::Department).await;
    assert!(!app.get_page(Some(&dept), "/readers").await.text().contains("bulk-handover-form"), "only for ReadersHandOver");

    // Nothing selected, or no reason: 422 with a message, nothing changes.
    let r = app.post_form(&lib, "/readers/handover", &form(&[("csrf", &csrf), ("owner", "dept"), ("reason", "部门调整")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("请至少选择一位读者") && r.text().contains("id=\"handover-error\""));
    let r = app
        .post_form(&lib, "/readers/handover", &form(&[("csrf", &csrf), ("ids", &ids[0].to_string()), ("owner", "dept"), ("reason", "")]))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"reason\""));
    assert_eq!(app.store.reader(ids[0]).await.unwrap().owner, None);

    let mut pairs: Vec<(&str, String)> = ids.iter().map(|i| ("ids", i.to_string())).collect();
    pairs.extend([("csrf", csrf.clone()), ("owner", "dept".into()), ("reason", "部门调整".into()), ("back", "/readers?q=&page=1".into())]);
    let body = form(&pairs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let r = app.post_form(&lib, "/readers/handover", &body).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let back = r.header("location").unwrap();
    assert!(back.starts_with("/readers?") && back.contains("flash=handover"), "{back}");
    assert!(app.get_page(Some(&lib), &back).await.text().contains("id=\"flash\""));
    for id in &ids {
        assert_eq!(app.store.reader(*id).await.unwrap().owner.as_deref(), Some("dept"), "reader {id}");
        let history = app.store.owner_history(*id).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(
            (history[0].to_owner.as_deref(), history[0].reason.as_str(), history[0].by.as_str()),
            (Some("dept"), "部门调整", "librarian")
        );
    }
    assert_eq!(app.store.reader(other).await.unwrap().owner, None, "unselected readers keep their owner");
    let page = app.get_page(Some(&lib), &format!("/readers/{}", ids[1])).await.text();
    assert!(page.contains("id=\"owner-history\"") && page.contains("部门调整"));

    // The new owner sees a notification in the header and on the notifications page.
    let unread = app.store.unread_notifications(app.user(Role::Department).id).await.unwrap();
    assert!(unread >= 1);
    let home = app.get_page(Some(&dept), "/").await.text();
    assert!(home.contains(&format!("id=\"unread-count\">{unread}<")), "{home}");
    let notes = app.get_page(Some(&dept), "/notifications").await;
    assert_eq!(notes.status, StatusCode::OK);
    assert!(notes.text().contains("class=\"notification unread\""));
    let r = app.post_form(&dept, "/notifications/read", &form(&[("csrf", &dept_csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.unread_notifications(app.user(Role::Department).id).await.unwrap(), 0);
    assert!(!app.get_page(Some(&dept), "/").await.text().contains("id=\"unread-count\""));
}

#[tokio::test]
async fn the_api_follows_the_same_rules() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024100021", "周芷若").await;
    let dept = app.token(Role::Department);
    let lib = app.token(Role::Librarian);
    let leader = app.token(Role::Leader);

    let (status, body) =
        app.post_json(dept, &format!("/api/v1/readers/{id}/interactions"), &json!({"channel": "电话", "subject": "电话咨询"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["staff"].as_str(), body["channel"].as_str(), body["direction"].as_str()),
        (Some("dept"), Some("phone"), Some("inbound"))
    );
    let (status, page) = app.get(dept, &format!("/api/v1/readers/{id}/interactions")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(app.get(dept, "/api/v1/interactions?channel=phone&staff=dept").await.1["total"], 1);
    assert_eq!(app.get(dept, "/api/v1/interactions?channel=email").await.1["total"], 0);
    let (status, body) = app.get(dept, "/api/v1/interactions?channel=pigeon&page=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(fields(&body).contains(&"channel".to_string()) && fields(&body).contains(&"page".to_string()), "{body}");
    assert_eq!(app.get(dept, "/api/v1/readers/999999/interactions").await.0, StatusCode::NOT_FOUND);

    // Unknown fields, bad values, other roles: refused and nothing written.
    let path = format!("/api/v1/readers/{id}/interactions");
    let (status, body) = app.post_json(dept, &path, &json!({"channel": "phone", "subject": "x", "mood": "happy"})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_request"));
    assert!(body["error"]["message"].as_str().unwrap().contains("mood"), "{body}");
    let future = (chrono::Local::now() + chrono::Duration::days(2)).format("%Y-%m-%d %H:%M").to_string();
    let (status, body) = app.post_json(dept, &path, &json!({"channel": "pigeon", "subject": "", "occurred_at": future})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for f in ["channel", "subject", "occurred_at"] {
        assert!(fields(&body).contains(&f.to_string()), "{f}: {body}");
    }
    assert_eq!(app.post_json(leader, &path, &json!({"channel": "phone", "subject": "x"})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(interaction_count(&app, id).await, 1);
    let r = app.call(Method::POST, &path, Some(dept), None).await;
    assert!(r.status == StatusCode::UNSUPPORTED_MEDIA_TYPE || r.status == StatusCode::BAD_REQUEST, "{}", r.status);

    // Tasks.
    let tomorrow = day(1);
    let (status, t) =
        app.post_json(lib, "/api/v1/tasks", &json!({"title": "回电", "due_on": tomorrow, "assignee": "dept", "reader_id": id})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!((t["status"].as_str(), t["reader_id"].as_i64(), t["created_by"].as_str()), (Some("open"), Some(id), Some("librarian")));
    let (tid, version) = (t["id"].as_i64().unwrap(), t["version"].as_i64().unwrap());
    for (body, field) in [
        (json!({"title": "回电", "due_on": day(-1), "assignee": "dept"}), "due_on"),
        (json!({"title": "回电", "due_on": tomorrow, "assignee": "nobody"}), "assignee"),
    ] {
        let (status, e) = app.post_json(lib, "/api/v1/tasks", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {e}");
        assert!(fields(&e).contains(&field.to_string()), "{field}: {e}");
    }
    let (status, _) =
        app.post_json(lib, "/api/v1/tasks", &json!({"title": "回电", "due_on": tomorrow, "assignee": "dept", "priority": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        app.post_json(lib, "/api/v1/tasks", &json!({"title": "回电", "due_on": tomorrow, "assignee": "dept", "reader_id": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.post_json(leader, "/api/v1/tasks", &json!({"title": "x", "due_on": tomorrow, "assignee": "dept"})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(tasks_of(&app, id).await.len(), 1);
    let (status, mine) = app.get(dept, "/api/v1/tasks?assignee=me&status=open").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["total"], 1);
    assert_eq!(app.get(lib, "/api/v1/tasks?assignee=me").await.1["total"], 0);
    assert_eq!(app.get(lib, "/api/v1/tasks?status=later").await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let status_path = format!("/api/v1/tasks/{tid}/status");
    assert_eq!(app.post_json(leader, &status_path, &json!({"status": "done", "version": version})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.post_json(dept, &status_path, &json!({"status": "done", "version": version, "x": 1})).await.0, StatusCode::BAD_REQUEST);
    let (status, done) = app.post_json(dept, &status_path, &json!({"status": "done", "version": version})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "done");
    let (status, body) = app.post_json(dept, &status_path, &json!({"status": "done", "version": done["version"]})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    let (status, _) = app.post_json(dept, &status_path, &json!({"status": "open", "version": version})).await;
    assert_eq!(status, StatusCode::CONFLICT, "stale version");
    let (status, body) = app.post_json(dept, &status_path, &json!({"status": "finished", "version": done["version"]})).await;
    assert_eq!((status, fields(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["status".to_string()]));
    assert_eq!(app.post_json(dept, "/api/v1/tasks/999999/status", &json!({"status": "done", "version": 1})).await.0, StatusCode::NOT_FOUND);

    // Hand-over.
    assert_eq!(
        app.post_json(dept, "/api/v1/readers/handover", &json!({"reader_ids": [id], "owner": "dept", "reason": "x"})).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = app.post_json(leader, "/api/v1/readers/handover", &json!({"reader_ids": [], "owner": null, "reason": " "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(fields(&body).contains(&"reader_ids".to_string()) && fields(&body).contains(&"reason".to_string()), "{body}");
    let (status, _) =
        app.post_json(leader, "/api/v1/readers/handover", &json!({"reader_ids": [id], "owner": "dept", "reason": "x", "why": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) =
        app.post_json(leader, "/api/v1/readers/handover", &json!({"reader_ids": [id], "owner": "nobody", "reason": "调岗"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(fields(&body).contains(&"owner".to_string()), "{body}");
    let (status, body) =
        app.post_json(leader, "/api/v1/readers/handover", &json!({"reader_ids": [id, 999999], "owner": "dept", "reason": "调岗"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(app.store.reader(id).await.unwrap().owner, None, "all or nothing");
    let (status, body) =
        app.post_json(leader, "/api/v1/readers/handover", &json!({"reader_ids": [id], "owner": "librarian", "reason": "调岗"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], 1);
    let (status, owners) = app.get(dept, &format!("/api/v1/readers/{id}/owners")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(owners.as_array().unwrap().len(), 1);
    assert_eq!(
        (owners[0]["to_owner"].as_str(), owners[0]["reason"].as_str(), owners[0]["by"].as_str()),
        (Some("librarian"), Some("调岗"), Some("leader"))
    );
    assert_eq!(app.get(dept, "/api/v1/readers/999999/owners").await.0, StatusCode::NOT_FOUND);

    // Documented.
    let doc = app.get_page(None, "/api/openapi.json").await.json();
    let paths = doc["paths"].as_object().unwrap();
    for (p, m) in [
        ("/api/v1/readers/{id}/interactions", "get"),
        ("/api/v1/readers/{id}/interactions", "post"),
        ("/api/v1/interactions", "get"),
        ("/api/v1/tasks", "get"),
        ("/api/v1/tasks", "post"),
        ("/api/v1/tasks/{id}/status", "post"),
        ("/api/v1/readers/handover", "post"),
        ("/api/v1/readers/{id}/owners", "get"),
    ] {
        assert!(paths.get(p).and_then(|x| x.get(m)).is_some_and(|op| op["responses"]["403"].is_object()), "{m} {p}");
    }
}

#[tokio::test]
async fn background_reminders_notify_once_a_day() {
    let app = TestApp::new().await;
    let id = reader(&app, "2024100031", "殷素素").await;
    let input = TaskInput { title: "今天回电".into(), notes: None, due_on: today(), assignee: "dept".into() };
    app.store.create_task(&app.actor(Role::Librarian), Some(id), &input).await.unwrap();
    let dept = app.user(Role::Department).id;
    let before = app.store.unread_notifications(dept).await.unwrap();
    // The loop the server runs, at a fast pace: many ticks, one reminder.
    let job = tokio::spawn(lector_web::remind_due_tasks(app.store.clone(), std::time::Duration::from_millis(20)));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    job.abort();
    assert_eq!(app.store.unread_notifications(dept).await.unwrap(), before + 1);
}
