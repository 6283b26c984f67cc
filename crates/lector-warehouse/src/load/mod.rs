//! Loading circulation files (`lector warehouse load …`): loans, gate visits, EZproxy e-resource
//! use and items, each file as one warehouse batch of source `file:{kind}`.
//!
//! A file is read as a stream in chunks of [`LoadOptions::chunk_rows`] rows; each chunk resolves
//! its readers in a few store queries and becomes one Arrow batch. A row is
//!
//! - **rejected** (counted, listed with row, column, value and reason, never stored) when a value
//!   is impossible: an unparsable or implausible date (before 1900, after tomorrow), a return
//!   before the loan;
//! - **quarantined** (kept in `_quarantine/` with its raw fields) when it names a reader the
//!   store does not know, or an item `dim_item` does not know. Items are checked only once
//!   `dim_item` has rows: until items are loaded any item id is accepted, and an item's barcode
//!   is accepted for its id;
//! - **loaded** otherwise; an event loaded before is counted as a duplicate by its event key.
//!
//! A file that cannot be read, has no data rows, lacks a required column or has not one valid
//! row fails as a whole and writes nothing.
//!
//! Quarantined events are retried by [`retry_quarantine`], which `lector warehouse load` runs
//! before every file (and alone with `--retry-quarantine`): events whose reader and item now
//! exist are loaded as a batch of source `quarantine-retry`. The quarantine still pending is
//! the quarantined events minus those whose event key is stored ([`pending_quarantine`]).

mod circulation;
mod events;
mod ezproxy;
mod fields;
mod items;
mod lookup;
mod retry;
mod times;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use chrono::NaiveDateTime;
use lector_domain::Msg;
use lector_store::reader_refs::ReaderRef;
use lector_store::{Store, StoreError};
use serde::Serialize;

use crate::reader_key::ReaderKeyer;
use crate::{NewBatch, QuarantinedEvent, Warehouse, WarehouseError};
use events::{Event, Keyed};

pub use retry::{pending_quarantine, retry_quarantine, RetryReport};

/// Rows read before they are resolved and turned into one Arrow batch.
pub const DEFAULT_CHUNK_ROWS: usize = 50_000;
/// Row errors kept for the report; more are counted in `rejected` only.
const MAX_KEPT_ERRORS: usize = 100_000;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    Loans,
    Visits,
    Eresource,
    Items,
}

impl LoadKind {
    pub fn name(self) -> &'static str {
        match self {
            LoadKind::Loans => "loans",
            LoadKind::Visits => "visits",
            LoadKind::Eresource => "eresource",
            LoadKind::Items => "items",
        }
    }

    /// The table the file's rows go to.
    pub fn table(self) -> &'static str {
        match self {
            LoadKind::Loans => events::Loan::TABLE,
            LoadKind::Visits => events::Visit::TABLE,
            LoadKind::Eresource => events::EresourceUse::TABLE,
            LoadKind::Items => items::Item::TABLE,
        }
    }
}

/// The layout of a file: Koha's export column names, the plain library format (English or
/// Chinese column names), or an EZproxy log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Koha,
    Plain,
    Ezproxy,
}

impl FileFormat {
    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Koha => "koha",
            FileFormat::Plain => "plain",
            FileFormat::Ezproxy => "ezproxy",
        }
    }

    /// The source name used when none is given: the name reader ids of a Koha file are looked
    /// up under, and the `source` column of the facts.
    pub fn default_source(self) -> &'static str {
        match self {
            FileFormat::Koha => "koha",
            FileFormat::Plain => "file",
            FileFormat::Ezproxy => "ezproxy",
        }
    }
}

/// How to read a file; the format is detected from the headers when not given.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The source system's name (default: by format, see [`FileFormat::default_source`]).
    pub source: Option<String>,
    pub format: Option<FileFormat>,
    pub chunk_rows: usize,
    /// The library's local time now: the limit of plausible dates and the day overdue days of
    /// loans still out are counted to.
    pub now: NaiveDateTime,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { source: None, format: None, chunk_rows: DEFAULT_CHUNK_ROWS, now: chrono::Local::now().naive_local() }
    }
}

/// A row refused, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Row number as a user counts it in the file (the header is row 1 of a CSV).
    pub row: u64,
    pub column: String,
    pub value: String,
    pub reason: Msg,
}

impl RowError {
    fn new(row: u64, column: &str, value: &str, reason: Msg) -> Self {
        RowError { row, column: column.to_string(), value: value.to_string(), reason }
    }
}

