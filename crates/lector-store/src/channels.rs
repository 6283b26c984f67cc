//! Channels (消息渠道): the configured ways messages leave (an SMTP server, an SMS gateway, robots,
//! webhooks). A channel's secret is written but never read back by anything except the sending
//! worker: lists, pages, the API and the audit log see `has_secret` only.

use crate::audit::{self, Change};
use crate::db::{flag, is_unique_violation, Store};
use crate::{now_text, Actor, Result, StoreError};
use lector_domain::attribute::parse_code;
use lector_domain::messaging::{ChannelKind, ChannelSettings};
use lector_domain::{text, FieldErrors, Msg};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

/// The fastest a channel may be configured to send.
pub const MAX_RATE_PER_SECOND: i64 = 10_000;

/// A channel as everyone but the sending worker sees it: no secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Channel {
    pub id: i64,
    pub code: String,
    pub kind: ChannelKind,
    pub name: String,
    pub settings: ChannelSettings,
    /// Whether a secret (password, signing secret, token) is stored.
    pub has_secret: bool,
    pub rate_per_second: i64,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Incremented by every change; the worker rebuilds its sender when it moves.
    pub version: i64,
}

/// A channel as entered. `secret`: `None` or empty keeps the stored one (a new channel gets none).
#[derive(Clone)]
pub struct ChannelInput {
    pub code: String,
    pub name: String,
    pub settings: ChannelSettings,
    pub secret: Option<String>,
    pub rate_per_second: i64,
    pub enabled: bool,
}

/// Never prints the secret, so an input that ends up in a log does not leak it.
impl std::fmt::Debug for ChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelInput")
            .field("code", &self.code)
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("rate_per_second", &self.rate_per_second)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl ChannelInput {
    /// The cleaned code, name and settings, and the new secret if one was entered.
    fn parse(&self) -> Result<(String, String, ChannelSettings, Option<String>)> {
        let mut errs = FieldErrors::default();
        let code = errs.take("code", parse_code(&self.code));
        let name = text::clean(&self.name);
        if name.is_empty() || name.chars().count() > 64 {
            errs.push("name", Msg::new("名称应为 1 到 64 个字符", "a name has 1 to 64 characters"));
        }
        let settings = clean_settings(&self.settings);
        if let Err(m) = settings.validate() {
            errs.push("settings", m);
        }
        if !(1..=MAX_RATE_PER_SECOND).contains(&self.rate_per_second) {
            errs.push(
                "rate_per_second",
                Msg::new(
                    format!("发送速率应为每秒 1 到 {MAX_RATE_PER_SECOND} 条"),
                    format!("the rate is 1 to {MAX_RATE_PER_SECOND} messages per second"),
                ),
            );
        }
        let secret = self.secret.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        errs.finish(|| (code.unwrap_or_default(), name, settings, secret)).map_err(StoreError::Invalid)
    }
}

/// Settings with surrounding blanks removed from every text, and an empty user name as none.
fn clean_settings(s: &ChannelSettings) -> ChannelSettings {
    let mut s = s.clone();
    let c = |v: &mut String| *v = text::clean(v);
    match &mut s {
        ChannelSettings::Email { host, username, from_address, from_name, .. } => {
            c(host);
            c(from_address);
            c(from_name);
            *username = username.as_deref().map(text::clean).filter(|u| !u.is_empty());
        }
        ChannelSettings::Sms { url, mobile_field, text_field } => {
            c(url);
            c(mobile_field);
            c(text_field);
        }
        ChannelSettings::Wecom { url }
        | ChannelSettings::Dingtalk { url }
        | ChannelSettings::Qq { url }
        | ChannelSettings::Webhook { url } => c(url),
    }
    s
}

const CHANNEL_COLUMNS: &str =
    "SELECT id, code, kind, name, settings_json, CASE WHEN secret IS NULL THEN 0 ELSE 1 END AS has_secret, rate_per_second, enabled, \
     created_at, updated_at, version FROM channels";

