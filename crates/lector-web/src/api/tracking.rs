//! Reader tracking in the API: interactions, follow-up tasks, hand-over of owners.
//!
//! Same rules as the pages: `tracking.view` to read, `tracking.record` to record interactions
//! and create tasks, `readers.hand_over` to change owners; a task's status may be changed by its
//! assignee, its creator or an administrator. Permissions are checked before the body is read.

use super::dto::{
    self, ErrorBody, HandoverBody, HandoverResult, InteractionDraftBody, InteractionPage, OwnerChange, TaskDraftBody, TaskPage,
    TaskStatusBody,
};
use super::json::{bad_request, ApiJson};
use super::readers::{query_error, reader_id, DEFAULT_PER_PAGE, MAX_PER_PAGE};
use crate::auth::{may_change_task, ApiUser};
use crate::error::AppError;
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lector_domain::reader::parse_date;
use lector_domain::role::Permission;
use lector_domain::tracking::{parse_handover_reason, Channel, InteractionDraft, TaskDraft, TaskStatus};
use lector_domain::{FieldErrors, Msg};
use lector_store::tracking::{InteractionQuery, TaskQuery};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/readers/{id}/interactions", get(reader_interactions).post(record_interaction))
        .route("/readers/{id}/owners", get(owner_history))
        .route("/readers/handover", post(hand_over))
        .route("/interactions", get(list_interactions))
        .route("/tasks", get(list_tasks).post(create_task))
        .route("/tasks/{id}/status", post(set_task_status))
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
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

fn now_local() -> chrono::NaiveDateTime {
    chrono::Local::now().naive_local()
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// Filters and page of interaction lists (`GET /api/v1/interactions`, and the `/interactions`
/// page). Empty values are ignored.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct InteractionParams {
    /// User name of the staff member who recorded them.
    pub staff: Option<String>,
    /// A channel code, e.g. `phone`.
    pub channel: Option<String>,
    /// First local date (inclusive), `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Last local date (inclusive).
    pub to: Option<String>,
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// Items per page, 1 to 200 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
    /// Only this reader's interactions.
    #[param(value_type = Option<i64>)]
    pub reader_id: Option<String>,
}

impl InteractionParams {
    /// The store query, or the parameters to correct (each named).
    pub fn parse(&self, default_per_page: i64, max_per_page: i64) -> Result<InteractionQuery, FieldErrors> {
        let mut errs = FieldErrors::default();
        let channel = given(&self.channel).and_then(|c| errs.take("channel", Channel::parse(c)));
        let from = given(&self.from).and_then(|d| errs.take("from", parse_date(d)));
        let to = given(&self.to).and_then(|d| errs.take("to", parse_date(d)));
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                errs.push("to", Msg::new("结束日期不能早于开始日期", "the end date cannot be before the start date"));
            }
        }
        let reader_id = given(&self.reader_id).and_then(|r| {
            let parsed = r.parse::<i64>().map_err(|_| Msg::new("reader_id 应为整数", "reader_id must be a whole number"));
            errs.take("reader_id", parsed)
        });
        let page = number(&mut errs, "page", &self.page, 1, i64::from(i32::MAX));
        let per_page = number(&mut errs, "per_page", &self.per_page, default_per_page, max_per_page);
        errs.finish(|| InteractionQuery { reader_id, staff: given(&self.staff).map(str::to_lowercase), channel, from, to, page, per_page })
    }
}

/// Page of a reader's interactions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct PageParams {
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

/// Filters and page of `GET /api/v1/tasks`. Empty values are ignored.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct TaskParams {
    /// User name of the assignee; `me` for the caller.
    pub assignee: Option<String>,
    #[param(value_type = Option<i64>)]
    pub reader_id: Option<String>,
    /// `open`, `done` or `cancelled`.
    pub status: Option<String>,
    /// `true`: only open tasks due before today.
    #[param(value_type = Option<bool>)]
    pub overdue: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

