//! One resolution run over every reader: read them once, a chunk at a time; keep each as a few
//! packed bytes; group them by blocking key (sorting hashed keys, not building a map of lists);
//! score only the pairs inside a block; merge and queue in batches.

use super::merge::{self, Context, Item, Plan};
use super::ResolveReport;
use crate::audit::{self, Change};
use crate::{now_text, Actor, Result, Store, StoreError};
use futures_util::TryStreamExt;
use lector_domain::identity::{blocking_keys, decide, score, Decision, Evidence, MatchRules, Person};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

/// Every person of the run packed into one byte buffer: per person its values as (field tag,
/// u16 length, bytes). A million readers take about 90 MB instead of ten heap strings each.
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
        let start =
            u32::try_from(self.bytes.len()).map_err(|_| StoreError::Other("identity resolution: more than 4 GB of reader data".into()))?;
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

/// A blocking key as 8 bytes. Two keys that collide only put one more pair in front of `score`.
fn key_hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Readers per query when reading them all. Each query returns one row holding its readers as
/// text, which keeps the driver's per-row cost out of a million-reader run.
const CHUNK: usize = 2000;
/// Separators of that text: between fields, readers and list items (no stored value holds
/// control characters).
const FIELD: char = '\u{1f}';
const LINE: char = '\u{1e}';
const ITEM: char = '\u{1d}';

/// One query reading the `CHUNK` readers after id `$1`: id, card number, name, birth date,
/// affiliation, emails and mobiles, identifiers (with the values of `codes` attributes).
fn chunk_sql(codes: usize) -> String {
    let attributes = if codes == 0 {
        String::new()
    } else {
        let list = (5..5 + codes).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        format!(
            " UNION ALL SELECT d.code, a.value FROM reader_attributes a JOIN attribute_defs d ON d.id = a.attr_id \
             WHERE a.reader_id = r.id AND d.code IN ({list})"
        )
    };
    format!(
        "SELECT MAX(id) AS last, COUNT(*) AS n, string_agg(line, $3) AS lines FROM (
           SELECT r.id, CAST(r.id AS TEXT) || $2 || r.card_no || $2 || r.name || $2 || COALESCE(r.birth_date, '') || $2 || COALESCE(r.affiliation, '')
             || $2 || COALESCE((SELECT string_agg(c.kind || ':' || c.lookup, $4) FROM reader_contacts c
                                WHERE c.reader_id = r.id AND c.kind IN ('email', 'mobile')), '')
             || $2 || COALESCE((SELECT string_agg(x.kind || ':' || x.value, $4) FROM (
                                  SELECT i.kind, i.value FROM reader_identifiers i WHERE i.reader_id = r.id{attributes}) AS x), '') AS line
           FROM readers r WHERE r.id > $1 ORDER BY r.id LIMIT {CHUNK}) AS chunk"
    )
}

