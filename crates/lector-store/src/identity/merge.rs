//! Merging two reader records into one and reversing it. A merge keeps everything of both
//! records: the survivor takes the chosen field values and the union of contacts, related
//! contacts, tags and attributes; every row elsewhere that pointed at the absorbed reader is
//! re-pointed (and remembered, so an undo moves exactly those rows back); the absorbed card
//! number stays findable as an identifier of the survivor.

use crate::audit::{self, Change};
use crate::db::{is_unique_violation, Param, Sql};
use crate::readers::{load_reader, ContactRecord, ReaderKey, ReaderRecord};
use crate::{now_text, Actor, Result, StoreError};
use lector_domain::attribute::AttrDef;
use lector_domain::contact::lookup_key;
use lector_domain::reader::Gender;
use lector_domain::Msg;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, Row, Transaction};
use std::collections::{BTreeMap, HashMap};

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

/// Which record a field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Survivor,
    Absorbed,
}

/// How to merge a pair: who survives, the fields chosen, and whether a field left unchosen
/// that is blank on the survivor takes the absorbed record's value (automatic merges).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub survivor_is_left: bool,
    pub picks: BTreeMap<String, Side>,
    pub fill_blanks: bool,
}

/// What the store needs to merge, read once per run.
pub(crate) struct Context {
    /// Attribute definitions by code.
    pub defs: HashMap<String, (i64, AttrDef)>,
    /// Attribute codes holding identifiers: a value a merge cannot keep as an attribute is kept
    /// as an identifier instead.
    pub identifier_codes: Vec<String>,
}

impl Context {
    pub async fn load(conn: &mut AnyConnection, identifier_codes: Vec<String>) -> Result<Self> {
        let defs = crate::config::attribute_defs_in(conn).await?.into_iter().map(|(id, d)| (d.code.clone(), (id, d))).collect();
        Ok(Context { defs, identifier_codes })
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

async fn search_keys_of(conn: &mut AnyConnection, id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT key FROM reader_search_keys WHERE reader_id = $1").bind(id).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| Ok(r.try_get("key")?)).collect()
}

async fn snapshot(conn: &mut AnyConnection, id: i64) -> Result<Snapshot> {
    let record = match load_reader(conn, ReaderKey::Id(id)).await {
        Err(StoreError::NotFound) => return Err(gone()),
        other => other?,
    };
    Ok(Snapshot { search_keys: search_keys_of(conn, id).await?, record })
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
    m.tags.sort();
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
        let loser = if take(&format!("attributes.{code}"), false, false) { std::mem::replace(mine, theirs.clone()) } else { theirs.clone() };
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

async fn row_values(tx: &mut Tx, rec: &ReaderRecord, version: i64, updated_at: &str) -> Result<Vec<Param>> {
    let category: i64 = sqlx::query("SELECT id FROM categories WHERE code = $1")
        .bind(rec.category.code.clone())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::Other(format!("reader category '{}' no longer exists", rec.category.code)))?
        .try_get("id")?;
    let owner: Option<i64> = match &rec.owner {
        None => None,
        Some(name) => {
            let row = sqlx::query("SELECT id FROM users WHERE username = $1").bind(name.clone()).fetch_optional(&mut **tx).await?;
            row.map(|r| r.try_get("id")).transpose()?
        }
    };
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
        version.into(),
        updated_at.into(),
    ])
}

async fn update_row(tx: &mut Tx, rec: &ReaderRecord, version: i64) -> Result<()> {
    let mut sql = Sql::new("UPDATE readers SET ");
    for (i, (column, value)) in ROW_COLUMNS.iter().zip(row_values(tx, rec, version, &now_text()).await?).enumerate() {
        sql.push(if i == 0 { "" } else { ", " }).push(column).push(" = ").bind(value);
    }
    sql.push(" WHERE id = ").bind(rec.id).query().execute(&mut **tx).await?;
    Ok(())
}

