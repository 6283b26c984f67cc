//! Reading files: CSV/TSV (delimiter detected), Excel (.xlsx/.xls), JSON and NDJSON.
// CONTRACT: signatures agreed; bodies filled in by the files helper.

use crate::{OpenOptions, Opened, SourceError};
use std::path::Path;

/// Opens a file as a stream of records, detecting its format, encoding, delimiter and header
/// row unless `opts` says. Koha files read as CSV; FOLIO files through [`crate::library::folio`].
pub fn open(_path: &Path, _opts: &OpenOptions) -> Result<Opened, SourceError> {
    todo!()
}

/// The sheets of a workbook, in order (for the UI's sheet picker).
pub fn sheets(_path: &Path) -> Result<Vec<String>, SourceError> {
    todo!()
}
