//! Service cases (服务工单) in the API: list, file, read with history, act, and the service
//! dashboard's figures.
//!
//! The same rules as the pages, checked before any body is read or any record loaded:
//! - listing and reading need one of `cases.view_all`, `cases.triage`, `cases.approve` or
//!   `cases.work`; holders of `cases.work` alone see only their own department's cases (another
//!   department's case is a 403, as is an unknown id, so nothing leaks);
//! - filing needs `cases.triage`; each action names its permission (see [`may_act`]);
//! - `GET /cases/stats` needs `service.dashboard`.

use super::dto::ErrorBody;
use super::json::{bad_request, ApiJson};
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lector_domain::case::{CaseAction, CaseDraft, CaseKind, CaseStatus, Priority, TriageOutcome};
use lector_domain::reader::parse_date;
use lector_domain::role::{Permission, Role};
use lector_domain::{FieldErrors, Msg};
use lector_store::auth::User;
use lector_store::cases::{Case, CaseEvent, CaseQuery, CaseSource, Count, SatisfactionRow, ServiceStats};
use lector_store::{Page, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cases", get(list_cases).post(create_case))
        .route("/cases/stats", get(case_stats))
        .route("/cases/{id}", get(get_case))
        .route("/cases/{id}/actions", post(act_on_case))
}

// ---- who may do what ----

/// May see some cases at all (the case list, a case page).
pub fn may_list(user: &User) -> bool {
    [Permission::CasesViewAll, Permission::CasesTriage, Permission::CasesApprove, Permission::CasesWork]
        .into_iter()
        .any(|p| user.role.can(p))
}

/// Sees every department's cases.
pub fn sees_all(user: &User) -> bool {
    [Permission::CasesViewAll, Permission::CasesTriage, Permission::CasesApprove].into_iter().any(|p| user.role.can(p))
}

/// Works on `case` as a member of its department (administrators work on any).
pub fn works_on(user: &User, case: &Case) -> bool {
    user.role.can(Permission::CasesWork)
        && (user.role == Role::Admin || (user.department_code.is_some() && case.department == user.department_code))
}

pub fn may_see(user: &User, case: &Case) -> bool {
    sees_all(user) || works_on(user, case)
}

/// The department whose cases alone the user sees (`None`: all).
pub fn department_scope(user: &User) -> Option<String> {
    if sees_all(user) {
        None
    } else {
        Some(user.department_code.clone().unwrap_or_else(|| "-".into()))
    }
}

/// Whether the user's role allows `action` on `case` (the workflow may still refuse it).
///
/// A question to the reader is asked by whoever handles the case in its status: triage staff on
/// a received case, its department on an assigned or in-progress one; in any other status
/// either may try and the workflow refuses (409). Only the reader answers, through the portal.
pub fn may_act(user: &User, case: &Case, action: &CaseAction) -> bool {
    let triage = user.role.can(Permission::CasesTriage);
    let handles = |status: Option<CaseStatus>| match status {
        Some(CaseStatus::Received) => triage,
        Some(CaseStatus::Assigned | CaseStatus::InProgress) => works_on(user, case),
        _ => triage || works_on(user, case),
    };
    match action {
        CaseAction::Triage { .. } => triage,
        CaseAction::Assign { .. } => triage || (case.status == CaseStatus::Assigned && works_on(user, case)),
        CaseAction::Claim | CaseAction::Propose { .. } | CaseAction::Resolve { .. } => works_on(user, case),
        CaseAction::Approve { .. } | CaseAction::RejectProposal { .. } => user.role.can(Permission::CasesApprove),
        CaseAction::Close { .. } | CaseAction::Reopen { .. } => triage || works_on(user, case),
        CaseAction::RequestInfo { .. } => handles(Some(case.status)),
        CaseAction::WithdrawQuestion { .. } => handles(case.resume_status),
        CaseAction::ReaderReply { .. } => false,
    }
}

