//! The data dictionary (数据字典): every table and column from [`crate::schema`], with what the
//! batch records say about its contents — rows stored, batches, last load and its age — and
//! the rules an engine reading the files directly must follow.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lector_domain::Msg;
use serde::Serialize;

use crate::batch::BatchRecord;
use crate::calendar;
use crate::error::{Result, WarehouseError};
use crate::rows::GENERATED_TABLE;
use crate::schema::{self, ColumnDef, TableDef, TableKind};
use crate::session::{self, VERSION_COLUMNS};

#[derive(Debug, Clone, Serialize)]
pub struct Dictionary {
    /// Where the files are.
    pub root: String,
    pub batches: usize,
    pub last_batch: Option<u64>,
    pub last_loaded_at: Option<DateTime<Utc>>,
    /// What every reader of the files must know.
    pub rules: Vec<Msg>,
    pub tables: Vec<TableInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub name: &'static str,
    /// `fact`, `dimension` or `generated`.
    pub kind: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub lineage_zh: &'static str,
    pub lineage_en: &'static str,
    /// Where the table's files are, relative to the root (`None` for a generated table).
    pub files: Option<String>,
    /// The column a fact's time and partition come from.
    pub time_column: Option<&'static str>,
    /// Rows stored by committed batches (a correction is a row too); for a generated table,
    /// the rows it has now.
    pub rows: u64,
    /// Committed batches that stored rows in the table.
    pub batches: usize,
    pub last_loaded_at: Option<DateTime<Utc>>,
    /// Seconds since the last load (freshness).
    pub age_secs: Option<i64>,
    /// Whether queries keep only the latest batch per event key (the table had corrections).
    pub latest_per_key: bool,
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    pub name: &'static str,
    pub sql_type: &'static str,
    pub nullable: bool,
    pub zh: &'static str,
    pub en: &'static str,
    /// Computed by the table's view rather than stored in its files.
    pub computed: bool,
}

/// The dictionary of every table, or of `table` alone.
pub fn describe(root: String, records: &[Arc<BatchRecord>], table: Option<&str>, now: DateTime<Utc>) -> Result<Dictionary> {
    let defs: Vec<&'static TableDef> = match table {
        None => schema::tables().iter().collect(),
        Some(name) => vec![schema::table(name).ok_or_else(|| {
            let known = schema::tables().iter().map(|t| t.name).collect::<Vec<_>>().join(", ");
            WarehouseError::invalid(format!("没有名为 {name} 的表，可用：{known}"), format!("no table named {name}; tables: {known}"))
        })?],
    };
    let last = records.last();
    Ok(Dictionary {
        root,
        batches: records.len(),
        last_batch: last.map(|r| r.id),
        last_loaded_at: last.map(|r| r.finished_at),
        rules: rules(),
        tables: defs.into_iter().map(|def| table_info(def, records, now)).collect(),
    })
}

fn rules() -> Vec<Msg> {
    vec![
        Msg::new(
            "只有 _batches/ 中批次记录列出的文件才已提交；其他文件属于未完成的装载，不可读取。",
            "Only files listed by a batch record in _batches/ are committed; any other file belongs to an unfinished load and must not be read.",
        ),
        Msg::new(
            "事实表中同一 event_key 以 batch_id 最大的行为准（更正取代旧值）；直接读取 Parquet 文件的引擎须照此处理。",
            "In a fact, the row with the highest batch_id is the valid one for its event_key (a correction supersedes); an engine reading the Parquet files directly must do the same.",
        ),
        Msg::new(
            "维度的每个版本自 valid_from 起有效，至同一键下一版本的 valid_from 为止（valid_to）；is_current 为最新版本。",
            "A dimension version is valid from its valid_from until the next version's valid_from for the same key (valid_to); is_current marks the latest.",
        ),
    ]
}

