//! One load into the warehouse, all or nothing (ADR 0006): the Parquet files are written
//! first under a reserved batch id, the batch record last; until the record exists nothing of
//! the batch is visible, and a failure removes every file it wrote.

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, WarehouseError};
use crate::layout;
use crate::log::LogState;
use crate::rows::{self, TableRows};
use crate::schema::TableKind;
use crate::{dedup, quarantine, Warehouse};

/// What a loader hands to [`Warehouse::write_batch`].
///
/// Each table's batches carry the columns of [`crate::schema`] in any order; `batch_id` may be
/// left out or hold anything (0): the warehouse writes the batch's id into it. A table may be
/// named more than once; its rows are merged.
#[derive(Debug, Clone, Default)]
pub struct NewBatch {
    /// Where the rows come from: `store`, `file:loans`, `koha-sql` …
    pub source: String,
    pub tables: Vec<(&'static str, Vec<RecordBatch>)>,
    /// Rows the loader read from the source.
    pub rows_in: u64,
    /// Rows the loader refused (bad values), not stored anywhere.
    pub rejected: u64,
    /// Events kept aside because they name a reader or item the warehouse does not know yet.
    pub quarantine: Vec<QuarantinedEvent>,
    /// Where the next incremental load of `source` starts.
    pub watermark: Option<serde_json::Value>,
}

/// An event kept in `_quarantine/`, out of analyst SQL: it still holds the reader reference it
/// arrived with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantinedEvent {
    pub table: &'static str,
    pub event_key: String,
    pub reason: String,
    pub record: serde_json::Value,
}

/// The record of a committed batch, `_batches/bNNNNNNNN.json`: its existence is the commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub id: u64,
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The tables the batch stored rows in, with their files (paths under the warehouse root).
    pub tables: Vec<TableWrite>,
    /// The file of quarantined events, if any.
    #[serde(default)]
    pub quarantine_file: Option<String>,
    pub rows_in: u64,
    /// Rows stored, all tables together.
    pub rows_out: u64,
    pub rejected: u64,
    pub quarantined: u64,
    /// Fact rows not stored because the same event was already stored with the same content,
    /// or came again later in the same batch.
    pub duplicates: u64,
    /// Fact rows stored that supersede a stored row with the same event key.
    pub corrections: u64,
    /// SHA-256 (hex) over the bytes of the batch's files in record order: the tables' files,
    /// then the quarantine file.
    pub checksum: String,
    pub watermark: Option<serde_json::Value>,
    /// Another batch was written at the same time, so this one was deduplicated without seeing
    /// it: queries of its tables keep the latest batch per event key, as after a correction.
    #[serde(default)]
    pub concurrent: bool,
}

/// The rows one batch stored in one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableWrite {
    pub table: String,
    pub files: Vec<String>,
    pub rows: u64,
    #[serde(default)]
    pub duplicates: u64,
    #[serde(default)]
    pub corrections: u64,
}

impl BatchRecord {
    /// What the batch wrote to `table`, if anything.
    pub fn table(&self, table: &str) -> Option<&TableWrite> {
        self.tables.iter().find(|t| t.table == table)
    }
}

/// The load as a whole: prepare (no I/O), reserve an id, write, commit; on failure remove
/// what was written and give the id back.
pub(crate) async fn write(wh: &Warehouse, batch: NewBatch) -> Result<BatchRecord> {
    let started_at = Utc::now();
    let source = batch.source.trim().to_string();
    if source.is_empty() {
        return Err(WarehouseError::invalid("请给出装载批次的数据源", "name the source of the batch"));
    }
    let prepared = rows::prepare(batch.tables)?;
    quarantine::check(&batch.quarantine)?;
    let (id, snapshot) = wh.log.reserve(&wh.storage).await?;
    let mut written = Written::default();
    let head = Head { id, source, started_at, rows_in: batch.rows_in, rejected: batch.rejected, watermark: batch.watermark };
    let outcome = write_reserved(wh, head, prepared, &batch.quarantine, &snapshot, &mut written).await;
    if outcome.is_err() {
        for file in &written.files {
            if let Err(e) = wh.storage.delete(&Path::from(file.as_str())).await {
                tracing::warn!(error = %e, "cannot remove a file of the failed warehouse batch {id}");
            }
        }
    }
    // After a commit the lock is only clutter (the next open removes it); after a failure the id is free again.
    if let Err(e) = wh.log.release(&wh.storage, id).await {
        tracing::warn!(error = %e, "cannot release the lock of warehouse batch {id}");
    }
    outcome
}