/// Loads a case the user may see; an unknown id or another department's case is a 403 for
/// users who do not see every case, so nothing about it leaks.
pub async fn visible_case(state: &AppState, user: &User, id: i64) -> Result<Case, AppError> {
    match state.store.case(id).await {
        Ok(c) if may_see(user, &c) => Ok(c),
        Ok(_) => Err(AppError::Forbidden),
        Err(StoreError::NotFound) if !sees_all(user) => Err(AppError::Forbidden),
        Err(e) => Err(e.into()),
    }
}

// ---- bodies ----

/// A service case (服务工单).
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseBody {
    pub id: i64,
    /// `GD` + year + sequence.
    #[schema(example = "GD2026-000123")]
    pub number: String,
    /// `suggestion`, `complaint`, `inquiry`, `purchase` or `praise`.
    #[schema(example = "complaint")]
    pub kind: String,
    /// `received`, `triaged`, `assigned`, `awaiting_approval`, `in_progress`, `awaiting_reader`,
    /// `resolved` or `closed`.
    #[schema(example = "received")]
    pub status: String,
    /// `low`, `normal`, `high` or `urgent`.
    #[schema(example = "normal")]
    pub priority: String,
    pub category: Option<String>,
    pub subject: String,
    pub body: String,
    /// `staff`, `portal` or `api`.
    pub source: String,
    pub reader_id: Option<i64>,
    pub reader_card_no: Option<String>,
    pub reader_name: Option<String>,
    pub contact_name: Option<String>,
    pub contact: Option<String>,
    /// Code of the responsible department.
    pub department: Option<String>,
    /// User name of the department member who claimed it.
    pub assignee: Option<String>,
    pub proposal: Option<String>,
    pub reply: Option<String>,
    pub duplicate_of: Option<i64>,
    /// Local deadline, `YYYY-MM-DD HH:MM`, on the working calendar. While the case awaits the
    /// reader it stands still; the answer moves it later by the working time spent waiting.
    pub due_at: Option<String>,
    pub escalated: bool,
    pub created_at: String,
    pub updated_at: String,
    pub first_response_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    pub rating: Option<RatingBody>,
    /// While `awaiting_reader`: the question put to the reader.
    pub question: Option<String>,
    /// While `awaiting_reader`: the status the reader's answer (or withdrawing the question)
    /// returns the case to.
    pub resume_status: Option<String>,
    /// While `awaiting_reader`: since when (local `YYYY-MM-DD HH:MM`) the deadline clock stopped.
    pub awaiting_since: Option<String>,
    /// Send it back with every action; a stale one is refused with 409.
    pub version: i64,
    /// The history, oldest first (only on `GET /cases/{id}` and after an action).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<CaseEventBody>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RatingBody {
    /// 1–5.
    pub satisfaction: u8,
    /// 0–10.
    pub recommend: Option<u8>,
    pub comment: Option<String>,
    pub at: String,
}

/// One step of a case's history: who, when, what, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseEventBody {
    pub id: i64,
    pub at: String,
    /// User name, `portal`, `reader` (an answer sent through the tracking page) or `system`.
    pub actor: String,
    #[schema(example = "triage")]
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    pub comment: Option<String>,
}

fn source_code(s: CaseSource) -> &'static str {
    match s {
        CaseSource::Staff => "staff",
        CaseSource::Portal => "portal",
        CaseSource::Api => "api",
    }
}

impl From<CaseEvent> for CaseEventBody {
    fn from(e: CaseEvent) -> Self {
        CaseEventBody {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            from: e.from.map(|s| s.code().to_string()),
            to: e.to.code().to_string(),
            comment: e.comment,
        }
    }
}

