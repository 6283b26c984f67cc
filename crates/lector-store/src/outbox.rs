//! The outbox (发件箱): one row per message, recipient and channel, drained by the messaging
//! worker. See `docs/adr/0005-messaging.md` for why a message is sent at most once per lease
//! and recorded in its own commit right after the server accepted it.
//!
//! A row moves `pending → sending` when a worker claims it (with a lease), then to `sent`,
//! back to `pending` (a transient failure with backoff, or quiet hours), or to `failed`.

use crate::audit::{self, Change};
use crate::db::{Backend, Param, Sql, Store};
use crate::{now_text, Actor, Result, StoreError};
use chrono::{DateTime, Utc};
use lector_domain::messaging::{OutboxStatus, Purpose, Trigger};
use lector_domain::{text, Msg};
use rand::Rng;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;
use std::time::Duration;

/// A message to put in the outbox. Rendering happens when it is sent.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Makes enqueueing idempotent: a second message with the same key is not added.
    pub dedupe_key: String,
    pub campaign_id: Option<i64>,
    pub trigger: Option<Trigger>,
    pub reader_id: Option<i64>,
    pub channel_id: i64,
    pub address: String,
    pub template_id: i64,
    /// Extra template variables (case number, tracking link, sign-in code).
    pub vars: serde_json::Value,
    pub purpose: Purpose,
    /// `zh` or `en`.
    pub lang: String,
    /// Not before this time (UTC RFC 3339); now when `None`.
    pub not_before: Option<String>,
}

/// How long a claim lasts and how failures are retried; the worker's options carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxPolicy {
    /// A claimed row is another worker's to take once this has passed without news.
    pub lease: Duration,
    /// A message is failed after this many transient failures.
    pub max_attempts: u32,
    /// The wait after the first transient failure; doubled after each further one.
    pub backoff_base: Duration,
    /// The longest wait between two attempts.
    pub backoff_cap: Duration,
    /// An address is blocked after this many transient failures in a row (over all its
    /// messages). Above `max_attempts` by default, so one message's retries alone (an SMTP
    /// outage) do not block an address.
    pub block_after: u32,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        OutboxPolicy {
            lease: Duration::from_secs(120),
            max_attempts: 6,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3600),
            block_after: 10,
        }
    }
}

impl OutboxPolicy {
    /// The wait before attempt `attempts + 1`: exponential, capped, plus up to a quarter more
    /// at random so that many messages failed together do not come back together.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)));
        let base = exp.min(self.backoff_cap);
        let jitter = base.mul_f64(rand::thread_rng().gen_range(0.0..0.25));
        (base + jitter).min(self.backoff_cap)
    }
}

/// Why a message did not leave (the store's view of the sender's error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later (a timeout, a 4xx SMTP reply, an HTTP 5xx).
    Transient(String),
    /// Never for this address (a 5xx SMTP reply to RCPT, a bad template, an HTTP 4xx).
    Permanent(String),
}

/// A claimed row: everything needed to render and send it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedMessage {
    pub id: i64,
    pub dedupe_key: String,
    pub campaign_id: Option<i64>,
    pub trigger_code: Option<String>,
    pub reader_id: Option<i64>,
    pub channel_id: i64,
    pub address: String,
    pub template_id: i64,
    pub vars: serde_json::Value,
    pub purpose: Purpose,
    pub lang: String,
    /// Failed attempts so far.
    pub attempts: i64,
}

/// One outbox row as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub dedupe_key: String,
    pub campaign_id: Option<i64>,
    pub trigger_code: Option<String>,
    pub reader_id: Option<i64>,
    pub channel_id: i64,
    pub address: String,
    pub template_id: i64,
    pub purpose: Purpose,
    pub lang: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub claimed_by: Option<String>,
    pub lease_until: Option<String>,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
}

/// Failures of one address on one channel kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AddressHealth {
    pub channel_kind: String,
    pub address: String,
    /// Failures since the last success.
    pub failures: i64,
    pub last_error: Option<String>,
    /// Set once the address is no longer used.
    pub blocked_at: Option<String>,
}

