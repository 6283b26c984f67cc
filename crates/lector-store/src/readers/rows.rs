//! Writing reader rows and their child rows with multi-row statements: one piece of code for
//! single edits, bulk loads, imports and undo.

use super::refs::{unique_taken, Check, RefCache};
use super::{duplicate_card, reader_values, ReaderRecord, Resolved, READER_COLUMNS};
use crate::db::{is_unique_violation, Param, Sql};
use crate::{Result, StoreError};
use lector_domain::contact::lookup_key;
use lector_domain::name::{search_keys, PersonName};
use lector_domain::reader::{CardNo, Contact, ReaderInput};
use lector_domain::Msg;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};
use std::collections::HashMap;
use std::fmt::Write;

/// Parameters per multi-row statement.
pub(crate) const PARAMS_PER_STATEMENT: usize = 500;

/// How a statement built here numbers its parameters: SQLite gets anonymous `?` (sqlx looks up
/// the name of every numbered parameter, which SQLite finds by a linear scan, so numbered
/// parameters cost the square of their count to bind), PostgreSQL gets `$N`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placeholders {
    anonymous: bool,
}

impl Placeholders {
    pub(crate) fn of(conn: &AnyConnection) -> Self {
        Placeholders { anonymous: conn.backend_name().eq_ignore_ascii_case("sqlite") }
    }

    /// Whether a lookup may keep its prepared statement. PostgreSQL would reuse a generic plan
    /// made while the tables an import grows were small (a join that reads them whole); planning
    /// each lookup afresh costs far less than that.
    fn keep_lookups(self) -> bool {
        self.anonymous
    }

    /// Appends the placeholder of the `n`-th (1-based) parameter.
    pub(crate) fn push(self, sql: &mut String, n: usize) {
        if self.anonymous {
            sql.push('?');
        } else {
            let _ = write!(sql, "${n}");
        }
    }

    /// Appends the placeholders of parameters `first..first + count`, separated by commas.
    pub(crate) fn push_list(self, sql: &mut String, first: usize, count: usize) {
        for n in first..first + count {
            if n > first {
                sql.push_str(", ");
            }
            self.push(sql, n);
        }
    }
}

/// `{head} VALUES (…), (…)` for `rows` rows of `width` values.
fn statement(style: Placeholders, head: &str, width: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * width * 6);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        style.push_list(&mut sql, r * width + 1, width);
        sql.push(')');
    }
    sql
}

fn bind_all<'q>(query: Query<'q, Any, AnyArguments<'q>>, params: Vec<Param>) -> Query<'q, Any, AnyArguments<'q>> {
    params.into_iter().fold(query, |q, p| match p {
        Param::Int(v) => q.bind(v),
        Param::Text(v) => q.bind(v),
    })
}

