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
}