impl From<Case> for CaseBody {
    fn from(c: Case) -> Self {
        CaseBody {
            id: c.id,
            number: c.number,
            kind: c.kind.code().into(),
            status: c.status.code().into(),
            priority: c.priority.code().into(),
            category: c.category,
            subject: c.subject,
            body: c.body,
            source: source_code(c.source).into(),
            reader_id: c.reader_id,
            reader_card_no: c.reader_card_no,
            reader_name: c.reader_name,
            contact_name: c.contact_name,
            contact: c.contact,
            department: c.department,
            assignee: c.assignee,
            proposal: c.proposal,
            reply: c.reply,
            duplicate_of: c.duplicate_of,
            due_at: c.due_at,
            escalated: c.escalated,
            created_at: c.created_at,
            updated_at: c.updated_at,
            first_response_at: c.first_response_at,
            resolved_at: c.resolved_at,
            closed_at: c.closed_at,
            rating: c.rating.map(|r| RatingBody { satisfaction: r.satisfaction, recommend: r.recommend, comment: r.comment, at: r.at }),
            question: c.question,
            resume_status: c.resume_status.map(|s| s.code().to_string()),
            awaiting_since: c.awaiting_since,
            version: c.version,
            events: None,
        }
    }
}

/// A page of cases.
#[derive(Debug, Serialize, ToSchema)]
pub struct CasePage {
    pub items: Vec<CaseBody>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<Case>> for CasePage {
    fn from(p: Page<Case>) -> Self {
        CasePage { items: p.items.into_iter().map(Into::into).collect(), total: p.total, page: p.page, per_page: p.per_page }
    }
}

/// A case as filed. Unknown fields are refused (400).
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseDraftBody {
    /// `suggestion`, `complaint`, `inquiry`, `purchase` or `praise` (or 建议, 投诉 …).
    #[schema(example = "complaint")]
    pub kind: String,
    #[schema(example = "自习室太吵")]
    pub subject: String,
    pub body: String,
    /// The reader's card number; a known one links the reader.
    pub card_no: Option<String>,
    pub contact_name: Option<String>,
    /// An email or a mobile.
    pub contact: Option<String>,
}

/// An action on a case: the `version` last read, the `action` and what it needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseActionRequest {
    /// The case's `version` as last read; a stale one is refused with 409 and nothing changes.
    pub version: i64,
    #[serde(flatten)]
    pub action: ActionBody,
}

/// What is done, tagged by `action`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionBody {
    /// `received` → `triaged` (accepted) or `closed` (duplicate, out of scope).
    Triage {
        /// `accepted`, `duplicate` or `out_of_scope`.
        outcome: String,
        #[serde(default)]
        category: Option<String>,
        /// `low`, `normal` (default), `high` or `urgent`.
        #[serde(default)]
        priority: Option<String>,
        #[serde(default)]
        duplicate_of: Option<i64>,
        #[serde(default)]
        comment: Option<String>,
    },
    /// `triaged` → `assigned`, or a transfer to another department.
    Assign {
        department: String,
        #[serde(default)]
        comment: Option<String>,
    },
    /// A department member takes the case.
    Claim {},
    /// `assigned` → `awaiting_approval` or `in_progress`.
    Propose { solution: String },
    /// `awaiting_approval` → `in_progress` (leaders).
    Approve {
        #[serde(default)]
        comment: Option<String>,
    },
    /// `awaiting_approval` → `assigned` with a comment back (leaders).
    RejectProposal { comment: String },
    /// `in_progress` → `resolved` with the reply to the reader.
    Resolve { reply: String },
    /// `resolved` → `closed`.
    Close {
        #[serde(default)]
        comment: Option<String>,
    },
    /// `resolved` or `closed` → `assigned`.
    Reopen { reason: String },
    /// `received`, `assigned` or `in_progress` → `awaiting_reader`: a question (at most 2,000
    /// characters) shown to the reader on the tracking page; the deadline clock stops. Only
    /// cases filed on the portal have a tracking page; others are refused with 409.
    RequestInfo { question: String },
    /// `awaiting_reader` → the status the question was asked in, without an answer.
    WithdrawQuestion {
        #[serde(default)]
        comment: Option<String>,
    },
}

