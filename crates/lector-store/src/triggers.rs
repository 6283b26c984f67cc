//! Triggered messages (welcome, card expiry, case updates, portal sign-in codes): their settings
//! (template, channels in order of preference, on/off), queueing one for a reader or an address,
//! and the sweeps that find readers to welcome or remind.
//!
//! Triggered messages are service notices: they go out while the reader's consent for `service`
//! on the channel's kind holds (granted unless withdrawn). The portal sign-in code is the
//! exception: the reader asks for it at that moment, and it is their way back to the consent
//! settings, so a withdrawal does not stop it.

use crate::audit::{self, Change};
use crate::campaigns::{channels_by_code, push_address, push_consent, split_codes, ChannelRef, Fanout, Members};
use crate::cases::Case;
use crate::db::{flag, Sql};
use crate::outbox::NewMessage;
use crate::{now_text, Actor, Result, Store, StoreError};
use lector_domain::contact::{Email, Mobile};
use lector_domain::messaging::{ChannelKind, Purpose, Trigger};
use lector_domain::Msg;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

/// What became of a triggered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// Queued as outbox row `id` on the channel with this code.
    Queued { outbox_id: i64, channel: String },
    /// Already queued before (same dedupe key).
    AlreadyQueued,
    /// Not sent, and why (trigger disabled, no consent, no address on any configured channel).
    Skipped(lector_domain::Msg),
}

/// How one triggered message is sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TriggerSetting {
    pub trigger: Trigger,
    pub template_id: Option<i64>,
    pub template_name: Option<String>,
    /// Channel codes in order of preference.
    pub channels: Vec<String>,
    pub enabled: bool,
    /// When it was last switched on: the welcome sweep only greets readers created since.
    pub enabled_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A change to a trigger's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerSettingInput {
    pub template_id: Option<i64>,
    pub channels: Vec<String>,
    pub enabled: bool,
}

/// Days a welcome may lag behind the reader's creation (a server down for a while, a trigger
/// enabled before a bulk load) before it is no longer worth sending.
const WELCOME_WITHIN_DAYS: i64 = 30;
/// Days before a card expires that its reader is reminded.
pub const CARD_EXPIRY_DAYS: i64 = 30;

