//! A reader's consent (授权) in the API: `GET/PUT /api/v1/readers/{id}/consents` and its history.
//!
//! Reading needs `readers.view`; recording a change (source `api`, audited) needs
//! `consent.manage`. Permissions are checked before the body is read.

use super::dto::ErrorBody;
use super::json::ApiJson;
use super::readers::{query_error, reader_id};
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::routing::get;
use axum::{Json, Router};
use lector_domain::messaging::{ChannelKind, ConsentSource, Purpose};
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::consent::{ConsentChange, ConsentMatrix};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Most cells one request may set (the whole matrix has 18).
const MAX_CHANGES: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/readers/{id}/consents", get(get_consents).put(put_consents))
        .route("/readers/{id}/consents/history", get(consent_history))
}

/// One purpose × channel cell of a reader's consent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentCellBody {
    /// `service`, `news` or `survey`.
    #[schema(example = "news")]
    pub purpose: String,
    /// `email`, `sms`, `wecom`, `dingtalk`, `qq` or `webhook`.
    #[schema(example = "email")]
    pub channel: String,
    pub granted: bool,
    /// The reader never answered: `granted` is the purpose's default (service notices yes,
    /// news and surveys no).
    pub is_default: bool,
    /// `portal`, `unsubscribe`, `staff`, `import` or `api`; absent for a default.
    pub source: Option<String>,
    /// RFC 3339, UTC; absent for a default.
    pub changed_at: Option<String>,
}

/// A reader's whole consent matrix.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentMatrixBody {
    pub reader_id: i64,
    pub cells: Vec<ConsentCellBody>,
}

/// One cell to set, or one that changed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChangeBody {
    #[schema(example = "news")]
    pub purpose: String,
    #[schema(example = "email")]
    pub channel: String,
    pub granted: bool,
}

/// The cells to set. A cell already so is left alone (no history entry, no audit row).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentUpdateBody {
    pub changes: Vec<ConsentChangeBody>,
}

/// What changed, and the matrix after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentUpdateResult {
    pub changed: Vec<ConsentChangeBody>,
    pub consents: ConsentMatrixBody,
}

