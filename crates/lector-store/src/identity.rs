//! Identity resolution in the store: finding candidate pairs by blocking keys over all readers,
//! queueing uncertain ones for review, merging two records into one (audited, reversible) and
//! remembering "not the same person".
// CONTRACT: signatures agreed; bodies filled in by the identity helper.

mod merge;
mod resolve;

use crate::audit::{self, Change};
use crate::readers::{load_reader, ReaderKey, ReaderRecord};
use crate::{now_text, Actor, Page, Result, Store, StoreError};
use lector_domain::identity::{Evidence, MatchRules};
use lector_domain::Msg;
use merge::{Context, Item, Plan, Side, Snapshot};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// The settings key holding the rules an admin saved.
const RULES_KEY: &str = "identity.match_rules";

/// What one resolution run found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResolveReport {
    pub readers: u64,
    /// Pairs scored (those sharing a blocking key).
    pub pairs_scored: u64,
    pub merged: u64,
    pub queued: u64,
    /// Blocking keys shared by more than `max_block` readers, skipped.
    pub giant_blocks: u64,
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

const CANDIDATE_COLUMNS: &str = "m.id, m.left_id, m.right_id, m.score, m.evidence, m.status, m.created_at";

/// The candidates of `status` that can be shown: a pending or distinct pair whose two readers
/// both still exist, a merged pair whose merge stands.
fn candidate_filter(status: &str) -> Result<&'static str> {
    match status {
        "pending" | "distinct" => Ok(" WHERE m.status = $1 AND EXISTS (SELECT 1 FROM readers r WHERE r.id = m.left_id) \
             AND EXISTS (SELECT 1 FROM readers r WHERE r.id = m.right_id)"),
        "merged" => Ok(" WHERE m.status = $1 AND EXISTS (SELECT 1 FROM merges g WHERE g.candidate_id = m.id AND g.undone_at IS NULL)"),
        other => Err(StoreError::invalid(
            "status",
            Msg::new(
                format!("状态应为 pending、merged 或 distinct，而不是“{other}”"),
                format!("status must be pending, merged or distinct, not '{other}'"),
            ),
        )),
    }
}

/// The two records of a candidate row: as they are now, or for a merged pair as they were
/// just before the merge. `None` when one of them is gone.
async fn candidate(conn: &mut AnyConnection, row: &AnyRow) -> Result<Option<MatchCandidate>> {
    let (id, left_id, right_id): (i64, i64, i64) = (row.try_get("id")?, row.try_get("left_id")?, row.try_get("right_id")?);
    let status: String = row.try_get("status")?;
    let sides = if status == "merged" {
        let merge = sqlx::query(
            "SELECT absorbed_snapshot, survivor_before FROM merges WHERE candidate_id = $1 AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        match merge {
            None => None,
            Some(m) => {
                let parse = |col: &str| -> Result<ReaderRecord> {
                    let s: Snapshot = serde_json::from_str(&m.try_get::<String, _>(col)?)
                        .map_err(|e| StoreError::Other(format!("merge snapshot: {e}")))?;
                    Ok(s.record)
                };
                let (a, b) = (parse("survivor_before")?, parse("absorbed_snapshot")?);
                Some(if a.id == left_id { (a, b) } else { (b, a) })
            }
        }
    } else {
        match (load_reader(conn, ReaderKey::Id(left_id)).await, load_reader(conn, ReaderKey::Id(right_id)).await) {
            (Ok(l), Ok(r)) => Some((l, r)),
            (Err(StoreError::NotFound), _) | (_, Err(StoreError::NotFound)) => None,
            (Err(e), _) | (_, Err(e)) => return Err(e),
        }
    };
    let Some((left, right)) = sides else { return Ok(None) };
    let evidence: String = row.try_get("evidence")?;
    Ok(Some(MatchCandidate {
        id,
        left,
        right,
        score: row.try_get("score")?,
        evidence: serde_json::from_str(&evidence).map_err(|e| StoreError::Other(format!("candidate {id} evidence: {e}")))?,
        status,
        created_at: row.try_get("created_at")?,
    }))
}