impl TaskParams {
    fn parse(&self, me: &str) -> Result<TaskQuery, FieldErrors> {
        let mut errs = FieldErrors::default();
        let status = given(&self.status).and_then(|s| errs.take("status", TaskStatus::parse(s)));
        let overdue = match given(&self.overdue) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(v) => {
                errs.push(
                    "overdue",
                    Msg::new(format!("overdue 只能是 true 或 false，而不是“{v}”"), format!("overdue must be true or false, not '{v}'")),
                );
                false
            }
        };
        let reader_id = given(&self.reader_id).and_then(|r| {
            errs.take("reader_id", r.parse::<i64>().map_err(|_| Msg::new("reader_id 应为整数", "reader_id must be a whole number")))
        });
        let page = number(&mut errs, "page", &self.page, 1, i64::from(i32::MAX));
        let per_page = number(&mut errs, "per_page", &self.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE);
        errs.finish(|| TaskQuery {
            assignee: given(&self.assignee).map(|a| if a == "me" { me.to_string() } else { a.to_lowercase() }),
            reader_id,
            status: if overdue { Some(TaskStatus::Open) } else { status },
            overdue_on: overdue.then(today),
            page,
            per_page,
        })
    }
}

/// A task id in the path: a malformed one names no task (404).
fn task_id(path: Result<Path<String>, PathRejection>) -> Result<i64, AppError> {
    reader_id(path)
}

/// A reader's interactions, newest first. Needs `tracking.view`.
#[utoipa::path(
    get, path = "/api/v1/readers/{id}/interactions", tag = "tracking",
    params(("id" = i64, Path, description = "Reader id"), PageParams),
    responses(
        (status = 200, description = "A page of the reader's interactions", body = InteractionPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not see interactions", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
        (status = 422, description = "An invalid parameter, named in `fields`", body = ErrorBody),
    )
)]
pub async fn reader_interactions(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<InteractionPage>, AppError> {
    user.require(Permission::TrackingView)?;
    let id = reader_id(id)?;
    let Query(p) = query.map_err(query_error)?;
    let params = InteractionParams { page: p.page, per_page: p.per_page, reader_id: Some(id.to_string()), ..Default::default() };
    let q = params.parse(DEFAULT_PER_PAGE, MAX_PER_PAGE).map_err(AppError::Invalid)?;
    state.store.reader(id).await?;
    Ok(Json(state.store.interactions(&q).await?.into()))
}

/// Records a contact with the reader, by the token's user. Needs `tracking.record`.
#[utoipa::path(
    post, path = "/api/v1/readers/{id}/interactions", tag = "tracking",
    params(("id" = i64, Path, description = "Reader id")),
    request_body(content = InteractionDraftBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = dto::Interaction),
        (status = 400, description = "Not JSON, or an unknown or mistyped field (named in the message)", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not record interactions", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid values (unknown channel, empty subject, a time in the future), each named in `fields`", body = ErrorBody),
    )
)]
pub async fn record_interaction(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, AppError> {
    user.require(Permission::TrackingRecord)?;
    let id = reader_id(id)?;
    let ApiJson(draft) = ApiJson::<InteractionDraft>::from_request(req, &state).await?;
    let input = draft.parse(now_local()).map_err(AppError::Invalid)?;
    let recorded = state.store.record_interaction(&user.actor(), id, &input).await?;
    Ok((StatusCode::CREATED, Json(dto::Interaction::from(recorded))).into_response())
}

/// Interactions across readers, newest first. Needs `tracking.view`.
#[utoipa::path(
    get, path = "/api/v1/interactions", tag = "tracking",
    params(InteractionParams),
    responses(
        (status = 200, description = "A page of interactions", body = InteractionPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not see interactions", body = ErrorBody),
        (status = 422, description = "An invalid parameter, named in `fields`", body = ErrorBody),
    )
)]
pub async fn list_interactions(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<InteractionParams>, QueryRejection>,
) -> Result<Json<InteractionPage>, AppError> {
    user.require(Permission::TrackingView)?;
    let Query(p) = query.map_err(query_error)?;
    let q = p.parse(DEFAULT_PER_PAGE, MAX_PER_PAGE).map_err(AppError::Invalid)?;
    Ok(Json(state.store.interactions(&q).await?.into()))
}

