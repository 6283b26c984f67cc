//! The incremental load from the operational store (ADR 0006), run by `lector warehouse
//! refresh` and on a schedule inside `lector serve`.
//!
//! Five sources, each with its own batches and watermark:
//!
//! | source | table | what the next load starts after |
//! |---|---|---|
//! | `store:readers` | `dim_reader` | readers whose attributes changed since their exported hash |
//! | `store:interactions` | `fact_interaction` | the last interaction id |
//! | `store:case_events` | `fact_case_event` | the last case event id |
//! | `store:unsubscribes` | `fact_message_event` | the last consent event id |
//! | `store:messages` | `fact_message_event` | outbox rows the store has not marked exported |
//!
//! Separate sources because a watermark must commit in the same batch record as exactly the
//! rows it covers: one source per watermark keeps that true while a large first load is cut
//! into several batches, lets one failing source not hold back the others, and shows each in
//! the load history. The store is read in pages and a batch holds at most
//! [`RefreshOptions::batch_rows`] rows, so memory stays bounded whatever the backlog.
//!
//! A refresh that finds nothing new writes no batch: running it twice in a row changes nothing.
//! What the store records after a commit (exported reader hashes, exported messages) is
//! recorded only once the batch committed; after a crash in between, messages are loaded again
//! and dropped as duplicates by their event keys, and reader versions are checked against the
//! warehouse itself (see [`load_readers`]).

pub(crate) mod columns;
mod facts;
mod readers;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use lector_store::warehouse_extract::{CaseEventRow, InteractionRow, Lease, PageRequest, UnsubscribeRow};
use lector_store::{Backend, Store, StoreError};
use serde::Serialize;

use crate::reader_key::ReaderKeyer;
use crate::{BatchRecord, NewBatch, Warehouse, WarehouseError};
use facts::MessageEvent;
use readers::{Previous, Version};

pub const SOURCE_READERS: &str = "store:readers";
pub const SOURCE_INTERACTIONS: &str = "store:interactions";
pub const SOURCE_CASE_EVENTS: &str = "store:case_events";
pub const SOURCE_UNSUBSCRIBES: &str = "store:unsubscribes";
pub const SOURCE_MESSAGES: &str = "store:messages";

/// The tables a refresh loads, in the order of its report.
pub const TABLES: [&str; 4] = ["dim_reader", "fact_interaction", "fact_case_event", "fact_message_event"];

/// What can stop a refresh. Batches committed before the failure stay; the next refresh goes on
/// from their watermarks.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The store failed; its error, the source, says how.
    #[error("业务库出错 (operational store error)")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Another process holds the refresh lease.
    #[error("另一个数据仓库刷新正在进行（{holder}，租约至 {until}），请稍后再试 (another warehouse refresh is running: {holder}, lease until {until}; try again later)")]
    Busy { holder: String, until: String },
}

impl From<ArrowError> for RefreshError {
    fn from(e: ArrowError) -> Self {
        RefreshError::Warehouse(WarehouseError::Arrow(e))
    }
}

pub type Result<T, E = RefreshError> = std::result::Result<T, E>;

/// How a refresh reads and writes.
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// Rows read from the store at once.
    pub page_rows: i64,
    /// Rows one warehouse batch holds at most.
    pub batch_rows: usize,
    /// On PostgreSQL, how old a row must be before it is loaded: ids are handed out at insert
    /// but seen at commit, so a younger row may still have an older neighbour in flight. Longer
    /// than any transaction of the store. (SQLite makes rows visible in id order.)
    pub settle: Duration,
    /// How long the refresh lease lasts without renewal; renewed before each batch.
    pub lease: Duration,
    /// Who holds the lease, as shown to a refresh that finds it taken.
    pub holder: String,
}

impl Default for RefreshOptions {
    fn default() -> Self {
        RefreshOptions {
            page_rows: 2_000,
            batch_rows: 100_000,
            settle: Duration::from_secs(60),
            lease: Duration::from_secs(600),
            holder: format!("lector pid {} since {}", std::process::id(), Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ")),
        }
    }
}

/// What one table received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableCounts {
    /// Rows handed to the warehouse.
    pub extracted: u64,
    pub stored: u64,
    /// Rows the warehouse already held with the same content.
    pub duplicates: u64,
}

/// What a refresh did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefreshReport {
    /// Every table of [`TABLES`], loaded or not.
    pub tables: BTreeMap<&'static str, TableCounts>,
    /// Ids of the batches written, in order.
    pub batches: Vec<u64>,
    pub seconds: f64,
}

