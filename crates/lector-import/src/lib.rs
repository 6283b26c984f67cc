//! Information acquisition (信息获取): reading reader data in the forms libraries have it —
//! CSV/TSV in any common encoding, Excel, JSON, Koha and FOLIO exports, other databases — and
//! turning each record into a validated reader or a rejection that names row, column and reason.
//!
//! Sources are read as a stream of [`Record`]s (cells under headers), so a million-row file is
//! never held in memory. A [`mapping::Profile`] says which column feeds which field; the
//! [`runner`] feeds the result to the store's import writer as a durable job.

pub mod decode;
pub mod formats;
pub mod library;
pub mod mapping;
pub mod runner;
pub mod sql;

use lector_domain::Msg;
use serde::{Deserialize, Serialize};

/// One record read from a source: its cells in the order of the source's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based row number as a user counts it in the source (see `Rejection::row`).
    pub row: u64,
    pub cells: Vec<String>,
}

/// A stream of records under fixed headers.
pub trait RecordSource: Send {
    fn headers(&self) -> &[String];
    /// The next record, an error that names the row, or `None` at the end.
    fn next_record(&mut self) -> Option<Result<Record, SourceError>>;
}

/// A source that cannot be read, or a row that cannot be split into cells.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", row.map(|r| format!("row {r}: ")).unwrap_or_default())]
pub struct SourceError {
    /// The row the problem is on, when it is one row's problem (a ragged row, bad bytes);
    /// `None` when the whole source is unreadable.
    pub row: Option<u64>,
    pub message: Msg,
}

impl SourceError {
    pub fn whole(message: Msg) -> Self {
        Self { row: None, message }
    }
    pub fn at(row: u64, message: Msg) -> Self {
        Self { row: Some(row), message }
    }
}

/// The file formats Lector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Tsv,
    Xlsx,
    Xls,
    Json,
    Ndjson,
    /// Koha's patron import CSV (`cardnumber`, `surname`, … `patron_attributes`).
    Koha,
    /// FOLIO's user-import JSON (`{"users": [...], ...}`).
    Folio,
    /// Rows of another database's table or query ([`sql::open`]).
    Sql,
}

/// How to open a file; everything is detected when left `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenOptions {
    pub format: Option<Format>,
    /// Excel: the sheet by name (default: the first sheet with data).
    pub sheet: Option<String>,
    /// 1-based row holding the headers (default: detected; the first row that looks like one).
    pub header_row: Option<usize>,
    /// CSV: the delimiter (default: detected among `,` `\t` `;` `|`).
    pub delimiter: Option<char>,
    /// Text files: an encoding label such as `gbk` (default: detected).
    pub encoding: Option<String>,
}

/// What a source says about itself, beyond its records (FOLIO's import flags, for instance).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceHints {
    /// The source system's own name for itself (FOLIO `sourceType`).
    pub source: Option<String>,
    pub update_only_present: Option<bool>,
    pub deactivate_missing: Option<bool>,
}

/// An opened source.
pub struct Opened {
    pub records: Box<dyn RecordSource>,
    pub format: Format,
    /// The text encoding detected or given (`UTF-8`, `GB18030`, `UTF-16LE` …); `None` for Excel.
    pub encoding: Option<&'static str>,
    pub hints: SourceHints,
}
