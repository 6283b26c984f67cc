//! Reader tracking: interactions, follow-up tasks, hand-over of readers between owners, and the
//! notifications that tell staff about them.
//!
//! CONTRACT: the types and signatures below are what the web layer builds on. Times in
//! `occurred_at` are the library's local time as `YYYY-MM-DD HH:MM`; other times are stored UTC
//! RFC 3339 like everywhere in the store.

use crate::audit::{self, Change};
use crate::db::{Param, Sql};
use crate::{now_text, Actor, Page, Result, Store, StoreError};
use lector_domain::tracking::{parse_handover_reason, Channel, Direction, InteractionInput, TaskInput, TaskStatus};
use lector_domain::Msg;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use std::collections::{HashMap, HashSet};

/// One contact between staff and a reader.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Interaction {
    pub id: i64,
    pub reader_id: i64,
    pub reader_card_no: String,
    pub reader_name: String,
    pub channel: Channel,
    pub direction: Direction,
    pub subject: String,
    pub notes: Option<String>,
    /// Local time of the contact, `YYYY-MM-DD HH:MM`.
    pub occurred_at: String,
    /// User name and display name of the staff member who recorded it.
    pub staff: String,
    pub staff_name: String,
    pub created_at: String,
}

/// Filters over interactions, newest first.
#[derive(Debug, Clone, Default)]
pub struct InteractionQuery {
    pub reader_id: Option<i64>,
    /// User name of the staff member.
    pub staff: Option<String>,
    pub channel: Option<Channel>,
    /// Inclusive local dates bounding `occurred_at`.
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    pub page: i64,
    pub per_page: i64,
}

/// A follow-up task, optionally about one reader.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    pub id: i64,
    pub reader_id: Option<i64>,
    pub reader_card_no: Option<String>,
    pub reader_name: Option<String>,
    pub title: String,
    pub notes: Option<String>,
    /// `YYYY-MM-DD`.
    pub due_on: String,
    pub assignee: String,
    pub assignee_name: String,
    pub created_by: String,
    pub status: TaskStatus,
    pub done_at: Option<String>,
    pub created_at: String,
    pub version: i64,
}

/// Filters over tasks, earliest due first.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// User name of the assignee.
    pub assignee: Option<String>,
    pub reader_id: Option<i64>,
    pub status: Option<TaskStatus>,
    /// Only open tasks due before this date.
    pub overdue_on: Option<chrono::NaiveDate>,
    pub page: i64,
    pub per_page: i64,
}

/// One change of a reader's owner.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OwnerChange {
    pub id: i64,
    pub reader_id: i64,
    pub from_owner: Option<String>,
    pub to_owner: Option<String>,
    pub reason: String,
    /// User name of who handed the reader over.
    pub by: String,
    pub at: String,
}

/// A message to one staff member inside Lector.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub text_zh: String,
    pub text_en: String,
    /// A page to open, e.g. `/readers/12` or `/tasks`.
    pub link: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
}

type Tx = Transaction<'static, Any>;

/// Largest number of placeholders bound in one `IN (…)` list.
const IN_CHUNK: usize = 500;

const INTERACTION_SELECT: &str = "SELECT i.id, i.reader_id, r.card_no AS reader_card_no, r.name AS reader_name, i.channel, i.direction, \
    i.subject, i.notes, i.occurred_at, u.username AS staff, u.display_name AS staff_name, i.created_at \
    FROM interactions i JOIN readers r ON r.id = i.reader_id JOIN users u ON u.id = i.staff_id";

const TASK_SELECT: &str = "SELECT t.id, t.reader_id, r.card_no AS reader_card_no, r.name AS reader_name, t.title, t.notes, t.due_on, \
    a.username AS assignee, a.display_name AS assignee_name, c.username AS created_by, t.status, t.done_at, t.created_at, t.version \
    FROM tasks t LEFT JOIN readers r ON r.id = t.reader_id JOIN users a ON a.id = t.assignee_id JOIN users c ON c.id = t.created_by_id";

fn parse_code<T>(row: &AnyRow, col: &str, parse: fn(&str) -> Result<T, Msg>) -> Result<T> {
    let v: String = row.try_get(col)?;
    parse(&v).map_err(|m| StoreError::Other(format!("stored {col}: {}", m.en)))
}

