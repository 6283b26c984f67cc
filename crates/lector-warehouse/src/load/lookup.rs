//! What loaders look up in the committed warehouse, without the row cap of analyst queries:
//! the known items, and which event keys a fact table already holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;

use super::Result;
use crate::error::WarehouseError;
use crate::{schema, session, Warehouse};

const KEYS: &str = "__keys";

/// A session with `table` registered as queries see it; `None` while it has no rows.
async fn table_context(wh: &Warehouse, table: &str) -> Result<Option<SessionContext>> {
    let log = wh.log.read(&wh.storage).await?;
    if session::committed_files(&log.records, table).is_empty() {
        return Ok(None);
    }
    let def = schema::table(table).ok_or_else(|| WarehouseError::invalid(format!("没有表 {table}"), format!("no table {table}")))?;
    let ctx = session::context(&wh.storage, wh.cfg.memory_limit_mb)?;
    session::register_table(&ctx, &wh.storage, &log.records, def).await?;
    Ok(Some(ctx))
}

/// Every item id and barcode of `dim_item`, each to its item id; `None` while `dim_item` has
/// no rows.
pub async fn known_items(wh: &Warehouse) -> Result<Option<HashMap<String, String>>> {
    let Some(ctx) = table_context(wh, "dim_item").await? else { return Ok(None) };
    let mut items = HashMap::new();
    for batch in ctx.sql("SELECT DISTINCT item_id, barcode FROM dim_item").await?.collect().await? {
        let (ids, barcodes) = (text(&batch, 0)?, text(&batch, 1)?);
        for i in 0..batch.num_rows() {
            let id = ids.value(i).to_string();
            if barcodes.is_valid(i) {
                items.entry(barcodes.value(i).to_string()).or_insert_with(|| id.clone());
            }
            items.insert(id.clone(), id);
        }
    }
    Ok(Some(items))
}

/// Those of `keys` that fact table `table` holds.
pub async fn stored_keys(wh: &Warehouse, table: &str, keys: &[String]) -> Result<HashSet<String>> {
    let Some(ctx) = table_context(wh, table).await? else { return Ok(HashSet::new()) };
    let schema = Arc::new(Schema::new(vec![Field::new("event_key", DataType::Utf8, false)]));
    let incoming = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from_iter_values(keys))])?;
    ctx.register_batch(KEYS, incoming)?;
    let sql = format!("SELECT DISTINCT s.event_key FROM \"{table}\" s JOIN \"{KEYS}\" k ON s.event_key = k.event_key");
    let mut stored = HashSet::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        let column = text(&batch, 0)?;
        stored.extend((0..batch.num_rows()).map(|i| column.value(i).to_string()));
    }
    Ok(stored)
}

fn text(batch: &RecordBatch, index: usize) -> Result<&StringArray> {
    batch
        .column(index)
        .as_string_opt::<i32>()
        .ok_or_else(|| WarehouseError::invalid("查询结果不是文本", format!("column {index} of a lookup is not text")).into())
}
