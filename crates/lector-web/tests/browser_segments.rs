//! The segment builder in a real browser: two conditions built with the mouse and keyboard, the
//! live count following each change (and an error shown beside an unfinished condition), then
//! the saved segment's members. Run with
//! `cargo test -p lector-web --test browser_segments -- --test-threads=1`.
//!
//! Without chromedriver the test prints a notice and passes, unless `CI` is set (then it fails).

#[allow(dead_code)]
mod browser_support;

use browser_support::{driver_or_skip, App, Browser, LIBRARIAN};
use fantoccini::Locator;

/// Selects `value` in the select box matching `css` (the builder re-renders on change).
async fn choose(b: &Browser, css: &str, value: &str) {
    let e = b.wait_css(css).await;
    if let Err(err) = e.select_by_value(value).await {
        panic!("select {value} in `{css}`: {err}\n{}", b.context().await);
    }
}

async fn live_count(b: &Browser, expected: &str) {
    b.wait_text("#live-count", &format!("showing {expected}"), |t| t == expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_a_two_condition_segment_and_see_its_members() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let app = App::start().await;
    let b = driver.browser(&app.base).await;
    b.login(LIBRARIAN).await;

    b.click("a#nav-segments").await;
    b.wait_path("the segment list", |p| p.starts_with("/segments")).await;
    b.click("a#new-segment").await;
    b.wait_path("the new segment page", |p| p == "/segments/new").await;

    // The builder shows the default condition (active readers): all four.
    b.wait_css("#builder .seg-cond[data-path=\"all[0]\"]").await;
    live_count(&b, "4").await;
    b.fill("#segment-name", "计算机学院读者").await;

    // A second condition; while its value is blank the count waits and the error sits beside it.
    b.click("#builder > .seg-group > .seg-actions > .add-cond").await;
    let second = "#builder .seg-cond[data-path=\"all[1]\"]";
    b.wait_css(second).await;
    choose(&b, &format!("{second} .cond-field"), "affiliation").await;
    choose(&b, &format!("{second} .cond-op"), "starts_with").await;
    b.wait_text(&format!("{second} > .seg-error"), "naming the blank value", |t| !t.is_empty()).await;
    live_count(&b, "—").await;
    b.fill(&format!("{second} .cond-value"), "计算机").await;
    live_count(&b, "1").await;
    let error = b.client.find(Locator::Css(&format!("{second} > .seg-error"))).await.expect("error span").text().await.unwrap_or_default();
    assert_eq!(error.trim(), "", "the error goes once the value is there");

    // The builder wrote the JSON the form posts.
    let json = b.wait_css("#filter-json").await.prop("value").await.ok().flatten().unwrap_or_default();
    let filter: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("textarea holds JSON ({e}): {json}"));
    assert_eq!(
        filter,
        serde_json::json!({"all": [
            {"field": "status", "op": "eq", "value": "active"},
            {"field": "affiliation", "op": "starts_with", "value": "计算机"}
        ]})
    );

    // Save: the segment's page lists its one member.
    b.click("#save").await;
    let path = b.wait_path("the saved segment's page", |p| p.starts_with("/segments/") && p.contains("done=created")).await;
    let id: i64 = path.trim_start_matches("/segments/").split('?').next().unwrap_or_default().parse().expect("segment id in the path");
    b.wait_text("#member-count", "counting one member", |t| t == "1").await;
    assert_eq!(b.texts("#segment-members a.reader-link").await, vec!["张晓明"]);
    let saved = app.store.segment(id).await.expect("saved segment");
    assert_eq!(saved.name, "计算机学院读者");
    assert_eq!(saved.filter, filter);

    b.close().await;
}
