//! `lector import …` and `lector identity …`: import jobs run in the foreground with a progress
//! bar, recorded like the ones the server runs.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use lector_domain::import::{ImportOptions, JobStatus, ReaderField};
use lector_import::runner::{self, JobSpec};
use lector_import::sql::{SqlSelect, SqlSpec};
use lector_import::{Format, OpenOptions};
use lector_store::imports::{ImportJob, NewImportJob};
use lector_store::{Actor, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Imports readers from a file: CSV/TSV (any encoding), Excel, JSON/NDJSON, Koha CSV, FOLIO JSON.
    Readers {
        file: PathBuf,
        /// csv, tsv, xlsx, xls, json, ndjson, koha or folio (default: detected).
        #[arg(long)]
        format: Option<String>,
        /// Excel: the sheet to read (default: the first with data).
        #[arg(long)]
        sheet: Option<String>,
        /// Text files: the encoding, e.g. gbk (default: detected).
        #[arg(long)]
        encoding: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Imports readers from a PostgreSQL or MySQL/MariaDB database.
    Sql {
        /// postgres://… or mysql://…
        #[arg(long)]
        url: String,
        /// A SELECT statement.
        #[arg(long, conflicts_with_all = ["table", "preset"])]
        query: Option<String>,
        /// A table to read whole.
        #[arg(long, conflicts_with = "preset")]
        table: Option<String>,
        /// A known system's schema: koha.
        #[arg(long)]
        preset: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Lists import jobs, newest first.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// Reverts a job: the readers it touched return to how they were before it.
    Undo {
        job: i64,
        #[arg(long)]
        json: bool,
    },
}

/// Options every import takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The source's name: records are keyed by (source, external id) (default: from the file).
    #[arg(long)]
    source: Option<String>,
    /// A mapping profile: a TOML file, or the name of a profile saved in Lector.
    #[arg(long, value_name = "PROFILE")]
    mapping: Option<String>,
    /// Says what would be created, updated, merged and rejected, and writes nothing.
    #[arg(long)]
    dry_run: bool,
    /// Blank cells leave stored values as they are.
    #[arg(long)]
    update_only_present: bool,
    /// Fields set when a reader is created but never overwritten, e.g. `notes,owner`.
    #[arg(long, value_delimiter = ',', value_name = "FIELDS")]
    never_overwrite: Vec<String>,
    /// Deactivates readers this source listed before but not now.
    #[arg(long)]
    deactivate_missing: bool,
    /// Any rejected row stops the import (nothing is written).
    #[arg(long)]
    all_or_nothing: bool,
    /// Writes the rejected rows (row, column, value, reason) to this CSV file.
    #[arg(long, value_name = "FILE")]
    rejections: Option<PathBuf>,
    /// Prints the job as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Finds records of the same person: merges the sure ones, queues the rest for review.
    Resolve {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run_import(store: &Store, command: &ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::Readers { file, format, sheet, encoding, common } => {
            let format = format.as_deref().map(parse_format).transpose()?;
            let open = OpenOptions { format, sheet: sheet.clone(), encoding: encoding.clone(), ..Default::default() };
            let path = file.canonicalize().with_context(|| format!("cannot read {}", file.display()))?;
            let opened = lector_import::formats::open(&path, &open).map_err(|e| anyhow!("{}: {}", file.display(), e.message))?;
            let hints = opened.hints.clone();
            let detected = opened.format;
            drop(opened);
            let source = common.source.clone().or(hints.source).unwrap_or_else(|| default_source(&path, detected));
            let mut options = common.options()?;
            options.update_only_present |= hints.update_only_present.unwrap_or(false);
            options.deactivate_missing |= hints.deactivate_missing.unwrap_or(false);
            let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let spec = JobSpec::File { path, open, profile: common.profile(store).await? };
            let format = serde_json::to_value(detected)?.as_str().unwrap_or("file").to_string();
            run(store, common, NewImportJob { source, format, label, options, dry_run: common.dry_run, spec: serde_json::to_value(spec)? })
                .await
        }
        ImportCommand::Sql { url, query, table, preset, common } => {
            let select = match (query, table, preset.as_deref()) {
                (Some(q), None, None) => SqlSelect::Query(q.clone()),
                (None, Some(t), None) => SqlSelect::Table(t.clone()),
                (None, None, Some("koha")) => SqlSelect::Koha,
                (None, None, Some(other)) => bail!("未知预设“{other}”，可用：koha (unknown preset '{other}'; available: koha)"),
                _ => bail!("请给出 --query、--table 或 --preset 之一 (give one of --query, --table or --preset)"),
            };
            let sql = SqlSpec { url: url.clone(), select };
            let source = common.source.clone().or_else(|| (sql.select == SqlSelect::Koha).then(|| "koha".to_string()));
            let Some(source) = source else { bail!("请用 --source 给来源命名 (name the source with --source)") };
            let label = sql.redacted_url();
            let spec = JobSpec::Sql { sql, profile: common.profile(store).await? };
            let job = NewImportJob {
                source,
                format: "sql".into(),
                label,
                options: common.options()?,
                dry_run: common.dry_run,
                spec: serde_json::to_value(spec)?,
            };
            run(store, common, job).await
        }
        ImportCommand::Jobs { json } => {
            let page = store.import_jobs(1, 50).await.context("cannot list import jobs")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&page.items)?);
            } else {
                for job in &page.items {
                    println!("{}", summary_line(job));
                }
            }
            Ok(())
        }
        ImportCommand::Undo { job, json } => {
            let done = store.undo_import_job(&Actor::system("cli"), *job).await.with_context(|| format!("cannot undo job {job}"))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                println!("已撤销 Undone: {}", summary_line(&done));
            }
            Ok(())
        }
    }
}

