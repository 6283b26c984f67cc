//! Server-rendered HTML pages. They work without JavaScript: every action is a link or a form,
//! every form carries the session's CSRF token.

mod admin;
mod campaigns;
pub mod cases;
mod consent;
mod home;
mod identity;
mod imports;
mod login;
mod messaging;
mod messaging_common;
mod readers;
mod segments;
mod tracking;
mod warehouse;

use crate::auth::{urlencode, PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use askama::Template;
use axum::extract::Query;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lector_domain::role::Permission;
use lector_store::StoreError;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/style.css", get(stylesheet))
        .route("/lang", get(switch_lang))
        .merge(login::routes())
        .merge(home::routes())
        .merge(readers::routes())
        .merge(admin::routes())
        .merge(tracking::routes())
        .merge(cases::routes())
        .merge(imports::routes())
        .merge(identity::routes())
        .merge(segments::routes())
        .merge(campaigns::routes())
        .merge(messaging::routes())
        .merge(consent::routes())
        .merge(warehouse::routes())
}

/// A tab of a page's view switcher.
pub struct Tab {
    pub href: String,
    pub label: String,
    pub id: &'static str,
    pub active: bool,
}

/// An option of a select box.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The signed-in user as the page header shows them.
pub struct UserBar {
    pub display_name: String,
    pub role_label: String,
    pub can_readers: bool,
    pub can_audit: bool,
    pub can_admin: bool,
    /// Sees interactions and tasks (`TrackingView`).
    pub can_tracking: bool,
    pub open_tasks: i64,
    pub unread: i64,
    /// Sees service cases (any case permission).
    pub can_cases: bool,
    /// My department's open cases (department staff), or proposals awaiting approval (leaders).
    pub open_cases: i64,
    pub can_service_dashboard: bool,
    /// Imports readers (`ReadersImport`).
    pub can_import: bool,
    /// Reviews identity candidates (`IdentityReview`).
    pub can_identity: bool,
    /// Schedules import sources (`ImportSchedule`).
    pub can_schedule: bool,
    /// Segments (`SegmentsManage`).
    pub can_segments: bool,
    /// Campaigns and templates (`CampaignsManage`).
    pub can_campaigns: bool,
    /// Channels and triggered messages (`ChannelsConfigure`).
    pub can_channels: bool,
    /// The data warehouse (`WarehouseQuery`).
    pub can_warehouse: bool,
}

/// What every page's layout needs.
pub struct Ctx {
    pub l: Lang,
    pub user: Option<UserBar>,
    pub csrf: String,
    /// Which main navigation entry is active.
    pub nav: &'static str,
    pub flash: Option<String>,
    /// This page's address, URL-encoded, to come back to after switching language.
    pub back: String,
}

impl Ctx {
    pub fn staff(staff: &Staff, nav: &'static str, path: &str) -> Ctx {
        let u = &staff.user;
        Ctx {
            l: staff.lang,
            user: Some(UserBar {
                display_name: u.display_name.clone(),
                role_label: staff.lang.msg(&u.role.label()),
                can_readers: staff.can(Permission::ReadersView),
                can_audit: staff.can(Permission::AuditView),
                can_admin: staff.can(Permission::UsersManage),
                can_tracking: staff.can(Permission::TrackingView),
                open_tasks: staff.badges.open_tasks,
                unread: staff.badges.unread,
                can_cases: crate::api::cases::may_list(u),
                open_cases: staff.badges.open_cases,
                can_service_dashboard: staff.can(Permission::ServiceDashboard),
                can_import: staff.can(Permission::ReadersImport),
                can_identity: staff.can(Permission::IdentityReview),
                can_segments: staff.can(Permission::SegmentsManage),
                can_campaigns: staff.can(Permission::CampaignsManage),
                can_channels: staff.can(Permission::ChannelsConfigure),
                can_schedule: staff.can(Permission::ImportSchedule),
                can_warehouse: staff.can(Permission::WarehouseQuery),
            }),
            csrf: staff.csrf.clone(),
            nav,
            flash: None,
            back: urlencode(path),
        }
    }

    pub fn anonymous(l: Lang, csrf: String, path: &str) -> Ctx {
        Ctx { l, user: None, csrf, nav: "", flash: None, back: urlencode(path) }
    }

