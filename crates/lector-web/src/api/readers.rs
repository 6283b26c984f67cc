//! `/api/v1/readers`: list and search, read, create, update, delete; and `/api/v1/me`.
//!
//! Every handler checks its permission before it parses a body or loads a record, so a 403
//! says nothing about whether the record exists.

use super::dto::{self, ErrorBody, Me, Reader, ReaderDraftBody, ReaderPage, ReaderUpdateBody};
use super::json::{bad_request, ApiJson};
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::{ETAG, IF_MATCH, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lector_domain::reader::{CardNo, ReaderDraft, ReaderStatus};
use lector_domain::role::Permission;
use lector_domain::search::SearchTerm;
use lector_domain::{FieldErrors, Msg};
use lector_store::audit::Change;
use lector_store::readers::{ReaderQuery, ReaderRecord, ReaderSort};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_PER_PAGE: i64 = 20;
pub const MAX_PER_PAGE: i64 = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/readers", get(list_readers).post(create_reader))
        .route("/readers/{id}", get(get_reader).put(update_reader).delete(delete_reader))
        .route("/readers/by-card/{card_no}", get(get_reader_by_card))
}

/// Sort keys of the reader list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    Name,
    CardNo,
    Updated,
    Created,
}

/// Sort direction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// Filters, sort and page of `GET /api/v1/readers`. Empty values are ignored.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Search: a card number prefix, a name fragment (张晓), pinyin or its initials (zxm,
    /// zhangxiao), an email address, or a mobile/phone/QQ number.
    pub q: Option<String>,
    /// Category code, e.g. `undergraduate`.
    pub category: Option<String>,
    /// Exact affiliation (单位 / 院系).
    pub affiliation: Option<String>,
    pub tag: Option<String>,
    #[param(value_type = Option<dto::ReaderStatusCode>)]
    pub status: Option<String>,
    /// User name of the responsible staff member.
    pub owner: Option<String>,
    /// Default: `name` when searching (`q`), `updated` otherwise.
    #[param(value_type = Option<SortKey>)]
    pub sort: Option<String>,
    /// Default: `desc` for `updated` and `created`, `asc` for `name` and `card_no`.
    #[param(value_type = Option<SortOrder>)]
    pub order: Option<String>,
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// Rows per page, 1 to 200 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A page number or page size from the query: 1 to `max`, `default` when absent; a bad value is
/// named in `errs` (and `default` stands in so the other parameters are still checked).
pub(crate) fn page_number(errs: &mut FieldErrors, field: &str, v: &Option<String>, default: i64, max: i64) -> i64 {
    match given(v) {
        None => default,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errs.push(
                    field,
                    Msg::new(
                        format!("{field} 应为 1 到 {max} 之间的整数，而不是“{s}”"),
                        format!("{field} must be a whole number from 1 to {max}, not '{s}'"),
                    ),
                );
                default
            }
        },
    }
}

impl ListParams {
    /// The store query, or every invalid parameter named.
    pub fn parse(&self) -> Result<ReaderQuery, FieldErrors> {
        let mut errs = FieldErrors::default();
        let status = given(&self.status).and_then(|s| errs.take("status", ReaderStatus::parse(s)));
        let sort = given(&self.sort).and_then(|s| {
            let parsed = ReaderSort::parse(s).ok_or_else(|| {
                Msg::new(
                    format!("排序方式“{s}”无效，可选：name、card_no、updated、created"),
                    format!("sort '{s}' is invalid; use name, card_no, updated or created"),
                )
            });
            errs.take("sort", parsed)
        });
        let desc = match given(&self.order) {
            None => matches!(sort, Some(ReaderSort::Updated | ReaderSort::Created)),
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
        errs.finish(|| ReaderQuery {
            q: self.q.as_deref().and_then(SearchTerm::parse),
            category: given(&self.category).map(str::to_string),
            affiliation: given(&self.affiliation).map(str::to_string),
            tag: given(&self.tag).map(str::to_string),
            status,
            owner: given(&self.owner).map(str::to_string),
            sort,
            desc,
            page,
            per_page,
        })
    }
}

/// The query of `DELETE /api/v1/readers/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// The version the deletion is based on; a stale version is refused with 409. Without it
    /// the reader is deleted whatever its version.
    #[param(value_type = Option<i64>)]
    pub version: Option<String>,
}

pub(crate) fn query_error(e: QueryRejection) -> AppError {
    let t = e.body_text();
    bad_request(format!("查询参数无效：{t}"), format!("invalid query string: {t}"))
}

/// A path id: a malformed one names no record, so it is a 404 like a missing one.
pub(crate) fn reader_id(path: Result<Path<String>, PathRejection>) -> Result<i64, AppError> {
    let Path(raw) = path.map_err(|e| {
        let t = e.body_text();
        bad_request(format!("路径参数无效：{t}"), format!("invalid path parameter: {t}"))
    })?;
    raw.parse::<i64>().map_err(|_| AppError::NotFound)
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes are a valid header value")
}

