//! What can go wrong in the warehouse, worded for the person who has to act on it (Chinese first,
//! English in brackets, as elsewhere in Lector).

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::object_store;
use datafusion::parquet::errors::ParquetError;
use lector_domain::Msg;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// Reading, writing or listing the warehouse's files failed.
    #[error("数据仓库存储出错 (warehouse storage error) at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// A loader handed over rows that do not fit the star schema; the message names the table and column.
    #[error("{0}")]
    Invalid(Msg),
    /// The analyst SQL is not a single read-only query.
    #[error("{0}")]
    Refused(Msg),
    /// DataFusion could not plan or run the query; its message says why (unknown column, syntax …).
    #[error("查询失败 (query failed): {0}")]
    Query(String),
    #[error("查询超过 {secs} 秒的时间限制 (the query exceeded its time limit of {secs} s)")]
    Timeout { secs: u64 },
    #[error("查询超过 {limit_mb} MB 的内存限制 (the query exceeded its memory limit of {limit_mb} MB): {detail}")]
    MemoryLimit { limit_mb: usize, detail: String },
    /// A committed data file cannot be read: it was truncated or overwritten outside Lector.
    #[error("数据文件损坏 (corrupt data file) {path}: {detail}")]
    Corrupt { path: String, detail: String },
    /// A batch record in `_batches/` is not valid JSON of a batch.
    #[error("装载批次记录无法读取 (unreadable batch record) {path}: {source}")]
    Record {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// Encoding rows as Parquet failed.
    #[error("无法写入 {table} 的 Parquet 文件 (cannot encode the Parquet file of {table}): {source}")]
    Encode {
        table: String,
        #[source]
        source: ParquetError,
    },
    /// Arrow failed while rows were rearranged or a result was rendered.
    #[error("数据处理出错 (data processing error): {0}")]
    Arrow(#[from] ArrowError),
    /// DataFusion failed while the warehouse compared a batch with the stored rows.
    #[error("数据仓库内部查询失败 (internal warehouse query failed): {0}")]
    Engine(#[from] DataFusionError),
}

pub type Result<T, E = WarehouseError> = std::result::Result<T, E>;

impl WarehouseError {
    pub(crate) fn storage(path: impl std::fmt::Display, source: object_store::Error) -> Self {
        WarehouseError::Storage { path: path.to_string(), source }
    }

    pub(crate) fn invalid(zh: impl Into<String>, en: impl Into<String>) -> Self {
        WarehouseError::Invalid(Msg::new(zh, en))
    }
}
