//! Import jobs: durable records of each run, the writer that applies validated rows in one
//! transaction, provenance (which source and job set each field), undo, sources and schedules.
// CONTRACT: signatures agreed; bodies filled in by the store-import helper.

mod jobs;
mod merge;
mod undo;
mod writer;

use lector_domain::import::{ImportCounts, ImportOptions, JobStatus, ReaderField};
use lector_domain::Msg;
use serde::{Deserialize, Serialize};

pub use writer::ImportWriter;

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
