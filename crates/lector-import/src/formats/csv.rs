//! Delimited text (CSV, TSV, Koha's patron CSV): streamed record by record through the `csv`
//! crate with one reused byte record, so a million-row file is never held in memory.

use super::table::{Fault, RawRow, RawRows, Table, MAX_CELL};
use crate::decode::{self, CellText};
use crate::{Format, OpenOptions, Opened, RecordSource, SourceError, SourceHints};
use ::csv::{ByteRecord, Reader, ReaderBuilder, Terminator};
use encoding_rs::Encoding;
use lector_domain::Msg;
use std::io::Read;
use std::path::Path;

/// The delimiters detected, in order of preference when they fit equally well.
const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];
/// How many rows of the sample the delimiter is judged on.
const SNIFF_ROWS: usize = 21;

/// Opens a delimited file whose first bytes decode (lossily) to `sample`; `truncated` says the
/// sample is not the whole file. `format` is the format asked for, if any.
pub(crate) fn open(
    path: &Path,
    encoding: &'static Encoding,
    sample: &str,
    truncated: bool,
    format: Option<Format>,
    opts: &OpenOptions,
) -> Result<Opened, SourceError> {
    let delimiter = match opts.delimiter {
        Some(c) => delimiter_byte(c)?,
        None if format == Some(Format::Tsv) => b'\t',
        None => sniff(sample, truncated),
    };
    // Quotes, line ends and the usual delimiters are below 0x40, which no multi-byte character
    // of an ASCII-compatible encoding uses as a trailing byte; `|` (0x7C) may be one in GBK.
    let ascii_splits = delimiter < 0x40;
    let text = decode::open_text(path, encoding, ascii_splits)?;
    // Records end at `\n` (a `\r` before it is trimmed from the last cell): with `\r\n` as one
    // terminator the csv crate numbers each record after the first one line too low. Files that
    // end lines with `\r` alone (old Mac exports) keep the crate's own terminator.
    let terminator = if !sample.contains('\n') && sample.contains('\r') { Terminator::CRLF } else { Terminator::Any(b'\n') };
    let reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .terminator(terminator)
        .buffer_capacity(64 * 1024)
        .from_reader(text.reader);
    let rows = CsvRows { reader, record: ByteRecord::new(), cells: text.cells, encoding: decode::name(encoding), ended: false };
    let table = Table::new(rows, opts.header_row)?;
    let format = format.unwrap_or_else(|| detected_format(table.headers(), delimiter));
    Ok(Opened { records: Box::new(table), format, encoding: Some(decode::name(encoding)), hints: SourceHints::default() })
}

/// Koha's patron CSV by its columns; a tab-delimited file is TSV.
fn detected_format(headers: &[String], delimiter: u8) -> Format {
    let has = |name: &str| headers.iter().any(|h| h.eq_ignore_ascii_case(name));
    if has("cardnumber") && has("surname") {
        Format::Koha
    } else if delimiter == b'\t' {
        Format::Tsv
    } else {
        Format::Csv
    }
}

fn delimiter_byte(c: char) -> Result<u8, SourceError> {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => Ok(b),
        _ => Err(SourceError::whole(Msg::new(
            format!("分隔符“{c}”不可用：请用逗号、制表符、分号或竖线等 ASCII 字符"),
            format!("the delimiter “{c}” cannot be used: use an ASCII character such as a comma, tab, semicolon or bar"),
        ))),
    }
}

/// The delimiter among `,` `\t` `;` `|` that splits the sample's first rows most consistently:
/// the most rows with the most common field count (which must be at least 2), then the most
/// fields, then the order above. A comma when none splits anything.
pub(crate) fn sniff(sample: &str, truncated: bool) -> u8 {
    let mut best = (b',', 0usize, 0usize);
    for delimiter in DELIMITERS {
        let mut reader = ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(sample.as_bytes());
        let mut counts = Vec::new();
        let mut record = ByteRecord::new();
        while counts.len() < SNIFF_ROWS {
            match reader.read_byte_record(&mut record) {
                Ok(true) if record.iter().all(<[u8]>::is_empty) => {}
                Ok(true) => counts.push(record.len()),
                _ => break,
            }
        }
        // The sample's last row may be cut short by the end of the sample.
        if truncated && counts.len() > 1 && counts.len() < SNIFF_ROWS {
            counts.pop();
        }
        let (fields, rows) = most_common(&counts);
        if fields >= 2 && (rows, fields) > (best.1, best.2) {
            best = (delimiter, rows, fields);
        }
    }
    best.0
}

/// The most common value and how often it occurs (the larger value on a tie).
fn most_common(counts: &[usize]) -> (usize, usize) {
    let mut best = (0, 0);
    for &c in counts {
        let n = counts.iter().filter(|&&x| x == c).count();
        if (n, c) > (best.1, best.0) {
            best = (c, n);
        }
    }
    best
}

struct CsvRows {
    reader: Reader<Box<dyn Read + Send>>,
    record: ByteRecord,
    cells: CellText,
    encoding: &'static str,
    ended: bool,
}

impl RawRows for CsvRows {
    fn next_raw(&mut self) -> Option<Result<RawRow, Fault>> {
        if self.ended {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => {
                self.ended = true;
                return None;
            }
            Err(e) => {
                self.ended = true;
                let message = Msg::new(format!("读取文件出错：{e}"), format!("cannot read the file: {e}"));
                return Some(Err(Fault::Source(SourceError::whole(message))));
            }
        }
        // The record's first line, as a spreadsheet would number it.
        let row = self.record.position().map_or(0, |p| p.line());
        let mut cells = Vec::with_capacity(self.record.len());
        let last = self.record.len().saturating_sub(1);
        for (col, field) in self.record.iter().enumerate() {
            let field = if col == last { field.strip_suffix(b"\r").unwrap_or(field) } else { field };
            if field.len() > MAX_CELL {
                return Some(Err(Fault::TooLarge { row, col }));
            }
            match self.cells.text(field) {
                Some(text) => cells.push(text),
                None => return Some(Err(Fault::Undecodable { row, col, encoding: self.encoding })),
            }
        }
        Some(Ok(RawRow { row, cells }))
    }
}
