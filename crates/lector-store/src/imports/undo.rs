//! Undoing an import job: readers it created go, readers it changed get their before images
//! back, links it made are removed; refused while a later job's changes to the same readers stand.

use super::jobs::{from_json, load_job};
use super::writer::BeforeImage;
use super::ImportJob;
use crate::audit::{self, Change};
use crate::readers::refs::RefCache;
use crate::readers::rows::restore_record;
use crate::readers::{load_reader, ReaderKey, ReaderRecord};
use crate::{now_text, Actor, Result, Store, StoreError};
use lector_domain::import::JobStatus;
use lector_domain::Msg;
use sqlx::Row;

/// The readers a job created or changed (the set a later job must not have touched).
const TOUCHED: &str = "SELECT reader_id FROM import_changes WHERE job_id = $1
     UNION SELECT reader_id FROM reader_sources WHERE source_id = $2 AND first_job_id = $1";

/// Equal apart from what every write moves on.
fn same_record(a: &ReaderRecord, b: &ReaderRecord) -> bool {
    ReaderRecord { version: 0, updated_at: String::new(), ..a.clone() }
        == ReaderRecord { version: 0, updated_at: String::new(), ..b.clone() }
}

impl Store {
    /// Restores every reader the job touched to its state before the job (created ones are
    /// removed). Refused (409) while a later job that touched the same readers stands.
    pub async fn undo_import_job(&self, actor: &Actor, job_id: i64) -> Result<ImportJob> {
        let mut tx = self.begin().await?;
        let job = load_job(&mut tx, job_id).await?;
        if job.dry_run {
            return Err(StoreError::Conflict(Msg::new(
                format!("任务 #{job_id} 是试运行，没有写入任何数据，无需撤销"),
                format!("job #{job_id} was a dry run and wrote nothing; there is nothing to undo"),
            )));
        }
        if job.status != JobStatus::Succeeded {
            return Err(StoreError::Conflict(Msg::new(
                format!("只能撤销已完成的任务；任务 #{job_id} 的状态是“{}”", job.status.label().zh),
                format!("only a succeeded job can be undone; job #{job_id} is {}", job.status.code()),
            )));
        }
        let later = sqlx::query(&format!(
            "SELECT c.job_id FROM import_changes c JOIN import_jobs j ON j.id = c.job_id
             WHERE c.job_id > $1 AND j.undone_at IS NULL AND c.reader_id IN ({TOUCHED}) ORDER BY c.job_id LIMIT 1"
        ))
        .bind(job_id)
        .bind(job.source_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = later {
            let later: i64 = row.try_get("job_id")?;
            return Err(StoreError::Conflict(Msg::new(
                format!("之后的导入任务 #{later} 又修改了其中的读者，请先撤销任务 #{later}"),
                format!("a later import job, #{later}, changed some of these readers; undo job #{later} first"),
            )));
        }
        let refs = RefCache::load(&mut tx).await?;
        let now = now_text();
        // Newest change first, so a reader changed twice ends as it was before the first.
        let changes = sqlx::query("SELECT reader_id, action, before_json FROM import_changes WHERE job_id = $1 ORDER BY id DESC")
            .bind(job_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut restored = 0u64;
        for change in &changes {
            let image: BeforeImage = from_json(&change.try_get::<String, _>("before_json")?, "before image")?;
            match load_reader(&mut tx, ReaderKey::Id(image.reader.id)).await {
                // Deleted since by staff: nothing to put back.
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
                Ok(current) if !same_record(&current, &image.reader) => {
                    restore_record(&mut tx, &refs, &image.reader, &now).await?;
                    restored += 1;
                }
                Ok(_) => {}
            }
            match &image.link {
                Some(l) => {
                    sqlx::query(
                        "UPDATE reader_sources SET reader_id = $1, fingerprint = $2, fields = $3, first_job_id = $4, last_job_id = $5,
                             seen_job_id = $6 WHERE source_id = $7 AND external_id = $8",
                    )
                    .bind(l.reader_id)
                    .bind(l.fingerprint)
                    .bind(l.fields.clone())
                    .bind(l.first_job_id)
                    .bind(l.last_job_id)
                    .bind(l.seen_job_id)
                    .bind(job.source_id)
                    .bind(image.external_id.clone())
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM reader_sources WHERE source_id = $1 AND external_id = $2")
                        .bind(job.source_id)
                        .bind(image.external_id.clone())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        // Readers the job created, unless another source feeds them too (an identity merge may
        // have pointed another record at one): those stay, unlinked from this job's records.
        let removed = sqlx::query(
            "DELETE FROM readers WHERE id IN (SELECT l.reader_id FROM reader_sources l WHERE l.source_id = $1 AND l.first_job_id = $2
                 AND NOT EXISTS (SELECT 1 FROM reader_sources o WHERE o.reader_id = l.reader_id
                     AND (o.source_id <> l.source_id OR o.first_job_id <> l.first_job_id)))",
        )
        .bind(job.source_id)
        .bind(job_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM reader_sources WHERE source_id = $1 AND first_job_id = $2")
            .bind(job.source_id)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        let marked = sqlx::query("UPDATE import_jobs SET status = 'undone', undone_at = $1 WHERE id = $2 AND status = 'succeeded'")
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        if marked.rows_affected() != 1 {
            return Err(StoreError::Conflict(Msg::new(format!("任务 #{job_id} 刚被撤销"), format!("job #{job_id} was just undone"))));
        }
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "import.undo",
                entity: "import_job",
                entity_id: Some(job_id.to_string()),
                summary: format!("{} {}: {removed} readers removed, {restored} restored", job.source, job.label),
                before: None,
                after: Some(serde_json::json!({ "removed": removed, "restored": restored })),
            },
        )
        .await?;
        let done = load_job(&mut tx, job_id).await?;
        tx.commit().await?;
        Ok(done)
    }
}
