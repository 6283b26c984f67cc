//! The load log under `_batches/`: committed batch records (cached, they never change), the
//! locks by which writers reserve ids, and the removal of what failed or crashed loads left.
//!
//! A writer reserves id N by creating `bN.lock` if absent, writes its files, creates `bN.json`
//! (the commit) and deletes the lock. So a data file without a record belongs either to a
//! writer still at work (its lock is there and recent) or to a load that failed or crashed.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use datafusion::object_store::path::Path;

use crate::batch::BatchRecord;
use crate::error::{Result, WarehouseError};
use crate::layout::{self, LogEntry};
use crate::storage::{Created, Storage};

/// A lock this old belongs to a writer that died: no load runs for half a day.
const STALE_LOCK: TimeDelta = TimeDelta::hours(12);
/// Reservation attempts before giving up (each failure means another writer took the id).
const RESERVE_ATTEMPTS: usize = 64;

/// The log as listed at one moment.
pub struct LogState {
    /// Committed batches, oldest first.
    pub records: Vec<Arc<BatchRecord>>,
    /// Ids reserved by writers that have not committed (nor been found dead).
    pub in_flight: Vec<u64>,
    stale_locks: Vec<u64>,
    committed_locks: Vec<u64>,
}

impl LogState {
    fn next_id(&self) -> u64 {
        let records = self.records.iter().map(|r| r.id);
        let locks = self.in_flight.iter().chain(&self.stale_locks).copied();
        records.chain(locks).max().unwrap_or(0) + 1
    }
}

#[derive(Default)]
pub struct BatchLog {
    cache: Mutex<BTreeMap<u64, Arc<BatchRecord>>>,
}

impl BatchLog {
    /// Lists `_batches/` and reads the records not read before.
    pub async fn read(&self, storage: &Storage) -> Result<LogState> {
        let mut records = HashSet::new();
        let mut locks = Vec::new();
        for meta in storage.list(Some(&Path::from(layout::BATCHES_DIR))).await? {
            match layout::log_entry(&meta.location) {
                Some(LogEntry::Record(id)) => {
                    records.insert(id);
                }
                Some(LogEntry::Lock(id)) => locks.push((id, meta.last_modified)),
                None => {}
            }
        }
        let known: HashSet<u64> = self.cached().keys().copied().collect();
        let mut fresh = Vec::new();
        for &id in records.difference(&known) {
            let record: BatchRecord = storage.get_json(&layout::record_path(id)).await?;
            fresh.push(Arc::new(record));
        }
        let listed = {
            let mut cache = self.cached();
            // A record removed from the folder is no longer committed.
            cache.retain(|id, _| records.contains(id));
            cache.extend(fresh.into_iter().map(|r| (r.id, r)));
            cache.values().cloned().collect::<Vec<_>>()
        };
        let now = Utc::now();
        let (mut in_flight, mut stale_locks, mut committed_locks) = (Vec::new(), Vec::new(), Vec::new());
        for (id, modified) in locks {
            if records.contains(&id) {
                committed_locks.push(id);
            } else if is_stale(modified, now) {
                stale_locks.push(id);
            } else {
                in_flight.push(id);
            }
        }
        Ok(LogState { records: listed, in_flight, stale_locks, committed_locks })
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<BatchRecord>>> {
        // The cache holds only immutable records; a panic elsewhere cannot leave it half-updated.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves the next free id by creating its lock; returns it with the log as it stands
    /// once the id is held (what the batch is deduplicated against).
    pub async fn reserve(&self, storage: &Storage) -> Result<(u64, LogState)> {
        for _ in 0..RESERVE_ATTEMPTS {
            let id = self.read(storage).await?.next_id();
            let lock = serde_json::json!({ "pid": std::process::id(), "reserved_at": Utc::now() });
            if storage.put_new(&layout::lock_path(id), lock.to_string().into_bytes()).await? == Created::Yes {
                return Ok((id, self.read(storage).await?));
            }
        }
        Err(WarehouseError::invalid("其他装载进程占用了批次号，请稍后重试", "other loads kept taking the next batch id; try again later"))
    }

    /// Whether a batch other than `id` committed since `snapshot` or is being written now: the
    /// batch `id` was then deduplicated without seeing it.
    pub async fn overlaps(&self, storage: &Storage, snapshot: &LogState, id: u64) -> Result<bool> {
        let seen: HashSet<u64> = snapshot.records.iter().map(|r| r.id).collect();
        let now = self.read(storage).await?;
        Ok(now.records.iter().any(|r| r.id != id && !seen.contains(&r.id)) || now.in_flight.iter().any(|&other| other != id))
    }

    /// Deletes the files of loads that failed or crashed: data files no committed record lists
    /// and no writer at work owns, then locks of committed or dead writers. Files that are not
    /// Lector's (other names) are left alone. Returns how many files were removed.
    pub async fn clean(&self, storage: &Storage) -> Result<usize> {
        // Data first: a file listed now that belongs to a live writer has its lock already.
        let data = storage.list(None).await?;
        let state = self.read(storage).await?;
        let committed: HashSet<&str> = state
            .records
            .iter()
            .flat_map(|r| r.tables.iter().flat_map(|t| &t.files).chain(&r.quarantine_file))
            .map(String::as_str)
            .collect();
        let mut removed = 0;
        for meta in &data {
            let Some(id) = layout::data_file_batch(&meta.location) else { continue };
            if committed.contains(meta.location.as_ref()) || state.in_flight.contains(&id) {
                continue;
            }
            tracing::info!(file = %meta.location, "removing a file of an uncommitted warehouse batch");
            storage.delete(&meta.location).await?;
            removed += 1;
        }
        for id in state.stale_locks.iter().chain(&state.committed_locks) {
            storage.delete(&layout::lock_path(*id)).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Gives the id back after a failed load (its files are gone) or after the commit.
    pub async fn release(&self, storage: &Storage, id: u64) -> Result<()> {
        storage.delete(&layout::lock_path(id)).await
    }
}

fn is_stale(modified: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - modified > STALE_LOCK
}
