//! `/api/v1/segments`: segments (读者分组) — saved reader filters: list, create, read, update,
//! delete, count an unsaved filter, members, freeze and unfreeze, export, and bulk actions on
//! the members (add a tag, hand over).
//!
//! Every route needs `SegmentsManage`, checked before the body is read or the segment loaded;
//! the export also needs `ReadersExport`, the tag `ReadersEdit`, the hand-over
//! `ReadersHandOver`. A filter that does not parse is a 422 whose `fields` name each problem by
//! its path in the filter (`all[1].any[0].value`).

use super::dto::{ErrorBody, ReaderSummaryBody};
use super::json::{bad_request, ApiJson};
use super::readers::{page_number, query_error, reader_id, DEFAULT_PER_PAGE, MAX_PER_PAGE};
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::mask::mask;
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lector_domain::contact::ContactKind;
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::readers::ReaderSort;
use lector_store::segments::{ExportRow, ListedSegment, Member, MemberQuery, Segment, SegmentInput};
use lector_store::{Actor, Page, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/segments", get(list_segments).post(create_segment))
        .route("/segments/count", post(count_segment))
        .route("/segments/{id}", get(get_segment).put(update_segment).delete(delete_segment))
        .route("/segments/{id}/members", get(segment_members))
        .route("/segments/{id}/freeze", post(freeze_segment))
        .route("/segments/{id}/unfreeze", post(unfreeze_segment))
        .route("/segments/{id}/export.csv", get(export_segment))
        .route("/segments/{id}/tag", post(tag_segment))
        .route("/segments/{id}/hand-over", post(hand_over_segment))
}

/// This module's part of the OpenAPI document (merged into [`super::ApiDoc`]).
#[derive(OpenApi)]
#[openapi(
    paths(
        list_segments,
        create_segment,
        count_segment,
        get_segment,
        update_segment,
        delete_segment,
        segment_members,
        freeze_segment,
        unfreeze_segment,
        export_segment,
        tag_segment,
        hand_over_segment,
    ),
    components(schemas(
        SegmentBody,
        SegmentDraftBody,
        SegmentUpdateBody,
        CountRequest,
        CountBody,
        MemberBody,
        MemberPage,
        TagRequest,
        HandOverRequest,
        ChangedBody,
    )),
    tags((name = "segments", description = "Segments (读者分组): saved reader filters, their members and bulk actions")),
)]
pub struct Doc;

/// A segment. `members` is the current member count (the snapshot's size when frozen; `null`
/// when the filter no longer parses, e.g. it names a custom attribute that was removed).
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentBody {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// The filter: `all` / `any` groups of `{"field", "op", "value"}` conditions.
    #[schema(value_type = Object, example = json!({"all": [{"field": "category", "op": "in", "value": ["undergraduate"]}, {"any": [{"field": "tag", "op": "eq", "value": "志愿者"}]}]}))]
    pub filter: serde_json::Value,
    /// When the member snapshot was taken; `null` while live.
    pub frozen_at: Option<String>,
    pub members: Option<i64>,
    /// User name of the creator.
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

impl SegmentBody {
    fn new(s: Segment, members: Option<i64>) -> Self {
        SegmentBody {
            id: s.id,
            name: s.name,
            description: s.description,
            filter: s.filter,
            frozen_at: s.frozen_at,
            members,
            created_by: s.created_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
            version: s.version,
        }
    }
}

impl From<ListedSegment> for SegmentBody {
    fn from(l: ListedSegment) -> Self {
        SegmentBody::new(l.segment, l.members)
    }
}

/// A new segment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentDraftBody {
    /// Unique, up to 100 characters.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
}

/// A segment's new name, description and filter, with the version they were based on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentUpdateBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
    pub version: i64,
}

/// A filter to count.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountBody {
    /// Readers matching the filter now.
    pub count: i64,
}

/// A member: the reader list's row and the primary email and mobile, masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberBody {
    #[serde(flatten)]
    pub reader: ReaderSummaryBody,
    #[schema(example = "z***@example.edu.cn")]
    pub email: Option<String>,
    #[schema(example = "138****8000")]
    pub mobile: Option<String>,
}

