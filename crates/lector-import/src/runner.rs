//! Running import jobs: open the source a job names, map and validate each record, feed the
//! store's writer in batches, report progress; and the worker that runs queued and scheduled
//! jobs inside `lector serve`.
//!
//! Reading and validating run on a blocking thread (files and the SQL channel are read
//! synchronously) and hand batches to the async writer through a small bounded channel, so a
//! million-row source streams with at most a few batches in memory.

use crate::mapping::{Mapper, Profile};
use crate::sql::SqlSpec;
use crate::{formats, sql, Format, OpenOptions, Opened, SourceError};
use lector_domain::import::{IncomingReader, JobStatus, Rejection};
use lector_domain::Msg;
use lector_store::imports::ImportJob;
use lector_store::{Result, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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

impl JobSpec {
    fn profile(&self) -> Option<&str> {
        match self {
            JobSpec::File { profile, .. } | JobSpec::Sql { profile, .. } => profile.as_deref(),
        }
    }

    /// Opens the source this spec names.
    pub async fn open(&self) -> std::result::Result<Opened, SourceError> {
        match self {
            JobSpec::File { path, open, .. } => {
                let (path, open) = (path.clone(), open.clone());
                tokio::task::spawn_blocking(move || formats::open(&path, &open))
                    .await
                    .map_err(|e| SourceError::whole(Msg::new(format!("读取文件时出错：{e}"), format!("reading the file failed: {e}"))))?
            }
            JobSpec::Sql { sql, .. } => sql::open(sql).await,
        }
    }
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

/// Reads the headers and first `rows` records of a file (rows that cannot be read are left out).
pub fn sample(path: &Path, open: &OpenOptions, rows: usize) -> std::result::Result<Sample, SourceError> {
    let mut opened = formats::open(path, open)?;
    let headers = opened.records.headers().to_vec();
    let mut first = Vec::with_capacity(rows);
    while first.len() < rows {
        match opened.records.next_record() {
            Some(Ok(r)) => first.push(r.cells),
            Some(Err(_)) => continue,
            None => break,
        }
    }
    let profile = Profile::detect(&headers);
    Ok(Sample { format: opened.format, encoding: opened.encoding, headers, rows: first, profile })
}

/// Rows per batch handed to the store.
const BATCH: usize = 2000;
/// Batches read ahead of the writer.
const READ_AHEAD: usize = 4;
/// How long a worker's claim on a job lasts without renewal.
const LEASE_SECS: i64 = 15 * 60;

fn progress_map() -> &'static Mutex<HashMap<i64, Arc<AtomicU64>>> {
    static MAP: OnceLock<Mutex<HashMap<i64, Arc<AtomicU64>>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

/// Rows read so far by a job running in this process (for progress bars).
pub fn progress(job_id: i64) -> Option<u64> {
    let map = progress_map().lock().unwrap_or_else(|e| e.into_inner());
    map.get(&job_id).map(|c| c.load(Ordering::Relaxed))
}

/// Registers a job's progress counter for as long as it lives.
struct ProgressGuard {
    job_id: i64,
    rows: Arc<AtomicU64>,
}

impl ProgressGuard {
    fn new(job_id: i64) -> Self {
        let rows = Arc::new(AtomicU64::new(0));
        progress_map().lock().unwrap_or_else(|e| e.into_inner()).insert(job_id, rows.clone());
        Self { job_id, rows }
    }
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        progress_map().lock().unwrap_or_else(|e| e.into_inner()).remove(&self.job_id);
    }
}

/// What the reading thread hands to the writer.
enum Batch {
    Rows {
        rows: Vec<IncomingReader>,
        rejections: Vec<Rejection>,
    },
    /// The source became unreadable part-way: the job fails and nothing is written.
    Broken(Msg),
}

/// Runs a job that is `running` (claimed by a worker, or created so by the CLI) to its end:
/// succeeded (committed, or rolled back for a dry run) or failed with the reason.
#[tracing::instrument(skip_all, fields(job = job.id, source = %job.source))]
pub async fn run_job(store: &Store, job: ImportJob) -> Result<ImportJob> {
    let progress = ProgressGuard::new(job.id);
    let outcome = match prepare(store, &job).await {
        Ok((opened, mapper)) => write(store, &job, opened, mapper, progress.rows.clone()).await,
        Err(msg) => Err(msg),
    };
    match outcome {
        Ok(done) => {
            tracing::info!(status = done.status.code(), counts = ?done.counts, "import job finished");
            Ok(done)
        }
        Err(msg) => {
            tracing::warn!(error = %msg, "import job failed");
            store.fail_import_job(job.id, &msg).await
        }
    }
}

/// Opens the source and compiles the mapping against its headers and the store's configuration.
async fn prepare(store: &Store, job: &ImportJob) -> std::result::Result<(Opened, Mapper), Msg> {
    let spec: JobSpec = serde_json::from_value(job.spec.clone())
        .map_err(|e| Msg::new(format!("导入任务的来源说明无法读取：{e}"), format!("the job's source description cannot be read: {e}")))?;
    let opened = spec.open().await.map_err(|e| e.message)?;
    let profile = match spec.profile() {
        Some(text) => Profile::from_toml(text)?,
        None => Profile::detect(opened.records.headers()),
    };
    let attributes: Vec<_> = store.attribute_defs().await.map_err(store_msg)?.into_iter().map(|(_, d)| d).collect();
    let categories: Vec<String> = store.categories().await.map_err(store_msg)?.into_iter().filter(|c| c.active).map(|c| c.code).collect();
    let mapper = profile.compile(opened.records.headers(), &attributes, &categories)?;
    Ok((opened, mapper))
}

/// Streams the source through the mapper into the store's writer.
async fn write(
    store: &Store,
    job: &ImportJob,
    opened: Opened,
    mapper: Mapper,
    rows_read: Arc<AtomicU64>,
) -> std::result::Result<ImportJob, Msg> {
    let mut writer = store.begin_import(job).await.map_err(store_msg)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let today = chrono::Local::now().date_naive();
    let reader = tokio::task::spawn_blocking(move || read_batches(opened, &mapper, today, &tx, &rows_read));
    let lease = renew_lease_while_running(store.clone(), job.id);
    let mut failure = None;
    while let Some(batch) = rx.recv().await {
        match batch {
            Batch::Rows { rows, rejections } => {
                rejections.into_iter().for_each(|r| writer.reject(r));
                if let Err(e) = writer.apply(&rows).await {
                    failure = Some(store_msg(e));
                    break;
                }
            }
            Batch::Broken(msg) => {
                failure = Some(msg);
                break;
            }
        }
    }
    drop(rx);
    let read = reader.await;
    lease.abort();
    if let Some(msg) = failure {
        return Err(msg);
    }
    if let Err(e) = read {
        return Err(Msg::new(format!("读取数据时出错：{e}"), format!("reading the source failed: {e}")));
    }
    if writer.counts().rows == 0 {
        return Err(Msg::new("来源中没有数据行（只有表头或为空）", "the source has no data rows (only a header, or nothing)"));
    }
    writer.finish().await.map_err(store_msg)
}

/// Reads, maps and validates every record, sending batches until the source ends, breaks, or
/// the writer stops listening.
fn read_batches(
    mut opened: Opened,
    mapper: &Mapper,
    today: chrono::NaiveDate,
    tx: &tokio::sync::mpsc::Sender<Batch>,
    rows_read: &AtomicU64,
) {
    let (mut rows, mut rejections) = (Vec::with_capacity(BATCH), Vec::new());
    loop {
        let next = opened.records.next_record();
        let done = next.is_none();
        match next {
            Some(Ok(record)) => match mapper.convert(&record, today) {
                Ok(incoming) => rows.push(incoming),
                Err(found) => rejections.extend(found),
            },
            Some(Err(SourceError { row: Some(row), message })) => rejections.push(Rejection::new(row, "", "", message)),
            Some(Err(SourceError { row: None, message })) => {
                let _ = tx.blocking_send(Batch::Broken(message));
                return;
            }
            None => {}
        }
        if !done {
            rows_read.fetch_add(1, Ordering::Relaxed);
        }
        if rows.len() >= BATCH || (done && (!rows.is_empty() || !rejections.is_empty())) {
            let batch =
                Batch::Rows { rows: std::mem::replace(&mut rows, Vec::with_capacity(BATCH)), rejections: std::mem::take(&mut rejections) };
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
        if done {
            return;
        }
    }
}

/// Keeps the job's claim alive while it runs so no other worker takes it over.
fn renew_lease_while_running(store: Store, job_id: i64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = store.renew_import_lease(job_id, &worker_name(), LEASE_SECS).await {
                tracing::debug!(error = %e, "renewing the import lease failed; retrying at the next tick");
            }
        }
    })
}

