//! Merging reader records and reversing a merge. A merge keeps everything of both records: the
//! survivor takes the chosen field values and the union of contacts, related contacts, tags and
//! attributes; every row elsewhere that pointed at the absorbed reader is re-pointed (and
//! remembered, so an undo moves exactly those rows back); the absorbed card number stays
//! findable as an identifier of the survivor. Merges are applied in batches (an automatic run
//! makes thousands) with a fixed number of statements per batch; a manual merge is a batch of one.

use crate::audit::{self, Change};
use crate::db::{is_unique_violation, Param, Sql};
use crate::readers::{load_reader, load_readers, ContactRecord, ReaderKey, ReaderRecord};
use crate::{now_text, Actor, Result, StoreError};
use lector_domain::attribute::AttrDef;
use lector_domain::contact::lookup_key;
use lector_domain::reader::Gender;
use lector_domain::Msg;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};

type Tx = Transaction<'static, Any>;

/// Every table whose rows belong to a reader and follow it through a merge: (table, column
/// naming the reader, SQL text identifying a row). A table added later that points at readers
/// belongs here, or its rows are lost with the absorbed record.
const POINTERS: &[(&str, &str, &str)] = &[
    ("interactions", "reader_id", "CAST(id AS TEXT)"),
    ("tasks", "reader_id", "CAST(id AS TEXT)"),
    ("owner_history", "reader_id", "CAST(id AS TEXT)"),
    ("cases", "reader_id", "CAST(id AS TEXT)"),
    ("reader_identifiers", "reader_id", "CAST(id AS TEXT)"),
    ("reader_sources", "reader_id", "CAST(source_id AS TEXT) || '/' || external_id"),
    ("import_changes", "reader_id", "CAST(id AS TEXT)"),
];

/// Reader fields staff choose between, by code; `attributes.CODE` chooses a single-valued
/// custom attribute.
pub(crate) const FIELDS: [&str; 10] =
    ["name", "gender", "birth_date", "category", "affiliation", "status", "enrolled_on", "expires_on", "owner", "notes"];

/// Ids per `IN (…)` list and rows per multi-row statement stay near 500 parameters.
const PARAMS: usize = 500;

/// Which record a field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Survivor,
    Absorbed,
}

/// How to combine two records: the fields chosen, and whether a field left unchosen that is
/// blank on the survivor takes the absorbed record's value (automatic merges).
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub picks: BTreeMap<String, Side>,
    pub fill_blanks: bool,
}

/// One merge to carry out.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub candidate_id: i64,
    pub survivor: i64,
    pub absorbed: i64,
    pub plan: Plan,
}

/// What the store needs to write records, read once per run.
pub(crate) struct Context {
    /// Attribute definitions by code.
    defs: HashMap<String, (i64, AttrDef)>,
    categories: HashMap<String, i64>,
    users: HashMap<String, i64>,
    /// Attribute codes holding identifiers: a value a merge cannot keep as an attribute is kept
    /// as an identifier instead.
    identifier_codes: Vec<String>,
}

impl Context {
    pub async fn load(conn: &mut AnyConnection, identifier_codes: Vec<String>) -> Result<Self> {
        let defs = crate::config::attribute_defs_in(conn).await?.into_iter().map(|(id, d)| (d.code.clone(), (id, d))).collect();
        let pairs = |rows: Vec<AnyRow>, name: &str| -> Result<HashMap<String, i64>> {
            rows.iter().map(|r| Ok((r.try_get::<String, _>(name)?, r.try_get::<i64, _>("id")?))).collect()
        };
        let categories = pairs(sqlx::query("SELECT id, code FROM categories").fetch_all(&mut *conn).await?, "code")?;
        let users = pairs(sqlx::query("SELECT id, username FROM users").fetch_all(&mut *conn).await?, "username")?;
        Ok(Context { defs, categories, users, identifier_codes })
    }
}

/// A record as a merge keeps it: enough to put it back exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub record: ReaderRecord,
    pub search_keys: Vec<String>,
}

