//! Excel workbooks through calamine: `.xlsx` streamed cell by cell ([`super::xlsx`]), legacy
//! `.xls` loaded a sheet at a time after a structural check ([`super::xls`]). Formulas read as
//! the values Excel saved with them; merged ranges give their value to every cell they cover.

use super::table::Table;
use crate::{Format, OpenOptions, Opened, SourceError, SourceHints};
use calamine::{DataType, ExcelDateTime};
use lector_domain::Msg;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Excel's last row and column (0-based): a position past them is a damaged file.
pub(crate) const LAST_ROW: u32 = 1_048_575;
pub(crate) const LAST_COL: u32 = 16_383;

/// Opens sheet `opts.sheet`, or the first sheet with data, of a workbook of `kind`.
pub(crate) fn open(path: &Path, kind: Format, opts: &OpenOptions) -> Result<Opened, SourceError> {
    let records: Box<dyn crate::RecordSource> = if kind == Format::Xls {
        let rows = guarded(|| super::xls::load(path, opts.sheet.as_deref()))?;
        Box::new(Table::new(rows, opts.header_row)?)
    } else {
        let rows = super::xlsx::stream(path, opts.sheet.clone())?;
        Box::new(Table::new(rows, opts.header_row)?)
    };
    Ok(Opened { records, format: kind, encoding: None, hints: SourceHints::default() })
}

/// The sheet names of a workbook of `kind`, in order.
pub(crate) fn sheet_names(path: &Path, kind: Format) -> Result<Vec<String>, SourceError> {
    if kind == Format::Xls {
        guarded(|| super::xls::sheet_names(path))
    } else {
        guarded(|| super::xlsx::sheet_names(path))
    }
}

/// Runs calamine, turning a panic on a malformed workbook into an error, as no import may panic.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, SourceError>) -> Result<T, SourceError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(broken("the workbook structure is malformed")))
}

/// The whole-source error for a workbook that cannot be read.
pub(crate) fn broken(detail: &str) -> SourceError {
    SourceError::whole(Msg::new(
        format!("无法读取这个 Excel 文件（{detail}）：请在 Excel 中打开并另存后再试"),
        format!("cannot read this Excel file ({detail}): open it in Excel, save it again and retry"),
    ))
}

pub(crate) fn no_such_sheet(name: &str, names: &[String]) -> SourceError {
    SourceError::whole(Msg::new(
        format!("没有名为“{name}”的工作表；这个文件的工作表是：{}", names.join("、")),
        format!("there is no sheet named “{name}”; this file's sheets are: {}", names.join(", ")),
    ))
}

pub(crate) fn empty_sheet(name: &str) -> SourceError {
    SourceError::whole(Msg::new(
        format!("工作表“{name}”没有数据：请选择另一个工作表"),
        format!("the sheet “{name}” has no data: choose another sheet"),
    ))
}

/// A cell as text: numbers without a spurious `.0` (card number 20230001), dates as
/// `YYYY-MM-DD` (with ` HH:MM:SS` when there is a time), errors such as `#N/A` as empty.
pub(crate) fn cell_text(cell: &impl DataType) -> String {
    if let Some(s) = cell.get_string().or_else(|| cell.get_datetime_iso()).or_else(|| cell.get_duration_iso()) {
        s.to_string()
    } else if let Some(i) = cell.get_int() {
        i.to_string()
    } else if let Some(f) = cell.get_float() {
        number(f)
    } else if let Some(b) = cell.get_bool() {
        if b { "TRUE" } else { "FALSE" }.to_string()
    } else if let Some(d) = cell.get_datetime() {
        datetime(&d)
    } else {
        String::new()
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
