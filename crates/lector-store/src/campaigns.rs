//! Campaigns (群发任务): a segment × a template × channels in order of preference × a schedule.
//!
//! Starting a campaign materialises its recipients into the outbox with one set-based
//! `INSERT … SELECT` per channel, in preference order: members not yet queued for this campaign,
//! whose consent for (purpose, the channel's kind) holds, who have an address of the channel's
//! kind (primary contact first) that is not blocked. Each row's dedupe key is
//! `campaign:{id}:reader:{reader_id}` with `ON CONFLICT DO NOTHING`, and the status moves with a
//! conditional update in the same transaction, so starting twice (or on two servers) queues each
//! reader once. The worker sends; [`Store::advance_campaigns`] starts due scheduled campaigns and
//! completes the ones with nothing left to send.

use crate::audit::{self, Change};
use crate::db::{flag, Sql};
use crate::{now_text, Actor, Page, Result, Store, StoreError};
use lector_domain::campaign::{CampaignAction, CampaignInput};
use lector_domain::messaging::{CampaignStatus, ChannelKind, OutboxStatus, Purpose, Trigger};
use lector_domain::Msg;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// Outbox rows by status.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Progress {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl Progress {
    pub fn total(&self) -> i64 {
        self.pending + self.sending + self.sent + self.failed + self.cancelled
    }

    /// Rows nothing more will happen to.
    pub fn done(&self) -> i64 {
        self.sent + self.failed + self.cancelled
    }

    /// Share done, 0–100.
    pub fn percent(&self) -> i64 {
        match self.total() {
            0 => 0,
            t => self.done() * 100 / t,
        }
    }

    fn add(&mut self, status: OutboxStatus, n: i64) {
        match status {
            OutboxStatus::Pending => self.pending += n,
            OutboxStatus::Sending => self.sending += n,
            OutboxStatus::Sent => self.sent += n,
            OutboxStatus::Failed => self.failed += n,
            OutboxStatus::Cancelled => self.cancelled += n,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub segment_id: i64,
    pub segment_name: Option<String>,
    pub template_id: i64,
    pub template_name: Option<String>,
    pub purpose: Purpose,
    /// Channel codes in order of preference.
    pub channels: Vec<String>,
    pub status: CampaignStatus,
    /// UTC RFC 3339.
    pub scheduled_at: Option<String>,
    /// Local `HH:MM`: nothing is sent from `quiet_start` until `quiet_end`.
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
    /// Counted when the campaign started: messages queued, members left out for want of
    /// consent, and members with no usable address (none, or only blocked ones).
    pub recipients: i64,
    pub excluded_consent: i64,
    pub excluded_address: i64,
    /// User name of the author.
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub version: i64,
    /// Its outbox rows by status (all zero before it starts).
    pub progress: Progress,
}

/// How many readers of one channel an audience reaches.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChannelCount {
    pub code: String,
    pub name: String,
    pub kind: ChannelKind,
    /// Disabled channels are skipped (count 0).
    pub enabled: bool,
    pub count: i64,
}

/// Who a campaign would reach if it started now.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Audience {
    /// Readers in the segment.
    pub members: i64,
    /// Readers reachable on some channel of the preference list.
    pub recipients: i64,
    /// Have an address on some channel, but consent on none of those.
    pub excluded_consent: i64,
    /// Have an address on none of the channels.
    pub excluded_address: i64,
    /// Have a consented address, but every such address is blocked (bounced, failing).
    pub excluded_blocked: i64,
    /// Recipients by the channel they will get the message on, in preference order.
    pub per_channel: Vec<ChannelCount>,
}

/// Outbox rows of one channel and status.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChannelStatusCount {
    pub channel: String,
    pub status: OutboxStatus,
    pub count: i64,
}

/// A failure reason and how many messages failed with it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailureCount {
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CampaignReport {
    pub campaign: Campaign,
    pub by_channel: Vec<ChannelStatusCount>,
    /// Most frequent first (at most 50 reasons).
    pub failures: Vec<FailureCount>,
}

/// One message of a campaign.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recipient {
    pub outbox_id: i64,
    pub reader_id: Option<i64>,
    pub card_no: Option<String>,
    pub name: Option<String>,
    pub channel: String,
    pub channel_kind: ChannelKind,
    pub address: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

/// One message the library sent (or is sending) to a reader, for the reader's timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReaderMessage {
    pub outbox_id: i64,
    pub campaign_id: Option<i64>,
    pub campaign_name: Option<String>,
    pub trigger: Option<Trigger>,
    pub channel: String,
    pub channel_kind: ChannelKind,
    pub status: OutboxStatus,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

/// A configured channel as campaigns and triggers use it.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRef {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: ChannelKind,
    pub enabled: bool,
    /// An email channel that also writes to `<QQ number>@qq.com`.
    pub qq_mailbox: bool,
}

/// Who a set-based enqueue is for.
pub(crate) enum Members {
    Segment(i64),
    /// Active readers created at or after this time (welcome).
    CreatedSince(String),
    /// Active readers whose card expires after the first date and on or before the second.
    ExpiringWithin(String, String),
}

/// Where the rows of a set-based enqueue belong, and their dedupe keys: `prefix` + reader id,
/// then `:` + the expiry date when `with_expiry` (a renewed card is reminded again).
pub(crate) struct Fanout<'a> {
    pub campaign_id: Option<i64>,
    pub trigger: Option<Trigger>,
    pub template_id: i64,
    pub purpose: Purpose,
    pub key_prefix: &'a str,
    pub with_expiry: bool,
}