fn gone() -> StoreError {
    StoreError::Conflict(Msg::new(
        "候选的两条读者记录中有一条已不存在（可能已被合并或删除）",
        "one of the two reader records no longer exists (merged or deleted)",
    ))
}

fn ids_param(ids: &[i64]) -> impl Iterator<Item = Param> + '_ {
    ids.iter().map(|id| Param::from(*id))
}

fn push_new<T: PartialEq + Clone>(list: &mut Vec<T>, items: &[T]) {
    for x in items {
        if !list.contains(x) {
            list.push(x.clone());
        }
    }
}

/// The survivor as the plan makes it, and the identifier values (kind, value) of single-valued
/// identifier attributes that lost to the other record's value.
fn combine(s: &ReaderRecord, a: &ReaderRecord, plan: &Plan, ctx: &Context) -> (ReaderRecord, Vec<(String, String)>) {
    let take = |field: &str, survivor_blank: bool, absorbed_blank: bool| match plan.picks.get(field) {
        Some(side) => *side == Side::Absorbed,
        None => plan.fill_blanks && survivor_blank && !absorbed_blank,
    };
    let mut m = s.clone();
    if take("name", false, false) {
        (m.name, m.pinyin, m.initials) = (a.name.clone(), a.pinyin.clone(), a.initials.clone());
    }
    if take("gender", s.gender == Gender::Unknown, a.gender == Gender::Unknown) {
        m.gender = a.gender;
    }
    if take("category", false, false) {
        m.category = a.category.clone();
    }
    if take("status", false, false) {
        m.status = a.status;
    }
    let optional = [
        ("birth_date", &mut m.birth_date, &a.birth_date),
        ("affiliation", &mut m.affiliation, &a.affiliation),
        ("enrolled_on", &mut m.enrolled_on, &a.enrolled_on),
        ("expires_on", &mut m.expires_on, &a.expires_on),
        ("owner", &mut m.owner, &a.owner),
        ("notes", &mut m.notes, &a.notes),
    ];
    for (field, mine, theirs) in optional {
        if take(field, mine.is_none(), theirs.is_none()) {
            *mine = theirs.clone();
        }
    }
    for c in &a.contacts {
        let key = lookup_key(c.kind, &c.value);
        if let Some(same) = m.contacts.iter_mut().find(|x| x.kind == c.kind && lookup_key(x.kind, &x.value) == key) {
            same.verified |= c.verified;
            continue;
        }
        let has_primary = m.contacts.iter().any(|x| x.kind == c.kind && x.primary);
        m.contacts.push(ContactRecord { primary: c.primary && !has_primary, ..c.clone() });
    }
    push_new(&mut m.related, &a.related);
    push_new(&mut m.tags, &a.tags);
    let mut dropped = Vec::new();
    for (code, theirs) in &a.attributes {
        let Some((_, def)) = ctx.defs.get(code) else { continue };
        let Some(mine) = m.attributes.get_mut(code) else {
            m.attributes.insert(code.clone(), theirs.clone());
            continue;
        };
        if def.repeatable {
            push_new(mine, theirs);
            continue;
        }
        let loser =
            if take(&format!("attributes.{code}"), false, false) { std::mem::replace(mine, theirs.clone()) } else { theirs.clone() };
        if ctx.identifier_codes.contains(code) {
            dropped.extend(loser.into_iter().filter(|v| !mine.contains(v)).map(|v| (code.clone(), v)));
        }
    }
    (m, dropped)
}

/// The columns of a reader row a merge or an undo writes, in the order of [`row_values`].
const ROW_COLUMNS: [&str; 14] = [
    "name",
    "pinyin",
    "initials",
    "gender",
    "birth_date",
    "category_id",
    "affiliation",
    "status",
    "enrolled_on",
    "expires_on",
    "owner_id",
    "notes",
    "version",
    "updated_at",
];