/// The parts of the record known before any file is written.
struct Head {
    id: u64,
    source: String,
    started_at: DateTime<Utc>,
    rows_in: u64,
    rejected: u64,
    watermark: Option<serde_json::Value>,
}

/// Files put so far, in record order, and the running checksum over their bytes.
#[derive(Default)]
struct Written {
    files: Vec<String>,
    checksum: Sha256,
}

impl Written {
    async fn put(&mut self, wh: &Warehouse, file: String, bytes: Vec<u8>) -> Result<()> {
        // Listed before the put: a put that fails halfway may still leave a file to remove.
        self.files.push(file.clone());
        self.checksum.update(&bytes);
        wh.storage.put(&Path::from(file), bytes).await
    }
}

async fn write_reserved(
    wh: &Warehouse,
    head: Head,
    prepared: Vec<TableRows>,
    quarantined: &[QuarantinedEvent],
    snapshot: &LogState,
    written: &mut Written,
) -> Result<BatchRecord> {
    let id = head.id;
    let mut tables = Vec::new();
    let (mut duplicates, mut corrections, mut rows_out) = (0, 0, 0);
    for TableRows { def, rows, duplicates_in_batch } in prepared {
        let rows = rows::stamp(def, &rows, id)?;
        let kept = match def.kind {
            TableKind::Fact { .. } => dedup::against_stored(wh, &snapshot.records, def, rows).await?,
            TableKind::Dimension => dedup::Kept { rows, duplicates: 0, corrections: 0 },
        };
        duplicates += duplicates_in_batch + kept.duplicates;
        corrections += kept.corrections;
        let mut files = Vec::new();
        if kept.rows.num_rows() > 0 {
            for (n, (month, part)) in rows::split_files(def, &kept.rows)?.into_iter().enumerate() {
                let file = layout::data_file(def.name, month.as_deref(), id, n);
                written.put(wh, file.clone(), rows::encode_parquet(def.name, &part)?).await?;
                files.push(file);
            }
        }
        let rows = kept.rows.num_rows() as u64;
        rows_out += rows;
        if rows > 0 || kept.duplicates + duplicates_in_batch > 0 {
            tables.push(TableWrite {
                table: def.name.to_string(),
                files,
                rows,
                duplicates: duplicates_in_batch + kept.duplicates,
                corrections: kept.corrections,
            });
        }
    }
    let quarantine_file = if quarantined.is_empty() {
        None
    } else {
        let file = layout::quarantine_file(id);
        written.put(wh, file.clone(), quarantine::encode(quarantined)?).await?;
        Some(file)
    };
    let concurrent = wh.log.overlaps(&wh.storage, snapshot, id).await?;
    let record = BatchRecord {
        id,
        source: head.source,
        started_at: head.started_at,
        finished_at: Utc::now(),
        tables,
        quarantine_file,
        rows_in: head.rows_in,
        rows_out,
        rejected: head.rejected,
        quarantined: quarantined.len() as u64,
        duplicates,
        corrections,
        checksum: hex::encode(std::mem::take(&mut written.checksum).finalize()),
        watermark: head.watermark,
        concurrent,
    };
    let json = serde_json::to_vec_pretty(&record)
        .map_err(|source| WarehouseError::Record { path: layout::record_path(id).to_string(), source })?;
    // The commit. The lock makes the id ours, so the name can only be taken by a foreign hand.
    let record_path = layout::record_path(id);
    if wh.storage.put_new(&record_path, json).await? == crate::storage::Created::AlreadyExists {
        return Err(WarehouseError::invalid(
            format!("批次 {id} 的记录已存在：另一个程序未遵守批次锁"),
            format!("the record of batch {id} already exists: another program ignored the batch lock"),
        ));
    }
    Ok(record)
}