fn opt_text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl ActionBody {
    /// The domain action, or the fields to correct.
    pub fn parse(self) -> Result<CaseAction, FieldErrors> {
        let mut errs = FieldErrors::default();
        let action = match self {
            ActionBody::Triage { outcome, category, priority, duplicate_of, comment } => {
                let outcome = errs.take("outcome", TriageOutcome::parse(&outcome));
                let priority = match opt_text(priority) {
                    None => Some(Priority::Normal),
                    Some(p) => errs.take("priority", Priority::parse(&p)),
                };
                if outcome == Some(TriageOutcome::Duplicate) && duplicate_of.is_none() {
                    errs.push("duplicate_of", Msg::new("请填写重复的工单编号", "give the id of the case this one duplicates"));
                }
                match (outcome, priority) {
                    (Some(outcome), Some(priority)) => {
                        CaseAction::Triage { outcome, category: opt_text(category), priority, duplicate_of, comment: opt_text(comment) }
                    }
                    _ => return Err(errs),
                }
            }
            ActionBody::Assign { department, comment } => {
                CaseAction::Assign { department: department.trim().to_string(), comment: opt_text(comment) }
            }
            ActionBody::Claim {} => CaseAction::Claim,
            ActionBody::Propose { solution } => CaseAction::Propose { solution },
            ActionBody::Approve { comment } => CaseAction::Approve { comment: opt_text(comment) },
            ActionBody::RejectProposal { comment } => CaseAction::RejectProposal { comment },
            ActionBody::Resolve { reply } => CaseAction::Resolve { reply },
            ActionBody::Close { comment } => CaseAction::Close { comment: opt_text(comment) },
            ActionBody::Reopen { reason } => CaseAction::Reopen { reason },
            ActionBody::RequestInfo { question } => CaseAction::RequestInfo { question },
            ActionBody::WithdrawQuestion { comment } => CaseAction::WithdrawQuestion { comment: opt_text(comment) },
        };
        if let Err(e) = action.check() {
            for fe in e.0 {
                errs.push(fe.field, fe.message);
            }
        }
        errs.finish(|| action)
    }
}

/// A count in the dashboard's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountBody {
    pub key: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SatisfactionBody {
    pub key: String,
    pub ratings: i64,
    /// Mean satisfaction, 1–5.
    pub mean: f64,
}

/// The service dashboard's figures over cases created in a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceStatsBody {
    /// First and last local date of the period.
    pub from: String,
    pub to: String,
    pub total: i64,
    pub by_kind: Vec<CountBody>,
    /// Keys `kind/category`.
    pub by_category: Vec<CountBody>,
    pub by_status: Vec<CountBody>,
    pub median_first_response_hours: Option<f64>,
    pub median_resolution_hours: Option<f64>,
    /// Share of resolved cases resolved by their deadline, 0–1.
    pub deadline_compliance: Option<f64>,
    pub satisfaction_by_department: Vec<SatisfactionBody>,
    pub satisfaction_by_category: Vec<SatisfactionBody>,
    /// Net promoter score, −100 to 100.
    pub nps: Option<f64>,
}

fn counts(v: Vec<Count>) -> Vec<CountBody> {
    v.into_iter().map(|c| CountBody { key: c.key, count: c.count }).collect()
}

fn sats(v: Vec<SatisfactionRow>) -> Vec<SatisfactionBody> {
    v.into_iter().map(|s| SatisfactionBody { key: s.key, ratings: s.ratings, mean: s.mean }).collect()
}