/// Reads staff's choices: whether the left record survives, and the plan; every unknown field
/// or side is reported at once.
fn plan(choices: &MergeChoices) -> Result<(bool, Plan)> {
    let mut errs = lector_domain::FieldErrors::default();
    let side = |v: &str| match v {
        "left" => Ok(true),
        "right" => Ok(false),
        other => Err(Msg::new(format!("应为 left 或 right，而不是“{other}”"), format!("expected left or right, not '{other}'"))),
    };
    let survivor_is_left = errs.take("survivor", side(&choices.survivor)).unwrap_or(true);
    let mut picks = BTreeMap::new();
    for (field, chosen) in &choices.fields {
        let key = format!("fields.{field}");
        let known = merge::FIELDS.contains(&field.as_str()) || field.strip_prefix("attributes.").is_some_and(|code| !code.is_empty());
        if !known {
            let all = merge::FIELDS.join(", ");
            errs.push(
                key,
                Msg::new(
                    format!("没有可选择的字段“{field}”，可选：{all}、attributes.代码"),
                    format!("no field '{field}' to choose; use {all} or attributes.CODE"),
                ),
            );
            continue;
        }
        if let Some(left) = errs.take(&key, side(chosen)) {
            picks.insert(field.clone(), if left == survivor_is_left { Side::Survivor } else { Side::Absorbed });
        }
    }
    errs.finish(|| (survivor_is_left, Plan { picks, fill_blanks: false })).map_err(StoreError::Invalid)
}

async fn saved_rules(conn: &mut AnyConnection) -> Result<Option<MatchRules>> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(RULES_KEY).fetch_optional(&mut *conn).await?;
    row.map(|r| {
        let v: String = r.try_get("value")?;
        serde_json::from_str(&v).map_err(|e| StoreError::Other(format!("stored setting {RULES_KEY}: {e}")))
    })
    .transpose()
}

/// The reader now holding card number `card_no` as an identifier (it was merged into them).
pub(crate) async fn survivor_of_card(conn: &mut AnyConnection, card_no: &str) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT reader_id FROM reader_identifiers WHERE kind = 'card_no' AND value = $1 ORDER BY id DESC LIMIT 1")
        .bind(card_no.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get("reader_id")).transpose()?)
}

impl Store {
    /// The rules in force (saved by an admin, or the defaults).
    pub async fn match_rules(&self) -> Result<MatchRules> {
        let mut conn = self.pool.acquire().await?;
        Ok(saved_rules(&mut conn).await?.unwrap_or_default())
    }

