//! Excel workbooks (.xlsx and legacy .xls) through calamine. A sheet is loaded whole (Excel caps
//! it at 1,048,576 rows); formulas read as the values Excel saved with them.

use super::table::{RawRow, RawRows, Table};
use crate::{Format, OpenOptions, Opened, SourceError, SourceHints};
use calamine::{open_workbook, Data, Dimensions, ExcelDateTime, Range, Reader, Sheets, Xls, Xlsx};
use lector_domain::Msg;
use std::fs::File;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

type Book = Sheets<BufReader<File>>;

/// Opens sheet `opts.sheet`, or the first sheet with data, of a workbook of `kind`.
pub(crate) fn open(path: &Path, kind: Format, opts: &OpenOptions) -> Result<Opened, SourceError> {
    let range = guarded(|| load(path, kind, opts.sheet.as_deref()))?;
    let rows = SheetRows { range, next: 0 };
    let table = Table::new(rows, opts.header_row)?;
    Ok(Opened { records: Box::new(table), format: kind, encoding: None, hints: SourceHints::default() })
}

/// The sheet names of a workbook of `kind`, in order.
pub(crate) fn sheet_names(path: &Path, kind: Format) -> Result<Vec<String>, SourceError> {
    guarded(|| Ok(workbook(path, kind)?.sheet_names()))
}

/// Runs calamine, turning a panic on a malformed workbook into an error, as no import may panic.
fn guarded<T>(f: impl FnOnce() -> Result<T, SourceError>) -> Result<T, SourceError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(broken("the workbook structure is malformed")))
}

fn workbook(path: &Path, kind: Format) -> Result<Book, SourceError> {
    if kind == Format::Xls {
        open_workbook::<Xls<_>, _>(path).map(Sheets::Xls).map_err(|e| broken(&e.to_string()))
    } else {
        open_workbook::<Xlsx<_>, _>(path).map(Sheets::Xlsx).map_err(|e| broken(&e.to_string()))
    }
}

fn broken(detail: &str) -> SourceError {
    SourceError::whole(Msg::new(
        format!("无法读取这个 Excel 文件（{detail}）：请在 Excel 中打开并另存后再试"),
        format!("cannot read this Excel file ({detail}): open it in Excel, save it again and retry"),
    ))
}

/// The chosen sheet's cells, with merged ranges filled in.
fn load(path: &Path, kind: Format, wanted: Option<&str>) -> Result<Range<Data>, SourceError> {
    let mut book = workbook(path, kind)?;
    let names = book.sheet_names();
    let (name, mut range) = match wanted {
        Some(name) => {
            if !names.iter().any(|n| n == name) {
                let list = names.join("、");
                return Err(SourceError::whole(Msg::new(
                    format!("没有名为“{name}”的工作表；这个文件的工作表是：{list}"),
                    format!("there is no sheet named “{name}”; this file's sheets are: {}", names.join(", ")),
                )));
            }
            let range = book.worksheet_range(name).map_err(|e| broken(&e.to_string()))?;
            if !has_data(&range) {
                return Err(SourceError::whole(Msg::new(
                    format!("工作表“{name}”没有数据：请选择另一个工作表"),
                    format!("the sheet “{name}” has no data: choose another sheet"),
                )));
            }
            (name.to_string(), range)
        }
        None => first_with_data(&mut book, &names)?,
    };
    fill_merged(&mut range, &merged_regions(&mut book, &name));
    Ok(range)
}

fn first_with_data(book: &mut Book, names: &[String]) -> Result<(String, Range<Data>), SourceError> {
    for name in names {
        let range = book.worksheet_range(name).map_err(|e| broken(&e.to_string()))?;
        if has_data(&range) {
            return Ok((name.clone(), range));
        }
    }
    Err(super::table::no_data())
}

fn has_data(range: &Range<Data>) -> bool {
    range.used_cells().any(|(_, _, cell)| !cell_text(cell).trim().is_empty())
}

/// Merged ranges of a sheet (xlsx and xls). Where calamine cannot read them, the cells stay as
/// read: the value in the top-left cell only.
fn merged_regions(book: &mut Book, name: &str) -> Vec<Dimensions> {
    let regions = match book {
        Sheets::Xlsx(x) => x.merge_cells_by_sheet_name(name).ok(),
        Sheets::Xls(x) => x.merge_cells_by_sheet_name(name).ok(),
        _ => None,
    };
    regions.unwrap_or_default()
}

/// Copies each merged range's top-left value into its other empty cells, so a 院系 cell merged
/// over twenty rows applies to each of them.
fn fill_merged(range: &mut Range<Data>, regions: &[Dimensions]) {
    let (Some((top, left)), Some((bottom, right))) = (range.start(), range.end()) else {
        return;
    };
    for region in regions {
        let Some(value) = range.get_value(region.start).filter(|v| !matches!(v, Data::Empty)).cloned() else {
            continue;
        };
        for r in region.start.0.max(top)..=region.end.0.min(bottom) {
            for c in region.start.1.max(left)..=region.end.1.min(right) {
                if matches!(range.get_value((r, c)), Some(Data::Empty)) {
                    range.set_value((r, c), value.clone());
                }
            }
        }
    }
}

struct SheetRows {
    range: Range<Data>,
    next: usize,
}

impl RawRows for SheetRows {
    fn next_raw(&mut self) -> Option<Result<RawRow, super::table::Fault>> {
        let (top, _) = self.range.start()?;
        let (height, width) = self.range.get_size();
        if self.next >= height {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let cells = (0..width).map(|c| self.range.get((i, c)).map(cell_text).unwrap_or_default()).collect();
        Some(Ok(RawRow { row: u64::from(top) + i as u64 + 1, cells }))
    }
}

/// A cell as text: numbers without a spurious `.0` (card number 20230001), dates as
/// `YYYY-MM-DD` (with ` HH:MM:SS` when there is a time), errors such as `#N/A` as empty.
pub(crate) fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTime(d) => datetime(d),
    }
}

fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn datetime(d: &ExcelDateTime) -> String {
    let serial = d.as_f64();
    if d.is_duration() || (0.0..1.0).contains(&serial) {
        let seconds = (serial * 86_400.0).round() as i64;
        return format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    }
    let (year, month, day, hour, minute, second, _) = d.to_ymd_hms_milli();
    if (hour, minute, second) == (0, 0, 0) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
    }
}