impl ServiceStatsBody {
    fn new(s: ServiceStats, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Self {
        ServiceStatsBody {
            from: from.to_string(),
            to: to.to_string(),
            total: s.total,
            by_kind: counts(s.by_kind),
            by_category: counts(s.by_category),
            by_status: counts(s.by_status),
            median_first_response_hours: s.median_first_response_hours,
            median_resolution_hours: s.median_resolution_hours,
            deadline_compliance: s.deadline_compliance,
            satisfaction_by_department: sats(s.satisfaction_by_department),
            satisfaction_by_category: sats(s.satisfaction_by_category),
            nps: s.nps,
        }
    }
}

// ---- parameters ----

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn query_error(e: QueryRejection) -> AppError {
    super::readers::query_error(e)
}

fn case_id(id: Result<Path<String>, PathRejection>) -> Result<i64, AppError> {
    let Path(raw) = id.map_err(|_| AppError::NotFound)?;
    raw.parse::<i64>().map_err(|_| AppError::NotFound)
}

/// Filters of the case list. Empty values are ignored.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct CaseParams {
    /// A kind code, e.g. `complaint`.
    pub kind: Option<String>,
    /// A status code, e.g. `assigned`; `open` for everything not closed.
    pub status: Option<String>,
    /// A department code (ignored for staff who see only their own department).
    pub department: Option<String>,
    /// User name of the assignee; `me` for the caller.
    pub assignee: Option<String>,
    /// `true`: only open cases past their deadline.
    pub overdue: Option<String>,
    #[param(value_type = Option<i64>)]
    pub reader_id: Option<String>,
    /// Created on or after this local date.
    pub from: Option<String>,
    /// Created on or before this local date.
    pub to: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

fn number(errs: &mut FieldErrors, field: &str, raw: &Option<String>, default: i64, max: i64) -> i64 {
    match given(raw) {
        None => default,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errs.push(
                    field,
                    Msg::new(format!("{field} 应为 1 到 {max} 的整数"), format!("{field} must be a whole number from 1 to {max}")),
                );
                default
            }
        },
    }
}

impl CaseParams {
    /// The store query for `user` (scoped to their department when they see no other), or the
    /// parameters to correct.
    pub fn parse(&self, user: &User, now: chrono::NaiveDateTime) -> Result<CaseQuery, FieldErrors> {
        let mut errs = FieldErrors::default();
        let kind = given(&self.kind).and_then(|k| errs.take("kind", CaseKind::parse(k)));
        let (status, open_only) = match given(&self.status) {
            None => (None, false),
            Some("open") => (None, true),
            Some(s) => (errs.take("status", CaseStatus::parse(s)), false),
        };
        let overdue = match given(&self.overdue) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") | Some("on") => true,
            Some(_) => {
                errs.push("overdue", Msg::new("overdue 应为 true 或 false", "overdue must be true or false"));
                false
            }
        };
        let reader_id = given(&self.reader_id).and_then(|r| {
            errs.take("reader_id", r.parse::<i64>().map_err(|_| Msg::new("reader_id 应为整数", "reader_id must be a whole number")))
        });
        let from = given(&self.from).and_then(|d| errs.take("from", parse_date(d)));
        let to = given(&self.to).and_then(|d| errs.take("to", parse_date(d)));
        let page = number(&mut errs, "page", &self.page, 1, i64::from(i32::MAX));
        let per_page = number(&mut errs, "per_page", &self.per_page, 50, 200);
        let department = department_scope(user).or_else(|| given(&self.department).map(str::to_string));
        let assignee = given(&self.assignee).map(|a| if a == "me" { user.username.clone() } else { a.to_string() });
        errs.finish(|| CaseQuery {
            kind,
            status,
            open_only: open_only || overdue,
            department,
            assignee,
            reader_id,
            overdue_at: overdue.then_some(now),
            from,
            to,
            by_due: overdue,
            page,
            per_page,
        })
    }
}

/// The period of the dashboard.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct StatsParams {
    /// First local date, `YYYY-MM-DD` (default: 30 days before `to`).
    pub from: Option<String>,
    /// Last local date (default: today).
    pub to: Option<String>,
}

impl StatsParams {
    pub fn parse(&self, today: chrono::NaiveDate) -> Result<(chrono::NaiveDate, chrono::NaiveDate), FieldErrors> {
        let mut errs = FieldErrors::default();
        let to = given(&self.to).and_then(|d| errs.take("to", parse_date(d))).unwrap_or(today);
        let from = given(&self.from).and_then(|d| errs.take("from", parse_date(d))).unwrap_or(to - chrono::Duration::days(30));
        if errs.is_empty() && from > to {
            errs.push("to", Msg::new("结束日期不能早于开始日期", "the end date cannot be before the start date"));
        }
        errs.finish(|| (from, to))
    }
}

