//! `_quarantine/`: events kept aside because they name a reader or item the warehouse does not
//! know yet. They keep the reference they arrived with, so they are never registered for
//! analyst SQL; admins and the loader read them through [`crate::Warehouse::quarantine`].

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::batch::{BatchRecord, QuarantinedEvent};
use crate::error::{Result, WarehouseError};
use crate::rows;
use crate::schema;
use crate::storage::Storage;

const COLUMNS: [&str; 4] = ["table", "event_key", "reason", "record"];
const TABLE_NAME: &str = "_quarantine";

fn file_schema() -> SchemaRef {
    Arc::new(Schema::new(COLUMNS.map(|c| Field::new(c, DataType::Utf8, false)).to_vec()))
}

/// Every quarantined event must name a table of the star schema.
pub fn check(events: &[QuarantinedEvent]) -> Result<()> {
    events.iter().try_for_each(|e| rows::loadable_table(e.table).map(drop))
}

/// The events as one Parquet file, the original record as JSON text.
pub fn encode(events: &[QuarantinedEvent]) -> Result<Vec<u8>> {
    let text = |f: fn(&QuarantinedEvent) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(events.iter().map(f))) };
    let columns =
        vec![text(|e| e.table.to_string()), text(|e| e.event_key.clone()), text(|e| e.reason.clone()), text(|e| e.record.to_string())];
    rows::encode_parquet(TABLE_NAME, &RecordBatch::try_new(file_schema(), columns)?)
}

/// The quarantined events of the committed batches, oldest batch first.
pub async fn read(storage: &Storage, records: &[Arc<BatchRecord>]) -> Result<Vec<QuarantinedEvent>> {
    let mut events = Vec::new();
    // Collected first: an iterator of closures held across `.await` makes the future not `Send`.
    let files: Vec<&str> = records.iter().filter_map(|r| r.quarantine_file.as_deref()).collect();
    for file in files {
        let corrupt = |detail: String| WarehouseError::Corrupt { path: storage.shown(file), detail };
        for batch in storage.read_parquet(file).await? {
            let columns: Vec<&StringArray> = COLUMNS
                .iter()
                .map(|c| {
                    batch.column_by_name(c).and_then(|a| a.as_string_opt::<i32>()).ok_or_else(|| corrupt(format!("no text column {c}")))
                })
                .collect::<Result<_>>()?;
            for i in 0..batch.num_rows() {
                let name = columns[0].value(i);
                let table = schema::table(name).ok_or_else(|| corrupt(format!("unknown table {name}")))?.name;
                let record = serde_json::from_str(columns[3].value(i)).map_err(|e| corrupt(format!("record of row {}: {e}", i + 1)))?;
                events.push(QuarantinedEvent {
                    table,
                    event_key: columns[1].value(i).to_string(),
                    reason: columns[2].value(i).to_string(),
                    record,
                });
            }
        }
    }
    Ok(events)
}
