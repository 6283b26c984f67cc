//! Segments (读者分组): saved filters over readers. A segment is live (its filter runs whenever
//! it is used) or frozen (its members are the snapshot in `segment_members`).
//!
//! A filter ([`lector_domain::segment::Filter`]) compiles to one SQL boolean expression over a
//! `readers` alias, with every value bound (never interpolated), so counting, listing, freezing
//! and a campaign's `INSERT … SELECT` all run it inside the database.

use crate::audit::{self, Change};
use crate::db::{is_unique_violation, Param, Sql, Store};
use crate::readers::{summary, CategoryRef, ReaderSort, ReaderSummary, FROM_READERS, SUMMARY_COLUMNS};
use crate::{now_text, Actor, Page, Result, StoreError};
use chrono::{NaiveDate, TimeZone};
use lector_domain::name::prefix_upper_bound;
use lector_domain::reader::{parse_tag, ReaderStatus};
use lector_domain::segment::{Condition, DateTest, EnumTest, Field, Filter, Node, TextTest, Vocabulary};
use lector_domain::{text, FieldErrors, Msg};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;

/// A saved segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Segment {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// The filter in its canonical JSON form.
    pub filter: serde_json::Value,
    /// When the member snapshot was taken; `None` while the segment is live.
    pub frozen_at: Option<String>,
    /// The size of the snapshot (frozen segments only).
    pub frozen_count: Option<i64>,
    /// User name of the staff member who created it.
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

/// A segment in the list, with its current member count (`None` when its filter no longer
/// parses, e.g. it names a custom attribute that was removed).
#[derive(Debug, Clone, Serialize)]
pub struct ListedSegment {
    pub segment: Segment,
    pub members: Option<i64>,
}

/// A segment as entered: the filter is still raw JSON, parsed against the configuration when
/// saved.
#[derive(Debug, Clone, Default)]
pub struct SegmentInput {
    pub name: String,
    pub description: String,
    pub filter: serde_json::Value,
}

/// Sort and page of a member list (the reader list's sorts).
#[derive(Debug, Clone, Default)]
pub struct MemberQuery {
    /// `None`: most recently updated first.
    pub sort: Option<ReaderSort>,
    pub desc: bool,
    pub page: i64,
    pub per_page: i64,
}

/// One member: the reader list's row and the primary email and mobile (unmasked; callers mask).
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub reader: ReaderSummary,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

/// One row of a member export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRow {
    pub card_no: String,
    pub name: String,
    pub category: CategoryRef,
    pub affiliation: Option<String>,
    pub status: ReaderStatus,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

/// Rows per round trip when paging through members (exports, bulk changes).
const BATCH: usize = 500;

const CONTACT_COLUMNS: &str = ", (SELECT rc.value FROM reader_contacts rc WHERE rc.reader_id = r.id AND rc.kind = 'email' ORDER BY rc.is_primary DESC, rc.position LIMIT 1) AS email, \
     (SELECT rc.value FROM reader_contacts rc WHERE rc.reader_id = r.id AND rc.kind = 'mobile' ORDER BY rc.is_primary DESC, rc.position LIMIT 1) AS mobile";

