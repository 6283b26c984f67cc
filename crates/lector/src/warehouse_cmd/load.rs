//! `lector warehouse load KIND FILE`: loads a circulation file into the warehouse as one batch.
//! Every run first retries the quarantined events whose reader has appeared since
//! (`--retry-quarantine` alone does only that).

use anyhow::Context;
use clap::{Args, ValueEnum};
use lector_store::Store;
use lector_warehouse::load::{self, FileFormat, LoadKind, LoadOptions, LoadReport, RetryReport, RowError};
use lector_warehouse::Warehouse;
use std::path::{Path, PathBuf};

/// How many rejected rows are printed; `--errors FILE` writes them all.
const SHOWN_ERRORS: usize = 20;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// What the file holds.
    #[arg(value_enum, required_unless_present = "retry_quarantine")]
    kind: Option<Kind>,
    /// The file: CSV/TSV (any encoding) or Excel; an EZproxy log for `eresource`.
    #[arg(required_unless_present = "retry_quarantine", requires = "kind")]
    file: Option<PathBuf>,
    /// The source system's name; Koha reader ids are looked up under it (default: koha, file or ezproxy, by format).
    #[arg(long)]
    source: Option<String>,
    /// The file's layout (default: detected from its columns).
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[arg(long)]
    json: bool,
    /// Writes every rejected row to this CSV file (row, column, value, reason, 原因).
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    /// Only retries the quarantined events (every load does so first).
    #[arg(long)]
    retry_quarantine: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Loans,
    Visits,
    Eresource,
    Items,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Koha,
    Plain,
    Ezproxy,
}

pub(super) async fn run(store: &Store, warehouse: &Warehouse, args: &LoadArgs) -> anyhow::Result<()> {
    let opts = LoadOptions {
        source: args.source.clone(),
        format: args.format.map(|f| match f {
            Format::Koha => FileFormat::Koha,
            Format::Plain => FileFormat::Plain,
            Format::Ezproxy => FileFormat::Ezproxy,
        }),
        ..LoadOptions::default()
    };
    let retry = load::retry_quarantine(store, warehouse, opts.now).await.context("cannot retry the quarantined events")?;
    let loaded = match (args.kind, &args.file) {
        (Some(kind), Some(file)) => {
            let kind = match kind {
                Kind::Loans => LoadKind::Loans,
                Kind::Visits => LoadKind::Visits,
                Kind::Eresource => LoadKind::Eresource,
                Kind::Items => LoadKind::Items,
            };
            let report = load::load_file(store, warehouse, kind, file, &opts)
                .await
                .with_context(|| format!("{} 未装载 was not loaded", file.display()))?;
            Some((file, report))
        }
        _ => None,
    };
    if let (Some(path), Some((_, report))) = (&args.errors, &loaded) {
        write_errors(path, &report.errors)?;
    }
    if args.json {
        let out = serde_json::json!({ "retry": retry, "load": loaded.as_ref().map(|(_, r)| r) });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if retry.pending > 0 || loaded.is_none() {
        println!("{}", retry_line(&retry));
    }
    if let Some((file, report)) = &loaded {
        println!("{}", load_line(file, report));
        for e in report.errors.iter().take(SHOWN_ERRORS) {
            println!("  第 {} 行 row {} · {} · “{}” · {}", e.row, e.row, e.column, e.value, e.reason);
        }
        if report.rejected > 0 && args.errors.is_none() {
            println!("  完整错误报告 Full report: lector warehouse load … --errors FILE.csv");
        }
    }
    Ok(())
}

fn retry_line(r: &RetryReport) -> String {
    format!(
        "隔离重试 Quarantine retry{}: 待处理 pending {} · 装载 loaded {} · 仍隔离 still pending {} · 用时 {:.1} s",
        r.batch_id.map(|id| format!(" #{id}")).unwrap_or_default(),
        r.pending,
        r.loaded,
        r.still_pending,
        r.seconds
    )
}

fn load_line(file: &Path, r: &LoadReport) -> String {
    format!(
        "#{} {} {} [{}, source {}] 读入 in {} · 装载 loaded {} · 重复 duplicates {} · 隔离 quarantined {} · 拒绝 rejected {} · 用时 {:.1} s",
        r.batch_id,
        r.kind.table(),
        file.display(),
        r.format.name(),
        r.source,
        r.rows_in,
        r.loaded,
        r.duplicates,
        r.quarantined,
        r.rejected,
        r.seconds
    )
}

fn write_errors(path: &Path, errors: &[RowError]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record(["row", "column", "value", "reason", "原因"])?;
    for e in errors {
        out.write_record([e.row.to_string().as_str(), &e.column, &e.value, &e.reason.en, &e.reason.zh])?;
    }
    out.flush()?;
    Ok(())
}
