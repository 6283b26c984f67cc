//! Reader tracking pages (读者跟踪): interactions, follow-up tasks, hand-over of owners and the
//! staff's notifications. The reader page's tracking sections are built here too.
//!
//! Every handler checks its permission first; changing a task's status is further limited to
//! its assignee, its creator and administrators.

use super::readers::{self, ListParams, TimelineItem};
use super::{local_naive, local_path, local_time, render, see_other, with_flash_param, Ctx, Opt, Tab};
use crate::api::tracking::InteractionParams;
use crate::auth::{may_change_task, PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::role::Permission;
use lector_domain::tracking::{parse_handover_reason, Channel, Direction, InteractionDraft, TaskDraft, TaskStatus};
use lector_domain::{FieldErrors, Msg};
use lector_store::auth::User;
use lector_store::readers::ReaderRecord;
use lector_store::tracking::{Interaction, InteractionQuery, Task, TaskQuery};
use lector_store::{Page, StoreError};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/readers/{id}/interactions", post(record_interaction))
        .route("/readers/{id}/tasks", post(create_task))
        .route("/readers/{id}/handover", post(hand_over_one))
        .route("/readers/handover", post(hand_over_many))
        .route("/interactions", get(interactions))
        .route("/tasks", get(tasks))
        .route("/tasks/{id}/status", post(set_task_status))
        .route("/notifications", get(notifications))
        .route("/notifications/read", post(read_all))
        .route("/notifications/{id}/read", post(read_one))
}

fn store_err(l: Lang) -> impl Fn(StoreError) -> PageError {
    move |e| PageError(e.into(), l)
}

fn with_status(status: StatusCode, r: Response) -> Response {
    (status, r).into_response()
}

