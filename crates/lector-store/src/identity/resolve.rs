//! One resolution run over every reader: stream them once, keep each as a few packed bytes,
//! group by blocking key, and score only the pairs inside a block.

use super::merge::{self, Context, Plan};
use super::ResolveReport;
use crate::audit::{self, Change};
use crate::{now_text, Actor, Result, Store, StoreError};
use futures_util::TryStreamExt;
use lector_domain::identity::{blocking_keys, decide, score, Decision, Evidence, MatchRules, Person};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

/// Every person of the run packed into one byte buffer: per person its values as (field tag,
/// u16 length, bytes). A million readers take about 120 MB instead of ten heap strings each.
#[derive(Default)]
struct Arena {
    ids: Vec<i64>,
    starts: Vec<u32>,
    bytes: Vec<u8>,
}

const NAME: u8 = 0;
const PINYIN: u8 = 1;
const PINYIN_REVERSED: u8 = 2;
const BIRTH: u8 = 3;
const AFFILIATION: u8 = 4;
const CARD: u8 = 5;
const EMAIL: u8 = 6;
const MOBILE: u8 = 7;
const ID_NUMBER: u8 = 8;

impl Arena {
    fn push(&mut self, p: &Person) -> Result<()> {
        let start = u32::try_from(self.bytes.len()).map_err(|_| StoreError::Other("identity resolution: more than 4 GB of reader data".into()))?;
        self.ids.push(p.id);
        self.starts.push(start);
        let mut put = |tag: u8, v: &str| {
            let v = &v.as_bytes()[..v.len().min(u16::MAX as usize)];
            self.bytes.push(tag);
            self.bytes.extend_from_slice(&(v.len() as u16).to_le_bytes());
            self.bytes.extend_from_slice(v);
        };
        put(NAME, &p.name);
        put(PINYIN, &p.pinyin);
        let singles = [(PINYIN_REVERSED, &p.pinyin_reversed), (BIRTH, &p.birth_date), (AFFILIATION, &p.affiliation)];
        for (tag, v) in singles {
            if let Some(v) = v {
                put(tag, v);
            }
        }
        for (tag, list) in [(CARD, &p.card_nos), (EMAIL, &p.emails), (MOBILE, &p.mobiles), (ID_NUMBER, &p.id_numbers)] {
            for v in list {
                put(tag, v);
            }
        }
        Ok(())
    }

    /// The person at `index`, its values already normalised when packed.
    fn get(&self, index: usize) -> Person {
        let end = self.starts.get(index + 1).map_or(self.bytes.len(), |e| *e as usize);
        let mut rest = &self.bytes[self.starts[index] as usize..end];
        let mut p = Person { id: self.ids[index], ..Person::default() };
        while let [tag, l0, l1, tail @ ..] = rest {
            let len = u16::from_le_bytes([*l0, *l1]) as usize;
            let v = String::from_utf8_lossy(&tail[..len.min(tail.len())]).into_owned();
            rest = &tail[len.min(tail.len())..];
            match *tag {
                NAME => p.name = v,
                PINYIN => p.pinyin = v,
                PINYIN_REVERSED => p.pinyin_reversed = Some(v),
                BIRTH => p.birth_date = Some(v),
                AFFILIATION => p.affiliation = Some(v),
                CARD => p.card_nos.push(v),
                EMAIL => p.emails.push(v),
                MOBILE => p.mobiles.push(v),
                _ => p.id_numbers.push(v),
            }
        }
        p
    }
}

fn key_hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Adds an identifier row (kind, value) to the person it belongs to.
fn add_identifier(p: &mut Person, row: &AnyRow, rules: &MatchRules) -> Result<()> {
    let kind: String = row.try_get("kind")?;
    let value: String = row.try_get("value")?;
    if kind == "card_no" || rules.card_attributes.contains(&kind) {
        p.add_card_no(&value);
    }
    if rules.id_number_attributes.contains(&kind) {
        p.add_id_number(&value);
    }
    Ok(())
}

