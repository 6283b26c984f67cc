//! One import job: status, progress, counts, rejections and their CSV report; running a
//! previewed import for real; undo (with a confirmation step). Also the reader page's
//! provenance rows.

use super::{in_progress, job_id, store_err, JobRow};
use crate::auth::{PageError, Staff};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::pages::{local_time, render, see_other, CsrfForm, Ctx};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lector_domain::import::{JobStatus, Rejection};
use lector_domain::role::Permission;
use lector_domain::Msg;
use lector_store::imports::{ImportJob, NewImportJob};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/imports/{id}", get(show))
        .route("/imports/{id}/rejections.csv", get(rejections_csv))
        .route("/imports/{id}/run", post(run_for_real))
        .route("/imports/{id}/undo", get(confirm_undo).post(undo))
}

/// Rejections listed on the job page (the CSV report has them all).
const SHOWN_REJECTIONS: usize = 100;

pub struct RejectionRow {
    pub row: u64,
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl RejectionRow {
    fn new(r: &Rejection, l: Lang) -> Self {
        RejectionRow { row: r.row, column: r.column.clone(), value: r.value.clone(), reason: l.msg(&r.reason) }
    }
}

#[derive(Template)]
#[template(path = "imports_job.html")]
struct JobPage {
    ctx: Ctx,
    job: ImportJob,
    row: JobRow,
    /// Rows read so far, while the job runs in this server.
    progress: Option<u64>,
    refresh: bool,
    error: Option<String>,
    started: String,
    finished: String,
    undone: String,
    rejections: Vec<RejectionRow>,
    /// More rows were rejected than are listed.
    truncated: bool,
    can_run: bool,
    can_undo: bool,
}

/// A finished preview may be run for real.
fn may_run(job: &ImportJob) -> bool {
    job.dry_run && job.status == JobStatus::Succeeded
}

/// A real job that went in may be undone, once.
fn may_undo(job: &ImportJob) -> bool {
    !job.dry_run && job.status == JobStatus::Succeeded && job.undone_at.is_none()
}

#[derive(Deserialize)]
struct FlashParams {
    flash: Option<String>,
}

async fn load(state: &AppState, staff: &Staff, raw: &str) -> Result<ImportJob, PageError> {
    staff.require(Permission::ReadersImport)?;
    let id = job_id(raw, staff.lang)?;
    state.store.import_job(id).await.map_err(store_err(staff.lang))
}

async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Query(q): Query<FlashParams>,
) -> Result<Response, PageError> {
    let job = load(&state, &staff, &raw).await?;
    let l = staff.lang;
    let rejections = if job.counts.rejected > 0 {
        state
            .store
            .import_rejections(job.id)
            .await
            .map_err(store_err(l))?
            .iter()
            .take(SHOWN_REJECTIONS)
            .map(|r| RejectionRow::new(r, l))
            .collect()
    } else {
        Vec::new()
    };
    let time = |t: &Option<String>| t.as_deref().map(local_time).unwrap_or_default();
    let view = JobPage {
        ctx: Ctx::staff(&staff, "imports", &format!("/imports/{}", job.id)).with_flash(q.flash.as_deref()),
        row: JobRow::new(&job, l),
        progress: (job.status == JobStatus::Running).then(|| lector_import::runner::progress(job.id)).flatten(),
        refresh: in_progress(job.status),
        error: job.error.as_ref().map(|m| l.msg(m)),
        started: time(&job.started_at),
        finished: time(&job.finished_at),
        undone: time(&job.undone_at),
        truncated: job.counts.rejected > rejections.len() as u64,
        rejections,
        can_run: may_run(&job),
        can_undo: may_undo(&job),
        job,
    };
    Ok(render(&view))
}

/// A CSV cell; formulas are neutralised (see `readers::csv_field`).
fn cell(s: &str) -> String {
    crate::pages::readers::csv_field(s)
}