/// What loading a file did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub kind: LoadKind,
    pub format: FileFormat,
    pub source: String,
    pub batch_id: u64,
    pub rows_in: u64,
    pub loaded: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub rejected: u64,
    /// The rejected rows (the first [`MAX_KEPT_ERRORS`]).
    pub errors: Vec<RowError>,
    pub seconds: f64,
}

/// Why a file was not loaded; nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is unreadable, empty, of the wrong kind or without one valid row.
    #[error("{0}")]
    File(Msg),
    #[error("业务库出错 (operational store error): {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

impl From<datafusion::arrow::error::ArrowError> for LoadError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        LoadError::Warehouse(WarehouseError::Arrow(e))
    }
}

impl From<datafusion::error::DataFusionError> for LoadError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        LoadError::Warehouse(WarehouseError::Engine(e))
    }
}

pub type Result<T, E = LoadError> = std::result::Result<T, E>;

/// One row read from a file: the event, or why the row is refused; and its raw fields, kept
/// with the event if it has to be quarantined.
pub(crate) struct ReadRow<E> {
    pub row: u64,
    pub raw: serde_json::Value,
    pub parsed: Result<E, RowError>,
}

/// A file read row by row.
pub(crate) trait RowSource<E> {
    fn format(&self) -> FileFormat;
    /// The next row, an error that makes the whole file unreadable, or `None` at the end.
    fn next_row(&mut self) -> Option<Result<ReadRow<E>>>;
}

/// Loads the file at `path` holding `kind` into `wh`, as one batch.
pub async fn load_file(store: &Store, wh: &Warehouse, kind: LoadKind, path: &Path, opts: &LoadOptions) -> Result<LoadReport> {
    let started = Instant::now();
    let source = |format: FileFormat| opts.source.clone().unwrap_or_else(|| format.default_source().to_string());
    let mut report = match kind {
        LoadKind::Loans => {
            let table = circulation::open(path, opts.format)?;
            let src = source(table.format);
            load_rows(store, wh, kind, circulation::loans(table, &src, opts.now)?, &src, opts).await?
        }
        LoadKind::Visits => {
            let table = circulation::open(path, opts.format)?;
            let src = source(table.format);
            load_rows(store, wh, kind, circulation::visits(table, &src, opts.now)?, &src, opts).await?
        }
        LoadKind::Eresource => {
            let src = source(FileFormat::Ezproxy);
            load_rows(store, wh, kind, ezproxy::open(path, opts.format, &src, opts.now)?, &src, opts).await?
        }
        LoadKind::Items => {
            let table = circulation::open(path, opts.format)?;
            let src = source(table.format);
            load_rows(store, wh, kind, items::rows(table, opts.now)?, &src, opts).await?
        }
    };
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Rows gathered for the batch of one file.
#[derive(Default)]
struct Gathered {
    rows_in: u64,
    rejected: u64,
    errors: Vec<RowError>,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
    quarantine: Vec<QuarantinedEvent>,
    accepted: u64,
}

async fn load_rows<E: Event, S: RowSource<E>>(
    store: &Store,
    wh: &Warehouse,
    kind: LoadKind,
    mut rows: S,
    source: &str,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let format = rows.format();
    let resolver = Resolver::new(store, wh, E::HAS_ITEM).await?;
    let mut all = Gathered::default();
    let chunk_rows = opts.chunk_rows.max(1);
    loop {
        let mut chunk = Vec::with_capacity(chunk_rows.min(DEFAULT_CHUNK_ROWS));
        while chunk.len() < chunk_rows {
            match rows.next_row() {
                Some(row) => chunk.push(row?),
                None => break,
            }
        }
        if chunk.is_empty() {
            break;
        }
        all.rows_in += chunk.len() as u64;
        let mut parsed = Vec::with_capacity(chunk.len());
        for r in chunk {
            match r.parsed {
                Ok(event) => parsed.push((r.row, r.raw, event)),
                Err(e) => {
                    all.rejected += 1;
                    if all.errors.len() < MAX_KEPT_ERRORS {
                        all.errors.push(e);
                    }
                }
            }
        }
        let resolved = resolver.resolve(parsed).await?;
        all.accepted += resolved.keyed.len() as u64;
        all.quarantine.extend(resolved.quarantine);
        if !resolved.keyed.is_empty() {
            all.batches.push(E::rows(&resolved.keyed, opts.now)?);
        }
    }
    if all.rows_in == 0 {
        return Err(LoadError::File(Msg::new(
            "文件中没有数据行（只有表头或为空）",
            "the file has no data rows (only a header, or nothing)",
        )));
    }
    if all.accepted == 0 && all.quarantine.is_empty() {
        let first = all.errors.first().map(|e| format!("row {} {}: {}", e.row, e.column, e.reason)).unwrap_or_default();
        return Err(LoadError::File(Msg::new(
            format!("文件的 {} 行无一有效，可能选错了文件或列：{first}", all.rows_in),
            format!("none of the file's {} rows is valid; is it the right file, with the right columns? {first}", all.rows_in),
        )));
    }
    let quarantined = all.quarantine.len() as u64;
    let record = wh
        .write_batch(NewBatch {
            source: format!("file:{}", kind.name()),
            tables: vec![(E::TABLE, all.batches)],
            rows_in: all.rows_in,
            rejected: all.rejected,
            quarantine: all.quarantine,
            watermark: None,
        })
        .await?;
    let written = record.table(E::TABLE);
    Ok(LoadReport {
        kind,
        format,
        source: source.to_string(),
        batch_id: record.id,
        rows_in: all.rows_in,
        loaded: written.map_or(0, |t| t.rows),
        duplicates: written.map_or(0, |t| t.duplicates),
        quarantined,
        rejected: all.rejected,
        errors: all.errors,
        seconds: 0.0,
    })
}

/// Events of a chunk with their readers and items looked up.
struct Resolved<E> {
    keyed: Vec<Keyed<E>>,
    quarantine: Vec<QuarantinedEvent>,
}

/// Looks up the readers and items events name: readers in the store, items in `dim_item`.
struct Resolver<'a> {
    store: &'a Store,
    keys: ReaderKeyer,
    /// Item id or barcode → item id; `None` while `dim_item` is empty (any item accepted).
    items: Option<HashMap<String, String>>,
}