impl From<Member> for MemberBody {
    fn from(m: Member) -> Self {
        MemberBody {
            reader: m.reader.into(),
            email: m.email.map(|e| mask(ContactKind::Email, &e)),
            mobile: m.mobile.map(|v| mask(ContactKind::Mobile, &v)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<MemberBody>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<Member>> for MemberPage {
    fn from(p: Page<Member>) -> Self {
        MemberPage { items: p.items.into_iter().map(Into::into).collect(), total: p.total, page: p.page, per_page: p.per_page }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// 1 to 32 characters, no commas.
    #[schema(example = "读书节")]
    pub tag: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandOverRequest {
    /// User name of the new owner; `null` leaves the members without an owner.
    pub owner: Option<String>,
    /// Why (required); kept in each reader's owner history.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangedBody {
    /// How many readers changed.
    pub changed: usize,
}

/// Sort and page of `GET /api/v1/segments/{id}/members`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberParams {
    /// `name`, `card_no`, `updated` (default) or `created`.
    pub sort: Option<String>,
    /// `asc` or `desc` (default `desc` for the default sort, `asc` otherwise).
    pub order: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

impl MemberParams {
    pub fn parse(&self) -> Result<MemberQuery, FieldErrors> {
        let mut errs = FieldErrors::default();
        let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let sort = given(&self.sort).and_then(|s| {
            let parsed = ReaderSort::parse(&s).ok_or_else(|| {
                Msg::new(
                    format!("排序方式“{s}”无效，可选：name、card_no、updated、created"),
                    format!("sort '{s}' is invalid; use name, card_no, updated or created"),
                )
            });
            errs.take("sort", parsed)
        });
        let desc = match given(&self.order).as_deref() {
            None => false,
            Some("asc") => false,
            Some("desc") => true,
            Some(o) => {
                errs.push(
                    "order",
                    Msg::new(format!("排序方向“{o}”无效，可选：asc、desc"), format!("order '{o}' is invalid; use asc or desc")),
                );
                false
            }
        };
        let page = page_number(&mut errs, "page", &self.page, 1, i64::from(i32::MAX));
        let per_page = page_number(&mut errs, "per_page", &self.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE);
        errs.finish(|| MemberQuery { sort, desc, page, per_page })
    }
}

/// The query of `DELETE /api/v1/segments/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// The version the deletion is based on; a stale one is refused with 409.
    #[param(value_type = Option<i64>)]
    pub version: Option<String>,
}

/// The segment with its current member count.
pub(crate) async fn with_count(store: &Store, s: Segment) -> Result<SegmentBody, AppError> {
    let members = match s.frozen_at {
        Some(_) => s.frozen_count,
        None => match store.count_filter(&s.filter).await {
            Ok(n) => Some(n),
            Err(lector_store::StoreError::Invalid(_)) => None,
            Err(e) => return Err(e.into()),
        },
    };
    Ok(SegmentBody::new(s, members))
}

fn input(name: String, description: String, filter: serde_json::Value) -> SegmentInput {
    SegmentInput { name, description, filter }
}

/// Lists every segment by name with its member count.
#[utoipa::path(
    get, path = "/api/v1/segments", tag = "segments",
    responses(
        (status = 200, description = "Every segment", body = Vec<SegmentBody>),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
    )
)]
pub async fn list_segments(State(state): State<AppState>, user: ApiUser) -> Result<Json<Vec<SegmentBody>>, AppError> {
    user.require(Permission::SegmentsManage)?;
    Ok(Json(state.store.segments().await?.into_iter().map(Into::into).collect()))
}

/// Saves a new segment.
#[utoipa::path(
    post, path = "/api/v1/segments", tag = "segments",
    request_body(content = SegmentDraftBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = SegmentBody, headers(("Location" = String, description = "/api/v1/segments/{id}"))),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A bad name or filter; filter problems are named by their path (`all[1].any[0].value`)", body = ErrorBody),
    )
)]
pub async fn create_segment(State(state): State<AppState>, user: ApiUser, req: Request) -> Result<Response, AppError> {
    user.require(Permission::SegmentsManage)?;
    let ApiJson(body) = ApiJson::<SegmentDraftBody>::from_request(req, &state).await?;
    let s = state.store.create_segment(&user.actor(), &input(body.name, body.description, body.filter)).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/segments/{}", s.id)).expect("a path of digits is a valid header value");
    let body = with_count(&state.store, s).await?;
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(body)).into_response())
}

