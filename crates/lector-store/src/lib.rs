//! Lector's operational store: SQLite (embedded default) or PostgreSQL through one code path.
//!
//! Queries are written once with `$N` placeholders, which both SQLite and PostgreSQL accept, and
//! run through sqlx's `Any` driver. Every state change writes its audit row in the same
//! transaction (see [`audit`]). See `docs/adr/0002-store.md`.

pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod cases;
pub mod channels;
pub mod config;
pub mod consent;
mod db;
pub mod identity;
pub mod imports;
mod migrations;
pub mod outbox;
pub mod portal_auth;
pub mod reader_refs;
pub mod readers;
pub mod saved_queries;
pub mod segments;
pub mod templates;
pub mod tracking;
pub mod triggers;
pub mod warehouse_extract;

pub use db::{Backend, Store};
pub use lector_domain as domain;

use lector_domain::{FieldErrors, Msg};

/// Who performs a change, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    /// Where the request came from (IP address, `cli`, `demo`).
    pub origin: String,
}

impl Actor {
    pub fn user(id: i64, name: &str, origin: &str) -> Self {
        Self { user_id: Some(id), name: name.to_string(), origin: origin.to_string() }
    }

    pub fn system(name: &str) -> Self {
        Self { user_id: None, name: name.to_string(), origin: name.to_string() }
    }

    /// A reader signed in on the portal, acting on their own records.
    pub fn reader(card_no: &str) -> Self {
        Self { user_id: None, name: format!("reader:{card_no}"), origin: "portal".to_string() }
    }

    /// The card number of a signed-in reader acting (see [`Actor::reader`]).
    pub fn reader_card(&self) -> Option<&str> {
        if self.user_id.is_none() && self.origin == "portal" {
            self.name.strip_prefix("reader:")
        } else {
            None
        }
    }
}

/// What can go wrong in the store, in terms the layers above can answer to a user.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The change clashes with the stored state: a duplicate key or a stale version.
    #[error("conflict: {0}")]
    Conflict(Msg),
    /// The input names things that do not exist or breaks a configured rule.
    #[error("invalid input: {0}")]
    Invalid(FieldErrors),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    pub(crate) fn invalid(field: &str, msg: Msg) -> Self {
        let mut e = FieldErrors::default();
        e.push(field, msg);
        StoreError::Invalid(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A page of results with the total count (capped for very broad searches).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    /// True when `total` is a lower bound: the search matched more than the store counts.
    pub total_capped: bool,
    pub page: i64,
    pub per_page: i64,
}

impl<T> Page<T> {
    pub fn pages(&self) -> i64 {
        ((self.total + self.per_page - 1) / self.per_page).max(1)
    }
}

/// The current time as stored: UTC, RFC 3339 with milliseconds, so text order is time order.
pub fn now_text() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