impl<'a> Resolver<'a> {
    async fn new(store: &'a Store, wh: &Warehouse, check_items: bool) -> Result<Resolver<'a>> {
        let items = if check_items { lookup::known_items(wh).await? } else { None };
        Ok(Resolver { store, keys: ReaderKeyer::from_store(store).await?, items })
    }

    /// Keys the events whose reader and item exist; quarantines the others with the reason.
    async fn resolve<E: Event>(&self, events: Vec<(u64, serde_json::Value, E)>) -> Result<Resolved<E>> {
        let refs: Vec<ReaderRef> = events.iter().filter_map(|(_, _, e)| e.reader().cloned()).collect();
        let readers = if refs.is_empty() { HashMap::new() } else { self.store.resolve_reader_refs(&refs).await? };
        let mut out = Resolved { keyed: Vec::with_capacity(events.len()), quarantine: Vec::new() };
        for (row, raw, mut event) in events {
            let reader_id = match event.reader() {
                None => None,
                Some(r) => match readers.get(r) {
                    Some(id) => Some(*id),
                    None => {
                        out.quarantine.push(quarantined(row, raw, &event, unknown_reader(r))?);
                        continue;
                    }
                },
            };
            if let (Some(items), Some(item)) = (&self.items, event.item_mut()) {
                match items.get(item.as_str()) {
                    Some(id) => *item = id.clone(),
                    None => {
                        let reason = Msg::new(format!("单册 {item} 不存在"), format!("unknown item {item}"));
                        out.quarantine.push(quarantined(row, raw, &event, reason)?);
                        continue;
                    }
                }
            }
            out.keyed.push(Keyed { reader_key: reader_id.map(|id| self.keys.key(id)), event });
        }
        Ok(out)
    }
}

fn unknown_reader(r: &ReaderRef) -> Msg {
    match r {
        ReaderRef::Card(card) => Msg::new(format!("读者证号 {card} 不存在"), format!("unknown reader card {card}")),
        ReaderRef::External { source, id } => {
            Msg::new(format!("{source} 的读者编号 {id} 不存在"), format!("unknown reader: {source} id {id}"))
        }
    }
}

/// The event kept aside: its row and raw fields as read, and the parsed event a retry loads.
fn quarantined<E: Event>(row: u64, raw: serde_json::Value, event: &E, reason: Msg) -> Result<QuarantinedEvent> {
    let parsed = serde_json::to_value(event)
        .map_err(|e| LoadError::File(Msg::new(format!("第 {row} 行无法隔离：{e}"), format!("row {row} cannot be quarantined: {e}"))))?;
    Ok(QuarantinedEvent {
        table: E::TABLE,
        event_key: event.event_key().to_string(),
        reason: reason.to_string(),
        record: serde_json::json!({ "row": row, "fields": raw, "event": parsed }),
    })
}
