//! Importing readers through the UI: the job list with the upload form, the mapping page, job
//! pages (progress, counts, rejections, undo), mapping profiles and source schedules.
//! Everything needs `ReadersImport`; schedules need `ImportSchedule`.

mod jobs;
mod mapping;
mod profiles;
mod sources;

use super::{render, see_other, Ctx, Opt};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::uploads::{self, UploadError, UploadWriter, UPLOAD_LIMIT};
use crate::AppState;
use askama::Template;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lector_domain::import::{ImportCounts, ImportOptions, JobStatus, ReaderField};
use lector_domain::role::Permission;
use lector_domain::Msg;
use lector_store::imports::ImportJob;
use lector_store::{Page, StoreError};
use serde::Deserialize;

pub use jobs::{provenance_rows, ProvenanceRow};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/imports", get(list))
        // Room for the form fields beside the largest file.
        .route("/imports/uploads", post(upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT + 1024 * 1024)))
        .merge(mapping::routes())
        .merge(jobs::routes())
        .merge(profiles::routes())
        .merge(sources::routes())
}

fn store_err(l: Lang) -> impl Fn(StoreError) -> PageError {
    move |e| PageError(e.into(), l)
}

/// A page answered with another status (a form shown again with its error).
fn with_status(status: StatusCode, r: Response) -> Response {
    (status, r).into_response()
}

/// A path id; anything but a number names no record.
fn job_id(raw: &str, l: Lang) -> Result<i64, PageError> {
    raw.parse().map_err(|_| PageError(AppError::NotFound, l))
}

/// One job in a list.
pub struct JobRow {
    pub id: i64,
    pub status_code: &'static str,
    pub status: String,
    pub source: String,
    pub label: String,
    pub format: String,
    pub dry_run: bool,
    pub counts: ImportCounts,
    pub by: String,
    pub at: String,
}

impl JobRow {
    fn new(j: &ImportJob, l: Lang) -> Self {
        JobRow {
            id: j.id,
            status_code: j.status.code(),
            status: l.msg(&j.status.label()),
            source: j.source.clone(),
            label: j.label.clone(),
            format: j.format.clone(),
            dry_run: j.dry_run,
            counts: j.counts,
            by: j.created_by.clone(),
            at: super::local_time(&j.created_at),
        }
    }
}

/// The import settings chosen on the upload form and carried to the mapping page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub source: String,
    /// A saved mapping profile's name (empty: detect from the headers).
    pub profile: String,
    /// A format code, empty to detect.
    pub format: String,
    pub options: ImportOptions,
}

impl Settings {
    /// Reads the settings from form or query pairs; unknown fields in `never` are skipped.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut s = Settings::default();
        for (k, v) in pairs {
            match k.as_str() {
                "source" => s.source = v.trim().to_string(),
                "profile" => s.profile = v.trim().to_string(),
                "format" => s.format = v.trim().to_string(),
                "update_only_present" => s.options.update_only_present = true,
                "deactivate_missing" => s.options.deactivate_missing = true,
                "all_or_nothing" => s.options.all_or_nothing = true,
                "never" => {
                    if let Ok(f) = ReaderField::parse(v) {
                        if !s.options.never_overwrite.contains(&f) {
                            s.options.never_overwrite.push(f);
                        }
                    }
                }
                _ => {}
            }
        }
        s
    }

    /// The query string `from_pairs` reads back.
    pub fn query(&self) -> String {
        let enc = crate::auth::urlencode;
        let mut q = format!("source={}&profile={}&format={}", enc(&self.source), enc(&self.profile), enc(&self.format));
        let o = &self.options;
        for (on, key) in [
            (o.update_only_present, "update_only_present"),
            (o.deactivate_missing, "deactivate_missing"),
            (o.all_or_nothing, "all_or_nothing"),
        ] {
            if on {
                q.push_str(&format!("&{key}=1"));
            }
        }
        for f in &o.never_overwrite {
            q.push_str(&format!("&never={}", f.code()));
        }
        q
    }

    fn never_opts(&self, l: Lang) -> Vec<Opt> {
        ReaderField::ALL
            .iter()
            .map(|f| Opt { value: f.code().into(), label: l.msg(&f.label()), selected: self.options.never_overwrite.contains(f) })
            .collect()
    }
}