/// The rejections as CSV in the user's language, UTF-8 with a BOM so Excel reads Chinese.
pub fn rejections_text(rejections: &[Rejection], l: Lang) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(l.pick("行号,列,值,原因\r\n", "row,column,value,reason\r\n"));
    for r in rejections {
        let fields = [r.row.to_string(), cell(&r.column), cell(&r.value), cell(&l.msg(&r.reason))];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

async fn rejections_csv(State(state): State<AppState>, staff: Staff, Path(raw): Path<String>) -> Result<Response, PageError> {
    let job = load(&state, &staff, &raw).await?;
    let rejections = state.store.import_rejections(job.id).await.map_err(store_err(staff.lang))?;
    let disposition = format!("attachment; filename=\"import-{}-rejections.csv\"", job.id);
    Ok((
        [(CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (CONTENT_DISPOSITION, disposition)],
        rejections_text(&rejections, staff.lang),
    )
        .into_response())
}

/// Queues the import a finished preview described, this time writing.
async fn run_for_real(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let job = load(&state, &staff, &raw).await?;
    staff.check_csrf(f.csrf.as_deref())?;
    let l = staff.lang;
    if !may_run(&job) {
        let m = Msg::new("只有已完成的预览（试运行）才能正式导入", "only a finished preview (dry run) can be run for real");
        return Err(PageError(AppError::Conflict(m), l));
    }
    let new =
        NewImportJob { source: job.source, format: job.format, label: job.label, options: job.options, dry_run: false, spec: job.spec };
    let queued = state.store.create_import_job(&staff.actor(), &new, JobStatus::Queued).await.map_err(store_err(l))?;
    Ok(see_other(&format!("/imports/{}?flash=queued", queued.id)))
}

#[derive(Template)]
#[template(path = "imports_undo.html")]
struct UndoPage {
    ctx: Ctx,
    row: JobRow,
}

async fn confirm_undo(State(state): State<AppState>, staff: Staff, Path(raw): Path<String>) -> Result<Response, PageError> {
    let job = load(&state, &staff, &raw).await?;
    if !may_undo(&job) {
        return Ok(see_other(&format!("/imports/{}", job.id)));
    }
    let view = UndoPage { ctx: Ctx::staff(&staff, "imports", &format!("/imports/{}/undo", job.id)), row: JobRow::new(&job, staff.lang) };
    Ok(render(&view))
}

async fn undo(
    State(state): State<AppState>,
    staff: Staff,
    Path(raw): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    staff.require(Permission::ReadersImport)?;
    staff.check_csrf(f.csrf.as_deref())?;
    let id = job_id(&raw, staff.lang)?;
    state.store.undo_import_job(&staff.actor(), id).await.map_err(store_err(staff.lang))?;
    Ok(see_other(&format!("/imports/{id}?flash=undone")))
}

/// One field's provenance on the reader page.
pub struct ProvenanceRow {
    pub field: String,
    pub source: String,
    pub external_id: String,
    pub job_id: i64,
    pub at: String,
}

/// Which source and job set each field of reader `id`.
pub async fn provenance_rows(state: &AppState, l: Lang, id: i64) -> Result<Vec<ProvenanceRow>, lector_store::StoreError> {
    Ok(state
        .store
        .reader_provenance(id)
        .await?
        .into_iter()
        .map(|p| ProvenanceRow {
            field: l.msg(&p.field.label()),
            source: p.source,
            external_id: p.external_id,
            job_id: p.job_id,
            at: local_time(&p.at),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_report_is_excel_safe() {
        let r = vec![Rejection::new(3, "手机", "=HYPERLINK(\"x\")", Msg::new("手机号码无效", "invalid mobile"))];
        let zh = rejections_text(&r, Lang::Zh);
        assert!(zh.starts_with("\u{feff}行号,列,值,原因\r\n"));
        assert!(zh.contains("3,手机,\"'=HYPERLINK(\"\"x\"\")\",手机号码无效\r\n"), "{zh}");
        let en = rejections_text(&r, Lang::En);
        assert!(en.starts_with("\u{feff}row,column,value,reason\r\n") && en.ends_with("invalid mobile\r\n"), "{en}");
    }
}
