//! `.xlsx` streamed cell by cell: a reader thread walks the sheet with calamine's cell reader and
//! hands whole rows over a bounded channel, so memory stays bounded however large the sheet, and
//! a stray cell in column XFD costs one wide row instead of a dense grid of 17 billion cells.
//! Rows are expected in order, as Excel writes them.

use super::excel::{broken, cell_text, empty_sheet, no_such_sheet, LAST_COL, LAST_ROW};
use super::table::{no_data, Fault, RawRow, RawRows};
use crate::SourceError;
use calamine::{open_workbook, Dimensions, Reader, Xlsx, XlsxError};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

type Book = Xlsx<BufReader<File>>;

/// Rows in flight between the reader thread and the import.
const CHANNEL_ROWS: usize = 512;
/// More shared strings than this is a damaged or hostile file (calamine reserves room for the
/// count the file declares before reading any).
const MAX_SHARED_STRINGS: u64 = 64 * 1024 * 1024;

pub(crate) fn sheet_names(path: &Path) -> Result<Vec<String>, SourceError> {
    Ok(book(path)?.sheet_names())
}

/// Starts reading sheet `wanted` (or the first sheet with data) on a thread of its own.
pub(crate) fn stream(path: &Path, wanted: Option<String>) -> Result<SheetStream, SourceError> {
    let (tx, rx) = sync_channel(CHANNEL_ROWS);
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("lector-xlsx".into())
        .spawn(move || produce(&path, wanted.as_deref(), &tx))
        .map_err(|e| broken(&e.to_string()))?;
    Ok(SheetStream { rx, ended: false })
}

enum Item {
    Row(RawRow),
    Fail(SourceError),
    End,
}

/// Rows from the reader thread; the thread ending without `End` (a panic inside calamine on a
/// damaged file) is a damaged file.
pub(crate) struct SheetStream {
    rx: Receiver<Item>,
    ended: bool,
}

impl RawRows for SheetStream {
    fn next_raw(&mut self) -> Option<Result<RawRow, Fault>> {
        if self.ended {
            return None;
        }
        match self.rx.recv() {
            Ok(Item::Row(row)) => Some(Ok(row)),
            Ok(Item::End) => {
                self.ended = true;
                None
            }
            Ok(Item::Fail(e)) => {
                self.ended = true;
                Some(Err(Fault::Source(e)))
            }
            Err(_) => {
                self.ended = true;
                Some(Err(Fault::Source(broken("the workbook structure is malformed"))))
            }
        }
    }
}

fn produce(path: &Path, wanted: Option<&str>, tx: &SyncSender<Item>) {
    let last = match read_sheet(path, wanted, tx) {
        Ok(()) => Item::End,
        Err(e) => Item::Fail(e),
    };
    // The import may have stopped reading; nothing is waiting for the rest then.
    let _ = tx.send(last);
}

fn read_sheet(path: &Path, wanted: Option<&str>, tx: &SyncSender<Item>) -> Result<(), SourceError> {
    let mut book = book(path)?;
    let name = choose_sheet(&mut book, wanted)?;
    let merges = book.merge_cells_by_sheet_name(&name).unwrap_or_default();
    let mut cells = book.worksheet_cells_reader(&name).map_err(|e| broken(&e.to_string()))?;
    let mut rows = RowBuilder::new(merges);
    while let Some(cell) = cells.next_cell().map_err(|e| broken(&e.to_string()))? {
        let (r, c) = cell.get_position();
        if r > LAST_ROW || c > LAST_COL {
            return Err(broken("a cell lies outside Excel's grid"));
        }
        let text = cell_text(cell.get_value());
        if text.is_empty() {
            continue;
        }
        if let Some(row) = rows.push(r, c, text) {
            if tx.send(Item::Row(row)).is_err() {
                return Ok(());
            }
        }
    }
    if let Some(row) = rows.finish() {
        let _ = tx.send(Item::Row(row));
    }
    Ok(())
}

fn book(path: &Path) -> Result<Book, SourceError> {
    check_shared_strings(path)?;
    open_workbook(path).map_err(|e: XlsxError| broken(&e.to_string()))
}

fn choose_sheet(book: &mut Book, wanted: Option<&str>) -> Result<String, SourceError> {
    let names = book.sheet_names();
    match wanted {
        Some(name) if !names.iter().any(|n| n == name) => Err(no_such_sheet(name, &names)),
        Some(name) if has_data(book, name)? => Ok(name.to_string()),
        Some(name) => Err(empty_sheet(name)),
        None => {
            for name in &names {
                if has_data(book, name)? {
                    return Ok(name.clone());
                }
            }
            Err(no_data())
        }
    }
}