/// The values of [`ROW_COLUMNS`] for `rec` as it stands (its version and update time included).
fn row_values(rec: &ReaderRecord, ctx: &Context) -> Result<Vec<Param>> {
    let category = *ctx
        .categories
        .get(&rec.category.code)
        .ok_or_else(|| StoreError::Other(format!("reader category '{}' no longer exists", rec.category.code)))?;
    let owner = rec.owner.as_ref().and_then(|name| ctx.users.get(name).copied());
    Ok(vec![
        rec.name.as_str().into(),
        rec.pinyin.as_str().into(),
        rec.initials.as_str().into(),
        rec.gender.code().into(),
        rec.birth_date.clone().into(),
        category.into(),
        rec.affiliation.clone().into(),
        rec.status.code().into(),
        rec.enrolled_on.clone().into(),
        rec.expires_on.clone().into(),
        owner.into(),
        rec.notes.clone().into(),
        rec.version.into(),
        rec.updated_at.as_str().into(),
    ])
}

/// True when the two records have the same values in [`ROW_COLUMNS`] (version and time aside).
fn same_fields(a: &ReaderRecord, b: &ReaderRecord) -> bool {
    (&a.name, &a.pinyin, &a.initials, a.gender, &a.birth_date, &a.category.code, &a.affiliation, a.status)
        == (&b.name, &b.pinyin, &b.initials, b.gender, &b.birth_date, &b.category.code, &b.affiliation, b.status)
        && (&a.enrolled_on, &a.expires_on, &a.owner, &a.notes) == (&b.enrolled_on, &b.expires_on, &b.owner, &b.notes)
}

async fn update_row(tx: &mut Tx, rec: &ReaderRecord, ctx: &Context) -> Result<()> {
    let mut sql = Sql::new("UPDATE readers SET ");
    for (i, (column, value)) in ROW_COLUMNS.iter().zip(row_values(rec, ctx)?).enumerate() {
        sql.push(if i == 0 { "" } else { ", " }).push(column).push(" = ").bind(value);
    }
    sql.push(" WHERE id = ").bind(rec.id).query().execute(&mut **tx).await?;
    Ok(())
}

/// Puts an absorbed reader back under its own id.
async fn insert_row(tx: &mut Tx, rec: &ReaderRecord, ctx: &Context) -> Result<()> {
    let mut sql = Sql::new(&format!("INSERT INTO readers (id, card_no, created_at, {}) VALUES (", ROW_COLUMNS.join(", ")));
    sql.bind(rec.id).push(", ").bind(rec.card_no.as_str()).push(", ").bind(rec.created_at.as_str()).push(", ");
    sql.bind_list(row_values(rec, ctx)?).push(")");
    match sql.query().execute(&mut **tx).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(Msg::new(
            format!("无法撤销：读者证号“{}”现已属于另一位读者", rec.card_no),
            format!("cannot undo: card number '{}' now belongs to another reader", rec.card_no),
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Inserts `rows` (each a list of values for `columns`) into `table`, several rows per statement,
/// and returns what `tail` (a `RETURNING` clause, or nothing) yields.
async fn insert_rows(tx: &mut Tx, table: &str, columns: &str, rows: Vec<Vec<Param>>, tail: &str) -> Result<Vec<AnyRow>> {
    let width = rows.first().map_or(1, Vec::len).max(1);
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut sql = Sql::new(&format!("INSERT INTO {table} ({columns}) VALUES "));
        for (i, row) in rows.by_ref().take((PARAMS / width).max(1)).enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" }).bind_list(row).push(")");
        }
        out.extend(sql.push(tail).query().fetch_all(&mut **tx).await?);
    }
    Ok(out)
}

