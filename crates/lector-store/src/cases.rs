//! Service cases: filing (staff, portal, API), the workflow with its event history, department
//! queues, deadlines on the working calendar, escalation, the reader's rating, and the figures
//! of the service dashboard.
//!
//! CONTRACT: the types and signatures below are what the web layer builds on. Local times
//! (`due_at`) are `YYYY-MM-DD HH:MM` in the library's time zone (the server's local time);
//! other times are UTC RFC 3339 like everywhere in the store.
//!
//! Settings live in the `settings` table as JSON: `case.workflow.<kind>` (a [`Workflow`]),
//! `case.service_levels.<kind>` (a [`ServiceLevels`]; the defaults of
//! [`lector_domain::case::default_service_hours`] until set) and `case.calendar` (a
//! [`WorkCalendar`]). A deadline is computed once, at triage: changing a service level or the
//! calendar leaves the deadlines of cases already triaged as they are.
//!
//! While a case awaits the reader (a question from staff) its deadline clock stops: when the
//! reader answers, or staff withdraw the question, the deadline moves later by the working time
//! (on the calendar of that moment) between the question and the answer.

use crate::audit::{self, Change};
use crate::db::{flag, is_unique_violation, Sql};
use crate::{now_text, Actor, Page, Result, Store, StoreError};
use chrono::NaiveDateTime;
use lector_domain::attribute::parse_code;
use lector_domain::case::{
    next_status, CaseAction, CaseInput, CaseKind, CaseStatus, Priority, RatingDraft, ServiceLevels, TriageOutcome, WorkCalendar, Workflow,
};
use lector_domain::contact::{lookup_key, ContactKind};
use lector_domain::messaging::Trigger;
use lector_domain::{text, Msg};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use std::collections::BTreeMap;

/// Where a case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseSource {
    Staff,
    Portal,
    Api,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rating {
    pub satisfaction: u8,
    pub recommend: Option<u8>,
    pub comment: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Case {
    pub id: i64,
    /// Shown to readers and staff: `GD` + year + sequence, e.g. `GD2026-000123`.
    pub number: String,
    pub kind: CaseKind,
    pub status: CaseStatus,
    pub priority: Priority,
    /// Category code (set by admins per kind), once triaged.
    pub category: Option<String>,
    pub subject: String,
    pub body: String,
    pub source: CaseSource,
    /// The reader, when the case names a known card number.
    pub reader_id: Option<i64>,
    pub reader_card_no: Option<String>,
    pub reader_name: Option<String>,
    pub contact_name: Option<String>,
    pub contact: Option<String>,
    /// Code of the responsible library department, once assigned.
    pub department: Option<String>,
    /// User name of the department member who claimed it.
    pub assignee: Option<String>,
    pub proposal: Option<String>,
    pub reply: Option<String>,
    pub duplicate_of: Option<i64>,
    /// Deadline from the service level of its kind and priority, on the working calendar.
    pub due_at: Option<String>,
    pub escalated: bool,
    pub created_at: String,
    pub updated_at: String,
    /// When the first staff action after receipt happened (first response).
    pub first_response_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    pub rating: Option<Rating>,
    /// While awaiting the reader: the question asked, the status an answer returns the case
    /// to, and since when (local `YYYY-MM-DD HH:MM`) its deadline clock has stopped.
    pub question: Option<String>,
    pub resume_status: Option<CaseStatus>,
    pub awaiting_since: Option<String>,
    pub version: i64,
}

/// One step in a case's history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaseEvent {
    pub id: i64,
    pub at: String,
    /// User name, `portal` (filed or rated through the portal), [`READER_ACTOR`] (an answer sent
    /// through the tracking page) or `system`.
    pub actor: String,
    /// `create`, `triage`, `assign`, `claim`, `propose`, `approve`, `reject_proposal`, `resolve`,
    /// `close`, `reopen`, `request_info`, `reader_reply`, `withdraw_question`, `rate`, `escalate`.
    pub action: String,
    pub from: Option<CaseStatus>,
    pub to: CaseStatus,
    pub comment: Option<String>,
}

/// The actor of the events the reader causes through the tracking page (an answer).
pub const READER_ACTOR: &str = "reader";

/// How long [`Store::service_stats_cached`] reuses figures.
pub const STATS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// The last dashboard figures and what they were computed for.
#[derive(Debug)]
pub(crate) struct CachedStats {
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    at: std::time::Instant,
    stats: ServiceStats,
}

/// The dashboard's last figures, and a gate so that only one request computes them at a time.
#[derive(Debug, Default)]
pub(crate) struct StatsCache {
    last: std::sync::Mutex<Option<CachedStats>>,
    computing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Filters over cases, newest first unless `by_due` (earliest deadline first).
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    pub kind: Option<CaseKind>,
    pub status: Option<CaseStatus>,
    /// Everything not closed.
    pub open_only: bool,
    /// Department code (a department's queue).
    pub department: Option<String>,
    /// User name of the assignee ("my cases").
    pub assignee: Option<String>,
    pub reader_id: Option<i64>,
    /// Open cases past their deadline at this local time.
    pub overdue_at: Option<chrono::NaiveDateTime>,
    /// Created on or after / before the end of these local dates.
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    pub by_due: bool,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaseCategory {
    pub kind: CaseKind,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

/// A count with its label codes, for the dashboard tables and charts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Count {
    pub key: String,
    pub count: i64,
}

/// Average satisfaction of a group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SatisfactionRow {
    pub key: String,
    pub ratings: i64,
    /// Mean of 1–5.
    pub mean: f64,
}

/// The service dashboard's figures over cases created in a period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceStats {
    pub total: i64,
    pub by_kind: Vec<Count>,
    /// Keys `kind/category` (`complaint/noise`; `complaint/-` when not triaged).
    pub by_category: Vec<Count>,
    pub by_status: Vec<Count>,
    /// Median hours from receipt to the first staff action, and to resolution.
    pub median_first_response_hours: Option<f64>,
    pub median_resolution_hours: Option<f64>,
    /// Share of resolved cases resolved by their deadline, 0–1.
    pub deadline_compliance: Option<f64>,
    pub satisfaction_by_department: Vec<SatisfactionRow>,
    pub satisfaction_by_category: Vec<SatisfactionRow>,
    /// Net promoter score over ratings with `recommend`: % 9–10 minus % 0–6.
    pub nps: Option<f64>,
}

impl CaseSource {
    pub fn code(self) -> &'static str {
        match self {
            CaseSource::Staff => "staff",
            CaseSource::Portal => "portal",
            CaseSource::Api => "api",
        }
    }

    fn parse(code: &str) -> Option<CaseSource> {
        [CaseSource::Staff, CaseSource::Portal, CaseSource::Api].into_iter().find(|s| s.code() == code)
    }
}

type Tx = Transaction<'static, Any>;

/// How long a tracking token keeps working after its case closes.
const TOKEN_DAYS_AFTER_CLOSING: i64 = 180;
/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;
const CALENDAR_KEY: &str = "case.calendar";
/// The prefix of idempotency keys of answers sent through the portal.
const REPLY_KEY_PREFIX: &str = "portal-reply:";
const LOCAL_FORMAT: &str = "%Y-%m-%d %H:%M";

const CASE_SELECT: &str = "SELECT c.id, c.number, c.kind, c.status, c.priority, c.category, c.subject, c.body, c.source, c.reader_id, \
    COALESCE(r.card_no, c.card_no) AS reader_card_no, r.name AS reader_name, c.contact_name, c.contact, d.code AS department, \
    u.username AS assignee, c.proposal, c.reply, c.duplicate_of, c.due_at, c.escalated, c.created_at, c.updated_at, \
    c.first_response_at, c.resolved_at, c.closed_at, c.rating_satisfaction, c.rating_recommend, c.rating_comment, c.rated_at, \
    c.question, c.resume_status, c.paused_local, c.version, c.department_id, c.token_expires_at \
    FROM cases c LEFT JOIN readers r ON r.id = c.reader_id LEFT JOIN departments d ON d.id = c.department_id \
    LEFT JOIN users u ON u.id = c.assignee_id";