impl RefreshReport {
    /// Rows stored, all tables together.
    pub fn stored(&self) -> u64 {
        self.tables.values().map(|t| t.stored).sum()
    }
}

/// Loads what changed in `store` since the last refresh into `wh`, with the default options.
/// Fails with [`RefreshError::Busy`] while another process refreshes.
pub async fn refresh(store: &Store, wh: &Warehouse) -> Result<RefreshReport> {
    refresh_with(store, wh, &RefreshOptions::default()).await
}

/// [`refresh`] with explicit options.
pub async fn refresh_with(store: &Store, wh: &Warehouse, opts: &RefreshOptions) -> Result<RefreshReport> {
    let started = Instant::now();
    if let Lease::HeldBy { holder, until } = store.take_refresh_lease(&opts.holder, opts.lease).await? {
        return Err(RefreshError::Busy { holder, until });
    }
    let outcome = load_all(store, wh, opts).await;
    if let Err(e) = store.release_refresh_lease(&opts.holder).await {
        tracing::warn!(error = %e, "cannot release the warehouse refresh lease; it runs out by itself");
    }
    let mut report = outcome?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The refresh `lector serve` runs now and then every so often, for as long as it serves. A
/// refresh another process is running is skipped; failures are logged and retried at the next
/// tick.
pub struct ScheduledRefresh {
    task: tokio::task::JoinHandle<()>,
    store: Store,
    holder: String,
}

impl ScheduledRefresh {
    pub fn start(store: Store, wh: Arc<Warehouse>, every: Duration) -> ScheduledRefresh {
        let opts = RefreshOptions::default();
        let holder = opts.holder.clone();
        let task = tokio::spawn(refresh_every(store.clone(), wh, every, opts));
        ScheduledRefresh { task, store, holder }
    }

    /// Stops the schedule. A refresh cut short commits nothing more (its unfinished batch stays
    /// invisible) and its lease is given back, so another server need not wait for it to expire.
    pub async fn stop(self) {
        self.task.abort();
        // Only once the task is gone can it no longer renew the lease.
        let _ = self.task.await;
        if let Err(e) = self.store.release_refresh_lease(&self.holder).await {
            tracing::warn!(error = %e, "cannot release the warehouse refresh lease; it runs out by itself");
        }
    }
}

async fn refresh_every(store: Store, wh: Arc<Warehouse>, every: Duration, opts: RefreshOptions) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match refresh_with(&store, &wh, &opts).await {
            Ok(r) if r.batches.is_empty() => tracing::debug!("the warehouse is up to date"),
            Ok(r) => tracing::info!(batches = r.batches.len(), stored = r.stored(), seconds = r.seconds, "refreshed the warehouse"),
            Err(RefreshError::Busy { holder, .. }) => tracing::info!(%holder, "skipped a warehouse refresh: another one is running"),
            Err(e) => tracing::error!(error = %with_causes(&e), "the scheduled warehouse refresh failed"),
        }
    }
}

/// An error and its causes, on one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

async fn load_all(store: &Store, wh: &Warehouse, opts: &RefreshOptions) -> Result<RefreshReport> {
    let now = Utc::now();
    let settled_before = match store.backend() {
        Backend::Postgres => now - chrono::Duration::from_std(opts.settle).unwrap_or_else(|_| chrono::Duration::hours(1)),
        Backend::Sqlite => now,
    };
    let mut run = Run {
        store,
        wh,
        opts,
        keys: ReaderKeyer::from_store(store).await?,
        now,
        settled_before,
        report: RefreshReport { tables: TABLES.iter().map(|t| (*t, TableCounts::default())).collect(), ..Default::default() },
    };
    load_readers(&mut run).await?;
    load_by_id::<Interactions>(&mut run).await?;
    load_by_id::<CaseEvents>(&mut run).await?;
    load_by_id::<Unsubscribes>(&mut run).await?;
    load_messages(&mut run).await?;
    Ok(run.report)
}

/// One refresh in progress.
struct Run<'a> {
    store: &'a Store,
    wh: &'a Warehouse,
    opts: &'a RefreshOptions,
    keys: ReaderKeyer,
    now: DateTime<Utc>,
    settled_before: DateTime<Utc>,
    report: RefreshReport,
}

/// Rows gathered for the next batch of one table.
#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Source rows read for them (may be more: readers unchanged, messages cancelled).
    read: u64,
}

impl Pending {
    fn add(&mut self, rows: RecordBatch, read: usize) {
        self.rows += rows.num_rows();
        self.read += read as u64;
        if rows.num_rows() > 0 {
            self.batches.push(rows);
        }
    }
}