/// Parses a stored code column.
pub(crate) fn stored<T>(row: &AnyRow, col: &str, parse: fn(&str) -> Result<T, Msg>) -> Result<T> {
    let v: String = row.try_get(col)?;
    parse(&v).map_err(|m| StoreError::Other(format!("stored {col}: {}", m.en)))
}

fn json<T: Serialize>(v: &T) -> Option<serde_json::Value> {
    Some(serde_json::to_value(v).unwrap_or_default())
}

/// A time as stored: UTC RFC 3339 with milliseconds.
pub(crate) fn utc_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Comma-separated channel codes as stored.
pub(crate) fn split_codes(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// The channels named by `codes`, in that order; `None` for an unknown code.
pub(crate) async fn channels_by_code(conn: &mut AnyConnection, codes: &[String]) -> Result<Vec<Option<ChannelRef>>> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new("SELECT id, code, name, kind, settings_json, enabled FROM channels WHERE code IN (");
    sql.bind_list(codes.iter().map(|c| c.as_str().into())).push(")");
    let rows = sql.query().fetch_all(&mut *conn).await?;
    let mut found = HashMap::new();
    for r in &rows {
        let settings: String = r.try_get("settings_json")?;
        let qq_mailbox = serde_json::from_str::<serde_json::Value>(&settings)
            .ok()
            .and_then(|v| v.get("qq_mailbox").and_then(|q| q.as_bool()))
            .unwrap_or(false);
        let ch = ChannelRef {
            id: r.try_get("id")?,
            code: r.try_get("code")?,
            name: r.try_get("name")?,
            kind: stored(r, "kind", ChannelKind::parse)?,
            enabled: flag(r, "enabled")?,
            qq_mailbox,
        };
        found.insert(ch.code.clone(), ch);
    }
    Ok(codes.iter().map(|c| found.get(c).cloned()).collect())
}

/// Appends the address a message on `ch` goes to for reader `r` (NULL when the reader has none):
/// the primary contact of the channel's kind, else the first; for an email channel with QQ
/// mailboxes, `<QQ>@qq.com` when there is no email; for webhooks, the card number.
pub(crate) fn push_address(sql: &mut Sql, ch: &ChannelRef) {
    let contact = |sql: &mut Sql, kind: &str, suffix: Option<&str>| {
        sql.push("(SELECT c.value");
        if let Some(s) = suffix {
            sql.push(" || ").bind(s);
        }
        sql.push(" FROM reader_contacts c WHERE c.reader_id = r.id AND c.kind = ")
            .bind(kind)
            .push(" ORDER BY c.is_primary DESC, c.position, c.id LIMIT 1)");
    };
    match ch.kind.address_kind() {
        None => {
            sql.push("r.card_no");
        }
        Some(kind) if ch.kind == ChannelKind::Email && ch.qq_mailbox => {
            sql.push("COALESCE(");
            contact(sql, kind.code(), None);
            sql.push(", ");
            contact(sql, lector_domain::contact::ContactKind::Qq.code(), Some("@qq.com"));
            sql.push(")");
        }
        Some(kind) => contact(sql, kind.code(), None),
    }
}

/// Appends 1 when reader `r` consents to `purpose` on `kind` (their answer, else the purpose's
/// default), else 0.
pub(crate) fn push_consent(sql: &mut Sql, purpose: Purpose, kind: ChannelKind) {
    sql.push("COALESCE((SELECT s.granted FROM consents s WHERE s.reader_id = r.id AND s.purpose = ")
        .bind(purpose.code())
        .push(" AND s.channel = ")
        .bind(kind.code())
        .push("), ")
        .push(if purpose.granted_by_default() { "1" } else { "0" })
        .push(")");
}

/// Appends a condition true when the address in column `col` is blocked on `kind`.
pub(crate) fn push_blocked(sql: &mut Sql, kind: ChannelKind, col: &str) {
    sql.push("EXISTS (SELECT 1 FROM address_health h WHERE h.channel_kind = ")
        .bind(kind.code())
        .push(" AND h.address = ")
        .push(col)
        .push(" AND h.blocked_at IS NOT NULL)");
}

/// Appends the dedupe key of reader `r`'s message.
fn push_key(sql: &mut Sql, f: &Fanout<'_>) {
    sql.bind(f.key_prefix).push(" || CAST(r.id AS TEXT)");
    if f.with_expiry {
        sql.push(" || ").bind(":").push(" || r.expires_on");
    }
}

/// The campaign's columns, with the names of what it refers to.
const CAMPAIGN_SELECT: &str = "SELECT c.id, c.name, c.segment_id, s.name AS segment_name, c.template_id, t.name AS template_name, \
    c.purpose, c.channels, c.status, c.scheduled_at, c.quiet_start, c.quiet_end, c.recipients, c.excluded_consent, \
    c.excluded_address, u.username AS created_by, c.created_at, c.updated_at, c.started_at, c.finished_at, c.version \
    FROM campaigns c LEFT JOIN segments s ON s.id = c.segment_id LEFT JOIN message_templates t ON t.id = c.template_id \
    LEFT JOIN users u ON u.id = c.created_by";

fn campaign_row(r: &AnyRow) -> Result<Campaign> {
    Ok(Campaign {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        segment_id: r.try_get("segment_id")?,
        segment_name: r.try_get("segment_name")?,
        template_id: r.try_get("template_id")?,
        template_name: r.try_get("template_name")?,
        purpose: stored(r, "purpose", Purpose::parse)?,
        channels: split_codes(&r.try_get::<String, _>("channels")?),
        status: stored(r, "status", CampaignStatus::parse)?,
        scheduled_at: r.try_get("scheduled_at")?,
        quiet_start: r.try_get("quiet_start")?,
        quiet_end: r.try_get("quiet_end")?,
        recipients: r.try_get("recipients")?,
        excluded_consent: r.try_get("excluded_consent")?,
        excluded_address: r.try_get("excluded_address")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        version: r.try_get("version")?,
        progress: Progress::default(),
    })
}

