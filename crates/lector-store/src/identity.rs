//! Identity resolution in the store: finding candidate pairs by blocking keys over all readers,
//! queueing uncertain ones for review, merging two records into one (audited, reversible) and
//! remembering "not the same person".
// CONTRACT: signatures agreed; bodies filled in by the identity helper.

use crate::readers::ReaderRecord;
use crate::{Actor, Page, Result, Store};
use lector_domain::identity::{Evidence, MatchRules};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one resolution run found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResolveReport {
    pub readers: u64,
    /// Pairs scored (those sharing a blocking key).
    pub pairs_scored: u64,
    pub merged: u64,
    pub queued: u64,
    pub seconds: f64,
}

/// A pair waiting for a person to decide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchCandidate {
    pub id: i64,
    pub left: ReaderRecord,
    pub right: ReaderRecord,
    pub score: f64,
    pub evidence: Vec<Evidence>,
    /// `pending`, `merged`, `distinct`.
    pub status: String,
    pub created_at: String,
}

/// Which record's value survives, field by field (field code → `left` or `right`); fields not
/// named keep the survivor's value. Contacts, tags, attributes, identifiers and history of
/// both records are always kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MergeChoices {
    /// The record that survives: `left` or `right`.
    pub survivor: String,
    pub fields: BTreeMap<String, String>,
}

/// A merge as remembered, so it can be shown and reversed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeRecord {
    pub id: i64,
    pub survivor_id: i64,
    pub absorbed_id: i64,
    pub absorbed_card_no: String,
    pub absorbed_name: String,
    pub by: String,
    pub at: String,
    /// `auto` (above the merge threshold) or `manual`.
    pub how: String,
    pub undone_at: Option<String>,
}

impl Store {
    /// The rules in force (saved by an admin, or the defaults).
    pub async fn match_rules(&self) -> Result<MatchRules> {
        todo!()
    }

    pub async fn save_match_rules(&self, _actor: &Actor, _rules: &MatchRules) -> Result<()> {
        todo!()
    }

    /// Scores every pair of readers sharing a blocking key: merges those above the merge
    /// threshold, queues those between the thresholds, skips pairs marked distinct.
    pub async fn resolve_identities(&self, _actor: &Actor) -> Result<ResolveReport> {
        todo!()
    }

    pub async fn match_candidates(&self, _status: &str, _page: i64, _per_page: i64) -> Result<Page<MatchCandidate>> {
        todo!()
    }

    pub async fn match_candidate(&self, _id: i64) -> Result<MatchCandidate> {
        todo!()
    }

    /// Merges a candidate pair as chosen; returns the surviving record.
    pub async fn merge_candidate(&self, _actor: &Actor, _candidate_id: i64, _choices: &MergeChoices) -> Result<ReaderRecord> {
        todo!()
    }

    /// Marks a pair "not the same person"; later runs never propose it again.
    pub async fn mark_distinct(&self, _actor: &Actor, _candidate_id: i64) -> Result<()> {
        todo!()
    }

    pub async fn merges(&self, _page: i64, _per_page: i64) -> Result<Page<MergeRecord>> {
        todo!()
    }

    /// Reverses a merge: the absorbed record comes back with its own id, identifiers and history.
    pub async fn undo_merge(&self, _actor: &Actor, _merge_id: i64) -> Result<()> {
        todo!()
    }
}
