//! Running import jobs: open the source a job names, map and validate each record, feed the
//! store's writer in batches, report progress; and the worker that runs queued and scheduled
//! jobs inside `lector serve`.
// CONTRACT: signatures agreed; bodies written by the lead.

use crate::mapping::Profile;
use crate::sql::SqlSpec;
use crate::{Format, OpenOptions};
use lector_store::imports::ImportJob;
use lector_store::{Result, Store};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How a job reads its source; stored with the job so the worker (or a scheduled re-sync) can
/// read it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    File {
        path: PathBuf,
        #[serde(default)]
        open: OpenOptions,
        /// Mapping profile TOML; `None` to detect from the headers.
        #[serde(default)]
        profile: Option<String>,
    },
    Sql {
        sql: SqlSpec,
        #[serde(default)]
        profile: Option<String>,
    },
}

/// The first rows of a file and the mapping Lector would use, for the upload page.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub format: Format,
    pub encoding: Option<&'static str>,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub profile: Profile,
}

/// Reads the headers and first `rows` records of a file.
pub fn sample(_path: &std::path::Path, _open: &OpenOptions, _rows: usize) -> std::result::Result<Sample, crate::SourceError> {
    todo!()
}

/// Rows read so far by a job running in this process (for progress bars).
pub fn progress(_job_id: i64) -> Option<u64> {
    todo!()
}

/// Runs a job that is `running` (claimed by a worker, or created so by the CLI) to its end:
/// succeeded (committed, or rolled back for a dry run) or failed with the reason.
pub async fn run_job(_store: &Store, _job: ImportJob) -> Result<ImportJob> {
    todo!()
}

/// Runs queued jobs and due scheduled re-syncs, checking every `every`, for as long as the
/// task runs.
pub async fn worker(_store: Store, _every: std::time::Duration) {
    todo!()
}