/// One channel read inside a write's transaction (a missing one is `NotFound`), so every write
/// reads its channel the same way.
async fn load(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Channel> {
    let row = sqlx::query(&format!("{CHANNEL_COLUMNS} WHERE id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(channel).transpose()?.ok_or(StoreError::NotFound)
}

fn channel(row: &AnyRow) -> Result<Channel> {
    let kind: String = row.try_get("kind")?;
    let settings: String = row.try_get("settings_json")?;
    Ok(Channel {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        kind: ChannelKind::parse(&kind).map_err(|m| StoreError::Other(m.en))?,
        name: row.try_get("name")?,
        settings: serde_json::from_str(&settings).map_err(|e| StoreError::Other(format!("stored channel settings: {e}")))?,
        has_secret: flag(row, "has_secret")?,
        rate_per_second: row.try_get("rate_per_second")?,
        enabled: flag(row, "enabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn taken(code: &str) -> StoreError {
    StoreError::Conflict(Msg::new(format!("渠道代码“{code}”已存在"), format!("channel code '{code}' is taken")))
}

/// The audit view of a channel: its settings and whether a secret is set, never the secret.
fn audit_json(c: &Channel, secret_changed: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if secret_changed {
        v["secret"] = serde_json::Value::String("(changed)".into());
    }
    v
}

impl Store {
    /// Every channel, by code.
    pub async fn channels(&self) -> Result<Vec<Channel>> {
        let rows = sqlx::query(&format!("{CHANNEL_COLUMNS} ORDER BY code")).fetch_all(&self.pool).await?;
        rows.iter().map(channel).collect()
    }

    pub async fn channel(&self, id: i64) -> Result<Channel> {
        let row = sqlx::query(&format!("{CHANNEL_COLUMNS} WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(channel).transpose()?.ok_or(StoreError::NotFound)
    }

    pub async fn channel_by_code(&self, code: &str) -> Result<Channel> {
        let row = sqlx::query(&format!("{CHANNEL_COLUMNS} WHERE code = $1")).bind(code.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(channel).transpose()?.ok_or(StoreError::NotFound)
    }

    /// A channel with its secret, for building a sender (the worker, a test send). Nothing that
    /// shows or logs data may call this.
    pub async fn channel_for_sending(&self, id: i64) -> Result<(Channel, Option<String>)> {
        let c = self.channel(id).await?;
        let secret: Option<String> =
            sqlx::query("SELECT secret FROM channels WHERE id = $1").bind(id).fetch_one(&self.pool).await?.try_get("secret")?;
        Ok((c, secret))
    }

    pub async fn create_channel(&self, actor: &Actor, input: &ChannelInput) -> Result<Channel> {
        let (code, name, settings, secret) = input.parse()?;
        let now = now_text();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO channels (code, kind, name, settings_json, secret, rate_per_second, enabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(code.clone())
        .bind(settings.kind().code().to_string())
        .bind(name)
        .bind(serde_json::to_string(&settings).unwrap_or_default())
        .bind(secret.clone())
        .bind(input.rate_per_second)
        .bind(input.enabled as i64)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { taken(&code) } else { e.into() })?;
        let id: i64 = row.try_get("id")?;
        let c = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "channel.create",
                entity: "channel",
                entity_id: Some(id.to_string()),
                summary: format!("{} ({})", c.name, c.kind.code()),
                before: None,
                after: Some(audit_json(&c, secret.is_some())),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Changes a channel. Its kind is fixed at creation; an empty secret keeps the stored one.
    /// `expected_version` (when given) must match, or nothing changes.
    pub async fn update_channel(&self, actor: &Actor, id: i64, expected_version: Option<i64>, input: &ChannelInput) -> Result<Channel> {
        let (code, name, settings, secret) = input.parse()?;
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if settings.kind() != before.kind {
            return Err(StoreError::invalid(
                "settings",
                Msg::new(
                    format!("渠道类型创建后不能更改（此渠道为{}）", before.kind.label().zh),
                    format!("a channel's kind cannot change (this one is {})", before.kind.label().en),
                ),
            ));
        }
        if expected_version.is_some_and(|v| v != before.version) {
            return Err(stale());
        }
        sqlx::query(
            "UPDATE channels SET code = $1, name = $2, settings_json = $3, secret = COALESCE($4, secret), rate_per_second = $5,
             enabled = $6, updated_at = $7, version = version + 1 WHERE id = $8",
        )
        .bind(code.clone())
        .bind(name)
        .bind(serde_json::to_string(&settings).unwrap_or_default())
        .bind(secret.clone())
        .bind(input.rate_per_second)
        .bind(input.enabled as i64)
        .bind(now_text())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { taken(&code) } else { e.into() })?;
        let after = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "channel.update",
                entity: "channel",
                entity_id: Some(id.to_string()),
                summary: format!("{} ({})", after.name, after.kind.code()),
                before: Some(audit_json(&before, false)),
                after: Some(audit_json(&after, secret.is_some())),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Switches a channel on or off. The worker leaves messages of a disabled channel waiting.
    pub async fn set_channel_enabled(&self, actor: &Actor, id: i64, enabled: bool) -> Result<Channel> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE channels SET enabled = $1, updated_at = $2, version = version + 1 WHERE id = $3")
            .bind(enabled as i64)
            .bind(now_text())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let c = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: if enabled { "channel.enable" } else { "channel.disable" },
                entity: "channel",
                entity_id: Some(id.to_string()),
                summary: c.name.clone(),
                before: None,
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }
}

pub(crate) fn stale() -> StoreError {
    StoreError::Conflict(Msg::new("记录已被他人修改，请刷新后重试", "the record was changed by someone else; reload and try again"))
}