/// Replaces the contacts, related contacts, tags and attribute values of `records` with theirs.
async fn write_children(tx: &mut Tx, records: &[&ReaderRecord], ctx: &Context) -> Result<()> {
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    for chunk in ids.chunks(PARAMS) {
        for table in ["reader_contacts", "reader_related", "reader_tags", "reader_attributes"] {
            let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE reader_id IN ("));
            sql.bind_list(ids_param(chunk)).push(")").query().execute(&mut **tx).await?;
        }
    }
    let (mut contacts, mut related, mut tags, mut attributes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rec in records {
        let id = rec.id;
        for (i, c) in rec.contacts.iter().enumerate() {
            let (kind, value) = (c.kind.code(), c.value.as_str());
            let lookup = lookup_key(c.kind, value);
            contacts.push(vec![
                id.into(),
                kind.into(),
                value.into(),
                lookup.into(),
                c.primary.into(),
                c.verified.into(),
                (i as i64).into(),
            ]);
        }
        for (i, r) in rec.related.iter().enumerate() {
            let (name, relation) = (r.name.as_str(), r.relation.as_str());
            related.push(vec![id.into(), name.into(), relation.into(), r.phone.clone().into(), r.email.clone().into(), (i as i64).into()]);
        }
        tags.extend(rec.tags.iter().map(|t| vec![id.into(), t.as_str().into()]));
        for (code, values) in &rec.attributes {
            if let Some((attr_id, _)) = ctx.defs.get(code) {
                attributes.extend(
                    values.iter().enumerate().map(|(i, v)| vec![id.into(), (*attr_id).into(), v.as_str().into(), (i as i64).into()]),
                );
            }
        }
    }
    insert_rows(tx, "reader_contacts", "reader_id, kind, value, lookup, is_primary, verified, position", contacts, "").await?;
    insert_rows(tx, "reader_related", "reader_id, name, relation, phone, email, position", related, "").await?;
    insert_rows(tx, "reader_tags", "reader_id, tag", tags, "").await?;
    insert_rows(tx, "reader_attributes", "reader_id, attr_id, value, position", attributes, "").await?;
    Ok(())
}

/// The search keys of readers, by reader.
async fn search_keys_of(tx: &mut Tx, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
    let mut keys: HashMap<i64, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(PARAMS) {
        let mut sql = Sql::new("SELECT reader_id, key FROM reader_search_keys WHERE reader_id IN (");
        for r in sql.bind_list(ids_param(chunk)).push(")").query().fetch_all(&mut **tx).await? {
            keys.entry(r.try_get("reader_id")?).or_default().push(r.try_get("key")?);
        }
    }
    Ok(keys)
}

/// Adds `keys` to reader `id`'s search keys.
async fn add_keys(tx: &mut Tx, keys: Vec<(i64, String)>) -> Result<()> {
    insert_rows(tx, "reader_search_keys", "key, reader_id", keys.into_iter().map(|(id, k)| vec![k.into(), id.into()]).collect(), "")
        .await?;
    Ok(())
}

/// A merge worked out in memory, before it is written.
struct Planned<'a> {
    item: &'a Item,
    before: Snapshot,
    absorbed: Snapshot,
    after: ReaderRecord,
    /// Identifier attribute values the survivor keeps as identifiers.
    dropped: Vec<(String, String)>,
}

/// Carries out `items` inside `tx`. A reader is absorbed at most once and never both absorbs and
/// is absorbed in one call; several items may share a survivor (applied in order, each merge
/// remembering the survivor as the previous one left it).
pub(crate) async fn merge_all(tx: &mut Tx, actor: &Actor, items: &[Item], how: &str, ctx: &Context) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let now = now_text();
    let candidates: Vec<i64> = items.iter().map(|i| i.candidate_id).collect();
    for chunk in candidates.chunks(PARAMS) {
        let mut sql = Sql::new("UPDATE match_candidates SET status = 'merged', decided_by = ");
        sql.bind(actor.name.as_str()).push(", decided_at = ").bind(now.as_str()).push(" WHERE status <> 'merged' AND id IN (");
        if sql.bind_list(ids_param(chunk)).push(")").query().execute(&mut **tx).await?.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::Conflict(Msg::new("这对候选记录已经合并过了", "this pair has already been merged")));
        }
    }
    let absorbed_ids: Vec<i64> = items.iter().map(|i| i.absorbed).collect();
    let survivor_ids: HashSet<i64> = items.iter().map(|i| i.survivor).collect();
    if absorbed_ids.iter().collect::<HashSet<_>>().len() != items.len() || absorbed_ids.iter().any(|a| survivor_ids.contains(a)) {
        return Err(StoreError::Other("a merge batch absorbs a reader twice or absorbs a survivor".into()));
    }
    let ids: Vec<i64> = survivor_ids.iter().copied().chain(absorbed_ids.iter().copied()).collect();
    let mut records: HashMap<i64, ReaderRecord> = load_readers(tx, &ids).await?.into_iter().map(|r| (r.id, r)).collect();
    if records.len() != ids.len() {
        return Err(gone());
    }
    let mut keys = search_keys_of(tx, &ids).await?;

    // Work every merge out in memory, survivors carried from one merge to the next.
    let mut current: HashMap<i64, Snapshot> = HashMap::new();
    let mut planned = Vec::with_capacity(items.len());
    for item in items {
        let before = match current.remove(&item.survivor) {
            Some(s) => s,
            None => Snapshot {
                record: records.get(&item.survivor).cloned().ok_or_else(gone)?,
                search_keys: keys.get(&item.survivor).cloned().unwrap_or_default(),
            },
        };
        let absorbed = Snapshot {
            record: records.remove(&item.absorbed).ok_or_else(gone)?,
            search_keys: keys.remove(&item.absorbed).unwrap_or_default(),
        };
        let (mut after, dropped) = combine(&before.record, &absorbed.record, &item.plan, ctx);
        after.version = before.record.version + 1;
        after.updated_at = now.clone();
        let mut search_keys = before.search_keys.clone();
        push_new(&mut search_keys, &absorbed.search_keys);
        push_new(&mut search_keys, &[absorbed.record.card_no.to_lowercase()]);
        current.insert(item.survivor, Snapshot { record: after.clone(), search_keys });
        planned.push(Planned { item, before, absorbed, after, dropped });
    }

    // Re-point the absorbed readers' rows, remembering which moved.
    let mut moved: HashMap<i64, BTreeMap<String, Vec<String>>> = HashMap::new();
    let survivor_of: HashMap<i64, i64> = items.iter().map(|i| (i.absorbed, i.survivor)).collect();
    for (table, column, key) in POINTERS {
        for chunk in absorbed_ids.chunks(PARAMS / 3) {
            let mut select = Sql::new(&format!("SELECT {key} AS k, {column} AS r FROM {table} WHERE {column} IN ("));
            let rows = select.bind_list(ids_param(chunk)).push(")").query().fetch_all(&mut **tx).await?;
            if rows.is_empty() {
                continue;
            }
            for r in &rows {
                moved.entry(r.try_get("r")?).or_default().entry(table.to_string()).or_default().push(r.try_get("k")?);
            }
            let mut update = Sql::new(&format!("UPDATE {table} SET {column} = CASE {column}"));
            for a in chunk {
                update.push(" WHEN ").bind(*a).push(" THEN ").bind(survivor_of[a]);
            }
            update.push(&format!(" END WHERE {column} IN (")).bind_list(ids_param(chunk)).push(")").query().execute(&mut **tx).await?;
        }
    }

    // The survivors as they end up: row (most keep their fields and only move on a version),
    // children, search keys.
    let mut bumped = Vec::new();
    for (id, snap) in &current {
        if records.get(id).is_some_and(|was| same_fields(&snap.record, was)) {
            bumped.push((*id, snap.record.version));
        } else {
            update_row(tx, &snap.record, ctx).await?;
        }
    }
    for chunk in bumped.chunks(PARAMS / 3) {
        let mut sql = Sql::new("UPDATE readers SET version = CASE id");
        for (id, version) in chunk {
            sql.push(" WHEN ").bind(*id).push(" THEN ").bind(*version);
        }
        sql.push(" END, updated_at = ").bind(now.as_str()).push(" WHERE id IN (");
        sql.bind_list(chunk.iter().map(|(id, _)| Param::from(*id))).push(")").query().execute(&mut **tx).await?;
    }
    let changed: Vec<&ReaderRecord> = current
        .iter()
        .filter(|(id, s)| {
            let (now, was) = (&s.record, records.get(id));
            was.is_none_or(|was| {
                now.contacts != was.contacts || now.related != was.related || now.tags != was.tags || now.attributes != was.attributes
            })
        })
        .map(|(_, s)| &s.record)
        .collect();
    write_children(tx, &changed, ctx).await?;
    let mut new_keys = Vec::new();
    for (id, snap) in &current {
        let had = keys.get(id).map(Vec::as_slice).unwrap_or_default();
        new_keys.extend(snap.search_keys.iter().filter(|k| !had.contains(k)).map(|k| (*id, k.clone())));
    }
    add_keys(tx, new_keys).await?;

    // The merge records, the identifiers they add, the absorbed readers gone, the audit.
    let json = |v: &Snapshot| serde_json::to_string(v).unwrap_or_default();
    let merge_rows = planned
        .iter()
        .map(|p| {
            let moved = moved.get(&p.item.absorbed).cloned().unwrap_or_default();
            vec![
                p.item.candidate_id.into(),
                p.item.survivor.into(),
                p.item.absorbed.into(),
                p.absorbed.record.card_no.as_str().into(),
                p.absorbed.record.name.as_str().into(),
                json(&p.absorbed).into(),
                json(&p.before).into(),
                serde_json::to_string(&moved).unwrap_or_default().into(),
                how.into(),
                actor.user_id.into(),
                actor.name.as_str().into(),
                now.as_str().into(),
            ]
        })
        .collect();
    let columns = "candidate_id, survivor_id, absorbed_id, absorbed_card_no, absorbed_name, absorbed_snapshot, survivor_before, moved_rows, how, by_id, by_name, at";
    let mut merge_ids: HashMap<i64, i64> = HashMap::new();
    for r in insert_rows(tx, "merges", columns, merge_rows, " RETURNING id, absorbed_id").await? {
        merge_ids.insert(r.try_get("absorbed_id")?, r.try_get("id")?);
    }
    let mut identifiers = Vec::new();
    for p in &planned {
        let merge_id = merge_ids.get(&p.item.absorbed).copied();
        let card = std::iter::once(("card_no".to_string(), p.absorbed.record.card_no.clone()));
        for (kind, value) in card.chain(p.dropped.iter().cloned()) {
            identifiers.push(vec![p.item.survivor.into(), kind.into(), value.into(), merge_id.into(), now.as_str().into()]);
        }
    }
    insert_rows(tx, "reader_identifiers", "reader_id, kind, value, merge_id, created_at", identifiers, "").await?;
    for chunk in absorbed_ids.chunks(PARAMS) {
        Sql::new("DELETE FROM readers WHERE id IN (").bind_list(ids_param(chunk)).push(")").query().execute(&mut **tx).await?;
    }
    for p in &planned {
        let (s, a) = (&p.before.record, &p.absorbed.record);
        let change = Change {
            action: "identity.merge",
            entity: "reader",
            entity_id: Some(s.id.to_string()),
            summary: format!("{} {} ← {} {} ({how})", s.card_no, s.name, a.card_no, a.name),
            before: Some(serde_json::json!({ "survivor": s, "absorbed": a })),
            after: Some(serde_json::to_value(&p.after).unwrap_or_default()),
        };
        audit::record(tx, actor, change).await?;
    }
    Ok(())
}