/// What the upload form and the mapping page offer to pick from.
pub struct Choices {
    pub sources: Vec<String>,
    pub profiles: Vec<Opt>,
    pub formats: Vec<Opt>,
    pub never: Vec<Opt>,
}

impl Choices {
    async fn load(state: &AppState, settings: &Settings, l: Lang) -> Result<Self, PageError> {
        let err = store_err(l);
        let sources = state.store.import_sources().await.map_err(&err)?.into_iter().map(|s| s.name).collect();
        let profiles = state
            .store
            .mapping_profiles()
            .await
            .map_err(&err)?
            .into_iter()
            .map(|p| Opt { selected: p.name == settings.profile, value: p.name.clone(), label: p.name })
            .collect();
        let formats = uploads::FORMATS
            .iter()
            .map(|f| {
                let code = uploads::format_code(*f);
                Opt { selected: code == settings.format, label: code.clone(), value: code }
            })
            .collect();
        Ok(Choices { sources, profiles, formats, never: settings.never_opts(l) })
    }
}

#[derive(Template)]
#[template(path = "imports_list.html")]
struct ListPage {
    ctx: Ctx,
    error: Option<String>,
    jobs: Vec<JobRow>,
    page: Page<ImportJob>,
    prev: Option<String>,
    next: Option<String>,
    settings: Settings,
    choices: Choices,
}

#[derive(Deserialize)]
struct ListParams {
    page: Option<i64>,
    flash: Option<String>,
}

async fn list(State(state): State<AppState>, staff: Staff, Query(p): Query<ListParams>) -> Result<Response, PageError> {
    staff.require(Permission::ReadersImport)?;
    list_page(&state, &staff, p.page.unwrap_or(1), p.flash.as_deref(), None, Settings::default()).await
}

async fn list_page(
    state: &AppState,
    staff: &Staff,
    page: i64,
    flash: Option<&str>,
    error: Option<String>,
    settings: Settings,
) -> Result<Response, PageError> {
    let l = staff.lang;
    let page = state.store.import_jobs(page.max(1), 25).await.map_err(store_err(l))?;
    let view = ListPage {
        ctx: Ctx::staff(staff, "imports", "/imports").with_flash(flash),
        error,
        jobs: page.items.iter().map(|j| JobRow::new(j, l)).collect(),
        prev: (page.page > 1).then(|| format!("/imports?page={}", page.page - 1)),
        next: (page.page < page.pages()).then(|| format!("/imports?page={}", page.page + 1)),
        page,
        choices: Choices::load(state, &settings, l).await?,
        settings,
    };
    Ok(render(&view))
}

/// The form fields besides the file are short; a longer one is refused.
const FIELD_LIMIT: usize = 64 * 1024;

/// What went wrong reading the upload form.
enum Refused {
    TooLarge,
    Bad(Msg),
    Failed(AppError),
}

impl From<MultipartError> for Refused {
    fn from(e: MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refused::TooLarge
        } else {
            let t = e.body_text();
            Refused::Bad(Msg::new(format!("上传内容无法读取：{t}"), format!("the upload could not be read: {t}")))
        }
    }
}

impl From<UploadError> for Refused {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::TooLarge => Refused::TooLarge,
            UploadError::Io(e) => Refused::Failed(AppError::Internal(format!("saving an upload failed: {e}"))),
        }
    }
}

