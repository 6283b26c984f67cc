//! Identity resolution (读者身份合并): deciding whether two reader records are the same person.
//! Candidate pairs come from blocking keys, never from comparing every pair; weighted rules
//! score a pair and two thresholds decide: merge, review, or leave apart.
// CONTRACT: names agreed; filled in by the identity helper.

use serde::{Deserialize, Serialize};

/// One piece of evidence that two records are (or are not) the same person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    SameCardNo,
    SameIdNumber,
    SameEmail,
    SameMobile,
    SameName,
    SamePinyin,
    SameBirthDate,
    SameAffiliation,
    DifferentBirthDate,
}

/// Weights and thresholds, configurable by admins (TOML or the admin page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchRules {
    pub merge_at: f64,
    pub review_at: f64,
}