fn code<T>(row: &AnyRow, col: &str, parse: fn(&str) -> Result<T, Msg>) -> Result<T> {
    let v: String = row.try_get(col)?;
    parse(&v).map_err(|m| StoreError::Other(format!("stored {col}: {}", m.en)))
}

fn case_row(row: &AnyRow) -> Result<Case> {
    let source: String = row.try_get("source")?;
    let satisfaction: Option<i64> = row.try_get("rating_satisfaction")?;
    let rating = match satisfaction {
        None => None,
        Some(s) => Some(Rating {
            satisfaction: s as u8,
            recommend: row.try_get::<Option<i64>, _>("rating_recommend")?.map(|r| r as u8),
            comment: row.try_get("rating_comment")?,
            at: row.try_get::<Option<String>, _>("rated_at")?.unwrap_or_default(),
        }),
    };
    Ok(Case {
        id: row.try_get("id")?,
        number: row.try_get::<Option<String>, _>("number")?.unwrap_or_default(),
        kind: code(row, "kind", CaseKind::parse)?,
        status: code(row, "status", CaseStatus::parse)?,
        priority: code(row, "priority", Priority::parse)?,
        category: row.try_get("category")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        source: CaseSource::parse(&source).ok_or_else(|| StoreError::Other(format!("stored source: '{source}'")))?,
        reader_id: row.try_get("reader_id")?,
        reader_card_no: row.try_get("reader_card_no")?,
        reader_name: row.try_get("reader_name")?,
        contact_name: row.try_get("contact_name")?,
        contact: row.try_get("contact")?,
        department: row.try_get("department")?,
        assignee: row.try_get("assignee")?,
        proposal: row.try_get("proposal")?,
        reply: row.try_get("reply")?,
        duplicate_of: row.try_get("duplicate_of")?,
        due_at: row.try_get("due_at")?,
        escalated: flag(row, "escalated")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        first_response_at: row.try_get("first_response_at")?,
        resolved_at: row.try_get("resolved_at")?,
        closed_at: row.try_get("closed_at")?,
        rating,
        question: row.try_get("question")?,
        resume_status: row
            .try_get::<Option<String>, _>("resume_status")?
            .map(|s| CaseStatus::parse(&s))
            .transpose()
            .map_err(|m| StoreError::Other(format!("stored resume_status: {}", m.en)))?,
        awaiting_since: row.try_get("paused_local")?,
        version: row.try_get("version")?,
    })
}

async fn load_case(conn: &mut AnyConnection, id: i64) -> Result<Case> {
    let row = sqlx::query(&format!("{CASE_SELECT} WHERE c.id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    case_row(&row.ok_or(StoreError::NotFound)?)
}

/// The case and its department id.
async fn load_case_for_update(conn: &mut AnyConnection, id: i64) -> Result<(Case, Option<i64>)> {
    let row = sqlx::query(&format!("{CASE_SELECT} WHERE c.id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    let row = row.ok_or(StoreError::NotFound)?;
    Ok((case_row(&row)?, row.try_get("department_id")?))
}

fn local_now() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

fn local_text(t: NaiveDateTime) -> String {
    t.format(LOCAL_FORMAT).to_string()
}

/// UTC text `days` days after now.
fn utc_in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

fn json<T: Serialize>(v: &T) -> Option<serde_json::Value> {
    Some(serde_json::to_value(v).unwrap_or_default())
}

fn workflow_key(kind: CaseKind) -> String {
    format!("case.workflow.{}", kind.code())
}

async fn setting<T: serde::de::DeserializeOwned>(conn: &mut AnyConnection, key: &str) -> Result<Option<T>> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key.to_string()).fetch_optional(&mut *conn).await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let v: String = r.try_get("value")?;
            serde_json::from_str(&v).map(Some).map_err(|e| StoreError::Other(format!("stored setting {key}: {e}")))
        }
    }
}

async fn put_setting(tx: &mut Tx, key: &str, value: &serde_json::Value) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key.to_string())
    .bind(value.to_string())
    .bind(now_text())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn workflow_in(conn: &mut AnyConnection, kind: CaseKind) -> Result<Workflow> {
    Ok(setting(conn, &workflow_key(kind)).await?.unwrap_or_else(|| Workflow::default_for(kind)))
}

fn service_levels_key(kind: CaseKind) -> String {
    format!("case.service_levels.{}", kind.code())
}

async fn service_levels_in(conn: &mut AnyConnection, kind: CaseKind) -> Result<ServiceLevels> {
    Ok(setting(conn, &service_levels_key(kind)).await?.unwrap_or_else(|| ServiceLevels::default_for(kind)))
}

async fn calendar_in(conn: &mut AnyConnection) -> Result<WorkCalendar> {
    Ok(setting(conn, CALENDAR_KEY).await?.unwrap_or_else(WorkCalendar::standard))
}

async fn record_event(
    tx: &mut Tx,
    case_id: i64,
    actor: &str,
    action: &str,
    from: Option<CaseStatus>,
    to: CaseStatus,
    comment: Option<String>,
) -> Result<()> {
    record_keyed_event(tx, case_id, actor, action, (from, to), comment, None).await
}