    /// Shows the confirmation named by a `?flash=` code after a redirect.
    pub fn with_flash(mut self, code: Option<&str>) -> Ctx {
        let (zh, en) = match code {
            Some("created") => ("已创建", "Created"),
            Some("saved") => ("已保存", "Saved"),
            Some("deleted") => ("已删除", "Deleted"),
            Some("revoked") => ("已吊销", "Revoked"),
            Some("recorded") => ("联系记录已保存", "Interaction recorded"),
            Some("task_created") => ("任务已创建", "Task created"),
            Some("task_updated") => ("任务状态已更新", "Task updated"),
            Some("handover") => ("已移交业务负责人", "Owner handed over"),
            Some("read") => ("已标为已读", "Marked as read"),
            Some("case_done") => ("工单已更新", "Case updated"),
            Some("queued") => ("导入任务已排队", "Import job queued"),
            Some("undone") => ("导入已撤销", "Import undone"),
            Some("merged") => ("已合并", "Merged"),
            Some("distinct") => ("已标记为不是同一人", "Marked as not the same person"),
            Some("unmerged") => ("合并已撤销", "Merge undone"),
            _ => return self,
        };
        self.flash = Some(self.l.pick(zh, en).to_string());
        self
    }
}

/// A stored UTC time (`2026-11-28T10:57:00.168Z`) as the library's local time, to the minute.
pub fn local_time(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| stored.to_string())
}

/// A stored UTC time or a local `YYYY-MM-DD HH:MM` as a local time that sorts in time order.
pub fn local_naive(stored: &str) -> Option<chrono::NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map(|t| t.with_timezone(&chrono::Local).naive_local())
        .ok()
        .or_else(|| lector_domain::tracking::parse_datetime(stored).ok())
}

/// A local path to return to after a form post (`back` field); anything else gives `default`.
pub fn local_path(back: Option<&str>, default: &str) -> String {
    match back {
        Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') => b.to_string(),
        _ => default.to_string(),
    }
}

/// Adds `flash=code` to a local path (replacing an earlier one).
pub fn with_flash_param(path: &str, code: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("flash=")).collect();
    let flash = format!("flash={code}");
    params.push(&flash);
    format!("{base}?{}", params.join("&"))
}

/// Renders a template, turning a rendering failure into a logged 500.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A form that carries only its CSRF token (a button that posts).
#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

/// The record id in a page's path; anything that is not a number is a 404 page.
pub fn path_id(raw: &str, l: Lang) -> Result<i64, PageError> {
    raw.parse().map_err(|_| PageError(AppError::NotFound, l))
}

/// A store failure as an error page in the user's language (for `map_err`).
pub fn store_err(l: Lang) -> impl Fn(StoreError) -> PageError {
    move |e| PageError(e.into(), l)
}

/// A form post on one record: needs `permission` and the session's CSRF token, then the id in the path.
pub fn checked_post(staff: &Staff, permission: Permission, csrf: Option<&str>, raw_id: &str) -> Result<i64, PageError> {
    staff.require(permission)?;
    staff.check_csrf(csrf)?;
    path_id(raw_id, staff.lang)
}

/// A 303 redirect after a successful form post.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    ctx: Ctx,
    status: String,
    message: String,
}

pub fn error_page(err: AppError, lang: Lang) -> Response {
    if let AppError::Internal(cause) = &err {
        tracing::error!(%cause, "internal error on a page");
    }
    let status = err.status();
    let mut message = lang.msg(&err.message());
    if let AppError::Invalid(f) = &err {
        for e in &f.0 {
            message.push_str(&format!("\n{}: {}", e.field, lang.msg(&e.message)));
        }
    }
    let page = ErrorPage {
        ctx: Ctx::anonymous(lang, String::new(), "/"),
        status: format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
        message,
    };
    (status, render(&page)).into_response()
}

async fn stylesheet() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (CACHE_CONTROL, "public, max-age=3600")], include_str!("../../static/style.css"))
        .into_response()
}

#[derive(Deserialize)]
struct LangSwitch {
    to: String,
    back: Option<String>,
}

/// Switches the UI language and returns to the page the user was on (local paths only).
async fn switch_lang(Query(q): Query<LangSwitch>) -> Response {
    let lang = if q.to == "en" { "en" } else { "zh" };
    let back = q.back.filter(|b| b.starts_with('/') && !b.starts_with("//")).unwrap_or_else(|| "/".into());
    (StatusCode::SEE_OTHER, [(LOCATION, back), (SET_COOKIE, format!("lang={lang}; Path=/; Max-Age=31536000; SameSite=Lax"))])
        .into_response()
}