/// Which contact details a single-record read shows.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ShowParams {
    /// `full` shows contact details unmasked: needs `readers.contacts`, and the viewing is written
    /// to the audit log. Without it contact details are masked for everyone, so plain lookups
    /// stay reads.
    contacts: Option<String>,
}

/// The record as this request may see it: masked unless `?contacts=full`, which needs
/// [`Permission::ReadersContacts`] and is audited.
async fn shown(state: &AppState, user: &ApiUser, record: ReaderRecord, params: &ShowParams) -> Result<Reader, AppError> {
    let full = match params.contacts.as_deref() {
        None | Some("") | Some("masked") => false,
        Some("full") => true,
        Some(other) => {
            let mut f = FieldErrors::default();
            f.push(
                "contacts",
                Msg::new(
                    format!("contacts 只能是 full 或 masked，而不是“{other}”"),
                    format!("contacts must be full or masked, not '{other}'"),
                ),
            );
            return Err(AppError::Invalid(f));
        }
    };
    if full {
        user.require(Permission::ReadersContacts)?;
        state
            .store
            .audit_access(
                &user.actor(),
                Change {
                    action: "reader.view_contacts",
                    entity: "reader",
                    entity_id: Some(record.id.to_string()),
                    summary: format!("{} {} (API)", record.card_no, record.name),
                    before: None,
                    after: None,
                },
            )
            .await?;
    }
    Ok(Reader::from_record(record, full))
}

fn record_response(status: StatusCode, reader: Reader) -> Response {
    let tag = etag(reader.version);
    (status, [(ETAG, tag)], Json(reader)).into_response()
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// The signed-in user behind the token.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "me",
    responses(
        (status = 200, description = "The token's user", body = Me),
        (status = 401, description = "No or invalid token", body = ErrorBody),
    )
)]
pub async fn me(user: ApiUser) -> Json<Me> {
    Json(user.user.into())
}

/// Lists and searches readers. Needs `readers.view`.
#[utoipa::path(
    get, path = "/api/v1/readers", tag = "readers",
    params(ListParams),
    responses(
        (status = 200, description = "A page of readers", body = ReaderPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not view readers", body = ErrorBody),
        (status = 422, description = "An invalid parameter, named in `fields`", body = ErrorBody),
    )
)]
pub async fn list_readers(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ReaderPage>, AppError> {
    user.require(Permission::ReadersView)?;
    let Query(params) = query.map_err(query_error)?;
    let q = params.parse().map_err(AppError::Invalid)?;
    let page = state.store.readers(&q).await?;
    Ok(Json(page.into()))
}

/// One reader's whole record. Needs `readers.view`; contact details are masked unless
/// `?contacts=full`, which needs `readers.contacts` and is written to the audit log.
#[utoipa::path(
    get, path = "/api/v1/readers/{id}", tag = "readers",
    params(("id" = i64, Path, description = "Reader id"), ShowParams),
    responses(
        (status = 200, description = "The record; `ETag` carries its version", body = Reader,
            headers(("ETag" = String, description = "The record's version, quoted"))),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not view readers (or their full contact details)", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
    )
)]
pub async fn get_reader(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    Query(show): Query<ShowParams>,
) -> Result<Response, AppError> {
    user.require(Permission::ReadersView)?;
    let id = reader_id(id)?;
    let record = state.store.reader(id).await?;
    Ok(record_response(StatusCode::OK, shown(&state, &user, record, &show).await?))
}

/// One reader's whole record by card number (one store query). Same rules as by id.
#[utoipa::path(
    get, path = "/api/v1/readers/by-card/{card_no}", tag = "readers",
    params(("card_no" = String, Path, description = "Card number (读者证号); case and full-width digits do not matter"), ShowParams),
    responses(
        (status = 200, description = "The record", body = Reader,
            headers(("ETag" = String, description = "The record's version, quoted"))),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not view readers", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
    )
)]
pub async fn get_reader_by_card(
    State(state): State<AppState>,
    user: ApiUser,
    card: Result<Path<String>, PathRejection>,
    Query(show): Query<ShowParams>,
) -> Result<Response, AppError> {
    user.require(Permission::ReadersView)?;
    let Path(raw) =
        card.map_err(|e| bad_request(format!("路径参数无效：{}", e.body_text()), format!("invalid path parameter: {}", e.body_text())))?;
    let card = CardNo::parse(&raw).map_err(|_| AppError::NotFound)?;
    let record = state.store.reader_by_card(card.as_str()).await?;
    Ok(record_response(StatusCode::OK, shown(&state, &user, record, &show).await?))
}