/// What a message's template is filled with about its reader.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MessageReader {
    pub id: i64,
    pub card_no: String,
    pub name: String,
    pub category_zh: String,
    pub category_en: String,
    pub affiliation: Option<String>,
    pub status: String,
    pub expires_on: Option<String>,
    /// The reader's first email and mobile (primary first), for templates that show them.
    pub email: Option<String>,
    pub mobile: Option<String>,
    /// The language the reader is written to in (`zh` when unset).
    pub lang: String,
}

/// What a message's template and pacing need about its campaign.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MessageCampaign {
    pub id: i64,
    pub name: String,
    /// Local `HH:MM` start and end of the campaign's quiet hours, if it has them.
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
}

const PUBLIC_URL_KEY: &str = "messaging.public_url";
const SALT_KEY: &str = "messaging.message_id_salt";
/// Where Lector is reached when nobody said otherwise.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `now` plus `d`, as stored.
fn after(d: Duration) -> String {
    time_text(Utc::now() + chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(3650)))
}

fn claimed(row: &AnyRow) -> Result<ClaimedMessage> {
    let purpose: String = row.try_get("purpose")?;
    let vars: Option<String> = row.try_get("vars_json")?;
    Ok(ClaimedMessage {
        id: row.try_get("id")?,
        dedupe_key: row.try_get("dedupe_key")?,
        campaign_id: row.try_get("campaign_id")?,
        trigger_code: row.try_get("trigger_code")?,
        reader_id: row.try_get("reader_id")?,
        channel_id: row.try_get("channel_id")?,
        address: row.try_get("address")?,
        template_id: row.try_get("template_id")?,
        vars: vars.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or(serde_json::Value::Null),
        purpose: Purpose::parse(&purpose).map_err(|m| StoreError::Other(m.en))?,
        lang: row.try_get("lang")?,
        attempts: row.try_get("attempts")?,
    })
}