fn store_msg(e: lector_store::StoreError) -> Msg {
    match e {
        lector_store::StoreError::Conflict(m) => m,
        lector_store::StoreError::Invalid(errs) => Msg::new(format!("数据无效：{errs}"), format!("invalid data: {errs}")),
        other => Msg::new(format!("数据库出错：{other}"), format!("database error: {other}")),
    }
}

/// This process's name as a job worker.
fn worker_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("serve-{}-{:08x}", std::process::id(), rand_suffix())).clone()
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    nanos ^ std::process::id().rotate_left(16)
}

/// Runs queued jobs and due scheduled re-syncs, checking every `every`, for as long as the
/// task runs. Two servers on one database never run the same job: claims are conditional.
pub async fn worker(store: Store, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.queue_due_imports(&lector_store::now_text()).await {
            Ok(queued) if !queued.is_empty() => tracing::info!(jobs = queued.len(), "queued scheduled re-syncs"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "queueing scheduled re-syncs failed"),
        }
        loop {
            match store.claim_import_job(&worker_name(), LEASE_SECS).await {
                Ok(Some(job)) if job.status == JobStatus::Running => {
                    if let Err(e) = run_job(&store, job).await {
                        tracing::error!(error = %e, "recording an import job's end failed");
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, "claiming an import job failed");
                    break;
                }
            }
        }
    }
}