fn now_local() -> chrono::NaiveDateTime {
    chrono::Local::now().naive_local()
}

// ---- handlers ----

/// Cases, newest first (overdue ones by deadline). Staff who work for one department see only
/// its cases.
#[utoipa::path(
    get, path = "/api/v1/cases", tag = "cases",
    params(CaseParams),
    responses(
        (status = 200, description = "A page of cases", body = CasePage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not see cases", body = ErrorBody),
        (status = 422, description = "An invalid parameter, named in `fields`", body = ErrorBody),
    )
)]
pub async fn list_cases(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<CaseParams>, QueryRejection>,
) -> Result<Json<CasePage>, AppError> {
    if !may_list(&user.user) {
        return Err(AppError::Forbidden);
    }
    let Query(p) = query.map_err(query_error)?;
    let q = p.parse(&user.user, now_local()).map_err(AppError::Invalid)?;
    Ok(Json(state.store.cases(&q).await?.into()))
}

/// Files a case (source `api`). Needs `cases.triage`. An `Idempotency-Key` header makes a
/// retry return the first case instead of filing it twice.
#[utoipa::path(
    post, path = "/api/v1/cases", tag = "cases",
    request_body(content = CaseDraftBody, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Any unique string per case")),
    responses(
        (status = 201, description = "Filed", body = CaseBody),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not file cases", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid values (unknown kind, empty or too long text, a bad contact), each named in `fields`", body = ErrorBody),
    )
)]
pub async fn create_case(State(state): State<AppState>, user: ApiUser, req: Request) -> Result<Response, AppError> {
    user.require(Permission::CasesTriage)?;
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let ApiJson(draft) = ApiJson::<CaseDraft>::from_request(req, &state).await?;
    let input = draft.parse(false).map_err(AppError::Invalid)?;
    let key = key.map(|k| format!("api:{}:{k}", user.user.id));
    let (case, _) = state.store.create_case(&user.actor(), &input, CaseSource::Api, key.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(CaseBody::from(case))).into_response())
}

