//! Quarantined events loaded once their reader (and item) exist. The quarantine files are never
//! rewritten: an event counts as pending while its event key is not stored in its table, so a
//! retried event leaves the pending list by being loaded, and is not retried again.

use std::collections::HashMap;
use std::time::Instant;

use chrono::NaiveDateTime;
use datafusion::arrow::array::RecordBatch;
use lector_store::Store;
use serde::Serialize;

use super::events::{EresourceUse, Event, Loan, Visit};
use super::{lookup, Resolver, Result};
use crate::{NewBatch, QuarantinedEvent, Warehouse};

/// The source of the batches a retry writes.
pub const RETRY_SOURCE: &str = "quarantine-retry";

/// What a retry did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryReport {
    /// The batch written; none when no pending event could be loaded yet.
    pub batch_id: Option<u64>,
    /// Events pending before the retry.
    pub pending: u64,
    /// Events stored by the retry.
    pub loaded: u64,
    /// Events still pending after it.
    pub still_pending: u64,
    pub seconds: f64,
}

/// The quarantined events not loaded since, the latest record of each event key.
pub async fn pending_quarantine(wh: &Warehouse) -> Result<Vec<QuarantinedEvent>> {
    let mut latest: HashMap<(&'static str, String), QuarantinedEvent> = HashMap::new();
    let mut order = Vec::new();
    for event in wh.quarantine().await? {
        let key = (event.table, event.event_key.clone());
        if latest.insert(key.clone(), event).is_none() {
            order.push(key);
        }
    }
    let mut by_table: HashMap<&'static str, Vec<String>> = HashMap::new();
    for (table, key) in &order {
        by_table.entry(table).or_default().push(key.clone());
    }
    let mut stored = HashMap::new();
    for (table, keys) in by_table {
        stored.insert(table, lookup::stored_keys(wh, table, &keys).await?);
    }
    Ok(order
        .into_iter()
        .filter(|(table, key)| !stored.get(table).is_some_and(|s| s.contains(key)))
        .filter_map(|key| latest.remove(&key))
        .collect())
}

/// Loads the pending quarantined events whose reader and item now exist, as one batch of
/// source [`RETRY_SOURCE`]; the others stay pending. `now` is as in [`super::LoadOptions`].
pub async fn retry_quarantine(store: &Store, wh: &Warehouse, now: NaiveDateTime) -> Result<RetryReport> {
    let started = Instant::now();
    let pending = pending_quarantine(wh).await?;
    let mut report = RetryReport { pending: pending.len() as u64, still_pending: pending.len() as u64, ..Default::default() };
    if pending.is_empty() {
        return Ok(report);
    }
    let resolver = Resolver::new(store, wh, pending.iter().any(|e| e.table == Loan::TABLE)).await?;
    let mut tables: Vec<(&'static str, Vec<RecordBatch>)> = Vec::new();
    let mut resolved = 0u64;
    for (rows, n) in [
        retry_table::<Loan>(&resolver, &pending, now).await?,
        retry_table::<Visit>(&resolver, &pending, now).await?,
        retry_table::<EresourceUse>(&resolver, &pending, now).await?,
    ]
    .into_iter()
    .flatten()
    {
        resolved += n;
        tables.push(rows);
    }
    if tables.is_empty() {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let record = wh.write_batch(NewBatch { source: RETRY_SOURCE.to_string(), tables, rows_in: resolved, ..Default::default() }).await?;
    report.batch_id = Some(record.id);
    report.loaded = record.rows_out;
    // Duplicates were stored already (by a load of the same file after the reader appeared).
    report.still_pending = report.pending - resolved;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The rows of the pending events of `E`'s table that now resolve, and how many they are.
async fn retry_table<E: Event>(
    resolver: &Resolver<'_>,
    pending: &[QuarantinedEvent],
    now: NaiveDateTime,
) -> Result<Option<((&'static str, Vec<RecordBatch>), u64)>> {
    let mut events = Vec::new();
    for q in pending.iter().filter(|q| q.table == E::TABLE) {
        match q.record.get("event").cloned().map(serde_json::from_value::<E>) {
            Some(Ok(event)) => {
                let row = q.record.get("row").and_then(serde_json::Value::as_u64).unwrap_or_default();
                events.push((row, q.record.get("fields").cloned().unwrap_or_default(), event));
            }
            _ => {
                tracing::warn!(table = E::TABLE, event_key = %q.event_key, "a quarantined event cannot be read back; it stays quarantined")
            }
        }
    }
    if events.is_empty() {
        return Ok(None);
    }
    let resolved = resolver.resolve(events).await?;
    if resolved.keyed.is_empty() {
        return Ok(None);
    }
    let n = resolved.keyed.len() as u64;
    Ok(Some(((E::TABLE, vec![E::rows(&resolved.keyed, now)?]), n)))
}
