//! Tabular circulation files (CSV/TSV in any encoding, or Excel, read through lector-import):
//! loans in Koha's `issues`/`old_issues` export or the plain library format, and gate logs.

use std::path::Path;

use chrono::NaiveDateTime;
use lector_domain::Msg;
use lector_import::{formats, OpenOptions, RecordSource};
use lector_store::reader_refs::ReaderRef;

use super::events::{hashed_key, Event, Loan, Visit};
use super::fields::{Column, Headers, Row};
use super::{times, FileFormat, LoadError, ReadRow, Result, RowError, RowSource};

/// A tabular file opened, with the format its headers show.
pub struct Table {
    pub records: Box<dyn RecordSource>,
    pub headers: Headers,
    pub format: FileFormat,
}

/// Opens a tabular file. Koha's exports are told by their `borrowernumber`/`itemnumber`
/// columns; anything else is the plain format.
pub fn open(path: &Path, format: Option<FileFormat>) -> Result<Table> {
    if format == Some(FileFormat::Ezproxy) {
        return Err(LoadError::File(Msg::new("EZproxy 格式只用于电子资源日志", "the EZproxy format is for e-resource logs only")));
    }
    let opened = formats::open(path, &OpenOptions::default()).map_err(|e| LoadError::File(e.message))?;
    let headers = Headers(opened.records.headers().to_vec());
    let format =
        format.unwrap_or(if headers.has("borrowernumber") || headers.has("itemnumber") { FileFormat::Koha } else { FileFormat::Plain });
    Ok(Table { records: opened.records, headers, format })
}

/// Turns one row into an event.
pub trait Parse<E> {
    fn parse(&self, row: &Row) -> Result<E, RowError>;
}

/// A tabular file read row by row with parser `P`.
pub struct Rows<P> {
    pub(super) table: Table,
    pub(super) parser: P,
}

impl<E: Event, P: Parse<E>> RowSource<E> for Rows<P> {
    fn format(&self) -> FileFormat {
        self.table.format
    }

    fn next_row(&mut self) -> Option<Result<ReadRow<E>>> {
        let record = match self.table.records.next_record()? {
            Ok(record) => record,
            // A row that cannot be split into cells (ragged, bad bytes) is that row's problem.
            Err(e) => {
                return Some(match e.row {
                    Some(row) => Ok(ReadRow { row, raw: serde_json::Value::Null, parsed: Err(RowError::new(row, "", "", e.message)) }),
                    None => Err(LoadError::File(e.message)),
                })
            }
        };
        let row = Row { record: &record };
        Some(Ok(ReadRow { row: record.row, raw: row.raw(&self.table.headers), parsed: self.parser.parse(&row) }))
    }
}

/// How a file names readers: by card number, or by the id of the source's record.
enum ReaderColumn {
    Card(Column),
    External { column: Column, source: String },
}

impl ReaderColumn {
    /// Koha files name readers by `borrowernumber` (found through the import links of the
    /// source), else by `cardnumber`; plain files by card number.
    fn find(headers: &Headers, format: FileFormat, source: &str) -> Result<ReaderColumn> {
        if format == FileFormat::Koha {
            if let Some(column) = headers.find(&["borrowernumber"]) {
                return Ok(ReaderColumn::External { column, source: source.to_string() });
            }
        }
        headers.require(&["card_no", "cardnumber", "读者证号", "借书证号", "证号"]).map(ReaderColumn::Card)
    }

    fn parse(&self, row: &Row) -> Result<ReaderRef, RowError> {
        match self {
            ReaderColumn::Card(col) => row.required(col).map(ReaderRef::card),
            ReaderColumn::External { column, source } => row.required(column).map(|id| ReaderRef::external(source, id)),
        }
    }
}

fn time(row: &Row, col: &Column, now: NaiveDateTime) -> Result<NaiveDateTime, RowError> {
    let raw = row.required(col)?;
    times::parse(raw, now).map_err(|m| row.error(col, raw, m))
}

fn optional_time(row: &Row, col: Option<&Column>, now: NaiveDateTime) -> Result<Option<NaiveDateTime>, RowError> {
    match (col, row.get(col)) {
        (Some(col), Some(raw)) => times::parse(raw, now).map(Some).map_err(|m| row.error(col, raw, m)),
        _ => Ok(None),
    }
}

/// The columns of a loans file.
pub struct LoanParser {
    reader: ReaderColumn,
    item: Column,
    loaned_at: Column,
    due_at: Option<Column>,
    returned_at: Option<Column>,
    renewals: Option<Column>,
    branch: Option<Column>,
    issue_id: Option<Column>,
    source: String,
    now: NaiveDateTime,
}