fn now_local() -> chrono::NaiveDateTime {
    chrono::Local::now().naive_local()
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

// ---- the reader page's tracking sections ----

/// The quick-entry interaction form as shown (again, with its errors, after a failed save).
#[derive(Default)]
pub struct InteractionForm {
    pub d: InteractionDraft,
    pub errors: FieldErrors,
}

#[derive(Default)]
pub struct TaskForm {
    pub d: TaskDraft,
    pub errors: FieldErrors,
}

#[derive(Default)]
pub struct HandoverForm {
    pub owner: String,
    pub reason: String,
    pub errors: FieldErrors,
}

/// What the reader page's forms hold.
#[derive(Default)]
pub struct DetailForms {
    pub interaction: InteractionForm,
    pub task: TaskForm,
    pub handover: HandoverForm,
}

impl DetailForms {
    pub fn failed(&self) -> bool {
        !(self.interaction.errors.is_empty() && self.task.errors.is_empty() && self.handover.errors.is_empty())
    }
}

pub struct InteractionRow {
    pub id: i64,
    pub at: String,
    pub reader_id: i64,
    pub reader: String,
    pub channel: String,
    pub channel_code: &'static str,
    pub direction: String,
    pub subject: String,
    pub notes: String,
    pub staff: String,
}

fn interaction_row(i: &Interaction, l: Lang) -> InteractionRow {
    InteractionRow {
        id: i.id,
        at: i.occurred_at.clone(),
        reader_id: i.reader_id,
        reader: format!("{} {}", i.reader_name, i.reader_card_no),
        channel: l.msg(&i.channel.label()),
        channel_code: i.channel.code(),
        direction: l.msg(&i.direction.label()),
        subject: i.subject.clone(),
        notes: i.notes.clone().unwrap_or_default(),
        staff: i.staff_name.clone(),
    }
}

pub struct TaskRow {
    pub id: i64,
    pub title: String,
    pub notes: String,
    pub due_on: String,
    pub reader_id: Option<i64>,
    pub reader: String,
    pub assignee: String,
    pub created_by: String,
    pub status: String,
    pub status_code: &'static str,
    pub version: i64,
    pub overdue: bool,
    pub can_change: bool,
}

fn task_row(t: &Task, user: &User, l: Lang, today: &str) -> TaskRow {
    TaskRow {
        id: t.id,
        title: t.title.clone(),
        notes: t.notes.clone().unwrap_or_default(),
        due_on: t.due_on.clone(),
        reader_id: t.reader_id,
        reader: match (&t.reader_name, &t.reader_card_no) {
            (Some(n), Some(c)) => format!("{n} {c}"),
            (Some(n), None) => n.clone(),
            _ => String::new(),
        },
        assignee: format!("{} ({})", t.assignee_name, t.assignee),
        created_by: t.created_by.clone(),
        status: l.msg(&t.status.label()),
        status_code: t.status.code(),
        version: t.version,
        overdue: t.status == TaskStatus::Open && t.due_on.as_str() < today,
        can_change: may_change_task(user, t),
    }
}

pub struct OwnerRow {
    pub at: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub by: String,
}

/// The tracking sections of one reader's page.
pub struct ReaderTracking {
    pub interactions: Vec<InteractionRow>,
    pub tasks: Vec<TaskRow>,
    pub owners: Vec<OwnerRow>,
    pub can_record: bool,
    pub can_handover: bool,
    pub channels: Vec<Opt>,
    pub directions: Vec<Opt>,
    pub assignees: Vec<Opt>,
    pub owner_opts: Vec<Opt>,
    pub forms: DetailForms,
    /// The values the forms show.
    pub occurred_at: String,
    pub today: String,
    pub l: Lang,
}

impl ReaderTracking {
    fn msg(&self, errors: &FieldErrors, field: &str) -> Option<String> {
        errors.get(field).map(|m| self.l.msg(m))
    }

    /// The error beside an interaction field.
    pub fn ierr(&self, field: &str) -> Option<String> {
        self.msg(&self.forms.interaction.errors, field)
    }

    pub fn terr(&self, field: &str) -> Option<String> {
        self.msg(&self.forms.task.errors, field)
    }

    pub fn herr(&self, field: &str) -> Option<String> {
        self.msg(&self.forms.handover.errors, field)
    }

    pub fn inotes(&self) -> String {
        self.forms.interaction.d.notes.clone().unwrap_or_default()
    }

    pub fn tnotes(&self) -> String {
        self.forms.task.d.notes.clone().unwrap_or_default()
    }
}

/// Active staff who can work with readers' tracking, as select options.
fn staff_opts(users: &[User], selected: &str) -> Vec<Opt> {
    users
        .iter()
        .filter(|u| u.active && u.role.can(Permission::TrackingView))
        .map(|u| Opt { value: u.username.clone(), label: format!("{} ({})", u.display_name, u.username), selected: u.username == selected })
        .collect()
}

fn name_of(users: &[User], username: &Option<String>, l: Lang) -> String {
    match username {
        None => l.pick("（无）", "(none)").to_string(),
        Some(u) => users.iter().find(|x| &x.username == u).map(|x| format!("{} ({u})", x.display_name)).unwrap_or_else(|| u.clone()),
    }
}

/// Loads the reader's interactions, tasks and owner history for its page, and the timeline
/// entries they add (interactions, tasks created and done, hand-overs, messages sent).
pub async fn reader_tracking(
    state: &AppState,
    staff: &Staff,
    r: &ReaderRecord,
    forms: DetailForms,
) -> Result<(ReaderTracking, Vec<TimelineItem>), StoreError> {
    let l = staff.lang;
    let store = &state.store;
    let iq = InteractionQuery { reader_id: Some(r.id), page: 1, per_page: 100, ..Default::default() };
    let interactions = store.interactions(&iq).await?.items;
    let tq = TaskQuery { reader_id: Some(r.id), page: 1, per_page: 100, ..Default::default() };
    let tasks = store.tasks(&tq).await?.items;
    let history = store.owner_history(r.id).await?;
    let messages = store.reader_messages(r.id, 100).await?;
    let users = store.users().await?;
    let today = today().format("%Y-%m-%d").to_string();

    let mut events = Vec::new();
    for i in &interactions {
        events.push(TimelineItem {
            sort: local_naive(&i.occurred_at),
            at: i.occurred_at.clone(),
            actor: i.staff_name.clone(),
            action: "interaction".into(),
            label: format!("{}：{}", l.pick("联系记录", "Interaction"), l.msg(&i.channel.label())),
            changed: String::new(),
            detail: i.subject.clone(),
        });
    }
    for t in &tasks {
        events.push(TimelineItem {
            sort: local_naive(&t.created_at),
            at: local_time(&t.created_at),
            actor: t.created_by.clone(),
            action: "task.create".into(),
            label: l.pick("创建跟进任务", "Follow-up task created").into(),
            changed: String::new(),
            detail: format!("{} → {} ({})", t.title, t.assignee_name, t.due_on),
        });
        if let (TaskStatus::Done, Some(done)) = (t.status, &t.done_at) {
            events.push(TimelineItem {
                sort: local_naive(done),
                at: local_time(done),
                actor: t.assignee_name.clone(),
                action: "task.done".into(),
                label: l.pick("完成跟进任务", "Follow-up task done").into(),
                changed: String::new(),
                detail: t.title.clone(),
            });
        }
    }
    for h in &history {
        events.push(TimelineItem {
            sort: local_naive(&h.at),
            at: local_time(&h.at),
            actor: h.by.clone(),
            action: "reader.handover".into(),
            label: l.pick("移交业务负责人", "Owner handed over").into(),
            changed: String::new(),
            detail: format!("{} → {}：{}", name_of(&users, &h.from_owner, l), name_of(&users, &h.to_owner, l), h.reason),
        });
    }

    for m in &messages {
        let what = match (&m.campaign_name, m.trigger) {
            (Some(name), _) => format!("{}：{name}", l.pick("群发", "Campaign")),
            (None, Some(t)) => l.msg(&t.label()),
            (None, None) => String::new(),
        };
        let at = m.sent_at.as_deref().unwrap_or(&m.created_at);
        let mut detail = format!("{} ({}) · {}", l.msg(&m.channel_kind.label()), m.channel, l.msg(&m.status.label()));
        if let Some(e) = &m.last_error {
            detail.push_str(&format!(" · {e}"));
        }
        events.push(TimelineItem {
            sort: local_naive(at),
            at: local_time(at),
            actor: String::new(),
            action: "message".into(),
            label: format!("{}：{what}", l.pick("消息", "Message")),
            changed: String::new(),
            detail,
        });
    }

    let occurred_at = given(&forms.interaction.d.occurred_at)
        .map(|s| s.replace(' ', "T"))
        .unwrap_or_else(|| chrono::Local::now().format("%Y-%m-%dT%H:%M").to_string());
    let channel = forms.interaction.d.channel.clone();
    let direction = forms.interaction.d.direction.clone().unwrap_or_else(|| "inbound".into());
    let assignee = if forms.task.d.assignee.is_empty() { staff.user.username.clone() } else { forms.task.d.assignee.clone() };
    let owner = forms.handover.owner.clone();
    let tracking = ReaderTracking {
        interactions: interactions.iter().take(20).map(|i| interaction_row(i, l)).collect(),
        tasks: tasks.iter().filter(|t| t.status == TaskStatus::Open).map(|t| task_row(t, &staff.user, l, &today)).collect(),
        owners: history
            .iter()
            .rev()
            .map(|h| OwnerRow {
                at: local_time(&h.at),
                from: name_of(&users, &h.from_owner, l),
                to: name_of(&users, &h.to_owner, l),
                reason: h.reason.clone(),
                by: h.by.clone(),
            })
            .collect(),
        can_record: staff.can(Permission::TrackingRecord),
        can_handover: staff.can(Permission::ReadersHandOver),
        channels: Channel::ALL
            .iter()
            .map(|c| Opt { value: c.code().into(), label: l.msg(&c.label()), selected: c.code() == channel })
            .collect(),
        directions: Direction::ALL
            .iter()
            .map(|d| Opt { value: d.code().into(), label: l.msg(&d.label()), selected: d.code() == direction })
            .collect(),
        assignees: staff_opts(&users, &assignee),
        owner_opts: staff_opts(&users, &owner),
        forms,
        occurred_at,
        today,
        l,
    };
    Ok((tracking, events))
}

// ---- posting from the reader page ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InteractionPost {
    csrf: Option<String>,
    channel: String,
    direction: Option<String>,
    subject: String,
    notes: Option<String>,
    occurred_at: Option<String>,
}