/// Reverses merge `merge_id` inside `tx`.
pub(crate) async fn undo(tx: &mut Tx, actor: &Actor, merge_id: i64, ctx: &Context) -> Result<()> {
    let row = sqlx::query("SELECT candidate_id, survivor_id, absorbed_id, absorbed_snapshot, survivor_before, moved_rows, undone_at FROM merges WHERE id = $1")
        .bind(merge_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let (survivor_id, absorbed_id): (i64, i64) = (row.try_get("survivor_id")?, row.try_get("absorbed_id")?);
    if row.try_get::<Option<String>, _>("undone_at")?.is_some() {
        return Err(StoreError::Conflict(Msg::new("这次合并已经撤销过了", "this merge has already been undone")));
    }
    let later = sqlx::query(
        "SELECT id FROM merges WHERE id > $1 AND undone_at IS NULL AND (survivor_id = $2 OR absorbed_id = $2) ORDER BY id DESC LIMIT 1",
    )
    .bind(merge_id)
    .bind(survivor_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(l) = later {
        let id: i64 = l.try_get("id")?;
        return Err(StoreError::Conflict(Msg::new(
            format!("保留的读者记录此后又参与了合并（合并 #{id}），请先撤销那次合并"),
            format!("the surviving record took part in a later merge (#{id}); undo that merge first"),
        )));
    }
    let parse = |col: &str| -> Result<Snapshot> {
        serde_json::from_str(&row.try_get::<String, _>(col)?).map_err(|e| StoreError::Other(format!("merge {merge_id} {col}: {e}")))
    };
    let (mut absorbed, mut before) = (parse("absorbed_snapshot")?, parse("survivor_before")?);
    let moved: BTreeMap<String, Vec<String>> = serde_json::from_str(&row.try_get::<String, _>("moved_rows")?)
        .map_err(|e| StoreError::Other(format!("merge {merge_id} moved_rows: {e}")))?;
    let current = match load_reader(tx, ReaderKey::Id(survivor_id)).await {
        Err(StoreError::NotFound) => {
            return Err(StoreError::Conflict(Msg::new(
                "保留的读者记录已被删除，无法撤销这次合并",
                "the surviving record has been deleted; this merge cannot be undone",
            )))
        }
        other => other?,
    };
    let now = now_text();
    sqlx::query("UPDATE merges SET undone_at = $1, undone_by = $2 WHERE id = $3")
        .bind(now.clone())
        .bind(actor.name.clone())
        .bind(merge_id)
        .execute(&mut **tx)
        .await?;
    // Both records move on a version: a form opened on either before the undo is stale.
    (absorbed.record.version, absorbed.record.updated_at) = (absorbed.record.version + 1, now.clone());
    (before.record.version, before.record.updated_at) = (current.version + 1, now);
    insert_row(tx, &absorbed.record, ctx).await?;
    sqlx::query("DELETE FROM reader_identifiers WHERE merge_id = $1").bind(merge_id).execute(&mut **tx).await?;
    for (table, column, key) in POINTERS {
        for chunk in moved.get(*table).map(Vec::as_slice).unwrap_or_default().chunks(PARAMS) {
            let mut sql = Sql::new(&format!("UPDATE {table} SET {column} = "));
            sql.bind(absorbed_id).push(&format!(" WHERE {column} = ")).bind(survivor_id).push(&format!(" AND {key} IN ("));
            sql.bind_list(chunk.iter().map(|k| Param::from(k.as_str()))).push(")");
            sql.query().execute(&mut **tx).await?;
        }
    }
    update_row(tx, &before.record, ctx).await?;
    write_children(tx, &[&absorbed.record, &before.record], ctx).await?;
    sqlx::query("DELETE FROM reader_search_keys WHERE reader_id IN ($1, $2)")
        .bind(survivor_id)
        .bind(absorbed_id)
        .execute(&mut **tx)
        .await?;
    let keys = [(&absorbed, absorbed_id), (&before, survivor_id)]
        .into_iter()
        .flat_map(|(s, id)| s.search_keys.iter().map(move |k| (id, k.clone())));
    add_keys(tx, keys.collect()).await?;
    if let Some(candidate) = row.try_get::<Option<i64>, _>("candidate_id")? {
        sqlx::query("UPDATE match_candidates SET status = 'pending', decided_by = NULL, decided_at = NULL WHERE id = $1")
            .bind(candidate)
            .execute(&mut **tx)
            .await?;
    }
    let survivor = load_reader(tx, ReaderKey::Id(survivor_id)).await?;
    let restored = load_reader(tx, ReaderKey::Id(absorbed_id)).await?;
    audit::record(
        tx,
        actor,
        Change {
            action: "identity.unmerge",
            entity: "reader",
            entity_id: Some(survivor_id.to_string()),
            summary: format!("{} {} → {} {}", survivor.card_no, survivor.name, restored.card_no, restored.name),
            before: Some(serde_json::to_value(&current).unwrap_or_default()),
            after: Some(serde_json::json!({ "survivor": survivor, "absorbed": restored })),
        },
    )
    .await?;
    Ok(())
}