fn table_info(def: &'static TableDef, records: &[Arc<BatchRecord>], now: DateTime<Utc>) -> TableInfo {
    let generated = def.name == GENERATED_TABLE;
    let loads: Vec<&BatchRecord> = records.iter().filter(|r| r.table(def.name).is_some_and(|t| t.rows > 0)).map(Arc::as_ref).collect();
    let last_loaded_at = loads.last().map(|r| r.finished_at);
    let rows = if generated {
        calendar::day_count(&calendar::covered_years(records, now.date_naive()))
    } else {
        loads.iter().filter_map(|r| r.table(def.name)).map(|t| t.rows).sum()
    };
    let (kind, files, time_column) = match def.kind {
        _ if generated => ("generated", None, None),
        TableKind::Fact { time_column } => ("fact", Some(format!("{}/month=YYYY-MM/bNNNNNNNN-N.parquet", def.name)), Some(time_column)),
        TableKind::Dimension => ("dimension", Some(format!("{}/bNNNNNNNN-N.parquet", def.name)), None),
    };
    let computed = session::version_key(def.name).map(|_| VERSION_COLUMNS.as_slice()).unwrap_or_default();
    let columns = def.columns.iter().map(|c| column_info(c, false)).chain(computed.iter().map(|c| column_info(c, true))).collect();
    TableInfo {
        name: def.name,
        kind,
        zh: def.zh,
        en: def.en,
        lineage_zh: def.lineage_zh,
        lineage_en: def.lineage_en,
        files,
        time_column,
        rows,
        batches: loads.len(),
        last_loaded_at,
        age_secs: last_loaded_at.map(|t| (now - t).num_seconds()),
        latest_per_key: session::needs_latest_per_key(records, def.name),
        columns,
    }
}

fn column_info(c: &ColumnDef, computed: bool) -> ColumnInfo {
    ColumnInfo { name: c.name, sql_type: c.ty.sql(), nullable: c.nullable, zh: c.zh, en: c.en, computed }
}

impl Dictionary {
    /// The dictionary for the terminal: a summary line per table, then its columns.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let last = match (self.last_batch, self.last_loaded_at) {
            (Some(id), Some(at)) => format!("最近批次 last batch #{id} {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
            _ => "尚无装载 no loads yet".to_string(),
        };
        let _ = writeln!(out, "数据仓库 Warehouse {} — {} 个批次 batches; {last}", self.root, self.batches);
        for table in &self.tables {
            let _ = writeln!(out, "\n{} [{}] {}", table.name, table.kind, table.zh);
            let _ = writeln!(out, "  {}", table.en);
            let _ = writeln!(out, "  来源 lineage: {} / {}", table.lineage_zh, table.lineage_en);
            if let Some(files) = &table.files {
                let _ = writeln!(out, "  文件 files: {files}");
            }
            let freshness = match (table.last_loaded_at, table.age_secs) {
                (Some(at), Some(age)) => format!("最近装载 last load {} ({})", at.format("%Y-%m-%d %H:%M:%S UTC"), age_text(age)),
                _ => "未装载 never loaded".to_string(),
            };
            let _ = writeln!(out, "  {} 行 rows · {} 个批次 batches · {freshness}", table.rows, table.batches);
            if table.latest_per_key {
                let _ = writeln!(out, "  有更正：同一 event_key 取最新批次 has corrections: latest batch per event_key");
            }
            let width = table.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
            for c in &table.columns {
                let flags = match (c.nullable, c.computed) {
                    (_, true) => "computed",
                    (false, false) => "NOT NULL",
                    (true, false) => "",
                };
                let _ = writeln!(out, "    {:width$}  {:9} {:8}  {} — {}", c.name, c.sql_type, flags, c.zh, c.en);
            }
        }
        if self.tables.len() > 1 {
            let _ = writeln!(out, "\n规则 Rules:");
            for rule in &self.rules {
                let _ = writeln!(out, "  · {}\n    {}", rule.zh, rule.en);
            }
        }
        out
    }
}

/// How long ago, roughly: `5 分钟前 5 min ago`.
fn age_text(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s} 秒前 {s} s ago"),
        s if s < 7200 => format!("{0} 分钟前 {0} min ago", s / 60),
        s if s < 172_800 => format!("{0} 小时前 {0} h ago", s / 3600),
        s => format!("{0} 天前 {0} days ago", s / 86_400),
    }
}
