//! Browser tests: real headless Chromium driven through chromedriver (fantoccini) against Lector
//! served in-process. Run with `cargo test -p lector-web --test browser -- --test-threads=1`.
//!
//! Without chromedriver they print a notice and pass, unless `CI` is set (then they fail).

mod browser_support;

use browser_support::{artifact_path, driver_or_skip, App, Browser, ADMIN, LIBRARIAN};
use lector_domain::role::Role;
use std::time::Instant;

/// The pages the tests rely on, by the ids and classes of the page contract.
mod sel {
    pub const LOGIN_FORM: &str = "form#login-form";
    pub const LOGIN_ERROR: &str = "div.error";
    pub const NAV_READERS: &str = "a#nav-readers";
    pub const NAV_AUDIT: &str = "a#nav-audit";
    pub const LANG_SWITCH: &str = "a#lang-switch";
    pub const SEARCH_FORM: &str = "form#reader-search";
    pub const SEARCH_Q: &str = "form#reader-search input#q";
    pub const SEARCH_SUBMIT: &str = "#search-submit";
    pub const READERS_TABLE: &str = "table#readers";
    pub const READER_LINK: &str = "table#readers a.reader-link";
    pub const RESULT_COUNT: &str = "span#result-count";
    pub const READER_NAME: &str = "h1#reader-name";
    pub const EDIT_READER: &str = "a#edit-reader";
    pub const TIMELINE_ENTRY: &str = "ol#timeline li.timeline-entry";
    pub const READER_FORM: &str = "form#reader-form";
    pub const SAVE: &str = "#save";
    pub const FLASH: &str = "div#flash";
    pub const FIELD_ERROR: &str = ".field-error";
    pub const AUDIT_TABLE: &str = "table#audit";
}

