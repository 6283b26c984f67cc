//! Rows of a grid (CSV, a sheet) as records under headers: finding the header row, naming blank
//! and repeated headers, skipping empty rows, padding short rows and refusing long or oversized
//! ones. One place, so CSV and Excel behave alike.

use crate::{Record, RecordSource, SourceError};
use lector_domain::Msg;
use std::collections::{HashSet, VecDeque};

/// The largest cell read; a bigger one is a row error rather than a memory hazard downstream.
pub(crate) const MAX_CELL: usize = 1 << 20;
/// How many non-empty rows the header row is looked for in.
const HEADER_SCAN: usize = 20;

/// One row of a grid as read, before headers are known.
pub(crate) struct RawRow {
    /// 1-based row (line) number as the user sees it.
    pub(crate) row: u64,
    pub(crate) cells: Vec<String>,
}

/// A problem with a row, told once the headers can name its column.
pub(crate) enum Fault {
    /// An error already worded (or a whole-source error, after which the grid ends).
    Source(SourceError),
    /// Bytes invalid in the file's encoding.
    Undecodable { row: u64, col: usize, encoding: &'static str },
    /// A cell over [`MAX_CELL`].
    TooLarge { row: u64, col: usize },
}

/// A grid read row by row.
pub(crate) trait RawRows: Send {
    fn next_raw(&mut self) -> Option<Result<RawRow, Fault>>;
}

/// A grid as a [`RecordSource`].
pub(crate) struct Table<R> {
    raw: R,
    headers: Vec<String>,
    /// Rows read ahead while looking for the header row.
    pending: VecDeque<Result<RawRow, Fault>>,
    ended: bool,
}

impl<R: RawRows> Table<R> {
    /// Finds the header row: row `header_row` when given (rows before it are skipped), else the
    /// first of the first 20 non-empty rows that [looks like a header](looks_like_header), else
    /// the first non-empty row. A grid with no non-empty row has no data.
    pub(crate) fn new(mut raw: R, header_row: Option<usize>) -> Result<Self, SourceError> {
        let mut pending = VecDeque::new();
        let header = match header_row {
            Some(wanted) => loop {
                match raw.next_raw() {
                    None => return Err(past_end(wanted)),
                    Some(Err(Fault::Source(e))) if e.row.is_none() => return Err(e),
                    Some(Ok(r)) if r.row >= wanted as u64 && !is_blank(&r.cells) => break r,
                    Some(_) => {}
                }
            },
            None => {
                let mut rows = 0;
                while rows < HEADER_SCAN {
                    match raw.next_raw() {
                        None => break,
                        Some(Err(Fault::Source(e))) if e.row.is_none() => return Err(e),
                        Some(Ok(r)) if is_blank(&r.cells) => {}
                        Some(item) => {
                            rows += 1;
                            pending.push_back(item);
                        }
                    }
                }
                let found = pending.iter().position(|item| matches!(item, Ok(r) if looks_like_header(&r.cells)));
                let Some(at) = found.or_else(|| pending.iter().position(Result::is_ok)) else {
                    return Err(match pending.pop_front() {
                        Some(Err(fault)) => describe(fault, &[]),
                        _ => no_data(),
                    });
                };
                pending.drain(..at);
                match pending.pop_front() {
                    Some(Ok(r)) => r,
                    _ => return Err(no_data()),
                }
            }
        };
        Ok(Self { raw, headers: header_names(&header.cells), pending, ended: false })
    }

    fn next_item(&mut self) -> Option<Result<RawRow, Fault>> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        if self.ended {
            return None;
        }
        let item = self.raw.next_raw();
        self.ended = item.is_none();
        item
    }

    /// Pads a short row, drops empty cells past the headers, refuses other extra cells and
    /// oversized cells.
    fn shape(&self, raw: RawRow) -> Result<Record, SourceError> {
        let RawRow { row, mut cells } = raw;
        let width = self.headers.len();
        if cells.len() > width {
            let used = cells.iter().rposition(|c| !c.trim().is_empty()).map_or(0, |i| i + 1);
            if used > width {
                return Err(SourceError::at(
                    row,
                    Msg::new(
                        format!("这一行有 {used} 个单元格，但表头只有 {width} 列：请删除多余的单元格或补上表头"),
                        format!(
                            "this row has {used} cells but the header has {width} columns: remove the extra cells or add headers for them"
                        ),
                    ),
                ));
            }
            cells.truncate(width);
        }
        if let Some(col) = cells.iter().position(|c| c.len() > MAX_CELL) {
            return Err(describe(Fault::TooLarge { row, col }, &self.headers));
        }
        cells.resize(width, String::new());
        Ok(Record { row, cells })
    }
}

