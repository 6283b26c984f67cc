//! `/api/v1/imports`: upload a file as an import job (202, run by the server's worker), list
//! and read jobs with progress, their rejections, undo; and a reader's provenance.
//!
//! Imports need `readers.import`; provenance needs `readers.view`. Permissions are checked
//! before any body is read.

use super::dto::ErrorBody;
use super::json::bad_request;
use super::readers::{page_number, query_error, reader_id, DEFAULT_PER_PAGE, MAX_PER_PAGE};
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::uploads::{self, UploadError, UploadWriter, UPLOAD_LIMIT};
use crate::AppState;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{CONTENT_LENGTH, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use lector_domain::import::{ImportCounts, ImportOptions, JobStatus, ReaderField, Rejection};
use lector_domain::role::Permission;
use lector_domain::{FieldErrors, Msg};
use lector_store::imports::{ImportJob, Provenance};
use lector_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/imports", get(list_imports).post(create_import))
        .route("/imports/{id}", get(get_import))
        .route("/imports/{id}/rejections", get(import_rejections))
        .route("/imports/{id}/undo", post(undo_import))
        .route("/readers/{id}/provenance", get(reader_provenance))
}

// ---- bodies ----

/// A message in both languages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub message: String,
    pub message_zh: String,
}

impl From<&Msg> for MessageBody {
    fn from(m: &Msg) -> Self {
        MessageBody { message: m.en.clone(), message_zh: m.zh.clone() }
    }
}

/// What an import does to readers that already exist.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOptionsBody {
    /// Blank cells leave stored values as they are.
    pub update_only_present: bool,
    /// Fields set when a reader is created and never changed by an import afterwards.
    #[schema(example = json!(["notes"]))]
    pub never_overwrite: Vec<String>,
    /// Readers this source brought in earlier but no longer lists are deactivated.
    pub deactivate_missing: bool,
    /// Any rejected row means nothing is written (the job fails).
    pub all_or_nothing: bool,
}

impl From<&ImportOptions> for ImportOptionsBody {
    fn from(o: &ImportOptions) -> Self {
        ImportOptionsBody {
            update_only_present: o.update_only_present,
            never_overwrite: o.never_overwrite.iter().map(|f| f.code().to_string()).collect(),
            deactivate_missing: o.deactivate_missing,
            all_or_nothing: o.all_or_nothing,
        }
    }
}

/// What a job did (or, for a dry run, would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportCountsBody {
    /// Rows read from the source.
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows new to this source that joined a reader already in the store (same card number).
    pub merged: u64,
    pub rejected: u64,
    pub deactivated: u64,
}

impl From<ImportCounts> for ImportCountsBody {
    fn from(c: ImportCounts) -> Self {
        ImportCountsBody {
            rows: c.rows,
            created: c.created,
            updated: c.updated,
            unchanged: c.unchanged,
            merged: c.merged,
            rejected: c.rejected,
            deactivated: c.deactivated,
        }
    }
}

/// An import job (导入任务). How it reads its source is not shown (it may name server paths).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportJobBody {
    pub id: i64,
    /// The source's name (数据源).
    #[schema(example = "registrar")]
    pub source: String,
    #[schema(example = "csv")]
    pub format: String,
    /// The uploaded file's name.
    #[schema(example = "students-2026.csv")]
    pub label: String,
    pub dry_run: bool,
    /// `queued`, `running`, `succeeded`, `failed` or `undone`.
    #[schema(example = "queued")]
    pub status: String,
    pub options: ImportOptionsBody,
    pub counts: ImportCountsBody,
    /// Why the job failed.
    pub error: Option<MessageBody>,
    /// User name of who started it (`scheduler` for a scheduled re-sync).
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub undone_at: Option<String>,
    /// Rows read so far, while the job runs in the server that answers.
    pub progress: Option<u64>,
}

impl From<&ImportJob> for ImportJobBody {
    fn from(j: &ImportJob) -> Self {
        ImportJobBody {
            id: j.id,
            source: j.source.clone(),
            format: j.format.clone(),
            label: j.label.clone(),
            dry_run: j.dry_run,
            status: j.status.code().to_string(),
            options: (&j.options).into(),
            counts: j.counts.into(),
            error: j.error.as_ref().map(Into::into),
            created_by: j.created_by.clone(),
            created_at: j.created_at.clone(),
            started_at: j.started_at.clone(),
            finished_at: j.finished_at.clone(),
            undone_at: j.undone_at.clone(),
            progress: (j.status == JobStatus::Running).then(|| lector_import::runner::progress(j.id)).flatten(),
        }
    }
}

