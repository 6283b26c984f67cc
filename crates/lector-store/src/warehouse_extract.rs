//! What the warehouse loads from the operational store (ADR 0006), in pages of bounded size, and
//! the bookkeeping that makes its loads incremental: which reader versions and which message
//! outcomes were exported, the secret behind reader keys, and the lease that lets one server
//! refresh at a time.
//!
//! Interactions, case events and unsubscribes are append-only and read after an id watermark.
//! Ids are handed out at insert but become visible at commit, so on PostgreSQL a row may appear
//! after rows with larger ids were read; a page therefore ends before the first row younger than
//! `settled_before` (the caller picks a settling time longer than any transaction). On SQLite
//! one writer holds the lock from insert to commit, so ids become visible in order and the
//! caller may pass the present.
//!
//! Message outcomes are read by a per-row marker instead (see migration 0008 for why), and reader
//! versions by comparing attribute hashes with the last exported ones.

use crate::db::{Param, Sql};
use crate::{now_text, Result, Store, StoreError};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use lector_domain::messaging::OutboxStatus;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::time::Duration;

/// The `settings` key of the secret reader keys are made with.
pub const READER_KEY_SECRET_KEY: &str = "warehouse.reader_key_secret";
/// The `settings` key of the generation of the last reader versions recorded as exported.
const READER_GENERATION_KEY: &str = "warehouse.reader_generation";
/// The one lease in `warehouse_lease` (seeded by the migration).
const REFRESH_LEASE: &str = "refresh";
/// Largest number of rows bound in one statement.
const CHUNK: usize = 500;

/// Where a page of an id-ordered extraction starts, how many rows it may hold, and the youngest
/// row it may include (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub after_id: i64,
    pub limit: i64,
    pub settled_before: DateTime<Utc>,
}

/// One contact between staff and a reader, without its subject and notes.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionRow {
    pub id: i64,
    pub reader_id: i64,
    /// The library's local time of the contact.
    pub occurred_at: NaiveDateTime,
    /// Stored codes: `visit`, `phone` … and `inbound` / `outbound`.
    pub channel: String,
    pub direction: String,
    /// User name of the staff member who recorded it (none once the user is gone).
    pub staff: Option<String>,
}

/// One step of a service case with the case's attributes as they are now (an event does not
/// record the category or department of its moment); the rating on the `rate` event.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseEventRow {
    pub id: i64,
    pub case_id: i64,
    pub reader_id: Option<i64>,
    pub kind: String,
    pub category: Option<String>,
    pub priority: String,
    /// Code of the responsible department.
    pub department: Option<String>,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: DateTime<Utc>,
    pub rating_satisfaction: Option<i64>,
    pub rating_recommend: Option<i64>,
}

/// An outbox row in a final status (sent, failed or cancelled), without address or content.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageOutcome {
    pub id: i64,
    pub reader_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub trigger: Option<String>,
    /// Kind of the channel it went through (`email`, `sms` …).
    pub channel_kind: String,
    pub purpose: String,
    pub status: OutboxStatus,
    /// Failed attempts (a message sent at the first try has none).
    pub failed_attempts: i64,
    /// When it was sent; for a failed or cancelled message, when it was last due (failed
    /// messages keep no finishing time of their own).
    pub finished_at: DateTime<Utc>,
}

/// A withdrawal of consent through an unsubscribe link.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsubscribeRow {
    pub id: i64,
    pub reader_id: i64,
    pub purpose: String,
    pub channel_kind: String,
    pub at: DateTime<Utc>,
}

/// A reader's attributes the warehouse keeps (no name, card number or contact), with the hash
/// of the version last exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderAttributes {
    pub id: i64,
    /// Category code.
    pub category: String,
    pub affiliation: Option<String>,
    /// Stored codes: `active` … and `male` / `female` / `unknown`.
    pub status: String,
    pub gender: String,
    pub birth_date: Option<NaiveDate>,
    pub enrolled_on: Option<NaiveDate>,
    pub expires_on: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub exported: Option<ExportedVersion>,
}