fn interaction(row: &AnyRow) -> Result<Interaction> {
    Ok(Interaction {
        id: row.try_get("id")?,
        reader_id: row.try_get("reader_id")?,
        reader_card_no: row.try_get("reader_card_no")?,
        reader_name: row.try_get("reader_name")?,
        channel: parse_code(row, "channel", Channel::parse)?,
        direction: parse_code(row, "direction", Direction::parse)?,
        subject: row.try_get("subject")?,
        notes: row.try_get("notes")?,
        occurred_at: row.try_get("occurred_at")?,
        staff: row.try_get("staff")?,
        staff_name: row.try_get("staff_name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn task_row(row: &AnyRow) -> Result<Task> {
    Ok(Task {
        id: row.try_get("id")?,
        reader_id: row.try_get("reader_id")?,
        reader_card_no: row.try_get("reader_card_no")?,
        reader_name: row.try_get("reader_name")?,
        title: row.try_get("title")?,
        notes: row.try_get("notes")?,
        due_on: row.try_get("due_on")?,
        assignee: row.try_get("assignee")?,
        assignee_name: row.try_get("assignee_name")?,
        created_by: row.try_get("created_by")?,
        status: parse_code(row, "status", TaskStatus::parse)?,
        done_at: row.try_get("done_at")?,
        created_at: row.try_get("created_at")?,
        version: row.try_get("version")?,
    })
}

async fn load_interaction(conn: &mut AnyConnection, id: i64) -> Result<Interaction> {
    let row = sqlx::query(&format!("{INTERACTION_SELECT} WHERE i.id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    interaction(&row.ok_or(StoreError::NotFound)?)
}

async fn load_task(conn: &mut AnyConnection, id: i64) -> Result<Task> {
    let row = sqlx::query(&format!("{TASK_SELECT} WHERE t.id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    task_row(&row.ok_or(StoreError::NotFound)?)
}

/// The name staff see for the actor: the user's display name, or the actor's own name.
async fn actor_display(tx: &mut Tx, actor: &Actor) -> Result<String> {
    if let Some(id) = actor.user_id {
        let row = sqlx::query("SELECT display_name FROM users WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
        if let Some(r) = row {
            return Ok(r.try_get("display_name")?);
        }
    }
    Ok(actor.name.clone())
}

/// An active user by user name: (id, user name, display name).
async fn active_user(tx: &mut Tx, username: &str) -> Result<Option<(i64, String, String)>> {
    let row = sqlx::query("SELECT id, username, display_name FROM users WHERE username = $1 AND active = 1")
        .bind(username.trim().to_lowercase())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| -> Result<(i64, String, String)> { Ok((r.try_get("id")?, r.try_get("username")?, r.try_get("display_name")?)) }).transpose()
}

async fn notify(tx: &mut Tx, user_id: i64, text: Msg, link: &str) -> Result<()> {
    sqlx::query("INSERT INTO notifications (user_id, text_zh, text_en, link, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(user_id)
        .bind(text.zh)
        .bind(text.en)
        .bind(link.to_string())
        .bind(now_text())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn require_user(actor: &Actor, what_zh: &str, what_en: &str) -> Result<i64> {
    actor.user_id.ok_or_else(|| {
        StoreError::Other(format!("{what_en} needs a signed-in staff member, not '{}' ({what_zh}需要以馆员身份登录)", actor.name))
    })
}

fn json<T: Serialize>(v: &T) -> Option<serde_json::Value> {
    Some(serde_json::to_value(v).unwrap_or_default())
}

fn page_bounds(page: i64, per_page: i64) -> (i64, i64) {
    (page.max(1), per_page.clamp(1, 200))
}

/// Whether a task may move from `from` to `to`.
fn legal_transition(from: TaskStatus, to: TaskStatus) -> bool {
    use TaskStatus::*;
    matches!((from, to), (Open, Done) | (Open, Cancelled) | (Done, Open) | (Cancelled, Open))
}

fn illegal_transition(from: TaskStatus, to: TaskStatus) -> StoreError {
    let (f, t) = (from.label(), to.label());
    StoreError::Conflict(Msg::new(
        format!("任务状态不能从“{}”改为“{}”", f.zh, t.zh),
        format!("a task cannot go from {} to {} ({} → {})", from.code(), to.code(), f.en, t.en),
    ))
}

fn stale_task(current: i64, expected: i64, status: TaskStatus) -> StoreError {
    StoreError::Conflict(Msg::new(
        format!("该任务已被他人修改（当前版本 {current}，状态“{}”；你看到的是版本 {expected}），请刷新后重试", status.label().zh),
        format!(
            "the task was changed by someone else (now version {current}, status {}; you saw version {expected}); reload and try again",
            status.code()
        ),
    ))
}

impl Store {
    /// Records a contact with reader `reader_id` by the actor (who must be a user); audited as
    /// `interaction.create`. `NotFound` when the reader does not exist.
    pub async fn record_interaction(&self, actor: &Actor, reader_id: i64, input: &InteractionInput) -> Result<Interaction> {
        let staff_id = require_user(actor, "记录联系", "recording an interaction")?;
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT id FROM readers WHERE id = $1").bind(reader_id).fetch_optional(&mut *tx).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let id: i64 = sqlx::query(
            "INSERT INTO interactions (reader_id, channel, direction, subject, notes, occurred_at, staff_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(reader_id)
        .bind(input.channel.code().to_string())
        .bind(input.direction.code().to_string())
        .bind(input.subject.clone())
        .bind(input.notes.clone())
        .bind(input.occurred_at.format("%Y-%m-%d %H:%M").to_string())
        .bind(staff_id)
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let created = load_interaction(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "interaction.create",
                entity: "interaction",
                entity_id: Some(id.to_string()),
                summary: format!("{} {}: {} ({})", created.reader_card_no, created.reader_name, created.subject, created.channel.code()),
                before: None,
                after: json(&created),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Interactions matching `q`, newest contact first.
    pub async fn interactions(&self, q: &InteractionQuery) -> Result<Page<Interaction>> {
        let (page, per_page) = page_bounds(q.page, q.per_page);
        let mut filter = Sql::new(" WHERE 1 = 1");
        if let Some(r) = q.reader_id {
            filter.push(" AND i.reader_id = ").bind(r);
        }
        if let Some(s) = q.staff.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            filter.push(" AND i.staff_id = (SELECT id FROM users WHERE username = ").bind(s.to_lowercase()).push(")");
        }
        if let Some(c) = q.channel {
            filter.push(" AND i.channel = ").bind(c.code());
        }
        if let Some(f) = q.from {
            filter.push(" AND i.occurred_at >= ").bind(f.format("%Y-%m-%d").to_string());
        }
        if let Some(t) = q.to {
            // Inclusive: everything before the start of the next day.
            if let Some(next) = t.succ_opt() {
                filter.push(" AND i.occurred_at < ").bind(next.format("%Y-%m-%d").to_string());
            }
        }
        let count = filter.with_text(&format!("SELECT COUNT(*) AS n FROM interactions i{}", filter.text));
        let list = filter.with_text(&format!(
            "{INTERACTION_SELECT}{} ORDER BY i.occurred_at DESC, i.id DESC LIMIT {per_page} OFFSET {}",
            filter.text,
            (page - 1) * per_page
        ));
        let rows = list.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(interaction).collect::<Result<Vec<_>>>()?;
        let total = if page == 1 && (items.len() as i64) < per_page {
            items.len() as i64
        } else {
            count.query().fetch_one(&self.pool).await?.try_get("n")?
        };
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    /// Creates a task (about `reader_id` if given), audited as `task.create`; the assignee is
    /// notified unless they created it. `Invalid` on `assignee` for an unknown or inactive user,
    /// `NotFound` for an unknown reader.
    pub async fn create_task(&self, actor: &Actor, reader_id: Option<i64>, input: &TaskInput) -> Result<Task> {
        let creator_id = require_user(actor, "创建任务", "creating a task")?;
        let mut tx = self.begin().await?;
        if let Some(r) = reader_id {
            if sqlx::query("SELECT id FROM readers WHERE id = $1").bind(r).fetch_optional(&mut *tx).await?.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        let Some((assignee_id, _, _)) = active_user(&mut tx, &input.assignee).await? else {
            let name = &input.assignee;
            return Err(StoreError::invalid(
                "assignee",
                Msg::new(format!("没有在职馆员“{name}”"), format!("no active staff member '{name}'")),
            ));
        };
        let now = now_text();
        let id: i64 = sqlx::query(
            "INSERT INTO tasks (reader_id, title, notes, due_on, assignee_id, created_by_id, status, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1) RETURNING id",
        )
        .bind(reader_id)
        .bind(input.title.clone())
        .bind(input.notes.clone())
        .bind(input.due_on.format("%Y-%m-%d").to_string())
        .bind(assignee_id)
        .bind(creator_id)
        .bind(TaskStatus::Open.code().to_string())
        .bind(now.clone())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let created = load_task(&mut tx, id).await?;
        if assignee_id != creator_id {
            let by = actor_display(&mut tx, actor).await?;
            let (title, due) = (&created.title, &created.due_on);
            let about = match (&created.reader_name, &created.reader_card_no) {
                (Some(name), Some(card)) => (format!("（读者 {name} {card}）"), format!(" (reader {name} {card})")),
                _ => (String::new(), String::new()),
            };
            let text = Msg::new(
                format!("{by} 给你分配了任务：{title}{}，截止 {due}", about.0),
                format!("{by} assigned you a task: {title}{}, due {due}", about.1),
            );
            notify(&mut tx, assignee_id, text, "/tasks").await?;
        }
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "task.create",
                entity: "task",
                entity_id: Some(id.to_string()),
                summary: format!("{} → {} ({})", created.title, created.assignee, created.due_on),
                before: None,
                after: json(&created),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Moves a task: open → done or cancelled, done or cancelled → open (reopen). Anything else,
    /// or a stale `expected_version`, is a `Conflict` and changes nothing. Audited as
    /// `task.status`.
    pub async fn set_task_status(&self, actor: &Actor, id: i64, status: TaskStatus, expected_version: i64) -> Result<Task> {
        let mut tx = self.begin().await?;
        let before = load_task(&mut tx, id).await?;
        if before.version != expected_version {
            return Err(stale_task(before.version, expected_version, before.status));
        }
        if !legal_transition(before.status, status) {
            return Err(illegal_transition(before.status, status));
        }
        let now = now_text();
        let done_at = (status == TaskStatus::Done).then(|| now.clone());
        let updated = sqlx::query(
            "UPDATE tasks SET status = $1, done_at = $2, version = version + 1, updated_at = $3 WHERE id = $4 AND version = $5 AND status = $6",
        )
        .bind(status.code().to_string())
        .bind(done_at)
        .bind(now)
        .bind(id)
        .bind(expected_version)
        .bind(before.status.code().to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            // Only reachable if the row changed under a lock we hold; refuse rather than guess.
            return Err(stale_task(before.version + 1, expected_version, before.status));
        }
        let after = load_task(&mut tx, id).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "task.status",
                entity: "task",
                entity_id: Some(id.to_string()),
                summary: format!("{}: {} → {}", after.title, before.status.code(), after.status.code()),
                before: json(&before),
                after: json(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn task(&self, id: i64) -> Result<Task> {
        let mut conn = self.pool.acquire().await?;
        load_task(&mut conn, id).await
    }

    /// Tasks matching `q`, earliest due first.
    pub async fn tasks(&self, q: &TaskQuery) -> Result<Page<Task>> {
        let (page, per_page) = page_bounds(q.page, q.per_page);
        let mut filter = Sql::new(" WHERE 1 = 1");
        if let Some(a) = q.assignee.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            filter.push(" AND t.assignee_id = (SELECT id FROM users WHERE username = ").bind(a.to_lowercase()).push(")");
        }
        if let Some(r) = q.reader_id {
            filter.push(" AND t.reader_id = ").bind(r);
        }
        if let Some(s) = q.status {
            filter.push(" AND t.status = ").bind(s.code());
        }
        if let Some(d) = q.overdue_on {
            filter.push(" AND t.status = ").bind(TaskStatus::Open.code()).push(" AND t.due_on < ").bind(d.format("%Y-%m-%d").to_string());
        }
        let count = filter.with_text(&format!("SELECT COUNT(*) AS n FROM tasks t{}", filter.text));
        let list = filter.with_text(&format!(
            "{TASK_SELECT}{} ORDER BY t.due_on, t.id LIMIT {per_page} OFFSET {}",
            filter.text,
            (page - 1) * per_page
        ));
        let rows = list.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(task_row).collect::<Result<Vec<_>>>()?;
        let total = if page == 1 && (items.len() as i64) < per_page {
            items.len() as i64
        } else {
            count.query().fetch_one(&self.pool).await?.try_get("n")?
        };
        Ok(Page { items, total, total_capped: false, page, per_page })
    }

    /// Hands readers over to `to_owner` (a user name; `None` leaves them without an owner) in
    /// one transaction: each reader's owner changes (version + 1), an owner-history row and an
    /// audit row `reader.handover` per reader, and one notification to the new owner. `Invalid`
    /// on `owner` for an unknown or inactive user, on `reason` for an empty reason; `NotFound`
    /// if any reader does not exist. Returns how many readers changed owner (readers already
    /// with that owner are skipped).
    pub async fn hand_over(&self, actor: &Actor, reader_ids: &[i64], to_owner: Option<&str>, reason: &str) -> Result<usize> {
        let reason = parse_handover_reason(reason).map_err(|m| StoreError::invalid("reason", m))?;
        let mut seen = HashSet::new();
        let ids: Vec<i64> = reader_ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let to_owner = to_owner.map(str::trim).filter(|s| !s.is_empty());
        let mut tx = self.begin().await?;
        let owner = match to_owner {
            None => None,
            Some(name) => match active_user(&mut tx, name).await? {
                Some(u) => Some(u),
                None => {
                    return Err(StoreError::invalid(
                        "owner",
                        Msg::new(format!("没有在职馆员“{name}”"), format!("no active staff member '{name}'")),
                    ))
                }
            },
        };
        if ids.is_empty() {
            return Ok(0);
        }
        // (card number, name, owner id, owner user name, version) of every reader named.
        type Current = (String, String, Option<i64>, Option<String>, i64);
        let mut current: HashMap<i64, Current> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let mut sql = Sql::new(
                "SELECT r.id, r.card_no, r.name, r.owner_id, u.username AS owner, r.version FROM readers r LEFT JOIN users u ON u.id = r.owner_id WHERE r.id IN (",
            );
            sql.bind_list(chunk.iter().map(|id| Param::from(*id))).push(")");
            for row in sql.query().fetch_all(&mut *tx).await? {
                current.insert(
                    row.try_get("id")?,
                    (
                        row.try_get("card_no")?,
                        row.try_get("name")?,
                        row.try_get("owner_id")?,
                        row.try_get("owner")?,
                        row.try_get("version")?,
                    ),
                );
            }
        }
        if current.len() != ids.len() {
            return Err(StoreError::NotFound);
        }
        let owner_id = owner.as_ref().map(|o| o.0);
        let owner_name = owner.as_ref().map(|o| o.1.clone());
        let now = now_text();
        let mut changed = 0usize;
        for id in &ids {
            let (card_no, name, from_id, from_name, version) = &current[id];
            if *from_id == owner_id {
                continue;
            }
            sqlx::query("UPDATE readers SET owner_id = $1, version = version + 1, updated_at = $2 WHERE id = $3")
                .bind(owner_id)
                .bind(now.clone())
                .bind(*id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO owner_history (reader_id, from_owner_id, to_owner_id, reason, by_id, by_name, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(*id)
            .bind(*from_id)
            .bind(owner_id)
            .bind(reason.clone())
            .bind(actor.user_id)
            .bind(actor.name.clone())
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
            let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_string());
            audit::record(
                &mut tx,
                actor,
                Change {
                    action: "reader.handover",
                    entity: "reader",
                    entity_id: Some(id.to_string()),
                    summary: format!("{card_no} {name}: {} → {} ({reason})", show(from_name), show(&owner_name)),
                    before: Some(serde_json::json!({ "owner": from_name, "version": version })),
                    after: Some(serde_json::json!({ "owner": owner_name, "version": version + 1 })),
                },
            )
            .await?;
            changed += 1;
        }
        if let Some((new_id, username, _)) = &owner {
            if changed > 0 && actor.user_id != Some(*new_id) {
                let by = actor_display(&mut tx, actor).await?;
                let readers_en = if changed == 1 { "1 reader".to_string() } else { format!("{changed} readers") };
                let text = Msg::new(
                    format!("{by} 把 {changed} 位读者移交给你：{reason}"),
                    format!("{by} handed {readers_en} over to you: {reason}"),
                );
                notify(&mut tx, *new_id, text, &format!("/readers?owner={username}")).await?;
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// A reader's owners over time, oldest first.
    pub async fn owner_history(&self, reader_id: i64) -> Result<Vec<OwnerChange>> {
        let rows = sqlx::query(
            "SELECT h.id, h.reader_id, f.username AS from_owner, t.username AS to_owner, h.reason, COALESCE(b.username, h.by_name) AS by_user, h.at
             FROM owner_history h LEFT JOIN users f ON f.id = h.from_owner_id LEFT JOIN users t ON t.id = h.to_owner_id
             LEFT JOIN users b ON b.id = h.by_id WHERE h.reader_id = $1 ORDER BY h.id",
        )
        .bind(reader_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| -> Result<OwnerChange> {
                Ok(OwnerChange {
                    id: r.try_get("id")?,
                    reader_id: r.try_get("reader_id")?,
                    from_owner: r.try_get("from_owner")?,
                    to_owner: r.try_get("to_owner")?,
                    reason: r.try_get("reason")?,
                    by: r.try_get("by_user")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Notifies staff of their open tasks due on or before `today` that have not been reminded
    /// of today; safe to call repeatedly and from several servers. Returns how many were sent.
    pub async fn remind_due_tasks(&self, today: chrono::NaiveDate) -> Result<usize> {
        let today = today.format("%Y-%m-%d").to_string();
        // Candidates are read before the transaction; the conditional update below decides.
        let due = sqlx::query(
            "SELECT id, assignee_id, title, due_on FROM tasks
             WHERE status = $1 AND due_on <= $2 AND (reminded_on IS NULL OR reminded_on < $2) ORDER BY id",
        )
        .bind(TaskStatus::Open.code().to_string())
        .bind(today.clone())
        .fetch_all(&self.pool)
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut sent = 0usize;
        for row in &due {
            let id: i64 = row.try_get("id")?;
            let claimed = sqlx::query(
                "UPDATE tasks SET reminded_on = $1 WHERE id = $2 AND status = $3 AND (reminded_on IS NULL OR reminded_on < $1)",
            )
            .bind(today.clone())
            .bind(id)
            .bind(TaskStatus::Open.code().to_string())
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let (title, due_on): (String, String) = (row.try_get("title")?, row.try_get("due_on")?);
            let text = if due_on < today {
                Msg::new(format!("任务已逾期：{title}（截止 {due_on}）"), format!("Task overdue: {title} (due {due_on})"))
            } else {
                Msg::new(format!("任务今天到期：{title}"), format!("Task due today: {title}"))
            };
            notify(&mut tx, row.try_get("assignee_id")?, text, "/tasks").await?;
            sent += 1;
        }
        if sent > 0 {
            audit::record(
                &mut tx,
                &Actor::system("reminders"),
                Change {
                    action: "task.remind",
                    entity: "task",
                    entity_id: None,
                    summary: format!("{sent} reminders of tasks due by {today}"),
                    before: None,
                    after: None,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(sent)
    }

    /// A user's notifications, newest first.
    pub async fn notifications(&self, user_id: i64, unread_only: bool, limit: i64) -> Result<Vec<Notification>> {
        let mut sql = Sql::new("SELECT id, text_zh, text_en, link, created_at, read_at FROM notifications WHERE user_id = ");
        sql.bind(user_id);
        if unread_only {
            sql.push(" AND read_at IS NULL");
        }
        sql.push(&format!(" ORDER BY id DESC LIMIT {}", limit.clamp(1, 500)));
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| -> Result<Notification> {
                Ok(Notification {
                    id: r.try_get("id")?,
                    text_zh: r.try_get("text_zh")?,
                    text_en: r.try_get("text_en")?,
                    link: r.try_get("link")?,
                    created_at: r.try_get("created_at")?,
                    read_at: r.try_get("read_at")?,
                })
            })
            .collect()
    }

    pub async fn unread_notifications(&self, user_id: i64) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Marks one notification (or all, with `None`) of the user as read. `NotFound` when `id`
    /// is not one of the user's notifications; marking a read one again changes nothing.
    pub async fn mark_notifications_read(&self, user_id: i64, id: Option<i64>) -> Result<()> {
        match id {
            Some(id) => {
                let r = sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
                    .bind(now_text())
                    .bind(id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
            }
            None => {
                sqlx::query("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL")
                    .bind(now_text())
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}