/// A page of import jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportJobPage {
    pub items: Vec<ImportJobBody>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl From<Page<ImportJob>> for ImportJobPage {
    fn from(p: Page<ImportJob>) -> Self {
        ImportJobPage { items: p.items.iter().map(Into::into).collect(), total: p.total, page: p.page, per_page: p.per_page }
    }
}

/// A row that could not be imported.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionBody {
    /// Row number in the source as a user counts it (the header is row 1).
    pub row: u64,
    /// The source column (header), empty when the whole row is the problem.
    #[schema(example = "手机")]
    pub column: String,
    pub value: String,
    pub reason: String,
    pub reason_zh: String,
}

impl From<&Rejection> for RejectionBody {
    fn from(r: &Rejection) -> Self {
        RejectionBody {
            row: r.row,
            column: r.column.clone(),
            value: r.value.clone(),
            reason: r.reason.en.clone(),
            reason_zh: r.reason.zh.clone(),
        }
    }
}

/// Which source and import job last set a field of a reader, and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvenanceBody {
    /// A reader field code (`name`, `email` …).
    #[schema(example = "email")]
    pub field: String,
    pub source: String,
    /// The reader's id in that source.
    pub external_id: String,
    pub job_id: i64,
    pub at: String,
}

impl From<Provenance> for ProvenanceBody {
    fn from(p: Provenance) -> Self {
        ProvenanceBody { field: p.field.code().to_string(), source: p.source, external_id: p.external_id, job_id: p.job_id, at: p.at }
    }
}

// ---- parameters ----

/// The query of `POST /api/v1/imports`; the body is the file itself.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The source's name (数据源), e.g. `registrar`; created on first use. Required.
    pub source: Option<String>,
    /// `csv`, `tsv`, `xlsx`, `xls`, `json`, `ndjson`, `koha` or `folio`; detected when absent.
    pub format: Option<String>,
    /// `true` to only report what would happen (nothing is written).
    #[param(value_type = Option<bool>)]
    pub dry_run: Option<String>,
    /// A saved mapping profile's name; without it, columns are recognised by their headers.
    pub profile: Option<String>,
    #[param(value_type = Option<bool>)]
    pub update_only_present: Option<String>,
    #[param(value_type = Option<bool>)]
    pub deactivate_missing: Option<String>,
    #[param(value_type = Option<bool>)]
    pub all_or_nothing: Option<String>,
    /// Field codes never overwritten after creation, comma-separated (`notes,email`).
    pub never_overwrite: Option<String>,
    /// The file's name (its extension helps detect the format); kept as the job's label.
    pub file_name: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn flag(errs: &mut FieldErrors, field: &str, v: &Option<String>) -> bool {
    match given(v) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            errs.push(
                field,
                Msg::new(format!("{field} 应为 true 或 false，而不是“{other}”"), format!("{field} must be true or false, not '{other}'")),
            );
            false
        }
    }
}

/// What an upload asks for, parsed.
struct Upload {
    source: String,
    format: Option<lector_import::Format>,
    dry_run: bool,
    profile: Option<String>,
    options: ImportOptions,
    file_name: String,
}

impl UploadParams {
    fn parse(&self) -> Result<Upload, FieldErrors> {
        let mut errs = FieldErrors::default();
        let source = given(&self.source).unwrap_or_default().to_string();
        if source.is_empty() {
            errs.push(
                "source",
                Msg::new("缺少 source：请给出数据源名称，如 registrar", "source is missing: name the source, e.g. registrar"),
            );
        }
        let format = given(&self.format).and_then(|f| errs.take("format", uploads::parse_format(f))).flatten();
        let mut never_overwrite = Vec::new();
        for code in given(&self.never_overwrite).unwrap_or_default().split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if let Some(f) = errs.take("never_overwrite", ReaderField::parse(code)) {
                never_overwrite.push(f);
            }
        }
        let options = ImportOptions {
            update_only_present: flag(&mut errs, "update_only_present", &self.update_only_present),
            never_overwrite,
            deactivate_missing: flag(&mut errs, "deactivate_missing", &self.deactivate_missing),
            all_or_nothing: flag(&mut errs, "all_or_nothing", &self.all_or_nothing),
        };
        let dry_run = flag(&mut errs, "dry_run", &self.dry_run);
        errs.finish(|| Upload {
            source,
            format,
            dry_run,
            profile: given(&self.profile).map(str::to_string),
            options,
            file_name: given(&self.file_name).unwrap_or("upload").to_string(),
        })
    }
}

/// `page` and `per_page` of a list: from 1, at most 200 per page (default 20).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