/// An event with the idempotency key of the form that caused it (unique across events).
async fn record_keyed_event(
    tx: &mut Tx,
    case_id: i64,
    actor: &str,
    action: &str,
    (from, to): (Option<CaseStatus>, CaseStatus),
    comment: Option<String>,
    key: Option<String>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO case_events (case_id, at, actor, action, from_status, to_status, comment, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(case_id)
    .bind(now_text())
    .bind(actor.to_string())
    .bind(action.to_string())
    .bind(from.map(|s| s.code().to_string()))
    .bind(to.code().to_string())
    .bind(comment)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether case `id` already has the event sent with idempotency key `key`.
async fn has_keyed_event(conn: &mut AnyConnection, id: i64, key: &str) -> Result<bool> {
    let row = sqlx::query("SELECT id FROM case_events WHERE case_id = $1 AND idempotency_key = $2")
        .bind(id)
        .bind(key.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// `YYYY-MM-DD HH:MM` local text back to a time.
fn parse_local(v: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(v, LOCAL_FORMAT).ok()
}

/// "3 h 20 min" of working time.
fn working_time_text(d: chrono::Duration) -> String {
    let minutes = d.num_minutes();
    format!("{} h {} min", minutes / 60, minutes % 60)
}

async fn notify(tx: &mut Tx, user_id: i64, text: &Msg, link: &str) -> Result<()> {
    sqlx::query("INSERT INTO notifications (user_id, text_zh, text_en, link, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(user_id)
        .bind(text.zh.clone())
        .bind(text.en.clone())
        .bind(link.to_string())
        .bind(now_text())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ends a wait for the reader at local time `now`: the deadline (if the case has one yet) moves
/// later by the working time since the question, and the question is cleared. Returns a note for
/// the audit summary.
async fn restart_clock(tx: &mut Tx, c: &mut Case, now: NaiveDateTime) -> Result<String> {
    let calendar = calendar_in(tx).await?;
    let waited = c.awaiting_since.as_deref().and_then(parse_local).map(|p| calendar.working_time_between(p, now));
    let mut note = String::new();
    if let (Some(waited), Some(due)) = (waited, c.due_at.as_deref().and_then(parse_local)) {
        let moved = local_text(calendar.add_working_time(due, waited));
        note = format!("; waited {} of working time, deadline {} → {moved}", working_time_text(waited), local_text(due));
        c.due_at = Some(moved);
    }
    c.question = None;
    c.resume_status = None;
    c.awaiting_since = None;
    Ok(note)
}

/// Tells the staff member who asked the reader's question that the answer has come.
async fn notify_asker(tx: &mut Tx, case: &Case) -> Result<()> {
    let row = sqlx::query(
        "SELECT id FROM users WHERE active = 1 AND username =
             (SELECT actor FROM case_events WHERE case_id = $1 AND action = $2 ORDER BY id DESC LIMIT 1)",
    )
    .bind(case.id)
    .bind("request_info".to_string())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = row {
        let text = Msg::new(
            format!("读者已回答工单 {} 的补充问题：{}", case.number, case.subject),
            format!("The reader answered your question on case {}: {}", case.number, case.subject),
        );
        notify(tx, r.try_get("id")?, &text, &format!("/cases/{}", case.id)).await?;
    }
    Ok(())
}

fn stale(current: &Case, expected: i64) -> StoreError {
    let status = current.status.label();
    StoreError::Conflict(Msg::new(
        format!(
            "工单 {} 已被他人修改（当前版本 {}，状态“{}”；你看到的是版本 {expected}），请刷新后重试",
            current.number, current.version, status.zh
        ),
        format!(
            "case {} was changed by someone else (now version {}, status {}; you saw version {expected}); reload and try again",
            current.number,
            current.version,
            current.status.code()
        ),
    ))
}

/// Optional free text as written (blank is `None`); see `text::prose`.
fn prose_opt(v: &Option<String>) -> Option<String> {
    v.as_deref().map(text::prose).filter(|s| !s.is_empty())
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Hours between two stored UTC times.
fn hours_between(from: &str, to: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(to).ok()?;
    Some((b - a).num_milliseconds() as f64 / 3_600_000.0)
}

fn counts(map: BTreeMap<String, i64>) -> Vec<Count> {
    let mut v: Vec<Count> = map.into_iter().map(|(key, count)| Count { key, count }).collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    v
}

fn satisfaction_rows(map: BTreeMap<String, (i64, i64)>) -> Vec<SatisfactionRow> {
    map.into_iter().map(|(key, (n, sum))| SatisfactionRow { key, ratings: n, mean: sum as f64 / n as f64 }).collect()
}

/// The reader a new case belongs to. Staff and API callers name the reader by card number. On the
/// portal a card number is only a claim: the case is linked when the reader filed it signed in,
/// or when the contact given is one the library has on file for that card; otherwise it stays
/// unlinked (staff see the card number), so nobody can put a case — and their contact details —
/// on another reader's portal page.
async fn linked_reader(tx: &mut Tx, actor: &Actor, source: CaseSource, card: &str, contact: Option<&str>) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT id FROM readers WHERE card_no = $1").bind(card.to_string()).fetch_optional(&mut **tx).await?;
    let Some(id) = row.map(|r| r.try_get::<i64, _>("id")).transpose()? else {
        return Ok(None);
    };
    if source != CaseSource::Portal || actor.reader_card() == Some(card) {
        return Ok(Some(id));
    }
    let Some(contact) = contact else {
        return Ok(None);
    };
    let email = lookup_key(ContactKind::Email, contact);
    let digits = lookup_key(ContactKind::Mobile, contact);
    let keys = [email.clone(), if digits.len() >= 7 { digits } else { email }];
    let on_file = sqlx::query("SELECT 1 AS hit FROM reader_contacts WHERE reader_id = $1 AND lookup IN ($2, $3)")
        .bind(id)
        .bind(keys[0].clone())
        .bind(keys[1].clone())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(on_file.map(|_| id))
}

impl Store {
    /// Files a case. With an `idempotency_key` seen before (the same form submitted twice), the
    /// first case is returned and no new one made. A portal case gets a tracking token: a random
    /// secret returned only here (its hash is stored) that lets the reader follow and rate it.
    /// A known `card_no` links the reader (on the portal only with proof: see `linked_reader`). Audited as `case.create`, event `create`.
    ///
    /// The repeated submission gets `None` for the token: only its hash is kept.
    pub async fn create_case(
        &self,
        actor: &Actor,
        input: &CaseInput,
        source: CaseSource,
        idempotency_key: Option<&str>,
    ) -> Result<(Case, Option<String>)> {
        let key = idempotency_key.map(str::trim).filter(|k| !k.is_empty()).map(str::to_string);
        if let Some(k) = &key {
            if k.chars().count() > MAX_IDEMPOTENCY_KEY {
                return Err(StoreError::invalid(
                    "idempotency_key",
                    Msg::new(
                        format!("幂等键最多 {MAX_IDEMPOTENCY_KEY} 个字符"),
                        format!("the idempotency key has at most {MAX_IDEMPOTENCY_KEY} characters"),
                    ),
                ));
            }
        }
        let mut tx = self.begin().await?;
        if let Some(k) = &key {
            let seen = sqlx::query("SELECT id FROM cases WHERE idempotency_key = $1").bind(k.clone()).fetch_optional(&mut *tx).await?;
            if let Some(row) = seen {
                let existing = load_case(&mut tx, row.try_get("id")?).await?;
                tx.rollback().await?;
                return Ok((existing, None));
            }
        }
        let reader_id = match &input.card_no {
            None => None,
            Some(card) => linked_reader(&mut tx, actor, source, card, input.contact.as_deref()).await?,
        };
        let (token, hash) = match source {
            CaseSource::Portal => {
                let (t, h) = new_token();
                (Some(t), Some(h))
            }
            _ => (None, None),
        };
        let now = now_text();
        let local = local_now();
        let inserted = sqlx::query(
            "INSERT INTO cases (kind, status, priority, subject, body, source, reader_id, card_no, contact_name, contact, escalated,
                 created_at, created_local, updated_at, token_hash, idempotency_key, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $11, $13, $14, 1) RETURNING id",
        )
        .bind(input.kind.code().to_string())
        .bind(CaseStatus::Received.code().to_string())
        .bind(Priority::Normal.code().to_string())
        .bind(input.subject.clone())
        .bind(input.body.clone())
        .bind(source.code().to_string())
        .bind(reader_id)
        .bind(input.card_no.clone())
        .bind(input.contact_name.clone())
        .bind(input.contact.clone())
        .bind(now.clone())
        .bind(local_text(local))
        .bind(hash)
        .bind(key.clone())
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id")?,
            Err(e) if key.is_some() && is_unique_violation(&e) => {
                // The same form, submitted at the same moment by a concurrent request that won.
                let _ = tx.rollback().await;
                let mut conn = self.pool.acquire().await?;
                let row =
                    sqlx::query("SELECT id FROM cases WHERE idempotency_key = $1").bind(key.clone()).fetch_optional(&mut *conn).await?;
                return match row {
                    Some(r) => Ok((load_case(&mut conn, r.try_get("id")?).await?, None)),
                    None => Err(e.into()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let number = format!("GD{}-{id:06}", local.format("%Y"));
        sqlx::query("UPDATE cases SET number = $1 WHERE id = $2").bind(number).bind(id).execute(&mut *tx).await?;
        let created = load_case(&mut tx, id).await?;
        let event_actor = if source == CaseSource::Portal { "portal".to_string() } else { actor.name.clone() };
        record_event(&mut tx, id, &event_actor, "create", None, CaseStatus::Received, None).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "case.create",
                entity: "case",
                entity_id: Some(id.to_string()),
                summary: format!("{} {} ({}): {}", created.number, created.kind.code(), source.code(), created.subject),
                before: None,
                after: json(&created),
            },
        )
        .await?;
        tx.commit().await?;
        self.notify_case_reader(&created, Trigger::CaseReceived, token.as_deref(), format!("trigger:case_received:{id}")).await;
        Ok((created, token))
    }

    pub async fn case(&self, id: i64) -> Result<Case> {
        let mut conn = self.pool.acquire().await?;
        load_case(&mut conn, id).await
    }

    /// The case a tracking token belongs to; `NotFound` for a forged or unknown token.
    ///
    /// A token stops working 180 days after its case closed.
    pub async fn case_by_token(&self, token: &str) -> Result<Case> {
        let mut conn = self.pool.acquire().await?;
        let id = token_case_id(&mut conn, token).await?;
        load_case(&mut conn, id).await
    }

    pub async fn cases(&self, q: &CaseQuery) -> Result<Page<Case>> {
        let page = q.page.max(1);
        let per_page = q.per_page.clamp(1, 200);
        let mut filter = Sql::new(" WHERE 1 = 1");
        if let Some(k) = q.kind {
            filter.push(" AND c.kind = ").bind(k.code());
        }
        if let Some(s) = q.status {
            filter.push(" AND c.status = ").bind(s.code());
        }
        // Statuses are listed rather than excluded (`IN`, not `<>`), so that the queue indexes
        // (department or assignee, status, due) are read only for the open cases, not for the
        // many closed ones.
        let status_in = |filter: &mut Sql, except: &[CaseStatus]| {
            filter.push(" AND c.status IN (");
            filter.bind_list(CaseStatus::ALL.iter().filter(|s| !except.contains(s)).map(|s| s.code().into()));
            filter.push(")");
        };
        if q.open_only {
            status_in(&mut filter, &[CaseStatus::Closed]);
        }
        if let Some(d) = q.department.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            filter.push(" AND c.department_id = (SELECT id FROM departments WHERE code = ").bind(d).push(")");
        }
        if let Some(a) = q.assignee.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            filter.push(" AND c.assignee_id = (SELECT id FROM users WHERE username = ").bind(a.to_lowercase()).push(")");
        }
        if let Some(r) = q.reader_id {
            filter.push(" AND c.reader_id = ").bind(r);
        }
        if let Some(t) = q.overdue_at {
            // A case awaiting the reader has its clock stopped.
            status_in(&mut filter, &[CaseStatus::AwaitingReader, CaseStatus::Resolved, CaseStatus::Closed]);
            filter.push(" AND c.due_at < ").bind(local_text(t));
        }
        if let Some(f) = q.from {
            filter.push(" AND c.created_local >= ").bind(f.format("%Y-%m-%d").to_string());
        }
        if let Some(t) = q.to.and_then(|t| t.succ_opt()) {
            filter.push(" AND c.created_local < ").bind(t.format("%Y-%m-%d").to_string());
        }
        let order = if q.by_due { "COALESCE(c.due_at, '9999'), c.id" } else { "c.id DESC" };
        // The page's ids are chosen on the narrow rows first; only those are joined and read in
        // full (a queue sorted by deadline otherwise sorts every open case with its texts).
        let list = filter.with_text(&format!(
            "{CASE_SELECT} WHERE c.id IN (SELECT c.id FROM cases c{} ORDER BY {order} LIMIT {per_page} OFFSET {}) ORDER BY {order}",
            filter.text,
            (page - 1) * per_page
        ));
        let rows = list.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(case_row).collect::<Result<Vec<_>>>()?;
        let total = if page == 1 && (items.len() as i64) < per_page {
            items.len() as i64
        } else {
            filter
                .with_text(&format!("SELECT COUNT(*) AS n FROM cases c{}", filter.text))
                .query()
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?
        };
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    /// Takes `action` on case `id` if it is still at `expected_version` and the workflow of its
    /// kind allows it (`lector_domain::case::next_status`); records the event and audit row
    /// (`case.<action>`) in the same transaction; sets the deadline when triaged (from the kind's
    /// service levels), the department on assign, the assignee on claim, first_response_at on
    /// the first staff action. Refusals (`Conflict` for an illegal transition or a stale version,
    /// `Invalid` for an unknown department, category or duplicate case) change nothing. The
    /// reader is told of the steps that matter through the case's tracking page (and messages
    /// once they exist).
    ///
    /// Asking the reader (`request_info`, only on portal cases: the question is shown on the
    /// tracking page) stops the deadline clock; the reader's answer
    /// ([`Store::answer_case_question`]) or `withdraw_question` returns the case to the status it
    /// was asked in and moves the deadline later by the working time spent waiting.
    ///
    /// Role checks (who may approve) are the web layer's; the store checks that a claiming user
    /// belongs to the case's department (users without a department, e.g. admins, may claim).
    /// Reopening clears the resolution and the rating (both stay in the event history) so the
    /// reader can rate the new answer.
    pub async fn act_on_case(&self, actor: &Actor, id: i64, action: &CaseAction, expected_version: i64) -> Result<Case> {
        action.check().map_err(StoreError::Invalid)?;
        let mut tx = self.begin().await?;
        let (before, before_dept) = load_case_for_update(&mut tx, id).await?;
        if before.version != expected_version {
            return Err(stale(&before, expected_version));
        }
        let after = self.apply_action(&mut tx, actor, &actor.name, (before, before_dept), action, None).await?;
        tx.commit().await?;
        let trigger = match action {
            CaseAction::RequestInfo { .. } => Some(Trigger::CaseNeedsInfo),
            CaseAction::Resolve { .. } => Some(Trigger::CaseResolved),
            _ => None,
        };
        if let Some(t) = trigger {
            self.notify_case_reader(&after, t, None, format!("trigger:{}:{id}:v{}", t.code(), after.version)).await;
        }
        Ok(after)
    }

    /// The reader answers the open question of the case whose tracking token is `token` (event
    /// `reader_reply` by [`READER_ACTOR`], audited as `case.reader_reply` by the portal): the case
    /// returns to the status it was asked in, its deadline moves later by the working time spent
    /// waiting, and the staff member who asked is notified. `NotFound` for an unknown token,
    /// `Conflict` when no question is open, `Invalid` for an empty or too long answer.
    ///
    /// With an `idempotency_key` seen before on this case (the same form sent twice) nothing
    /// changes and the case is returned as it is.
    pub async fn answer_case_question(&self, token: &str, text: &str, idempotency_key: Option<&str>) -> Result<Case> {
        let action = CaseAction::ReaderReply { text: text.to_string() };
        action.check().map_err(StoreError::Invalid)?;
        let key = idempotency_key.map(str::trim).filter(|k| !k.is_empty()).map(|k| format!("{REPLY_KEY_PREFIX}{k}"));
        if key.as_ref().is_some_and(|k| k.chars().count() > MAX_IDEMPOTENCY_KEY) {
            return Err(StoreError::invalid(
                "idempotency_key",
                Msg::new(
                    format!("幂等键最多 {MAX_IDEMPOTENCY_KEY} 个字符"),
                    format!("the idempotency key has at most {MAX_IDEMPOTENCY_KEY} characters"),
                ),
            ));
        }
        let mut tx = self.begin().await?;
        let id = token_case_id(&mut tx, token).await?;
        if let Some(k) = &key {
            if has_keyed_event(&mut tx, id, k).await? {
                let current = load_case(&mut tx, id).await?;
                tx.rollback().await?;
                return Ok(current);
            }
        }
        let loaded = load_case_for_update(&mut tx, id).await?;
        let applied = self.apply_action(&mut tx, &Actor::system("portal"), READER_ACTOR, loaded, &action, key.clone()).await;
        let outcome = match applied {
            Ok(after) => tx.commit().await.map(|_| after).map_err(StoreError::from),
            Err(e) => {
                // Best effort: dropping the transaction rolls it back as well.
                let _ = tx.rollback().await;
                Err(e)
            }
        };
        match (outcome, key) {
            (Ok(after), _) => Ok(after),
            // The same form, sent at the same moment by a concurrent request that won.
            (Err(e), Some(k)) => {
                let mut conn = self.pool.acquire().await?;
                if has_keyed_event(&mut conn, id, &k).await? {
                    load_case(&mut conn, id).await
                } else {
                    Err(e)
                }
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Applies `action` to the loaded case in `tx`: the status move, its bookkeeping, the event
    /// (by `event_actor`, with the form's idempotency key if any) and the audit row (by `actor`).
    async fn apply_action(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        event_actor: &str,
        (before, before_dept): (Case, Option<i64>),
        action: &CaseAction,
        event_key: Option<String>,
    ) -> Result<Case> {
        let id = before.id;
        let expected_version = before.version;
        let workflow = workflow_in(tx, before.kind).await?;
        let to = next_status(before.status, action, workflow, before.resume_status).map_err(|e| StoreError::Conflict(e.message))?;
        let now = now_text();
        let local = local_now();
        let raw = sqlx::query("SELECT assignee_id, resolved_local, token_expires_at FROM cases WHERE id = $1")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        let mut assignee_id: Option<i64> = raw.try_get("assignee_id")?;
        let mut resolved_local: Option<String> = raw.try_get("resolved_local")?;
        let mut token_expires_at: Option<String> = raw.try_get("token_expires_at")?;
        let mut audit_note = String::new();
        let mut c = before.clone();
        let mut department_id = before_dept;
        let comment: Option<String>;
        match action {
            CaseAction::Triage { outcome, category, priority, duplicate_of, comment: note } => {
                c.priority = *priority;
                let category = category.as_deref().map(text::clean).filter(|s| !s.is_empty());
                let known: Vec<String> = sqlx::query("SELECT code FROM case_categories WHERE kind = $1")
                    .bind(before.kind.code().to_string())
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get("code"))
                    .collect::<Result<_, _>>()?;
                match &category {
                    Some(cat) if !known.contains(cat) => {
                        return Err(StoreError::invalid(
                            "category",
                            Msg::new(
                                format!("“{}”没有类别“{cat}”", before.kind.label().zh),
                                format!("there is no category '{cat}' for {} cases", before.kind.code()),
                            ),
                        ))
                    }
                    None if *outcome == TriageOutcome::Accepted && !known.is_empty() => {
                        return Err(StoreError::invalid(
                            "category",
                            Msg::new("受理时请选择类别", format!("choose a category when accepting a {} case", before.kind.code())),
                        ))
                    }
                    _ => {}
                }
                c.category = category;
                let mut text = prose_opt(note);
                match outcome {
                    TriageOutcome::Accepted => {
                        let calendar = calendar_in(tx).await?;
                        let levels = service_levels_in(tx, before.kind).await?;
                        let due = calendar.add_working_hours(local, levels.hours(*priority));
                        c.due_at = Some(local_text(due));
                    }
                    TriageOutcome::Duplicate => {
                        let dup = duplicate_of.unwrap_or_default();
                        let found = if dup == id {
                            None
                        } else {
                            sqlx::query("SELECT number FROM cases WHERE id = $1").bind(dup).fetch_optional(&mut **tx).await?
                        };
                        let Some(found) = found else {
                            return Err(StoreError::invalid(
                                "duplicate_of",
                                Msg::new(format!("没有可作为重复对象的工单 {dup}"), format!("no other case {dup} to be a duplicate of")),
                            ));
                        };
                        let number: Option<String> = found.try_get("number")?;
                        c.duplicate_of = Some(dup);
                        let note = format!("duplicate of {}", number.unwrap_or_default());
                        text = Some(match text {
                            Some(t) => format!("{note}: {t}"),
                            None => note,
                        });
                    }
                    TriageOutcome::OutOfScope => {}
                }
                if to == CaseStatus::Closed {
                    c.closed_at = Some(now.clone());
                    token_expires_at = Some(utc_in_days(TOKEN_DAYS_AFTER_CLOSING));
                }
                comment = Some(match text {
                    Some(t) => format!("{}: {t}", outcome.code()),
                    None => outcome.code().to_string(),
                });
            }
            CaseAction::Assign { department, comment: note } => {
                let code = text::clean(department);
                let dept = self.department_id_in(tx, &code).await?;
                if before.status == CaseStatus::Assigned && before_dept == Some(dept) {
                    return Err(StoreError::invalid(
                        "department",
                        Msg::new(format!("工单已在部门“{code}”"), format!("the case is already with department '{code}'")),
                    ));
                }
                department_id = Some(dept);
                assignee_id = None;
                comment = Some(match prose_opt(note) {
                    Some(t) => format!("{code}: {t}"),
                    None => code,
                });
            }
            CaseAction::Claim => {
                let user_id = actor.user_id.ok_or_else(|| {
                    StoreError::invalid(
                        "assignee",
                        Msg::new("认领工单需要以馆员身份登录", "claiming a case needs a signed-in staff member"),
                    )
                })?;
                let row = sqlx::query("SELECT department_id FROM users WHERE id = $1 AND active = 1")
                    .bind(user_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some(row) = row else {
                    return Err(StoreError::invalid("assignee", Msg::new("没有该在职馆员", "no such active staff member")));
                };
                let member_of: Option<i64> = row.try_get("department_id")?;
                if member_of.is_some() && member_of != department_id {
                    let dept = before.department.clone().unwrap_or_default();
                    return Err(StoreError::invalid(
                        "assignee",
                        Msg::new(
                            format!("{} 不是部门“{dept}”的成员，不能认领", actor.name),
                            format!("{} is not a member of department '{dept}'", actor.name),
                        ),
                    ));
                }
                assignee_id = Some(user_id);
                comment = None;
            }
            CaseAction::Propose { solution } => {
                c.proposal = Some(text::prose(solution));
                comment = c.proposal.clone();
            }
            CaseAction::Approve { comment: note } | CaseAction::Close { comment: note } => {
                comment = prose_opt(note);
                if to == CaseStatus::Closed {
                    c.closed_at = Some(now.clone());
                    token_expires_at = Some(utc_in_days(TOKEN_DAYS_AFTER_CLOSING));
                }
            }
            CaseAction::RejectProposal { comment: note } => {
                comment = Some(text::prose(note));
            }
            CaseAction::Resolve { reply } => {
                c.reply = Some(text::prose(reply));
                c.resolved_at = Some(now.clone());
                resolved_local = Some(local_text(local));
                comment = c.reply.clone();
            }
            CaseAction::Reopen { reason } => {
                if department_id.is_none() {
                    return Err(StoreError::Conflict(Msg::new(
                        format!("工单 {} 在判定时已关闭，从未分派部门，不能重新打开；请重新提交", before.number),
                        format!(
                            "case {} was closed at triage and never assigned to a department, so it cannot be reopened; file a new case",
                            before.number
                        ),
                    )));
                }
                let mut text = text::prose(reason);
                if let Some(r) = &before.rating {
                    text = format!("{text} (rated {}/5)", r.satisfaction);
                }
                c.resolved_at = None;
                resolved_local = None;
                c.closed_at = None;
                c.rating = None;
                token_expires_at = None;
                comment = Some(text);
            }
            CaseAction::RequestInfo { question } => {
                if before.source != CaseSource::Portal {
                    return Err(StoreError::Conflict(Msg::new(
                        format!("工单 {} 不是读者在门户提交的，读者没有跟踪页面，看不到问题；请直接联系读者", before.number),
                        format!(
                            "case {} was not filed on the portal, so the reader has no tracking page to see a question; contact the reader directly",
                            before.number
                        ),
                    )));
                }
                c.question = Some(text::prose(question));
                c.resume_status = Some(before.status);
                c.awaiting_since = Some(local_text(local));
                comment = c.question.clone();
            }
            CaseAction::ReaderReply { text: answer } => {
                audit_note = restart_clock(tx, &mut c, local).await?;
                comment = Some(text::prose(answer));
            }
            CaseAction::WithdrawQuestion { comment: why } => {
                audit_note = restart_clock(tx, &mut c, local).await?;
                let question = before.question.clone().unwrap_or_default();
                comment = Some(match prose_opt(why) {
                    Some(why) => format!("{why} (question: {question})"),
                    None => format!("question withdrawn: {question}"),
                });
            }
        }
        let rating = c.rating.clone();
        let updated = sqlx::query(
            "UPDATE cases SET status = $1, priority = $2, category = $3, department_id = $4, assignee_id = $5, proposal = $6, reply = $7,
                 duplicate_of = $8, due_at = $9, first_response_at = COALESCE(first_response_at, $10), resolved_at = $11,
                 resolved_local = $12, closed_at = $13, token_expires_at = $14, rating_satisfaction = $15, rating_recommend = $16,
                 rating_comment = $17, rated_at = $18, question = $19, resume_status = $20, paused_local = $21, updated_at = $10,
                 version = version + 1
             WHERE id = $22 AND version = $23",
        )
        .bind(to.code().to_string())
        .bind(c.priority.code().to_string())
        .bind(c.category.clone())
        .bind(department_id)
        .bind(assignee_id)
        .bind(c.proposal.clone())
        .bind(c.reply.clone())
        .bind(c.duplicate_of)
        .bind(c.due_at.clone())
        .bind(now.clone())
        .bind(c.resolved_at.clone())
        .bind(resolved_local)
        .bind(c.closed_at.clone())
        .bind(token_expires_at)
        .bind(rating.as_ref().map(|r| r.satisfaction as i64))
        .bind(rating.as_ref().and_then(|r| r.recommend.map(|v| v as i64)))
        .bind(rating.as_ref().and_then(|r| r.comment.clone()))
        .bind(rating.as_ref().map(|r| r.at.clone()))
        .bind(c.question.clone())
        .bind(c.resume_status.map(|s| s.code().to_string()))
        .bind(c.awaiting_since.clone())
        .bind(id)
        .bind(expected_version)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(stale(&before, expected_version));
        }
        record_keyed_event(tx, id, event_actor, action.code(), (Some(before.status), to), comment, event_key).await?;
        if matches!(action, CaseAction::ReaderReply { .. }) {
            notify_asker(tx, &before).await?;
        }
        let after = load_case(tx, id).await?;
        audit::record(
            tx,
            actor,
            Change {
                action: &format!("case.{}", action.code()),
                entity: "case",
                entity_id: Some(id.to_string()),
                summary: format!("{}: {} → {}{audit_note}", after.number, before.status.code(), after.status.code()),
                before: json(&before),
                after: json(&after),
            },
        )
        .await?;
        Ok(after)
    }

    /// The case's history, oldest first.
    pub async fn case_events(&self, id: i64) -> Result<Vec<CaseEvent>> {
        let rows =
            sqlx::query("SELECT id, at, actor, action, from_status, to_status, comment FROM case_events WHERE case_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| -> Result<CaseEvent> {
                let from: Option<String> = r.try_get("from_status")?;
                Ok(CaseEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    from: from
                        .map(|f| CaseStatus::parse(&f))
                        .transpose()
                        .map_err(|m| StoreError::Other(format!("stored from_status: {}", m.en)))?,
                    to: code(r, "to_status", CaseStatus::parse)?,
                    comment: r.try_get("comment")?,
                })
            })
            .collect()
    }

    /// The reader rates a resolved case through its tracking token; the case closes. Rating
    /// twice, or before resolution, is a `Conflict`.
    pub async fn rate_case(&self, token: &str, rating: &RatingDraft) -> Result<Case> {
        rating.check().map_err(StoreError::Invalid)?;
        let mut tx = self.begin().await?;
        let id = token_case_id(&mut tx, token).await?;
        rate_in(tx, id, rating, &Actor::system("portal")).await
    }

    /// Rates a case for the signed-in reader `reader_id`, from `origin` (their address). Another
    /// reader's case is `NotFound`, like a case that does not exist.
    pub async fn rate_own_case(&self, reader_id: i64, case_id: i64, rating: &RatingDraft, origin: &str) -> Result<Case> {
        rating.check().map_err(StoreError::Invalid)?;
        let mut tx = self.begin().await?;
        sqlx::query("SELECT id FROM cases WHERE id = $1 AND reader_id = $2")
            .bind(case_id)
            .bind(reader_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        rate_in(tx, case_id, rating, &crate::portal_auth::reader_actor(reader_id, origin)).await
    }

    pub async fn case_categories(&self, kind: Option<CaseKind>) -> Result<Vec<CaseCategory>> {
        let mut sql = Sql::new("SELECT kind, code, name_zh, name_en FROM case_categories");
        if let Some(k) = kind {
            sql.push(" WHERE kind = ").bind(k.code());
        }
        sql.push(" ORDER BY kind, id");
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| -> Result<CaseCategory> {
                Ok(CaseCategory {
                    kind: code(r, "kind", CaseKind::parse)?,
                    code: r.try_get("code")?,
                    name_zh: r.try_get("name_zh")?,
                    name_en: r.try_get("name_en")?,
                })
            })
            .collect()
    }

    pub async fn create_case_category(&self, actor: &Actor, category: &CaseCategory) -> Result<CaseCategory> {
        let mut errs = lector_domain::FieldErrors::default();
        let code_v = errs.take("code", parse_code(&category.code));
        let name = |raw: &str| {
            let v = text::clean(raw);
            if v.is_empty() || v.chars().count() > 64 {
                Err(Msg::new("名称应为 1 到 64 个字符", "a name has 1 to 64 characters"))
            } else {
                Ok(v)
            }
        };
        let zh = errs.take("name_zh", name(&category.name_zh));
        let en = errs.take("name_en", name(&category.name_en));
        let created = errs
            .finish(|| CaseCategory {
                kind: category.kind,
                code: code_v.unwrap_or_default(),
                name_zh: zh.unwrap_or_default(),
                name_en: en.unwrap_or_default(),
            })
            .map_err(StoreError::Invalid)?;
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO case_categories (kind, code, name_zh, name_en, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(created.kind.code().to_string())
            .bind(created.code.clone())
            .bind(created.name_zh.clone())
            .bind(created.name_en.clone())
            .bind(now_text())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Msg::new(
                        format!("“{}”已有类别代码“{}”", created.kind.label().zh, created.code),
                        format!("category code '{}' is taken for {} cases", created.code, created.kind.code()),
                    ))
                } else {
                    e.into()
                }
            })?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "case_category.create",
                entity: "case_category",
                entity_id: Some(format!("{}/{}", created.kind.code(), created.code)),
                summary: created.name_zh.clone(),
                before: None,
                after: json(&created),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The workflow of a kind (its default until an admin changes it).
    pub async fn workflow(&self, kind: CaseKind) -> Result<Workflow> {
        let mut conn = self.pool.acquire().await?;
        workflow_in(&mut conn, kind).await
    }

    /// `Invalid` on `auto_close_days` above 365.
    pub async fn set_workflow(&self, actor: &Actor, kind: CaseKind, workflow: Workflow) -> Result<()> {
        if workflow.auto_close_days > 365 {
            return Err(StoreError::invalid(
                "auto_close_days",
                Msg::new("自动关闭等待天数最多 365 天", "the waiting period before closing is at most 365 days"),
            ));
        }
        let mut tx = self.begin().await?;
        let before = workflow_in(&mut tx, kind).await?;
        let after = json(&workflow).unwrap_or_default();
        put_setting(&mut tx, &workflow_key(kind), &after).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "settings.case_workflow",
                entity: "settings",
                entity_id: Some(workflow_key(kind)),
                summary: format!("{}: approval {}, auto close {} days", kind.code(), workflow.requires_approval, workflow.auto_close_days),
                before: json(&before),
                after: Some(after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The service levels of a kind (its defaults until an admin changes them).
    pub async fn service_levels(&self, kind: CaseKind) -> Result<ServiceLevels> {
        let mut conn = self.pool.acquire().await?;
        service_levels_in(&mut conn, kind).await
    }

    /// Sets the service levels of a kind, audited as `settings.case_service_levels`. They apply
    /// to cases triaged from now on; open cases keep their deadline. `Invalid` (naming the
    /// priority) for a level outside 1–[`lector_domain::case::MAX_SERVICE_HOURS`] or a more urgent
    /// priority given more time than a less urgent one.
    pub async fn set_service_levels(&self, actor: &Actor, kind: CaseKind, levels: ServiceLevels) -> Result<()> {
        levels.check().map_err(StoreError::Invalid)?;
        let mut tx = self.begin().await?;
        let before = service_levels_in(&mut tx, kind).await?;
        let after = json(&levels).unwrap_or_default();
        put_setting(&mut tx, &service_levels_key(kind), &after).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "settings.case_service_levels",
                entity: "settings",
                entity_id: Some(service_levels_key(kind)),
                summary: format!(
                    "{}: urgent {} h, high {} h, normal {} h, low {} h",
                    kind.code(),
                    levels.urgent,
                    levels.high,
                    levels.normal,
                    levels.low
                ),
                before: json(&before),
                after: Some(after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The working calendar deadlines are computed on (the standard one until set).
    pub async fn work_calendar(&self) -> Result<WorkCalendar> {
        let mut conn = self.pool.acquire().await?;
        calendar_in(&mut conn).await
    }

    /// `Invalid` on `day_end` when the working day ends before it starts. Holidays and make-up
    /// days are stored sorted and without repeats.
    pub async fn set_work_calendar(&self, actor: &Actor, calendar: &WorkCalendar) -> Result<()> {
        calendar.check().map_err(StoreError::Invalid)?;
        let mut cal = calendar.clone();
        cal.holidays.sort();
        cal.holidays.dedup();
        cal.extra_workdays.sort();
        cal.extra_workdays.dedup();
        let mut tx = self.begin().await?;
        let before = calendar_in(&mut tx).await?;
        let after = json(&cal).unwrap_or_default();
        put_setting(&mut tx, CALENDAR_KEY, &after).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "settings.work_calendar",
                entity: "settings",
                entity_id: Some(CALENDAR_KEY.to_string()),
                summary: format!(
                    "{}–{}, {} holidays, {} make-up days",
                    cal.day_start.format("%H:%M"),
                    cal.day_end.format("%H:%M"),
                    cal.holidays.len(),
                    cal.extra_workdays.len()
                ),
                before: json(&before),
                after: Some(after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks open cases past their deadline at `now` (local) as escalated, once each, and
    /// notifies the members of the responsible department and the leaders. Safe to call
    /// repeatedly and from several servers. Returns how many were escalated.
    ///
    /// Open here means not yet resolved, and not awaiting the reader (its clock is stopped).
    /// Escalation does not change the case's version.
    pub async fn escalate_overdue_cases(&self, now: chrono::NaiveDateTime) -> Result<usize> {
        let now_local = local_text(now);
        // Candidates are read before the transaction; the conditional update below decides.
        let due = sqlx::query(
            "SELECT id FROM cases WHERE escalated = 0 AND status NOT IN ($1, $2, $3) AND due_at IS NOT NULL AND due_at < $4 ORDER BY id",
        )
        .bind(CaseStatus::Resolved.code().to_string())
        .bind(CaseStatus::Closed.code().to_string())
        .bind(CaseStatus::AwaitingReader.code().to_string())
        .bind(now_local.clone())
        .fetch_all(&self.pool)
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let system = Actor::system("escalation");
        let mut tx = self.begin().await?;
        let mut escalated = 0usize;
        for row in &due {
            let id: i64 = row.try_get("id")?;
            let claimed = sqlx::query("UPDATE cases SET escalated = 1 WHERE id = $1 AND escalated = 0 AND status NOT IN ($2, $3, $4)")
                .bind(id)
                .bind(CaseStatus::Resolved.code().to_string())
                .bind(CaseStatus::Closed.code().to_string())
                .bind(CaseStatus::AwaitingReader.code().to_string())
                .execute(&mut *tx)
                .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let (case, department_id) = load_case_for_update(&mut tx, id).await?;
            let recipients: Vec<i64> =
                sqlx::query("SELECT id FROM users WHERE active = 1 AND (role = $1 OR department_id = $2) ORDER BY id")
                    .bind("leader".to_string())
                    .bind(department_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get("id"))
                    .collect::<Result<_, _>>()?;
            let due_at = case.due_at.clone().unwrap_or_default();
            let dept = case.department.clone().unwrap_or_else(|| "-".to_string());
            let text = Msg::new(
                format!("工单 {} 已超过处理时限（{due_at}，部门 {dept}）：{}", case.number, case.subject),
                format!("Case {} is past its deadline ({due_at}, department {dept}): {}", case.number, case.subject),
            );
            for user in &recipients {
                notify(&mut tx, *user, &text, &format!("/cases/{id}")).await?;
            }
            let note = format!("past the deadline {due_at}; {} notified", recipients.len());
            record_event(&mut tx, id, "system", "escalate", Some(case.status), case.status, Some(note.clone())).await?;
            audit::record(
                &mut tx,
                &system,
                Change {
                    action: "case.escalate",
                    entity: "case",
                    entity_id: Some(id.to_string()),
                    summary: format!("{}: {note}", case.number),
                    before: None,
                    after: None,
                },
            )
            .await?;
            escalated += 1;
        }
        tx.commit().await?;
        Ok(escalated)
    }

    /// Closes resolved cases left unrated longer than their workflow's waiting period.
    ///
    /// A workflow with `auto_close_days == 0` never closes cases by itself.
    pub async fn close_unrated_cases(&self, now: chrono::NaiveDateTime) -> Result<usize> {
        let mut candidates: Vec<(i64, u32)> = Vec::new();
        {
            let mut conn = self.pool.acquire().await?;
            for &kind in CaseKind::ALL {
                let wf = workflow_in(&mut conn, kind).await?;
                if wf.auto_close_days == 0 {
                    continue;
                }
                let cutoff = local_text(now - chrono::Duration::days(wf.auto_close_days as i64));
                let rows = sqlx::query(
                    "SELECT id FROM cases WHERE status = $1 AND kind = $2 AND rating_satisfaction IS NULL AND resolved_local <= $3 ORDER BY id",
                )
                .bind(CaseStatus::Resolved.code().to_string())
                .bind(kind.code().to_string())
                .bind(cutoff)
                .fetch_all(&mut *conn)
                .await?;
                for r in rows {
                    candidates.push((r.try_get("id")?, wf.auto_close_days));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        let system = Actor::system("auto-close");
        let mut tx = self.begin().await?;
        let mut closed = 0usize;
        for (id, days) in candidates {
            let now_utc = now_text();
            let updated = sqlx::query(
                "UPDATE cases SET status = $1, closed_at = $2, token_expires_at = $3, updated_at = $2, version = version + 1
                 WHERE id = $4 AND status = $5 AND rating_satisfaction IS NULL",
            )
            .bind(CaseStatus::Closed.code().to_string())
            .bind(now_utc)
            .bind(utc_in_days(TOKEN_DAYS_AFTER_CLOSING))
            .bind(id)
            .bind(CaseStatus::Resolved.code().to_string())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                continue;
            }
            let note = format!("closed without a rating after {days} days");
            record_event(&mut tx, id, "system", "close", Some(CaseStatus::Resolved), CaseStatus::Closed, Some(note.clone())).await?;
            let number: Option<String> =
                sqlx::query("SELECT number FROM cases WHERE id = $1").bind(id).fetch_one(&mut *tx).await?.try_get("number")?;
            audit::record(
                &mut tx,
                &system,
                Change {
                    action: "case.close",
                    entity: "case",
                    entity_id: Some(id.to_string()),
                    summary: format!("{}: {note}", number.unwrap_or_default()),
                    before: Some(serde_json::json!({ "status": "resolved" })),
                    after: Some(serde_json::json!({ "status": "closed" })),
                },
            )
            .await?;
            closed += 1;
        }
        tx.commit().await?;
        Ok(closed)
    }

    /// [`Store::service_stats`], reused for up to [`STATS_MAX_AGE`]: a dashboard tolerates a
    /// minute of staleness, and under load it is computed once a minute instead of per view.
    /// When the figures age out, the requests meanwhile get the previous ones while a single
    /// background task recomputes them (no stampede of identical queries at expiry); a period
    /// asked for the first time is computed by one request while the others wait for it.
    pub async fn service_stats_cached(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<ServiceStats> {
        let cached = || -> Option<(ServiceStats, bool)> {
            let last = self.stats_cache.last.lock().expect("stats cache lock");
            last.as_ref().filter(|c| c.from == from && c.to == to).map(|c| (c.stats.clone(), c.at.elapsed() < STATS_MAX_AGE))
        };
        match cached() {
            Some((stats, true)) => return Ok(stats),
            Some((stale, false)) => {
                if let Ok(gate) = self.stats_cache.computing.clone().try_lock_owned() {
                    let store = self.clone();
                    tokio::spawn(async move {
                        let _gate = gate;
                        match store.service_stats(from, to).await {
                            Ok(stats) => store.keep_stats(from, to, stats),
                            Err(e) => tracing::warn!(error = %e, "refreshing the service dashboard's figures failed"),
                        }
                    });
                }
                return Ok(stale);
            }
            None => {}
        }
        let _gate = self.stats_cache.computing.lock().await;
        if let Some((stats, true)) = cached() {
            return Ok(stats);
        }
        let stats = self.service_stats(from, to).await?;
        self.keep_stats(from, to, stats.clone());
        Ok(stats)
    }

    fn keep_stats(&self, from: chrono::NaiveDate, to: chrono::NaiveDate, stats: ServiceStats) {
        *self.stats_cache.last.lock().expect("stats cache lock") = Some(CachedStats { from, to, at: std::time::Instant::now(), stats });
    }

    /// The dashboard's figures for cases created between the local dates (inclusive).
    ///
    /// One code path: the rows of the period are read once and the figures computed here
    /// (medians need the values; at 100,000 cases this is a few megabytes).
    pub async fn service_stats(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<ServiceStats> {
        let mut sql = Sql::new(
            "SELECT c.kind, c.category, c.status, c.created_at, c.first_response_at, c.resolved_at, c.resolved_local, c.due_at, \
             d.code AS department, c.rating_satisfaction, c.rating_recommend \
             FROM cases c LEFT JOIN departments d ON d.id = c.department_id WHERE c.created_local >= ",
        );
        sql.bind(from.format("%Y-%m-%d").to_string());
        if let Some(next) = to.succ_opt() {
            sql.push(" AND c.created_local < ").bind(next.format("%Y-%m-%d").to_string());
        }
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut by_kind = BTreeMap::new();
        let mut by_category = BTreeMap::new();
        let mut by_status = BTreeMap::new();
        let (mut first, mut resolution) = (Vec::new(), Vec::new());
        let (mut on_time, mut resolved_with_due) = (0i64, 0i64);
        let mut by_dept: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut by_cat: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let (mut promoters, mut detractors, mut recommenders) = (0i64, 0i64, 0i64);
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let category: Option<String> = r.try_get("category")?;
            let status: String = r.try_get("status")?;
            let created: String = r.try_get("created_at")?;
            let cat_key = format!("{kind}/{}", category.as_deref().unwrap_or("-"));
            *by_kind.entry(kind.clone()).or_insert(0) += 1;
            *by_category.entry(cat_key.clone()).or_insert(0) += 1;
            *by_status.entry(status).or_insert(0) += 1;
            if let Some(h) = r.try_get::<Option<String>, _>("first_response_at")?.and_then(|t| hours_between(&created, &t)) {
                first.push(h);
            }
            if let Some(h) = r.try_get::<Option<String>, _>("resolved_at")?.and_then(|t| hours_between(&created, &t)) {
                resolution.push(h);
            }
            let resolved_local: Option<String> = r.try_get("resolved_local")?;
            let due: Option<String> = r.try_get("due_at")?;
            if let (Some(res), Some(due)) = (resolved_local, due) {
                resolved_with_due += 1;
                if res <= due {
                    on_time += 1;
                }
            }
            if let Some(s) = r.try_get::<Option<i64>, _>("rating_satisfaction")? {
                let dept: Option<String> = r.try_get("department")?;
                let e = by_dept.entry(dept.unwrap_or_else(|| "-".to_string())).or_insert((0, 0));
                *e = (e.0 + 1, e.1 + s);
                let e = by_cat.entry(cat_key).or_insert((0, 0));
                *e = (e.0 + 1, e.1 + s);
            }
            if let Some(n) = r.try_get::<Option<i64>, _>("rating_recommend")? {
                recommenders += 1;
                if n >= 9 {
                    promoters += 1;
                } else if n <= 6 {
                    detractors += 1;
                }
            }
        }
        Ok(ServiceStats {
            total: rows.len() as i64,
            by_kind: counts(by_kind),
            by_category: counts(by_category),
            by_status: counts(by_status),
            median_first_response_hours: median(first),
            median_resolution_hours: median(resolution),
            deadline_compliance: (resolved_with_due > 0).then(|| on_time as f64 / resolved_with_due as f64),
            satisfaction_by_department: satisfaction_rows(by_dept),
            satisfaction_by_category: satisfaction_rows(by_cat),
            nps: (recommenders > 0).then(|| (promoters - detractors) as f64 * 100.0 / recommenders as f64),
        })
    }
}

/// The id of the case whose tracking token is `token`; `NotFound` for a forged, unknown or
/// expired token.
async fn token_case_id(conn: &mut AnyConnection, token: &str) -> Result<i64> {
    let token = token.trim();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::NotFound);
    }
    let row = sqlx::query("SELECT id, token_expires_at FROM cases WHERE token_hash = $1")
        .bind(token_hash(&token.to_ascii_lowercase()))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let expires: Option<String> = row.try_get("token_expires_at")?;
    if expires.is_some_and(|e| e <= now_text()) {
        return Err(StoreError::NotFound);
    }
    Ok(row.try_get("id")?)
}

/// Records a rating on case `id` inside `tx` (validated by the caller): the case closes, its
/// tracking link stays valid a while for reading, and the rating is an event and an audit row.
async fn rate_in(mut tx: Tx, id: i64, rating: &RatingDraft, actor: &Actor) -> Result<Case> {
    let before = load_case(&mut tx, id).await?;
    if before.rating.is_some() {
        return Err(StoreError::Conflict(Msg::new(
            format!("工单 {} 已评价过，不能重复评价", before.number),
            format!("case {} has already been rated", before.number),
        )));
    }
    if before.status != CaseStatus::Resolved {
        return Err(StoreError::Conflict(Msg::new(
            format!("工单 {} 当前为“{}”，答复后才能评价", before.number, before.status.label().zh),
            format!("case {} is {}; it can be rated once it is resolved", before.number, before.status.code()),
        )));
    }
    let now = now_text();
    let comment = prose_opt(&rating.comment);
    let updated = sqlx::query(
        "UPDATE cases SET status = $1, rating_satisfaction = $2, rating_recommend = $3, rating_comment = $4, rated_at = $5,
                 closed_at = $5, token_expires_at = $6, updated_at = $5, version = version + 1
             WHERE id = $7 AND version = $8 AND rating_satisfaction IS NULL",
    )
    .bind(CaseStatus::Closed.code().to_string())
    .bind(rating.satisfaction as i64)
    .bind(rating.recommend.map(|r| r as i64))
    .bind(comment.clone())
    .bind(now)
    .bind(utc_in_days(TOKEN_DAYS_AFTER_CLOSING))
    .bind(id)
    .bind(before.version)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(stale(&before, before.version));
    }
    let recommend = rating.recommend.map(|r| format!(", recommend {r}/10")).unwrap_or_default();
    let text = match &comment {
        Some(c) => format!("{}/5{recommend}: {c}", rating.satisfaction),
        None => format!("{}/5{recommend}", rating.satisfaction),
    };
    record_event(&mut tx, id, "portal", "rate", Some(before.status), CaseStatus::Closed, Some(text)).await?;
    let after = load_case(&mut tx, id).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "case.rate",
            entity: "case",
            entity_id: Some(id.to_string()),
            summary: format!("{}: rated {}/5", after.number, rating.satisfaction),
            before: json(&before),
            after: json(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}