/// Follow-up tasks, earliest due first. Needs `tracking.view`.
#[utoipa::path(
    get, path = "/api/v1/tasks", tag = "tracking",
    params(TaskParams),
    responses(
        (status = 200, description = "A page of tasks", body = TaskPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not see tasks", body = ErrorBody),
        (status = 422, description = "An invalid parameter, named in `fields`", body = ErrorBody),
    )
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<TaskParams>, QueryRejection>,
) -> Result<Json<TaskPage>, AppError> {
    user.require(Permission::TrackingView)?;
    let Query(p) = query.map_err(query_error)?;
    let q = p.parse(&user.user.username).map_err(AppError::Invalid)?;
    Ok(Json(state.store.tasks(&q).await?.into()))
}

/// Creates a follow-up task, optionally about a reader; the assignee is notified. Needs
/// `tracking.record`.
#[utoipa::path(
    post, path = "/api/v1/tasks", tag = "tracking",
    request_body(content = TaskDraftBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = dto::Task),
        (status = 400, description = "Not JSON, or an unknown or mistyped field (named in the message)", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not create tasks", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid values (a past due date, an unknown assignee), each named in `fields`", body = ErrorBody),
    )
)]
pub async fn create_task(State(state): State<AppState>, user: ApiUser, req: Request) -> Result<Response, AppError> {
    user.require(Permission::TrackingRecord)?;
    let ApiJson(mut body) = ApiJson::<Map<String, Value>>::from_request(req, &state).await?;
    let reader = match body.remove("reader_id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) => Some(n),
            None => {
                return Err(bad_request(format!("reader_id 应为整数，而不是 {v}"), format!("reader_id: expected a whole number, not {v}")))
            }
        },
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| AppError::Internal(e.to_string()))?;
    let ApiJson(draft) = ApiJson::<TaskDraft>::from_bytes(&bytes)?;
    let input = draft.parse(today()).map_err(AppError::Invalid)?;
    let task = state.store.create_task(&user.actor(), reader, &input).await?;
    Ok((StatusCode::CREATED, Json(dto::Task::from(task))).into_response())
}

