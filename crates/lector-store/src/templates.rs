//! Message templates (消息模板): a code, a name, a purpose, and the minijinja sources per channel
//! kind and language. The store keeps the sources; `lector-messaging` checks and renders them
//! (the web layer checks every variant before it calls the store).

use crate::audit::{self, Change};
use crate::channels::stale;
use crate::db::{is_unique_violation, Store};
use crate::{now_text, Actor, Result, StoreError};
use lector_domain::attribute::parse_code;
use lector_domain::messaging::{ChannelKind, Purpose};
use lector_domain::{text, FieldErrors, Msg};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// The languages a variant is written in; `zh` is the fallback.
pub const LANGS: [&str; 2] = ["zh", "en"];

/// A template's text for one channel kind and language.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemplateVariant {
    pub channel_kind: ChannelKind,
    /// `zh` or `en`.
    pub lang: String,
    /// Email subject (other channels may leave it empty or use it as a title).
    pub subject: String,
    pub body_text: String,
    /// Email only.
    pub body_html: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Template {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub purpose: Purpose,
    /// By channel kind, then language.
    pub variants: Vec<TemplateVariant>,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

/// A template as entered; on update its variants replace the stored ones.
#[derive(Debug, Clone)]
pub struct TemplateInput {
    pub code: String,
    pub name: String,
    pub purpose: Purpose,
    pub variants: Vec<TemplateVariant>,
}

impl TemplateInput {
    fn parse(&self) -> Result<(String, String, Vec<TemplateVariant>)> {
        let mut errs = FieldErrors::default();
        let code = errs.take("code", parse_code(&self.code));
        let name = text::clean(&self.name);
        if name.is_empty() || name.chars().count() > 64 {
            errs.push("name", Msg::new("名称应为 1 到 64 个字符", "a name has 1 to 64 characters"));
        }
        let mut variants: Vec<TemplateVariant> = Vec::new();
        for (i, v) in self.variants.iter().enumerate() {
            let field = |f: &str| format!("variants[{i}].{f}");
            let lang = text::clean(&v.lang);
            if !LANGS.contains(&lang.as_str()) {
                errs.push(
                    field("lang"),
                    Msg::new(format!("语言应为 zh 或 en，而不是“{lang}”"), format!("lang must be zh or en, not '{lang}'")),
                );
            }
            if variants.iter().any(|w| w.channel_kind == v.channel_kind && w.lang == lang) {
                errs.push(
                    field("lang"),
                    Msg::new(
                        format!("{}（{lang}）的内容重复了", v.channel_kind.label().zh),
                        format!("{} ({lang}) is given twice", v.channel_kind.label().en),
                    ),
                );
            }
            if v.body_text.trim().is_empty() {
                errs.push(field("body_text"), Msg::new("请填写正文", "write the message text"));
            }
            if v.channel_kind == ChannelKind::Email && v.subject.trim().is_empty() {
                errs.push(field("subject"), Msg::new("电子邮件需要主题", "an email needs a subject"));
            }
            let html = v.body_html.as_ref().filter(|h| !h.trim().is_empty() && v.channel_kind == ChannelKind::Email).cloned();
            variants.push(TemplateVariant {
                channel_kind: v.channel_kind,
                lang,
                subject: v.subject.trim().to_string(),
                body_text: v.body_text.clone(),
                body_html: html,
            });
        }
        variants.sort_by(|a, b| (a.channel_kind.code(), lang_rank(&a.lang)).cmp(&(b.channel_kind.code(), lang_rank(&b.lang))));
        errs.finish(|| (code.unwrap_or_default(), name, variants)).map_err(StoreError::Invalid)
    }
}

fn lang_rank(lang: &str) -> usize {
    LANGS.iter().position(|l| *l == lang).unwrap_or(LANGS.len())
}

fn variant(row: &AnyRow) -> Result<TemplateVariant> {
    let kind: String = row.try_get("channel_kind")?;
    Ok(TemplateVariant {
        channel_kind: ChannelKind::parse(&kind).map_err(|m| StoreError::Other(m.en))?,
        lang: row.try_get("lang")?,
        subject: row.try_get("subject")?,
        body_text: row.try_get("body_text")?,
        body_html: row.try_get("body_html")?,
    })
}

type Tx = Transaction<'static, Any>;

async fn load(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Template> {
    let row = sqlx::query("SELECT * FROM message_templates WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
    let row = row.ok_or(StoreError::NotFound)?;
    let purpose: String = row.try_get("purpose")?;
    let mut variants = sqlx::query("SELECT * FROM template_variants WHERE template_id = $1")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(variant)
        .collect::<Result<Vec<_>>>()?;
    variants.sort_by(|a, b| (a.channel_kind.code(), lang_rank(&a.lang)).cmp(&(b.channel_kind.code(), lang_rank(&b.lang))));
    Ok(Template {
        id,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        purpose: Purpose::parse(&purpose).map_err(|m| StoreError::Other(m.en))?,
        variants,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

async fn insert_variants(tx: &mut Tx, id: i64, variants: &[TemplateVariant]) -> Result<()> {
    for v in variants {
        sqlx::query(
            "INSERT INTO template_variants (template_id, channel_kind, lang, subject, body_text, body_html) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(v.channel_kind.code().to_string())
        .bind(v.lang.clone())
        .bind(v.subject.clone())
        .bind(v.body_text.clone())
        .bind(v.body_html.clone())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn taken(code: &str) -> StoreError {
    StoreError::Conflict(Msg::new(format!("模板代码“{code}”已存在"), format!("template code '{code}' is taken")))
}

impl Store {
    /// Every template with its variants, by code.
    pub async fn templates(&self) -> Result<Vec<Template>> {
        let mut conn = self.pool.acquire().await?;
        let ids: Vec<i64> = sqlx::query("SELECT id FROM message_templates ORDER BY code")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>("id"))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(load(&mut conn, id).await?);
        }
        Ok(out)
    }

    pub async fn template(&self, id: i64) -> Result<Template> {
        load(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn template_by_code(&self, code: &str) -> Result<Template> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query("SELECT id FROM message_templates WHERE code = $1").bind(code.to_string()).fetch_optional(&mut *conn).await?;
        let id: i64 = row.ok_or(StoreError::NotFound)?.try_get("id")?;
        load(&mut conn, id).await
    }

    /// The variant a message on `kind` in `lang` is written from: that language's, else Chinese.
    pub async fn template_variant(&self, template_id: i64, kind: ChannelKind, lang: &str) -> Result<Option<TemplateVariant>> {
        let rows =
            sqlx::query("SELECT * FROM template_variants WHERE template_id = $1 AND channel_kind = $2 AND (lang = $3 OR lang = 'zh')")
                .bind(template_id)
                .bind(kind.code().to_string())
                .bind(lang.to_string())
                .fetch_all(&self.pool)
                .await?;
        let mut found = rows.iter().map(variant).collect::<Result<Vec<_>>>()?;
        found.sort_by_key(|v| v.lang != lang);
        Ok(found.into_iter().next())
    }

    pub async fn create_template(&self, actor: &Actor, input: &TemplateInput) -> Result<Template> {
        let (code, name, variants) = input.parse()?;
        let now = now_text();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO message_templates (code, name, purpose, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(code.clone())
        .bind(name)
        .bind(input.purpose.code().to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { taken(&code) } else { e.into() })?;
        let id: i64 = row.try_get("id")?;
        insert_variants(&mut tx, id, &variants).await?;
        let t = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "template.create",
                entity: "template",
                entity_id: Some(id.to_string()),
                summary: t.name.clone(),
                before: None,
                after: Some(serde_json::to_value(&t).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    /// Replaces a template's code, name, purpose and variants. `expected_version` (when given)
    /// must match, or nothing changes. Messages already queued render with the new text.
    pub async fn update_template(&self, actor: &Actor, id: i64, expected_version: Option<i64>, input: &TemplateInput) -> Result<Template> {
        let (code, name, variants) = input.parse()?;
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if expected_version.is_some_and(|v| v != before.version) {
            return Err(stale());
        }
        sqlx::query(
            "UPDATE message_templates SET code = $1, name = $2, purpose = $3, updated_at = $4, version = version + 1 WHERE id = $5",
        )
        .bind(code.clone())
        .bind(name)
        .bind(input.purpose.code().to_string())
        .bind(now_text())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { taken(&code) } else { e.into() })?;
        sqlx::query("DELETE FROM template_variants WHERE template_id = $1").bind(id).execute(&mut *tx).await?;
        insert_variants(&mut tx, id, &variants).await?;
        let after = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "template.update",
                entity: "template",
                entity_id: Some(id.to_string()),
                summary: after.name.clone(),
                before: Some(serde_json::to_value(&before).unwrap_or_default()),
                after: Some(serde_json::to_value(&after).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }
}