/// One grant or withdrawal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentEventBody {
    pub id: i64,
    pub purpose: String,
    pub channel: String,
    pub granted: bool,
    pub source: String,
    /// Who made it: a user name, `reader:ID` (the reader on the portal), `unsubscribe` …
    pub actor: String,
    /// RFC 3339, UTC.
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentHistoryBody {
    /// Newest first.
    pub items: Vec<ConsentEventBody>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Most entries to return, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

fn matrix_body(m: &ConsentMatrix) -> ConsentMatrixBody {
    ConsentMatrixBody {
        reader_id: m.reader_id,
        cells: m
            .cells
            .iter()
            .map(|c| ConsentCellBody {
                purpose: c.purpose.code().into(),
                channel: c.channel.code().into(),
                granted: c.granted,
                is_default: c.is_default,
                source: c.source.map(|s| s.code().into()),
                changed_at: c.changed_at.clone(),
            })
            .collect(),
    }
}

fn exact<T: Copy>(all: &[T], code: impl Fn(T) -> &'static str, raw: &str) -> Option<T> {
    all.iter().copied().find(|v| code(*v) == raw)
}

fn parse_changes(body: &ConsentUpdateBody) -> Result<Vec<ConsentChange>, FieldErrors> {
    let mut errs = FieldErrors::default();
    if body.changes.is_empty() || body.changes.len() > MAX_CHANGES {
        errs.push("changes", Msg::new(format!("请给出 1 到 {MAX_CHANGES} 项更改"), format!("give 1 to {MAX_CHANGES} changes")));
    }
    let mut out = Vec::new();
    for (i, c) in body.changes.iter().enumerate() {
        let purpose = exact(Purpose::ALL, Purpose::code, &c.purpose);
        let channel = exact(ChannelKind::ALL, ChannelKind::code, &c.channel);
        if purpose.is_none() {
            errs.push(
                format!("changes[{i}].purpose"),
                Msg::new(
                    format!("未知用途“{}”，可选：service、news、survey", c.purpose),
                    format!("unknown purpose '{}'; use service, news or survey", c.purpose),
                ),
            );
        }
        if channel.is_none() {
            errs.push(
                format!("changes[{i}].channel"),
                Msg::new(
                    format!("未知渠道“{}”，可选：email、sms、wecom、dingtalk、qq、webhook", c.channel),
                    format!("unknown channel '{}'; use email, sms, wecom, dingtalk, qq or webhook", c.channel),
                ),
            );
        }
        if let (Some(purpose), Some(channel)) = (purpose, channel) {
            out.push(ConsentChange { purpose, channel, granted: c.granted });
        }
    }
    errs.finish(|| out)
}

/// A reader's consent per purpose and channel, with the source and time of each answer.
#[utoipa::path(
    get, path = "/api/v1/readers/{id}/consents", tag = "consent",
    params(("id" = i64, Path, description = "Reader id")),
    responses(
        (status = 200, description = "The consent matrix", body = ConsentMatrixBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not view readers", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
    )
)]
pub async fn get_consents(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ConsentMatrixBody>, AppError> {
    user.require(Permission::ReadersView)?;
    let id = reader_id(id)?;
    Ok(Json(matrix_body(&state.store.consent_matrix(id).await?)))
}

/// Records the reader's consent (source `api`): only cells that change are written, each with a
/// history entry, and the change is audited.
#[utoipa::path(
    put, path = "/api/v1/readers/{id}/consents", tag = "consent",
    params(("id" = i64, Path, description = "Reader id")),
    request_body(content = ConsentUpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "What changed, and the matrix after it", body = ConsentUpdateResult),
        (status = 400, description = "Not JSON, or an unknown or mistyped field", body = ErrorBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not record consent", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "An unknown purpose or channel, or no changes, each named in `fields`", body = ErrorBody),
    )
)]
pub async fn put_consents(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<ConsentUpdateResult>, AppError> {
    user.require(Permission::ConsentManage)?;
    let id = reader_id(id)?;
    let ApiJson(body) = ApiJson::<ConsentUpdateBody>::from_request(req, &state).await?;
    let changes = parse_changes(&body).map_err(AppError::Invalid)?;
    let done = state.store.set_consents(&user.actor(), id, &changes, ConsentSource::Api).await?;
    let matrix = state.store.consent_matrix(id).await?;
    Ok(Json(ConsentUpdateResult {
        changed: done
            .iter()
            .map(|c| ConsentChangeBody { purpose: c.purpose.code().into(), channel: c.channel.code().into(), granted: c.granted })
            .collect(),
        consents: matrix_body(&matrix),
    }))
}

/// The reader's grants and withdrawals, newest first.
#[utoipa::path(
    get, path = "/api/v1/readers/{id}/consents/history", tag = "consent",
    params(("id" = i64, Path, description = "Reader id"), HistoryParams),
    responses(
        (status = 200, description = "The history", body = ConsentHistoryBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not view readers", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
        (status = 422, description = "An invalid limit", body = ErrorBody),
    )
)]
pub async fn consent_history(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<ConsentHistoryBody>, AppError> {
    user.require(Permission::ReadersView)?;
    let id = reader_id(id)?;
    let Query(p) = query.map_err(query_error)?;
    let mut errs = FieldErrors::default();
    let limit = super::readers::page_number(&mut errs, "limit", &p.limit, 100, 1000);
    if !errs.is_empty() {
        return Err(AppError::Invalid(errs));
    }
    // A reader that does not exist is a 404, not an empty history.
    state.store.consent_matrix(id).await?;
    let items = state.store.consent_history(id, limit).await?;
    Ok(Json(ConsentHistoryBody {
        items: items
            .into_iter()
            .map(|e| ConsentEventBody {
                id: e.id,
                purpose: e.purpose.code().into(),
                channel: e.channel.code().into(),
                granted: e.granted,
                source: e.source.code().into(),
                actor: e.actor,
                at: e.at,
            })
            .collect(),
    }))
}

/// This module's part of the OpenAPI document (merged into [`super::ApiDoc`]).
#[derive(OpenApi)]
#[openapi(
    paths(get_consents, put_consents, consent_history),
    components(schemas(ConsentCellBody, ConsentMatrixBody, ConsentChangeBody, ConsentUpdateBody, ConsentUpdateResult, ConsentEventBody, ConsentHistoryBody)),
    tags((name = "consent", description = "Consent (授权): per reader, purpose and channel, with its history")),
)]
pub struct Doc;