/// What was recorded when a reader's version was last exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedVersion {
    pub attr_hash: String,
    pub exported_at: DateTime<Utc>,
}

/// The outcome of asking for the refresh lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The caller holds it now.
    Taken,
    /// Another holder has it until the given time (UTC RFC 3339).
    HeldBy { holder: String, until: String },
}

fn utc(row: &AnyRow, col: &str) -> Result<DateTime<Utc>> {
    let text: String = row.try_get(col)?;
    DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)).map_err(|e| StoreError::Other(format!("stored {col} '{text}': {e}")))
}

fn date(row: &AnyRow, col: &str) -> Result<Option<NaiveDate>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(|e| StoreError::Other(format!("stored {col} '{t}': {e}")))).transpose()
}

fn utc_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The rows of a page up to the first one not yet settled.
fn settled<T>(rows: Vec<(T, DateTime<Utc>)>, before: DateTime<Utc>) -> Vec<T> {
    rows.into_iter().take_while(|(_, at)| *at < before).map(|(row, _)| row).collect()
}

impl Store {
    /// One page of `sql` (which takes `$1` = after id and `$2` = limit), each row read by `read`
    /// with the time it was written, cut at the first row not yet settled.
    async fn settled_page<T>(&self, sql: &str, page: PageRequest, read: impl Fn(&AnyRow) -> Result<(T, DateTime<Utc>)>) -> Result<Vec<T>> {
        let rows = sqlx::query(sql).bind(page.after_id).bind(page.limit.max(1)).fetch_all(&self.pool).await?;
        let rows = rows.iter().map(read).collect::<Result<Vec<_>>>()?;
        Ok(settled(rows, page.settled_before))
    }

    /// Interactions after `page.after_id`, by id.
    pub async fn interactions_since(&self, page: PageRequest) -> Result<Vec<InteractionRow>> {
        self.settled_page(
            "SELECT i.id, i.reader_id, i.occurred_at, i.channel, i.direction, u.username AS staff, i.created_at
             FROM interactions i LEFT JOIN users u ON u.id = i.staff_id
             WHERE i.id > $1 ORDER BY i.id LIMIT $2",
            page,
            |r| {
                let occurred: String = r.try_get("occurred_at")?;
                let occurred_at = NaiveDateTime::parse_from_str(&occurred, "%Y-%m-%d %H:%M")
                    .map_err(|e| StoreError::Other(format!("stored occurred_at '{occurred}': {e}")))?;
                let row = InteractionRow {
                    id: r.try_get("id")?,
                    reader_id: r.try_get("reader_id")?,
                    occurred_at,
                    channel: r.try_get("channel")?,
                    direction: r.try_get("direction")?,
                    staff: r.try_get("staff")?,
                };
                Ok((row, utc(r, "created_at")?))
            },
        )
        .await
    }

    /// Case events after `page.after_id`, by id, each with its case.
    pub async fn case_events_since(&self, page: PageRequest) -> Result<Vec<CaseEventRow>> {
        self.settled_page(
            "SELECT e.id, e.case_id, c.reader_id, c.kind, c.category, c.priority, d.code AS department, e.action, e.from_status,
                    e.to_status, e.at,
                    CASE WHEN e.action = 'rate' THEN c.rating_satisfaction END AS rating_satisfaction,
                    CASE WHEN e.action = 'rate' THEN c.rating_recommend END AS rating_recommend
             FROM case_events e JOIN cases c ON c.id = e.case_id LEFT JOIN departments d ON d.id = c.department_id
             WHERE e.id > $1 ORDER BY e.id LIMIT $2",
            page,
            |r| {
                let at = utc(r, "at")?;
                let row = CaseEventRow {
                    id: r.try_get("id")?,
                    case_id: r.try_get("case_id")?,
                    reader_id: r.try_get("reader_id")?,
                    kind: r.try_get("kind")?,
                    category: r.try_get("category")?,
                    priority: r.try_get("priority")?,
                    department: r.try_get("department")?,
                    action: r.try_get("action")?,
                    from_status: r.try_get("from_status")?,
                    to_status: r.try_get("to_status")?,
                    at,
                    rating_satisfaction: r.try_get("rating_satisfaction")?,
                    rating_recommend: r.try_get("rating_recommend")?,
                };
                Ok((row, at))
            },
        )
        .await
    }

