//! Reader records: create, read, update with optimistic concurrency, delete, search, bulk load.

use crate::audit::{self, Change};
use crate::db::{flag, is_unique_violation, Param, Sql, Store};
use crate::{now_text, Actor, Page, Result, StoreError};
use lector_domain::attribute::AttrDef;
use lector_domain::contact::ContactKind;
use lector_domain::name::{pinyin_of, prefix_upper_bound};
use lector_domain::reader::{Gender, ReaderInput, ReaderStatus, Related};
use lector_domain::search::SearchTerm;
use lector_domain::{FieldErrors, Msg};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(crate) mod refs;
pub(crate) mod rows;

/// A search stops collecting candidates here and reports "more than" instead of a total.
pub const SEARCH_CANDIDATE_CAP: i64 = 1000;
/// Lists count at most this many matches.
pub const COUNT_CAP: i64 = 10000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryRef {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactRecord {
    pub kind: ContactKind,
    pub value: String,
    pub primary: bool,
    pub verified: bool,
}

/// A whole reader record, as shown on the reader page and returned by the API (and kept, as
/// JSON, by a merge so it can be undone).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReaderRecord {
    pub id: i64,
    pub card_no: String,
    pub name: String,
    pub pinyin: String,
    pub initials: String,
    pub gender: Gender,
    pub birth_date: Option<String>,
    pub category: CategoryRef,
    pub affiliation: Option<String>,
    pub status: ReaderStatus,
    pub enrolled_on: Option<String>,
    pub expires_on: Option<String>,
    pub contacts: Vec<ContactRecord>,
    pub related: Vec<Related>,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    /// User name of the staff member responsible for the reader.
    pub owner: Option<String>,
    pub notes: Option<String>,
    /// Incremented by every update; an update names the version it was based on.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// One row of a reader list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReaderSummary {
    pub id: i64,
    pub card_no: String,
    pub name: String,
    pub pinyin: String,
    pub gender: Gender,
    pub category: CategoryRef,
    pub affiliation: Option<String>,
    pub status: ReaderStatus,
    pub owner: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReaderSort {
    /// By pinyin of the name (the default for searches).
    Name,
    CardNo,
    /// Most recently changed first (the default for lists).
    #[default]
    Updated,
    Created,
}

impl ReaderSort {
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "name" => Some(ReaderSort::Name),
            "card_no" => Some(ReaderSort::CardNo),
            "updated" => Some(ReaderSort::Updated),
            "created" => Some(ReaderSort::Created),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ReaderSort::Name => "name",
            ReaderSort::CardNo => "card_no",
            ReaderSort::Updated => "updated",
            ReaderSort::Created => "created",
        }
    }
}

/// Filters, sort and page of a reader list.
#[derive(Debug, Clone, Default)]
pub struct ReaderQuery {
    pub q: Option<SearchTerm>,
    pub category: Option<String>,
    pub affiliation: Option<String>,
    pub tag: Option<String>,
    pub status: Option<ReaderStatus>,
    pub owner: Option<String>,
    /// `None`: by name for a search, most recently updated otherwise.
    pub sort: Option<ReaderSort>,
    pub desc: bool,
    pub page: i64,
    pub per_page: i64,
}

pub(crate) const SUMMARY_COLUMNS: &str = "r.id, r.card_no, r.name, r.pinyin, r.gender, r.affiliation, r.status, r.updated_at, \
    c.code AS category_code, c.name_zh AS category_zh, c.name_en AS category_en, u.username AS owner";
pub(crate) const FROM_READERS: &str = " FROM readers r JOIN categories c ON c.id = r.category_id LEFT JOIN users u ON u.id = r.owner_id";

fn parse_enum<T>(v: String, parse: fn(&str) -> Result<T, Msg>) -> Result<T> {
    parse(&v).map_err(|m| StoreError::Other(m.en))
}

