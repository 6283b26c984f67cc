//! The home dashboard: how many readers, of which kinds, and what changed lately.

use super::{render, Ctx};
use crate::auth::{PageError, Staff};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use lector_domain::role::Permission;
use lector_store::audit::{AuditEntry, AuditQuery};

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

pub struct Bar {
    pub label: String,
    pub count: i64,
    /// Width in percent of the largest bar.
    pub pct: i64,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    ctx: Ctx,
    total: i64,
    active: i64,
    new_this_week: i64,
    categories: Vec<Bar>,
    statuses: Vec<Bar>,
    recent: Vec<AuditEntry>,
    /// My open tasks and all overdue tasks (`TrackingView`).
    tracking: Option<(i64, i64)>,
    /// Open and overdue cases in the user's scope (any case permission).
    cases: Option<(i64, i64)>,
}

fn bars(items: Vec<(String, i64)>) -> Vec<Bar> {
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    items.into_iter().map(|(label, count)| Bar { label, count, pct: count * 100 / max }).collect()
}

async fn home(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    let l = staff.lang;
    let stats = state.store.reader_stats().await.map_err(|e| PageError(e.into(), l))?;
    let recent = if staff.can(Permission::ReadersView) {
        let q = AuditQuery { entity: Some("reader".into()), page: 1, per_page: 8, ..Default::default() };
        state.store.audit_log(&q).await.map_err(|e| PageError(e.into(), l))?.items
    } else {
        Vec::new()
    };
    let tracking = super::tracking::dashboard_counts(&state, &staff).await.map_err(|e| PageError(e.into(), l))?;
    let cases = super::cases::home_counts(&state, &staff).await.map_err(|e| PageError(e.into(), l))?;
    let active = stats.by_status.iter().find(|(s, _)| s.code() == "active").map(|(_, n)| *n).unwrap_or(0);
    let page = HomePage {
        ctx: Ctx::staff(&staff, "home", "/"),
        total: stats.total,
        active,
        new_this_week: stats.new_this_week,
        categories: bars(stats.by_category.iter().map(|(c, n)| (l.pick(&c.name_zh, &c.name_en).to_string(), *n)).collect()),
        statuses: bars(stats.by_status.iter().map(|(s, n)| (l.msg(&s.label()), *n)).collect()),
        recent,
        tracking,
        cases,
    };
    Ok(render(&page))
}
