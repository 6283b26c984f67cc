//! DataFusion sessions over the committed batches: each table is registered from the files the
//! batch records list (never from a directory listing, so unfinished loads stay invisible), as
//! the view analysts query — the latest batch per event key where a fact had corrections, the
//! type-2 validity of the dimensions' versions — with `dim_date` generated in memory.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::batch::BatchRecord;
use crate::calendar;
use crate::error::Result;
use crate::rows::{BATCH_ID, EVENT_KEY, GENERATED_TABLE};
use crate::schema::{self, ColumnDef, ColumnType, TableDef, TableKind};
use crate::storage::Storage;

/// Dimensions kept as versions, with the column that names the thing versioned.
const VERSIONED: &[(&str, &str)] = &[("dim_reader", "reader_key"), ("dim_item", "item_id")];
/// The column versions are ordered by.
const VALID_FROM: &str = "valid_from";

/// The columns the views of versioned dimensions add after the stored ones.
pub const VERSION_COLUMNS: [ColumnDef; 2] = [
    ColumnDef {
        name: "valid_to",
        ty: ColumnType::Timestamp,
        nullable: true,
        zh: "此版本失效时间（下一版本的生效时间；当前版本为空）",
        en: "when this version stopped being valid (the next version's valid_from; empty for the current one)",
    },
    ColumnDef {
        name: "is_current",
        ty: ColumnType::Bool,
        nullable: false,
        zh: "是否为当前版本",
        en: "whether this is the current version",
    },
];

/// The key a versioned dimension's versions belong to.
pub fn version_key(table: &str) -> Option<&'static str> {
    VERSIONED.iter().find(|(t, _)| *t == table).map(|(_, key)| *key)
}

/// A session whose queries may use at most `memory_limit_mb` and no disk, and can reach the
/// warehouse's files only (the local file system is not registered).
pub fn context(storage: &Storage, memory_limit_mb: usize) -> Result<SessionContext> {
    let pool = GreedyMemoryPool::new(memory_limit_mb.saturating_mul(1024 * 1024));
    // Naming the largest consumers makes a memory-limit error say which step was too big.
    let top = NonZeroUsize::MIN.saturating_add(2);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(TrackConsumersPool::new(pool, top)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .build_arc()?;
    runtime.deregister_object_store(ObjectStoreUrl::local_filesystem().as_ref())?;
    runtime.register_object_store(storage.url().as_ref(), storage.object_store());
    Ok(SessionContext::new_with_config_rt(SessionConfig::new().with_information_schema(true), runtime))
}

/// A session with every table of the star schema as analysts see it.
pub async fn analyst_context(storage: &Storage, records: &[Arc<BatchRecord>], memory_limit_mb: usize) -> Result<SessionContext> {
    let ctx = context(storage, memory_limit_mb)?;
    for def in schema::tables() {
        if def.name == GENERATED_TABLE {
            let dates = calendar::dim_date(def, calendar::covered_years(records, chrono::Local::now().date_naive()))?;
            ctx.register_table(def.name, Arc::new(MemTable::try_new(def.schema(), vec![vec![dates]])?))?;
        } else {
            register_table(&ctx, storage, records, def).await?;
        }
    }
    Ok(ctx)
}

/// The committed files of `table`, oldest batch first.
pub fn committed_files<'a>(records: &'a [Arc<BatchRecord>], table: &str) -> Vec<&'a str> {
    records.iter().filter_map(|r| r.table(table)).flat_map(|t| t.files.iter().map(String::as_str)).collect()
}

/// Whether queries of `table` must keep only the latest batch per event key: some batch
/// corrected one of its events, or was written alongside another batch.
pub fn needs_latest_per_key(records: &[Arc<BatchRecord>], table: &str) -> bool {
    records.iter().any(|r| r.table(table).is_some_and(|t| t.corrections > 0 || r.concurrent))
}

/// Registers `def` under its name as analysts see it.
pub async fn register_table(ctx: &SessionContext, storage: &Storage, records: &[Arc<BatchRecord>], def: &'static TableDef) -> Result<()> {
    let files = committed_files(records, def.name);
    let provider: Arc<dyn TableProvider> = if files.is_empty() {
        Arc::new(EmptyTable::new(def.schema()))
    } else {
        let urls = files.iter().map(|f| ListingTableUrl::parse(format!("{}{f}", storage.url().as_str()))).collect::<Result<Vec<_>, _>>()?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(def.schema());
        Arc::new(ListingTable::try_new(config)?)
    };
    let view = match (def.kind, version_key(def.name)) {
        (_, Some(key)) => Some(versions_sql(def, key)),
        (TableKind::Fact { .. }, None) if needs_latest_per_key(records, def.name) => Some(latest_per_key_sql(def)),
        _ => None,
    };
    match view {
        None => {
            ctx.register_table(def.name, provider)?;
        }
        Some(sql) => {
            // The view's plan holds the files' provider itself, so the helper name can go again.
            ctx.register_table(raw_name(def), provider)?;
            let view = ctx.sql(&sql).await?.into_view();
            ctx.deregister_table(raw_name(def))?;
            ctx.register_table(def.name, view)?;
        }
    }
    Ok(())
}

fn raw_name(def: &TableDef) -> String {
    format!("__{}_files", def.name)
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

fn column_list(def: &TableDef) -> String {
    def.columns.iter().map(|c| quoted(c.name)).collect::<Vec<_>>().join(", ")
}

/// The row of the latest batch for each event key.
fn latest_per_key_sql(def: &TableDef) -> String {
    format!(
        "SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY {batch} DESC) AS \"__rank\" FROM {raw}) WHERE \"__rank\" = 1",
        cols = column_list(def),
        key = quoted(EVENT_KEY),
        batch = quoted(BATCH_ID),
        raw = quoted(&raw_name(def)),
    )
}

/// The versions with `valid_to` (the next version's `valid_from`) and `is_current`.
fn versions_sql(def: &TableDef, key: &str) -> String {
    let window = format!("OVER (PARTITION BY {} ORDER BY {}, {})", quoted(key), quoted(VALID_FROM), quoted(BATCH_ID));
    let [valid_to, is_current] = VERSION_COLUMNS.map(|c| quoted(c.name));
    format!(
        "SELECT {cols}, lead({from}) {window} AS {valid_to}, lead({from}) {window} IS NULL AS {is_current} FROM {raw}",
        cols = column_list(def),
        from = quoted(VALID_FROM),
        raw = quoted(&raw_name(def)),
    )
}
