//! Legacy `.xls` (BIFF5/BIFF8 inside an OLE compound file). calamine reads such a workbook whole
//! and sizes its buffers from the file's own records, so a damaged file could make it ask for
//! hundreds of gigabytes, which aborts the process rather than failing. The workbook stream is
//! therefore read first with the `cfb` crate and its sheet records checked against Excel 97's grid
//! (65,536 rows × 256 columns); calamine then reads a fresh compound file holding only that
//! checked stream.

use super::excel::{broken, cell_text, empty_sheet, no_such_sheet};
use super::table::{no_data, Fault, RawRow, RawRows};
use crate::{decode, SourceError};
use calamine::{open_workbook_from_rs, Data, Dimensions, Range, Reader, Xls, XlsError};
use std::fs::File;
use std::io::{Cursor, Read, Write};
use std::path::Path;

type Book = Xls<Cursor<Vec<u8>>>;

const ROWS: u32 = 65_536;
const COLS: u32 = 256;
/// The largest workbook stream read (Excel 97 files stay far below).
const MAX_STREAM: u64 = 1 << 30;

pub(crate) fn sheet_names(path: &Path) -> Result<Vec<String>, SourceError> {
    Ok(book(path)?.sheet_names())
}

/// The rows of sheet `wanted`, or of the first sheet with data, merged ranges filled in.
pub(crate) fn load(path: &Path, wanted: Option<&str>) -> Result<SheetRows, SourceError> {
    let mut book = book(path)?;
    let names = book.sheet_names();
    let (name, mut range) = match wanted {
        Some(name) if !names.iter().any(|n| n == name) => return Err(no_such_sheet(name, &names)),
        Some(name) => {
            let range = book.worksheet_range(name).map_err(|e| broken(&e.to_string()))?;
            if !has_data(&range) {
                return Err(empty_sheet(name));
            }
            (name.to_string(), range)
        }
        None => first_with_data(&mut book, &names)?,
    };
    fill_merged(&mut range, &book.merge_cells_by_sheet_name(&name).unwrap_or_default());
    Ok(SheetRows { range, next: 0 })
}

fn book(path: &Path) -> Result<Book, SourceError> {
    let bytes = checked_copy(path)?;
    open_workbook_from_rs(Cursor::new(bytes)).map_err(|e: XlsError| broken(&e.to_string()))
}

fn first_with_data(book: &mut Book, names: &[String]) -> Result<(String, Range<Data>), SourceError> {
    for name in names {
        let range = book.worksheet_range(name).map_err(|e| broken(&e.to_string()))?;
        if has_data(&range) {
            return Ok((name.clone(), range));
        }
    }
    Err(no_data())
}

fn has_data(range: &Range<Data>) -> bool {
    range.used_cells().any(|(_, _, cell)| !cell_text(cell).trim().is_empty())
}

/// The workbook stream, checked, in a new compound file of its own.
fn checked_copy(path: &Path) -> Result<Vec<u8>, SourceError> {
    let failed = |e: std::io::Error| broken(&e.to_string());
    let file = File::open(path).map_err(|e| decode::unreadable(path, &e))?;
    let mut compound = cfb::CompoundFile::open(file).map_err(failed)?;
    let name = ["Workbook", "Book"].into_iter().find(|n| compound.is_stream(n)).ok_or_else(|| broken("no workbook stream"))?;
    let mut stream = compound.open_stream(name).map_err(failed)?;
    if stream.len() > MAX_STREAM {
        return Err(broken("the workbook stream is larger than 1 GiB"));
    }
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).map_err(failed)?;
    check_sheets(&bytes)?;
    let mut fresh = cfb::CompoundFile::create_with_version(cfb::Version::V3, Cursor::new(Vec::new())).map_err(failed)?;
    fresh.create_stream(name).and_then(|mut s| s.write_all(&bytes)).map_err(failed)?;
    fresh.flush().map_err(failed)?;
    Ok(fresh.into_inner().into_inner())
}

/// Walks the records as calamine will: the globals up to their EOF for the sheets' offsets,
/// then each sheet from its offset up to its own EOF, skipping embedded substreams (charts).
fn check_sheets(stream: &[u8]) -> Result<(), SourceError> {
    let mut offsets = Vec::new();
    for (typ, data) in Records(stream) {
        match typ {
            0x0085 if data.len() >= 4 => offsets.push(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize),
            0x000A => break,
            _ => {}
        }
    }
    for offset in offsets {
        let Some(sheet) = stream.get(offset..) else { continue };
        let (mut seen_bof, mut depth) = (false, 0usize);
        for (typ, data) in Records(sheet) {
            if depth > 0 {
                match typ {
                    0x0809 => depth += 1,
                    0x000A => depth -= 1,
                    _ => {}
                }
                continue;
            }
            match typ {
                0x0809 if seen_bof => depth += 1,
                0x0809 => seen_bof = true,
                0x000A => break,
                _ => check_record(typ, data)?,
            }
        }
    }
    Ok(())
}

/// Dimensions and cell positions must lie in the grid (and a dimension's start before its end).
fn check_record(typ: u16, data: &[u8]) -> Result<(), SourceError> {
    let u16_at = |i: usize| data.get(i..i + 2).map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])));
    let u32_at = |i: usize| data.get(i..i + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let fits = match typ {
        // Dimensions: first row, last row + 1, first column, last column + 1.
        0x0200 => {
            let (rf, rl, cf, cl) = match data.len() {
                10 => (u16_at(0), u16_at(2), u16_at(4), u16_at(6)),
                14 | 16 => (u32_at(0), u32_at(4), u16_at(8), u16_at(10)),
                _ => return Ok(()),
            };
            rl <= ROWS && cl <= COLS && cf < COLS && (rl == 0 || cl == 0 || (rf < rl && cf < cl))
        }
        // Number, Label, RString, BoolErr, RK, LabelSst, Formula: row, column.
        0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 => u16_at(2) < COLS,
        // MulRk: row, first column, …, last column.
        0x00BD if data.len() >= 6 => u16_at(2) < COLS && u16_at(data.len() - 2) < COLS,
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(broken("a sheet record lies outside the 65,536 × 256 grid of an .xls file"))
    }
}

/// BIFF records as calamine reads them: type and data, CONTINUE records that follow skipped.
struct Records<'a>(&'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (typ, data, mut rest) = record(self.0)?;
        while rest.len() > 4 {
            match record(rest) {
                Some((0x003C, _, after)) => rest = after,
                _ => break,
            }
        }
        self.0 = rest;
        Some((typ, data))
    }
}

fn record(stream: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let typ = u16::from_le_bytes([*stream.first()?, *stream.get(1)?]);
    let len = usize::from(u16::from_le_bytes([*stream.get(2)?, *stream.get(3)?]));
    let data = stream.get(4..4 + len)?;
    Some((typ, data, &stream[4 + len..]))
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

/// A loaded sheet, row by row; cells keep their sheet columns (column A first) as in `.xlsx`.
pub(crate) struct SheetRows {
    range: Range<Data>,
    next: usize,
}

impl RawRows for SheetRows {
    fn next_raw(&mut self) -> Option<Result<RawRow, Fault>> {
        let (top, left) = self.range.start()?;
        let (height, width) = self.range.get_size();
        if self.next >= height {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let mut cells = vec![String::new(); left as usize];
        cells.extend((0..width).map(|c| self.range.get((i, c)).map(cell_text).unwrap_or_default()));
        Some(Ok(RawRow { row: u64::from(top) + i as u64 + 1, cells }))
    }
}