/// Whether a sheet has a non-blank cell (a chart sheet has none).
fn has_data(book: &mut Book, name: &str) -> Result<bool, SourceError> {
    let mut cells = match book.worksheet_cells_reader(name) {
        Ok(cells) => cells,
        Err(XlsxError::NotAWorksheet(_)) => return Ok(false),
        Err(e) => return Err(broken(&e.to_string())),
    };
    while let Some(cell) = cells.next_cell().map_err(|e| broken(&e.to_string()))? {
        if !cell_text(cell.get_value()).trim().is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Refuses a shared-string table declaring more strings than it could hold (or than any real
/// workbook has): calamine would reserve memory for the declared count up front.
fn check_shared_strings(path: &Path) -> Result<(), SourceError> {
    let file = File::open(path).map_err(|e| crate::decode::unreadable(path, &e))?;
    let Ok(mut zip) = zip::ZipArchive::new(BufReader::new(file)) else {
        return Ok(()); // calamine reports the damage
    };
    let found =
        zip.file_names().filter_map(Result::ok).find(|n| n.to_ascii_lowercase().ends_with("sharedstrings.xml")).map(|n| n.into_owned());
    let Some(name) = found else {
        return Ok(());
    };
    let Ok(entry) = zip.by_name(&name) else {
        return Ok(());
    };
    let size = entry.size();
    let mut head = Vec::new();
    if entry.take(64 * 1024).read_to_end(&mut head).is_err() {
        return Ok(());
    }
    let head = String::from_utf8_lossy(&head);
    let declared = ["uniqueCount=\"", "uniqueCount='"].iter().find_map(|attr| {
        let start = head.find(attr)? + attr.len();
        head[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u64>().ok()
    });
    match declared {
        // Each string takes at least `<si/>` (5 bytes).
        Some(n) if n > MAX_SHARED_STRINGS || n.saturating_mul(5) > size => {
            Err(broken("the shared string table declares more strings than it holds"))
        }
        _ => Ok(()),
    }
}

/// Assembles cells into rows, filling merged ranges from their top-left cell.
struct RowBuilder {
    row: Option<u32>,
    cells: Vec<String>,
    /// Merged ranges by first row, and each one's value once its top-left cell is read.
    merges: Vec<(Dimensions, Option<String>)>,
    by_corner: HashMap<(u32, u32), usize>,
    next_merge: usize,
    active: Vec<usize>,
}

impl RowBuilder {
    fn new(mut regions: Vec<Dimensions>) -> Self {
        regions.sort_by_key(|d| d.start);
        let by_corner = regions.iter().enumerate().map(|(i, d)| (d.start, i)).collect();
        Self {
            row: None,
            cells: Vec::new(),
            merges: regions.into_iter().map(|d| (d, None)).collect(),
            by_corner,
            next_merge: 0,
            active: Vec::new(),
        }
    }

    /// Adds a cell; returns the previous row when this cell starts a new one.
    fn push(&mut self, r: u32, c: u32, text: String) -> Option<RawRow> {
        let done = if self.row == Some(r) { None } else { self.finish() };
        self.row = Some(r);
        if let Some(&i) = self.by_corner.get(&(r, c)) {
            self.merges[i].1 = Some(text.clone());
        }
        let c = c as usize;
        if self.cells.len() <= c {
            self.cells.resize(c + 1, String::new());
        }
        self.cells[c] = text;
        done
    }

    /// The row being built, merged ranges over it filled in.
    fn finish(&mut self) -> Option<RawRow> {
        let r = self.row.take()?;
        while let Some((region, _)) = self.merges.get(self.next_merge) {
            if region.start.0 > r {
                break;
            }
            self.active.push(self.next_merge);
            self.next_merge += 1;
        }
        let merges = &self.merges;
        self.active.retain(|&i| merges[i].0.end.0 >= r);
        for &i in &self.active {
            let (region, value) = &self.merges[i];
            let Some(value) = value else { continue };
            let (first, last) = (region.start.1 as usize, region.end.1.min(LAST_COL) as usize);
            if first > last {
                continue;
            }
            if self.cells.len() <= last {
                self.cells.resize(last + 1, String::new());
            }
            for cell in &mut self.cells[first..=last] {
                if cell.is_empty() {
                    cell.clone_from(value);
                }
            }
        }
        Some(RawRow { row: u64::from(r) + 1, cells: std::mem::take(&mut self.cells) })
    }
}