fn category_ref(row: &AnyRow) -> Result<CategoryRef> {
    Ok(CategoryRef { code: row.try_get("category_code")?, name_zh: row.try_get("category_zh")?, name_en: row.try_get("category_en")? })
}

pub(crate) fn summary(row: &AnyRow) -> Result<ReaderSummary> {
    Ok(ReaderSummary {
        id: row.try_get("id")?,
        card_no: row.try_get("card_no")?,
        name: row.try_get("name")?,
        pinyin: row.try_get("pinyin")?,
        gender: parse_enum(row.try_get("gender")?, Gender::parse)?,
        category: category_ref(row)?,
        affiliation: row.try_get("affiliation")?,
        status: parse_enum(row.try_get("status")?, ReaderStatus::parse)?,
        owner: row.try_get("owner")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// References in a reader input resolved to ids inside the transaction that saves it.
pub(crate) struct Resolved {
    pub category_id: i64,
    pub owner_id: Option<i64>,
    /// (attribute id, definition, values) for every attribute given.
    pub attributes: Vec<(i64, Arc<AttrDef>, Vec<String>)>,
}

type Tx = Transaction<'static, Any>;

fn duplicate_card(card: &str) -> StoreError {
    StoreError::Conflict(Msg::new(
        format!("读者证号“{card}”已被其他读者使用"),
        format!("card number '{card}' is already used by another reader"),
    ))
}

impl Store {
    async fn resolve(&self, tx: &mut Tx, input: &ReaderInput, reader_id: Option<i64>, current_category: Option<i64>) -> Result<Resolved> {
        let mut errs = FieldErrors::default();
        let row =
            sqlx::query("SELECT id, active FROM categories WHERE code = $1").bind(input.category.clone()).fetch_optional(&mut **tx).await?;
        let category_id = match row {
            Some(r) if flag(&r, "active")? || current_category == Some(r.try_get("id")?) => r.try_get("id")?,
            Some(_) => {
                errs.push("category", refs::retired_category(&input.category));
                0
            }
            None => {
                errs.push("category", refs::no_category(&input.category));
                0
            }
        };
        let owner_id = match &input.owner {
            None => None,
            Some(name) => {
                let row = sqlx::query("SELECT id FROM users WHERE username = $1 AND active = 1")
                    .bind(name.to_lowercase())
                    .fetch_optional(&mut **tx)
                    .await?;
                match row {
                    Some(r) => Some(r.try_get("id")?),
                    None => {
                        errs.push("owner", refs::no_owner(name));
                        None
                    }
                }
            }
        };
        let mut attributes = Vec::new();
        if !input.attributes.is_empty() {
            let defs: HashMap<String, (i64, AttrDef)> =
                crate::config::attribute_defs_in(tx).await?.into_iter().map(|(id, d)| (d.code.clone(), (id, d))).collect();
            for (code, raw) in &input.attributes {
                let field = format!("attributes.{code}");
                let Some((id, def)) = defs.get(code) else {
                    errs.push(field, refs::no_attribute(code));
                    continue;
                };
                let Some(values) = errs.take(&field, def.parse_values(raw)) else {
                    continue;
                };
                if def.unique {
                    for v in &values {
                        let clash = sqlx::query("SELECT r.card_no FROM reader_attributes a JOIN readers r ON r.id = a.reader_id WHERE a.attr_id = $1 AND a.value = $2 AND a.reader_id <> $3")
                            .bind(*id)
                            .bind(v.clone())
                            .bind(reader_id.unwrap_or(0))
                            .fetch_optional(&mut **tx)
                            .await?;
                        if let Some(r) = clash {
                            let card: String = r.try_get("card_no")?;
                            errs.push(field.clone(), refs::unique_taken(def, v, &card));
                        }
                    }
                }
                attributes.push((*id, Arc::new(def.clone()), values));
            }
        }
        errs.finish(|| Resolved { category_id, owner_id, attributes }).map_err(StoreError::Invalid)
    }

    async fn write_children(&self, tx: &mut Tx, id: i64, input: &ReaderInput, resolved: Resolved) -> Result<()> {
        rows::delete_children(tx, &[id]).await?;
        rows::insert_children(tx, &[rows::ReaderRow { id, input, resolved }]).await
    }

    /// Creates a reader and audits it in one transaction.
    #[tracing::instrument(skip(self, input), fields(card_no = input.card_no.as_str()))]
    pub async fn create_reader(&self, actor: &Actor, input: &ReaderInput) -> Result<ReaderRecord> {
        let mut tx = self.begin().await?;
        let resolved = self.resolve(&mut tx, input, None, None).await?;
        let now = now_text();
        let mut insert = Sql::new(&format!("INSERT INTO readers ({READER_COLUMNS}, version, created_at, updated_at) VALUES ("));
        insert
            .bind_list(reader_values(input, resolved.category_id, resolved.owner_id))
            .push(", 1, ")
            .bind(now.as_str())
            .push(", ")
            .bind(now);
        let inserted = insert.push(") RETURNING id").query().fetch_one(&mut *tx).await;
        let id: i64 = match inserted {
            Ok(r) => r.try_get("id")?,
            Err(e) if is_unique_violation(&e) => return Err(duplicate_card(input.card_no.as_str())),
            Err(e) => return Err(e.into()),
        };
        self.write_children(&mut tx, id, input, resolved).await?;
        let after = load_reader(&mut tx, ReaderKey::Id(id)).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "reader.create",
                entity: "reader",
                entity_id: Some(id.to_string()),
                summary: format!("{} {}", after.card_no, after.name),
                before: None,
                after: Some(serde_json::to_value(&after).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Replaces a reader's record if it is still at `expected_version`; otherwise nothing is
    /// written and the caller gets a conflict naming the current version.
    #[tracing::instrument(skip(self, input))]
    pub async fn update_reader(&self, actor: &Actor, id: i64, expected_version: i64, input: &ReaderInput) -> Result<ReaderRecord> {
        let mut tx = self.begin().await?;
        let before = load_reader(&mut tx, ReaderKey::Id(id)).await?;
        if before.version != expected_version {
            return Err(stale(before.version, expected_version));
        }
        let current_category: i64 =
            sqlx::query("SELECT category_id FROM readers WHERE id = $1").bind(id).fetch_one(&mut *tx).await?.try_get("category_id")?;
        let resolved = self.resolve(&mut tx, input, Some(id), Some(current_category)).await?;
        let row = rows::ReaderRow { id, input, resolved };
        if !rows::update_reader(&mut tx, &row, &now_text(), Some(expected_version)).await? {
            return Err(stale(before.version + 1, expected_version));
        }
        self.write_children(&mut tx, id, input, row.resolved).await?;
        let after = load_reader(&mut tx, ReaderKey::Id(id)).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "reader.update",
                entity: "reader",
                entity_id: Some(id.to_string()),
                summary: format!("{} {}", after.card_no, after.name),
                before: Some(serde_json::to_value(&before).unwrap_or_default()),
                after: Some(serde_json::to_value(&after).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a reader (and its contacts, tags …), keeping the full record in the audit log.
    pub async fn delete_reader(&self, actor: &Actor, id: i64, expected_version: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        let before = load_reader(&mut tx, ReaderKey::Id(id)).await?;
        if let Some(v) = expected_version.filter(|v| *v != before.version) {
            return Err(stale(before.version, v));
        }
        sqlx::query("DELETE FROM readers WHERE id = $1").bind(id).execute(&mut *tx).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "reader.delete",
                entity: "reader",
                entity_id: Some(id.to_string()),
                summary: format!("{} {}", before.card_no, before.name),
                before: Some(serde_json::to_value(&before).unwrap_or_default()),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn reader(&self, id: i64) -> Result<ReaderRecord> {
        let mut conn = self.pool.acquire().await?;
        load_reader(&mut conn, ReaderKey::Id(id)).await
    }

    /// The reader with card number `card_no`, or the one a record with that card was merged into.
    pub async fn reader_by_card(&self, card_no: &str) -> Result<ReaderRecord> {
        let mut conn = self.pool.acquire().await?;
        match load_reader(&mut conn, ReaderKey::CardNo(card_no)).await {
            Err(StoreError::NotFound) => match crate::identity::survivor_of_card(&mut conn, card_no).await? {
                Some(id) => load_reader(&mut conn, ReaderKey::Id(id)).await,
                None => Err(StoreError::NotFound),
            },
            other => other,
        }
    }

    /// Lists readers matching `q`, a page at a time.
    pub async fn readers(&self, q: &ReaderQuery) -> Result<Page<ReaderSummary>> {
        let per_page = q.per_page.clamp(1, 200);
        let page = q.page.max(1);
        let mut filter = Sql::new(" WHERE 1 = 1");
        if let Some(term) = &q.q {
            filter.push(" AND r.id IN (");
            candidates(&mut filter, term);
            filter.push(")");
        }
        let filtered = [&q.category, &q.affiliation, &q.tag, &q.owner].iter().any(|f| f.as_deref().is_some_and(|s| !s.is_empty()))
            || q.status.is_some();
        if let Some(c) = q.category.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND r.category_id = (SELECT id FROM categories WHERE code = ").bind(c).push(")");
        }
        if let Some(a) = q.affiliation.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND r.affiliation = ").bind(a);
        }
        if let Some(s) = q.status {
            filter.push(" AND r.status = ").bind(s.code());
        }
        if let Some(o) = q.owner.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND r.owner_id = (SELECT id FROM users WHERE username = ").bind(o.to_lowercase()).push(")");
        }
        if let Some(t) = q.tag.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND r.id IN (SELECT reader_id FROM reader_tags WHERE tag = ").bind(t).push(")");
        }
        let sort = q.sort.unwrap_or(if q.q.is_some() { ReaderSort::Name } else { ReaderSort::Updated });
        let desc = if q.sort.is_none() && sort == ReaderSort::Updated { true } else { q.desc };
        let dir = if desc { "DESC" } else { "ASC" };
        let order = match sort {
            ReaderSort::Name => format!("r.pinyin {dir}, r.id {dir}"),
            ReaderSort::CardNo => format!("r.card_no {dir}"),
            ReaderSort::Updated => format!("r.updated_at {dir}, r.id {dir}"),
            ReaderSort::Created => format!("r.id {dir}"),
        };
        let list = filter.with_text(&format!(
            "SELECT {SUMMARY_COLUMNS}{FROM_READERS}{} ORDER BY {order} LIMIT {per_page} OFFSET {}",
            filter.text,
            (page - 1) * per_page
        ));
        let count = filter.with_text(&format!(
            "SELECT COUNT(*) AS n FROM (SELECT r.id{FROM_READERS}{} LIMIT {}) AS matches",
            filter.text,
            COUNT_CAP + 1
        ));
        let rows = list.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(summary).collect::<Result<Vec<_>>>()?;
        // A search counts its candidates (cheap: an index range of at most the cap); without
        // other filters that count is the total, and reaching the cap means "more than".
        let mut capped = false;
        let mut total = None;
        if let Some(term) = &q.q {
            let mut probe = Sql::new("SELECT COUNT(*) AS raw, COUNT(DISTINCT c.id) AS n FROM (");
            candidates(&mut probe, term);
            let row = probe.push(") AS c").query().fetch_one(&self.pool).await?;
            capped = row.try_get::<i64, _>("raw")? >= SEARCH_CANDIDATE_CAP;
            if !filtered {
                total = Some(row.try_get::<i64, _>("n")?);
            }
        }
        let counted = match total {
            Some(n) => n,
            None if page == 1 && (items.len() as i64) < per_page => items.len() as i64,
            None => count.query().fetch_one(&self.pool).await?.try_get("n")?,
        };
        capped |= counted > COUNT_CAP;
        Ok(Page { items, total: counted.min(COUNT_CAP), total_capped: capped, page, per_page })
    }

    /// Counts for the home dashboard: readers in all, by status and by category.
    pub async fn reader_stats(&self) -> Result<ReaderStats> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM readers").fetch_one(&self.pool).await?.try_get("n")?;
        let by_status = sqlx::query("SELECT status, COUNT(*) AS n FROM readers GROUP BY status").fetch_all(&self.pool).await?;
        let by_category = sqlx::query(
            "SELECT c.code AS category_code, c.name_zh AS category_zh, c.name_en AS category_en, COUNT(r.id) AS n
             FROM categories c LEFT JOIN readers r ON r.category_id = c.id GROUP BY c.code, c.name_zh, c.name_en, c.sort_order ORDER BY c.sort_order",
        )
        .fetch_all(&self.pool)
        .await?;
        let week_ago = (chrono::Utc::now() - chrono::Duration::days(7)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let new_this_week: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'reader.create' AND at >= $1")
            .bind(week_ago)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(ReaderStats {
            total,
            new_this_week,
            by_status: by_status
                .iter()
                .map(|r| Ok((parse_enum(r.try_get("status")?, ReaderStatus::parse)?, r.try_get("n")?)))
                .collect::<Result<_>>()?,
            by_category: by_category.iter().map(|r| Ok((category_ref(r)?, r.try_get("n")?))).collect::<Result<_>>()?,
        })
    }

    /// Inserts many readers in one transaction with a single audit entry (demo data, bulk
    /// loads). Every input has been parsed; references are resolved once per batch.
    pub async fn bulk_create_readers(&self, actor: &Actor, inputs: &[ReaderInput], created_at: &str) -> Result<usize> {
        if inputs.is_empty() {
            return Ok(0);
        }
        // Read before the transaction takes a connection (and, on SQLite, the write lock).
        let refs = refs::RefCache::load(&mut *self.pool.acquire().await?).await?;
        let mut readers = inputs
            .iter()
            .map(|input| {
                let resolved = refs.resolve(input, None, refs::Check::Input).map_err(|(field, msg)| StoreError::invalid(&field, msg))?;
                Ok(rows::ReaderRow { id: 0, input, resolved })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut tx = self.begin().await?;
        if let Some((_, field, msg)) = rows::unique_clashes(&mut tx, &readers).await?.into_iter().next() {
            return Err(StoreError::invalid(&field, msg));
        }
        rows::insert_readers(&mut tx, &mut readers, created_at).await?;
        rows::insert_children(&mut tx, &readers).await?;
        let first = inputs.first().map(|r| r.card_no.as_str()).unwrap_or_default();
        let last = inputs.last().map(|r| r.card_no.as_str()).unwrap_or_default();
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "reader.bulk_create",
                entity: "reader",
                entity_id: None,
                summary: format!("{} readers {first} … {last}", inputs.len()),
                before: None,
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(inputs.len())
    }
}

/// The columns a reader input sets, in the order of [`reader_values`].
const READER_COLUMNS: &str =
    "card_no, name, pinyin, initials, gender, birth_date, category_id, affiliation, status, enrolled_on, expires_on, owner_id, notes";

/// The values of [`READER_COLUMNS`] for `input`, with its references resolved to ids.
fn reader_values(input: &ReaderInput, category_id: i64, owner_id: Option<i64>) -> Vec<Param> {
    let py = pinyin_of(input.name.as_str());
    let date = |d: Option<chrono::NaiveDate>| Param::from(d.map(|d| d.to_string()));
    vec![
        input.card_no.as_str().into(),
        input.name.as_str().into(),
        py.full.into(),
        py.initials.into(),
        input.gender.code().into(),
        date(input.birth_date),
        category_id.into(),
        input.affiliation.clone().into(),
        input.status.code().into(),
        date(input.enrolled_on),
        date(input.expires_on),
        owner_id.into(),
        input.notes.clone().into(),
    ]
}

/// Appends the SQL selecting the ids of readers a search term may match (at most
/// [`SEARCH_CANDIDATE_CAP`] from each index).
fn candidates(sql: &mut Sql, term: &SearchTerm) {
    let cap = SEARCH_CANDIDATE_CAP;
    let key_range = |sql: &mut Sql, prefix: &str| {
        sql.push("SELECT reader_id AS id FROM (SELECT reader_id FROM reader_search_keys WHERE key >= ").bind(prefix);
        if let Some(hi) = prefix_upper_bound(prefix) {
            sql.push(" AND key < ").bind(hi);
        }
        sql.push(&format!(" ORDER BY key LIMIT {cap}) AS k"));
    };
    let card_range = |sql: &mut Sql, prefix: &str| {
        sql.push("SELECT id FROM (SELECT id FROM readers WHERE card_no >= ").bind(prefix);
        if let Some(hi) = prefix_upper_bound(prefix) {
            sql.push(" AND card_no < ").bind(hi);
        }
        sql.push(&format!(" ORDER BY card_no LIMIT {cap}) AS cn"));
    };
    match term {
        SearchTerm::Pinyin(p) | SearchTerm::Name(p) => key_range(sql, p),
        SearchTerm::Email(e) => {
            sql.push("SELECT reader_id AS id FROM reader_contacts WHERE lookup = ").bind(e.as_str());
        }
        SearchTerm::Number(n) => {
            card_range(sql, n);
            sql.push(" UNION SELECT reader_id AS id FROM reader_contacts WHERE lookup = ").bind(n.as_str()).push(" UNION ");
            key_range(sql, n);
        }
        SearchTerm::Card(c) => {
            card_range(sql, c);
            sql.push(" UNION ");
            key_range(sql, &c.to_lowercase());
        }
    }
}

fn stale(current: i64, expected: i64) -> StoreError {
    StoreError::Conflict(Msg::new(
        format!("该读者记录已被他人修改（当前版本 {current}，你编辑的是版本 {expected}），请刷新后重新编辑"),
        format!("the reader was changed by someone else (now version {current}, you edited version {expected}); reload and edit again"),
    ))
}

/// Loads a whole record with its child rows.
/// Which reader to load.
pub(crate) enum ReaderKey<'a> {
    Id(i64),
    CardNo(&'a str),
}

/// Loads a whole record in two queries: the reader row, then its contacts, related contacts,
/// tags and attribute values together (a lookup is on the hot path of every client).
pub(crate) async fn load_reader(conn: &mut sqlx::AnyConnection, key: ReaderKey<'_>) -> Result<ReaderRecord> {
    let columns = format!(
        "SELECT {SUMMARY_COLUMNS}, r.initials, r.birth_date, r.enrolled_on, r.expires_on, r.notes, r.version, r.created_at{FROM_READERS}"
    );
    let query = match key {
        ReaderKey::Id(id) => Sql::new(&format!("{columns} WHERE r.id = ")).bind(id).clone(),
        ReaderKey::CardNo(card) => Sql::new(&format!("{columns} WHERE r.card_no = ")).bind(card).clone(),
    };
    let row = query.query().fetch_optional(&mut *conn).await?.ok_or(StoreError::NotFound)?;
    let id: i64 = row.try_get("id")?;
    let parts = sqlx::query(&record_parts("= $1", "part, sk, pos")).bind(id).fetch_all(&mut *conn).await?;
    record(&row, &parts)
}

/// The child rows of the readers whose id matches `filter` (`= $1`, `IN (…)`), in one list:
/// contacts, related contacts, tags, attribute values.
fn record_parts(filter: &str, order: &str) -> String {
    format!(
        "SELECT reader_id, 'c' AS part, '' AS sk, position AS pos, kind AS a, value AS b, is_primary AS p, verified AS v, NULL AS c, NULL AS d
           FROM reader_contacts WHERE reader_id {filter}
         UNION ALL SELECT reader_id, 'r', '', position, name, relation, 0, 0, phone, email FROM reader_related WHERE reader_id {filter}
         UNION ALL SELECT reader_id, 't', tag, 0, tag, NULL, 0, 0, NULL, NULL FROM reader_tags WHERE reader_id {filter}
         UNION ALL SELECT a.reader_id, 'x', d.code, a.position, d.code, a.value, 0, 0, NULL, NULL
           FROM reader_attributes a JOIN attribute_defs d ON d.id = a.attr_id WHERE a.reader_id {filter}
         ORDER BY {order}"
    )
}

/// Loads the whole records of many readers (merges work on hundreds at once): two queries per
/// 500 ids. Readers that do not exist are left out.
pub(crate) async fn load_readers(conn: &mut sqlx::AnyConnection, ids: &[i64]) -> Result<Vec<ReaderRecord>> {
    let mut records = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = || chunk.iter().map(|id| Param::from(*id));
        let mut rows = Sql::new(&format!(
            "SELECT {SUMMARY_COLUMNS}, r.initials, r.birth_date, r.enrolled_on, r.expires_on, r.notes, r.version, r.created_at{FROM_READERS} WHERE r.id IN ("
        ));
        let rows = rows.bind_list(list()).push(")").query().fetch_all(&mut *conn).await?;
        let mut placeholders = Sql::new("IN (");
        placeholders.bind_list(list()).push(")");
        let parts =
            placeholders.with_text(&record_parts(&placeholders.text, "reader_id, part, sk, pos")).query().fetch_all(&mut *conn).await?;
        let mut by_reader: HashMap<i64, Vec<AnyRow>> = HashMap::new();
        for p in parts {
            by_reader.entry(p.try_get("reader_id")?).or_default().push(p);
        }
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            records.push(record(row, by_reader.get(&id).map(Vec::as_slice).unwrap_or_default())?);
        }
    }
    Ok(records)
}

/// A whole record from its reader row and its child rows (ordered by part, sort key, position).
fn record(row: &AnyRow, parts: &[AnyRow]) -> Result<ReaderRecord> {
    let s = summary(row)?;
    let id = s.id;
    let (mut contacts, mut related, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in parts {
        let part: String = r.try_get("part")?;
        match part.as_str() {
            "c" => contacts.push(ContactRecord {
                kind: parse_enum(r.try_get("a")?, ContactKind::parse)?,
                value: r.try_get("b")?,
                primary: flag(r, "p")?,
                verified: flag(r, "v")?,
            }),
            "r" => {
                related.push(Related { name: r.try_get("a")?, relation: r.try_get("b")?, phone: r.try_get("c")?, email: r.try_get("d")? })
            }
            "t" => tags.push(r.try_get("a")?),
            _ => attributes.entry(r.try_get("a")?).or_default().push(r.try_get("b")?),
        }
    }
    Ok(ReaderRecord {
        id,
        card_no: s.card_no,
        name: s.name,
        pinyin: s.pinyin,
        initials: row.try_get("initials")?,
        gender: s.gender,
        birth_date: row.try_get("birth_date")?,
        category: s.category,
        affiliation: s.affiliation,
        status: s.status,
        enrolled_on: row.try_get("enrolled_on")?,
        expires_on: row.try_get("expires_on")?,
        contacts,
        related,
        tags,
        attributes,
        owner: s.owner,
        notes: row.try_get("notes")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: s.updated_at,
    })
}

/// Dashboard counts.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderStats {
    pub total: i64,
    pub new_this_week: i64,
    pub by_status: Vec<(ReaderStatus, i64)>,
    pub by_category: Vec<(CategoryRef, i64)>,
}