async fn field_text(mut field: Field<'_>) -> Result<String, Refused> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > FIELD_LIMIT {
            return Err(Refused::Bad(Msg::new("表单字段过长", "a form field is too long")));
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn save_file(state: &AppState, mut field: Field<'_>) -> Result<Option<uploads::Upload>, Refused> {
    let name = field.file_name().unwrap_or_default().to_string();
    let mut writer = UploadWriter::create(&state.data_dir, &name).await?;
    let mut size = 0;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                writer.discard().await;
                return Err(e.into());
            }
        };
        size += chunk.len();
        if let Err(e) = writer.write(&chunk).await {
            writer.discard().await;
            return Err(e.into());
        }
    }
    if size == 0 && name.is_empty() {
        // The form was sent without choosing a file.
        writer.discard().await;
        return Ok(None);
    }
    Ok(Some(writer.finish().await?))
}

/// Reads the upload form: its fields, its CSRF token and the file, saved as it streams in.
async fn read_form(
    state: &AppState,
    mp: &mut Multipart,
) -> Result<(Vec<(String, String)>, Option<String>, Option<uploads::Upload>), Refused> {
    let (mut pairs, mut csrf, mut upload) = (Vec::new(), None, None);
    while let Some(field) = mp.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" && upload.is_none() {
            upload = save_file(state, field).await?;
        } else if name == "csrf" {
            csrf = Some(field_text(field).await?);
        } else {
            pairs.push((name, field_text(field).await?));
        }
    }
    Ok((pairs, csrf, upload))
}

/// `POST /imports/uploads`: saves the file and goes on to its mapping page.
async fn upload(State(state): State<AppState>, staff: Staff, mp: Result<Multipart, MultipartRejection>) -> Result<Response, PageError> {
    staff.require(Permission::ReadersImport)?;
    let l = staff.lang;
    let mut mp = mp.map_err(|e| {
        let t = e.body_text();
        PageError(AppError::BadRequest(Msg::new(format!("请以文件上传表单提交：{t}"), format!("send the file upload form: {t}"))), l)
    })?;
    let (pairs, csrf, upload) = match read_form(&state, &mut mp).await {
        Ok(read) => read,
        Err(Refused::TooLarge) => {
            let page = list_page(&state, &staff, 1, None, Some(l.msg(&uploads::too_large())), Settings::default()).await?;
            return Ok(with_status(StatusCode::PAYLOAD_TOO_LARGE, page));
        }
        Err(Refused::Bad(m)) => return Err(PageError(AppError::BadRequest(m), l)),
        Err(Refused::Failed(e)) => return Err(PageError(e, l)),
    };
    if let Err(e) = staff.check_csrf(csrf.as_deref()) {
        if let Some(up) = upload {
            let _ = tokio::fs::remove_file(&up.path).await;
        }
        return Err(e);
    }
    let settings = Settings::from_pairs(&pairs);
    match upload {
        Some(up) => Ok(see_other(&format!("/imports/uploads/{}?{}", up.token, settings.query()))),
        None => {
            let error = l.msg(&Msg::new("请选择要导入的文件", "choose a file to import"));
            let page = list_page(&state, &staff, 1, None, Some(error), settings).await?;
            Ok(with_status(StatusCode::UNPROCESSABLE_ENTITY, page))
        }
    }
}

/// Whether a job is still to finish (its page refreshes itself).
fn in_progress(status: JobStatus) -> bool {
    matches!(status, JobStatus::Queued | JobStatus::Running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_query() {
        let s = Settings {
            source: "教务处 学生".into(),
            profile: "registrar".into(),
            format: "csv".into(),
            options: ImportOptions {
                update_only_present: true,
                never_overwrite: vec![ReaderField::Notes, ReaderField::Email],
                deactivate_missing: false,
                all_or_nothing: true,
            },
        };
        let pairs: Vec<(String, String)> = s
            .query()
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let bytes = v.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                (k.to_string(), String::from_utf8(out).unwrap())
            })
            .collect();
        assert_eq!(Settings::from_pairs(&pairs), s);
    }

    #[test]
    fn unknown_fields_are_not_kept() {
        let s = Settings::from_pairs(&[("never".into(), "password".into()), ("never".into(), "notes".into())]);
        assert_eq!(s.options.never_overwrite, vec![ReaderField::Notes]);
    }
}