    pub async fn save_match_rules(&self, actor: &Actor, rules: &MatchRules) -> Result<()> {
        rules.validate().map_err(StoreError::Invalid)?;
        let mut tx = self.begin().await?;
        let before = saved_rules(&mut tx).await?.unwrap_or_default();
        let value = serde_json::to_string(rules).map_err(|e| StoreError::Other(e.to_string()))?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(RULES_KEY)
        .bind(value)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "settings.match_rules",
                entity: "settings",
                entity_id: Some(RULES_KEY.to_string()),
                summary: format!("merge_at {} review_at {}", rules.merge_at, rules.review_at),
                before: Some(serde_json::to_value(&before).unwrap_or_default()),
                after: Some(serde_json::to_value(rules).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Scores every pair of readers sharing a blocking key: merges those above the merge
    /// threshold, queues those between the thresholds, skips pairs marked distinct.
    pub async fn resolve_identities(&self, actor: &Actor) -> Result<ResolveReport> {
        let rules = self.match_rules().await?;
        resolve::run(self, actor, &rules).await
    }

    /// Candidates of `status` (`pending`, `merged`, `distinct`): pending ones by score, highest
    /// first; decided ones most recent first.
    pub async fn match_candidates(&self, status: &str, page: i64, per_page: i64) -> Result<Page<MatchCandidate>> {
        let filter = candidate_filter(status)?;
        let (page, per_page) = (page.max(1), per_page.clamp(1, 200));
        let order = if status == "pending" { "m.score DESC, m.id" } else { "m.decided_at DESC, m.id DESC" };
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM match_candidates m{filter}"))
            .bind(status)
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        let list = format!(
            "SELECT {CANDIDATE_COLUMNS} FROM match_candidates m{filter} ORDER BY {order} LIMIT {per_page} OFFSET {}",
            (page - 1) * per_page
        );
        let rows = sqlx::query(&list).bind(status).fetch_all(&mut *conn).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.extend(candidate(&mut conn, row).await?);
        }
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    pub async fn match_candidate(&self, id: i64) -> Result<MatchCandidate> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(&format!("SELECT {CANDIDATE_COLUMNS} FROM match_candidates m WHERE m.id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        candidate(&mut conn, &row).await?.ok_or(StoreError::NotFound)
    }

    /// Merges a candidate pair as chosen; returns the surviving record.
    pub async fn merge_candidate(&self, actor: &Actor, candidate_id: i64, choices: &MergeChoices) -> Result<ReaderRecord> {
        let (survivor_is_left, plan) = plan(choices)?;
        let rules = self.match_rules().await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT left_id, right_id FROM match_candidates WHERE id = $1")
            .bind(candidate_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let (left, right): (i64, i64) = (row.try_get("left_id")?, row.try_get("right_id")?);
        let (survivor, absorbed) = if survivor_is_left { (left, right) } else { (right, left) };
        let ctx = Context::load(&mut tx, resolve::identifier_codes(&rules)).await?;
        merge::merge_all(&mut tx, actor, &[Item { candidate_id, survivor, absorbed, plan }], "manual", &ctx).await?;
        let record = load_reader(&mut tx, ReaderKey::Id(survivor)).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Marks a pair "not the same person"; later runs never propose it again.
    pub async fn mark_distinct(&self, actor: &Actor, candidate_id: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT left_id, right_id, status FROM match_candidates WHERE id = $1")
            .bind(candidate_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let status: String = row.try_get("status")?;
        match status.as_str() {
            "distinct" => return Ok(()),
            "merged" => {
                return Err(StoreError::Conflict(Msg::new(
                    "这对记录已经合并；如需分开，请先撤销合并",
                    "this pair has been merged; undo the merge to separate them",
                )))
            }
            _ => {}
        }
        sqlx::query("UPDATE match_candidates SET status = 'distinct', decided_by = $1, decided_at = $2 WHERE id = $3")
            .bind(actor.name.clone())
            .bind(now_text())
            .bind(candidate_id)
            .execute(&mut *tx)
            .await?;
        let (left, right): (i64, i64) = (row.try_get("left_id")?, row.try_get("right_id")?);
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "identity.distinct",
                entity: "match_candidate",
                entity_id: Some(candidate_id.to_string()),
                summary: format!("readers {left} and {right} are not the same person"),
                before: Some(serde_json::json!({ "status": status })),
                after: Some(serde_json::json!({ "status": "distinct" })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Merges, most recent first.
    pub async fn merges(&self, page: i64, per_page: i64) -> Result<Page<MergeRecord>> {
        let (page, per_page) = (page.max(1), per_page.clamp(1, 200));
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM merges").fetch_one(&self.pool).await?.try_get("n")?;
        let rows = sqlx::query(&format!(
            "SELECT id, survivor_id, absorbed_id, absorbed_card_no, absorbed_name, by_name, at, how, undone_at FROM merges \
             ORDER BY id DESC LIMIT {per_page} OFFSET {}",
            (page - 1) * per_page
        ))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(MergeRecord {
                    id: r.try_get("id")?,
                    survivor_id: r.try_get("survivor_id")?,
                    absorbed_id: r.try_get("absorbed_id")?,
                    absorbed_card_no: r.try_get("absorbed_card_no")?,
                    absorbed_name: r.try_get("absorbed_name")?,
                    by: r.try_get("by_name")?,
                    at: r.try_get("at")?,
                    how: r.try_get("how")?,
                    undone_at: r.try_get("undone_at")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    /// Reverses a merge: the absorbed record comes back with its own id, identifiers and history.
    pub async fn undo_merge(&self, actor: &Actor, merge_id: i64) -> Result<()> {
        let rules = self.match_rules().await?;
        let mut tx = self.begin().await?;
        let ctx = Context::load(&mut tx, resolve::identifier_codes(&rules)).await?;
        merge::undo(&mut tx, actor, merge_id, &ctx).await?;
        tx.commit().await?;
        Ok(())
    }
}
