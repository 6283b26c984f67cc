//! Facts are stored once per event: a row whose event key is stored with the same content is a
//! duplicate and dropped; with different content it is a correction and stored (the latest
//! batch wins in queries). One DataFusion join of the batch against the table decides for all
//! rows at once.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use datafusion::error::DataFusionError;

use crate::batch::BatchRecord;
use crate::error::{Result, WarehouseError};
use crate::rows::{BATCH_ID, EVENT_KEY};
use crate::schema::TableDef;
use crate::session;
use crate::Warehouse;

const INCOMING: &str = "__incoming";
const POSITION: &str = "__pos";

/// The rows of a batch that are to be stored.
pub struct Kept {
    pub rows: RecordBatch,
    pub duplicates: u64,
    pub corrections: u64,
}

/// Compares `rows` (one row per event key) with what the committed `records` hold for `def`.
pub async fn against_stored(wh: &Warehouse, records: &[Arc<BatchRecord>], def: &'static TableDef, rows: RecordBatch) -> Result<Kept> {
    if session::committed_files(records, def.name).is_empty() {
        return Ok(Kept { rows, duplicates: 0, corrections: 0 });
    }
    let ctx = session::context(&wh.storage, wh.cfg.memory_limit_mb)?;
    session::register_table(&ctx, &wh.storage, records, def).await?;
    ctx.register_batch(INCOMING, with_positions(&rows)?)?;
    let same = def
        .columns
        .iter()
        .filter(|c| c.name != BATCH_ID && c.name != EVENT_KEY)
        .map(|c| format!("(s.\"{0}\" IS NOT DISTINCT FROM i.\"{0}\")", c.name))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT i.\"{POSITION}\", {same} AS same FROM \"{INCOMING}\" i JOIN \"{table}\" s ON s.\"{EVENT_KEY}\" = i.\"{EVENT_KEY}\"",
        table = def.name
    );
    let matches = ctx.sql(&sql).await?.collect().await?;

    let n = rows.num_rows();
    let (mut stored, mut identical) = (vec![false; n], vec![false; n]);
    for batch in &matches {
        let positions = batch.column(0).as_primitive_opt::<UInt32Type>();
        let equal = batch.column(1).as_boolean_opt();
        let (Some(positions), Some(equal)) = (positions, equal) else {
            return Err(DataFusionError::Internal(format!("unexpected result columns while deduplicating {}", def.name)).into());
        };
        for i in 0..batch.num_rows() {
            let at = positions.value(i) as usize;
            stored[at] = true;
            identical[at] |= equal.is_valid(i) && equal.value(i);
        }
    }
    let keep: Vec<u32> = (0..n).filter(|&i| !identical[i]).map(|i| i as u32).collect();
    let duplicates = (n - keep.len()) as u64;
    let corrections = keep.iter().filter(|&&i| stored[i as usize]).count() as u64;
    let rows = if duplicates == 0 { rows } else { take_record_batch(&rows, &UInt32Array::from(keep))? };
    Ok(Kept { rows, duplicates, corrections })
}

/// The rows with their position appended, to find them again in the join's result.
fn with_positions(rows: &RecordBatch) -> Result<RecordBatch> {
    let schema = rows.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(POSITION, DataType::UInt32, false));
    let mut columns = rows.columns().to_vec();
    let count = u32::try_from(rows.num_rows()).map_err(|_| WarehouseError::invalid("一个批次的行数过多", "too many rows in one batch"))?;
    columns.push(Arc::new(UInt32Array::from_iter_values(0..count)));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}