/// Puts an absorbed reader back under its own id.
async fn insert_row(tx: &mut Tx, rec: &ReaderRecord) -> Result<()> {
    let mut sql = Sql::new(&format!("INSERT INTO readers (id, card_no, created_at, {}) VALUES (", ROW_COLUMNS.join(", ")));
    sql.bind(rec.id).push(", ").bind(rec.card_no.as_str()).push(", ").bind(rec.created_at.as_str()).push(", ");
    sql.bind_list(row_values(tx, rec, rec.version + 1, &now_text()).await?).push(")");
    match sql.query().execute(&mut **tx).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(Msg::new(
            format!("无法撤销：读者证号“{}”现已属于另一位读者", rec.card_no),
            format!("cannot undo: card number '{}' now belongs to another reader", rec.card_no),
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Inserts `rows` (each a list of values for `columns`) into `table` in one statement.
async fn insert_rows(tx: &mut Tx, table: &str, columns: &str, rows: Vec<Vec<Param>>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(&format!("INSERT INTO {table} ({columns}) VALUES "));
    for (i, row) in rows.into_iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" }).bind_list(row).push(")");
    }
    sql.query().execute(&mut **tx).await?;
    Ok(())
}

/// Replaces a reader's contacts, related contacts, tags and attribute values with `rec`'s.
async fn write_children(tx: &mut Tx, rec: &ReaderRecord, ctx: &Context) -> Result<()> {
    let id = rec.id;
    for table in ["reader_contacts", "reader_related", "reader_tags", "reader_attributes"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE reader_id = $1")).bind(id).execute(&mut **tx).await?;
    }
    let contacts = rec.contacts.iter().enumerate().map(|(i, c)| -> Vec<Param> {
        let (kind, value) = (c.kind.code(), c.value.as_str());
        vec![id.into(), kind.into(), value.into(), lookup_key(c.kind, value).into(), c.primary.into(), c.verified.into(), (i as i64).into()]
    });
    insert_rows(tx, "reader_contacts", "reader_id, kind, value, lookup, is_primary, verified, position", contacts.collect()).await?;
    let related = rec.related.iter().enumerate().map(|(i, r)| -> Vec<Param> {
        vec![id.into(), r.name.as_str().into(), r.relation.as_str().into(), r.phone.clone().into(), r.email.clone().into(), (i as i64).into()]
    });
    insert_rows(tx, "reader_related", "reader_id, name, relation, phone, email, position", related.collect()).await?;
    let tags = rec.tags.iter().map(|t| -> Vec<Param> { vec![id.into(), t.as_str().into()] });
    insert_rows(tx, "reader_tags", "reader_id, tag", tags.collect()).await?;
    let mut attributes = Vec::new();
    for (code, values) in &rec.attributes {
        if let Some((attr_id, _)) = ctx.defs.get(code) {
            attributes.extend(values.iter().enumerate().map(|(i, v)| vec![id.into(), (*attr_id).into(), v.as_str().into(), (i as i64).into()]));
        }
    }
    insert_rows(tx, "reader_attributes", "reader_id, attr_id, value, position", attributes).await
}

async fn write_keys(tx: &mut Tx, id: i64, keys: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM reader_search_keys WHERE reader_id = $1").bind(id).execute(&mut **tx).await?;
    for chunk in keys.chunks(200) {
        let rows = chunk.iter().map(|k| vec![k.as_str().into(), id.into()]).collect();
        insert_rows(tx, "reader_search_keys", "key, reader_id", rows).await?;
    }
    Ok(())
}

/// Merges candidate `candidate_id` as `plan` says, inside `tx`; returns the survivor as saved.
pub(crate) async fn merge(tx: &mut Tx, actor: &Actor, candidate_id: i64, plan: &Plan, how: &str, ctx: &Context) -> Result<ReaderRecord> {
    let now = now_text();
    let row = sqlx::query("SELECT left_id, right_id, status FROM match_candidates WHERE id = $1")
        .bind(candidate_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let claimed = sqlx::query("UPDATE match_candidates SET status = 'merged', decided_by = $1, decided_at = $2 WHERE id = $3 AND status <> 'merged'")
        .bind(actor.name.clone())
        .bind(now.clone())
        .bind(candidate_id)
        .execute(&mut **tx)
        .await?;
    if claimed.rows_affected() != 1 {
        return Err(StoreError::Conflict(Msg::new("这对候选记录已经合并过了", "this pair has already been merged")));
    }
    let (left, right): (i64, i64) = (row.try_get("left_id")?, row.try_get("right_id")?);
    let (survivor_id, absorbed_id) = if plan.survivor_is_left { (left, right) } else { (right, left) };
    let before = snapshot(tx, survivor_id).await?;
    let absorbed = snapshot(tx, absorbed_id).await?;
    let (merged, dropped) = combine(&before.record, &absorbed.record, plan, ctx);
    update_row(tx, &merged, before.record.version + 1).await?;
    write_children(tx, &merged, ctx).await?;
    let mut keys = before.search_keys.clone();
    push_new(&mut keys, &absorbed.search_keys);
    push_new(&mut keys, &[absorbed.record.card_no.to_lowercase()]);
    write_keys(tx, survivor_id, &keys).await?;

    let mut moved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, column, key) in POINTERS {
        let rows = sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE {column} = $2 RETURNING {key} AS k"))
            .bind(survivor_id)
            .bind(absorbed_id)
            .fetch_all(&mut **tx)
            .await?;
        let keys = rows.iter().map(|r| r.try_get::<String, _>("k")).collect::<Result<Vec<_>, _>>()?;
        if !keys.is_empty() {
            moved.insert(table.to_string(), keys);
        }
    }
    let json = |v: &Snapshot| serde_json::to_string(v).unwrap_or_default();
    let merge_id: i64 = sqlx::query(
        "INSERT INTO merges (candidate_id, survivor_id, absorbed_id, absorbed_card_no, absorbed_name, absorbed_snapshot, survivor_before,
            moved_rows, how, by_id, by_name, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(candidate_id)
    .bind(survivor_id)
    .bind(absorbed_id)
    .bind(absorbed.record.card_no.clone())
    .bind(absorbed.record.name.clone())
    .bind(json(&absorbed))
    .bind(json(&before))
    .bind(serde_json::to_string(&moved).unwrap_or_default())
    .bind(how.to_string())
    .bind(actor.user_id)
    .bind(actor.name.clone())
    .bind(now.clone())
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    let identifiers = std::iter::once(("card_no".to_string(), absorbed.record.card_no.clone())).chain(dropped);
    let rows = identifiers.map(|(kind, value)| vec![survivor_id.into(), kind.into(), value.into(), merge_id.into(), now.as_str().into()]);
    insert_rows(tx, "reader_identifiers", "reader_id, kind, value, merge_id, created_at", rows.collect()).await?;
    sqlx::query("DELETE FROM readers WHERE id = $1").bind(absorbed_id).execute(&mut **tx).await?;
    let after = load_reader(tx, ReaderKey::Id(survivor_id)).await?;
    let (s, a) = (&before.record, &absorbed.record);
    audit::record(
        tx,
        actor,
        Change {
            action: "identity.merge",
            entity: "reader",
            entity_id: Some(survivor_id.to_string()),
            summary: format!("{} {} ← {} {} ({how})", s.card_no, s.name, a.card_no, a.name),
            before: Some(serde_json::json!({ "survivor": s, "absorbed": a })),
            after: Some(serde_json::to_value(&after).unwrap_or_default()),
        },
    )
    .await?;
    Ok(after)
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
        "SELECT id, survivor_id, absorbed_id FROM merges WHERE id > $1 AND undone_at IS NULL AND (survivor_id = $2 OR absorbed_id = $2) ORDER BY id DESC LIMIT 1",
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
    let (absorbed, before) = (parse("absorbed_snapshot")?, parse("survivor_before")?);
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
    sqlx::query("UPDATE merges SET undone_at = $1, undone_by = $2 WHERE id = $3").bind(now).bind(actor.name.clone()).bind(merge_id).execute(&mut **tx).await?;
    insert_row(tx, &absorbed.record).await?;
    write_children(tx, &absorbed.record, ctx).await?;
    write_keys(tx, absorbed_id, &absorbed.search_keys).await?;
    sqlx::query("DELETE FROM reader_identifiers WHERE merge_id = $1").bind(merge_id).execute(&mut **tx).await?;
    for (table, column, key) in POINTERS {
        for chunk in moved.get(*table).map(Vec::as_slice).unwrap_or_default().chunks(400) {
            let mut sql = Sql::new(&format!("UPDATE {table} SET {column} = "));
            sql.bind(absorbed_id).push(&format!(" WHERE {column} = ")).bind(survivor_id).push(&format!(" AND {key} IN ("));
            sql.bind_list(chunk.iter().map(|k| Param::from(k.as_str()))).push(")");
            sql.query().execute(&mut **tx).await?;
        }
    }
    update_row(tx, &before.record, current.version + 1).await?;
    write_children(tx, &before.record, ctx).await?;
    write_keys(tx, survivor_id, &before.search_keys).await?;
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