/// Fills in the progress of `campaigns` with one query.
async fn load_progress(conn: &mut AnyConnection, campaigns: &mut [Campaign]) -> Result<()> {
    if campaigns.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("SELECT campaign_id, status, COUNT(*) AS n FROM outbox WHERE campaign_id IN (");
    sql.bind_list(campaigns.iter().map(|c| c.id.into())).push(") GROUP BY campaign_id, status");
    for r in sql.query().fetch_all(&mut *conn).await? {
        let id: i64 = r.try_get("campaign_id")?;
        let status = stored(&r, "status", OutboxStatus::parse)?;
        if let Some(c) = campaigns.iter_mut().find(|c| c.id == id) {
            c.progress.add(status, r.try_get("n")?);
        }
    }
    Ok(())
}

async fn load_campaign(conn: &mut AnyConnection, id: i64) -> Result<Campaign> {
    let row = sqlx::query(&format!("{CAMPAIGN_SELECT} WHERE c.id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    let mut c = [campaign_row(&row.ok_or(StoreError::NotFound)?)?];
    load_progress(conn, &mut c).await?;
    let [c] = c;
    Ok(c)
}

/// What the audit log keeps of a campaign (its progress changes without an audit row).
fn audited(c: &Campaign) -> Option<serde_json::Value> {
    let mut v = json(c)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("progress");
    }
    Some(v)
}

/// The set-based `INSERT … SELECT` queueing `members` on channel `ch`: those not queued yet
/// (by dedupe key), with an address of the channel's kind, consent and no block.
async fn fanout_sql(store: &Store, members: &Members, ch: &ChannelRef, f: &Fanout<'_>) -> Result<Sql> {
    let now = now_text();
    let mut sql = Sql::new(
        "INSERT INTO outbox (dedupe_key, campaign_id, trigger_code, reader_id, channel_id, address, template_id, vars_json, purpose, \
         lang, status, attempts, next_attempt_at, created_at) SELECT x.dedupe, ",
    );
    sql.bind(f.campaign_id)
        .push(", ")
        .bind(f.trigger.map(|t| t.code().to_string()))
        .push(", x.reader_id, ")
        .bind(ch.id)
        .push(", x.address, ")
        .bind(f.template_id)
        .push(", NULL, ")
        .bind(f.purpose.code())
        .push(", x.lang, ")
        .bind(OutboxStatus::Pending.code())
        .push(", 0, ")
        .bind(now.as_str())
        .push(", ")
        .bind(now.as_str())
        .push(" FROM (SELECT r.id AS reader_id, COALESCE(r.lang, 'zh') AS lang, ");
    push_key(&mut sql, f);
    sql.push(" AS dedupe, ");
    push_address(&mut sql, ch);
    sql.push(" AS address, ");
    push_consent(&mut sql, f.purpose, ch.kind);
    sql.push(" AS consent FROM readers r WHERE ");
    store.push_members(&mut sql, members).await?;
    sql.push(" AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.dedupe_key = ");
    push_key(&mut sql, f);
    sql.push(")) x WHERE x.address IS NOT NULL AND x.consent = 1 AND NOT ");
    push_blocked(&mut sql, ch.kind, "x.address");
    sql.push(" ON CONFLICT (dedupe_key) DO NOTHING");
    Ok(sql)
}

impl Store {
    /// Appends the condition selecting `members` among readers `r`.
    pub(crate) async fn push_members(&self, sql: &mut Sql, members: &Members) -> Result<()> {
        match members {
            Members::Segment(id) => {
                sql.push("r.id IN (");
                self.push_segment_members(sql, *id).await?;
                sql.push(")");
            }
            Members::CreatedSince(t) => {
                sql.push("r.status = ")
                    .bind(lector_domain::reader::ReaderStatus::Active.code())
                    .push(" AND r.created_at >= ")
                    .bind(t.as_str());
            }
            Members::ExpiringWithin(after, until) => {
                sql.push("r.status = ")
                    .bind(lector_domain::reader::ReaderStatus::Active.code())
                    .push(" AND r.expires_on > ")
                    .bind(after.as_str())
                    .push(" AND r.expires_on <= ")
                    .bind(until.as_str());
            }
        }
        Ok(())
    }

    /// The `INSERT … SELECT` statements that queue `members` on `channels` (enabled ones only),
    /// in order: each channel takes the readers no earlier channel took.
    pub(crate) async fn fanout_statements(&self, members: &Members, channels: &[ChannelRef], f: &Fanout<'_>) -> Result<Vec<Sql>> {
        let mut out = Vec::new();
        for ch in channels.iter().filter(|c| c.enabled) {
            out.push(fanout_sql(self, members, ch, f).await?);
        }
        Ok(out)
    }

    /// Who `members` are on `channels` for `purpose`: reachable per channel (in order), and why
    /// the others are left out. One query.
    pub(crate) async fn audience_of(&self, members: &Members, purpose: Purpose, channels: &[ChannelRef]) -> Result<Audience> {
        let enabled: Vec<&ChannelRef> = channels.iter().filter(|c| c.enabled).collect();
        let n = enabled.len();
        let mut sql = Sql::new("SELECT COUNT(*) AS members");
        if n > 0 {
            let sum_of = |prefix: &str| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(" + ");
            for i in 0..n {
                let earlier: String = (0..i).map(|j| format!(" AND ok{j} = 0")).collect();
                sql.push(&format!(", COALESCE(SUM(CASE WHEN ok{i} = 1{earlier} THEN 1 ELSE 0 END), 0) AS ch{i}"));
            }
            let (a, ac, ok) = (sum_of("a"), sum_of("ac"), sum_of("ok"));
            sql.push(&format!(
                ", COALESCE(SUM(CASE WHEN {a} = 0 THEN 1 ELSE 0 END), 0) AS no_address\
                 , COALESCE(SUM(CASE WHEN {a} > 0 AND {ac} = 0 THEN 1 ELSE 0 END), 0) AS no_consent\
                 , COALESCE(SUM(CASE WHEN {ac} > 0 AND {ok} = 0 THEN 1 ELSE 0 END), 0) AS blocked"
            ));
            sql.push(" FROM (SELECT y.*");
            for (i, ch) in enabled.iter().enumerate() {
                sql.push(&format!(", CASE WHEN ac{i} = 1 AND NOT "));
                push_blocked(&mut sql, ch.kind, &format!("y.addr{i}"));
                sql.push(&format!(" THEN 1 ELSE 0 END AS ok{i}"));
            }
            sql.push(" FROM (SELECT x.*");
            for i in 0..n {
                sql.push(&format!(
                    ", CASE WHEN x.addr{i} IS NULL THEN 0 ELSE 1 END AS a{i}, CASE WHEN x.addr{i} IS NOT NULL AND x.c{i} = 1 THEN 1 ELSE 0 END AS ac{i}"
                ));
            }
            sql.push(" FROM (SELECT r.id");
            for (i, ch) in enabled.iter().enumerate() {
                sql.push(", ");
                push_address(&mut sql, ch);
                sql.push(&format!(" AS addr{i}, "));
                push_consent(&mut sql, purpose, ch.kind);
                sql.push(&format!(" AS c{i}"));
            }
            sql.push(" FROM readers r WHERE ");
            self.push_members(&mut sql, members).await?;
            sql.push(") x) y) z");
        } else {
            sql.push(" FROM readers r WHERE ");
            self.push_members(&mut sql, members).await?;
        }
        let row = sql.query().fetch_one(&self.pool).await?;
        let get = |col: &str| -> Result<i64> { Ok(row.try_get::<i64, _>(col)?) };
        let members_n = get("members")?;
        let mut per_channel = Vec::new();
        let mut i = 0;
        for ch in channels {
            let count = if ch.enabled {
                let c = get(&format!("ch{i}"))?;
                i += 1;
                c
            } else {
                0
            };
            per_channel.push(ChannelCount { code: ch.code.clone(), name: ch.name.clone(), kind: ch.kind, enabled: ch.enabled, count });
        }
        let (no_address, no_consent, blocked) =
            if n > 0 { (get("no_address")?, get("no_consent")?, get("blocked")?) } else { (members_n, 0, 0) };
        Ok(Audience {
            members: members_n,
            recipients: per_channel.iter().map(|c| c.count).sum(),
            excluded_consent: no_consent,
            excluded_address: no_address,
            excluded_blocked: blocked,
            per_channel,
        })
    }

    /// Checks what a campaign input names exists; returns its purpose (the template's when not
    /// given).
    async fn check_references(&self, conn: &mut AnyConnection, input: &CampaignInput) -> Result<Purpose> {
        let mut errs = lector_domain::FieldErrors::default();
        let seg = sqlx::query("SELECT id FROM segments WHERE id = $1").bind(input.segment_id).fetch_optional(&mut *conn).await?;
        if seg.is_none() {
            errs.push(
                "segment_id",
                Msg::new(format!("没有编号为 {} 的读者分组", input.segment_id), format!("no segment {}", input.segment_id)),
            );
        }
        let tpl =
            sqlx::query("SELECT purpose FROM message_templates WHERE id = $1").bind(input.template_id).fetch_optional(&mut *conn).await?;
        let mut purpose = input.purpose;
        match tpl {
            None => errs.push(
                "template_id",
                Msg::new(format!("没有编号为 {} 的消息模板", input.template_id), format!("no template {}", input.template_id)),
            ),
            Some(r) => {
                if purpose.is_none() {
                    purpose = Some(stored(&r, "purpose", Purpose::parse)?);
                }
            }
        }
        let found = channels_by_code(conn, &input.channels).await?;
        let unknown: Vec<&str> = input.channels.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(c, _)| c.as_str()).collect();
        if !unknown.is_empty() {
            let list = unknown.join(", ");
            errs.push("channels", Msg::new(format!("没有这些渠道：{list}"), format!("no such channel: {list}")));
        }
        errs.finish(|| purpose.unwrap_or(Purpose::Service)).map_err(StoreError::Invalid)
    }

    /// Saves a new draft campaign. Audited as `campaign.create`.
    pub async fn create_campaign(&self, actor: &Actor, input: &CampaignInput) -> Result<Campaign> {
        let purpose = self.check_references(&mut *self.pool.acquire().await?, input).await?;
        let now = now_text();
        let mut tx = self.begin().await?;
        let (quiet_start, quiet_end) = input.quiet_hours.map(|q| (q.start(), q.end())).unzip();
        let row = sqlx::query(
            "INSERT INTO campaigns (name, segment_id, template_id, purpose, channels, status, scheduled_at, quiet_start, quiet_end,
                 created_by, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1) RETURNING id",
        )
        .bind(input.name.clone())
        .bind(input.segment_id)
        .bind(input.template_id)
        .bind(purpose.code().to_string())
        .bind(input.channels.join(","))
        .bind(CampaignStatus::Draft.code().to_string())
        .bind(input.scheduled_at.map(utc_text))
        .bind(quiet_start)
        .bind(quiet_end)
        .bind(actor.user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        let created = load_campaign(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "campaign.create",
                entity: "campaign",
                entity_id: Some(id.to_string()),
                summary: format!("{} → segment {}, channels {}", created.name, created.segment_id, created.channels.join(",")),
                before: None,
                after: audited(&created),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Changes a draft or scheduled campaign still at `expected_version`. Audited as
    /// `campaign.update`.
    pub async fn update_campaign(&self, actor: &Actor, id: i64, expected_version: i64, input: &CampaignInput) -> Result<Campaign> {
        let purpose = self.check_references(&mut *self.pool.acquire().await?, input).await?;
        let mut tx = self.begin().await?;
        let before = load_campaign(&mut tx, id).await?;
        if !before.status.is_editable() {
            return Err(StoreError::Conflict(Msg::new(
                format!("群发任务“{}”当前为“{}”，不能再修改", before.name, before.status.label().zh),
                format!("campaign '{}' is {}; it can no longer be changed", before.name, before.status.code()),
            )));
        }
        if before.status == CampaignStatus::Scheduled && input.scheduled_at.is_none() {
            return Err(StoreError::invalid(
                "scheduled_at",
                Msg::new(
                    "已排期的群发任务需要发送时间；要立即发送请用“立即发送”",
                    "a scheduled campaign needs a time; use “send now” to send it at once",
                ),
            ));
        }
        let (quiet_start, quiet_end) = input.quiet_hours.map(|q| (q.start(), q.end())).unzip();
        let updated = sqlx::query(
            "UPDATE campaigns SET name = $1, segment_id = $2, template_id = $3, purpose = $4, channels = $5, scheduled_at = $6,
                 quiet_start = $7, quiet_end = $8, updated_at = $9, version = version + 1
             WHERE id = $10 AND version = $11 AND status = $12",
        )
        .bind(input.name.clone())
        .bind(input.segment_id)
        .bind(input.template_id)
        .bind(purpose.code().to_string())
        .bind(input.channels.join(","))
        .bind(input.scheduled_at.map(utc_text))
        .bind(quiet_start)
        .bind(quiet_end)
        .bind(now_text())
        .bind(id)
        .bind(expected_version)
        .bind(before.status.code().to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(stale(&before, expected_version));
        }
        let after = load_campaign(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "campaign.update",
                entity: "campaign",
                entity_id: Some(id.to_string()),
                summary: after.name.clone(),
                before: audited(&before),
                after: audited(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a draft (anything that ever started keeps its history). Audited.
    pub async fn delete_campaign(&self, actor: &Actor, id: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let before = load_campaign(&mut tx, id).await?;
        if before.status != CampaignStatus::Draft {
            return Err(StoreError::Conflict(Msg::new(
                format!("只能删除草稿；群发任务“{}”当前为“{}”，可取消但不能删除", before.name, before.status.label().zh),
                format!("only drafts can be deleted; campaign '{}' is {} (cancel it instead)", before.name, before.status.code()),
            )));
        }
        let deleted = sqlx::query("DELETE FROM campaigns WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(CampaignStatus::Draft.code().to_string())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() != 1 {
            return Err(stale(&before, before.version));
        }
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "campaign.delete",
                entity: "campaign",
                entity_id: Some(id.to_string()),
                summary: before.name.clone(),
                before: audited(&before),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn campaign(&self, id: i64) -> Result<Campaign> {
        load_campaign(&mut *self.pool.acquire().await?, id).await
    }

    /// Campaigns, newest first, with their progress.
    pub async fn campaigns(&self, status: Option<CampaignStatus>, page: i64, per_page: i64) -> Result<Page<Campaign>> {
        let page = page.max(1);
        let per_page = per_page.clamp(1, 200);
        let mut filter = Sql::new("");
        if let Some(s) = status {
            filter.push(" WHERE c.status = ").bind(s.code());
        }
        let mut conn = self.pool.acquire().await?;
        let total: i64 = filter
            .with_text(&format!("SELECT COUNT(*) AS n FROM campaigns c{}", filter.text))
            .query()
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        let rows = filter
            .with_text(&format!("{CAMPAIGN_SELECT}{} ORDER BY c.id DESC LIMIT {per_page} OFFSET {}", filter.text, (page - 1) * per_page))
            .query()
            .fetch_all(&mut *conn)
            .await?;
        let mut items = rows.iter().map(campaign_row).collect::<Result<Vec<_>>>()?;
        load_progress(&mut conn, &mut items).await?;
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    /// Who campaign `id` reaches if it started now.
    pub async fn campaign_audience(&self, id: i64) -> Result<Audience> {
        let c = self.campaign(id).await?;
        self.audience(c.segment_id, c.purpose, &c.channels).await
    }

    /// Who a segment is on `channels` (codes in preference order) for `purpose`: the counts
    /// shown before sending.
    pub async fn audience(&self, segment_id: i64, purpose: Purpose, channels: &[String]) -> Result<Audience> {
        let found = channels_by_code(&mut *self.pool.acquire().await?, channels).await?;
        let channels: Vec<ChannelRef> = found.into_iter().flatten().collect();
        self.audience_of(&Members::Segment(segment_id), purpose, &channels).await
    }

    /// Sends a campaign now: materialises its recipients into the outbox. Refused (`Conflict`,
    /// nothing changes) when the campaign is not a draft or scheduled, when its segment matches
    /// nobody, when no channel is enabled, or when no member can be reached.
    pub async fn start_campaign(&self, actor: &Actor, id: i64) -> Result<Campaign> {
        self.launch(actor, id, false).await?.ok_or_else(|| {
            StoreError::Conflict(Msg::new("群发任务已由他人开始发送", "the campaign was started by someone else at the same moment"))
        })
    }

    /// Schedules a draft for its `scheduled_at` (which must lie ahead). Refused when the
    /// segment matches nobody now.
    pub async fn schedule_campaign(&self, actor: &Actor, id: i64) -> Result<Campaign> {
        let c = self.campaign(id).await?;
        c.status.after(CampaignAction::Schedule).map_err(StoreError::Conflict)?;
        match &c.scheduled_at {
            Some(t) if t.as_str() > now_text().as_str() => {}
            _ => {
                return Err(StoreError::invalid(
                    "scheduled_at",
                    Msg::new("请先设定一个将来的发送时间", "set a sending time in the future first"),
                ))
            }
        }
        let audience = self.audience(c.segment_id, c.purpose, &c.channels).await?;
        refuse_empty(&c, &audience)?;
        self.transition(actor, id, CampaignAction::Schedule).await
    }

    pub async fn pause_campaign(&self, actor: &Actor, id: i64) -> Result<Campaign> {
        self.transition(actor, id, CampaignAction::Pause).await
    }

    pub async fn resume_campaign(&self, actor: &Actor, id: i64) -> Result<Campaign> {
        self.transition(actor, id, CampaignAction::Resume).await
    }

    /// Cancels a campaign: its messages not yet sent are marked `cancelled` (those a worker is
    /// sending at this moment finish).
    pub async fn cancel_campaign(&self, actor: &Actor, id: i64) -> Result<Campaign> {
        self.transition(actor, id, CampaignAction::Cancel).await
    }

    /// Moves campaign `id` by `action` if its status allows it, atomically (a conditional
    /// update on the status read), with its audit row.
    async fn transition(&self, actor: &Actor, id: i64, action: CampaignAction) -> Result<Campaign> {
        let mut tx = self.begin().await?;
        let before = load_campaign(&mut tx, id).await?;
        let to = before.status.after(action).map_err(StoreError::Conflict)?;
        let now = now_text();
        let finished = to.is_final().then(|| now.clone());
        let updated = sqlx::query(
            "UPDATE campaigns SET status = $1, finished_at = COALESCE($2, finished_at), updated_at = $3, version = version + 1
             WHERE id = $4 AND status = $5",
        )
        .bind(to.code().to_string())
        .bind(finished)
        .bind(now)
        .bind(id)
        .bind(before.status.code().to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            let current = load_campaign(&mut tx, id).await?;
            return Err(stale(&current, before.version));
        }
        let mut note = String::new();
        if action == CampaignAction::Cancel {
            let n = sqlx::query("UPDATE outbox SET status = $1 WHERE campaign_id = $2 AND status = $3")
                .bind(OutboxStatus::Cancelled.code().to_string())
                .bind(id)
                .bind(OutboxStatus::Pending.code().to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            note = format!("; {n} pending messages cancelled");
        }
        let after = load_campaign(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: &format!("campaign.{}", action.code()),
                entity: "campaign",
                entity_id: Some(id.to_string()),
                summary: format!("{}: {} → {}{note}", after.name, before.status.code(), after.status.code()),
                before: audited(&before),
                after: audited(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Starts campaign `id`: `None` when another request or server started it first. For the
    /// scheduler (`scheduled`), an audience of nobody does not refuse: the campaign starts with
    /// no messages and completes at the next tick, its counts saying why.
    async fn launch(&self, actor: &Actor, id: i64, scheduled: bool) -> Result<Option<Campaign>> {
        let c = self.campaign(id).await?;
        c.status.after(CampaignAction::Start).map_err(StoreError::Conflict)?;
        let channels: Vec<ChannelRef> =
            channels_by_code(&mut *self.pool.acquire().await?, &c.channels).await?.into_iter().flatten().collect();
        let members = Members::Segment(c.segment_id);
        let audience = self.audience_of(&members, c.purpose, &channels).await?;
        if !scheduled {
            if !channels.iter().any(|ch| ch.enabled) {
                return Err(StoreError::Conflict(Msg::new(
                    format!("群发任务“{}”选择的渠道都已停用，请启用渠道或修改渠道顺序", c.name),
                    format!("every channel of campaign '{}' is disabled; enable one or change the channels", c.name),
                )));
            }
            refuse_empty(&c, &audience)?;
        }
        let key_prefix = format!("campaign:{id}:reader:");
        let fanout = Fanout {
            campaign_id: Some(id),
            trigger: None,
            template_id: c.template_id,
            purpose: c.purpose,
            key_prefix: &key_prefix,
            with_expiry: false,
        };
        // Built before the transaction: building may read (a segment's filter).
        let statements = self.fanout_statements(&members, &channels, &fanout).await?;
        let mut tx = self.begin().await?;
        let now = now_text();
        let moved = sqlx::query(
            "UPDATE campaigns SET status = $1, started_at = $2, updated_at = $2, version = version + 1 WHERE id = $3 AND status = $4",
        )
        .bind(CampaignStatus::Sending.code().to_string())
        .bind(now)
        .bind(id)
        .bind(c.status.code().to_string())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        for s in &statements {
            s.query().execute(&mut *tx).await?;
        }
        let recipients: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE campaign_id = $1").bind(id).fetch_one(&mut *tx).await?.try_get("n")?;
        sqlx::query("UPDATE campaigns SET recipients = $1, excluded_consent = $2, excluded_address = $3 WHERE id = $4")
            .bind(recipients)
            .bind(audience.excluded_consent)
            .bind(audience.excluded_address + audience.excluded_blocked)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let after = load_campaign(&mut tx, id).await?;
        let per_channel: Vec<String> = audience.per_channel.iter().map(|p| format!("{} {}", p.code, p.count)).collect();
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "campaign.start",
                entity: "campaign",
                entity_id: Some(id.to_string()),
                summary: format!(
                    "{}: {} → sending; {recipients} queued of {} members ({}); excluded: {} consent, {} no address, {} blocked",
                    c.name,
                    c.status.code(),
                    audience.members,
                    per_channel.join(", "),
                    audience.excluded_consent,
                    audience.excluded_address,
                    audience.excluded_blocked
                ),
                before: audited(&c),
                after: audited(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Starts scheduled campaigns whose time has come (materialises their recipients into the
    /// outbox) and marks sending campaigns with nothing left to send as completed. Called by the
    /// messaging worker on every tick; safe on several servers at once. Returns campaigns changed.
    pub async fn advance_campaigns(&self) -> Result<usize> {
        let actor = Actor::system("scheduler");
        let now = now_text();
        let due: Vec<i64> = sqlx::query("SELECT id FROM campaigns WHERE status = $1 AND scheduled_at <= $2 ORDER BY scheduled_at, id")
            .bind(CampaignStatus::Scheduled.code().to_string())
            .bind(now)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut changed = 0;
        for id in due {
            match self.launch(&actor, id, true).await {
                Ok(Some(_)) => changed += 1,
                Ok(None) => {}
                // Another server moved it on between the read and the start.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        const NOTHING_LEFT: &str = "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.campaign_id = campaigns.id AND o.status IN ($2, $3))";
        let finished: Vec<i64> = sqlx::query(&format!("SELECT id FROM campaigns WHERE status = $1 AND {NOTHING_LEFT}"))
            .bind(CampaignStatus::Sending.code().to_string())
            .bind(OutboxStatus::Pending.code().to_string())
            .bind(OutboxStatus::Sending.code().to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        for id in finished {
            let mut tx = self.begin().await?;
            let before = load_campaign(&mut tx, id).await?;
            let now = now_text();
            let done = sqlx::query(&format!(
                "UPDATE campaigns SET status = $4, finished_at = $5, updated_at = $5, version = version + 1
                 WHERE id = $6 AND status = $1 AND {NOTHING_LEFT}"
            ))
            .bind(CampaignStatus::Sending.code().to_string())
            .bind(OutboxStatus::Pending.code().to_string())
            .bind(OutboxStatus::Sending.code().to_string())
            .bind(CampaignStatus::Completed.code().to_string())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                continue;
            }
            let after = load_campaign(&mut tx, id).await?;
            let p = &after.progress;
            audit::record(
                &mut tx,
                &actor,
                Change {
                    action: "campaign.complete",
                    entity: "campaign",
                    entity_id: Some(id.to_string()),
                    summary: format!(
                        "{}: sending → completed; {} sent, {} failed, {} cancelled",
                        after.name, p.sent, p.failed, p.cancelled
                    ),
                    before: audited(&before),
                    after: audited(&after),
                },
            )
            .await?;
            tx.commit().await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// What became of campaign `id`'s messages: counts by channel and status, and the failures
    /// by reason.
    pub async fn campaign_report(&self, id: i64) -> Result<CampaignReport> {
        let mut conn = self.pool.acquire().await?;
        let campaign = load_campaign(&mut conn, id).await?;
        let rows = sqlx::query(
            "SELECT ch.code AS channel, o.status, COUNT(*) AS n FROM outbox o JOIN channels ch ON ch.id = o.channel_id
             WHERE o.campaign_id = $1 GROUP BY ch.code, o.status ORDER BY ch.code, o.status",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        let by_channel = rows
            .iter()
            .map(|r| {
                Ok(ChannelStatusCount {
                    channel: r.try_get("channel")?,
                    status: stored(r, "status", OutboxStatus::parse)?,
                    count: r.try_get("n")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT COALESCE(last_error, '') AS reason, COUNT(*) AS n FROM outbox WHERE campaign_id = $1 AND status = $2
             GROUP BY COALESCE(last_error, '') ORDER BY COUNT(*) DESC, COALESCE(last_error, '') LIMIT 50",
        )
        .bind(id)
        .bind(OutboxStatus::Failed.code().to_string())
        .fetch_all(&mut *conn)
        .await?;
        let failures =
            rows.iter().map(|r| Ok(FailureCount { reason: r.try_get("reason")?, count: r.try_get("n")? })).collect::<Result<Vec<_>>>()?;
        Ok(CampaignReport { campaign, by_channel, failures })
    }

    /// Campaign `id`'s messages, one per recipient, in the order they were queued; optionally
    /// only those in `status`.
    pub async fn campaign_recipients(&self, id: i64, status: Option<OutboxStatus>, page: i64, per_page: i64) -> Result<Page<Recipient>> {
        let page = page.max(1);
        let per_page = per_page.clamp(1, 500);
        let mut conn = self.pool.acquire().await?;
        load_campaign(&mut conn, id).await?;
        let mut filter = Sql::new(" WHERE o.campaign_id = ");
        filter.bind(id);
        if let Some(s) = status {
            filter.push(" AND o.status = ").bind(s.code());
        }
        let total: i64 = filter
            .with_text(&format!("SELECT COUNT(*) AS n FROM outbox o{}", filter.text))
            .query()
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        let rows = filter
            .with_text(&format!(
                "SELECT o.id, o.reader_id, r.card_no, r.name, ch.code AS channel, ch.kind AS channel_kind, o.address, o.status, o.attempts, o.sent_at, o.last_error
                 FROM outbox o JOIN channels ch ON ch.id = o.channel_id LEFT JOIN readers r ON r.id = o.reader_id{}
                 ORDER BY o.id LIMIT {per_page} OFFSET {}",
                filter.text,
                (page - 1) * per_page
            ))
            .query()
            .fetch_all(&mut *conn)
            .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(Recipient {
                    outbox_id: r.try_get("id")?,
                    reader_id: r.try_get("reader_id")?,
                    card_no: r.try_get("card_no")?,
                    name: r.try_get("name")?,
                    channel: r.try_get("channel")?,
                    channel_kind: stored(r, "channel_kind", ChannelKind::parse)?,
                    address: r.try_get("address")?,
                    status: stored(r, "status", OutboxStatus::parse)?,
                    attempts: r.try_get("attempts")?,
                    sent_at: r.try_get("sent_at")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    /// The messages sent or queued to reader `reader_id`, newest first (at most `limit`).
    pub async fn reader_messages(&self, reader_id: i64, limit: i64) -> Result<Vec<ReaderMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT o.id, o.campaign_id, c.name AS campaign_name, o.trigger_code, ch.code AS channel, ch.kind AS channel_kind, o.status,
                 o.created_at, o.sent_at, o.last_error
             FROM outbox o JOIN channels ch ON ch.id = o.channel_id LEFT JOIN campaigns c ON c.id = o.campaign_id
             WHERE o.reader_id = $1 ORDER BY o.id DESC LIMIT {}",
            limit.clamp(1, 1000)
        ))
        .bind(reader_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReaderMessage {
                    outbox_id: r.try_get("id")?,
                    campaign_id: r.try_get("campaign_id")?,
                    campaign_name: r.try_get("campaign_name")?,
                    trigger: r.try_get::<Option<String>, _>("trigger_code")?.and_then(|t| Trigger::parse(&t).ok()),
                    channel: r.try_get("channel")?,
                    channel_kind: stored(r, "channel_kind", ChannelKind::parse)?,
                    status: stored(r, "status", OutboxStatus::parse)?,
                    created_at: r.try_get("created_at")?,
                    sent_at: r.try_get("sent_at")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    /// Records how a campaign that just started went, without sending anything: its queued
    /// messages are marked sent (at `at`, plus a minute per thousand), those to the readers in
    /// `failed` failed with their reason, and the campaign completes as of `at`. For history
    /// carried over from another system and for demo data; audited as `campaign.history`.
    pub async fn record_campaign_history(
        &self,
        actor: &Actor,
        id: i64,
        at: chrono::DateTime<chrono::Utc>,
        failed: &[(i64, String)],
    ) -> Result<Campaign> {
        let mut tx = self.begin().await?;
        let before = load_campaign(&mut tx, id).await?;
        if before.status != CampaignStatus::Sending || before.progress.pending != before.progress.total() {
            return Err(StoreError::Conflict(Msg::new(
                format!("只能为刚开始、尚未发送任何消息的群发任务记录历史；“{}”当前为“{}”", before.name, before.status.label().zh),
                format!(
                    "history can only be recorded for a campaign that just started and sent nothing; '{}' is {}",
                    before.name,
                    before.status.code()
                ),
            )));
        }
        let started = utc_text(at);
        let finished = utc_text(at + chrono::Duration::minutes(1 + before.progress.pending / 1000));
        sqlx::query(
            "UPDATE outbox SET status = $1, attempts = 1, sent_at = $2, created_at = $3, next_attempt_at = $3 WHERE campaign_id = $4",
        )
        .bind(OutboxStatus::Sent.code().to_string())
        .bind(finished.clone())
        .bind(started.clone())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for (reader, reason) in failed {
            sqlx::query("UPDATE outbox SET status = $1, sent_at = NULL, last_error = $2 WHERE campaign_id = $3 AND reader_id = $4")
                .bind(OutboxStatus::Failed.code().to_string())
                .bind(reason.clone())
                .bind(id)
                .bind(*reader)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE campaigns SET status = $1, started_at = $2, finished_at = $3, updated_at = $3, version = version + 1 WHERE id = $4",
        )
        .bind(CampaignStatus::Completed.code().to_string())
        .bind(started)
        .bind(finished)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let after = load_campaign(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "campaign.history",
                entity: "campaign",
                entity_id: Some(id.to_string()),
                summary: format!("{}: recorded as sent ({} sent, {} failed)", after.name, after.progress.sent, after.progress.failed),
                before: audited(&before),
                after: audited(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// A staff member's own email address (for "send a test to yourself"), if set.
    pub async fn user_email(&self, user_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT email FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.pool).await?;
        Ok(row.ok_or(StoreError::NotFound)?.try_get("email")?)
    }
}

/// Refuses to send (or schedule) a campaign that would reach nobody, saying why.
fn refuse_empty(c: &Campaign, a: &Audience) -> Result<()> {
    if a.members == 0 {
        return Err(StoreError::Conflict(Msg::new(
            format!("群发任务“{}”的读者分组当前没有任何读者，无法发送", c.name),
            format!("the segment of campaign '{}' matches no reader; there is nobody to send to", c.name),
        )));
    }
    if a.recipients == 0 {
        return Err(StoreError::Conflict(Msg::new(
            format!(
                "分组中的 {} 位读者都无法送达：{} 位未授权，{} 位没有可用地址，{} 位地址已停用",
                a.members, a.excluded_consent, a.excluded_address, a.excluded_blocked
            ),
            format!(
                "none of the segment's {} readers can be reached: {} without consent, {} without an address, {} with blocked addresses",
                a.members, a.excluded_consent, a.excluded_address, a.excluded_blocked
            ),
        )));
    }
    Ok(())
}

fn stale(current: &Campaign, expected: i64) -> StoreError {
    StoreError::Conflict(Msg::new(
        format!(
            "群发任务“{}”已被他人修改（当前版本 {}，状态“{}”；你看到的是版本 {expected}），请刷新后重试",
            current.name,
            current.version,
            current.status.label().zh
        ),
        format!(
            "campaign '{}' was changed by someone else (now version {}, {}; you saw version {expected}); reload and try again",
            current.name,
            current.version,
            current.status.code()
        ),
    ))
}