pub async fn run_identity(store: &Store, command: &IdentityCommand) -> anyhow::Result<()> {
    match command {
        IdentityCommand::Resolve { json } => {
            let report = store.resolve_identities(&Actor::system("cli")).await.context("identity resolution failed")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} 位读者，比较 {} 对，自动合并 {}，待人工确认 {} ({:.1} s) — {} readers, {} pairs scored, {} merged, {} queued for review",
                    report.readers,
                    report.pairs_scored,
                    report.merged,
                    report.queued,
                    report.seconds,
                    report.readers,
                    report.pairs_scored,
                    report.merged,
                    report.queued
                );
            }
            Ok(())
        }
    }
}

impl Common {
    fn options(&self) -> anyhow::Result<ImportOptions> {
        let never_overwrite = self
            .never_overwrite
            .iter()
            .map(|f| ReaderField::parse(f).map_err(|m| anyhow!("--never-overwrite: {m}")))
            .collect::<Result<_, _>>()?;
        Ok(ImportOptions {
            update_only_present: self.update_only_present,
            never_overwrite,
            deactivate_missing: self.deactivate_missing,
            all_or_nothing: self.all_or_nothing,
        })
    }

    /// The mapping profile's TOML: read from a file, or a profile saved in the store.
    async fn profile(&self, store: &Store) -> anyhow::Result<Option<String>> {
        let Some(name) = &self.mapping else { return Ok(None) };
        let text = if Path::new(name).is_file() {
            std::fs::read_to_string(name).with_context(|| format!("cannot read the mapping profile {name}"))?
        } else {
            store.mapping_profile(name).await.with_context(|| format!("no mapping profile file or saved profile named '{name}'"))?.toml
        };
        lector_import::mapping::Profile::from_toml(&text).map_err(|m| anyhow!("{name}: {m}"))?;
        Ok(Some(text))
    }
}

/// Records the job, runs it with a progress bar, reports the outcome.
async fn run(store: &Store, common: &Common, new: NewImportJob) -> anyhow::Result<()> {
    let job = store.create_import_job(&Actor::system("cli"), &new, JobStatus::Running).await.context("cannot record the import job")?;
    let bar = progress_bar(job.id, common.json);
    let done = runner::run_job(store, job).await.context("cannot record the end of the import job")?;
    bar.abort();
    eprint!("\r\x1b[2K");
    if let Some(path) = &common.rejections {
        let rejections = store.import_rejections(done.id).await.context("cannot read the rejected rows")?;
        write_rejections(path, &rejections)?;
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!("{}", summary_line(&done));
        if done.counts.rejected > 0 {
            for r in store.import_rejections(done.id).await?.iter().take(10) {
                println!("  第 {} 行 row {} · {} · “{}” · {}", r.row, r.row, r.column, r.value, r.reason);
            }
            if common.rejections.is_none() {
                println!("  完整错误报告 Full report: lector import readers … --rejections FILE.csv");
            }
        }
    }
    if done.status == JobStatus::Failed {
        bail!("{}", done.error.map(|m| m.to_string()).unwrap_or_else(|| "the import failed".into()));
    }
    Ok(())
}

/// Prints the rows read so far on the terminal while the job runs.
fn progress_bar(job_id: i64, quiet: bool) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    let show = !quiet && std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} 已读取 {pos} 行 rows read ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        if !show {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        loop {
            if let Some(rows) = runner::progress(job_id) {
                bar.set_position(rows);
            }
            bar.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn summary_line(job: &ImportJob) -> String {
    let c = &job.counts;
    format!(
        "#{} {} {} [{}{}] 新建 created {} · 更新 updated {} · 未变 unchanged {} · 合并 merged {} · 拒绝 rejected {} · 停用 deactivated {}{}",
        job.id,
        job.source,
        job.label,
        job.status.code(),
        if job.dry_run { ", dry run 预演" } else { "" },
        c.created,
        c.updated,
        c.unchanged,
        c.merged,
        c.rejected,
        c.deactivated,
        job.error.as_ref().map(|m| format!(" — {m}")).unwrap_or_default()
    )
}

fn write_rejections(path: &Path, rejections: &[lector_domain::import::Rejection]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record(["row", "column", "value", "reason", "原因"])?;
    for r in rejections {
        out.write_record([r.row.to_string().as_str(), &r.column, &r.value, &r.reason.en, &r.reason.zh])?;
    }
    out.flush()?;
    Ok(())
}

fn parse_format(code: &str) -> anyhow::Result<Format> {
    serde_json::from_value(serde_json::Value::String(code.trim().to_lowercase()))
        .map_err(|_| anyhow!("未知格式“{code}”，可用：csv tsv xlsx xls json ndjson koha folio (unknown format '{code}')"))
}

/// A file's source name when none is given: the library system it comes from, or its name.
fn default_source(path: &Path, format: Format) -> String {
    match format {
        Format::Koha => "koha".into(),
        Format::Folio => "folio".into(),
        _ => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "import".into()),
    }
}