/// Counts the readers a filter matches now, without saving it (the builder's live count).
#[utoipa::path(
    post, path = "/api/v1/segments/count", tag = "segments",
    request_body(content = CountRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The count", body = CountBody),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 422, description = "The filter's problems, named by their path", body = ErrorBody),
    )
)]
pub async fn count_segment(State(state): State<AppState>, user: ApiUser, req: Request) -> Result<Json<CountBody>, AppError> {
    user.require(Permission::SegmentsManage)?;
    let ApiJson(body) = ApiJson::<CountRequest>::from_request(req, &state).await?;
    Ok(Json(CountBody { count: state.store.count_filter(&body.filter).await? }))
}

/// One segment.
#[utoipa::path(
    get, path = "/api/v1/segments/{id}", tag = "segments",
    params(("id" = i64, Path, description = "Segment id")),
    responses(
        (status = 200, description = "The segment", body = SegmentBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
    )
)]
pub async fn get_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SegmentBody>, AppError> {
    user.require(Permission::SegmentsManage)?;
    let s = state.store.segment(reader_id(id)?).await?;
    Ok(Json(with_count(&state.store, s).await?))
}

/// Replaces a segment's name, description and filter. A stale `version` is a 409, and so is a
/// new filter for a frozen segment (unfreeze it first).
#[utoipa::path(
    put, path = "/api/v1/segments/{id}", tag = "segments",
    params(("id" = i64, Path, description = "Segment id")),
    request_body(content = SegmentUpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = SegmentBody),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "Stale version, the name is taken, or the segment is frozen", body = ErrorBody),
        (status = 422, description = "A bad name or filter, named in `fields`", body = ErrorBody),
    )
)]
pub async fn update_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<SegmentBody>, AppError> {
    user.require(Permission::SegmentsManage)?;
    let id = reader_id(id)?;
    let ApiJson(body) = ApiJson::<SegmentUpdateBody>::from_request(req, &state).await?;
    let s = state.store.update_segment(&user.actor(), id, body.version, &input(body.name, body.description, body.filter)).await?;
    Ok(Json(with_count(&state.store, s).await?))
}

/// Deletes a segment; refused with 409 while a campaign uses it.
#[utoipa::path(
    delete, path = "/api/v1/segments/{id}", tag = "segments",
    params(("id" = i64, Path, description = "Segment id"), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "A campaign uses the segment, or the version is stale", body = ErrorBody),
    )
)]
pub async fn delete_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DeleteParams>, QueryRejection>,
) -> Result<StatusCode, AppError> {
    user.require(Permission::SegmentsManage)?;
    let id = reader_id(id)?;
    let Query(q) = query.map_err(query_error)?;
    let version = match q.version.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad_request(format!("version 应为整数，而不是“{v}”"), format!("version must be a whole number, not '{v}'")))?,
        ),
    };
    state.store.delete_segment(&user.actor(), id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of the segment's members (contacts masked), sorted like the reader list.
#[utoipa::path(
    get, path = "/api/v1/segments/{id}/members", tag = "segments",
    params(("id" = i64, Path, description = "Segment id"), MemberParams),
    responses(
        (status = 200, description = "A page of members", body = MemberPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 422, description = "A bad parameter, or a saved filter that no longer parses", body = ErrorBody),
    )
)]
pub async fn segment_members(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<MemberParams>, QueryRejection>,
) -> Result<Json<MemberPage>, AppError> {
    user.require(Permission::SegmentsManage)?;
    let id = reader_id(id)?;
    let Query(params) = query.map_err(query_error)?;
    let q = params.parse().map_err(AppError::Invalid)?;
    Ok(Json(state.store.segment_members(id, &q).await?.into()))
}

/// Takes a snapshot of the members: the segment keeps exactly these readers until unfrozen.
#[utoipa::path(
    post, path = "/api/v1/segments/{id}/freeze", tag = "segments",
    params(("id" = i64, Path, description = "Segment id")),
    responses(
        (status = 200, description = "Frozen", body = SegmentBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "Already frozen", body = ErrorBody),
    )
)]
pub async fn freeze_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SegmentBody>, AppError> {
    user.require(Permission::SegmentsManage)?;
    let s = state.store.freeze_segment(&user.actor(), reader_id(id)?).await?;
    Ok(Json(with_count(&state.store, s).await?))
}

/// Drops the snapshot: the filter decides the members again.
#[utoipa::path(
    post, path = "/api/v1/segments/{id}/unfreeze", tag = "segments",
    params(("id" = i64, Path, description = "Segment id")),
    responses(
        (status = 200, description = "Live again", body = SegmentBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "Not frozen", body = ErrorBody),
    )
)]
pub async fn unfreeze_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SegmentBody>, AppError> {
    user.require(Permission::SegmentsManage)?;
    let s = state.store.unfreeze_segment(&user.actor(), reader_id(id)?).await?;
    Ok(Json(with_count(&state.store, s).await?))
}