impl<R: RawRows> RecordSource for Table<R> {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn next_record(&mut self) -> Option<Result<Record, SourceError>> {
        loop {
            match self.next_item()? {
                Err(fault) => return Some(Err(describe(fault, &self.headers))),
                Ok(raw) if is_blank(&raw.cells) => {}
                Ok(raw) => return Some(self.shape(raw)),
            }
        }
    }
}

/// Words a fault, naming the column by its number and header.
pub(crate) fn describe(fault: Fault, headers: &[String]) -> SourceError {
    match fault {
        Fault::Source(e) => e,
        Fault::Undecodable { row, col, encoding } => {
            let (zh, en) = column(headers, col);
            SourceError::at(
                row,
                Msg::new(
                    format!("{zh}含有 {encoding} 编码中无效的字节：请用正确的编码另存文件，或在导入时指定编码"),
                    format!(
                        "{en} has bytes that are not valid {encoding}: save the file in one encoding, or give the encoding when importing"
                    ),
                ),
            )
        }
        Fault::TooLarge { row, col } => {
            let (zh, en) = column(headers, col);
            SourceError::at(
                row,
                Msg::new(
                    format!("{zh}的单元格超过 1 MiB：请检查引号是否配对，或缩短内容"),
                    format!("{en}: the cell is larger than 1 MiB; check that its quotes are paired, or shorten it"),
                ),
            )
        }
    }
}

/// "第 3 列「姓名」" / "column 3 “姓名”" (the header when there is one).
pub(crate) fn column(headers: &[String], col: usize) -> (String, String) {
    let n = col + 1;
    match headers.get(col) {
        Some(h) => (format!("第 {n} 列「{h}」"), format!("column {n} “{h}”")),
        None => (format!("第 {n} 列"), format!("column {n}")),
    }
}

/// The whole-source error for a file or sheet without any data.
pub(crate) fn no_data() -> SourceError {
    SourceError::whole(Msg::new(
        "文件没有数据：请检查是否选错了文件或工作表",
        "the file has no data: check that you chose the right file or sheet",
    ))
}

fn past_end(wanted: usize) -> SourceError {
    SourceError::whole(Msg::new(
        format!("指定的表头行 {wanted} 之后没有内容：请检查表头行号"),
        format!("there is nothing at or after the header row {wanted}: check the header row number"),
    ))
}

fn is_blank(cells: &[String]) -> bool {
    cells.iter().all(|c| c.trim().is_empty())
}

/// A header row has at least two different non-empty cells, and most of its non-empty cells are
/// text rather than numbers or dates. A title row ("2024 级新生名单", even merged across the
/// columns) has one value and is passed over; a data row above the header is rare enough that
/// `header_row` covers it.
pub(crate) fn looks_like_header(cells: &[String]) -> bool {
    let filled: Vec<&str> = cells.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
    let distinct: HashSet<&str> = filled.iter().copied().collect();
    let text = filled.iter().filter(|c| !is_numeric(c)).count();
    distinct.len() >= 2 && text * 2 > filled.len()
}

/// Numbers, dates and times: digits with only separators between them.
fn is_numeric(cell: &str) -> bool {
    cell.chars().any(|c| c.is_ascii_digit()) && cell.chars().all(|c| c.is_ascii_digit() || ".-+:/ ,%eE".contains(c))
}

/// Trimmed headers without a BOM; a blank one becomes `列N`, a repeated one `姓名 (2)`.
pub(crate) fn header_names(cells: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let trimmed = cell.trim_start_matches('\u{feff}').trim();
            let base = if trimmed.is_empty() { format!("列{}", i + 1) } else { trimmed.to_string() };
            let mut name = base.clone();
            let mut n = 1;
            while !seen.insert(name.clone()) {
                n += 1;
                name = format!("{base} ({n})");
            }
            name
        })
        .collect()
}