    /// Withdrawals through unsubscribe links after `page.after_id`, by id.
    pub async fn unsubscribes_since(&self, page: PageRequest) -> Result<Vec<UnsubscribeRow>> {
        self.settled_page(
            "SELECT id, reader_id, purpose, channel, at FROM consent_events
             WHERE id > $1 AND source = 'unsubscribe' AND granted = 0 ORDER BY id LIMIT $2",
            page,
            |r| {
                let at = utc(r, "at")?;
                let row = UnsubscribeRow {
                    id: r.try_get("id")?,
                    reader_id: r.try_get("reader_id")?,
                    purpose: r.try_get("purpose")?,
                    channel_kind: r.try_get("channel")?,
                    at,
                };
                Ok((row, at))
            },
        )
        .await
    }

    /// Outbox rows in a final status not yet marked exported, after `after_id`, by id, at most
    /// `limit`. Mark them with [`Store::mark_messages_exported`] once the warehouse holds them.
    pub async fn unexported_message_outcomes(&self, after_id: i64, limit: i64) -> Result<Vec<MessageOutcome>> {
        let rows = sqlx::query(
            "SELECT o.id, o.reader_id, o.campaign_id, o.trigger_code, c.kind AS channel_kind, o.purpose, o.status, o.attempts,
                    COALESCE(o.sent_at, o.next_attempt_at) AS finished_at
             FROM outbox o JOIN channels c ON c.id = o.channel_id
             WHERE o.warehouse_exported_at IS NULL AND o.status IN ('sent', 'failed', 'cancelled') AND o.id > $1
             ORDER BY o.id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(MessageOutcome {
                    id: r.try_get("id")?,
                    reader_id: r.try_get("reader_id")?,
                    campaign_id: r.try_get("campaign_id")?,
                    trigger: r.try_get("trigger_code")?,
                    channel_kind: r.try_get("channel_kind")?,
                    purpose: r.try_get("purpose")?,
                    status: OutboxStatus::parse(&status).map_err(|m| StoreError::Other(format!("stored outbox status: {}", m.en)))?,
                    failed_attempts: r.try_get("attempts")?,
                    finished_at: utc(r, "finished_at")?,
                })
            })
            .collect()
    }

    /// Marks outbox rows as exported to the warehouse; returns how many were marked.
    pub async fn mark_messages_exported(&self, ids: &[i64]) -> Result<u64> {
        let now = now_text();
        let mut marked = 0;
        for chunk in ids.chunks(CHUNK) {
            let mut sql = Sql::new("UPDATE outbox SET warehouse_exported_at = ");
            sql.bind(now.clone()).push(" WHERE warehouse_exported_at IS NULL AND id IN (");
            sql.bind_list(chunk.iter().map(|id| Param::from(*id))).push(")");
            marked += sql.query().execute(&self.pool).await?.rows_affected();
        }
        Ok(marked)
    }

    /// Readers after `after_id`, by id, at most `limit`, with the hash of their last exported
    /// version. A reader has changed when the hash of its attributes now differs from it.
    pub async fn readers_for_warehouse(&self, after_id: i64, limit: i64) -> Result<Vec<ReaderAttributes>> {
        let rows = sqlx::query(
            "SELECT r.id, c.code AS category, r.affiliation, r.status, r.gender, r.birth_date, r.enrolled_on, r.expires_on,
                    r.created_at, r.updated_at, s.attr_hash, s.exported_at
             FROM readers r JOIN categories c ON c.id = r.category_id LEFT JOIN warehouse_reader_state s ON s.reader_id = r.id
             WHERE r.id > $1 ORDER BY r.id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let hash: Option<String> = r.try_get("attr_hash")?;
                let exported = match hash {
                    Some(attr_hash) => Some(ExportedVersion { attr_hash, exported_at: utc(r, "exported_at")? }),
                    None => None,
                };
                Ok(ReaderAttributes {
                    id: r.try_get("id")?,
                    category: r.try_get("category")?,
                    affiliation: r.try_get("affiliation")?,
                    status: r.try_get("status")?,
                    gender: r.try_get("gender")?,
                    birth_date: date(r, "birth_date")?,
                    enrolled_on: date(r, "enrolled_on")?,
                    expires_on: date(r, "expires_on")?,
                    created_at: utc(r, "created_at")?,
                    updated_at: utc(r, "updated_at")?,
                    exported,
                })
            })
            .collect()
    }

    /// Records the hashes `(reader id, attr hash)` of reader versions the warehouse committed,
    /// and `generation`, the number the caller gave that warehouse batch, in one transaction.
    /// Call it only after the batch committed: a crash in between leaves the previous generation
    /// here, which tells the next refresh to check the warehouse instead of these hashes.
    pub async fn record_exported_readers(&self, generation: i64, versions: &[(i64, String)]) -> Result<()> {
        let now = now_text();
        let mut tx = self.begin().await?;
        for chunk in versions.chunks(CHUNK) {
            let mut sql = Sql::new("INSERT INTO warehouse_reader_state (reader_id, attr_hash, exported_at) VALUES ");
            for (i, (id, hash)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(*id).push(", ").bind(hash.clone()).push(", ").bind(now.clone()).push(")");
            }
            sql.push(" ON CONFLICT (reader_id) DO UPDATE SET attr_hash = excluded.attr_hash, exported_at = excluded.exported_at");
            sql.query().execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(READER_GENERATION_KEY)
        .bind(generation.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The generation last passed to [`Store::record_exported_readers`]; 0 before the first.
    pub async fn exported_reader_generation(&self) -> Result<i64> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(READER_GENERATION_KEY).fetch_optional(&self.pool).await?;
        match row {
            None => Ok(0),
            Some(r) => {
                let v: String = r.try_get("value")?;
                v.parse().map_err(|e| StoreError::Other(format!("stored {READER_GENERATION_KEY} '{v}': {e}")))
            }
        }
    }

    /// The secret reader keys are made with (HMAC key), made once on first use. It stays in the
    /// operational store (and its backups), never in the warehouse.
    pub async fn reader_key_secret(&self) -> Result<Vec<u8>> {
        self.secret(READER_KEY_SECRET_KEY).await
    }

    /// Takes the warehouse refresh lease for `holder` until `ttl` from now, if it is free, expired
    /// or already `holder`'s (which renews it). One conditional update decides, so of two servers
    /// asking at once exactly one gets it.
    pub async fn take_refresh_lease(&self, holder: &str, ttl: Duration) -> Result<Lease> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(1));
        let taken = sqlx::query(
            "UPDATE warehouse_lease SET holder = $1, expires_at = $2
             WHERE name = $3 AND (holder IS NULL OR holder = $1 OR expires_at < $4)",
        )
        .bind(holder.to_string())
        .bind(utc_text(until))
        .bind(REFRESH_LEASE)
        .bind(utc_text(now))
        .execute(&self.pool)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(Lease::Taken);
        }
        let row = sqlx::query("SELECT holder, expires_at FROM warehouse_lease WHERE name = $1")
            .bind(REFRESH_LEASE)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Other("the warehouse lease row is missing (migration 0008)".into()))?;
        Ok(Lease::HeldBy { holder: row.try_get::<Option<String>, _>("holder")?.unwrap_or_default(), until: row.try_get("expires_at")? })
    }

    /// Gives the refresh lease back if `holder` has it.
    pub async fn release_refresh_lease(&self, holder: &str) -> Result<()> {
        sqlx::query("UPDATE warehouse_lease SET holder = NULL, expires_at = '' WHERE name = $1 AND holder = $2")
            .bind(REFRESH_LEASE)
            .bind(holder.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
