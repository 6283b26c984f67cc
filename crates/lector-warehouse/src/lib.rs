//! Lector's reader data warehouse (ADR 0006): a star schema of append-only Parquet batches
//! under an `object_store` root, a batch record as the commit, DataFusion for read-only SQL.
//!
//! ```text
//! Warehouse::open(cfg)             the folder, minus what failed or crashed loads left
//!   .write_batch(NewBatch)         one load, all or nothing → BatchRecord
//!   .sql("SELECT …")               read-only, within memory, time and row limits → QueryResult
//!   .describe(table)               the data dictionary
//!   .batches() / .last_watermark() the load history
//!   .quarantine()                  events held back (admins and loaders only)
//! ```

mod batch;
mod calendar;
mod dedup;
pub mod dictionary;
mod error;
pub mod etl;
mod guard;
mod layout;
pub mod load;
mod log;
mod quarantine;
mod query;
pub mod reader_key;
mod rows;
pub mod schema;
mod session;
mod storage;

use std::path::{Path, PathBuf};

pub use batch::{BatchRecord, NewBatch, QuarantinedEvent, TableWrite};
/// Arrow, as the batches handed to [`Warehouse::write_batch`] and returned by queries use it.
pub use datafusion::arrow;
pub use dictionary::Dictionary;
pub use error::{Result, WarehouseError};
pub use query::QueryResult;

use log::BatchLog;
use storage::Storage;

/// Where the warehouse is and the limits of analyst queries (`[warehouse]` in `lector.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseConfig {
    /// The folder the files live in; by default `{data_dir}/warehouse`.
    pub root: PathBuf,
    /// Memory one query may use, in MiB; a query needing more fails (nothing spills to disk).
    pub memory_limit_mb: usize,
    pub query_timeout_secs: u64,
    /// Rows a query returns at most; the result says when there were more.
    pub max_rows: usize,
}

impl WarehouseConfig {
    pub const DEFAULT_MEMORY_LIMIT_MB: usize = 1024;
    pub const DEFAULT_QUERY_TIMEOUT_SECS: u64 = 60;
    pub const DEFAULT_MAX_ROWS: usize = 100_000;

    /// The default limits, with the files in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        WarehouseConfig {
            root: root.into(),
            memory_limit_mb: Self::DEFAULT_MEMORY_LIMIT_MB,
            query_timeout_secs: Self::DEFAULT_QUERY_TIMEOUT_SECS,
            max_rows: Self::DEFAULT_MAX_ROWS,
        }
    }

    /// The default configuration for the data directory `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join("warehouse"))
    }

    fn check(&self) -> Result<()> {
        let zero = [
            ("memory_limit_mb", self.memory_limit_mb == 0),
            ("query_timeout_secs", self.query_timeout_secs == 0),
            ("max_rows", self.max_rows == 0),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((name, _)) => {
                Err(WarehouseError::invalid(format!("warehouse.{name} 必须大于 0"), format!("warehouse.{name} must be greater than 0")))
            }
            None => Ok(()),
        }
    }
}

/// The warehouse: its files and a cache of the committed batch records.
pub struct Warehouse {
    cfg: WarehouseConfig,
    storage: Storage,
    log: BatchLog,
}

impl Warehouse {
    /// Opens the warehouse in `cfg.root` (created if missing) and deletes the files of loads
    /// that failed or crashed; files of a load still running elsewhere are left alone.
    pub async fn open(cfg: WarehouseConfig) -> Result<Warehouse> {
        cfg.check()?;
        let storage = Storage::local(&cfg.root)?;
        let log = BatchLog::default();
        let removed = log.clean(&storage).await?;
        if removed > 0 {
            tracing::info!(removed, root = %cfg.root.display(), "removed the leftovers of unfinished warehouse loads");
        }
        Ok(Warehouse { cfg, storage, log })
    }

    pub fn config(&self) -> &WarehouseConfig {
        &self.cfg
    }

    /// Loads one batch, atomically: its files are written first and the batch record last, so
    /// either all of it becomes visible or nothing does. Fact rows already stored with the same
    /// content are dropped (`duplicates`); with other content they are stored as corrections.
    /// A batch without rows is recorded too, so its watermark advances.
    pub async fn write_batch(&self, batch: NewBatch) -> Result<BatchRecord> {
        batch::write(self, batch).await
    }

    /// The committed batches, oldest first.
    pub async fn batches(&self) -> Result<Vec<BatchRecord>> {
        Ok(self.log.read(&self.storage).await?.records.iter().map(|r| r.as_ref().clone()).collect())
    }

    /// The watermark of the newest batch of `source` that recorded one.
    pub async fn last_watermark(&self, source: &str) -> Result<Option<serde_json::Value>> {
        let log = self.log.read(&self.storage).await?;
        Ok(log.records.iter().rev().filter(|r| r.source == source).find_map(|r| r.watermark.clone()))
    }

    /// Runs read-only analyst SQL over the committed batches.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult> {
        query::run(self, sql).await
    }

    /// The quarantined events of every committed batch, oldest batch first.
    pub async fn quarantine(&self) -> Result<Vec<QuarantinedEvent>> {
        let log = self.log.read(&self.storage).await?;
        quarantine::read(&self.storage, &log.records).await
    }

    /// The data dictionary of every table, or of `table`.
    pub async fn describe(&self, table: Option<&str>) -> Result<Dictionary> {
        let log = self.log.read(&self.storage).await?;
        dictionary::describe(self.cfg.root.display().to_string(), &log.records, table, chrono::Utc::now())
    }
}