/// Moves a task: open → done or cancelled, done or cancelled → open. Needs `tracking.view`, and
/// the caller must be the task's assignee, its creator or an administrator.
#[utoipa::path(
    post, path = "/api/v1/tasks/{id}/status", tag = "tracking",
    params(("id" = i64, Path, description = "Task id")),
    request_body(content = TaskStatusBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed; `version` has increased", body = dto::Task),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "Not the assignee, the creator or an administrator", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not allowed from the task's status, or a stale version", body = ErrorBody),
        (status = 422, description = "An unknown status", body = ErrorBody),
    )
)]
pub async fn set_task_status(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<dto::Task>, AppError> {
    user.require(Permission::TrackingView)?;
    let id = task_id(id)?;
    let ApiJson(body) = ApiJson::<TaskStatusBody>::from_request(req, &state).await?;
    let task = state.store.task(id).await?;
    if !may_change_task(&user.user, &task) {
        return Err(AppError::Forbidden);
    }
    let mut errs = FieldErrors::default();
    let status = errs.take("status", TaskStatus::parse(&body.status));
    let Some(status) = status else {
        return Err(AppError::Invalid(errs));
    };
    Ok(Json(state.store.set_task_status(&user.actor(), id, status, body.version).await?.into()))
}

/// Hands readers over to a new owner (or to none) in one transaction; the new owner is
/// notified. Needs `readers.hand_over`.
#[utoipa::path(
    post, path = "/api/v1/readers/handover", tag = "tracking",
    request_body(content = HandoverBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Handed over", body = HandoverResult),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not hand readers over", body = ErrorBody),
        (status = 404, description = "A reader does not exist (nothing changed)", body = ErrorBody),
        (status = 422, description = "No readers, no reason, or an unknown owner, named in `fields`", body = ErrorBody),
    )
)]
pub async fn hand_over(State(state): State<AppState>, user: ApiUser, req: Request) -> Result<Json<HandoverResult>, AppError> {
    user.require(Permission::ReadersHandOver)?;
    let ApiJson(body) = ApiJson::<HandoverBody>::from_request(req, &state).await?;
    let mut errs = FieldErrors::default();
    if body.reader_ids.is_empty() {
        errs.push("reader_ids", Msg::new("请至少选择一位读者", "give at least one reader id"));
    }
    let reason = errs.take("reason", parse_handover_reason(&body.reason));
    let (Some(reason), true) = (reason, errs.is_empty()) else {
        return Err(AppError::Invalid(errs));
    };
    let mut ids = body.reader_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    let owner = body.owner.as_deref().map(str::trim).filter(|o| !o.is_empty());
    let changed = state.store.hand_over(&user.actor(), &ids, owner, &reason).await?;
    Ok(Json(HandoverResult { changed }))
}

/// A reader's owners over time, oldest first. Needs `tracking.view`.
#[utoipa::path(
    get, path = "/api/v1/readers/{id}/owners", tag = "tracking",
    params(("id" = i64, Path, description = "Reader id")),
    responses(
        (status = 200, description = "The owner history", body = Vec<OwnerChange>),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not see tracking data", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
    )
)]
pub async fn owner_history(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<OwnerChange>>, AppError> {
    user.require(Permission::TrackingView)?;
    let id = reader_id(id)?;
    state.store.reader(id).await?;
    Ok(Json(state.store.owner_history(id).await?.into_iter().map(Into::into).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_filters() {
        let p = TaskParams { assignee: Some("me".into()), overdue: Some("true".into()), ..Default::default() };
        let q = p.parse("lina").unwrap();
        assert_eq!((q.assignee.as_deref(), q.status, q.overdue_on.is_some()), (Some("lina"), Some(TaskStatus::Open), true));
        let p = TaskParams { status: Some("finished".into()), overdue: Some("maybe".into()), ..Default::default() };
        let e = p.parse("lina").unwrap_err();
        assert!(e.get("status").is_some() && e.get("overdue").is_some(), "{e}");
    }

    #[test]
    fn interaction_filters_name_bad_parameters() {
        let p = InteractionParams { channel: Some("pigeon".into()), from: Some("yesterday".into()), ..Default::default() };
        let e = p.parse(25, 200).unwrap_err();
        assert!(e.get("channel").is_some() && e.get("from").is_some(), "{e}");
        let p = InteractionParams { channel: Some("电话".into()), staff: Some("LiNa".into()), ..Default::default() };
        let q = p.parse(25, 200).unwrap();
        assert_eq!((q.channel, q.staff.as_deref(), q.page, q.per_page), (Some(Channel::Phone), Some("lina"), 1, 25));
    }

    #[test]
    fn task_draft_body_documents_the_draft() {
        // Every field the OpenAPI body names is accepted by `TaskDraft` (plus `reader_id`).
        let body = serde_json::json!({"title": "t", "notes": null, "due_on": "2026-12-01", "assignee": "lina"});
        assert!(serde_json::from_value::<TaskDraft>(body).is_ok());
        let body = serde_json::json!({"channel": "phone", "direction": null, "subject": "s", "notes": null, "occurred_at": null});
        assert!(serde_json::from_value::<InteractionDraft>(body).is_ok());
    }
}