async fn record_interaction(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<InteractionPost>,
) -> Result<Response, PageError> {
    staff.require(Permission::TrackingRecord)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let d = InteractionDraft { channel: f.channel, direction: f.direction, subject: f.subject, notes: f.notes, occurred_at: f.occurred_at };
    let failed =
        |errors: FieldErrors, d: InteractionDraft| DetailForms { interaction: InteractionForm { d, errors }, ..Default::default() };
    let input = match d.parse(now_local()) {
        Ok(i) => i,
        Err(errors) => return readers::detail_page(&state, &staff, id, false, None, failed(errors, d)).await,
    };
    match state.store.record_interaction(&staff.actor(), id, &input).await {
        Ok(_) => Ok(see_other(&format!("/readers/{id}?flash=recorded#interactions"))),
        Err(StoreError::Invalid(errors)) => readers::detail_page(&state, &staff, id, false, None, failed(errors, d)).await,
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TaskPost {
    csrf: Option<String>,
    title: String,
    due_on: String,
    assignee: String,
    notes: Option<String>,
}

async fn create_task(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<TaskPost>,
) -> Result<Response, PageError> {
    staff.require(Permission::TrackingRecord)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let d = TaskDraft { title: f.title, due_on: f.due_on, assignee: f.assignee, notes: f.notes.filter(|n| !n.trim().is_empty()) };
    let failed = |errors: FieldErrors, d: TaskDraft| DetailForms { task: TaskForm { d, errors }, ..Default::default() };
    let input = match d.parse(today()) {
        Ok(i) => i,
        Err(errors) => return readers::detail_page(&state, &staff, id, false, None, failed(errors, d)).await,
    };
    match state.store.create_task(&staff.actor(), Some(id), &input).await {
        Ok(_) => Ok(see_other(&format!("/readers/{id}?flash=task_created#tasks"))),
        Err(StoreError::Invalid(errors)) => readers::detail_page(&state, &staff, id, false, None, failed(errors, d)).await,
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HandoverPost {
    csrf: Option<String>,
    owner: String,
    reason: String,
}

/// The new owner as posted: empty (or `-`) for none.
fn posted_owner(raw: &str) -> Option<&str> {
    Some(raw.trim()).filter(|s| !s.is_empty() && *s != "-")
}

async fn hand_over_one(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HandoverPost>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersHandOver)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let failed = |errors: FieldErrors, f: HandoverPost| DetailForms {
        handover: HandoverForm { owner: f.owner, reason: f.reason, errors },
        ..Default::default()
    };
    let reason = match parse_handover_reason(&f.reason) {
        Ok(r) => r,
        Err(m) => {
            let mut errors = FieldErrors::default();
            errors.push("reason", m);
            return readers::detail_page(&state, &staff, id, false, None, failed(errors, f)).await;
        }
    };
    match state.store.hand_over(&staff.actor(), &[id], posted_owner(&f.owner), &reason).await {
        Ok(_) => Ok(see_other(&format!("/readers/{id}?flash=handover"))),
        Err(StoreError::Invalid(errors)) => readers::detail_page(&state, &staff, id, false, None, failed(errors, f)).await,
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

/// Bulk hand-over from the reader list: `ids` (repeated), `owner`, `reason`, `back`.
async fn hand_over_many(
    State(state): State<AppState>,
    staff: Staff,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersHandOver)?;
    let value = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    staff.check_csrf(value("csrf").as_deref())?;
    let back = local_path(value("back").as_deref(), "/readers");
    let form =
        HandoverForm { owner: value("owner").unwrap_or_default(), reason: value("reason").unwrap_or_default(), ..Default::default() };
    let mut errors = FieldErrors::default();
    let mut ids = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "ids") {
        match v.trim().parse::<i64>() {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(_) => errors.push("ids", Msg::new(format!("“{v}”不是读者编号"), format!("'{v}' is not a reader id"))),
        }
    }
    if ids.is_empty() && errors.is_empty() {
        errors.push("ids", Msg::new("请至少选择一位读者", "select at least one reader"));
    }
    let reason = errors.take("reason", parse_handover_reason(&form.reason));
    let params = axum::http::Uri::try_from(back.as_str())
        .ok()
        .and_then(|u| Query::<ListParams>::try_from_uri(&u).ok())
        .map(|Query(p)| p)
        .unwrap_or_default();
    let (Some(reason), true) = (reason, errors.is_empty()) else {
        let form = HandoverForm { errors, ..form };
        return readers::list_page(&state, &staff, params, form).await.map(|r| with_status(StatusCode::UNPROCESSABLE_ENTITY, r));
    };
    match state.store.hand_over(&staff.actor(), &ids, posted_owner(&form.owner), &reason).await {
        Ok(_) => Ok(see_other(&with_flash_param(&back, "handover"))),
        Err(StoreError::Invalid(errors)) => {
            let form = HandoverForm { errors, ..form };
            readers::list_page(&state, &staff, params, form).await.map(|r| with_status(StatusCode::UNPROCESSABLE_ENTITY, r))
        }
        Err(e) => Err(PageError(e.into(), staff.lang)),
    }
}

// ---- /interactions ----

fn interactions_href(p: &InteractionParams, page: i64) -> String {
    let enc = crate::auth::urlencode;
    let s = |v: &Option<String>| enc(v.as_deref().unwrap_or_default());
    format!("/interactions?staff={}&channel={}&from={}&to={}&page={page}", s(&p.staff), s(&p.channel), s(&p.from), s(&p.to))
}

#[derive(Template)]
#[template(path = "interactions.html")]
struct InteractionsPage {
    ctx: Ctx,
    p: InteractionParams,
    errors: FieldErrors,
    rows: Vec<InteractionRow>,
    page: Option<Page<Interaction>>,
    staff_opts: Vec<Opt>,
    channels: Vec<Opt>,
    prev: Option<String>,
    next: Option<String>,
}

impl InteractionsPage {
    fn err(&self, field: &str) -> Option<String> {
        self.errors.get(field).map(|m| self.ctx.l.msg(m))
    }
}

async fn interactions(State(state): State<AppState>, staff: Staff, Query(p): Query<InteractionParams>) -> Result<Response, PageError> {
    staff.require(Permission::TrackingView)?;
    let l = staff.lang;
    let users = state.store.users().await.map_err(store_err(l))?;
    let selected_staff = given(&p.staff).unwrap_or_default().to_string();
    let selected_channel = given(&p.channel).unwrap_or_default().to_string();
    let (page, errors) = match p.parse(25, 200) {
        Ok(q) => (Some(state.store.interactions(&q).await.map_err(store_err(l))?), FieldErrors::default()),
        Err(e) => (None, e),
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let (prev, next) = match &page {
        Some(pg) => {
            ((pg.page > 1).then(|| interactions_href(&p, pg.page - 1)), (pg.page < pg.pages()).then(|| interactions_href(&p, pg.page + 1)))
        }
        None => (None, None),
    };
    let view = InteractionsPage {
        ctx: Ctx::staff(&staff, "interactions", &interactions_href(&p, page.as_ref().map(|pg| pg.page).unwrap_or(1))),
        rows: page.as_ref().map(|pg| pg.items.iter().map(|i| interaction_row(i, l)).collect()).unwrap_or_default(),
        staff_opts: users
            .iter()
            .filter(|u| u.role.can(Permission::TrackingRecord))
            .map(|u| Opt {
                value: u.username.clone(),
                label: format!("{} ({})", u.display_name, u.username),
                selected: u.username == selected_staff,
            })
            .collect(),
        channels: Channel::ALL
            .iter()
            .map(|c| Opt { value: c.code().into(), label: l.msg(&c.label()), selected: c.code() == selected_channel })
            .collect(),
        prev,
        next,
        errors,
        page,
        p,
    };
    Ok(with_status(status, render(&view)))
}

// ---- /tasks ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TaskParams {
    view: Option<String>,
    status: Option<String>,
    page: Option<String>,
    flash: Option<String>,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    ctx: Ctx,
    view: &'static str,
    tabs: Vec<Tab>,
    statuses: Vec<Opt>,
    rows: Vec<TaskRow>,
    page: Page<Task>,
    back: String,
    prev: Option<String>,
    next: Option<String>,
}

async fn tasks(State(state): State<AppState>, staff: Staff, Query(p): Query<TaskParams>) -> Result<Response, PageError> {
    staff.require(Permission::TrackingView)?;
    let l = staff.lang;
    let today = today();
    let view = match given(&p.view) {
        Some("overdue") => "overdue",
        Some("all") => "all",
        _ => "mine",
    };
    let status = given(&p.status).and_then(|s| TaskStatus::parse(s).ok());
    let page_no = given(&p.page).and_then(|n| n.parse::<i64>().ok()).filter(|n| *n >= 1).unwrap_or(1);
    let q = match view {
        "overdue" => {
            TaskQuery { status: Some(TaskStatus::Open), overdue_on: Some(today), page: page_no, per_page: 50, ..Default::default() }
        }
        "all" => TaskQuery { status, page: page_no, per_page: 50, ..Default::default() },
        _ => TaskQuery {
            assignee: Some(staff.user.username.clone()),
            status: Some(TaskStatus::Open),
            page: page_no,
            per_page: 50,
            ..Default::default()
        },
    };
    let page = state.store.tasks(&q).await.map_err(store_err(l))?;
    let today_s = today.format("%Y-%m-%d").to_string();
    let status_code = status.map(|s| s.code()).unwrap_or_default();
    let href = |n: i64| format!("/tasks?view={view}&status={status_code}&page={n}");
    let tab = |v: &'static str, id: &'static str, zh: &str, en: &str| Tab {
        href: if v == "mine" { "/tasks".into() } else { format!("/tasks?view={v}") },
        label: l.pick(zh, en).to_string(),
        id,
        active: v == view,
    };
    let back = href(page.page);
    let view_page = TasksPage {
        ctx: Ctx::staff(&staff, "tasks", &back).with_flash(p.flash.as_deref()),
        view,
        tabs: vec![
            tab("mine", "tab-mine", "我的任务", "My tasks"),
            tab("overdue", "tab-overdue", "已逾期", "Overdue"),
            tab("all", "tab-all", "全部", "All"),
        ],
        statuses: TaskStatus::ALL
            .iter()
            .map(|s| Opt { value: s.code().into(), label: l.msg(&s.label()), selected: Some(*s) == status })
            .collect(),
        rows: page.items.iter().map(|t| task_row(t, &staff.user, l, &today_s)).collect(),
        prev: (page.page > 1).then(|| href(page.page - 1)),
        next: (page.page < page.pages()).then(|| href(page.page + 1)),
        back,
        page,
    };
    Ok(render(&view_page))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusPost {
    csrf: Option<String>,
    status: String,
    version: String,
    back: Option<String>,
}

async fn set_task_status(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<StatusPost>,
) -> Result<Response, PageError> {
    staff.require(Permission::TrackingView)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    let task = state.store.task(id).await.map_err(store_err(l))?;
    if !may_change_task(&staff.user, &task) {
        return Err(PageError(AppError::Forbidden, l));
    }
    let mut errs = FieldErrors::default();
    let status = errs.take("status", TaskStatus::parse(&f.status));
    let version =
        errs.take("version", f.version.trim().parse::<i64>().map_err(|_| Msg::new("version 应为整数", "version must be a whole number")));
    let (Some(status), Some(version)) = (status, version) else {
        return Err(PageError(AppError::Invalid(errs), l));
    };
    state.store.set_task_status(&staff.actor(), id, status, version).await.map_err(store_err(l))?;
    Ok(see_other(&with_flash_param(&local_path(f.back.as_deref(), "/tasks"), "task_updated")))
}

// ---- /notifications ----

pub struct NotificationRow {
    pub id: i64,
    pub text: String,
    pub link: Option<String>,
    pub at: String,
    pub unread: bool,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    ctx: Ctx,
    rows: Vec<NotificationRow>,
    unread: usize,
}

#[derive(Debug, Default, Deserialize)]
struct FlashParam {
    flash: Option<String>,
}

async fn notifications(State(state): State<AppState>, staff: Staff, Query(q): Query<FlashParam>) -> Result<Response, PageError> {
    let l = staff.lang;
    let list = state.store.notifications(staff.user.id, false, 200).await.map_err(store_err(l))?;
    let rows: Vec<NotificationRow> = list
        .into_iter()
        .map(|n| NotificationRow {
            id: n.id,
            text: l.pick(&n.text_zh, &n.text_en).to_string(),
            link: n.link.filter(|k| k.starts_with('/') && !k.starts_with("//")),
            at: local_time(&n.created_at),
            unread: n.read_at.is_none(),
        })
        .collect();
    let view = NotificationsPage {
        ctx: Ctx::staff(&staff, "notifications", "/notifications").with_flash(q.flash.as_deref()),
        unread: rows.iter().filter(|r| r.unread).count(),
        rows,
    };
    Ok(render(&view))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReadPost {
    csrf: Option<String>,
    /// Where to go afterwards (a local path, e.g. the notification's link).
    next: Option<String>,
}

async fn read_all(State(state): State<AppState>, staff: Staff, Form(f): Form<ReadPost>) -> Result<Response, PageError> {
    staff.check_csrf(f.csrf.as_deref())?;
    state.store.mark_notifications_read(staff.user.id, None).await.map_err(store_err(staff.lang))?;
    Ok(see_other("/notifications?flash=read"))
}

async fn read_one(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<ReadPost>,
) -> Result<Response, PageError> {
    staff.check_csrf(f.csrf.as_deref())?;
    state.store.mark_notifications_read(staff.user.id, Some(id)).await.map_err(store_err(staff.lang))?;
    match f.next.as_deref() {
        Some(n) if n.starts_with('/') && !n.starts_with("//") => Ok(see_other(n)),
        _ => Ok(see_other("/notifications?flash=read")),
    }
}

/// The home dashboard's tracking tiles: my open tasks and all overdue tasks.
pub async fn dashboard_counts(state: &AppState, staff: &Staff) -> Result<Option<(i64, i64)>, StoreError> {
    if !staff.can(Permission::TrackingView) {
        return Ok(None);
    }
    let q = TaskQuery { status: Some(TaskStatus::Open), overdue_on: Some(today()), page: 1, per_page: 1, ..Default::default() };
    let overdue = state.store.tasks(&q).await?.total;
    Ok(Some((staff.badges.open_tasks, overdue)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_none() {
        assert_eq!(posted_owner(" "), None);
        assert_eq!(posted_owner("-"), None);
        assert_eq!(posted_owner("lina"), Some("lina"));
    }
}
