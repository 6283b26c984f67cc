//! Readers by the references other systems name them with: a card number, or the id a source
//! gave the record lector-import linked to the reader (Koha's `borrowernumber` under `koha`).
//! Circulation files name thousands of readers at once, so they are resolved in a few chunked
//! queries, never one per row.

use std::collections::{BTreeMap, HashMap};

use lector_domain::reader::CardNo;
use lector_domain::text;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{Param, Sql};
use crate::{Result, Store};

/// Largest number of values bound in one statement.
const CHUNK: usize = 500;

/// How an event names its reader. Built through [`ReaderRef::card`] and [`ReaderRef::external`],
/// which normalise the way the store compares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderRef {
    /// A card number: trimmed, full-width folded to half-width, upper case.
    Card(String),
    /// A record id under an import source's name (`import_sources.name`).
    External { source: String, id: String },
}

impl ReaderRef {
    /// The card number `raw` as stored. A value that is no valid card number keeps its cleaned
    /// form: it matches no reader, and the quarantine shows it as given.
    pub fn card(raw: &str) -> Self {
        ReaderRef::Card(CardNo::parse(raw).map(|c| c.as_str().to_string()).unwrap_or_else(|_| text::clean(raw).to_uppercase()))
    }

    pub fn external(source: &str, id: &str) -> Self {
        ReaderRef::External { source: text::clean(source), id: text::clean(id) }
    }
}

impl std::fmt::Display for ReaderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReaderRef::Card(card) => write!(f, "card {card}"),
            ReaderRef::External { source, id } => write!(f, "{source} id {id}"),
        }
    }
}

impl Store {
    /// The reader id of each reference that names an existing reader; references naming none
    /// are left out of the map.
    pub async fn resolve_reader_refs(&self, refs: &[ReaderRef]) -> Result<HashMap<ReaderRef, i64>> {
        let mut cards: Vec<&str> = Vec::new();
        let mut external: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in refs {
            match r {
                ReaderRef::Card(card) => cards.push(card),
                ReaderRef::External { source, id } => external.entry(source).or_default().push(id),
            }
        }
        cards.sort_unstable();
        cards.dedup();
        let mut found = HashMap::new();
        for chunk in cards.chunks(CHUNK) {
            let mut sql = Sql::new("SELECT id, card_no FROM readers WHERE card_no IN (");
            sql.bind_list(chunk.iter().map(|c| Param::from(*c))).push(")");
            for row in sql.query().fetch_all(&self.pool).await? {
                found.insert(ReaderRef::Card(row.try_get("card_no")?), row.try_get("id")?);
            }
        }
        for (source, mut ids) in external {
            ids.sort_unstable();
            ids.dedup();
            for chunk in ids.chunks(CHUNK) {
                let mut sql = Sql::new(
                    "SELECT rs.external_id, rs.reader_id FROM reader_sources rs JOIN import_sources s ON s.id = rs.source_id WHERE s.name = ",
                );
                sql.bind(source).push(" AND rs.external_id IN (");
                sql.bind_list(chunk.iter().map(|id| Param::from(*id))).push(")");
                for row in sql.query().fetch_all(&self.pool).await? {
                    let id: String = row.try_get("external_id")?;
                    found.insert(ReaderRef::External { source: source.to_string(), id }, row.try_get("reader_id")?);
                }
            }
        }
        Ok(found)
    }
}