/// Creates a reader. Needs `readers.edit`.
#[utoipa::path(
    post, path = "/api/v1/readers", tag = "readers",
    request_body(content = ReaderDraftBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Reader,
            headers(("Location" = String, description = "/api/v1/readers/{id}"), ("ETag" = String, description = "The record's version, quoted"))),
        (status = 400, description = "Not JSON, or an unknown or mistyped field (named in the message)", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not edit readers", body = ErrorBody),
        (status = 409, description = "The card number is taken", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid values, each named in `fields`", body = ErrorBody),
    )
)]
pub async fn create_reader(State(state): State<AppState>, user: ApiUser, req: Request) -> Result<Response, AppError> {
    user.require(Permission::ReadersEdit)?;
    let ApiJson(draft) = ApiJson::<ReaderDraft>::from_request(req, &state).await?;
    let input = draft.parse(today()).map_err(AppError::Invalid)?;
    let record = state.store.create_reader(&user.actor(), &input).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/readers/{}", record.id)).expect("a path of digits is a valid header value");
    let reader = Reader::from_record(record, user.user.role.can(Permission::ReadersContacts));
    let mut resp = record_response(StatusCode::CREATED, reader);
    resp.headers_mut().insert(LOCATION, location);
    Ok(resp)
}

/// The version an update is based on: `version` in the body, else the `If-Match` header.
fn expected_version(body: &mut Map<String, Value>, headers: &HeaderMap) -> Result<i64, AppError> {
    let from_header = match headers.get(IF_MATCH) {
        None => None,
        Some(v) => {
            let raw = v.to_str().unwrap_or_default().trim();
            let tag = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
            match tag.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(bad_request(
                        format!("If-Match 应为记录的版本号，如 \"3\"，而不是 {raw}"),
                        format!("If-Match must carry the record's version, e.g. \"3\", not {raw}"),
                    ))
                }
            }
        }
    };
    let from_body = match body.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) => Some(n),
            None => return Err(bad_request(format!("version 应为整数，而不是 {v}"), format!("version: expected a whole number, not {v}"))),
        },
    };
    match (from_body, from_header) {
        (Some(b), Some(h)) if b != h => Err(bad_request(
            format!("请求体中的 version（{b}）与 If-Match（{h}）不一致"),
            format!("version in the body ({b}) and If-Match ({h}) differ"),
        )),
        (Some(v), _) | (None, Some(v)) => Ok(v),
        (None, None) => Err(bad_request(
            "缺少字段 `version`：请提供你编辑的记录版本（或使用 If-Match 头）",
            "missing field `version`: send the version of the record you edited (or an If-Match header)",
        )),
    }
}

/// Replaces a reader's record. Needs `readers.edit`. The body is the record as in `POST` plus
/// the `version` it was based on (or that version in `If-Match`); a stale version is refused
/// with 409 and nothing is written.
#[utoipa::path(
    put, path = "/api/v1/readers/{id}", tag = "readers",
    params(
        ("id" = i64, Path, description = "Reader id"),
        ("If-Match" = Option<String>, Header, description = "The version, as the `ETag` of a GET returned it (\"3\"); an alternative to `version` in the body"),
    ),
    request_body(content = ReaderUpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated; `version` has increased", body = Reader,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "Not JSON, an unknown or mistyped field, or no version", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not edit readers", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
        (status = 409, description = "Stale version, or the card number is taken", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid values, each named in `fields`", body = ErrorBody),
    )
)]
pub async fn update_reader(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, AppError> {
    user.require(Permission::ReadersEdit)?;
    let id = reader_id(id)?;
    let headers = req.headers().clone();
    let ApiJson(mut body) = ApiJson::<Map<String, Value>>::from_request(req, &state).await?;
    let version = expected_version(&mut body, &headers)?;
    let bytes = serde_json::to_vec(&body).map_err(|e| AppError::Internal(e.to_string()))?;
    let ApiJson(draft) = ApiJson::<ReaderDraft>::from_bytes(&bytes)?;
    let input = draft.parse(today()).map_err(AppError::Invalid)?;
    let record = state.store.update_reader(&user.actor(), id, version, &input).await?;
    let reader = Reader::from_record(record, user.user.role.can(Permission::ReadersContacts));
    Ok(record_response(StatusCode::OK, reader))
}

/// Deletes a reader (the full record stays in the audit log). Needs `readers.delete`.
#[utoipa::path(
    delete, path = "/api/v1/readers/{id}", tag = "readers",
    params(("id" = i64, Path, description = "Reader id"), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not delete readers", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
        (status = 409, description = "Stale version", body = ErrorBody),
        (status = 422, description = "`version` is not a whole number", body = ErrorBody),
    )
)]
pub async fn delete_reader(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DeleteParams>, QueryRejection>,
) -> Result<StatusCode, AppError> {
    user.require(Permission::ReadersDelete)?;
    let id = reader_id(id)?;
    let Query(params) = query.map_err(query_error)?;
    let version = match given(&params.version) {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            let mut errs = FieldErrors::default();
            errs.push("version", Msg::new(format!("version 应为整数，而不是“{v}”"), format!("version must be a whole number, not '{v}'")));
            AppError::Invalid(errs)
        })?),
    };
    state.store.delete_reader(&user.actor(), id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}
