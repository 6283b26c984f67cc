//! Saved warehouse queries (保存的查询): a name, the SQL and a description, kept per staff
//! member; a shared query is visible to everyone who may query the warehouse, and only its
//! owner replaces or deletes it. Saving under a name the owner already uses replaces that
//! query. Every change writes its audit row in the same transaction.

use crate::audit::{self, Change};
use crate::db::{flag, is_unique_violation, Store};
use crate::{now_text, Actor, Result, StoreError};
use lector_domain::{text, FieldErrors, Msg};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

/// The longest SQL text a saved query may hold, in characters.
pub const MAX_SQL_CHARS: usize = 20_000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SavedQuery {
    pub id: i64,
    pub owner_id: i64,
    /// The owner's user name.
    pub owner: String,
    pub name: String,
    pub sql: String,
    pub description: String,
    /// Visible to everyone who may query the warehouse.
    pub shared: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// A query as entered.
#[derive(Debug, Clone, Default)]
pub struct SavedQueryInput {
    pub name: String,
    pub sql: String,
    pub description: String,
    pub shared: bool,
}

const SELECT_QUERY: &str = "SELECT q.*, u.username AS owner_name FROM saved_queries q JOIN users u ON u.id = q.owner_id";

fn query_row(row: &AnyRow) -> Result<SavedQuery> {
    Ok(SavedQuery {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        owner: row.try_get("owner_name")?,
        name: row.try_get("name")?,
        sql: row.try_get("sql_text")?,
        description: row.try_get("description")?,
        shared: flag(row, "shared")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn to_json(q: &SavedQuery) -> Option<serde_json::Value> {
    serde_json::to_value(q).ok()
}

/// The name, SQL and description of `input`, checked; every problem named.
fn parse_input(input: &SavedQueryInput) -> Result<(String, String, String)> {
    let mut errs = FieldErrors::default();
    let name = errs.take("name", text::required_prose(&input.name, 100, "查询名称", "query name"));
    if name.as_deref().is_some_and(|n| n.contains('\n')) {
        errs.push("name", Msg::new("查询名称只能有一行", "the query name must be a single line"));
    }
    let sql = errs.take("sql", text::required_prose(&input.sql, MAX_SQL_CHARS, "SQL 语句", "SQL statement"));
    let description =
        errs.take("description", text::optional_prose(Some(&input.description), 1000, "说明", "description")).flatten().unwrap_or_default();
    match (name, sql) {
        (Some(name), Some(sql)) if errs.is_empty() => Ok((name, sql, description)),
        _ => Err(StoreError::Invalid(errs)),
    }
}

/// The staff member a change is made for; saved queries belong to a user, never to the system.
fn owner(actor: &Actor) -> Result<i64> {
    actor.user_id.ok_or_else(|| StoreError::Other("a saved query needs a signed-in user as its owner".into()))
}

impl Store {
    /// The queries `viewer_id` may see: their own and those others shared, by name.
    pub async fn saved_queries(&self, viewer_id: i64) -> Result<Vec<SavedQuery>> {
        let rows = sqlx::query(&format!("{SELECT_QUERY} WHERE q.owner_id = $1 OR q.shared = 1 ORDER BY q.name, q.id"))
            .bind(viewer_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(query_row).collect()
    }

    /// One query, if `viewer_id` may see it (theirs or shared); otherwise `NotFound`.
    pub async fn saved_query(&self, viewer_id: i64, id: i64) -> Result<SavedQuery> {
        let row = sqlx::query(&format!("{SELECT_QUERY} WHERE q.id = $1 AND (q.owner_id = $2 OR q.shared = 1)"))
            .bind(id)
            .bind(viewer_id)
            .fetch_optional(&self.pool)
            .await?;
        query_row(&row.ok_or(StoreError::NotFound)?)
    }

    /// Saves a query of the acting user: a new one, or the replacement of their query with the
    /// same name (`saved_query.create` / `saved_query.update` in the audit log).
    pub async fn save_query(&self, actor: &Actor, input: &SavedQueryInput) -> Result<SavedQuery> {
        let owner_id = owner(actor)?;
        let (name, sql, description) = parse_input(input)?;
        let mut tx = self.begin().await?;
        let existing = sqlx::query(&format!("{SELECT_QUERY} WHERE q.owner_id = $1 AND q.name = $2"))
            .bind(owner_id)
            .bind(name.clone())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| query_row(&r))
            .transpose()?;
        let now = now_text();
        let (id, action) = match &existing {
            Some(before) => {
                sqlx::query("UPDATE saved_queries SET sql_text = $1, description = $2, shared = $3, updated_at = $4 WHERE id = $5")
                    .bind(sql)
                    .bind(description)
                    .bind(i64::from(input.shared))
                    .bind(now)
                    .bind(before.id)
                    .execute(&mut *tx)
                    .await?;
                (before.id, "saved_query.update")
            }
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO saved_queries (owner_id, name, sql_text, description, shared, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(owner_id)
                .bind(name.clone())
                .bind(sql)
                .bind(description)
                .bind(i64::from(input.shared))
                .bind(now)
                .fetch_one(&mut *tx)
                .await;
                match inserted {
                    Ok(r) => (r.try_get("id")?, "saved_query.create"),
                    // The same user saved the same name at the same moment elsewhere.
                    Err(e) if is_unique_violation(&e) => {
                        return Err(StoreError::Conflict(Msg::new(
                            format!("你已有名为“{name}”的查询，请重试"),
                            format!("you already have a query named '{name}'; try again"),
                        )))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let row = sqlx::query(&format!("{SELECT_QUERY} WHERE q.id = $1")).bind(id).fetch_one(&mut *tx).await?;
        let after = query_row(&row)?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action,
                entity: "saved_query",
                entity_id: Some(id.to_string()),
                summary: after.name.clone(),
                before: existing.as_ref().and_then(to_json),
                after: to_json(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a query of the acting user; another user's query (shared or not) is `NotFound`.
    pub async fn delete_saved_query(&self, actor: &Actor, id: i64) -> Result<()> {
        let owner_id = owner(actor)?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("{SELECT_QUERY} WHERE q.id = $1 AND q.owner_id = $2"))
            .bind(id)
            .bind(owner_id)
            .fetch_optional(&mut *tx)
            .await?;
        let before = query_row(&row.ok_or(StoreError::NotFound)?)?;
        sqlx::query("DELETE FROM saved_queries WHERE id = $1").bind(id).execute(&mut *tx).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "saved_query.delete",
                entity: "saved_query",
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
}