/// Quotes a CSV cell when needed and neutralises spreadsheet formulas.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r', '\'']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_line(out: &mut String, r: &ExportRow) {
    let cells = [
        r.card_no.as_str(),
        r.name.as_str(),
        r.category.name_zh.as_str(),
        r.affiliation.as_deref().unwrap_or(""),
        r.status.code(),
        r.email.as_deref().unwrap_or(""),
        r.mobile.as_deref().unwrap_or(""),
    ];
    out.push_str(&cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
}

/// The members as CSV (UTF-8 with BOM, so Excel reads Chinese), the export audited with its
/// count and who ran it. Shared by the page and the API.
pub(crate) async fn export_response(store: &Store, actor: &Actor, id: i64) -> Result<Response, AppError> {
    let mut out = String::from("\u{feff}card_no,name,category,affiliation,status,email,mobile\r\n");
    store.export_segment(actor, id, |r| csv_line(&mut out, &r)).await?;
    let disposition = format!("attachment; filename=\"segment-{id}.csv\"");
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ASCII header")),
        ],
        out,
    )
        .into_response())
}

/// Exports the members with full contact details (card_no, name, category, affiliation,
/// status, email, mobile). Also needs `readers.export`; written to the audit log.
#[utoipa::path(
    get, path = "/api/v1/segments/{id}/export.csv", tag = "segments",
    params(("id" = i64, Path, description = "Segment id")),
    responses(
        (status = 200, description = "CSV, UTF-8 with BOM", content_type = "text/csv"),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments or export readers", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
    )
)]
pub async fn export_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    user.require(Permission::SegmentsManage)?;
    user.require(Permission::ReadersExport)?;
    export_response(&state.store, &user.actor(), reader_id(id)?).await
}

/// Adds a tag to every member that lacks it (each reader's change audited). Also needs
/// `readers.edit`.
#[utoipa::path(
    post, path = "/api/v1/segments/{id}/tag", tag = "segments",
    params(("id" = i64, Path, description = "Segment id")),
    request_body(content = TagRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Tagged", body = ChangedBody),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments or edit readers", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 422, description = "A bad tag", body = ErrorBody),
    )
)]
pub async fn tag_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<ChangedBody>, AppError> {
    user.require(Permission::SegmentsManage)?;
    user.require(Permission::ReadersEdit)?;
    let id = reader_id(id)?;
    let ApiJson(body) = ApiJson::<TagRequest>::from_request(req, &state).await?;
    Ok(Json(ChangedBody { changed: state.store.tag_segment(&user.actor(), id, &body.tag).await? }))
}

/// Hands every member over to a new owner (or to none); the new owner is notified. Also needs
/// `readers.hand_over`.
#[utoipa::path(
    post, path = "/api/v1/segments/{id}/hand-over", tag = "segments",
    params(("id" = i64, Path, description = "Segment id")),
    request_body(content = HandOverRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Handed over", body = ChangedBody),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not manage segments or hand readers over", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 422, description = "No reason, or an unknown owner", body = ErrorBody),
    )
)]
pub async fn hand_over_segment(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<ChangedBody>, AppError> {
    user.require(Permission::SegmentsManage)?;
    user.require(Permission::ReadersHandOver)?;
    let id = reader_id(id)?;
    let ApiJson(body) = ApiJson::<HandOverRequest>::from_request(req, &state).await?;
    let owner = body.owner.as_deref().map(str::trim).filter(|o| !o.is_empty());
    Ok(Json(ChangedBody { changed: state.store.hand_over_segment(&user.actor(), id, owner, &body.reason).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("张三"), "张三");
    }

    #[test]
    fn member_params() {
        let p = MemberParams { sort: Some("card_no".into()), order: Some("desc".into()), ..Default::default() };
        let q = p.parse().unwrap();
        assert_eq!((q.sort, q.desc, q.page, q.per_page), (Some(ReaderSort::CardNo), true, 1, DEFAULT_PER_PAGE));
        let e = MemberParams { sort: Some("age".into()), per_page: Some("0".into()), ..Default::default() }.parse().unwrap_err();
        assert!(e.get("sort").is_some() && e.get("per_page").is_some(), "{e}");
    }
}