fn segment_row(row: &AnyRow) -> Result<Segment> {
    let filter: String = row.try_get("filter_json")?;
    Ok(Segment {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        filter: serde_json::from_str(&filter).map_err(|e| StoreError::Other(format!("segment filter is not JSON: {e}")))?,
        frozen_at: row.try_get("frozen_at")?,
        frozen_count: row.try_get("member_count")?,
        created_by: row.try_get("created_by_name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

const SELECT_SEGMENT: &str = "SELECT s.*, u.username AS created_by_name FROM segments s LEFT JOIN users u ON u.id = s.created_by";

async fn load(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Segment> {
    let row = sqlx::query(&format!("{SELECT_SEGMENT} WHERE s.id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    segment_row(&row.ok_or(StoreError::NotFound)?)
}

fn stale(current: i64, expected: i64) -> StoreError {
    StoreError::Conflict(Msg::new(
        format!("该读者分组已被他人修改（当前版本 {current}，你编辑的是版本 {expected}），请刷新后重试"),
        format!("the segment was changed by someone else (now version {current}, you edited version {expected}); reload and try again"),
    ))
}

fn duplicate_name(name: &str) -> StoreError {
    StoreError::Conflict(Msg::new(format!("已有名为“{name}”的读者分组"), format!("there is already a segment named '{name}'")))
}

fn to_json(s: &Segment) -> Option<serde_json::Value> {
    Some(serde_json::to_value(s).unwrap_or_default())
}

/// The name, description and filter of `input`, checked; every problem named.
fn parse_input(input: &SegmentInput, vocab: &Vocabulary) -> Result<(String, String, Filter)> {
    let mut errs = FieldErrors::default();
    let name = errs.take("name", text::required_prose(&input.name, 100, "分组名称", "segment name"));
    if name.as_deref().is_some_and(|n| n.contains('\n')) {
        errs.push("name", Msg::new("分组名称只能有一行", "the segment name must be a single line"));
    }
    let description =
        errs.take("description", text::optional_prose(Some(&input.description), 1000, "说明", "description")).flatten().unwrap_or_default();
    let filter = match Filter::parse(&input.filter, vocab) {
        Ok(f) => Some(f),
        Err(e) => {
            errs.0.extend(e.0);
            None
        }
    };
    match (name, filter) {
        (Some(name), Some(filter)) if errs.is_empty() => Ok((name, description, filter)),
        _ => Err(StoreError::Invalid(errs)),
    }
}

/// Today in the library's time zone: the `within_…_days` tests are relative to it.
fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// How a date column stores its values.
#[derive(Clone, Copy)]
enum DateForm {
    /// `YYYY-MM-DD`.
    Day,
    /// A UTC time (`…T…Z`), compared by the library's local calendar day.
    Stamp,
}

impl DateForm {
    /// The smallest stored value on local day `d`.
    fn start_of(self, d: NaiveDate) -> String {
        match self {
            DateForm::Day => d.to_string(),
            DateForm::Stamp => {
                let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
                let utc = chrono::Local
                    .from_local_datetime(&midnight)
                    .earliest()
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_else(|| chrono::Utc.from_utc_datetime(&midnight));
                utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            }
        }
    }
}

/// Where a field's values live, relative to the readers alias.
enum Source {
    /// A column (or expression) of `readers`; `{r}` stands for the alias. `ranged`: compared
    /// byte by byte on both backends, so a prefix is an index range.
    Column { expr: &'static str, ranged: bool, dates: DateForm },
    /// Rows of a child table: `{r}.id IN (SELECT reader_id FROM … WHERE … AND <value test>)`.
    Rows { from: &'static str, value: &'static str, attr: Option<String> },
    /// A reference column pointing at a table looked up by a key (`category_id` → code).
    Lookup { column: &'static str, table: &'static str, key: &'static str },
}

fn source(field: &Field) -> Source {
    let column = |expr| Source::Column { expr, ranged: false, dates: DateForm::Day };
    match field {
        Field::CardNo => Source::Column { expr: "{r}.card_no", ranged: true, dates: DateForm::Day },
        Field::Name => column("{r}.name"),
        Field::Gender => column("{r}.gender"),
        Field::Affiliation => column("{r}.affiliation"),
        Field::Status => column("{r}.status"),
        Field::Lang => column("COALESCE({r}.lang, 'zh')"),
        Field::CreatedAt => Source::Column { expr: "{r}.created_at", ranged: false, dates: DateForm::Stamp },
        Field::EnrolledOn => column("{r}.enrolled_on"),
        Field::ExpiresOn => column("{r}.expires_on"),
        Field::BirthDate => column("{r}.birth_date"),
        Field::Tag => Source::Rows { from: "reader_tags", value: "tag", attr: None },
        Field::HasContact => Source::Rows { from: "reader_contacts", value: "kind", attr: None },
        Field::Attr { code, .. } => Source::Rows { from: "reader_attributes", value: "value", attr: Some(code.clone()) },
        Field::Category => Source::Lookup { column: "category_id", table: "categories", key: "code" },
        Field::Owner => Source::Lookup { column: "owner_id", table: "users", key: "username" },
        // Consent is compiled on its own (its default depends on the purpose).
        Field::Consent(_) => column("NULL"),
    }
}

/// A test on one value, without its negation: `Ne`, `NotIn` and `IsEmpty` are the negations of
/// `Eq`, `In` and "has a value".
enum ValueTest<'a> {
    Equals(&'a str),
    OneOf(&'a [String]),
    Contains(&'a str),
    StartsWith(&'a str),
    Present,
    /// Local days `from ..= until` (either end open).
    Days {
        from: Option<NaiveDate>,
        until: Option<NaiveDate>,
    },
}

fn like_pattern(v: &str, leading: bool) -> String {
    let escaped = v.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    if leading {
        format!("%{escaped}%")
    } else {
        format!("{escaped}%")
    }
}

fn next_day(d: NaiveDate) -> NaiveDate {
    d.succ_opt().unwrap_or(d)
}

fn days_ago(n: u32) -> NaiveDate {
    today().checked_sub_days(chrono::Days::new(n.into())).unwrap_or(NaiveDate::MIN)
}

fn days_ahead(n: u32) -> NaiveDate {
    today().checked_add_days(chrono::Days::new(n.into())).unwrap_or(NaiveDate::MAX)
}

/// Pushes `test` on the value expression `v`.
fn push_value_test(sql: &mut Sql, v: &str, test: &ValueTest<'_>, ranged: bool, dates: DateForm) {
    match test {
        ValueTest::Equals(x) => {
            sql.push(v).push(" = ").bind(*x);
        }
        ValueTest::OneOf(xs) => {
            sql.push(v).push(" IN (").bind_list(xs.iter().map(|x| Param::from(x.as_str()))).push(")");
        }
        ValueTest::Contains(x) => {
            sql.push("lower(").push(v).push(") LIKE ").bind(like_pattern(x, true)).push(" ESCAPE '\\'");
        }
        ValueTest::StartsWith(x) if ranged => {
            let prefix = x.to_uppercase();
            sql.push("(").push(v).push(" >= ").bind(prefix.as_str());
            if let Some(hi) = prefix_upper_bound(&prefix) {
                sql.push(" AND ").push(v).push(" < ").bind(hi);
            }
            sql.push(")");
        }
        ValueTest::StartsWith(x) => {
            sql.push("lower(").push(v).push(") LIKE ").bind(like_pattern(x, false)).push(" ESCAPE '\\'");
        }
        ValueTest::Present => {
            sql.push("(").push(v).push(" IS NOT NULL AND ").push(v).push(" <> '')");
        }
        ValueTest::Days { from, until } => {
            sql.push("(").push(v).push(" IS NOT NULL");
            if let Some(f) = from {
                sql.push(" AND ").push(v).push(" >= ").bind(dates.start_of(*f));
            }
            if let Some(u) = until {
                sql.push(" AND ").push(v).push(" < ").bind(dates.start_of(next_day(*u)));
            }
            sql.push(")");
        }
    }
}

/// Pushes "some value of `src` passes `test`" (or, `negated`, "none does").
fn push_source_test(sql: &mut Sql, r: &str, src: &Source, test: &ValueTest<'_>, negated: bool) {
    match src {
        Source::Column { expr, ranged, dates } => {
            let v = expr.replace("{r}", r);
            if negated {
                sql.push("(").push(&v).push(" IS NULL OR NOT ");
            }
            sql.push("(");
            push_value_test(sql, &v, test, *ranged, *dates);
            sql.push(")");
            if negated {
                sql.push(")");
            }
        }
        Source::Rows { from, value, attr } => {
            sql.push(r).push(if negated { ".id NOT IN (" } else { ".id IN (" }).push("SELECT reader_id FROM ").push(from).push(" WHERE ");
            if let Some(code) = attr {
                sql.push("attr_id = (SELECT id FROM attribute_defs WHERE code = ").bind(code.as_str()).push(") AND ");
            }
            push_value_test(sql, value, test, false, DateForm::Day);
            sql.push(")");
        }
        Source::Lookup { column, table, key } => {
            if negated {
                sql.push("(").push(r).push(".").push(column).push(" IS NULL OR ").push(r).push(".").push(column).push(" NOT IN (");
            } else {
                sql.push(r).push(".").push(column).push(" IN (");
            }
            sql.push("SELECT id FROM ").push(table).push(" WHERE ");
            push_value_test(sql, key, test, false, DateForm::Day);
            sql.push(if negated { "))" } else { ")" });
        }
    }
}

/// Pushes "the reader consents to `purpose` on at least one of `channels`" (or, `negated`, on
/// none of them). A reader with no answer has the purpose's default.
fn push_consent(sql: &mut Sql, r: &str, purpose: lector_domain::messaging::Purpose, channels: &[String], negated: bool) {
    let default = purpose.granted_by_default();
    sql.push("(");
    for (i, channel) in channels.iter().enumerate() {
        if i > 0 {
            sql.push(if negated { " AND " } else { " OR " });
        }
        // With a default grant, consenting means "no withdrawal on record"; otherwise "a grant on
        // record". Negated, the other way round.
        let listed = default == negated;
        sql.push(r)
            .push(if listed { ".id IN (" } else { ".id NOT IN (" })
            .push("SELECT reader_id FROM consents WHERE purpose = ")
            .bind(purpose.code())
            .push(" AND channel = ")
            .bind(channel.as_str())
            .push(if default { " AND granted = 0)" } else { " AND granted = 1)" });
    }
    sql.push(")");
}

fn push_condition(sql: &mut Sql, r: &str, c: &Condition) {
    let field = c.field();
    let src = source(field);
    match c {
        Condition::Text(_, t) => {
            let (test, negated) = match t {
                TextTest::Eq(v) => (ValueTest::Equals(v), false),
                TextTest::Ne(v) => (ValueTest::Equals(v), true),
                TextTest::In(vs) => (ValueTest::OneOf(vs), false),
                TextTest::NotIn(vs) => (ValueTest::OneOf(vs), true),
                TextTest::Contains(v) => (ValueTest::Contains(v), false),
                TextTest::StartsWith(v) => (ValueTest::StartsWith(v), false),
                TextTest::IsEmpty => (ValueTest::Present, true),
                TextTest::NotEmpty => (ValueTest::Present, false),
            };
            push_source_test(sql, r, &src, &test, negated);
        }
        Condition::Date(_, t) => {
            let days = |from: Option<NaiveDate>, until: Option<NaiveDate>| ValueTest::Days { from, until };
            let (test, negated) = match t {
                DateTest::Before(d) => (days(None, d.pred_opt()), false),
                DateTest::After(d) => (days(Some(next_day(*d)), None), false),
                DateTest::Between(a, b) => (days(Some(*a), Some(*b)), false),
                DateTest::WithinLastDays(n) => (days(Some(days_ago(*n)), Some(today())), false),
                DateTest::WithinNextDays(n) => (days(Some(today()), Some(days_ahead(*n))), false),
                DateTest::IsEmpty => (days(None, None), true),
                DateTest::NotEmpty => (days(None, None), false),
            };
            push_source_test(sql, r, &src, &test, negated);
        }
        Condition::Enum(field, t) => {
            let (values, negated) = match t {
                EnumTest::Eq(v) => (vec![v.clone()], false),
                EnumTest::Ne(v) => (vec![v.clone()], true),
                EnumTest::In(vs) => (vs.clone(), false),
                EnumTest::NotIn(vs) => (vs.clone(), true),
                EnumTest::IsEmpty | EnumTest::NotEmpty => {
                    push_source_test(sql, r, &src, &ValueTest::Present, matches!(t, EnumTest::IsEmpty));
                    return;
                }
            };
            match field {
                Field::Consent(purpose) => push_consent(sql, r, *purpose, &values, negated),
                _ => push_source_test(sql, r, &src, &ValueTest::OneOf(&values), negated),
            }
        }
    }
}

/// Pushes `node` as a boolean expression over the readers alias `r`.
fn push_node(sql: &mut Sql, r: &str, node: &Node) {
    match node {
        Node::All(children) | Node::Any(children) => {
            let joiner = if matches!(node, Node::All(_)) { " AND " } else { " OR " };
            sql.push("(");
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                push_node(sql, r, child);
            }
            sql.push(")");
        }
        Node::Cond(c) => push_condition(sql, r, c),
    }
}

/// How a segment's members are found: its snapshot, or its filter.
enum Members {
    Frozen(i64),
    Live(Filter),
}

impl Members {
    /// Pushes "reader `r` is a member".
    fn push_condition(&self, sql: &mut Sql, r: &str) {
        match self {
            Members::Frozen(id) => {
                sql.push(r).push(".id IN (SELECT reader_id FROM segment_members WHERE segment_id = ").bind(*id).push(")");
            }
            Members::Live(filter) => push_node(sql, r, filter.root()),
        }
    }
}

/// The reader list's order: most recently updated first unless a sort is chosen.
fn order_by(sort: Option<ReaderSort>, desc: bool) -> String {
    let desc = sort.is_none() || desc;
    let sort = sort.unwrap_or_default();
    let dir = if desc { "DESC" } else { "ASC" };
    match sort {
        ReaderSort::Name => format!("r.pinyin {dir}, r.id {dir}"),
        ReaderSort::CardNo => format!("r.card_no {dir}"),
        ReaderSort::Updated => format!("r.updated_at {dir}, r.id {dir}"),
        ReaderSort::Created => format!("r.id {dir}"),
    }
}

impl Store {
    /// The categories, staff and custom attributes filters are parsed against.
    pub async fn filter_vocabulary(&self) -> Result<Vocabulary> {
        let categories = self.categories().await?.into_iter().map(|c| (c.code, Msg::new(c.name_zh, c.name_en))).collect();
        let owners = self.users().await?.into_iter().map(|u| (u.username, u.display_name)).collect();
        let attributes = self.attribute_defs().await?.into_iter().map(|(_, d)| d).collect();
        Ok(Vocabulary { categories, owners, attributes })
    }

    /// Parses a filter against the current configuration.
    pub async fn parse_filter(&self, json: &serde_json::Value) -> Result<Filter> {
        Filter::parse(json, &self.filter_vocabulary().await?).map_err(StoreError::Invalid)
    }

    async fn members_of(&self, segment: &Segment) -> Result<Members> {
        match segment.frozen_at {
            Some(_) => Ok(Members::Frozen(segment.id)),
            None => Ok(Members::Live(self.parse_filter(&segment.filter).await?)),
        }
    }

    /// Appends to `sql` a subquery selecting the ids of `segment_id`'s members (one column,
    /// `reader_id`): the frozen snapshot, or the live filter compiled to SQL. Callers wrap it:
    /// `… WHERE r.id IN (` + this + `)`. Binds continue `sql`'s numbering.
    pub(crate) async fn push_segment_members(&self, sql: &mut Sql, segment_id: i64) -> Result<()> {
        let segment = self.segment(segment_id).await?;
        match self.members_of(&segment).await? {
            Members::Frozen(id) => {
                sql.push("SELECT reader_id FROM segment_members WHERE segment_id = ").bind(id);
            }
            live => {
                sql.push("SELECT sm.id AS reader_id FROM readers sm WHERE ");
                live.push_condition(sql, "sm");
            }
        }
        Ok(())
    }

    /// How many readers match a filter that may not be saved yet (one `COUNT`). `Invalid` with
    /// the paths of the problems when it does not parse.
    pub async fn count_filter(&self, filter: &serde_json::Value) -> Result<i64> {
        let filter = self.parse_filter(filter).await?;
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM readers r WHERE ");
        push_node(&mut sql, "r", filter.root());
        Ok(sql.query().fetch_one(&self.pool).await?.try_get("n")?)
    }

    pub async fn segment(&self, id: i64) -> Result<Segment> {
        load(&mut *self.pool.acquire().await?, id).await
    }

    /// Every segment by name, with its member count.
    pub async fn segments(&self) -> Result<Vec<ListedSegment>> {
        let rows = sqlx::query(&format!("{SELECT_SEGMENT} ORDER BY s.name")).fetch_all(&self.pool).await?;
        let vocab = self.filter_vocabulary().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let segment = segment_row(row)?;
            let members = match (segment.frozen_count, Filter::parse(&segment.filter, &vocab)) {
                (Some(n), _) if segment.frozen_at.is_some() => Some(n),
                (_, Ok(filter)) => {
                    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM readers r WHERE ");
                    push_node(&mut sql, "r", filter.root());
                    Some(sql.query().fetch_one(&self.pool).await?.try_get("n")?)
                }
                (_, Err(_)) => None,
            };
            out.push(ListedSegment { segment, members });
        }
        Ok(out)
    }

    /// Saves a new segment. `Invalid` names the problems (`name`, `description`, filter paths);
    /// `Conflict` when the name is taken.
    pub async fn create_segment(&self, actor: &Actor, input: &SegmentInput) -> Result<Segment> {
        let (name, description, filter) = parse_input(input, &self.filter_vocabulary().await?)?;
        let mut tx = self.begin().await?;
        let now = now_text();
        let inserted = sqlx::query(
            "INSERT INTO segments (name, description, filter_json, created_by, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $5, 1) RETURNING id",
        )
        .bind(name.clone())
        .bind(description)
        .bind(filter.to_json().to_string())
        .bind(actor.user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(r) => r.try_get("id")?,
            Err(e) if is_unique_violation(&e) => return Err(duplicate_name(&name)),
            Err(e) => return Err(e.into()),
        };
        let after = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "segment.create",
                entity: "segment",
                entity_id: Some(id.to_string()),
                summary: after.name.clone(),
                before: None,
                after: to_json(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Replaces a segment's name, description and filter if it is still at `expected_version`.
    /// A frozen segment keeps its snapshot, so its filter cannot change until it is unfrozen.
    pub async fn update_segment(&self, actor: &Actor, id: i64, expected_version: i64, input: &SegmentInput) -> Result<Segment> {
        let (name, description, filter) = parse_input(input, &self.filter_vocabulary().await?)?;
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if before.version != expected_version {
            return Err(stale(before.version, expected_version));
        }
        let filter = filter.to_json();
        if before.frozen_at.is_some() && before.filter != filter {
            return Err(StoreError::Conflict(Msg::new(
                "该分组已冻结，成员固定；请先解除冻结再修改条件",
                "the segment is frozen (its members are fixed); unfreeze it before changing its filter",
            )));
        }
        let updated = sqlx::query(
            "UPDATE segments SET name = $1, description = $2, filter_json = $3, updated_at = $4, version = version + 1 WHERE id = $5 AND version = $6",
        )
        .bind(name.clone())
        .bind(description)
        .bind(filter.to_string())
        .bind(now_text())
        .bind(id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await;
        match updated {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => return Err(stale(before.version + 1, expected_version)),
            Err(e) if is_unique_violation(&e) => return Err(duplicate_name(&name)),
            Err(e) => return Err(e.into()),
        }
        let after = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "segment.update",
                entity: "segment",
                entity_id: Some(id.to_string()),
                summary: after.name.clone(),
                before: to_json(&before),
                after: to_json(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a segment (and its snapshot). Refused with `Conflict` while a campaign uses it,
    /// or when `expected_version` is given and stale.
    pub async fn delete_segment(&self, actor: &Actor, id: i64, expected_version: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if let Some(v) = expected_version.filter(|v| *v != before.version) {
            return Err(stale(before.version, v));
        }
        let campaigns: Vec<String> = sqlx::query("SELECT name FROM campaigns WHERE segment_id = $1 ORDER BY id LIMIT 5")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<_, _>>()?;
        if !campaigns.is_empty() {
            return Err(in_use(&campaigns));
        }
        match sqlx::query("DELETE FROM segments WHERE id = $1").bind(id).execute(&mut *tx).await {
            Ok(_) => {}
            // A campaign created since the check above.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => return Err(in_use(&[])),
            Err(e) => return Err(e.into()),
        }
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "segment.delete",
                entity: "segment",
                entity_id: Some(id.to_string()),
                summary: before.name.clone(),
                before: to_json(&before),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a snapshot of the members: from now on the segment's members are these readers,
    /// whatever happens to their records. `Conflict` when already frozen.
    pub async fn freeze_segment(&self, actor: &Actor, id: i64) -> Result<Segment> {
        let vocab = self.filter_vocabulary().await?;
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if before.frozen_at.is_some() {
            return Err(already(true));
        }
        let filter = Filter::parse(&before.filter, &vocab).map_err(StoreError::Invalid)?;
        let mut insert = Sql::new("INSERT INTO segment_members (segment_id, reader_id) SELECT ");
        insert.bind(id).push(", r.id FROM readers r WHERE ");
        push_node(&mut insert, "r", filter.root());
        let count = insert.query().execute(&mut *tx).await?.rows_affected() as i64;
        let now = now_text();
        sqlx::query("UPDATE segments SET frozen_at = $1, member_count = $2, updated_at = $1, version = version + 1 WHERE id = $3")
            .bind(now)
            .bind(count)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let after = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "segment.freeze",
                entity: "segment",
                entity_id: Some(id.to_string()),
                summary: format!("{}: {count} readers", after.name),
                before: to_json(&before),
                after: to_json(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Drops the snapshot: the segment's filter decides its members again. `Conflict` when it
    /// is not frozen.
    pub async fn unfreeze_segment(&self, actor: &Actor, id: i64) -> Result<Segment> {
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if before.frozen_at.is_none() {
            return Err(already(false));
        }
        sqlx::query("DELETE FROM segment_members WHERE segment_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE segments SET frozen_at = NULL, member_count = NULL, updated_at = $1, version = version + 1 WHERE id = $2")
            .bind(now_text())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let after = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "segment.unfreeze",
                entity: "segment",
                entity_id: Some(id.to_string()),
                summary: after.name.clone(),
                before: to_json(&before),
                after: to_json(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// A page of the segment's members, sorted like the reader list.
    pub async fn segment_members(&self, id: i64, q: &MemberQuery) -> Result<Page<Member>> {
        let segment = self.segment(id).await?;
        let members = self.members_of(&segment).await?;
        let per_page = q.per_page.clamp(1, 200);
        let page = q.page.max(1);
        let mut filter = Sql::new(" WHERE ");
        members.push_condition(&mut filter, "r");
        let list = filter.with_text(&format!(
            "SELECT {SUMMARY_COLUMNS}{CONTACT_COLUMNS}{FROM_READERS}{} ORDER BY {} LIMIT {per_page} OFFSET {}",
            filter.text,
            order_by(q.sort, q.desc),
            (page - 1) * per_page
        ));
        let rows = list.query().fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(|row| Ok(Member { reader: summary(row)?, email: row.try_get("email")?, mobile: row.try_get("mobile")? }))
            .collect::<Result<Vec<_>>>()?;
        let total = if page == 1 && (items.len() as i64) < per_page {
            items.len() as i64
        } else {
            filter
                .with_text(&format!("SELECT COUNT(*) AS n FROM readers r{}", filter.text))
                .query()
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?
        };
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    /// The ids of the segment's members, in id order.
    async fn member_ids(&self, members: &Members) -> Result<Vec<i64>> {
        let mut sql = Sql::new("SELECT r.id FROM readers r WHERE ");
        members.push_condition(&mut sql, "r");
        sql.push(" ORDER BY r.id");
        sql.query().fetch_all(&self.pool).await?.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Passes every member to `row`, in card-holder order of creation, a page at a time, then
    /// writes the export to the audit log (who, how many). Returns the number exported.
    pub async fn export_segment(&self, actor: &Actor, id: i64, mut row: impl FnMut(ExportRow) + Send) -> Result<i64> {
        let segment = self.segment(id).await?;
        let members = self.members_of(&segment).await?;
        let mut last = 0i64;
        let mut count = 0i64;
        loop {
            let mut sql = Sql::new(&format!(
                "SELECT r.id, r.card_no, r.name, r.affiliation, r.status, c.code AS category_code, c.name_zh AS category_zh, c.name_en AS category_en{CONTACT_COLUMNS} \
                 FROM readers r JOIN categories c ON c.id = r.category_id WHERE r.id > "
            ));
            sql.bind(last).push(" AND ");
            members.push_condition(&mut sql, "r");
            sql.push(&format!(" ORDER BY r.id LIMIT {BATCH}"));
            let rows = sql.query().fetch_all(&self.pool).await?;
            for r in &rows {
                last = r.try_get("id")?;
                let status: String = r.try_get("status")?;
                row(ExportRow {
                    card_no: r.try_get("card_no")?,
                    name: r.try_get("name")?,
                    category: CategoryRef {
                        code: r.try_get("category_code")?,
                        name_zh: r.try_get("category_zh")?,
                        name_en: r.try_get("category_en")?,
                    },
                    affiliation: r.try_get("affiliation")?,
                    status: ReaderStatus::parse(&status).map_err(|m| StoreError::Other(m.en))?,
                    email: r.try_get("email")?,
                    mobile: r.try_get("mobile")?,
                });
                count += 1;
            }
            if rows.len() < BATCH {
                break;
            }
        }
        self.audit_access(
            actor,
            Change {
                action: "segment.export",
                entity: "segment",
                entity_id: Some(id.to_string()),
                summary: format!("{count} readers exported from {} by {}", segment.name, actor.name),
                before: None,
                after: Some(serde_json::json!({ "count": count, "segment": segment.name })),
            },
        )
        .await?;
        Ok(count)
    }

    /// Adds `tag` to every member that lacks it, in one transaction: each changed reader gets
    /// version + 1 and a `reader.update` audit row with its tags before and after (as a tag edit
    /// on the reader's page does), and the segment one `segment.tag` row. Returns how many
    /// readers changed. `Invalid` on `tag` for a bad tag.
    pub async fn tag_segment(&self, actor: &Actor, id: i64, tag: &str) -> Result<usize> {
        let tag = parse_tag(tag).map_err(|m| StoreError::invalid("tag", m))?;
        let segment = self.segment(id).await?;
        let members = self.members_of(&segment).await?;
        let mut tx = self.begin().await?;
        let mut sql = Sql::new("SELECT r.id, r.card_no, r.name, r.version FROM readers r WHERE ");
        members.push_condition(&mut sql, "r");
        sql.push(" AND r.id NOT IN (SELECT reader_id FROM reader_tags WHERE tag = ").bind(tag.as_str()).push(") ORDER BY r.id");
        let targets: Vec<(i64, String, String, i64)> = sql
            .query()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("card_no")?, r.try_get("name")?, r.try_get("version")?)))
            .collect::<Result<_>>()?;
        let now = now_text();
        for chunk in targets.chunks(BATCH / 5) {
            let ids = || chunk.iter().map(|t| Param::from(t.0));
            let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
            let mut q = Sql::new("SELECT reader_id, tag FROM reader_tags WHERE reader_id IN (");
            for r in q.bind_list(ids()).push(") ORDER BY reader_id, tag").query().fetch_all(&mut *tx).await? {
                tags.entry(r.try_get("reader_id")?).or_default().push(r.try_get("tag")?);
            }
            let mut audit_rows = Sql::new(
                "INSERT INTO audit_log (at, actor_id, actor_name, origin, action, entity, entity_id, summary, before_json, after_json) VALUES ",
            );
            for (i, (reader_id, card_no, name, version)) in chunk.iter().enumerate() {
                let before = tags.remove(reader_id).unwrap_or_default();
                let mut after = before.clone();
                after.push(tag.clone());
                if i > 0 {
                    audit_rows.push(", ");
                }
                audit_rows.push("(").bind_list([
                    Param::from(now.as_str()),
                    Param::from(actor.user_id),
                    Param::from(actor.name.as_str()),
                    Param::from(actor.origin.as_str()),
                    Param::from("reader.update"),
                    Param::from("reader"),
                    Param::from(reader_id.to_string()),
                    Param::from(format!("{card_no} {name}: +{tag} ({})", segment.name)),
                    Param::from(serde_json::json!({ "tags": before, "version": version }).to_string()),
                    Param::from(serde_json::json!({ "tags": after, "version": version + 1 }).to_string()),
                ]);
                audit_rows.push(")");
            }
            audit_rows.query().execute(&mut *tx).await?;
            let mut bump = Sql::new("UPDATE readers SET version = version + 1, updated_at = ");
            bump.bind(now.as_str()).push(" WHERE id IN (").bind_list(ids()).push(")");
            bump.query().execute(&mut *tx).await?;
            let mut insert = Sql::new("INSERT INTO reader_tags (reader_id, tag) SELECT id, ");
            insert.bind(tag.as_str()).push(" FROM readers WHERE id IN (").bind_list(ids()).push(")");
            insert.query().execute(&mut *tx).await?;
        }
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "segment.tag",
                entity: "segment",
                entity_id: Some(id.to_string()),
                summary: format!("+{tag}: {} readers of {}", targets.len(), segment.name),
                before: None,
                after: Some(serde_json::json!({ "tag": tag, "readers": targets.len() })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(targets.len())
    }

    /// Hands every member over to `to_owner` through [`Store::hand_over`] (which audits each
    /// reader and notifies the new owner). Returns how many readers changed owner.
    pub async fn hand_over_segment(&self, actor: &Actor, id: i64, to_owner: Option<&str>, reason: &str) -> Result<usize> {
        let segment = self.segment(id).await?;
        let members = self.members_of(&segment).await?;
        let ids = self.member_ids(&members).await?;
        self.hand_over(actor, &ids, to_owner, reason).await
    }
}

/// A segment a campaign refers to cannot go: the campaign would lose its recipients' history.
fn in_use(campaigns: &[String]) -> StoreError {
    let (zh, en) = if campaigns.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("（{}）", campaigns.join("、")), format!(" ({})", campaigns.join(", ")))
    };
    StoreError::Conflict(Msg::new(
        format!("该读者分组正被群发任务使用{zh}，不能删除"),
        format!("the segment is used by campaigns{en} and cannot be deleted"),
    ))
}

fn already(frozen: bool) -> StoreError {
    StoreError::Conflict(if frozen {
        Msg::new("该分组已冻结", "the segment is already frozen")
    } else {
        Msg::new("该分组未冻结", "the segment is not frozen")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lector_domain::reader::ReaderDraft;
    use serde_json::json;

    /// The campaigns' `INSERT … SELECT` wraps the members subquery after binds of its own: the
    /// subquery must continue their numbering, live and frozen.
    #[tokio::test]
    async fn the_members_subquery_composes_after_other_binds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
        let actor = Actor::system("test");
        for (card, tags) in [("A1", vec!["志愿者".to_string()]), ("A2", vec![]), ("A3", vec!["志愿者".to_string()])] {
            let d =
                ReaderDraft { card_no: card.into(), name: "张三".into(), category: "undergraduate".into(), tags, ..Default::default() };
            store.create_reader(&actor, &d.parse(today()).unwrap()).await.unwrap();
        }
        let filter = json!({"all": [{"field": "tag", "op": "eq", "value": "志愿者"}]});
        let seg = store.create_segment(&actor, &SegmentInput { name: "志愿者".into(), description: String::new(), filter }).await.unwrap();
        let count = |store: Store| async move {
            let mut sql = Sql::new("SELECT COUNT(*) AS n FROM readers r WHERE r.card_no <> ");
            sql.bind("A3").push(" AND r.id IN (");
            store.push_segment_members(&mut sql, seg.id).await.unwrap();
            sql.push(")");
            sql.query().fetch_one(&store.pool).await.unwrap().try_get::<i64, _>("n").unwrap()
        };
        assert_eq!(count(store.clone()).await, 1);
        store.freeze_segment(&actor, seg.id).await.unwrap();
        assert_eq!(count(store.clone()).await, 1);
        let mut missing = Sql::new("SELECT 1");
        assert!(matches!(store.push_segment_members(&mut missing, 999).await, Err(StoreError::NotFound)));
    }
}
