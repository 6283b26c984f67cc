//! Import jobs: durable records of each run, the writer that applies validated rows in one
//! transaction, provenance (which source and job set each field), undo, sources and schedules.
// CONTRACT: signatures agreed; bodies filled in by the store-import helper.

use crate::{Actor, Page, Result, Store};
use lector_domain::import::{ImportCounts, ImportOptions, IncomingReader, JobStatus, ReaderField, Rejection};
use lector_domain::Msg;
use serde::{Deserialize, Serialize};

/// Rejections kept per job for the error report; the count covers all of them.
pub const MAX_STORED_REJECTIONS: usize = 100_000;

/// A named source of reader data (教务处学生名单, 人事处, Koha …): the key under which its
/// records' external ids are unique.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSource {
    pub id: i64,
    pub name: String,
    /// How to read it again for a scheduled re-sync (a [`crate::imports::ImportJob::spec`]);
    /// `None` for sources only ever imported by hand.
    pub spec: Option<serde_json::Value>,
    /// Re-sync every this many minutes (requires `spec`).
    pub every_minutes: Option<i64>,
    pub next_run_at: Option<String>,
    pub created_at: String,
}

/// A job as asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewImportJob {
    /// Source name; created on first use.
    pub source: String,
    /// `csv`, `xlsx`, `koha`, `folio`, `sql` …
    pub format: String,
    /// The uploaded file's name, or a description of the SQL source (never a password).
    pub label: String,
    pub options: ImportOptions,
    pub dry_run: bool,
    /// Everything needed to read the source again (file path and mapping, or SQL spec),
    /// interpreted by `lector_import::runner`.
    pub spec: serde_json::Value,
}

/// One run of an import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportJob {
    pub id: i64,
    pub source_id: i64,
    pub source: String,
    pub format: String,
    pub label: String,
    pub options: ImportOptions,
    pub dry_run: bool,
    pub spec: serde_json::Value,
    pub status: JobStatus,
    pub counts: ImportCounts,
    /// Why the job failed, when it did.
    pub error: Option<Msg>,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub undone_at: Option<String>,
}

/// Which source and job last set a field of a reader, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub source: String,
    pub external_id: String,
    pub field: ReaderField,
    pub job_id: i64,
    pub at: String,
}

/// A saved mapping profile (TOML text, as `lector_import::mapping::Profile` reads it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappingProfile {
    pub name: String,
    pub toml: String,
    pub updated_by: String,
    pub updated_at: String,
}

/// Applies one job's rows inside a single transaction: committed by [`ImportWriter::finish`]
/// (unless the job is a dry run or all-or-nothing with rejections), rolled back if dropped.
pub struct ImportWriter {
    _todo: (),
}

impl ImportWriter {
    /// Classifies each row (created / updated / unchanged / merged) and writes it.
    pub async fn apply(&mut self, _rows: &[IncomingReader]) -> Result<()> {
        todo!()
    }

    /// Records a rejected row (kept up to [`MAX_STORED_REJECTIONS`]).
    pub fn reject(&mut self, _rejection: Rejection) {
        todo!()
    }

    pub fn counts(&self) -> ImportCounts {
        todo!()
    }

    /// Deactivates missing readers if asked, commits (or rolls back a dry run or a failed
    /// all-or-nothing job), stores counts and rejections, audits the job, and returns it.
    pub async fn finish(self) -> Result<ImportJob> {
        todo!()
    }
}

impl Store {
    /// Records a job: `queued` for the server's worker, or `running` for a caller that runs it
    /// at once (the CLI).
    pub async fn create_import_job(&self, _actor: &Actor, _new: &NewImportJob, _status: JobStatus) -> Result<ImportJob> {
        todo!()
    }

    /// Takes the oldest queued job, or a running one whose lease ran out (its worker died), for
    /// `worker`; two workers never get the same job.
    pub async fn claim_import_job(&self, _worker: &str, _lease_secs: i64) -> Result<Option<ImportJob>> {
        todo!()
    }

    /// Extends a running job's lease (best effort while the job's transaction is open).
    pub async fn renew_import_lease(&self, _job_id: i64, _worker: &str, _lease_secs: i64) -> Result<()> {
        todo!()
    }

    pub async fn import_job(&self, _id: i64) -> Result<ImportJob> {
        todo!()
    }

    pub async fn import_jobs(&self, _page: i64, _per_page: i64) -> Result<Page<ImportJob>> {
        todo!()
    }

    /// Opens the writer for a running job.
    pub async fn begin_import(&self, _job: &ImportJob) -> Result<ImportWriter> {
        todo!()
    }

    /// Marks a job failed with the reason (nothing it wrote remains: its transaction was rolled back).
    pub async fn fail_import_job(&self, _job_id: i64, _error: &Msg) -> Result<ImportJob> {
        todo!()
    }

    pub async fn import_rejections(&self, _job_id: i64) -> Result<Vec<Rejection>> {
        todo!()
    }

    /// Restores every reader the job touched to its state before the job (created ones are
    /// removed). Refused (409) while a later job that touched the same readers stands.
    pub async fn undo_import_job(&self, _actor: &Actor, _job_id: i64) -> Result<ImportJob> {
        todo!()
    }

    pub async fn reader_provenance(&self, _reader_id: i64) -> Result<Vec<Provenance>> {
        todo!()
    }

    pub async fn import_sources(&self) -> Result<Vec<ImportSource>> {
        todo!()
    }

    /// Sets or clears a source's re-sync schedule and the spec it re-reads.
    pub async fn schedule_import_source(
        &self,
        _actor: &Actor,
        _name: &str,
        _spec: Option<serde_json::Value>,
        _every_minutes: Option<i64>,
    ) -> Result<ImportSource> {
        todo!()
    }

    /// For every source whose next run is due, queues a job (unless one is queued or running)
    /// and moves its next run on; returns the jobs queued.
    pub async fn queue_due_imports(&self, _now: &str) -> Result<Vec<ImportJob>> {
        todo!()
    }

    pub async fn mapping_profiles(&self) -> Result<Vec<MappingProfile>> {
        todo!()
    }

    pub async fn mapping_profile(&self, _name: &str) -> Result<MappingProfile> {
        todo!()
    }

    pub async fn save_mapping_profile(&self, _actor: &Actor, _name: &str, _toml: &str) -> Result<MappingProfile> {
        todo!()
    }
}
