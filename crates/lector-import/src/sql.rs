//! Reading readers from another database (PostgreSQL or MySQL/MariaDB) by query, by table, or
//! through the Koha preset (`borrowers` with `borrower_attributes`).
// CONTRACT: signatures agreed; bodies filled in by the mapping helper.

use crate::{Opened, SourceError};
use serde::{Deserialize, Serialize};

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlSelect {
    Query(String),
    Table(String),
    /// Koha's own database: `borrowers` and `borrower_attributes`.
    Koha,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlSpec {
    /// `postgres://…` or `mysql://…` (`mariadb://` is read as `mysql://`).
    pub url: String,
    pub select: SqlSelect,
}

impl SqlSpec {
    /// The URL with any password replaced by `***`, for labels and logs.
    pub fn redacted_url(&self) -> String {
        todo!()
    }
}

/// Connects and starts reading; the rows stream through a bounded channel so a large table is
/// never held in memory. A refused connection or a failing query is a clear error.
pub async fn open(_spec: &SqlSpec) -> Result<Opened, SourceError> {
    todo!()
}
