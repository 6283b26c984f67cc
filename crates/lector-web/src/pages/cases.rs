//! Service case pages (服务工单): the queues, staff entry, a case with its history and the
//! actions its status and the user's role allow, the service dashboard, and the case settings
//! (categories, workflows, service levels, the working calendar).
//!
//! Every handler checks its permission before it loads anything; who may do what to a case is
//! decided in one place, [`crate::api::cases::may_act`], shared with the API.

use super::{local_naive, local_time, render, see_other, Ctx, Opt, Tab};
use crate::api::cases::{department_scope, may_act, may_list, sees_all, visible_case, ActionBody, StatsParams};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::case::{
    CaseAction, CaseDraft, CaseKind, CaseStatus, Priority, ServiceLevels, TriageOutcome, WorkCalendar, Workflow, MAX_QUESTION,
    MAX_SERVICE_HOURS,
};
use lector_domain::reader::parse_date;
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::cases::{Case, CaseCategory, CaseQuery, CaseSource, READER_ACTOR};
use lector_store::config::Department;
use lector_store::{Page, StoreError};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cases", get(list))
        .route("/cases/new", get(new_form).post(create))
        .route("/cases/dashboard", get(dashboard))
        .route("/cases/{id}", get(detail))
        .route("/cases/{id}/act", post(act))
        .route("/admin/cases", get(settings))
        .route("/admin/cases/categories", post(add_category))
        .route("/admin/cases/workflow", post(save_workflow))
        .route("/admin/cases/service-levels", post(save_service_levels))
        .route("/admin/cases/calendar", post(save_calendar))
}

fn store_err(l: Lang) -> impl Fn(StoreError) -> PageError {
    move |e| PageError(e.into(), l)
}

fn now_local() -> chrono::NaiveDateTime {
    chrono::Local::now().naive_local()
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn require_cases(staff: &Staff) -> Result<(), PageError> {
    if may_list(&staff.user) {
        Ok(())
    } else {
        Err(PageError(AppError::Forbidden, staff.lang))
    }
}

// ---- labels and rows ----

fn dept_label(depts: &[Department], code: &Option<String>, l: Lang) -> String {
    match code {
        None => String::new(),
        Some(c) => depts.iter().find(|d| &d.code == c).map(|d| l.pick(&d.name_zh, &d.name_en).to_string()).unwrap_or_else(|| c.clone()),
    }
}

fn category_label(cats: &[CaseCategory], kind: CaseKind, code: &str, l: Lang) -> String {
    cats.iter()
        .find(|c| c.kind == kind && c.code == code)
        .map(|c| l.pick(&c.name_zh, &c.name_en).to_string())
        .unwrap_or_else(|| code.into())
}

/// Working hours before a deadline during which a case counts as near it.
const NEAR_WORKING_HOURS: u32 = 8;

/// Now, and the end of the "near its deadline" window on the library's working calendar.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineClock {
    pub now: chrono::NaiveDateTime,
    near_until: chrono::NaiveDateTime,
}

impl DeadlineClock {
    pub async fn read(store: &lector_store::Store) -> Result<DeadlineClock, lector_store::StoreError> {
        let now = now_local();
        let calendar = store.work_calendar().await?;
        Ok(DeadlineClock { now, near_until: calendar.add_working_hours(now, NEAR_WORKING_HOURS) })
    }

    /// (overdue, due within the next [`NEAR_WORKING_HOURS`] working hours) for an open case
    /// whose clock runs (not one awaiting the reader).
    fn state(&self, c: &Case) -> (bool, bool) {
        self.state_of(c.due_at.as_deref(), c.status)
    }

    fn state_of(&self, due_at: Option<&str>, status: CaseStatus) -> (bool, bool) {
        let open = !matches!(status, CaseStatus::AwaitingReader | CaseStatus::Resolved | CaseStatus::Closed);
        match due_at.and_then(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M").ok()) {
            Some(due) if open => (due < self.now, due >= self.now && due <= self.near_until),
            _ => (false, false),
        }
    }
}

fn age(created: &str, now: chrono::NaiveDateTime, l: Lang) -> String {
    let Some(t) = local_naive(created) else { return String::new() };
    let h = (now - t).num_hours().max(0);
    if h < 48 {
        format!("{h}{}", l.pick(" 小时", " h"))
    } else {
        format!("{}{}", h / 24, l.pick(" 天", " d"))
    }
}

/// One case in a list.
pub struct CaseRow {
    pub id: i64,
    pub number: String,
    pub kind: String,
    pub kind_code: &'static str,
    pub subject: String,
    pub department: String,
    pub status: String,
    pub status_code: &'static str,
    pub priority: String,
    pub priority_code: &'static str,
    pub due: String,
    pub overdue: bool,
    pub near: bool,
    pub age: String,
}

pub fn case_row(c: &Case, depts: &[Department], l: Lang, clock: DeadlineClock) -> CaseRow {
    let (overdue, near) = clock.state(c);
    CaseRow {
        id: c.id,
        number: c.number.clone(),
        kind: l.msg(&c.kind.label()),
        kind_code: c.kind.code(),
        subject: c.subject.clone(),
        department: dept_label(depts, &c.department, l),
        status: l.msg(&c.status.label()),
        status_code: c.status.code(),
        priority: l.msg(&c.priority.label()),
        priority_code: c.priority.code(),
        due: c.due_at.clone().unwrap_or_default(),
        overdue,
        near,
        age: age(&c.created_at, clock.now, l),
    }
}

/// The cases of a reader for the reader page (`None` without a case permission); department
/// staff see their own department's only.
pub async fn reader_cases(state: &AppState, staff: &Staff, reader_id: i64) -> Result<Option<Vec<CaseRow>>, StoreError> {
    if !may_list(&staff.user) {
        return Ok(None);
    }
    let q =
        CaseQuery { reader_id: Some(reader_id), department: department_scope(&staff.user), page: 1, per_page: 50, ..Default::default() };
    let cases = state.store.cases(&q).await?.items;
    let depts = state.store.departments().await?;
    let clock = DeadlineClock::read(&state.store).await?;
    Ok(Some(cases.iter().map(|c| case_row(c, &depts, staff.lang, clock)).collect()))
}