/// Inserts `rows` with `width` values each (pushed by `values`), about 500 parameters per
/// statement. Every full chunk has the same SQL text, so the connection prepares it once; the
/// last, shorter chunk is not kept in the statement cache.
pub(crate) async fn insert_rows<T>(
    conn: &mut AnyConnection,
    head: &str,
    width: usize,
    rows: &[T],
    mut values: impl FnMut(&T, &mut Vec<Param>),
) -> Result<(), sqlx::Error> {
    let per = (PARAMS_PER_STATEMENT / width).max(1);
    let style = Placeholders::of(conn);
    let full = statement(style, head, width, per);
    for chunk in rows.chunks(per) {
        let mut params = Vec::with_capacity(chunk.len() * width);
        for row in chunk {
            values(row, &mut params);
        }
        if chunk.len() == per {
            bind_all(sqlx::query(&full), params).execute(&mut *conn).await?;
        } else {
            let text = statement(style, head, width, chunk.len());
            bind_all(sqlx::query(&text).persistent(false), params).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Keys per lookup statement; lookups always bind this many (the last chunk padded with its last
/// key), so each has one SQL text and is prepared once per connection.
const LOOKUP_KEYS: usize = 500;

/// Looks up many text keys at once: joins `(position, key)` rows to `join` (which refers to the key
/// as `v.column2`, and whose `{}` are the parameters `fixed`) and returns, for each match, the
/// key's position in `keys` and the integers `exprs` yield. Each statement returns a single
/// aggregated row, because sqlx hands result rows over from its SQLite thread one at a time,
/// which costs more than the lookup itself.
pub(crate) async fn lookup_keys(
    conn: &mut AnyConnection,
    join: &str,
    fixed: &[Param],
    keys: &[&str],
    exprs: &[&str],
) -> Result<Vec<(usize, Vec<i64>)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let style = Placeholders::of(conn);
    let mut sql = String::from("SELECT string_agg(CAST(v.column1 AS TEXT)");
    for e in exprs {
        let _ = write!(sql, " || ':' || CAST(({e}) AS TEXT)");
    }
    sql.push_str(", ',') AS hits FROM (VALUES ");
    for i in 0..LOOKUP_KEYS {
        let _ = write!(sql, "{}({i}, ", if i == 0 { "" } else { ", " });
        style.push(&mut sql, i + 1);
        sql.push(')');
    }
    sql.push_str(") AS v JOIN ");
    for (i, part) in join.split("{}").enumerate() {
        if i > 0 {
            style.push(&mut sql, LOOKUP_KEYS + i);
        }
        sql.push_str(part);
    }
    let mut out = Vec::new();
    for (c, chunk) in keys.chunks(LOOKUP_KEYS).enumerate() {
        let mut params: Vec<Param> = (0..LOOKUP_KEYS).map(|i| chunk[i.min(chunk.len() - 1)].into()).collect();
        params.extend(fixed.iter().cloned());
        let row = bind_all(sqlx::query(&sql).persistent(style.keep_lookups()), params).fetch_one(&mut *conn).await?;
        let hits: Option<String> = row.try_get("hits")?;
        for hit in hits.as_deref().unwrap_or("").split(',').filter(|h| !h.is_empty()) {
            let mut numbers =
                hit.split(':').map(|n| n.parse::<i64>().map_err(|e| StoreError::Other(format!("lookup result '{hit}': {e}"))));
            let position = numbers.next().transpose()?.unwrap_or(-1);
            if (0..chunk.len() as i64).contains(&position) {
                out.push((c * LOOKUP_KEYS + position as usize, numbers.collect::<Result<Vec<i64>>>()?));
            }
        }
    }
    Ok(out)
}

/// A reader about to be written: its id (once it has one), input and resolved references.
pub(crate) struct ReaderRow<'a> {
    pub id: i64,
    pub input: &'a ReaderInput,
    pub resolved: Resolved,
}

/// Inserts the reader rows (version 1, created and updated at `at`) and sets each one's id
/// (looked up by card number afterwards: cheaper than `RETURNING` through sqlx).
pub(crate) async fn insert_readers(conn: &mut AnyConnection, readers: &mut [ReaderRow<'_>], at: &str) -> Result<()> {
    let head = format!("INSERT INTO readers ({READER_COLUMNS}, version, created_at, updated_at)");
    insert_rows(conn, &head, 16, readers, |r, p| {
        p.extend(reader_values(r.input, r.resolved.category_id, r.resolved.owner_id));
        p.extend([Param::from(1), Param::from(at), Param::from(at)]);
    })
    .await
    .map_err(|e| if is_unique_violation(&e) { duplicate_card("…") } else { StoreError::from(e) })?;
    let cards: Vec<&str> = readers.iter().map(|r| r.input.card_no.as_str()).collect();
    let mut found = 0;
    for (i, ids) in lookup_keys(conn, "readers r ON r.card_no = v.column2", &[], &cards, &["r.id"]).await? {
        readers[i].id = ids.first().copied().unwrap_or_default();
        found += 1;
    }
    if found != readers.len() {
        return Err(StoreError::Other(format!("{} of {} readers inserted were not found again", readers.len() - found, readers.len())));
    }
    Ok(())
}

/// Rewrites a reader row from its input: version + 1, updated at `at`. With `expected_version`,
/// only that version is replaced. Returns false when no row matched.
pub(crate) async fn update_reader(conn: &mut AnyConnection, r: &ReaderRow<'_>, at: &str, expected_version: Option<i64>) -> Result<bool> {
    let mut update = Sql::new("UPDATE readers SET ");
    for (column, value) in READER_COLUMNS.split(", ").zip(reader_values(r.input, r.resolved.category_id, r.resolved.owner_id)) {
        update.push(column).push(" = ").bind(value).push(", ");
    }
    update.push("version = version + 1, updated_at = ").bind(at).push(" WHERE id = ").bind(r.id);
    if let Some(v) = expected_version {
        update.push(" AND version = ").bind(v);
    }
    match update.query().execute(&mut *conn).await {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(e) if is_unique_violation(&e) => Err(duplicate_card(r.input.card_no.as_str())),
        Err(e) => Err(e.into()),
    }
}

/// The tables holding a reader's child rows.
const CHILD_TABLES: [&str; 5] = ["reader_contacts", "reader_related", "reader_tags", "reader_attributes", "reader_search_keys"];

/// Deletes the child rows of readers (before writing them again).
pub(crate) async fn delete_children(conn: &mut AnyConnection, ids: &[i64]) -> Result<()> {
    let style = Placeholders::of(conn);
    for chunk in ids.chunks(PARAMS_PER_STATEMENT) {
        for table in CHILD_TABLES {
            let mut sql = format!("DELETE FROM {table} WHERE reader_id IN (");
            style.push_list(&mut sql, 1, chunk.len());
            sql.push(')');
            bind_all(sqlx::query(&sql).persistent(chunk.len() == 1), chunk.iter().map(|id| Param::from(*id)).collect())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Inserts the child rows of saved readers: contacts, related contacts, tags, attribute values
/// and the search keys of names and searchable attributes.
pub(crate) async fn insert_children(conn: &mut AnyConnection, readers: &[ReaderRow<'_>]) -> Result<()> {
    let mut contacts = Vec::new();
    let mut related = Vec::new();
    let mut tags = Vec::new();
    let mut attributes = Vec::new();
    let mut keys = Vec::new();
    for r in readers {
        contacts.extend(r.input.contacts.iter().enumerate().map(|(i, c)| (r.id, c, i as i64)));
        related.extend(r.input.related.iter().enumerate().map(|(i, x)| (r.id, x, i as i64)));
        tags.extend(r.input.tags.iter().map(|t| (r.id, t.as_str())));
        let mut own = search_keys(r.input.name.as_str());
        for (attr_id, def, values) in &r.resolved.attributes {
            for (i, v) in values.iter().enumerate() {
                attributes.push((r.id, *attr_id, v.as_str(), i as i64));
                let key = v.to_lowercase();
                if def.searchable && !own.contains(&key) {
                    own.push(key);
                }
            }
        }
        keys.extend(own.into_iter().map(|k| (r.id, k)));
    }
    let head = "INSERT INTO reader_contacts (reader_id, kind, value, lookup, is_primary, verified, position)";
    insert_rows(conn, head, 7, &contacts, |(id, c, pos), p| {
        p.extend([
            Param::from(*id),
            c.kind.code().into(),
            c.value.as_str().into(),
            lookup_key(c.kind, &c.value).into(),
            c.primary.into(),
            c.verified.into(),
            Param::from(*pos),
        ])
    })
    .await?;
    let head = "INSERT INTO reader_related (reader_id, name, relation, phone, email, position)";
    insert_rows(conn, head, 6, &related, |(id, x, pos), p| {
        p.extend([
            Param::from(*id),
            x.name.as_str().into(),
            x.relation.as_str().into(),
            x.phone.clone().into(),
            x.email.clone().into(),
            Param::from(*pos),
        ])
    })
    .await?;
    insert_rows(conn, "INSERT INTO reader_tags (reader_id, tag)", 2, &tags, |(id, t), p| p.extend([Param::from(*id), (*t).into()])).await?;
    let head = "INSERT INTO reader_attributes (reader_id, attr_id, value, position)";
    insert_rows(conn, head, 4, &attributes, |(id, attr, v, pos), p| {
        p.extend([Param::from(*id), Param::from(*attr), (*v).into(), Param::from(*pos)])
    })
    .await?;
    insert_rows(conn, "INSERT INTO reader_search_keys (key, reader_id)", 2, &keys, |(id, k), p| {
        p.extend([k.as_str().into(), Param::from(*id)])
    })
    .await?;
    Ok(())
}

/// Values of unique attributes that another reader already holds, or that an earlier reader of
/// `readers` takes: (index into `readers`, field, message) for each. Readers not yet saved have
/// id 0.
pub(crate) async fn unique_clashes(conn: &mut AnyConnection, readers: &[ReaderRow<'_>]) -> Result<Vec<(usize, String, Msg)>> {
    let mut clashes = Vec::new();
    // (attribute id, value) → (index, card) of the first reader of the batch holding it.
    let mut taken: HashMap<(i64, &str), (usize, &str)> = HashMap::new();
    let mut asked: HashMap<i64, Vec<&str>> = HashMap::new();
    for (i, r) in readers.iter().enumerate() {
        for (attr_id, def, values) in r.resolved.attributes.iter().filter(|a| a.1.unique) {
            for v in values {
                match taken.get(&(*attr_id, v.as_str())) {
                    Some(&(_, card)) => clashes.push((i, format!("attributes.{}", def.code), unique_taken(def, v, card))),
                    None => {
                        taken.insert((*attr_id, v.as_str()), (i, r.input.card_no.as_str()));
                        asked.entry(*attr_id).or_default().push(v.as_str());
                    }
                }
            }
        }
    }
    for (attr_id, values) in asked {
        for chunk in values.chunks(PARAMS_PER_STATEMENT) {
            let mut sql = Sql::new(
                "SELECT a.value, a.reader_id, r.card_no FROM reader_attributes a JOIN readers r ON r.id = a.reader_id WHERE a.attr_id = ",
            );
            sql.bind(attr_id).push(" AND a.value IN (").bind_list(chunk.iter().map(|v| Param::from(*v))).push(")");
            for row in sql.query().fetch_all(&mut *conn).await? {
                let value: String = row.try_get("value")?;
                let holder: i64 = row.try_get("reader_id")?;
                let card: String = row.try_get("card_no")?;
                if let Some(&(i, _)) = taken.get(&(attr_id, value.as_str())) {
                    let r = &readers[i];
                    if r.id != holder {
                        if let Some((_, def, _)) = r.resolved.attributes.iter().find(|a| a.0 == attr_id) {
                            clashes.push((i, format!("attributes.{}", def.code), unique_taken(def, &value, &card)));
                        }
                    }
                }
            }
        }
    }
    clashes.sort_by_key(|c| c.0);
    Ok(clashes)
}

impl ReaderRecord {
    /// The record as an input, to change some of its fields or write it back. Stored values
    /// parse as they were saved; a failure means the database holds something Lector did not write.
    pub(crate) fn to_input(&self) -> Result<ReaderInput> {
        let bad = |what: &str, m: Msg| StoreError::Other(format!("reader {} has a stored {what} that does not parse: {}", self.id, m.en));
        let date = |what: &str, d: &Option<String>| -> Result<Option<chrono::NaiveDate>> {
            d.as_deref()
                .map(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| bad(what, Msg::new(e.to_string(), e.to_string()))))
                .transpose()
        };
        Ok(ReaderInput {
            card_no: CardNo::parse(&self.card_no).map_err(|m| bad("card number", m))?,
            name: PersonName::parse(&self.name).map_err(|m| bad("name", m))?,
            gender: self.gender,
            birth_date: date("birth date", &self.birth_date)?,
            category: self.category.code.clone(),
            affiliation: self.affiliation.clone(),
            status: self.status,
            enrolled_on: date("enrolment date", &self.enrolled_on)?,
            expires_on: date("expiry date", &self.expires_on)?,
            contacts: self
                .contacts
                .iter()
                .map(|c| Contact { kind: c.kind, value: c.value.clone(), primary: c.primary, verified: c.verified })
                .collect(),
            related: self.related.clone(),
            tags: self.tags.clone(),
            attributes: self.attributes.clone(),
            owner: self.owner.clone(),
            notes: self.notes.clone(),
        })
    }
}

/// Writes a stored record back over reader `rec.id` (an undo): its fields, contacts, related
/// contacts, tags and attribute values as they were; the version moves on. Returns false when the
/// reader no longer exists.
pub(crate) async fn restore_record(conn: &mut AnyConnection, refs: &RefCache, rec: &ReaderRecord, at: &str) -> Result<bool> {
    let input = rec.to_input()?;
    let resolved = refs.resolve(&input, None, Check::Stored).map_err(|(field, msg)| StoreError::invalid(&field, msg))?;
    let row = ReaderRow { id: rec.id, input: &input, resolved };
    if !update_reader(conn, &row, at, None).await? {
        return Ok(false);
    }
    delete_children(conn, &[rec.id]).await?;
    insert_children(conn, std::slice::from_ref(&row)).await?;
    Ok(true)
}