impl Run<'_> {
    fn page(&self, after_id: i64) -> PageRequest {
        PageRequest { after_id, limit: self.opts.page_rows, settled_before: self.settled_before }
    }

    fn is_full(&self, pending: &Pending) -> bool {
        pending.rows >= self.opts.batch_rows
    }

    /// A page is the last when it came back short.
    fn is_last<T>(&self, page: &[T]) -> bool {
        (page.len() as i64) < self.opts.page_rows.max(1)
    }

    /// The number `key` of `source`'s last watermark; 0 before the first batch.
    async fn watermark(&self, source: &str, key: &str) -> Result<i64> {
        let mark = self.wh.last_watermark(source).await?;
        Ok(mark.as_ref().and_then(|m| m.get(key)).and_then(serde_json::Value::as_i64).unwrap_or(0))
    }

    /// Writes the gathered rows of `table` as one batch of `source`, under the renewed lease.
    async fn commit(
        &mut self,
        source: &str,
        table: &'static str,
        pending: Pending,
        watermark: Option<serde_json::Value>,
    ) -> Result<BatchRecord> {
        if let Lease::HeldBy { holder, until } = self.store.take_refresh_lease(&self.opts.holder, self.opts.lease).await? {
            return Err(RefreshError::Busy { holder, until });
        }
        let rows = pending.rows as u64;
        let record = self
            .wh
            .write_batch(NewBatch {
                source: source.to_string(),
                tables: vec![(table, pending.batches)],
                rows_in: pending.read,
                watermark,
                ..Default::default()
            })
            .await?;
        let counts = self.report.tables.entry(table).or_default();
        counts.extracted += rows;
        if let Some(t) = record.table(table) {
            counts.stored += t.rows;
            counts.duplicates += t.duplicates;
        }
        self.report.batches.push(record.id);
        tracing::debug!(batch = record.id, source, table, rows, "wrote a warehouse batch");
        Ok(record)
    }
}

/// An append-only store table read after an id watermark.
trait IdSource {
    const SOURCE: &'static str;
    const TABLE: &'static str;
    type Row;
    async fn page(store: &Store, page: PageRequest) -> lector_store::Result<Vec<Self::Row>>;
    fn id(row: &Self::Row) -> i64;
    fn rows(rows: &[Self::Row], keys: &ReaderKeyer) -> Result<RecordBatch, ArrowError>;
}

struct Interactions;
struct CaseEvents;
struct Unsubscribes;

impl IdSource for Interactions {
    const SOURCE: &'static str = SOURCE_INTERACTIONS;
    const TABLE: &'static str = "fact_interaction";
    type Row = InteractionRow;
    async fn page(store: &Store, page: PageRequest) -> lector_store::Result<Vec<InteractionRow>> {
        store.interactions_since(page).await
    }
    fn id(row: &InteractionRow) -> i64 {
        row.id
    }
    fn rows(rows: &[InteractionRow], keys: &ReaderKeyer) -> Result<RecordBatch, ArrowError> {
        facts::interactions(rows, keys)
    }
}

impl IdSource for CaseEvents {
    const SOURCE: &'static str = SOURCE_CASE_EVENTS;
    const TABLE: &'static str = "fact_case_event";
    type Row = CaseEventRow;
    async fn page(store: &Store, page: PageRequest) -> lector_store::Result<Vec<CaseEventRow>> {
        store.case_events_since(page).await
    }
    fn id(row: &CaseEventRow) -> i64 {
        row.id
    }
    fn rows(rows: &[CaseEventRow], keys: &ReaderKeyer) -> Result<RecordBatch, ArrowError> {
        facts::case_events(rows, keys)
    }
}

impl IdSource for Unsubscribes {
    const SOURCE: &'static str = SOURCE_UNSUBSCRIBES;
    const TABLE: &'static str = "fact_message_event";
    type Row = UnsubscribeRow;
    async fn page(store: &Store, page: PageRequest) -> lector_store::Result<Vec<UnsubscribeRow>> {
        store.unsubscribes_since(page).await
    }
    fn id(row: &UnsubscribeRow) -> i64 {
        row.id
    }
    fn rows(rows: &[UnsubscribeRow], keys: &ReaderKeyer) -> Result<RecordBatch, ArrowError> {
        facts::message_events(&rows.iter().map(MessageEvent::unsubscribe).collect::<Vec<_>>(), keys)
    }
}