/// The header's case count: the open cases of my department (department staff), else the
/// proposals awaiting approval (leaders). Zero without a case permission.
pub async fn badge_count(state: &AppState, user: &lector_store::auth::User) -> Result<i64, StoreError> {
    let q = if user.role.can(Permission::CasesWork) && user.department_code.is_some() {
        CaseQuery { open_only: true, department: user.department_code.clone(), page: 1, per_page: 1, ..Default::default() }
    } else if user.role.can(Permission::CasesApprove) {
        CaseQuery { status: Some(CaseStatus::AwaitingApproval), page: 1, per_page: 1, ..Default::default() }
    } else {
        return Ok(0);
    };
    Ok(state.store.cases(&q).await?.total)
}

/// The home tiles: open and overdue cases in the user's scope (`None` without a case permission).
pub async fn home_counts(state: &AppState, staff: &Staff) -> Result<Option<(i64, i64)>, StoreError> {
    if !may_list(&staff.user) {
        return Ok(None);
    }
    let dept = department_scope(&staff.user);
    let q = CaseQuery { open_only: true, department: dept.clone(), page: 1, per_page: 1, ..Default::default() };
    let open = state.store.cases(&q).await?.total;
    let q = CaseQuery { open_only: true, department: dept, overdue_at: Some(now_local()), page: 1, per_page: 1, ..Default::default() };
    let overdue = state.store.cases(&q).await?.total;
    Ok(Some((open, overdue)))
}

// ---- /cases ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListParams {
    view: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    department: Option<String>,
    overdue: Option<String>,
    page: Option<String>,
    flash: Option<String>,
}

#[derive(Template)]
#[template(path = "cases_list.html")]
struct ListPage {
    ctx: Ctx,
    view: &'static str,
    tabs: Vec<Tab>,
    kinds: Vec<Opt>,
    statuses: Vec<Opt>,
    departments: Vec<Opt>,
    show_department_filter: bool,
    overdue: bool,
    rows: Vec<CaseRow>,
    page: Page<Case>,
    can_create: bool,
    can_dashboard: bool,
    can_configure: bool,
    prev: Option<String>,
    next: Option<String>,
}

async fn list(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    require_cases(&staff)?;
    let l = staff.lang;
    let user = &staff.user;
    let mut views: Vec<(&'static str, &'static str, &'static str, &'static str)> = Vec::new();
    if staff.can(Permission::CasesWork) && user.department_code.is_some() {
        views.push(("dept", "tab-dept", "我的部门", "My department"));
    }
    if staff.can(Permission::CasesWork) {
        views.push(("mine", "tab-mine", "我的工单", "My cases"));
    }
    if staff.can(Permission::CasesApprove) {
        views.push(("approval", "tab-approval", "待我审批", "Awaiting my approval"));
    }
    if sees_all(user) {
        views.push(("open", "tab-open", "全部未结", "All open"));
    }
    // The default tab: the department's queue for its staff, proposals awaiting approval for
    // leaders, all open cases for the others.
    let preferred: &[&str] = if user.role == lector_domain::role::Role::Leader { &["dept", "approval"] } else { &["dept", "open"] };
    let default = preferred.iter().copied().find(|d| views.iter().any(|v| v.0 == *d)).or(views.first().map(|v| v.0)).unwrap_or("open");
    let view = views.iter().map(|v| v.0).find(|v| Some(*v) == given(&p.view)).unwrap_or(default);
    let kind = given(&p.kind).and_then(|k| CaseKind::parse(k).ok());
    let status = given(&p.status).and_then(|s| CaseStatus::parse(s).ok());
    let overdue = matches!(given(&p.overdue), Some("true" | "1" | "on"));
    let department = match department_scope(user) {
        Some(d) => Some(d),
        None => given(&p.department).map(str::to_string),
    };
    let page_no = given(&p.page).and_then(|n| n.parse::<i64>().ok()).filter(|n| *n >= 1).unwrap_or(1);
    let clock = DeadlineClock::read(&state.store).await.map_err(store_err(l))?;
    let mut q = CaseQuery {
        kind,
        status,
        open_only: status.is_none(),
        department,
        overdue_at: overdue.then_some(clock.now),
        by_due: true,
        page: page_no,
        per_page: 50,
        ..Default::default()
    };
    match view {
        "dept" => q.department = user.department_code.clone(),
        "mine" => q.assignee = Some(user.username.clone()),
        "approval" => q.status = Some(CaseStatus::AwaitingApproval),
        _ => {}
    }
    let page = state.store.cases(&q).await.map_err(store_err(l))?;
    let depts = state.store.departments().await.map_err(store_err(l))?;
    let enc = crate::auth::urlencode;
    let filters = format!(
        "view={view}&kind={}&status={}&department={}&overdue={}",
        kind.map(|k| k.code()).unwrap_or_default(),
        status.map(|s| s.code()).unwrap_or_default(),
        enc(given(&p.department).unwrap_or_default()),
        if overdue { "true" } else { "" }
    );
    let href = |n: i64| format!("/cases?{filters}&page={n}");
    let selected_dept = given(&p.department).unwrap_or_default().to_string();
    let view_page = ListPage {
        ctx: Ctx::staff(&staff, "cases", &href(page.page)).with_flash(p.flash.as_deref()),
        view,
        tabs: views
            .iter()
            .map(|(v, id, zh, en)| Tab { href: format!("/cases?view={v}"), label: l.pick(zh, en).to_string(), id, active: *v == view })
            .collect(),
        kinds: CaseKind::ALL.iter().map(|k| Opt { value: k.code().into(), label: l.msg(&k.label()), selected: Some(*k) == kind }).collect(),
        statuses: CaseStatus::ALL
            .iter()
            .map(|s| Opt { value: s.code().into(), label: l.msg(&s.label()), selected: Some(*s) == status })
            .collect(),
        departments: depts
            .iter()
            .map(|d| Opt { value: d.code.clone(), label: l.pick(&d.name_zh, &d.name_en).to_string(), selected: d.code == selected_dept })
            .collect(),
        show_department_filter: sees_all(user) && view != "dept",
        overdue,
        rows: page.items.iter().map(|c| case_row(c, &depts, l, clock)).collect(),
        can_create: staff.can(Permission::CasesTriage),
        can_dashboard: staff.can(Permission::ServiceDashboard),
        can_configure: staff.can(Permission::CasesConfigure),
        prev: (page.page > 1).then(|| href(page.page - 1)),
        next: (page.page < page.pages()).then(|| href(page.page + 1)),
        page,
    };
    Ok(render(&view_page))
}