/// The first number in `text` ("共 2 位" → 2).
fn number_in(text: &str) -> Option<i64> {
    let digits: String = text.chars().skip_while(|c| !c.is_ascii_digit()).take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Submits the reader search for `q` and waits for its results page.
async fn search(b: &Browser, q: &str) -> Vec<String> {
    b.fill(sel::SEARCH_Q, q).await;
    b.click(sel::SEARCH_SUBMIT).await;
    let encoded: String =
        q.bytes().map(|c| if c.is_ascii_alphanumeric() { (c as char).to_string() } else { format!("%{c:02X}") }).collect();
    b.wait_path(&format!("the results page for q={q}"), |p| p.starts_with("/readers") && p.contains(&format!("q={encoded}"))).await;
    b.wait_css(sel::READERS_TABLE).await;
    b.wait_css(sel::SEARCH_FORM).await;
    let mut names = b.texts(sel::READER_LINK).await;
    names.sort();
    let count = b.wait_text(sel::RESULT_COUNT, "holding a number", |t| number_in(t).is_some()).await;
    assert_eq!(
        number_in(&count),
        Some(names.len() as i64),
        "span#result-count ({count:?}) should equal the number of listed readers {names:?} for q={q}"
    );
    names
}

fn timed(name: &str, start: Instant) {
    eprintln!("{name}: {:.1} s", start.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_shows_error_then_succeeds() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let start = Instant::now();
    let app = App::start().await;
    let b = driver.browser(&app.base).await;

    // A signed-out visitor is sent to the sign-in page.
    b.goto("/readers").await;
    b.wait_css(sel::LOGIN_FORM).await;
    b.wait_path("the sign-in page for a signed-out visitor", |p| p.starts_with("/login")).await;
    assert_eq!(b.count(sel::NAV_READERS).await, 0, "a signed-out visitor sees no navigation");

    // A wrong password re-renders the form with an error.
    b.goto("/login").await;
    b.submit_login(LIBRARIAN.0, "wrong-password-1").await;
    let error = b.wait_text(sel::LOGIN_ERROR, "showing an error", |t| !t.is_empty()).await;
    assert!(b.path().await.starts_with("/login"), "a failed sign-in stays on /login, not {}", b.path().await);
    b.wait_css(sel::LOGIN_FORM).await;
    assert_eq!(b.count(sel::NAV_READERS).await, 0, "a failed sign-in signs nobody in (error was {error:?})");

    // The right password signs in.
    b.submit_login(LIBRARIAN.0, LIBRARIAN.1).await;
    let path = b.wait_path("to leave /login after signing in", |p| !p.starts_with("/login")).await;
    assert!(path == "/" || path.starts_with("/?") || path.starts_with("/readers"), "after sign-in expected /, got {path}");
    b.wait_css(sel::NAV_READERS).await;
    assert_eq!(b.count(sel::LOGIN_ERROR).await, 0, "no error after a successful sign-in");
    assert_eq!(b.count(sel::NAV_AUDIT).await, 0, "a librarian has no link to the audit log");

    // The session carries over to the next page.
    b.click(sel::NAV_READERS).await;
    b.wait_path("/readers", |p| p.starts_with("/readers")).await;
    b.wait_css(sel::SEARCH_FORM).await;

    b.close().await;
    timed("sign_in_shows_error_then_succeeds", start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_pinyin_initials_and_name() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let start = Instant::now();
    let app = App::start().await;
    let b = driver.browser(&app.base).await;
    b.login(LIBRARIAN).await;

    b.goto("/readers").await;
    b.wait_css(sel::READERS_TABLE).await;
    let all = b.texts(sel::READER_LINK).await;
    for name in ["张晓明", "张辉", "王芳", "李明"] {
        assert!(all.iter().any(|n| n == name), "the reader list should show {name}; it shows {all:?}");
    }
    let shot = b.client.screenshot().await.expect("screenshot");
    let path = artifact_path("readers.png");
    std::fs::write(&path, &shot).expect("write screenshot");
    println!("screenshot of the reader list: {}", path.display());
    eprintln!("screenshot of the reader list: {}", path.display());

    assert_eq!(search(&b, "zxm").await, vec!["张晓明"], "pinyin initials zxm");
    assert_eq!(search(&b, "zh").await, vec!["张晓明", "张辉"], "pinyin prefix zh finds both 张");
    assert_eq!(search(&b, "晓明").await, vec!["张晓明"], "name fragment 晓明");

    // Each result links to the reader's page.
    let id = app.reader_id("2024000001");
    let link = b.wait_css(sel::READER_LINK).await;
    let href = link.attr("href").await.expect("href").unwrap_or_default();
    assert!(href.ends_with(&format!("/readers/{id}")), "a.reader-link href should be /readers/{id}, is {href:?}");
    link.click().await.expect("click reader link");
    b.wait_text(sel::READER_NAME, "naming 张晓明", |t| t == "张晓明").await;
    assert_eq!(b.path().await, format!("/readers/{id}"));

    b.close().await;
    timed("search_by_pinyin_initials_and_name", start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_reader_then_admin_sees_audit_row() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let start = Instant::now();
    let app = App::start().await;
    let id = app.reader_id("2024000001");
    let before = app.store.reader(id).await.expect("reader");
    assert_ne!(before.affiliation.as_deref(), Some("历史学院"));

    let b = driver.browser(&app.base).await;
    b.login(LIBRARIAN).await;
    b.goto("/readers").await;
    search(&b, "zxm").await;
    b.click(sel::READER_LINK).await;
    b.wait_text(sel::READER_NAME, "naming 张晓明", |t| t == "张晓明").await;
    b.wait_css("ol#timeline").await;
    let entries_before = b.count(sel::TIMELINE_ENTRY).await;
    assert_eq!(b.count(sel::FLASH).await, 0, "no flash before saving");

    b.click(sel::EDIT_READER).await;
    b.wait_path("the edit page", |p| p == format!("/readers/{id}/edit")).await;
    b.wait_css(sel::READER_FORM).await;
    b.fill("form#reader-form [name=affiliation]", "历史学院").await;
    b.click(sel::SAVE).await;

    b.wait_path("the reader page after saving", |p| p.split('?').next() == Some(format!("/readers/{id}").as_str())).await;
    let flash = b.wait_text(sel::FLASH, "showing a message", |t| !t.is_empty()).await;
    b.wait_text(sel::READER_NAME, "naming 张晓明", |t| t == "张晓明").await;
    let body = b.wait_text("body", "showing 历史学院", |t| t.contains("历史学院")).await;
    assert!(!body.contains("计算机学院"), "the old affiliation is gone from the reader page");
    let entries_after = b.count(sel::TIMELINE_ENTRY).await;
    assert!(
        entries_after > entries_before,
        "the timeline gains an entry for the edit ({entries_before} → {entries_after}); flash was {flash:?}"
    );

    let after = app.store.reader(id).await.expect("reader");
    assert_eq!(after.affiliation.as_deref(), Some("历史学院"), "the store holds the new affiliation");
    assert_eq!(after.version, before.version + 1, "one update");
    assert_eq!(after.contacts, before.contacts, "the edit keeps the contacts");
    assert_eq!(after.name, before.name);
    b.close().await;

    // The admin, in a fresh browser, finds the change in the audit log.
    let a = driver.browser(&app.base).await;
    a.login(ADMIN).await;
    a.click(sel::NAV_AUDIT).await;
    a.wait_path("/admin/audit", |p| p.starts_with("/admin/audit")).await;
    a.wait_css(sel::AUDIT_TABLE).await;
    let rows = a
        .until("a reader.update row by lib in table#audit", || async {
            let mut found = Vec::new();
            for row in a.client.find_all(fantoccini::Locator::Css("table#audit tr")).await? {
                let mut cells = Vec::new();
                for css in ["td.action", "td.actor", "td.entity-id"] {
                    let mut text = String::new();
                    for e in row.find_all(fantoccini::Locator::Css(css)).await? {
                        text = e.text().await?.trim().to_string();
                    }
                    cells.push(text);
                }
                if cells[0] == "reader.update" && cells[1] == LIBRARIAN.0 {
                    found.push(cells[2].clone());
                }
            }
            Ok((!found.is_empty()).then_some(found))
        })
        .await;
    // td.entity-id reads "reader 1" (entity type, then id): accept the id as its last word.
    assert!(
        rows.iter().any(|e| e.split_whitespace().last() == Some(id.to_string().as_str())),
        "the reader.update row names reader {id} in td.entity-id; rows: {rows:?}"
    );
    a.close().await;
    timed("edit_reader_then_admin_sees_audit_row", start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_edit_shows_field_error_and_changes_nothing() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let start = Instant::now();
    let app = App::start().await;
    let id = app.reader_id("2024000001");
    let before = app.store.reader(id).await.expect("reader");

    let b = driver.browser(&app.base).await;
    b.login(LIBRARIAN).await;
    b.goto(&format!("/readers/{id}/edit")).await;
    b.wait_css(sel::READER_FORM).await;
    let email_input = r#"form#reader-form [name="contacts[0].value"]"#;
    let shown = b.wait_css(email_input).await.prop("value").await.expect("value").unwrap_or_default();
    assert_eq!(shown, "zxm@example.edu.cn", "the edit form shows the stored email");
    b.fill(email_input, "not-an-email").await;
    b.fill("form#reader-form [name=affiliation]", "不应保存的学院").await;
    b.click(sel::SAVE).await;

    let error = b.wait_text(sel::FIELD_ERROR, "naming the bad email", |t| t.contains("not-an-email")).await;
    b.wait_css(sel::READER_FORM).await;
    assert_eq!(b.count(sel::FLASH).await, 0, "no success flash on a validation error (error: {error:?})");
    // The message sits next to the input: they share a parent element.
    let beside: bool = b
        .client
        .execute(
            r#"const i = document.querySelector('form#reader-form [name="contacts[0].value"]');
               if (!i) return false;
               for (let p = i.parentElement, n = 0; p && n < 2; p = p.parentElement, n++) {
                 for (const e of p.querySelectorAll('.field-error')) {
                   if (e.textContent.includes('not-an-email')) return true;
                 }
               }
               return false;"#,
            vec![],
        )
        .await
        .expect("execute")
        .as_bool()
        .unwrap_or(false);
    assert!(beside, "the .field-error about the email should sit next to the contacts[0].value input");
    let kept = b.wait_css(email_input).await.prop("value").await.expect("value").unwrap_or_default();
    assert_eq!(kept, "not-an-email", "the re-rendered form keeps what was typed");

    let after = app.store.reader(id).await.expect("reader");
    assert_eq!(after, before, "a rejected edit changes nothing in the store");
    b.close().await;
    timed("invalid_edit_shows_field_error_and_changes_nothing", start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_switch_persists_across_pages() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let start = Instant::now();
    let app = App::start().await;
    let id = app.reader_id("2024000002");
    let b = driver.browser(&app.base).await;
    b.login(LIBRARIAN).await;

    let zh = b.wait_text(sel::NAV_READERS, "in Chinese", |t| t.contains("读者")).await;
    b.click(sel::LANG_SWITCH).await;
    let en = b.wait_text(sel::NAV_READERS, "in English after the switch", |t| t.contains("Readers")).await;
    assert_ne!(zh, en);

    // Other pages, reached by link and by address, stay in English.
    b.click(sel::NAV_READERS).await;
    b.wait_path("/readers", |p| p.starts_with("/readers")).await;
    b.wait_css(sel::SEARCH_FORM).await;
    b.wait_text(sel::NAV_READERS, "still in English on /readers", |t| t.contains("Readers")).await;
    b.goto(&format!("/readers/{id}")).await;
    b.wait_text(sel::READER_NAME, "naming 张辉", |t| t == "张辉").await;
    b.wait_text(sel::NAV_READERS, "still in English on the reader page", |t| t.contains("Readers")).await;

    // And the switch goes back.
    b.click(sel::LANG_SWITCH).await;
    b.wait_text(sel::NAV_READERS, "in Chinese again", |t| t.contains("读者") && !t.contains("Readers")).await;
    b.goto("/readers").await;
    b.wait_text(sel::NAV_READERS, "still in Chinese", |t| t.contains("读者")).await;

    b.close().await;
    timed("language_switch_persists_across_pages", start);
}

/// Waits until the staff case page shows `code` in span#case-status (its `data-status`, or its text).
async fn wait_case_status(b: &Browser, code: &str) {
    b.until(&format!("span#case-status to be {code}"), || async {
        let e = b.client.find(fantoccini::Locator::Css("span#case-status")).await?;
        let attr = e.attr("data-status").await?.unwrap_or_default();
        let text = e.text().await?.trim().to_string();
        Ok((attr == code || text == code).then_some(()))
    })
    .await;
}

/// `inner` within the action form `action` of the staff case page: by the page contract
/// (`form.case-action[data-action=…]`), or by the form's id (`form#triage-form`) as the case page
/// first shipped it.
fn in_action_form(action: &str, inner: &str) -> String {
    let id = action.replace('_', "-");
    format!(r#"form.case-action[data-action="{action}"] {inner}, form#{id}-form {inner}"#).replace(" ,", ",").trim_end().to_string()
}

/// Submits the action form `action` on the open case page and waits for the case to reach `to`
/// (or, when `to` is `None`, for the page to come back with a newer version).
async fn act(b: &Browser, action: &str, fields: &[(&str, &str)], to: Option<&str>) {
    b.wait_css(&in_action_form(action, "")).await;
    let version =
        b.wait_css(&in_action_form(action, r#"input[name="version"]"#)).await.prop("value").await.expect("version").unwrap_or_default();
    for (name, value) in fields {
        let css = in_action_form(action, &format!(r#"[name="{name}"]"#));
        let tag = b.wait_css(&css).await.tag_name().await.expect("tag name");
        if tag.eq_ignore_ascii_case("select") {
            b.click(&in_action_form(action, &format!(r#"[name="{name}"] option[value="{value}"]"#))).await;
        } else {
            b.fill(&css, value).await;
        }
    }
    // The first submit button (the approval form also holds "reject").
    b.click(&in_action_form(action, r#"button[type="submit"]"#)).await;
    match to {
        Some(code) => wait_case_status(b, code).await,
        None => {
            b.until(&format!("the case page after {action} (version {version} → newer)"), || async {
                for e in b.client.find_all(fantoccini::Locator::Css(r#"form input[name="version"]"#)).await? {
                    let v = e.prop("value").await?.unwrap_or_default();
                    if !v.is_empty() && v != version {
                        return Ok(Some(()));
                    }
                }
                Ok(None)
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_complaint_round_trip() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let start = Instant::now();
    let app = App::start().await;
    // A department with one member, and a leader.
    let setup = lector_store::Actor::system("test");
    app.store
        .create_department(
            &setup,
            &lector_store::config::NamedInput { code: "reading".into(), name_zh: "阅览部".into(), name_en: "Reading rooms".into() },
        )
        .await
        .expect("create department");
    let dept = ("reading1", "correct-horse-11");
    let leader = ("boss", "correct-horse-12");
    for (user, role, department) in [(dept, Role::Department, Some("reading")), (leader, Role::Leader, None)] {
        app.store
            .create_user(
                &setup,
                lector_store::auth::NewUser {
                    username: user.0.into(),
                    display_name: format!("测试{}", role.label().zh),
                    role,
                    department: department.map(str::to_string),
                    password: user.1.into(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create user {}: {e}", user.0));
    }
    let category = lector_store::cases::CaseCategory {
        kind: lector_domain::case::CaseKind::Complaint,
        code: "environment".into(),
        name_zh: "环境".into(),
        name_en: "Environment".into(),
    };
    app.store.create_case_category(&setup, &category).await.expect("create a complaint category");

    // A reader files a complaint on the portal and keeps the tracking link.
    let reader = driver.browser(&app.base).await;
    reader.goto("/portal").await;
    reader.click("a#portal-start").await;
    reader.wait_path("the portal form", |p| p.starts_with("/portal/new")).await;
    reader.wait_css("form#portal-form").await;
    reader.click(r#"form#portal-form select[name="kind"] option[value="complaint"]"#).await;
    reader.fill("form#portal-form input[name=subject]", "三楼自习室太吵").await;
    reader.fill("form#portal-form textarea[name=body]", "晚上九点后三楼自习室经常有人大声讲话，希望加强管理。").await;
    reader.fill("form#portal-form input[name=contact_name]", "陈同学").await;
    reader.fill("form#portal-form input[name=contact]", "chen@example.edu.cn").await;
    reader.click("#portal-submit").await;
    let link = reader.wait_css("a#tracking-link").await;
    let tracking = link.attr("href").await.expect("href").unwrap_or_default();
    assert!(tracking.starts_with("/portal/track/"), "the tracking link is /portal/track/…, not {tracking:?}");
    let number = reader.wait_text("#case-number", "holding the case number", |t| t.starts_with("GD")).await;
    let case = app.store.case_by_token(tracking.trim_start_matches("/portal/track/")).await.expect("the link names the case");
    assert_eq!(case.number, number);
    let id = case.id;

    // A librarian triages it and assigns it to the reading rooms.
    let lib = driver.browser(&app.base).await;
    lib.login(LIBRARIAN).await;
    lib.goto(&format!("/cases/{id}")).await;
    lib.wait_text("#case-number", "naming the case", |t| t == number).await;
    wait_case_status(&lib, "received").await;
    act(&lib, "triage", &[("outcome", "accepted"), ("category", "environment"), ("priority", "normal")], Some("triaged")).await;
    act(&lib, "assign", &[("department", "reading")], Some("assigned")).await;

    // The department's member claims it and proposes a solution.
    let staff = driver.browser(&app.base).await;
    staff.goto("/login").await;
    staff.submit_login(dept.0, dept.1).await;
    staff.wait_path("to leave /login after signing in", |p| !p.starts_with("/login")).await;
    staff.goto(&format!("/cases/{id}")).await;
    wait_case_status(&staff, "assigned").await;
    act(&staff, "claim", &[], None).await;
    wait_case_status(&staff, "assigned").await;
    act(&staff, "propose", &[("solution", "晚间安排馆员巡查三楼，张贴安静提示。")], Some("awaiting_approval")).await;

    // A leader approves.
    let boss = driver.browser(&app.base).await;
    boss.goto("/login").await;
    boss.submit_login(leader.0, leader.1).await;
    boss.wait_path("to leave /login after signing in", |p| !p.starts_with("/login")).await;
    boss.goto(&format!("/cases/{id}")).await;
    wait_case_status(&boss, "awaiting_approval").await;
    act(&boss, "approve", &[], Some("in_progress")).await;
    boss.close().await;

    // The department resolves it with a reply.
    let reply = "已安排每晚巡查三楼自习室，并张贴安静提示，感谢您的反馈。";
    staff.goto(&format!("/cases/{id}")).await;
    wait_case_status(&staff, "in_progress").await;
    act(&staff, "resolve", &[("reply", reply)], Some("resolved")).await;

    // The reader opens the tracking link, reads the reply and rates it 5.
    reader.goto(&tracking).await;
    // Text is normalised when stored (full-width punctuation becomes half-width).
    reader.wait_text("#case-reply", "holding the reply", |t| t.contains("已安排每晚巡查三楼自习室")).await;
    let body = reader.wait_text("body", "without internal notes", |t| !t.is_empty()).await;
    assert!(!body.contains("晚间安排馆员巡查"), "the reader never sees the internal proposal");
    reader.click("input#satisfaction-5").await;
    reader.fill("form#rate-form input[name=recommend]", "10").await;
    reader.click("#rate-submit").await;
    reader.wait_text("div#flash", "thanking the reader", |t| !t.is_empty()).await;
    reader
        .until("the portal status to read closed", || async {
            let e = reader.client.find(fantoccini::Locator::Css("#portal-status")).await?;
            Ok((e.attr("data-status").await?.as_deref() == Some("closed")).then_some(()))
        })
        .await;
    assert_eq!(reader.count("form#rate-form").await, 0, "no second rating");
    reader.close().await;

    // Staff see it closed.
    lib.goto(&format!("/cases/{id}")).await;
    wait_case_status(&lib, "closed").await;
    let stored = app.store.case(id).await.expect("case");
    assert_eq!(stored.rating.map(|r| (r.satisfaction, r.recommend)), Some((5, Some(10))));
    lib.close().await;
    staff.close().await;
    timed("portal_complaint_round_trip", start);
}

async fn screenshot(b: &Browser, name: &str) {
    let shot = b.client.screenshot().await.expect("screenshot");
    let path = artifact_path(name);
    std::fs::write(&path, &shot).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Waits until the job page at hand shows a finished job (the page refreshes itself while the
/// job is queued or running) and returns its status code.
async fn wait_job_done(b: &Browser) -> String {
    b.until("the import job to finish", || async {
        let status = b.client.find(fantoccini::Locator::Css("#job-status")).await?.attr("data-status").await?.unwrap_or_default();
        Ok(matches!(status.as_str(), "succeeded" | "failed").then_some(status))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_a_csv_through_the_pages() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let start = Instant::now();
    let app = App::start().await;
    // The server's import worker, as `lector serve` runs it.
    let worker = tokio::spawn(lector_import::runner::worker(app.store.clone(), std::time::Duration::from_millis(200)));
    let files = tempfile::tempdir().expect("temp dir");
    let file = files.path().join("新生名单.csv");
    std::fs::write(
        &file,
        "读者证号,姓名,读者类型,电子邮件\n2026300001,陈一,undergraduate,cy@example.edu.cn\n2026300002,陈二,undergraduate,bad-email\n",
    )
    .expect("write the roster");

    let b = driver.browser(&app.base).await;
    b.login(LIBRARIAN).await;
    b.click("a#nav-imports").await;
    b.wait_path("/imports", |p| p.starts_with("/imports")).await;
    let input = b.wait_css("form#upload-form #upload-file").await;
    input.send_keys(&file.display().to_string()).await.unwrap_or_else(|e| panic!("choose the file: {e}"));
    b.fill("#upload-source", "招生办").await;
    b.click("#upload-submit").await;

    // The mapping page: detected format, the headers, the first rows.
    b.wait_path("the mapping page", |p| p.starts_with("/imports/uploads/")).await;
    b.wait_text("#detected-format", "naming csv", |t| t == "csv").await;
    let headers = b.texts("table#sample thead th").await;
    assert_eq!(headers, vec!["读者证号", "姓名", "读者类型", "电子邮件"]);
    assert_eq!(b.count("table#sample tbody tr").await, 2);
    screenshot(&b, "import-mapping.png").await;
    b.click("#preview").await;

    // The preview's page: nothing written, the counts of what would be.
    b.wait_path("the preview job's page", |p| p.starts_with("/imports/") && !p.starts_with("/imports/uploads")).await;
    b.wait_css("#dry-run").await;
    assert_eq!(wait_job_done(&b).await, "succeeded", "{}", b.context().await);
    assert_eq!(b.wait_text("#count-created", "a number", |t| !t.is_empty()).await, "1");
    assert_eq!(b.wait_text("#count-rejected", "a number", |t| !t.is_empty()).await, "1");
    assert!(app.store.reader_by_card("2026300001").await.is_err(), "a preview writes nothing");

    // Run it for real.
    let preview_path = b.path().await;
    b.click("#run-for-real").await;
    b.wait_path("the real job's page", |p| p.starts_with("/imports/") && p.split('?').next() != preview_path.split('?').next()).await;
    assert_eq!(wait_job_done(&b).await, "succeeded", "{}", b.context().await);
    assert_eq!(b.count("#dry-run").await, 0);
    assert_eq!(b.wait_text("#count-created", "a number", |t| !t.is_empty()).await, "1");
    let reader = app.store.reader_by_card("2026300001").await.expect("the reader was imported");
    assert_eq!(reader.name, "陈一");
    let rejected = b.texts("table#rejections tr.rejection td").await;
    assert_eq!(rejected[..3], ["3", "电子邮件", "bad-email"], "row, column and value of the rejected row");
    screenshot(&b, "import-job.png").await;

    // The error report, fetched as the download link would.
    let link = b.wait_css("#download-rejections").await;
    let href = link.attr("href").await.expect("href").unwrap_or_default();
    let fetched = b
        .client
        .execute(
            "return fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))",
            vec![serde_json::json!(href)],
        )
        .await
        .expect("fetch the error report");
    let bytes: Vec<u8> = serde_json::from_value(fetched).expect("bytes");
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "the report starts with a BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8");
    assert!(text.starts_with("行号,列,值,原因\r\n3,电子邮件,bad-email,"), "{text}");

    worker.abort();
    b.close().await;
    timed("import_a_csv_through_the_pages", start);
}