fn message(row: &AnyRow) -> Result<OutboxMessage> {
    let purpose: String = row.try_get("purpose")?;
    let status: String = row.try_get("status")?;
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        dedupe_key: row.try_get("dedupe_key")?,
        campaign_id: row.try_get("campaign_id")?,
        trigger_code: row.try_get("trigger_code")?,
        reader_id: row.try_get("reader_id")?,
        channel_id: row.try_get("channel_id")?,
        address: row.try_get("address")?,
        template_id: row.try_get("template_id")?,
        purpose: Purpose::parse(&purpose).map_err(|m| StoreError::Other(m.en))?,
        lang: row.try_get("lang")?,
        status: OutboxStatus::parse(&status).map_err(|m| StoreError::Other(m.en))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        claimed_by: row.try_get("claimed_by")?,
        lease_until: row.try_get("lease_until")?,
        sent_at: row.try_get("sent_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Rows a worker may take now: due and pending, or sending under a lease that ran out; and not
/// of a campaign that is paused, cancelled or not yet started.
const CLAIMABLE: &str = "((status = 'pending' AND next_attempt_at <= $3) OR (status = 'sending' AND lease_until < $3))";

impl Store {
    /// Adds `msg` to the outbox; `None` when a message with its dedupe key is already there.
    pub async fn enqueue_message(&self, msg: &NewMessage) -> Result<Option<i64>> {
        let key = msg.dedupe_key.trim();
        if key.is_empty() {
            return Err(StoreError::invalid("dedupe_key", Msg::new("消息缺少去重键", "a message needs a dedupe key")));
        }
        let address = text::clean(&msg.address);
        let lang = if msg.lang == "en" { "en" } else { "zh" };
        let now = now_text();
        let vars = if msg.vars.is_null() { None } else { Some(msg.vars.to_string()) };
        let row = sqlx::query(
            "INSERT INTO outbox (dedupe_key, campaign_id, trigger_code, reader_id, channel_id, address, template_id, vars_json, purpose,
                                 lang, status, attempts, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', 0, $11, $12)
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        .bind(key.to_string())
        .bind(msg.campaign_id)
        .bind(msg.trigger.map(|t| t.code().to_string()))
        .bind(msg.reader_id)
        .bind(msg.channel_id)
        .bind(address)
        .bind(msg.template_id)
        .bind(vars)
        .bind(msg.purpose.code().to_string())
        .bind(lang.to_string())
        .bind(msg.not_before.clone().unwrap_or_else(|| now.clone()))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// Claims up to `limit` due messages for `worker` until `lease` from now. One statement
    /// picks and claims. The pick is a materialized CTE: as a plain `IN (… LIMIT n FOR UPDATE)`
    /// subquery PostgreSQL may run it again for each row it updates and claim far more than
    /// `limit`. On PostgreSQL the outer condition is re-checked on the locked row, so
    /// two servers claiming at once never both get a row (and `SKIP LOCKED` makes them pick
    /// different rows instead of waiting for each other). Messages to a blocked address are
    /// failed here with the reason and not returned.
    pub async fn claim_messages(&self, worker: &str, limit: usize, lease: Duration) -> Result<Vec<ClaimedMessage>> {
        let now = now_text();
        let lock = if self.backend() == Backend::Postgres { " FOR UPDATE OF o SKIP LOCKED" } else { "" };
        let sql = format!(
            "WITH picked AS MATERIALIZED (
                 SELECT o.id FROM outbox o
                 WHERE ((o.status = 'pending' AND o.next_attempt_at <= $3) OR (o.status = 'sending' AND o.lease_until < $3))
                   AND (o.campaign_id IS NULL OR EXISTS (SELECT 1 FROM campaigns c WHERE c.id = o.campaign_id AND c.status = 'sending'))
                 ORDER BY o.next_attempt_at, o.id LIMIT {limit}{lock})
             UPDATE outbox SET status = 'sending', claimed_by = $1, lease_until = $2
             WHERE id IN (SELECT id FROM picked) AND {CLAIMABLE}
             RETURNING id, dedupe_key, campaign_id, trigger_code, reader_id, channel_id, address, template_id, vars_json, purpose, lang,
                       attempts",
            limit = limit.max(1)
        );
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&sql).bind(worker.to_string()).bind(after(lease)).bind(now.clone()).fetch_all(&mut *tx).await?;
        let mut messages = rows.iter().map(claimed).collect::<Result<Vec<_>>>()?;
        if !messages.is_empty() {
            let mut blocked = Sql::new(
                "SELECT o.id, h.last_error FROM outbox o JOIN channels c ON c.id = o.channel_id
                 JOIN address_health h ON h.channel_kind = c.kind AND h.address = o.address
                 WHERE h.blocked_at IS NOT NULL AND o.id IN (",
            );
            blocked.bind_list(messages.iter().map(|m| Param::from(m.id))).push(")");
            let found = blocked.query().fetch_all(&mut *tx).await?;
            for row in &found {
                let id: i64 = row.try_get("id")?;
                let why: Option<String> = row.try_get("last_error")?;
                let reason = Msg::new(
                    format!("地址已停用（此前多次发送失败）：{}", why.clone().unwrap_or_default()),
                    format!("address blocked after earlier failures: {}", why.unwrap_or_default()),
                );
                sqlx::query("UPDATE outbox SET status = 'failed', last_error = $1, lease_until = NULL WHERE id = $2")
                    .bind(reason.to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                messages.retain(|m| m.id != id);
            }
        }
        tx.commit().await?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    /// Extends the lease of `ids` still claimed by `worker`; returns how many were extended.
    pub async fn renew_lease(&self, ids: &[i64], worker: &str, lease: Duration) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut sql = Sql::new("UPDATE outbox SET lease_until = ");
        sql.bind(after(lease)).push(" WHERE status = 'sending' AND claimed_by = ").bind(worker).push(" AND id IN (");
        sql.bind_list(ids.iter().map(|id| Param::from(*id))).push(")");
        Ok(sql.query().execute(&self.pool).await?.rows_affected())
    }

    /// Records that the server accepted message `id`: in its own commit, right away, so that a
    /// crash after this never sends it again. A success clears the address's failures.
    pub async fn mark_sent(&self, id: i64, worker: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, claimed_by = $2, lease_until = NULL, last_error = NULL
             WHERE id = $3 AND status <> 'sent'",
        )
        .bind(now_text())
        .bind(worker.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            sqlx::query(
                "DELETE FROM address_health WHERE (channel_kind, address) IN
                 (SELECT c.kind, o.address FROM outbox o JOIN channels c ON c.id = o.channel_id WHERE o.id = $1)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt of a message `worker` holds. Transient: counted, and tried again
    /// after a backoff (failed after `max_attempts`); permanent: failed now and the address
    /// blocked. Returns the row's status afterwards (unchanged when `worker` no longer holds it).
    pub async fn mark_failed(&self, id: i64, worker: &str, failure: &Failure, policy: &OutboxPolicy) -> Result<OutboxStatus> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT o.status, o.claimed_by, o.attempts, o.address, c.kind FROM outbox o JOIN channels c ON c.id = o.channel_id WHERE o.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let status: String = row.try_get("status")?;
        let holder: Option<String> = row.try_get("claimed_by")?;
        let status = OutboxStatus::parse(&status).map_err(|m| StoreError::Other(m.en))?;
        if status != OutboxStatus::Sending || holder.as_deref() != Some(worker) {
            return Ok(status);
        }
        let attempts = row.try_get::<i64, _>("attempts")? + 1;
        let (permanent, error) = match failure {
            Failure::Transient(e) => (false, e.clone()),
            Failure::Permanent(e) => (true, e.clone()),
        };
        let now = now_text();
        let gave_up = permanent || attempts >= i64::from(policy.max_attempts);
        let (new_status, next) = if gave_up {
            (OutboxStatus::Failed, now.clone())
        } else {
            (OutboxStatus::Pending, after(policy.backoff(u32::try_from(attempts).unwrap_or(u32::MAX))))
        };
        sqlx::query(
            "UPDATE outbox SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4, lease_until = NULL WHERE id = $5",
        )
        .bind(new_status.code().to_string())
        .bind(attempts)
        .bind(next)
        .bind(error.clone())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let kind: String = row.try_get("kind")?;
        let address: String = row.try_get("address")?;
        let block_now = permanent || policy.block_after <= 1;
        sqlx::query(
            "INSERT INTO address_health (channel_kind, address, failures, last_error, blocked_at, updated_at)
             VALUES ($1, $2, 1, $3, $4, $5)
             ON CONFLICT (channel_kind, address) DO UPDATE SET
                 failures = address_health.failures + 1,
                 last_error = excluded.last_error,
                 blocked_at = COALESCE(address_health.blocked_at, excluded.blocked_at,
                                       CASE WHEN address_health.failures + 1 >= $6 THEN excluded.updated_at END),
                 updated_at = excluded.updated_at",
        )
        .bind(kind)
        .bind(address)
        .bind(error)
        .bind(block_now.then(|| now.clone()))
        .bind(now)
        .bind(i64::from(policy.block_after))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new_status)
    }

    /// Puts a message `worker` holds back until `until` (UTC RFC 3339) without counting an
    /// attempt: quiet hours, a disabled channel. `note` says why.
    pub async fn defer_message(&self, id: i64, worker: &str, until: &str, note: Option<&str>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1, lease_until = NULL, last_error = COALESCE($2, last_error)
             WHERE id = $3 AND status = 'sending' AND claimed_by = $4",
        )
        .bind(until.to_string())
        .bind(note.map(str::to_string))
        .bind(id)
        .bind(worker.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn outbox_message(&self, id: i64) -> Result<OutboxMessage> {
        let row = sqlx::query("SELECT * FROM outbox WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(message).transpose()?.ok_or(StoreError::NotFound)
    }

    /// How many outbox rows are in each status.
    pub async fn outbox_counts(&self) -> Result<HashMap<OutboxStatus, i64>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status").fetch_all(&self.pool).await?;
        let mut out = HashMap::new();
        for r in &rows {
            let status: String = r.try_get("status")?;
            out.insert(OutboxStatus::parse(&status).map_err(|m| StoreError::Other(m.en))?, r.try_get("n")?);
        }
        Ok(out)
    }

    pub async fn address_health(&self, channel_kind: &str, address: &str) -> Result<Option<AddressHealth>> {
        let row = sqlx::query("SELECT * FROM address_health WHERE channel_kind = $1 AND address = $2")
            .bind(channel_kind.to_string())
            .bind(address.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(AddressHealth {
                channel_kind: r.try_get("channel_kind")?,
                address: r.try_get("address")?,
                failures: r.try_get("failures")?,
                last_error: r.try_get("last_error")?,
                blocked_at: r.try_get("blocked_at")?,
            })
        })
        .transpose()
    }

    /// The readers of a batch of messages, by id, in one query.
    pub async fn message_readers(&self, ids: &[i64]) -> Result<HashMap<i64, MessageReader>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = Sql::new(
            "SELECT r.id, r.card_no, r.name, r.affiliation, r.status, r.expires_on, r.lang, c.name_zh, c.name_en,
                    (SELECT k.value FROM reader_contacts k WHERE k.reader_id = r.id AND k.kind = 'email'
                     ORDER BY k.is_primary DESC, k.position LIMIT 1) AS email,
                    (SELECT k.value FROM reader_contacts k WHERE k.reader_id = r.id AND k.kind = 'mobile'
                     ORDER BY k.is_primary DESC, k.position LIMIT 1) AS mobile
             FROM readers r JOIN categories c ON c.id = r.category_id WHERE r.id IN (",
        );
        sql.bind_list(ids.iter().map(|id| Param::from(*id))).push(")");
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            let lang: Option<String> = r.try_get("lang")?;
            let reader = MessageReader {
                id: r.try_get("id")?,
                card_no: r.try_get("card_no")?,
                name: r.try_get("name")?,
                category_zh: r.try_get("name_zh")?,
                category_en: r.try_get("name_en")?,
                affiliation: r.try_get("affiliation")?,
                status: r.try_get("status")?,
                expires_on: r.try_get("expires_on")?,
                email: r.try_get("email")?,
                mobile: r.try_get("mobile")?,
                lang: if lang.as_deref() == Some("en") { "en".into() } else { "zh".into() },
            };
            out.insert(reader.id, reader);
        }
        Ok(out)
    }

    /// The campaigns of a batch of messages, by id, in one query.
    pub async fn message_campaigns(&self, ids: &[i64]) -> Result<HashMap<i64, MessageCampaign>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = Sql::new("SELECT id, name, quiet_start, quiet_end FROM campaigns WHERE id IN (");
        sql.bind_list(ids.iter().map(|id| Param::from(*id))).push(")");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let c = MessageCampaign {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    quiet_start: r.try_get("quiet_start")?,
                    quiet_end: r.try_get("quiet_end")?,
                };
                Ok((c.id, c))
            })
            .collect()
    }

    /// Lector's public address (`https://lector.example.edu.cn`), for links in messages.
    pub async fn public_url(&self) -> Result<String> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(PUBLIC_URL_KEY).fetch_optional(&self.pool).await?;
        let stored = match row {
            Some(r) => serde_json::from_str::<String>(&r.try_get::<String, _>("value")?).ok(),
            None => None,
        };
        Ok(stored.unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string()))
    }

    /// Sets the public address (an http or https URL, kept without a trailing slash). Audited.
    pub async fn set_public_url(&self, actor: &Actor, url: &str) -> Result<String> {
        let url = text::clean(url).trim_end_matches('/').to_string();
        let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).unwrap_or("");
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(StoreError::invalid(
                "public_url",
                Msg::new(
                    format!("“{url}”不是有效的网址，应以 http:// 或 https:// 开头"),
                    format!("'{url}' is not a URL; start it with http:// or https://"),
                ),
            ));
        }
        let before = self.public_url().await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(PUBLIC_URL_KEY)
        .bind(serde_json::Value::String(url.clone()).to_string())
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "settings.public_url",
                entity: "settings",
                entity_id: Some(PUBLIC_URL_KEY.into()),
                summary: url.clone(),
                before: Some(serde_json::Value::String(before)),
                after: Some(serde_json::Value::String(url.clone())),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(url)
    }

    /// A random text fixed per store, for Message-IDs (`<outbox-ID.SALT@lector>`): stable for a
    /// row across re-sends, distinct between two Lector databases.
    pub async fn message_id_salt(&self) -> Result<String> {
        let mut bytes = [0u8; 8];
        rand::thread_rng().fill(&mut bytes);
        let fresh = serde_json::Value::String(hex::encode(bytes)).to_string();
        sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
            .bind(SALT_KEY)
            .bind(fresh)
            .bind(now_text())
            .execute(&self.pool)
            .await?;
        let stored: String =
            sqlx::query("SELECT value FROM settings WHERE key = $1").bind(SALT_KEY).fetch_one(&self.pool).await?.try_get("value")?;
        serde_json::from_str(&stored).map_err(|e| StoreError::Other(format!("stored {SALT_KEY}: {e}")))
    }
}