/// Feeds every reader as a [`Person`] to `sink`: three streams ordered by reader id (readers,
/// their emails and mobiles, their identifiers) joined as they arrive.
async fn each_person(store: &Store, rules: &MatchRules, mut sink: impl FnMut(Person) -> Result<()>) -> Result<u64> {
    let mut ident_sql = String::from("SELECT reader_id, kind, value FROM reader_identifiers");
    let codes: Vec<&String> = rules.id_number_attributes.iter().chain(&rules.card_attributes).collect();
    if !codes.is_empty() {
        let list = (1..=codes.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        ident_sql.push_str(&format!(
            " UNION ALL SELECT a.reader_id, d.code, a.value FROM reader_attributes a JOIN attribute_defs d ON d.id = a.attr_id WHERE d.code IN ({list})"
        ));
    }
    ident_sql.push_str(" ORDER BY reader_id");
    let idents_query = codes.iter().fold(sqlx::query(&ident_sql), |q, c| q.bind(c.to_string()));
    let mut readers = sqlx::query("SELECT id, card_no, name, birth_date, affiliation FROM readers ORDER BY id").fetch(&store.pool);
    let mut contacts =
        sqlx::query("SELECT reader_id, kind, lookup FROM reader_contacts WHERE kind IN ('email', 'mobile') ORDER BY reader_id").fetch(&store.pool);
    let mut idents = idents_query.fetch(&store.pool);
    let mut contact = contacts.try_next().await?;
    let mut ident = idents.try_next().await?;
    let mut count = 0;
    while let Some(r) = readers.try_next().await? {
        let id: i64 = r.try_get("id")?;
        let name: String = r.try_get("name")?;
        let birth: Option<String> = r.try_get("birth_date")?;
        let affiliation: Option<String> = r.try_get("affiliation")?;
        let mut p = Person::new(id, &name, birth.as_deref(), affiliation.as_deref());
        p.add_card_no(&r.try_get::<String, _>("card_no")?);
        while let Some(c) = &contact {
            let owner: i64 = c.try_get("reader_id")?;
            if owner > id {
                break;
            }
            if owner == id {
                let (kind, lookup): (String, String) = (c.try_get("kind")?, c.try_get("lookup")?);
                if kind == "email" {
                    p.add_email(&lookup);
                } else {
                    p.add_mobile(&lookup);
                }
            }
            contact = contacts.try_next().await?;
        }
        while let Some(x) = &ident {
            let owner: i64 = x.try_get("reader_id")?;
            if owner > id {
                break;
            }
            if owner == id {
                add_identifier(&mut p, x, rules)?;
            }
            ident = idents.try_next().await?;
        }
        sink(p)?;
        count += 1;
    }
    Ok(count)
}

/// A scored pair, by arena index (left < right, so left has the lower reader id).
struct Scored {
    left: usize,
    right: usize,
    score: f64,
    evidence: Vec<Evidence>,
}

/// The pairs of readers sharing a blocking key, once each; blocks larger than `max_block` are
/// skipped and counted.
fn block_pairs(mut keys: Vec<(u64, u32)>, max_block: usize) -> (Vec<(u32, u32)>, u64) {
    keys.sort_unstable();
    let mut pairs = Vec::new();
    let mut giant = 0;
    for block in keys.chunk_by(|a, b| a.0 == b.0) {
        if block.len() > max_block {
            giant += 1;
            continue;
        }
        for (i, (_, x)) in block.iter().enumerate() {
            for (_, y) in &block[i + 1..] {
                if x != y {
                    pairs.push((*x.min(y), *x.max(y)));
                }
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    (pairs, giant)
}

pub(crate) async fn run(store: &Store, actor: &Actor, rules: &MatchRules) -> Result<ResolveReport> {
    let started = Instant::now();
    let mut arena = Arena::default();
    let mut keys: Vec<(u64, u32)> = Vec::new();
    let readers = each_person(store, rules, |p| {
        let index = arena.ids.len() as u32;
        keys.extend(blocking_keys(&p).iter().map(|k| (key_hash(k.as_str()), index)));
        arena.push(&p)
    })
    .await?;
    let (pairs, giant_blocks) = block_pairs(keys, rules.max_block);
    let mut known: HashSet<(i64, i64)> = HashSet::new();
    let mut rows = sqlx::query("SELECT left_id, right_id FROM match_candidates").fetch(&store.pool);
    while let Some(r) = rows.try_next().await? {
        known.insert((r.try_get("left_id")?, r.try_get("right_id")?));
    }
    drop(rows);
    let (mut to_merge, mut to_review) = (Vec::new(), Vec::new());
    for (x, y) in &pairs {
        let (left, right) = (*x as usize, *y as usize);
        if known.contains(&(arena.ids[left], arena.ids[right])) {
            continue;
        }
        let (score, evidence) = score(&arena.get(left), &arena.get(right), rules);
        let scored = Scored { left, right, score, evidence };
        match decide(score, rules) {
            Decision::Merge => to_merge.push(scored),
            Decision::Review => to_review.push(scored),
            Decision::Apart => {}
        }
    }
    to_merge.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut absorbed: HashSet<i64> = HashSet::new();
    let mut merged = 0;
    let ctx = {
        let mut conn = store.pool.acquire().await?;
        Context::load(&mut conn, identifier_codes(rules)).await?
    };
    let plan = Plan { survivor_is_left: true, picks: BTreeMap::new(), fill_blanks: true };
    for m in &to_merge {
        let (left, right) = (arena.ids[m.left], arena.ids[m.right]);
        if absorbed.contains(&left) || absorbed.contains(&right) {
            continue;
        }
        let mut tx = store.begin().await?;
        let Some(candidate) = insert_candidate(&mut tx, left, right, m.score, &m.evidence).await? else { continue };
        match merge::merge(&mut tx, actor, candidate, &plan, "auto", &ctx).await {
            Ok(_) => {
                tx.commit().await?;
                absorbed.insert(right);
                merged += 1;
            }
            // A record deleted or merged by someone else since the run read it: leave the pair.
            Err(StoreError::Conflict(_) | StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    let pending: Vec<&Scored> =
        to_review.iter().filter(|s| !absorbed.contains(&arena.ids[s.left]) && !absorbed.contains(&arena.ids[s.right])).collect();
    let mut tx = store.begin().await?;
    let now = now_text();
    for chunk in pending.chunks(100) {
        let mut text = String::from("INSERT INTO match_candidates (left_id, right_id, score, evidence, status, created_at) VALUES ");
        for i in 0..chunk.len() {
            let b = i * 5;
            text.push_str(&format!("{}(${}, ${}, ${}, ${}, 'pending', ${})", if i == 0 { "" } else { ", " }, b + 1, b + 2, b + 3, b + 4, b + 5));
        }
        text.push_str(" ON CONFLICT (left_id, right_id) DO NOTHING");
        let query = chunk.iter().fold(sqlx::query(&text), |q, s| {
            q.bind(arena.ids[s.left]).bind(arena.ids[s.right]).bind(s.score).bind(evidence_json(&s.evidence)).bind(now.clone())
        });
        query.execute(&mut *tx).await?;
    }
    let report = ResolveReport {
        readers,
        pairs_scored: pairs.len() as u64,
        merged,
        queued: pending.len() as u64,
        giant_blocks,
        seconds: started.elapsed().as_secs_f64(),
    };
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "identity.resolve",
            entity: "identity",
            entity_id: None,
            summary: format!(
                "{} readers, {} pairs scored, {} merged, {} queued for review, {} large blocks skipped",
                report.readers, report.pairs_scored, report.merged, report.queued, report.giant_blocks
            ),
            before: None,
            after: Some(serde_json::to_value(&report).unwrap_or_default()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

pub(crate) fn identifier_codes(rules: &MatchRules) -> Vec<String> {
    rules.id_number_attributes.iter().chain(&rules.card_attributes).cloned().collect()
}

pub(crate) fn evidence_json(evidence: &[Evidence]) -> String {
    serde_json::to_string(evidence).unwrap_or_else(|_| "[]".into())
}

/// Records a pair about to be merged automatically; `None` when another run recorded it first.
async fn insert_candidate(tx: &mut sqlx::Transaction<'static, sqlx::Any>, left: i64, right: i64, score: f64, evidence: &[Evidence]) -> Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO match_candidates (left_id, right_id, score, evidence, status, created_at) VALUES ($1, $2, $3, $4, 'pending', $5)
         ON CONFLICT (left_id, right_id) DO NOTHING RETURNING id",
    )
    .bind(left)
    .bind(right)
    .bind(score)
    .bind(evidence_json(evidence))
    .bind(now_text())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_gives_back_what_it_packed() {
        let mut p = Person::new(7, "Zhang Wei", Some("1990-05-01"), Some("物理系"));
        p.add_card_no("A1");
        p.add_email("a@b.cn");
        p.add_email("c@d.cn");
        p.add_mobile("13800138000");
        p.add_id_number("11010519491231002X");
        let q = Person::new(8, "李娜", None, None);
        let mut arena = Arena::default();
        arena.push(&p).unwrap();
        arena.push(&q).unwrap();
        assert_eq!(arena.get(0), p);
        assert_eq!(arena.get(1), q);
    }

    #[test]
    fn blocks_give_each_pair_once_and_skip_giant_blocks() {
        let keys = vec![(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 5), (9, 3), (9, 4), (9, 6), (9, 7)];
        let (pairs, giant) = block_pairs(keys, 3);
        assert_eq!(pairs, vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!(giant, 1);
    }
}
