//! Library system formats: Koha's patron import CSV and FOLIO's user-import JSON.
// CONTRACT: signatures agreed; bodies filled in by the mapping helper.

use crate::{Opened, SourceError};

/// Reads a FOLIO user-import document (`{"users": [...], "sourceType": …,
/// "deactivateMissingUsers": …, "updateOnlyPresentFields": …}`) as records under FOLIO's field
/// paths (`externalSystemId`, `barcode`, `personal.lastName`, `customFields.CODE` …), with its
/// flags as hints.
pub fn folio(_json: &[u8]) -> Result<Opened, SourceError> {
    todo!()
}