impl PageParams {
    pub fn parse(&self) -> Result<(i64, i64), AppError> {
        let mut errs = FieldErrors::default();
        let page = page_number(&mut errs, "page", &self.page, 1, i64::from(i32::MAX));
        let per_page = page_number(&mut errs, "per_page", &self.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE);
        errs.finish(|| (page, per_page)).map_err(AppError::Invalid)
    }
}

fn invalid(field: &str, m: Msg) -> AppError {
    let mut e = FieldErrors::default();
    e.push(field, m);
    AppError::Invalid(e)
}

/// 413 with the upload limit in the message.
fn too_large() -> Response {
    let m = uploads::too_large();
    let body = serde_json::json!({"error": {"code": "payload_too_large", "message": m.en, "message_zh": m.zh, "fields": []}});
    (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response()
}

/// Streams the request body to a new upload; `Ok(None)` when it is over the limit.
async fn save_body(state: &AppState, file_name: &str, body: Body) -> Result<Option<uploads::Upload>, AppError> {
    let internal = |e: std::io::Error| AppError::Internal(format!("saving an upload failed: {e}"));
    let mut writer = UploadWriter::create(&state.data_dir, file_name).await.map_err(|e| match e {
        UploadError::Io(e) => internal(e),
        UploadError::TooLarge => AppError::Internal("an empty upload cannot be too large".into()),
    })?;
    let mut body = body;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                writer.discard().await;
                return Err(bad_request(format!("上传中断：{e}"), format!("the upload broke off: {e}")));
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        match writer.write(&data).await {
            Ok(()) => {}
            Err(UploadError::TooLarge) => {
                writer.discard().await;
                return Ok(None);
            }
            Err(UploadError::Io(e)) => {
                writer.discard().await;
                return Err(internal(e));
            }
        }
    }
    writer.finish().await.map(Some).map_err(|e| match e {
        UploadError::Io(e) => internal(e),
        UploadError::TooLarge => AppError::Internal("finishing an upload cannot exceed the limit".into()),
    })
}

// ---- handlers ----

/// Uploads a file and queues its import (or a dry run). Needs `readers.import`. The body is
/// the file itself (up to 200 MiB, any content type); the file is checked (readable, the
/// mapping fits its headers) before the job is queued, and the server's worker runs it: poll
/// `GET /api/v1/imports/{id}` until `status` is `succeeded` or `failed`.
#[utoipa::path(
    post, path = "/api/v1/imports", tag = "imports",
    params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file: CSV/TSV (any common encoding), xlsx/xls, JSON, NDJSON, Koha CSV or FOLIO JSON"),
    responses(
        (status = 202, description = "Queued", body = ImportJobBody, headers(("Location" = String, description = "/api/v1/imports/{id}"))),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not import readers", body = ErrorBody),
        (status = 413, description = "The file is over 200 MiB", body = ErrorBody),
        (status = 422, description = "A bad parameter, an unreadable file, or a mapping that does not fit (named in `fields`)", body = ErrorBody),
    )
)]
pub async fn create_import(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<UploadParams>, QueryRejection>,
    req: Request,
) -> Result<Response, AppError> {
    user.require(Permission::ReadersImport)?;
    let Query(params) = query.map_err(query_error)?;
    let up = params.parse().map_err(AppError::Invalid)?;
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > UPLOAD_LIMIT) {
        return Ok(too_large());
    }
    let profile = match &up.profile {
        None => None,
        Some(name) => match state.store.mapping_profile(name).await {
            Ok(p) => Some(p.toml),
            Err(lector_store::StoreError::NotFound) => {
                return Err(invalid(
                    "profile",
                    Msg::new(format!("没有名为“{name}”的映射方案"), format!("there is no mapping profile named '{name}'")),
                ))
            }
            Err(e) => return Err(e.into()),
        },
    };
    let Some(upload) = save_body(&state, &up.file_name, req.into_body()).await? else {
        return Ok(too_large());
    };
    match queue(&state, &user, &upload, up, profile).await {
        Ok(job) => {
            let location = HeaderValue::from_str(&format!("/api/v1/imports/{}", job.id)).map_err(|e| AppError::Internal(e.to_string()))?;
            Ok((StatusCode::ACCEPTED, [(LOCATION, location)], Json(ImportJobBody::from(&job))).into_response())
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&upload.path).await;
            Err(e)
        }
    }
}