/// A reader from one line of a chunk.
fn person(line: &str, rules: &MatchRules) -> Result<Person> {
    let mut f = line.split(FIELD);
    let mut next = || f.next().unwrap_or_default();
    let id = next().parse::<i64>().map_err(|_| StoreError::Other(format!("identity resolution: unreadable reader line '{line}'")))?;
    let (card, name, birth, affiliation) = (next(), next(), next(), next());
    let mut p = Person::new(id, name, Some(birth).filter(|s| !s.is_empty()), Some(affiliation).filter(|s| !s.is_empty()));
    p.add_card_no(card);
    let items = |text: &str| -> Vec<(String, String)> {
        text.split(ITEM).filter_map(|i| i.split_once(':')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    for (kind, value) in items(next()) {
        if kind == "email" {
            p.add_email(&value);
        } else {
            p.add_mobile(&value);
        }
    }
    for (kind, value) in items(next()) {
        if kind == "card_no" || rules.card_attributes.contains(&kind) {
            p.add_card_no(&value);
        }
        if rules.id_number_attributes.contains(&kind) {
            p.add_id_number(&value);
        }
    }
    Ok(p)
}

/// Feeds every reader as a [`Person`] to `sink`, in id order, a chunk at a time.
async fn each_person(store: &Store, rules: &MatchRules, mut sink: impl FnMut(Person) -> Result<()>) -> Result<u64> {
    let codes: Vec<String> = identifier_codes(rules);
    let sql = chunk_sql(codes.len());
    let mut conn = store.pool.acquire().await?;
    let (mut last, mut count) = (0_i64, 0_u64);
    loop {
        let query = sqlx::query(&sql).bind(last).bind(FIELD.to_string()).bind(LINE.to_string()).bind(ITEM.to_string());
        let row = codes.iter().fold(query, |q, c| q.bind(c.clone())).fetch_one(&mut *conn).await?;
        if row.try_get::<i64, _>("n")? == 0 {
            return Ok(count);
        }
        last = row.try_get("last")?;
        let lines: String = row.try_get("lines")?;
        for line in lines.split(LINE) {
            sink(person(line, rules)?)?;
            count += 1;
        }
    }
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

/// Scores the pairs not decided before: those to merge and those to review.
fn score_pairs(arena: &Arena, pairs: &[(u32, u32)], known: &HashSet<(i64, i64)>, rules: &MatchRules) -> (Vec<Scored>, Vec<Scored>) {
    let (mut to_merge, mut to_review) = (Vec::new(), Vec::new());
    // Pairs come sorted by their left member: unpack it once for all its pairs.
    let mut left_person: Option<(usize, Person)> = None;
    for (x, y) in pairs {
        let (left, right) = (*x as usize, *y as usize);
        if known.contains(&(arena.ids[left], arena.ids[right])) {
            continue;
        }
        if left_person.as_ref().map(|(i, _)| *i) != Some(left) {
            left_person = Some((left, arena.get(left)));
        }
        let Some((_, a)) = &left_person else { continue };
        let (score, evidence) = score(a, &arena.get(right), rules);
        let scored = Scored { left, right, score, evidence };
        match decide(score, rules) {
            Decision::Merge => to_merge.push(scored),
            Decision::Review => to_review.push(scored),
            Decision::Apart => {}
        }
    }
    (to_merge, to_review)
}

/// The merges to make, highest score first, and the readers they absorb. A reader is absorbed
/// once, and one that absorbs in this run is not itself absorbed (the next run sees the
/// survivor as it then is).
fn choose_merges(arena: &Arena, mut to_merge: Vec<Scored>) -> (Vec<Scored>, HashSet<i64>) {
    to_merge.sort_by(|a, b| b.score.total_cmp(&a.score));
    let (mut absorbed, mut survivors) = (HashSet::new(), HashSet::new());
    let mut chosen = Vec::new();
    for m in to_merge {
        let (left, right) = (arena.ids[m.left], arena.ids[m.right]);
        if absorbed.contains(&left) || absorbed.contains(&right) || survivors.contains(&right) {
            continue;
        }
        absorbed.insert(right);
        survivors.insert(left);
        chosen.push(m);
    }
    (chosen, absorbed)
}

/// Automatic merges written per transaction.
const MERGE_BATCH: usize = 500;

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
    let (to_merge, to_review) = score_pairs(&arena, &pairs, &known, rules);
    let (chosen, absorbed) = choose_merges(&arena, to_merge);
    let ctx = {
        let mut conn = store.pool.acquire().await?;
        Context::load(&mut conn, identifier_codes(rules)).await?
    };
    let mut merged = 0;
    for batch in chosen.chunks(MERGE_BATCH) {
        let batch: Vec<(i64, i64, f64, &[Evidence])> =
            batch.iter().map(|m| (arena.ids[m.left], arena.ids[m.right], m.score, m.evidence.as_slice())).collect();
        merged += match merge_batch(store, actor, &batch, &ctx).await {
            // A record deleted or merged by someone else since the run read it: merge the
            // batch's pairs one by one and leave the ones that no longer can be.
            Err(StoreError::Conflict(_)) => {
                let mut n = 0;
                for pair in &batch {
                    match merge_batch(store, actor, std::slice::from_ref(pair), &ctx).await {
                        Ok(k) => n += k,
                        Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                n
            }
            other => other?,
        };
    }
    let pending: Vec<&Scored> =
        to_review.iter().filter(|s| !absorbed.contains(&arena.ids[s.left]) && !absorbed.contains(&arena.ids[s.right])).collect();
    let mut tx = store.begin().await?;
    let now = now_text();
    for chunk in pending.chunks(100) {
        let rows: Vec<(i64, i64, f64, &[Evidence])> =
            chunk.iter().map(|s| (arena.ids[s.left], arena.ids[s.right], s.score, s.evidence.as_slice())).collect();
        insert_candidates(&mut tx, &rows, &now, "").await?;
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

/// Records pairs (left id, right id, score, evidence) as pending candidates, each once; with a
/// `RETURNING` tail, returns the rows recorded now (not those another run recorded first).
async fn insert_candidates(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    pairs: &[(i64, i64, f64, &[Evidence])],
    now: &str,
    returning: &str,
) -> Result<Vec<AnyRow>> {
    let mut text = String::from("INSERT INTO match_candidates (left_id, right_id, score, evidence, status, created_at) VALUES ");
    for i in 0..pairs.len() {
        let b = i * 5;
        text.push_str(&format!(
            "{}(${}, ${}, ${}, ${}, 'pending', ${})",
            if i == 0 { "" } else { ", " },
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5
        ));
    }
    text.push_str(" ON CONFLICT (left_id, right_id) DO NOTHING");
    text.push_str(returning);
    let query = pairs.iter().fold(sqlx::query(&text), |q, (l, r, score, evidence)| {
        q.bind(*l).bind(*r).bind(*score).bind(evidence_json(evidence)).bind(now.to_string())
    });
    Ok(query.fetch_all(&mut **tx).await?)
}

/// Merges pairs (survivor = left) in one transaction; returns how many were merged.
async fn merge_batch(store: &Store, actor: &Actor, pairs: &[(i64, i64, f64, &[Evidence])], ctx: &Context) -> Result<u64> {
    let mut tx = store.begin().await?;
    let now = now_text();
    let mut items = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(100) {
        for r in insert_candidates(&mut tx, chunk, &now, " RETURNING id, left_id, right_id").await? {
            let plan = Plan { picks: Default::default(), fill_blanks: true };
            items.push(Item { candidate_id: r.try_get("id")?, survivor: r.try_get("left_id")?, absorbed: r.try_get("right_id")?, plan });
        }
    }
    merge::merge_all(&mut tx, actor, &items, "auto", ctx).await?;
    tx.commit().await?;
    Ok(items.len() as u64)
}

pub(crate) fn identifier_codes(rules: &MatchRules) -> Vec<String> {
    rules.id_number_attributes.iter().chain(&rules.card_attributes).cloned().collect()
}

pub(crate) fn evidence_json(evidence: &[Evidence]) -> String {
    serde_json::to_string(evidence).unwrap_or_else(|_| "[]".into())
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
