//! Reading files: CSV/TSV (delimiter detected), Excel (.xlsx/.xls), JSON and NDJSON.
// CONTRACT: signatures agreed; bodies filled in by the files helper.
//
// The format is told by the first bytes (zip → xlsx, OLE → xls, `[`/`{` → JSON or NDJSON) and
// the extension (`.tsv`, `.ndjson`/`.jsonl`, `.csv`/`.txt` always delimited); an `.xls` that is
// really text, as some systems export, is read as text.

mod csv;
mod excel;
mod json;
mod table;
mod xls;
mod xlsx;

use crate::decode::{self, PREFIX_LEN};
use crate::{Format, OpenOptions, Opened, SourceError};
use lector_domain::Msg;
use std::fs::File;
use std::path::Path;

/// Opens a file as a stream of records, detecting its format, encoding, delimiter and header
/// row unless `opts` says. Koha files read as CSV; FOLIO files through [`crate::library::folio`].
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Opened, SourceError> {
    let (prefix, truncated) = read_prefix(path)?;
    if prefix.is_empty() {
        return Err(table::no_data());
    }
    if let Some(kind @ (Format::Xlsx | Format::Xls)) = opts.format.or_else(|| workbook_kind(&prefix)) {
        return excel::open(path, kind, opts);
    }
    let encoding = match &opts.encoding {
        Some(label) => decode::for_label(label).map_err(SourceError::whole)?,
        None => decode::detect(&prefix),
    };
    if decode::looks_binary(&prefix, encoding) {
        return Err(SourceError::whole(Msg::new(
            "这不是文本文件（CSV/TSV/JSON），也不是 Excel 工作簿：请确认选择了正确的文件",
            "this is not a text file (CSV/TSV/JSON) nor an Excel workbook: check that you chose the right file",
        )));
    }
    let bom = match encoding_rs::Encoding::for_bom(&prefix) {
        Some((found, len)) if found == encoding => len,
        _ => 0,
    };
    let (sample, _) = encoding.decode_without_bom_handling(&prefix[bom..]);
    match opts.format.or_else(|| text_kind(path, &sample)) {
        Some(Format::Ndjson) => json::open_ndjson(path, encoding),
        Some(format @ (Format::Json | Format::Folio)) if opts.format.is_some() => json::open_json(path, encoding, Some(format)),
        Some(Format::Json) => json::open_json(path, encoding, None),
        Some(Format::Sql) => Err(SourceError::whole(Msg::new(
            "SQL 数据源不是文件：请连接数据库导入",
            "an SQL source is not a file: import it from the database",
        ))),
        format => csv::open(path, encoding, &sample, truncated, format, opts),
    }
}

/// The sheets of a workbook, in order (for the UI's sheet picker).
pub fn sheets(path: &Path) -> Result<Vec<String>, SourceError> {
    let (prefix, _) = read_prefix(path)?;
    match workbook_kind(&prefix) {
        Some(kind) => excel::sheet_names(path, kind),
        None => Err(SourceError::whole(Msg::new(
            "这个文件不是 Excel 工作簿（.xlsx/.xls），没有工作表",
            "this file is not an Excel workbook (.xlsx/.xls), so it has no sheets",
        ))),
    }
}

/// The first [`PREFIX_LEN`] bytes, and whether the file goes on past them.
fn read_prefix(path: &Path) -> Result<(Vec<u8>, bool), SourceError> {
    let mut file = File::open(path).map_err(|e| decode::unreadable(path, &e))?;
    let mut prefix = vec![0; PREFIX_LEN];
    let n = decode::read_full(&mut file, &mut prefix).map_err(|e| decode::unreadable(path, &e))?;
    prefix.truncate(n);
    Ok((prefix, n == PREFIX_LEN))
}

/// A workbook by its signature: a zip (xlsx) or an OLE compound file (xls).
fn workbook_kind(prefix: &[u8]) -> Option<Format> {
    if prefix.starts_with(b"PK\x03\x04") {
        Some(Format::Xlsx)
    } else if prefix.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Some(Format::Xls)
    } else {
        None
    }
}

/// The format of a text file: `.ndjson`/`.jsonl` are NDJSON and `.tsv` TSV; `.csv` and `.txt`
/// are delimited; otherwise text starting with `[` is JSON, and with `{` NDJSON when its first
/// line is a whole object and another line follows, else JSON. `None` leaves it to the
/// delimited reader (CSV, TSV or Koha by its columns).
fn text_kind(path: &Path, sample: &str) -> Option<Format> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "ndjson" | "jsonl" => return Some(Format::Ndjson),
        "tsv" => return Some(Format::Tsv),
        "csv" | "txt" => return None,
        _ => {}
    }
    let text = sample.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with('[') {
        Some(Format::Json)
    } else if text.starts_with('{') {
        Some(if is_ndjson(text) { Format::Ndjson } else { Format::Json })
    } else if ext == "json" {
        Some(Format::Json)
    } else {
        None
    }
}

fn is_ndjson(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let whole = first.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(first).is_ok();
    whole && lines.next().is_some()
}