/// Checks the saved file and queues its job.
async fn queue(
    state: &AppState,
    user: &ApiUser,
    upload: &uploads::Upload,
    up: Upload,
    profile: Option<String>,
) -> Result<ImportJob, AppError> {
    if tokio::fs::metadata(&upload.path).await.map(|m| m.len() == 0).unwrap_or(true) {
        return Err(invalid(
            "body",
            Msg::new("请求体为空：请把文件内容作为请求体发送", "the body is empty: send the file as the request body"),
        ));
    }
    let sample = uploads::sample(&upload.path, up.format, 1).await.map_err(|m| invalid("body", m))?;
    let toml = match profile {
        Some(t) => t,
        None => sample.profile.to_toml(),
    };
    uploads::check_profile(state, &toml, &sample.headers).await?.map_err(|m| invalid("profile", m))?;
    let new = uploads::file_job(upload, &up.source, sample.format, Some(toml), up.options, up.dry_run)?;
    Ok(state.store.create_import_job(&user.actor(), &new, JobStatus::Queued).await?)
}

/// Import jobs, newest first. Needs `readers.import`.
#[utoipa::path(
    get, path = "/api/v1/imports", tag = "imports",
    params(PageParams),
    responses(
        (status = 200, description = "A page of jobs", body = ImportJobPage),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not import readers", body = ErrorBody),
        (status = 422, description = "A bad page parameter", body = ErrorBody),
    )
)]
pub async fn list_imports(
    State(state): State<AppState>,
    user: ApiUser,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ImportJobPage>, AppError> {
    user.require(Permission::ReadersImport)?;
    let Query(p) = query.map_err(query_error)?;
    let (page, per_page) = p.parse()?;
    Ok(Json(state.store.import_jobs(page, per_page).await?.into()))
}

/// One job with its counts and, while it runs, its progress. Needs `readers.import`.
#[utoipa::path(
    get, path = "/api/v1/imports/{id}", tag = "imports",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = ImportJobBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not import readers", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn get_import(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ImportJobBody>, AppError> {
    user.require(Permission::ReadersImport)?;
    let id = reader_id(id)?;
    Ok(Json((&state.store.import_job(id).await?).into()))
}

/// Every rejected row of a job (up to 100 000 are kept). Needs `readers.import`.
#[utoipa::path(
    get, path = "/api/v1/imports/{id}/rejections", tag = "imports",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The rejected rows, by row", body = [RejectionBody]),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not import readers", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn import_rejections(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<RejectionBody>>, AppError> {
    user.require(Permission::ReadersImport)?;
    let id = reader_id(id)?;
    let job = state.store.import_job(id).await?;
    Ok(Json(state.store.import_rejections(job.id).await?.iter().map(Into::into).collect()))
}

/// Undoes a job: readers it created are removed, readers it changed are restored. Needs
/// `readers.import`. Refused (409) for a dry run, a job that did not succeed, one already
/// undone, or while a later job changed the same readers.
#[utoipa::path(
    post, path = "/api/v1/imports/{id}/undo", tag = "imports",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "Undone", body = ImportJobBody),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not import readers", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job cannot be undone (the message says why)", body = ErrorBody),
    )
)]
pub async fn undo_import(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ImportJobBody>, AppError> {
    user.require(Permission::ReadersImport)?;
    let id = reader_id(id)?;
    Ok(Json((&state.store.undo_import_job(&user.actor(), id).await?).into()))
}

/// Which source and import job set each field of a reader, and when. Needs `readers.view`.
#[utoipa::path(
    get, path = "/api/v1/readers/{id}/provenance", tag = "imports",
    params(("id" = i64, Path, description = "Reader id")),
    responses(
        (status = 200, description = "One entry per field an import set", body = [ProvenanceBody]),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "The role may not view readers", body = ErrorBody),
        (status = 404, description = "No such reader", body = ErrorBody),
    )
)]
pub async fn reader_provenance(
    State(state): State<AppState>,
    user: ApiUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<ProvenanceBody>>, AppError> {
    user.require(Permission::ReadersView)?;
    let id = reader_id(id)?;
    let reader = state.store.reader(id).await?;
    Ok(Json(state.store.reader_provenance(reader.id).await?.into_iter().map(Into::into).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_params_name_each_problem() {
        let p = UploadParams {
            source: Some(" ".into()),
            format: Some("docx".into()),
            dry_run: Some("maybe".into()),
            never_overwrite: Some("notes,password".into()),
            ..Default::default()
        };
        let errs = p.parse().err().unwrap();
        for field in ["source", "format", "dry_run", "never_overwrite"] {
            assert!(errs.get(field).is_some(), "{field}: {errs:?}");
        }
        let ok = UploadParams {
            source: Some("registrar".into()),
            dry_run: Some("true".into()),
            never_overwrite: Some("notes, email".into()),
            ..Default::default()
        }
        .parse()
        .unwrap();
        assert!(ok.dry_run && ok.format.is_none());
        assert_eq!(ok.options.never_overwrite, vec![ReaderField::Notes, ReaderField::Email]);
        assert_eq!(ok.file_name, "upload");
    }
}