/// The loans of `table`, found by the column names of its format.
pub fn loans(table: Table, source: &str, now: NaiveDateTime) -> Result<Rows<LoanParser>> {
    let h = &table.headers;
    let koha = table.format == FileFormat::Koha;
    let names = |koha_names: &'static [&'static str], plain: &'static [&'static str]| if koha { koha_names } else { plain };
    let parser = LoanParser {
        reader: ReaderColumn::find(h, table.format, source)?,
        item: h.require(names(&["itemnumber", "barcode"], &["item_id", "barcode", "条码", "单册号"]))?,
        loaned_at: h.require(names(&["issuedate"], &["loaned_at", "借出时间", "借阅时间"]))?,
        due_at: h.find(names(&["date_due"], &["due_at", "应还时间", "应还日期"])),
        returned_at: h.find(names(&["returndate"], &["returned_at", "归还时间", "还书时间"])),
        renewals: h.find(names(&["renewals_count", "renewals"], &["renewals", "续借次数"])),
        branch: h.find(names(&["branchcode"], &["branch", "馆藏地", "分馆"])),
        issue_id: if koha { h.find(&["issue_id"]) } else { None },
        source: source.to_string(),
        now,
    };
    Ok(Rows { table, parser })
}

impl Parse<Loan> for LoanParser {
    fn parse(&self, row: &Row) -> Result<Loan, RowError> {
        let reader = self.reader.parse(row)?;
        let item_id = row.required(&self.item)?.to_string();
        let loaned_at = time(row, &self.loaned_at, self.now)?;
        let due_at = optional_time(row, self.due_at.as_ref(), self.now)?;
        let returned_at = optional_time(row, self.returned_at.as_ref(), self.now)?;
        if let (Some(returned), Some(col)) = (returned_at, &self.returned_at) {
            if returned < loaned_at {
                let raw = row.get(Some(col)).unwrap_or_default();
                return Err(row.error(col, raw, Msg::new("归还时间早于借出时间", "returned before it was loaned")));
            }
        }
        let renewals = match (&self.renewals, row.get(self.renewals.as_ref())) {
            (Some(col), Some(raw)) => match raw.parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => return Err(row.error(col, raw, Msg::new("续借次数应为非负整数", "renewals must be a whole number, 0 or more"))),
            },
            _ => 0,
        };
        let event_key = match row.get(self.issue_id.as_ref()) {
            Some(id) => format!("{}:issue:{id}", self.source),
            None => hashed_key(&self.source, "loan", &[&reader.to_string(), &item_id, &loaned_at.to_string()]),
        };
        Ok(Loan {
            event_key,
            reader,
            item_id,
            loaned_at,
            due_at,
            returned_at,
            renewals,
            branch: row.get(self.branch.as_ref()).map(str::to_string),
            source: self.source.clone(),
        })
    }
}

/// The columns of a gate log.
pub struct VisitParser {
    reader: ReaderColumn,
    time: Column,
    gate: Option<Column>,
    branch: Option<Column>,
    source: String,
    now: NaiveDateTime,
}

/// The gate entries of `table`.
pub fn visits(table: Table, source: &str, now: NaiveDateTime) -> Result<Rows<VisitParser>> {
    let h = &table.headers;
    let parser = VisitParser {
        reader: ReaderColumn::find(h, table.format, source)?,
        time: h.require(&["time", "visited_at", "datetime", "时间", "入馆时间"])?,
        gate: h.find(&["gate", "门禁", "闸机"]),
        branch: h.find(&["branch", "branchcode", "馆", "分馆", "馆藏地"]),
        source: source.to_string(),
        now,
    };
    Ok(Rows { table, parser })
}

impl Parse<Visit> for VisitParser {
    fn parse(&self, row: &Row) -> Result<Visit, RowError> {
        let reader = self.reader.parse(row)?;
        let visited_at = time(row, &self.time, self.now)?;
        let gate = row.get(self.gate.as_ref()).map(str::to_string);
        let event_key =
            hashed_key(&self.source, "visit", &[&reader.to_string(), &visited_at.to_string(), gate.as_deref().unwrap_or_default()]);
        Ok(Visit {
            event_key,
            reader,
            visited_at,
            gate,
            branch: row.get(self.branch.as_ref()).map(str::to_string),
            source: self.source.clone(),
        })
    }
}