/// Loads `S` after its watermark; each batch records the last id it holds.
async fn load_by_id<S: IdSource>(run: &mut Run<'_>) -> Result<()> {
    const KEY: &str = "after_id";
    let mut after = run.watermark(S::SOURCE, KEY).await?;
    let mut pending = Pending::default();
    loop {
        let page = S::page(run.store, run.page(after)).await?;
        let last = run.is_last(&page);
        if let Some(row) = page.last() {
            after = S::id(row);
            pending.add(S::rows(&page, &run.keys)?, page.len());
        }
        if pending.rows > 0 && (last || run.is_full(&pending)) {
            run.commit(S::SOURCE, S::TABLE, std::mem::take(&mut pending), Some(serde_json::json!({ KEY: after }))).await?;
        }
        if last {
            return Ok(());
        }
    }
}

/// Loads the outcomes of messages that reached a final status, then marks them exported. A
/// cancelled message is marked without a row: it never left, so it has no outcome.
async fn load_messages(run: &mut Run<'_>) -> Result<()> {
    let (mut after, mut pending, mut done) = (0, Pending::default(), Vec::new());
    loop {
        let page = run.store.unexported_message_outcomes(after, run.opts.page_rows).await?;
        let last = run.is_last(&page);
        if let Some(m) = page.last() {
            after = m.id;
            let events: Vec<MessageEvent> = page.iter().filter_map(MessageEvent::outcome).collect();
            pending.add(facts::message_events(&events, &run.keys)?, page.len());
            done.extend(page.iter().map(|m| m.id));
        }
        if last || run.is_full(&pending) {
            if pending.rows > 0 {
                run.commit(SOURCE_MESSAGES, "fact_message_event", std::mem::take(&mut pending), None).await?;
            }
            if !done.is_empty() {
                run.store.mark_messages_exported(&std::mem::take(&mut done)).await?;
            }
        }
        if last {
            return Ok(());
        }
    }
}

/// Appends a `dim_reader` version for each reader whose attributes changed, then records the
/// new hashes in the store.
///
/// Each readers batch carries a generation number, and the store records the generation with
/// the hashes. Equal numbers: the store's hashes describe the warehouse, and a reader changed
/// when its hash differs from the stored one. Different numbers (a crash between a commit and
/// its record, or a warehouse replaced or restored): the store's hashes are not trusted and each
/// reader is compared with its current version in the warehouse instead, so no version is
/// appended twice and none is missed. The refresh then records every hash, making the numbers
/// equal again.
async fn load_readers(run: &mut Run<'_>) -> Result<()> {
    const KEY: &str = "generation";
    let mut committed = run.watermark(SOURCE_READERS, KEY).await?;
    let mut recorded = run.store.exported_reader_generation().await?;
    let trusted = committed == recorded;
    let (mut after, mut pending, mut to_record) = (0, Pending::default(), Vec::new());
    loop {
        let page = run.store.readers_for_warehouse(after, run.opts.page_rows).await?;
        let last = run.is_last(&page);
        if let Some(r) = page.last() {
            after = r.id;
            let keys: Vec<String> = page.iter().map(|r| run.keys.key(r.id)).collect();
            let current = if trusted { HashMap::new() } else { readers::current_hashes(run.wh, &keys).await? };
            let mut changed = Vec::new();
            for (r, key) in page.iter().zip(keys) {
                let stored = r.exported.as_ref();
                let (previous, in_warehouse) = if trusted {
                    (stored.map_or(Previous::None, |e| Previous::RecordedAt(e.exported_at)), stored.map(|e| e.attr_hash.clone()))
                } else {
                    let found = current.get(&key).cloned();
                    (if found.is_some() { Previous::Unknown } else { Previous::None }, found)
                };
                let version = Version::new(r, key, previous, run.now);
                if stored.map(|e| &e.attr_hash) != Some(&version.hash) {
                    to_record.push((r.id, version.hash.clone()));
                }
                if in_warehouse.as_ref() != Some(&version.hash) {
                    changed.push(version);
                }
            }
            pending.add(readers::dimension_rows(&changed)?, page.len());
        }
        if last || run.is_full(&pending) {
            if pending.rows > 0 {
                let generation = committed.max(recorded) + 1;
                run.commit(SOURCE_READERS, "dim_reader", std::mem::take(&mut pending), Some(serde_json::json!({ KEY: generation })))
                    .await?;
                committed = generation;
            }
            if !to_record.is_empty() || committed != recorded {
                run.store.record_exported_readers(committed, &std::mem::take(&mut to_record)).await?;
                recorded = committed;
            }
        }
        if last {
            return Ok(());
        }
    }
}
