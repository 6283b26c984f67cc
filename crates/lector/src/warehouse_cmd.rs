//! `lector warehouse …`: the data dictionary, read-only SQL and the load history of the
//! warehouse under the data directory (or `[warehouse] root`).

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use lector_warehouse::etl::{refresh, RefreshReport};
use lector_warehouse::{BatchRecord, QueryResult, Warehouse, WarehouseConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod load;

#[derive(Debug, Subcommand)]
pub enum WarehouseCommand {
    /// Shows the data dictionary (数据字典): tables, columns, rows stored and freshness.
    Describe {
        /// One table (default: all).
        table: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Runs one read-only SQL query (SELECT, WITH, VALUES, EXPLAIN).
    Sql {
        query: String,
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
    },
    /// Lists the loads (装载批次), oldest first.
    Batches {
        #[arg(long)]
        json: bool,
    },
    /// Loads what changed in the operational store since the last refresh (读者、联系记录、工单、消息).
    Refresh {
        #[arg(long)]
        json: bool,
    },
    /// Loads a circulation file (借阅 loans, 入馆 visits, 电子资源 eresource, 单册 items) as one batch.
    Load(load::LoadArgs),
}

/// Minutes between scheduled refreshes when `[warehouse] refresh_minutes` is unset.
const DEFAULT_REFRESH_MINUTES: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

/// `[warehouse]` in `lector.toml`, or `LECTOR_WAREHOUSE_ROOT` …; unset values keep the defaults.
#[derive(Debug, Default, Deserialize)]
pub struct WarehouseSection {
    /// The warehouse folder; relative to the data directory (default `warehouse`).
    root: Option<PathBuf>,
    /// Memory one query may use, in MiB.
    memory_limit_mb: Option<usize>,
    /// Seconds a query may run.
    query_timeout_secs: Option<u64>,
    /// Rows a query returns at most.
    max_rows: Option<usize>,
    /// Minutes between the refreshes `lector serve` runs (default 60; 0 turns them off).
    refresh_minutes: Option<u64>,
}

impl WarehouseSection {
    pub fn config(&self, data_dir: &Path) -> WarehouseConfig {
        let mut cfg = WarehouseConfig::in_data_dir(data_dir);
        if let Some(root) = &self.root {
            cfg.root = data_dir.join(root);
        }
        cfg.memory_limit_mb = self.memory_limit_mb.unwrap_or(cfg.memory_limit_mb);
        cfg.query_timeout_secs = self.query_timeout_secs.unwrap_or(cfg.query_timeout_secs);
        cfg.max_rows = self.max_rows.unwrap_or(cfg.max_rows);
        cfg
    }

    /// How often `lector serve` refreshes the warehouse from the store; `None` when turned off.
    pub fn refresh_interval(&self) -> Option<Duration> {
        match self.refresh_minutes.unwrap_or(DEFAULT_REFRESH_MINUTES) {
            0 => None,
            minutes => Some(Duration::from_secs(minutes.saturating_mul(60))),
        }
    }
}

pub async fn open(cfg: &WarehouseConfig) -> anyhow::Result<Warehouse> {
    Warehouse::open(cfg.clone()).await.with_context(|| format!("cannot open the warehouse {}", cfg.root.display()))
}

pub(crate) async fn run(settings: &crate::Settings, command: &WarehouseCommand) -> anyhow::Result<()> {
    let cfg = &settings.warehouse;
    let warehouse = open(cfg).await?;
    match command {
        WarehouseCommand::Load(args) => {
            let store = crate::open_store(&settings.database_url).await?;
            load::run(&store, &warehouse, args).await?;
        }
        WarehouseCommand::Refresh { json } => {
            let store = crate::open_store(&settings.database_url).await?;
            let outcome = refresh(&store, &warehouse).await;
            store.close().await;
            let report = outcome.context("数据仓库刷新失败 (the warehouse refresh failed)")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", refresh_text(&report));
            }
        }
        WarehouseCommand::Describe { table, json } => {
            let dictionary = warehouse.describe(table.as_deref()).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&dictionary)?);
            } else {
                print!("{}", dictionary.to_text());
            }
        }
        WarehouseCommand::Sql { query, format } => {
            let result = warehouse.sql(query).await?;
            print_result(&result, *format, cfg.max_rows)?;
        }
        WarehouseCommand::Batches { json } => {
            let batches = warehouse.batches().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&batches)?);
            } else if batches.is_empty() {
                println!("尚无装载批次 No batches loaded yet.");
            } else {
                for batch in &batches {
                    println!("{}", batch_line(batch));
                }
            }
        }
    }
    Ok(())
}

/// Per table: rows handed over, stored and already there; then the batches and the time taken.
fn refresh_text(report: &RefreshReport) -> String {
    let mut out = String::new();
    for (table, c) in &report.tables {
        out.push_str(&format!(
            "{table:<20} 提取 extracted {:>8} · 写入 stored {:>8} · 重复 duplicates {:>8}\n",
            c.extracted, c.stored, c.duplicates
        ));
    }
    let batches = report.batches.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(" ");
    if batches.is_empty() {
        out.push_str(&format!("已是最新，未写入批次 Up to date; no batch written ({:.2} s).\n", report.seconds));
    } else {
        out.push_str(&format!("已写入批次 Batches written: {batches} ({:.2} s)\n", report.seconds));
    }
    out
}

fn print_result(result: &QueryResult, format: SqlFormat, max_rows: usize) -> anyhow::Result<()> {
    match format {
        SqlFormat::Table => {
            println!("{}", result.to_text_table()?);
            println!("{0} 行 {0} rows", result.row_count());
        }
        SqlFormat::Csv => print!("{}", result.to_csv()?),
        SqlFormat::Json => {
            let out = serde_json::json!({ "columns": result.columns, "rows": result.to_json_rows()?, "truncated": result.truncated });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    if result.truncated {
        eprintln!(
            "结果只显示前 {max_rows} 行（[warehouse] max_rows） The result was cut at {max_rows} rows ([warehouse] max_rows); add a LIMIT or aggregate."
        );
    }
    Ok(())
}

fn batch_line(b: &BatchRecord) -> String {
    let tables = b.tables.iter().map(|t| format!("{} {}", t.table, t.rows)).collect::<Vec<_>>().join(", ");
    format!(
        "#{} {} {} · 读入 in {} · 写入 out {} · 重复 duplicates {} · 更正 corrections {} · 拒绝 rejected {} · 隔离 quarantined {}{}",
        b.id,
        b.source,
        b.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
        b.rows_in,
        b.rows_out,
        b.duplicates,
        b.corrections,
        b.rejected,
        b.quarantined,
        if tables.is_empty() { String::new() } else { format!(" [{tables}]") }
    )
}