/// One case with its history.
#[utoipa::path(
    get, path = "/api/v1/cases/{id}", tag = "cases",
    params(("id" = i64, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case and its events", body = CaseBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not see cases, or the case belongs to another department", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
    )
)]
pub async fn get_case(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CaseBody>, AppError> {
    if !may_list(&user.user) {
        return Err(AppError::Forbidden);
    }
    let id = case_id(id)?;
    let case = visible_case(&state, &user.user, id).await?;
    let events = state.store.case_events(id).await?;
    let mut body = CaseBody::from(case);
    body.events = Some(events.into_iter().map(Into::into).collect());
    Ok(Json(body))
}

/// Takes an action on a case: `{"version": 3, "action": "assign", "department": "circulation"}`.
/// Each action needs its permission: `triage` cases.triage; `assign` cases.triage (or, to
/// transfer an assigned case, cases.work in its department); `claim`, `propose`, `resolve`
/// cases.work in its department; `approve`, `reject_proposal` cases.approve; `close`, `reopen`
/// cases.triage or cases.work in its department; `request_info` (and `withdraw_question`)
/// cases.triage on a received case, cases.work in its department on an assigned or in-progress
/// one. The reader answers a question through the portal, not here.
#[utoipa::path(
    post, path = "/api/v1/cases/{id}/actions", tag = "cases",
    params(("id" = i64, Path, description = "Case id")),
    request_body(content = CaseActionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Done; `version` has increased and `events` holds the new step", body = CaseBody),
        (status = 400, description = "Not JSON, an unknown action, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not take this action on this case", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
        (status = 409, description = "Not allowed from the case's status, or a stale version; nothing changed", body = ErrorBody),
        (status = 422, description = "Invalid values (empty or too long text, unknown department or category), named in `fields`", body = ErrorBody),
    )
)]
pub async fn act_on_case(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<CaseBody>, AppError> {
    if !may_list(&user.user) {
        return Err(AppError::Forbidden);
    }
    let id = case_id(id)?;
    let ApiJson(mut body) = ApiJson::<Map<String, Value>>::from_request(req, &state).await?;
    let version = match body.remove("version") {
        Some(v) => v
            .as_i64()
            .ok_or_else(|| bad_request(format!("version 应为整数，而不是 {v}"), format!("version: expected a whole number, not {v}")))?,
        None => return Err(bad_request("缺少 version 字段", "missing field `version`")),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| AppError::Internal(e.to_string()))?;
    let ApiJson(action) = ApiJson::<ActionBody>::from_bytes(&bytes)?;
    let case = visible_case(&state, &user.user, id).await?;
    let action = action.parse().map_err(AppError::Invalid)?;
    if !may_act(&user.user, &case, &action) {
        return Err(AppError::Forbidden);
    }
    let case = state.store.act_on_case(&user.actor(), id, &action, version).await?;
    let events = state.store.case_events(id).await?;
    let mut body = CaseBody::from(case);
    body.events = Some(events.into_iter().map(Into::into).collect());
    Ok(Json(body))
}

/// The service dashboard's figures for cases created in a period. Needs `service.dashboard`.
#[utoipa::path(
    get, path = "/api/v1/cases/stats", tag = "cases",
    params(StatsParams),
    responses(
        (status = 200, description = "Volumes, response and resolution times, deadline compliance, satisfaction and NPS", body = ServiceStatsBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not see the service dashboard", body = ErrorBody),
        (status = 422, description = "An invalid date, named in `fields`", body = ErrorBody),
    )
)]
pub async fn case_stats(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<StatsParams>, QueryRejection>,
) -> Result<Json<ServiceStatsBody>, AppError> {
    user.require(Permission::ServiceDashboard)?;
    let Query(p) = query.map_err(query_error)?;
    let (from, to) = p.parse(chrono::Local::now().date_naive()).map_err(AppError::Invalid)?;
    let stats = state.store.service_stats_cached(from, to).await?;
    Ok(Json(ServiceStatsBody::new(stats, from, to)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_bodies_parse_into_domain_actions() {
        let b: ActionBody = serde_json::from_value(serde_json::json!({"action": "assign", "department": "circulation"})).unwrap();
        assert!(matches!(b, ActionBody::Assign { .. }));
        assert!(serde_json::from_value::<ActionBody>(serde_json::json!({"action": "assign", "department": "x", "colour": 1})).is_err());
        assert!(serde_json::from_value::<ActionBody>(serde_json::json!({"action": "fly"})).is_err());
        let b: ActionBody = serde_json::from_value(serde_json::json!({"action": "triage", "outcome": "maybe"})).unwrap();
        let e = b.parse().unwrap_err();
        assert!(e.get("outcome").is_some(), "{e}");
        // Questions to the reader: checked like every text; the reader's answer is not an API action.
        let long = "问".repeat(2001);
        let b: ActionBody = serde_json::from_value(serde_json::json!({"action": "request_info", "question": long})).unwrap();
        assert!(b.parse().unwrap_err().get("question").is_some());
        let b: ActionBody = serde_json::from_value(serde_json::json!({"action": "withdraw_question", "comment": " "})).unwrap();
        assert_eq!(b.parse().unwrap(), CaseAction::WithdrawQuestion { comment: None });
        assert!(serde_json::from_value::<ActionBody>(serde_json::json!({"action": "reader_reply", "text": "x"})).is_err());
    }

    #[test]
    fn case_draft_body_documents_the_draft() {
        let body =
            serde_json::json!({"kind": "complaint", "subject": "s", "body": "b", "card_no": null, "contact_name": null, "contact": null});
        assert!(serde_json::from_value::<CaseDraft>(body).is_ok());
    }
}
