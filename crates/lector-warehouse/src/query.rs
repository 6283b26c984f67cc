//! Read-only analyst SQL over the committed batches, within the configured limits of memory,
//! time and rows, and the result as a text table, CSV or JSON rows.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::arrow::{csv, json};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;
use futures_util::StreamExt;

use crate::batch::BatchRecord;
use crate::error::{Result, WarehouseError};
use crate::{guard, session, Warehouse};

/// The rows a query returned, at most `max_rows` of them.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// The query had more rows than the configured `max_rows`; the rest were not read.
    pub truncated: bool,
}

impl QueryResult {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// A boxed text table for the terminal.
    pub fn to_text_table(&self) -> Result<String> {
        Ok(pretty_format_batches_with_schema(self.schema.clone(), &self.batches)?.to_string())
    }

    /// CSV with a header row.
    pub fn to_csv(&self) -> Result<String> {
        let mut out = Vec::new();
        {
            let mut writer = csv::WriterBuilder::new().with_header(true).build(&mut out);
            if self.batches.is_empty() {
                writer.write(&RecordBatch::new_empty(self.schema.clone()))?;
            }
            for batch in &self.batches {
                writer.write(batch)?;
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// One JSON object per row, empty values as `null`.
    pub fn to_json_rows(&self) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let mut out = Vec::new();
        {
            let mut writer = json::WriterBuilder::new().with_explicit_nulls(true).build::<_, json::writer::JsonArray>(&mut out);
            for batch in &self.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        if out.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&out).map_err(|e| WarehouseError::Query(format!("cannot read the JSON rows back: {e}")))
    }
}

/// Runs analyst SQL: checked by the guard, then planned and run within the time limit.
pub async fn run(wh: &Warehouse, sql: &str) -> Result<QueryResult> {
    let statement = guard::single_query(sql)?;
    let secs = wh.cfg.query_timeout_secs;
    tokio::time::timeout(Duration::from_secs(secs), plan_and_collect(wh, statement)).await.unwrap_or(Err(WarehouseError::Timeout { secs }))
}

async fn plan_and_collect(wh: &Warehouse, statement: Statement) -> Result<QueryResult> {
    let log = wh.log.read(&wh.storage).await?;
    let outcome = async {
        let ctx = session::analyst_context(&wh.storage, &log.records, wh.cfg.memory_limit_mb).await?;
        collect(&ctx, statement, wh.cfg.max_rows).await
    }
    .await;
    match outcome {
        Err(WarehouseError::Engine(e)) => Err(explain_failure(wh, &log.records, e).await),
        other => other,
    }
}

async fn collect(ctx: &SessionContext, statement: Statement, max_rows: usize) -> Result<QueryResult> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    guard::plan_options().verify_plan(&plan).map_err(|e| {
        WarehouseError::Refused(lector_domain::Msg::new(
            format!("数据仓库只允许只读查询：{}", e.strip_backtrace()),
            format!("the warehouse allows read-only queries only: {}", e.strip_backtrace()),
        ))
    })?;
    let frame = ctx.execute_logical_plan(plan).await?;
    let schema = frame.schema().inner().clone();
    let mut stream = frame.execute_stream().await?;
    let (mut batches, mut rows, mut truncated) = (Vec::new(), 0, false);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let room = max_rows - rows;
        if batch.num_rows() > room {
            truncated = true;
            if room > 0 {
                batches.push(batch.slice(0, room));
            }
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    Ok(QueryResult { columns, schema, batches, truncated })
}

/// Turns a DataFusion failure into what the analyst can act on: the memory limit, a damaged
/// file (found by reading the committed files' footers when the failure came from reading
/// files), or DataFusion's own message.
async fn explain_failure(wh: &Warehouse, records: &[Arc<BatchRecord>], e: DataFusionError) -> WarehouseError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(detail) => {
            return WarehouseError::MemoryLimit { limit_mb: wh.cfg.memory_limit_mb, detail: detail.clone() };
        }
        DataFusionError::ParquetError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ArrowError(..)
        | DataFusionError::External(_) => {
            if let Some(damaged) = first_unreadable_file(wh, records).await {
                return damaged;
            }
        }
        _ => {}
    }
    WarehouseError::Query(e.strip_backtrace())
}

async fn first_unreadable_file(wh: &Warehouse, records: &[Arc<BatchRecord>]) -> Option<WarehouseError> {
    // Collected first: an iterator of closures held across `.await` makes the future not `Send`.
    let files: Vec<&str> = records.iter().flat_map(|r| r.tables.iter().flat_map(|t| &t.files)).map(String::as_str).collect();
    for file in files {
        if let Err(e) = wh.storage.check_parquet(file).await {
            return Some(e);
        }
    }
    None
}
