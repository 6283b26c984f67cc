//! The audit log: who changed or viewed what, when, with the record before and after.

use crate::db::{Sql, Store};
use crate::{now_text, Actor, Page, Result};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// One audit entry as shown to admins.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub origin: String,
    /// `reader.create`, `reader.update`, `reader.view_contacts`, `user.create` …
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub summary: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl AuditEntry {
    /// Top-level fields whose value differs between `before` and `after`.
    pub fn changed_fields(&self) -> Vec<String> {
        let (Some(serde_json::Value::Object(b)), Some(serde_json::Value::Object(a))) = (&self.before, &self.after) else {
            return Vec::new();
        };
        let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().filter(|k| !matches!(k.as_str(), "version" | "updated_at")).filter(|k| b.get(*k) != a.get(*k)).cloned().collect()
    }
}

/// What to write: the action, the entity and the state around the change.
pub struct Change<'a> {
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<String>,
    pub summary: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Writes `change` inside the caller's transaction, so the audit row commits with the change.
pub(crate) async fn record(tx: &mut Transaction<'static, Any>, actor: &Actor, change: Change<'_>) -> Result<()> {
    let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string());
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor_name, origin, action, entity, entity_id, summary, before_json, after_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(now_text())
    .bind(actor.user_id)
    .bind(actor.name.clone())
    .bind(actor.origin.clone())
    .bind(change.action.to_string())
    .bind(change.entity.to_string())
    .bind(change.entity_id)
    .bind(change.summary)
    .bind(json(change.before))
    .bind(json(change.after))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Filters for browsing the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// Action prefix: `reader` matches `reader.create`, `reader.update` …
    pub action: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    /// Inclusive lower and exclusive upper bounds on the time, as `YYYY-MM-DD`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub page: i64,
    pub per_page: i64,
}

fn entry(row: &AnyRow) -> Result<AuditEntry> {
    let json = |col: &str| -> Result<Option<serde_json::Value>> {
        Ok(row.try_get::<Option<String>, _>(col)?.and_then(|s| serde_json::from_str(&s).ok()))
    };
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor_id: row.try_get("actor_id")?,
        actor_name: row.try_get("actor_name")?,
        origin: row.try_get("origin")?,
        action: row.try_get("action")?,
        entity: row.try_get("entity")?,
        entity_id: row.try_get("entity_id")?,
        summary: row.try_get("summary")?,
        before: json("before_json")?,
        after: json("after_json")?,
    })
}

impl Store {
    /// Browses the audit log, newest first.
    pub async fn audit_log(&self, q: &AuditQuery) -> Result<Page<AuditEntry>> {
        let mut filter = Sql::new(" WHERE 1 = 1");
        if let Some(a) = q.actor.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND actor_name = ").bind(a);
        }
        if let Some(a) = q.action.as_deref().filter(|s| !s.is_empty()) {
            filter
                .push(" AND (action = ")
                .bind(a)
                .push(" OR (action >= ")
                .bind(format!("{a}."))
                .push(" AND action < ")
                .bind(format!("{a}/"))
                .push("))");
        }
        if let Some(e) = q.entity.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND entity = ").bind(e);
        }
        if let Some(e) = q.entity_id.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND entity_id = ").bind(e);
        }
        if let Some(f) = q.from.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND at >= ").bind(f);
        }
        if let Some(t) = q.to.as_deref().filter(|s| !s.is_empty()) {
            filter.push(" AND at < ").bind(t);
        }
        let per_page = q.per_page.clamp(1, 200);
        let page = q.page.max(1);
        let mut count = Sql::new("SELECT COUNT(*) AS n FROM audit_log");
        count.text.push_str(&filter.text);
        let mut list = Sql::new("SELECT * FROM audit_log");
        list.text.push_str(&filter.text);
        list.push(" ORDER BY id DESC LIMIT ").push(&per_page.to_string()).push(" OFFSET ").push(&((page - 1) * per_page).to_string());
        let total: i64 = filter.with_text(&count.text).query().fetch_one(&self.pool).await?.try_get("n")?;
        let rows = filter.with_text(&list.text).query().fetch_all(&self.pool).await?;
        Ok(Page { items: rows.iter().map(entry).collect::<Result<_>>()?, total, total_capped: false, page, per_page })
    }

    /// Every audit entry about one entity, oldest first (the record's timeline).
    pub async fn audit_trail(&self, entity: &str, entity_id: &str) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE entity = $1 AND entity_id = $2 ORDER BY id")
            .bind(entity.to_string())
            .bind(entity_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry).collect()
    }

    /// Records an action that changes nothing but must be audited (viewing contact details,
    /// exporting readers).
    pub async fn audit_access(&self, actor: &Actor, change: Change<'_>) -> Result<()> {
        let mut tx = self.begin().await?;
        record(&mut tx, actor, change).await?;
        tx.commit().await?;
        Ok(())
    }
}