fn setting_row(trigger: Trigger, r: Option<&AnyRow>) -> Result<TriggerSetting> {
    let Some(r) = r else {
        return Ok(TriggerSetting {
            trigger,
            template_id: None,
            template_name: None,
            channels: Vec::new(),
            enabled: false,
            enabled_at: None,
            updated_at: None,
        });
    };
    Ok(TriggerSetting {
        trigger,
        template_id: r.try_get("template_id")?,
        template_name: r.try_get("template_name")?,
        channels: split_codes(&r.try_get::<String, _>("channels")?),
        enabled: flag(r, "enabled")?,
        enabled_at: r.try_get("enabled_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const SETTING_SELECT: &str = "SELECT s.trigger_code, s.template_id, t.name AS template_name, s.channels, s.enabled, s.enabled_at, \
    s.updated_at FROM trigger_settings s LEFT JOIN message_templates t ON t.id = s.template_id";

/// Why a triggered message cannot go to a reader, from what the channels showed.
fn skipped_reason(trigger: Trigger, seen_address: bool, seen_consent: bool) -> Msg {
    let what = trigger.label();
    if !seen_address {
        Msg::new(
            format!("“{}”未发送：读者在所选渠道上都没有联系方式", what.zh),
            format!("{} not sent: the reader has no address on any of its channels", what.en),
        )
    } else if !seen_consent {
        Msg::new(
            format!("“{}”未发送：读者已在这些渠道上退订服务通知", what.zh),
            format!("{} not sent: the reader withdrew consent to service notices on those channels", what.en),
        )
    } else {
        Msg::new(
            format!("“{}”未发送：读者的地址已因多次发送失败而停用", what.zh),
            format!("{} not sent: the reader's addresses are blocked after failed deliveries", what.en),
        )
    }
}

async fn is_blocked(conn: &mut sqlx::AnyConnection, kind: ChannelKind, address: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 AS b FROM address_health WHERE channel_kind = $1 AND address = $2 AND blocked_at IS NOT NULL")
        .bind(kind.code().to_string())
        .bind(address.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

impl Store {
    /// Every trigger's settings (off, without template or channels, until set).
    pub async fn trigger_settings(&self) -> Result<Vec<TriggerSetting>> {
        let rows = sqlx::query(SETTING_SELECT).fetch_all(&self.pool).await?;
        Trigger::ALL
            .iter()
            .map(|t| {
                let row = rows.iter().find(|r| r.try_get::<String, _>("trigger_code").ok().as_deref() == Some(t.code()));
                setting_row(*t, row)
            })
            .collect()
    }

    pub async fn trigger_setting(&self, trigger: Trigger) -> Result<TriggerSetting> {
        let row = sqlx::query(&format!("{SETTING_SELECT} WHERE s.trigger_code = $1"))
            .bind(trigger.code().to_string())
            .fetch_optional(&self.pool)
            .await?;
        setting_row(trigger, row.as_ref())
    }

    /// Sets how `trigger` is sent. Switching it on needs a template and a channel, and starts
    /// the welcome sweep's window afresh. Audited as `trigger.update`.
    pub async fn set_trigger_setting(&self, actor: &Actor, trigger: Trigger, input: &TriggerSettingInput) -> Result<TriggerSetting> {
        let mut errs = lector_domain::FieldErrors::default();
        let mut codes: Vec<String> = Vec::new();
        for c in input.channels.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
            if !codes.iter().any(|x| x == c) {
                codes.push(c.to_string());
            }
        }
        let mut conn = self.pool.acquire().await?;
        let unknown: Vec<String> =
            codes.iter().zip(channels_by_code(&mut conn, &codes).await?).filter(|(_, f)| f.is_none()).map(|(c, _)| c.clone()).collect();
        if !unknown.is_empty() {
            let list = unknown.join(", ");
            errs.push("channels", Msg::new(format!("没有这些渠道：{list}"), format!("no such channel: {list}")));
        }
        if let Some(t) = input.template_id {
            let found = sqlx::query("SELECT id FROM message_templates WHERE id = $1").bind(t).fetch_optional(&mut *conn).await?;
            if found.is_none() {
                errs.push("template_id", Msg::new(format!("没有编号为 {t} 的消息模板"), format!("no template {t}")));
            }
        }
        if input.enabled {
            if input.template_id.is_none() {
                errs.push("template_id", Msg::new("启用前请选择消息模板", "choose a template before switching it on"));
            }
            if codes.is_empty() {
                errs.push("channels", Msg::new("启用前请至少选择一个渠道", "choose at least one channel before switching it on"));
            }
        }
        drop(conn);
        if !errs.is_empty() {
            return Err(StoreError::Invalid(errs));
        }
        let before = self.trigger_setting(trigger).await?;
        let now = now_text();
        let enabled_at = match (input.enabled, before.enabled) {
            (true, true) => before.enabled_at.clone(),
            (true, false) => Some(now.clone()),
            (false, _) => None,
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO trigger_settings (trigger_code, template_id, channels, enabled, enabled_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (trigger_code) DO UPDATE SET template_id = excluded.template_id, channels = excluded.channels,
                 enabled = excluded.enabled, enabled_at = excluded.enabled_at, updated_at = excluded.updated_at",
        )
        .bind(trigger.code().to_string())
        .bind(input.template_id)
        .bind(codes.join(","))
        .bind(input.enabled as i64)
        .bind(enabled_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("{SETTING_SELECT} WHERE s.trigger_code = $1"))
            .bind(trigger.code().to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let after = setting_row(trigger, row.as_ref())?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "trigger.update",
                entity: "trigger",
                entity_id: Some(trigger.code().to_string()),
                summary: format!(
                    "{}: {}, template {:?}, channels {}",
                    trigger.code(),
                    if after.enabled { "on" } else { "off" },
                    after.template_id,
                    after.channels.join(",")
                ),
                before: serde_json::to_value(&before).ok(),
                after: serde_json::to_value(&after).ok(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Queues `trigger` for a reader (address from their contact points) or, with `reader_id`
    /// `None`, for `address` alone (a portal case filed without an account). `vars` are extra
    /// template variables; `dedupe` makes a repeat a no-op.
    ///
    /// A reader gets it on the first channel of the trigger's preference list on which they have
    /// an address (primary contact first) that is not blocked and their consent to service
    /// notices holds. An address alone goes to the first channel that fits it: an email address
    /// to an email channel, a mainland mobile number to an SMS channel.
    pub async fn enqueue_trigger(
        &self,
        trigger: Trigger,
        reader_id: Option<i64>,
        address: Option<&str>,
        vars: serde_json::Value,
        dedupe: &str,
    ) -> Result<TriggerOutcome> {
        let dedupe = dedupe.trim();
        if dedupe.is_empty() {
            return Err(StoreError::invalid("dedupe", Msg::new("缺少去重键", "a dedupe key is needed")));
        }
        let setting = self.trigger_setting(trigger).await?;
        let label = trigger.label();
        let (true, Some(template_id)) = (setting.enabled, setting.template_id) else {
            return Ok(TriggerOutcome::Skipped(Msg::new(
                format!("“{}”未启用，请在“触发消息”设置中选择模板和渠道并启用", label.zh),
                format!("{} is switched off; choose its template and channels and switch it on under triggered messages", label.en),
            )));
        };
        let mut conn = self.pool.acquire().await?;
        let seen = sqlx::query("SELECT id FROM outbox WHERE dedupe_key = $1").bind(dedupe.to_string()).fetch_optional(&mut *conn).await?;
        if seen.is_some() {
            return Ok(TriggerOutcome::AlreadyQueued);
        }
        let channels: Vec<ChannelRef> =
            channels_by_code(&mut conn, &setting.channels).await?.into_iter().flatten().filter(|c| c.enabled).collect();
        if channels.is_empty() {
            return Ok(TriggerOutcome::Skipped(Msg::new(
                format!("“{}”未发送：它选择的渠道都未配置或已停用", label.zh),
                format!("{} not sent: none of its channels is configured and enabled", label.en),
            )));
        }
        let picked = match (reader_id, address) {
            (Some(id), _) => self.pick_for_reader(&mut conn, trigger, id, &channels).await?,
            (None, Some(a)) => pick_for_address(&mut conn, trigger, a, &channels).await?,
            (None, None) => {
                return Err(StoreError::invalid("address", Msg::new("需要读者或收件地址", "a reader or an address is needed")));
            }
        };
        drop(conn);
        let (ch, address, lang) = match picked {
            Ok(p) => p,
            Err(why) => return Ok(TriggerOutcome::Skipped(why)),
        };
        let msg = NewMessage {
            dedupe_key: dedupe.to_string(),
            campaign_id: None,
            trigger: Some(trigger),
            reader_id,
            channel_id: ch.id,
            address,
            template_id,
            vars,
            purpose: Purpose::Service,
            lang,
            not_before: None,
        };
        Ok(match self.enqueue_message(&msg).await? {
            Some(outbox_id) => TriggerOutcome::Queued { outbox_id, channel: ch.code },
            None => TriggerOutcome::AlreadyQueued,
        })
    }

    /// The channel, address and language for reader `id`, or why none fits.
    async fn pick_for_reader(
        &self,
        conn: &mut sqlx::AnyConnection,
        trigger: Trigger,
        id: i64,
        channels: &[ChannelRef],
    ) -> Result<Result<(ChannelRef, String, String), Msg>> {
        let (mut seen_address, mut seen_consent) = (false, false);
        for ch in channels {
            let mut sql = Sql::new("SELECT COALESCE(r.lang, 'zh') AS lang, ");
            push_address(&mut sql, ch);
            sql.push(" AS address, ");
            push_consent(&mut sql, Purpose::Service, ch.kind);
            sql.push(" AS consent FROM readers r WHERE r.id = ").bind(id);
            let row = sql.query().fetch_optional(&mut *conn).await?.ok_or(StoreError::NotFound)?;
            let Some(address) = row.try_get::<Option<String>, _>("address")? else {
                continue;
            };
            seen_address = true;
            if trigger != Trigger::PortalCode && row.try_get::<i64, _>("consent")? != 1 {
                continue;
            }
            seen_consent = true;
            if is_blocked(conn, ch.kind, &address).await? {
                continue;
            }
            let lang: String = row.try_get("lang")?;
            return Ok(Ok((ch.clone(), address, lang)));
        }
        Ok(Err(skipped_reason(trigger, seen_address, seen_consent)))
    }

    /// Queues the sweeps' messages: welcome for readers created since the trigger was enabled,
    /// card expiry reminders 30 days before `today`'s expiring cards. Returns how many were queued.
    ///
    /// Each sweep is one set-based enqueue per channel, idempotent through its dedupe keys
    /// (`trigger:welcome:{reader}`, `trigger:card_expiry:{reader}:{expires_on}`), so running it
    /// often, late or on several servers queues each message once. Cards 1–29 days from expiry
    /// that were never reminded (the server was down on their day) are reminded too, and welcomes
    /// catch up on readers created in the last 30 days.
    pub async fn sweep_triggers(&self, today: chrono::NaiveDate) -> Result<usize> {
        let mut queued = 0;
        let welcome = self.trigger_setting(Trigger::Welcome).await?;
        if let (true, Some(template_id), Some(enabled_at)) = (welcome.enabled, welcome.template_id, welcome.enabled_at.as_deref()) {
            let window = (today - chrono::Duration::days(WELCOME_WITHIN_DAYS)).format("%Y-%m-%d").to_string();
            let since = if enabled_at > window.as_str() { enabled_at.to_string() } else { window };
            queued += self.sweep(Trigger::Welcome, template_id, &welcome.channels, Members::CreatedSince(since), false).await?;
        }
        let expiry = self.trigger_setting(Trigger::CardExpiry).await?;
        if let (true, Some(template_id)) = (expiry.enabled, expiry.template_id) {
            let until = (today + chrono::Duration::days(CARD_EXPIRY_DAYS)).format("%Y-%m-%d").to_string();
            let members = Members::ExpiringWithin(today.format("%Y-%m-%d").to_string(), until);
            queued += self.sweep(Trigger::CardExpiry, template_id, &expiry.channels, members, true).await?;
        }
        Ok(queued)
    }

    async fn sweep(&self, trigger: Trigger, template_id: i64, codes: &[String], members: Members, with_expiry: bool) -> Result<usize> {
        let channels: Vec<ChannelRef> = channels_by_code(&mut *self.pool.acquire().await?, codes).await?.into_iter().flatten().collect();
        let key_prefix = format!("trigger:{}:", trigger.code());
        let fanout = Fanout {
            campaign_id: None,
            trigger: Some(trigger),
            template_id,
            purpose: Purpose::Service,
            key_prefix: &key_prefix,
            with_expiry,
        };
        let statements = self.fanout_statements(&members, &channels, &fanout).await?;
        if statements.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut queued = 0;
        for s in &statements {
            queued += s.query().execute(&mut *tx).await?.rows_affected() as usize;
        }
        if queued > 0 {
            audit::record(
                &mut tx,
                &Actor::system("scheduler"),
                Change {
                    action: "trigger.sweep",
                    entity: "trigger",
                    entity_id: Some(trigger.code().to_string()),
                    summary: format!("{}: {queued} messages queued", trigger.code()),
                    before: None,
                    after: None,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Tells the reader of `case` that it was received, needs their answer, or was resolved
    /// (`trigger`), linking to its tracking page when the raw `token` is at hand (only when a
    /// portal case is filed: the store keeps its hash) and to the portal sign-in otherwise.
    /// Never fails the case action: a failure is logged.
    pub(crate) async fn notify_case_reader(&self, case: &Case, trigger: Trigger, token: Option<&str>, dedupe: String) {
        match self.queue_case_message(case, trigger, token, &dedupe).await {
            Ok(outcome) => tracing::debug!(case = %case.number, trigger = trigger.code(), ?outcome, "case message"),
            Err(e) => {
                tracing::warn!(case = %case.number, trigger = trigger.code(), error = %e, "queueing the reader's case message failed")
            }
        }
    }

    async fn queue_case_message(&self, case: &Case, trigger: Trigger, token: Option<&str>, dedupe: &str) -> Result<TriggerOutcome> {
        if !self.trigger_setting(trigger).await?.enabled {
            return Ok(TriggerOutcome::Skipped(Msg::new("未启用", "switched off")));
        }
        let lang = match case.reader_id {
            Some(id) => sqlx::query("SELECT COALESCE(lang, 'zh') AS lang FROM readers WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<String, _>("lang"))
                .transpose()?
                .unwrap_or_else(|| "zh".into()),
            None => "zh".into(),
        };
        let base = self.public_url().await?;
        let link = match token {
            Some(t) => format!("{}/portal/track/{t}", base.trim_end_matches('/')),
            None => format!("{}/portal/login", base.trim_end_matches('/')),
        };
        let vars = serde_json::json!({
            "case": {
                "number": case.number,
                "subject": case.subject,
                // The name templates are checked against (`render::sample_vars`).
                "title": case.subject,
                "kind": case.kind.label().in_lang(&lang),
                "status": case.status.label().in_lang(&lang),
                "status_code": case.status.code(),
            },
            "link": link,
        });
        match (case.reader_id, case.contact.as_deref()) {
            (Some(id), _) => self.enqueue_trigger(trigger, Some(id), None, vars, dedupe).await,
            (None, Some(contact)) => self.enqueue_trigger(trigger, None, Some(contact), vars, dedupe).await,
            (None, None) => Ok(TriggerOutcome::Skipped(Msg::new("工单没有读者或联系方式", "the case names no reader and no contact"))),
        }
    }
}

/// The channel for a bare address (no reader): the first of `channels` whose kind takes it.
async fn pick_for_address(
    conn: &mut sqlx::AnyConnection,
    trigger: Trigger,
    raw: &str,
    channels: &[ChannelRef],
) -> Result<Result<(ChannelRef, String, String), Msg>> {
    let (kind, address) = if raw.contains('@') {
        match Email::parse(raw) {
            Ok(e) => (ChannelKind::Email, e.as_str().to_string()),
            Err(m) => return Ok(Err(m)),
        }
    } else {
        match Mobile::parse(raw) {
            Ok(m) => (ChannelKind::Sms, m.as_str().to_string()),
            Err(_) => {
                return Ok(Err(Msg::new(
                    format!("“{raw}”既不是电子邮箱也不是手机号，无法发送“{}”", trigger.label().zh),
                    format!("'{raw}' is neither an email address nor a mobile number; {} cannot be sent", trigger.label().en),
                )))
            }
        }
    };
    let Some(ch) = channels.iter().find(|c| c.kind == kind) else {
        return Ok(Err(Msg::new(
            format!("“{}”没有可发送到{}的渠道", trigger.label().zh, kind.label().zh),
            format!("{} has no {} channel", trigger.label().en, kind.label().en),
        )));
    };
    if is_blocked(conn, kind, &address).await? {
        return Ok(Err(skipped_reason(trigger, true, true)));
    }
    Ok(Ok((ch.clone(), address, "zh".to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_what_was_seen() {
        assert!(skipped_reason(Trigger::Welcome, false, false).en.contains("no address"));
        assert!(skipped_reason(Trigger::Welcome, true, false).en.contains("withdrew consent"));
        assert!(skipped_reason(Trigger::Welcome, true, true).en.contains("blocked"));
    }
}