// ---- /cases/new ----

#[derive(Template)]
#[template(path = "cases_new.html")]
struct NewPage {
    ctx: Ctx,
    d: CaseDraft,
    kinds: Vec<Opt>,
    form_key: String,
    errors: FieldErrors,
}

impl NewPage {
    fn err(&self, field: &str) -> Option<String> {
        self.errors.get(field).map(|m| self.ctx.l.msg(m))
    }

    fn opt(v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

fn new_page(staff: &Staff, d: CaseDraft, form_key: String, errors: FieldErrors) -> Response {
    let l = staff.lang;
    let kind = d.kind.clone();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = NewPage {
        ctx: Ctx::staff(staff, "cases", "/cases/new"),
        kinds: CaseKind::ALL.iter().map(|k| Opt { value: k.code().into(), label: l.msg(&k.label()), selected: k.code() == kind }).collect(),
        d,
        form_key,
        errors,
    };
    (status, render(&page)).into_response()
}

fn random_key() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

async fn new_form(staff: Staff) -> Result<Response, PageError> {
    staff.require(Permission::CasesTriage)?;
    Ok(new_page(&staff, CaseDraft { kind: "inquiry".into(), ..Default::default() }, random_key(), FieldErrors::default()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewPost {
    csrf: Option<String>,
    form_key: Option<String>,
    kind: String,
    subject: String,
    body: String,
    card_no: Option<String>,
    contact_name: Option<String>,
    contact: Option<String>,
}

async fn create(State(state): State<AppState>, staff: Staff, Form(f): Form<NewPost>) -> Result<Response, PageError> {
    staff.require(Permission::CasesTriage)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let opt = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let d = CaseDraft {
        kind: f.kind,
        subject: f.subject,
        body: f.body,
        card_no: opt(f.card_no),
        contact_name: opt(f.contact_name),
        contact: opt(f.contact),
    };
    let form_key = given(&f.form_key).map(str::to_string).unwrap_or_else(random_key);
    let input = match d.parse(false) {
        Ok(i) => i,
        Err(errors) => return Ok(new_page(&staff, d, form_key, errors)),
    };
    let key = format!("staff:{}:{form_key}", staff.user.id);
    match state.store.create_case(&staff.actor(), &input, CaseSource::Staff, Some(&key)).await {
        Ok((case, _)) => Ok(see_other(&format!("/cases/{}?flash=created", case.id))),
        Err(StoreError::Invalid(errors)) => Ok(new_page(&staff, d, form_key, errors)),
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

// ---- /cases/{id} ----

pub struct EventRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub action_label: String,
    pub from: String,
    pub to: String,
    pub comment: String,
}

fn event_label(action: &str) -> (&'static str, &'static str) {
    match action {
        "create" => ("受理", "Filed"),
        "triage" => ("判定", "Triaged"),
        "assign" => ("分派", "Assigned"),
        "claim" => ("认领", "Claimed"),
        "propose" => ("提出方案", "Solution proposed"),
        "approve" => ("批准方案", "Approved"),
        "reject_proposal" => ("退回方案", "Proposal rejected"),
        "resolve" => ("答复读者", "Resolved"),
        "close" => ("关闭", "Closed"),
        "reopen" => ("重新打开", "Reopened"),
        "rate" => ("读者评价", "Rated"),
        "request_info" => ("请读者补充", "Asked the reader"),
        "reader_reply" => ("读者补充信息", "Reader answered"),
        "withdraw_question" => ("撤回提问", "Question withdrawn"),
        "escalate" => ("超时升级", "Escalated"),
        _ => ("其他", "Other"),
    }
}

/// The action forms the page shows: legal for the case's status and allowed to the user.
#[derive(Default)]
pub struct Forms {
    pub triage: bool,
    pub assign: bool,
    pub claim: bool,
    pub propose: bool,
    pub approve: bool,
    pub resolve: bool,
    pub close: bool,
    pub reopen: bool,
    pub request_info: bool,
    pub withdraw: bool,
}

impl Forms {
    fn any(&self) -> bool {
        self.triage
            || self.assign
            || self.claim
            || self.propose
            || self.approve
            || self.resolve
            || self.close
            || self.reopen
            || self.request_info
            || self.withdraw
    }
}

fn forms_for(user: &lector_store::auth::User, c: &Case) -> Forms {
    use CaseStatus::*;
    let s = c.status;
    let text = String::new;
    let may = |a: CaseAction| may_act(user, c, &a);
    Forms {
        triage: s == Received
            && may(CaseAction::Triage {
                outcome: TriageOutcome::Accepted,
                category: None,
                priority: Priority::Normal,
                duplicate_of: None,
                comment: None,
            }),
        assign: matches!(s, Triaged | Assigned) && may(CaseAction::Assign { department: text(), comment: None }),
        claim: s == Assigned && c.assignee.as_deref() != Some(user.username.as_str()) && may(CaseAction::Claim),
        propose: s == Assigned && may(CaseAction::Propose { solution: text() }),
        approve: s == AwaitingApproval && may(CaseAction::Approve { comment: None }),
        resolve: s == InProgress && may(CaseAction::Resolve { reply: text() }),
        close: s == Resolved && may(CaseAction::Close { comment: None }),
        reopen: matches!(s, Resolved | Closed) && may(CaseAction::Reopen { reason: text() }),
        request_info: c.source == CaseSource::Portal
            && lector_domain::case::ASKS_FROM.contains(&s)
            && may(CaseAction::RequestInfo { question: text() }),
        withdraw: s == AwaitingReader && may(CaseAction::WithdrawQuestion { comment: None }),
    }
}

/// What an action form sends.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
struct ActPost {
    csrf: Option<String>,
    action: String,
    version: String,
    outcome: Option<String>,
    category: Option<String>,
    priority: Option<String>,
    duplicate_of: Option<String>,
    comment: Option<String>,
    department: Option<String>,
    solution: Option<String>,
    reply: Option<String>,
    reason: Option<String>,
    question: Option<String>,
}

#[derive(Template)]
#[template(path = "cases_detail.html")]
struct DetailPage {
    ctx: Ctx,
    c: Case,
    kind: String,
    status: String,
    priority: String,
    category: String,
    department: String,
    source: &'static str,
    overdue: bool,
    near: bool,
    events: Vec<EventRow>,
    forms: Forms,
    can_see_readers: bool,
    outcomes: Vec<Opt>,
    priorities: Vec<Opt>,
    categories: Vec<Opt>,
    departments: Vec<Opt>,
    /// The status the case returns to when the reader answers (while awaiting the reader).
    resume_status: String,
    max_question: usize,
    /// The form that failed, its values and its errors.
    failed: String,
    posted: ActPost,
    errors: FieldErrors,
}

impl DetailPage {
    fn err(&self, action: &str, field: &str) -> Option<String> {
        if self.failed == action {
            self.errors.get(field).map(|m| self.ctx.l.msg(m))
        } else {
            None
        }
    }

    /// A posted value of the failed form, to show again.
    fn val(&self, action: &str, v: &Option<String>) -> String {
        if self.failed == action {
            v.clone().unwrap_or_default()
        } else {
            String::new()
        }
    }

    fn opt_text(v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

#[derive(Debug, Default, Deserialize)]
struct FlashParam {
    flash: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<FlashParam>,
) -> Result<Response, PageError> {
    require_cases(&staff)?;
    detail_page(&state, &staff, id, q.flash.as_deref(), String::new(), ActPost::default(), FieldErrors::default()).await
}

async fn detail_page(
    state: &AppState,
    staff: &Staff,
    id: i64,
    flash: Option<&str>,
    failed: String,
    posted: ActPost,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let l = staff.lang;
    let c = visible_case(state, &staff.user, id).await.map_err(|e| PageError(e, l))?;
    let events = state.store.case_events(id).await.map_err(store_err(l))?;
    let depts = state.store.departments().await.map_err(store_err(l))?;
    let cats = state.store.case_categories(Some(c.kind)).await.map_err(store_err(l))?;
    let (overdue, near) = DeadlineClock::read(&state.store).await.map_err(store_err(l))?.state(&c);
    let sel = |field: &Option<String>, default: &str| {
        if failed.is_empty() {
            default.to_string()
        } else {
            field.clone().unwrap_or_default()
        }
    };
    let outcome = sel(&posted.outcome, "accepted");
    let priority = sel(&posted.priority, c.priority.code());
    let category = sel(&posted.category, c.category.as_deref().unwrap_or_default());
    let department = sel(&posted.department, c.department.as_deref().unwrap_or_default());
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = DetailPage {
        ctx: Ctx::staff(staff, "cases", &format!("/cases/{id}")).with_flash(flash),
        kind: l.msg(&c.kind.label()),
        status: l.msg(&c.status.label()),
        priority: l.msg(&c.priority.label()),
        category: c.category.as_deref().map(|code| category_label(&cats, c.kind, code, l)).unwrap_or_default(),
        department: dept_label(&depts, &c.department, l),
        source: match c.source {
            CaseSource::Staff => "staff",
            CaseSource::Portal => "portal",
            CaseSource::Api => "api",
        },
        overdue,
        near,
        events: events
            .iter()
            .map(|e| {
                let (zh, en) = event_label(&e.action);
                EventRow {
                    at: local_time(&e.at),
                    actor: if e.actor == READER_ACTOR { l.pick("读者", "the reader").to_string() } else { e.actor.clone() },
                    action: e.action.clone(),
                    action_label: l.pick(zh, en).to_string(),
                    from: e.from.map(|s| l.msg(&s.label())).unwrap_or_default(),
                    to: l.msg(&e.to.label()),
                    comment: e.comment.clone().unwrap_or_default(),
                }
            })
            .collect(),
        forms: forms_for(&staff.user, &c),
        resume_status: c.resume_status.map(|s| l.msg(&s.label())).unwrap_or_default(),
        max_question: MAX_QUESTION,
        can_see_readers: staff.can(Permission::ReadersView),
        outcomes: TriageOutcome::ALL
            .iter()
            .map(|o| Opt { value: o.code().into(), label: l.msg(&o.label()), selected: o.code() == outcome })
            .collect(),
        priorities: Priority::ALL
            .iter()
            .map(|p| Opt { value: p.code().into(), label: l.msg(&p.label()), selected: p.code() == priority })
            .collect(),
        categories: cats
            .iter()
            .map(|x| Opt { value: x.code.clone(), label: l.pick(&x.name_zh, &x.name_en).to_string(), selected: x.code == category })
            .collect(),
        departments: depts
            .iter()
            .map(|d| Opt { value: d.code.clone(), label: l.pick(&d.name_zh, &d.name_en).to_string(), selected: d.code == department })
            .collect(),
        c,
        failed,
        posted,
        errors,
    };
    Ok((status, render(&page)).into_response())
}

fn bad_form(zh: &str, en: &str, l: Lang) -> PageError {
    PageError(AppError::BadRequest(Msg::new(zh, en)), l)
}

/// The posted form as an API action body (the same parsing and checks follow).
fn action_body(f: &ActPost, l: Lang) -> Result<Result<ActionBody, FieldErrors>, PageError> {
    let t = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = match f.action.as_str() {
        "triage" => {
            let dup = match given(&f.duplicate_of) {
                None => None,
                Some(raw) => match raw.trim_start_matches('#').parse::<i64>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        let mut e = FieldErrors::default();
                        e.push(
                            "duplicate_of",
                            Msg::new("请填写重复工单的编号（整数）", "give the id (a whole number) of the duplicated case"),
                        );
                        return Ok(Err(e));
                    }
                },
            };
            ActionBody::Triage {
                outcome: t(&f.outcome),
                category: f.category.clone(),
                priority: f.priority.clone(),
                duplicate_of: dup,
                comment: f.comment.clone(),
            }
        }
        "assign" => ActionBody::Assign { department: t(&f.department), comment: f.comment.clone() },
        "claim" => ActionBody::Claim {},
        "propose" => ActionBody::Propose { solution: t(&f.solution) },
        "approve" => ActionBody::Approve { comment: f.comment.clone() },
        "reject_proposal" => ActionBody::RejectProposal { comment: t(&f.comment) },
        "resolve" => ActionBody::Resolve { reply: t(&f.reply) },
        "close" => ActionBody::Close { comment: f.comment.clone() },
        "reopen" => ActionBody::Reopen { reason: t(&f.reason) },
        "request_info" => ActionBody::RequestInfo { question: t(&f.question) },
        "withdraw_question" => ActionBody::WithdrawQuestion { comment: f.comment.clone() },
        _ => return Err(bad_form("未知的工单操作", "unknown case action", l)),
    };
    Ok(Ok(body))
}

async fn act(State(state): State<AppState>, staff: Staff, Path(id): Path<i64>, Form(f): Form<ActPost>) -> Result<Response, PageError> {
    require_cases(&staff)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    let case = visible_case(&state, &staff.user, id).await.map_err(|e| PageError(e, l))?;
    let version = f.version.trim().parse::<i64>().map_err(|_| bad_form("version 应为整数", "version must be a whole number", l))?;
    // Which form failed: reject shares the approval form.
    let failed = if f.action == "reject_proposal" { "approve".to_string() } else { f.action.clone() };
    let action = match action_body(&f, l)?.and_then(ActionBody::parse) {
        Ok(a) => a,
        Err(errors) => {
            if !may_act(&staff.user, &case, &probe(&f.action)) {
                return Err(PageError(AppError::Forbidden, l));
            }
            return detail_page(&state, &staff, id, None, failed, f, errors).await;
        }
    };
    if !may_act(&staff.user, &case, &action) {
        return Err(PageError(AppError::Forbidden, l));
    }
    match state.store.act_on_case(&staff.actor(), id, &action, version).await {
        Ok(_) => Ok(see_other(&format!("/cases/{id}?flash=saved"))),
        Err(StoreError::Invalid(errors)) => detail_page(&state, &staff, id, None, failed, f, errors).await,
        Err(e) => Err(PageError(e.into(), l)),
    }
}

/// An action of the named kind, to check the permission before reporting input errors.
fn probe(action: &str) -> CaseAction {
    let s = String::new;
    match action {
        "triage" => CaseAction::Triage {
            outcome: TriageOutcome::Accepted,
            category: None,
            priority: Priority::Normal,
            duplicate_of: None,
            comment: None,
        },
        "assign" => CaseAction::Assign { department: s(), comment: None },
        "propose" => CaseAction::Propose { solution: s() },
        "approve" | "reject_proposal" => CaseAction::Approve { comment: None },
        "resolve" => CaseAction::Resolve { reply: s() },
        "close" => CaseAction::Close { comment: None },
        "reopen" => CaseAction::Reopen { reason: s() },
        "request_info" => CaseAction::RequestInfo { question: s() },
        "withdraw_question" => CaseAction::WithdrawQuestion { comment: None },
        _ => CaseAction::Claim,
    }
}

// ---- /cases/dashboard ----

/// One bar of a server-drawn SVG chart.
pub struct SvgBar {
    pub label: String,
    pub value: String,
    pub y: i64,
    pub width: i64,
    pub text_y: i64,
    pub value_x: i64,
}

/// A horizontal bar chart drawn on the server.
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub height: i64,
    pub bars: Vec<SvgBar>,
}

const BAR_X: i64 = 170;
const BAR_MAX: i64 = 300;
const ROW: i64 = 26;

fn chart(id: &'static str, title: String, items: Vec<(String, f64, String)>) -> Chart {
    let max = items.iter().map(|(_, v, _)| *v).fold(0.0_f64, f64::max);
    let bars = items
        .into_iter()
        .enumerate()
        .map(|(i, (label, v, value))| {
            let y = 6 + i as i64 * ROW;
            let width = if max > 0.0 { ((v / max) * BAR_MAX as f64).round() as i64 } else { 0 };
            let label: String = if label.chars().count() > 14 { label.chars().take(13).chain(['…']).collect() } else { label };
            SvgBar { label, value, y, width, text_y: y + 14, value_x: BAR_X + width + 6 }
        })
        .collect::<Vec<_>>();
    Chart { id, title, height: (bars.len() as i64 * ROW + 12).max(40), bars }
}

pub struct StatRow {
    pub label: String,
    pub count: String,
    pub extra: String,
}

#[derive(Template)]
#[template(path = "service_dashboard.html")]
struct DashboardPage {
    ctx: Ctx,
    from: String,
    to: String,
    errors: FieldErrors,
    total: i64,
    first_response: String,
    resolution: String,
    compliance: String,
    nps: String,
    charts: Vec<Chart>,
    kind_rows: Vec<StatRow>,
    category_rows: Vec<StatRow>,
    dept_sat_rows: Vec<StatRow>,
    cat_sat_rows: Vec<StatRow>,
}

impl DashboardPage {
    fn err(&self, field: &str) -> Option<String> {
        self.errors.get(field).map(|m| self.ctx.l.msg(m))
    }
}

fn hours(v: Option<f64>, l: Lang) -> String {
    v.map(|h| format!("{h:.1}{}", l.pick(" 小时", " h"))).unwrap_or_else(|| "—".into())
}

async fn dashboard(State(state): State<AppState>, staff: Staff, Query(p): Query<StatsParams>) -> Result<Response, PageError> {
    staff.require(Permission::ServiceDashboard)?;
    let l = staff.lang;
    let today = chrono::Local::now().date_naive();
    let raw_from = given(&p.from).unwrap_or_default().to_string();
    let raw_to = given(&p.to).unwrap_or_default().to_string();
    let (from, to, errors) = match p.parse(today) {
        Ok((f, t)) => (f, t, FieldErrors::default()),
        Err(e) => (today - chrono::Duration::days(30), today, e),
    };
    let (from_s, to_s) = if errors.is_empty() { (from.to_string(), to.to_string()) } else { (raw_from, raw_to) };
    let stats = state.store.service_stats_cached(from, to).await.map_err(store_err(l))?;
    let cats = state.store.case_categories(None).await.map_err(store_err(l))?;
    let depts = state.store.departments().await.map_err(store_err(l))?;
    let kind_label = |k: &str| CaseKind::parse(k).map(|k| l.msg(&k.label())).unwrap_or_else(|_| k.to_string());
    let cat_key_label = |key: &str| match key.split_once('/') {
        Some((k, "-")) => format!("{} / {}", kind_label(k), l.pick("未分类", "uncategorised")),
        Some((k, c)) => match CaseKind::parse(k) {
            Ok(kind) => format!("{} / {}", l.msg(&kind.label()), category_label(&cats, kind, c, l)),
            Err(_) => key.to_string(),
        },
        None => key.to_string(),
    };
    let status_label = |s: &str| CaseStatus::parse(s).map(|s| l.msg(&s.label())).unwrap_or_else(|_| s.to_string());
    let dept_name = |d: &str| dept_label(&depts, &Some(d.to_string()), l);
    let count_items = |v: &[lector_store::cases::Count], f: &dyn Fn(&str) -> String| -> Vec<(String, f64, String)> {
        v.iter().map(|c| (f(&c.key), c.count as f64, c.count.to_string())).collect()
    };
    let sat_items = |v: &[lector_store::cases::SatisfactionRow], f: &dyn Fn(&str) -> String| -> Vec<(String, f64, String)> {
        v.iter().map(|s| (f(&s.key), s.mean, format!("{:.2}", s.mean))).collect()
    };
    let charts = vec![
        chart("chart-by-kind", l.pick("按类型", "By kind").into(), count_items(&stats.by_kind, &kind_label)),
        chart("chart-by-category", l.pick("按类别", "By category").into(), count_items(&stats.by_category, &cat_key_label)),
        chart("chart-by-status", l.pick("按状态", "By status").into(), count_items(&stats.by_status, &status_label)),
        chart(
            "chart-sat-dept",
            l.pick("各部门满意度（1–5）", "Satisfaction by department (1–5)").into(),
            sat_items(&stats.satisfaction_by_department, &dept_name),
        ),
        chart(
            "chart-sat-category",
            l.pick("各类别满意度（1–5）", "Satisfaction by category (1–5)").into(),
            sat_items(&stats.satisfaction_by_category, &cat_key_label),
        ),
    ];
    let count_rows = |v: &[lector_store::cases::Count], f: &dyn Fn(&str) -> String| -> Vec<StatRow> {
        v.iter().map(|c| StatRow { label: f(&c.key), count: c.count.to_string(), extra: String::new() }).collect()
    };
    let sat_rows = |v: &[lector_store::cases::SatisfactionRow], f: &dyn Fn(&str) -> String| -> Vec<StatRow> {
        v.iter().map(|s| StatRow { label: f(&s.key), count: s.ratings.to_string(), extra: format!("{:.2}", s.mean) }).collect()
    };
    let page = DashboardPage {
        ctx: Ctx::staff(&staff, "service-dashboard", &format!("/cases/dashboard?from={from_s}&to={to_s}")),
        total: stats.total,
        first_response: hours(stats.median_first_response_hours, l),
        resolution: hours(stats.median_resolution_hours, l),
        compliance: stats.deadline_compliance.map(|c| format!("{:.0}%", c * 100.0)).unwrap_or_else(|| "—".into()),
        nps: stats.nps.map(|n| format!("{n:.0}")).unwrap_or_else(|| "—".into()),
        charts,
        kind_rows: count_rows(&stats.by_kind, &kind_label),
        category_rows: count_rows(&stats.by_category, &cat_key_label),
        dept_sat_rows: sat_rows(&stats.satisfaction_by_department, &dept_name),
        cat_sat_rows: sat_rows(&stats.satisfaction_by_category, &cat_key_label),
        from: from_s,
        to: to_s,
        errors,
    };
    let status = if page.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, render(&page)).into_response())
}

// ---- /admin/cases ----

pub struct WorkflowRow {
    pub kind: String,
    pub kind_code: &'static str,
    pub requires_approval: bool,
    pub auto_close_days: u32,
}

/// One kind's service levels in working hours, most urgent first, with the defaults beside.
pub struct LevelRow {
    pub kind: String,
    pub kind_code: &'static str,
    /// (priority code, priority label, hours, default hours)
    pub levels: Vec<(&'static str, String, String, u32)>,
}

pub struct CategoryRow {
    pub kind: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Default)]
struct SettingsForms {
    failed: &'static str,
    errors: FieldErrors,
    category: CategoryPost,
    calendar: Option<CalendarPost>,
    workflow_kind: String,
    /// The service-level form that failed and what it sent.
    levels: Option<LevelsPost>,
}

#[derive(Template)]
#[template(path = "cases_settings.html")]
struct SettingsPage {
    ctx: Ctx,
    categories: Vec<CategoryRow>,
    workflows: Vec<WorkflowRow>,
    levels: Vec<LevelRow>,
    max_service_hours: u32,
    kinds: Vec<Opt>,
    day_start: String,
    day_end: String,
    holidays: String,
    extra_workdays: String,
    forms: SettingsForms,
}

impl SettingsPage {
    fn err(&self, form: &str, field: &str) -> Option<String> {
        if self.forms.failed == form {
            self.forms.errors.get(field).map(|m| self.ctx.l.msg(m))
        } else {
            None
        }
    }

    fn wf_err(&self, kind: &str, field: &str) -> Option<String> {
        if self.forms.workflow_kind == kind {
            self.err("workflow", field)
        } else {
            None
        }
    }

    fn level_err(&self, kind: &str, field: &str) -> Option<String> {
        if self.forms.levels.as_ref().is_some_and(|f| f.kind == kind) {
            self.err("levels", field)
        } else {
            None
        }
    }
}

/// The most urgent priority first, as the service-level table shows them.
const PRIORITIES: [Priority; 4] = [Priority::Urgent, Priority::High, Priority::Normal, Priority::Low];

async fn settings(State(state): State<AppState>, staff: Staff, Query(q): Query<FlashParam>) -> Result<Response, PageError> {
    staff.require(Permission::CasesConfigure)?;
    settings_page(&state, &staff, q.flash.as_deref(), SettingsForms::default()).await
}

fn dates_text(v: &[chrono::NaiveDate]) -> String {
    v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

async fn settings_page(state: &AppState, staff: &Staff, flash: Option<&str>, forms: SettingsForms) -> Result<Response, PageError> {
    let l = staff.lang;
    let cats = state.store.case_categories(None).await.map_err(store_err(l))?;
    let mut workflows = Vec::new();
    for k in CaseKind::ALL {
        let w = state.store.workflow(*k).await.map_err(store_err(l))?;
        workflows.push(WorkflowRow {
            kind: l.msg(&k.label()),
            kind_code: k.code(),
            requires_approval: w.requires_approval,
            auto_close_days: w.auto_close_days,
        });
    }
    let mut levels = Vec::new();
    for k in CaseKind::ALL {
        let current = state.store.service_levels(*k).await.map_err(store_err(l))?;
        let defaults = ServiceLevels::default_for(*k);
        let posted = forms.levels.as_ref().filter(|f| f.kind == k.code());
        levels.push(LevelRow {
            kind: l.msg(&k.label()),
            kind_code: k.code(),
            levels: PRIORITIES
                .iter()
                .map(|p| {
                    let shown = posted.map(|f| f.get(*p).to_string()).unwrap_or_else(|| current.hours(*p).to_string());
                    (p.code(), l.msg(&p.label()), shown, defaults.hours(*p))
                })
                .collect(),
        });
    }
    let cal = state.store.work_calendar().await.map_err(store_err(l))?;
    let (day_start, day_end, holidays, extra_workdays) = match &forms.calendar {
        Some(c) => (c.day_start.clone(), c.day_end.clone(), c.holidays.clone(), c.extra_workdays.clone()),
        None => (
            cal.day_start.format("%H:%M").to_string(),
            cal.day_end.format("%H:%M").to_string(),
            dates_text(&cal.holidays),
            dates_text(&cal.extra_workdays),
        ),
    };
    let selected_kind = forms.category.kind.clone();
    let status = if forms.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = SettingsPage {
        ctx: Ctx::staff(staff, "cases", "/admin/cases").with_flash(flash),
        categories: cats
            .iter()
            .map(|c| CategoryRow {
                kind: l.msg(&c.kind.label()),
                code: c.code.clone(),
                name_zh: c.name_zh.clone(),
                name_en: c.name_en.clone(),
            })
            .collect(),
        workflows,
        levels,
        max_service_hours: MAX_SERVICE_HOURS,
        kinds: CaseKind::ALL
            .iter()
            .map(|k| Opt { value: k.code().into(), label: l.msg(&k.label()), selected: k.code() == selected_kind })
            .collect(),
        day_start,
        day_end,
        holidays,
        extra_workdays,
        forms,
    };
    Ok((status, render(&page)).into_response())
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
struct CategoryPost {
    csrf: Option<String>,
    kind: String,
    code: String,
    name_zh: String,
    name_en: String,
}

async fn add_category(State(state): State<AppState>, staff: Staff, Form(f): Form<CategoryPost>) -> Result<Response, PageError> {
    staff.require(Permission::CasesConfigure)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let mut errs = FieldErrors::default();
    let kind = errs.take("kind", CaseKind::parse(&f.kind));
    let code = f.code.trim().to_lowercase();
    if code.is_empty() || code.len() > 40 || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        errs.push("code", Msg::new("代码为 1–40 个字母、数字、- 或 _", "the code is 1–40 letters, digits, - or _"));
    }
    for (field, v) in [("name_zh", &f.name_zh), ("name_en", &f.name_en)] {
        if v.trim().is_empty() || v.chars().count() > 100 {
            errs.push(field, Msg::new("请填写名称（不超过 100 字）", "give a name (at most 100 characters)"));
        }
    }
    let failed = |errors: FieldErrors, f: CategoryPost| SettingsForms { failed: "category", errors, category: f, ..Default::default() };
    let (Some(kind), true) = (kind, errs.is_empty()) else {
        return settings_page(&state, &staff, None, failed(errs, f)).await;
    };
    let cat = CaseCategory { kind, code, name_zh: f.name_zh.trim().into(), name_en: f.name_en.trim().into() };
    match state.store.create_case_category(&staff.actor(), &cat).await {
        Ok(_) => Ok(see_other("/admin/cases?flash=created")),
        Err(StoreError::Invalid(errors)) => settings_page(&state, &staff, None, failed(errors, f)).await,
        Err(StoreError::Conflict(m)) => {
            let mut errors = FieldErrors::default();
            errors.push("code", m);
            settings_page(&state, &staff, None, failed(errors, f)).await
        }
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkflowPost {
    csrf: Option<String>,
    kind: String,
    requires_approval: Option<String>,
    auto_close_days: String,
}

async fn save_workflow(State(state): State<AppState>, staff: Staff, Form(f): Form<WorkflowPost>) -> Result<Response, PageError> {
    staff.require(Permission::CasesConfigure)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let mut errs = FieldErrors::default();
    let kind = errs.take("kind", CaseKind::parse(&f.kind));
    let days =
        errs.take(
            "auto_close_days",
            f.auto_close_days.trim().parse::<u32>().ok().filter(|d| (1..=365).contains(d)).ok_or_else(|| {
                Msg::new("自动关闭天数应为 1 到 365 的整数", "the days before closing must be a whole number from 1 to 365")
            }),
        );
    let (Some(kind), Some(days)) = (kind, days) else {
        let forms = SettingsForms { failed: "workflow", errors: errs, workflow_kind: f.kind.trim().to_string(), ..Default::default() };
        return settings_page(&state, &staff, None, forms).await;
    };
    let wf = Workflow { requires_approval: matches!(f.requires_approval.as_deref(), Some("on" | "true" | "1")), auto_close_days: days };
    state.store.set_workflow(&staff.actor(), kind, wf).await.map_err(store_err(staff.lang))?;
    Ok(see_other("/admin/cases?flash=saved"))
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
struct LevelsPost {
    csrf: Option<String>,
    kind: String,
    urgent: String,
    high: String,
    normal: String,
    low: String,
}

impl LevelsPost {
    fn get(&self, p: Priority) -> &str {
        match p {
            Priority::Urgent => &self.urgent,
            Priority::High => &self.high,
            Priority::Normal => &self.normal,
            Priority::Low => &self.low,
        }
    }
}

/// Sets one kind's service levels; cases already triaged keep their deadlines.
async fn save_service_levels(State(state): State<AppState>, staff: Staff, Form(f): Form<LevelsPost>) -> Result<Response, PageError> {
    staff.require(Permission::CasesConfigure)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let mut errs = FieldErrors::default();
    let kind = errs.take("kind", CaseKind::parse(&f.kind));
    let mut hours = [0u32; 4];
    for (i, p) in PRIORITIES.iter().enumerate() {
        let raw = f.get(*p).trim();
        match raw.parse::<u32>() {
            Ok(h) => hours[i] = h,
            Err(_) => errs.push(
                p.code(),
                Msg::new(
                    format!("“{}”的时限应为工作小时数（整数），而不是“{raw}”", p.label().zh),
                    format!("the {} service level is a whole number of working hours, not '{raw}'", p.code()),
                ),
            ),
        }
    }
    let levels = ServiceLevels { urgent: hours[0], high: hours[1], normal: hours[2], low: hours[3] };
    if errs.is_empty() {
        if let Err(e) = levels.check() {
            errs = e;
        }
    }
    let failed = |errors: FieldErrors, f: LevelsPost| SettingsForms { failed: "levels", errors, levels: Some(f), ..Default::default() };
    let (Some(kind), true) = (kind, errs.is_empty()) else {
        return settings_page(&state, &staff, None, failed(errs, f)).await;
    };
    match state.store.set_service_levels(&staff.actor(), kind, levels).await {
        Ok(()) => Ok(see_other("/admin/cases?flash=saved")),
        Err(StoreError::Invalid(errors)) => settings_page(&state, &staff, None, failed(errors, f)).await,
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
struct CalendarPost {
    csrf: Option<String>,
    day_start: String,
    day_end: String,
    holidays: String,
    extra_workdays: String,
}

fn parse_dates(errs: &mut FieldErrors, field: &str, raw: &str) -> Vec<chrono::NaiveDate> {
    let mut out = Vec::new();
    for part in raw.split(|c: char| c.is_whitespace() || c == ',' || c == '，' || c == ';').filter(|s| !s.is_empty()) {
        match parse_date(part) {
            Ok(d) => out.push(d),
            Err(m) => {
                errs.push(field, m);
                break;
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn parse_time(raw: &str) -> Result<chrono::NaiveTime, Msg> {
    chrono::NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .or_else(|_| chrono::NaiveTime::parse_from_str(raw.trim(), "%H:%M:%S"))
        .map_err(|_| Msg::new(format!("“{raw}”不是有效的时间（如 08:30）"), format!("'{raw}' is not a time like 08:30")))
}

async fn save_calendar(State(state): State<AppState>, staff: Staff, Form(f): Form<CalendarPost>) -> Result<Response, PageError> {
    staff.require(Permission::CasesConfigure)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let mut errs = FieldErrors::default();
    let start = errs.take("day_start", parse_time(&f.day_start));
    let end = errs.take("day_end", parse_time(&f.day_end));
    if let (Some(s), Some(e)) = (start, end) {
        if s >= e {
            errs.push("day_end", Msg::new("下班时间应晚于上班时间", "the day must end after it starts"));
        }
    }
    let holidays = parse_dates(&mut errs, "holidays", &f.holidays);
    let extra_workdays = parse_dates(&mut errs, "extra_workdays", &f.extra_workdays);
    if let Some(d) = holidays.iter().find(|d| extra_workdays.contains(d)) {
        errs.push(
            "extra_workdays",
            Msg::new(format!("{d} 不能既是节假日又是调休工作日"), format!("{d} cannot be both a holiday and a make-up working day")),
        );
    }
    let (Some(day_start), Some(day_end), true) = (start, end, errs.is_empty()) else {
        let forms = SettingsForms { failed: "calendar", errors: errs, calendar: Some(f), ..Default::default() };
        return settings_page(&state, &staff, None, forms).await;
    };
    let cal = WorkCalendar { day_start, day_end, holidays, extra_workdays };
    state.store.set_work_calendar(&staff.actor(), &cal).await.map_err(store_err(staff.lang))?;
    Ok(see_other("/admin/cases?flash=saved"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lector_domain::case::WorkCalendar;

    #[test]
    fn charts_scale_to_the_largest_bar() {
        let c = chart("x", "t".into(), vec![("a".into(), 2.0, "2".into()), ("b".into(), 4.0, "4".into())]);
        assert_eq!(c.bars[0].width * 2, c.bars[1].width);
        assert_eq!(c.bars[1].width, BAR_MAX);
        let empty = chart("y", "t".into(), vec![("a".into(), 0.0, "0".into())]);
        assert_eq!(empty.bars[0].width, 0);
    }

    #[test]
    fn dates_and_times_parse_or_name_their_field() {
        let mut e = FieldErrors::default();
        let d = parse_dates(&mut e, "holidays", "2026-10-01, 2026-10-02\n2026-10-01");
        assert_eq!(d.len(), 2);
        assert!(e.is_empty());
        parse_dates(&mut e, "holidays", "someday");
        assert!(e.get("holidays").is_some());
        assert!(parse_time("8:30").is_ok() && parse_time("noon").is_err());
    }

    #[test]
    fn near_means_within_eight_working_hours() {
        // Friday 16:00: eight working hours later is Monday 15:00 on the standard calendar.
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap().and_hms_opt(16, 0, 0).unwrap();
        let clock = DeadlineClock { now, near_until: WorkCalendar::standard().add_working_hours(now, NEAR_WORKING_HOURS) };
        assert_eq!(clock.state_of(Some("2026-11-30 15:00"), CaseStatus::Assigned), (false, true));
        assert_eq!(clock.state_of(Some("2026-11-30 16:00"), CaseStatus::Assigned), (false, false));
        assert_eq!(clock.state_of(Some("2026-11-27 15:00"), CaseStatus::InProgress), (true, false));
        assert_eq!(clock.state_of(Some("2026-11-27 15:00"), CaseStatus::Resolved), (false, false));
        assert_eq!(clock.state_of(None, CaseStatus::Received), (false, false));
        // Awaiting the reader, the clock is stopped: never overdue, never near.
        assert_eq!(clock.state_of(Some("2026-11-27 15:00"), CaseStatus::AwaitingReader), (false, false));
        assert_eq!(clock.state_of(Some("2026-11-30 15:00"), CaseStatus::AwaitingReader), (false, false));
    }
}
