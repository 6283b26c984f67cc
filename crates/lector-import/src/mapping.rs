//! Mapping profiles: which source column feeds which reader field, with value maps, defaults
//! and transforms; saved as TOML and reused. Without a profile, plain headers (Chinese, English,
//! Koha, FOLIO) are recognised.
// CONTRACT: signatures agreed; bodies filled in by the mapping helper.

use crate::Record;
use lector_domain::attribute::AttrDef;
use lector_domain::import::{IncomingReader, Rejection};
use lector_domain::Msg;
use serde::{Deserialize, Serialize};

/// A mapping profile as saved (TOML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {}

impl Profile {
    /// Reads a profile; an error names the line and what to fix.
    pub fn from_toml(_text: &str) -> Result<Self, Msg> {
        todo!()
    }

    pub fn to_toml(&self) -> String {
        todo!()
    }

    /// The profile Lector would use for these headers without one: each header it recognises
    /// mapped to its field, the rest ignored.
    pub fn detect(_headers: &[String]) -> Self {
        todo!()
    }

    /// Checks the profile against the source's headers and the store's configuration and returns
    /// the mapper for its rows. Errors name the missing column or unknown field.
    pub fn compile(&self, _headers: &[String], _attributes: &[AttrDef], _categories: &[String]) -> Result<Mapper, Msg> {
        todo!()
    }
}

/// A compiled profile: turns records into validated readers or rejections naming the column.
pub struct Mapper {}

impl Mapper {
    pub fn convert(&self, _record: &Record, _today: chrono::NaiveDate) -> Result<IncomingReader, Vec<Rejection>> {
        todo!()
    }
}
