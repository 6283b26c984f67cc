//! Import jobs as durable records: creating, claiming (one worker per job, even across servers),
//! listing and failing them; sources and their re-sync schedules; provenance; mapping profiles.

use super::{ImportJob, ImportSource, MappingProfile, NewImportJob, Provenance};
use crate::audit::{self, Change};
use crate::db::{flag, Backend, Sql};
use crate::{now_text, Actor, Page, Result, Store, StoreError};
use lector_domain::import::{ImportCounts, ImportOptions, JobStatus, ReaderField, Rejection};
use lector_domain::Msg;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use std::collections::{BTreeMap, HashMap};

const JOB_COLUMNS: &str = "SELECT j.id, j.source_id, s.name AS source_name, j.format, j.label, j.options, j.dry_run, j.spec, j.status, \
    j.counts, j.error, j.created_by, j.created_at, j.started_at, j.finished_at, j.undone_at \
    FROM import_jobs j JOIN import_sources s ON s.id = j.source_id";

/// Claims retried when another worker takes the job picked first.
const CLAIM_ATTEMPTS: usize = 5;

pub(super) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Other(format!("stored {what} is not valid JSON: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `at` moved on by `secs` seconds, in the stored time format.
pub(super) fn later(at: &str, secs: i64) -> Result<String> {
    let t = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| StoreError::Other(format!("time '{at}' is not RFC 3339: {e}")))?;
    Ok((t.with_timezone(&chrono::Utc) + chrono::Duration::seconds(secs)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn job(row: &AnyRow) -> Result<ImportJob> {
    let status: String = row.try_get("status")?;
    let error: Option<String> = row.try_get("error")?;
    Ok(ImportJob {
        id: row.try_get("id")?,
        source_id: row.try_get("source_id")?,
        source: row.try_get("source_name")?,
        format: row.try_get("format")?,
        label: row.try_get("label")?,
        options: from_json(&row.try_get::<String, _>("options")?, "job options")?,
        dry_run: flag(row, "dry_run")?,
        spec: from_json(&row.try_get::<String, _>("spec")?, "job spec")?,
        status: JobStatus::parse(&status).map_err(|m| StoreError::Other(m.en))?,
        counts: from_json(&row.try_get::<String, _>("counts")?, "job counts")?,
        error: error.map(|e| from_json(&e, "job error")).transpose()?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        undone_at: row.try_get("undone_at")?,
    })
}

fn source(row: &AnyRow) -> Result<ImportSource> {
    let spec: Option<String> = row.try_get("spec")?;
    Ok(ImportSource {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec: spec.map(|s| from_json(&s, "source spec")).transpose()?,
        every_minutes: row.try_get("every_minutes")?,
        next_run_at: row.try_get("next_run_at")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) async fn load_job(conn: &mut AnyConnection, id: i64) -> Result<ImportJob> {
    let row = sqlx::query(&format!("{JOB_COLUMNS} WHERE j.id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    job(&row.ok_or(StoreError::NotFound)?)
}

/// Checks a name (of a source or profile): 1 to 100 characters.
fn name_of(raw: &str, field: &str) -> Result<String> {
    let name = lector_domain::text::clean(raw);
    if name.is_empty() || name.chars().count() > 100 || lector_domain::text::has_control(&name) {
        return Err(StoreError::invalid(
            field,
            Msg::new("名称应为 1 到 100 个字符，且不含控制字符", "a name has 1 to 100 characters and no control characters"),
        ));
    }
    Ok(name)
}

/// The id of the source called `name`, created if new.
async fn source_id(tx: &mut Transaction<'static, Any>, name: &str) -> Result<i64> {
    sqlx::query("INSERT INTO import_sources (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name.to_string())
        .bind(now_text())
        .execute(&mut **tx)
        .await?;
    Ok(sqlx::query("SELECT id FROM import_sources WHERE name = $1").bind(name.to_string()).fetch_one(&mut **tx).await?.try_get("id")?)
}

/// Inserts a job row and audits it.
async fn insert_job(
    tx: &mut Transaction<'static, Any>,
    actor: &Actor,
    source_id: i64,
    new: &NewImportJob,
    status: JobStatus,
) -> Result<i64> {
    let now = now_text();
    let running = status == JobStatus::Running;
    let row = sqlx::query(
        "INSERT INTO import_jobs (source_id, format, label, options, dry_run, spec, status, counts, created_by_id, created_by, created_at,
             started_at, worker)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(source_id)
    .bind(new.format.clone())
    .bind(new.label.clone())
    .bind(to_json(&new.options))
    .bind(new.dry_run as i64)
    .bind(new.spec.to_string())
    .bind(status.code().to_string())
    .bind(to_json(&ImportCounts::default()))
    .bind(actor.user_id)
    .bind(actor.name.clone())
    .bind(now.clone())
    .bind(running.then(|| now.clone()))
    .bind(running.then(|| "direct".to_string()))
    .fetch_one(&mut **tx)
    .await?;
    let id: i64 = row.try_get("id")?;
    audit::record(
        tx,
        actor,
        Change {
            action: "import.create",
            entity: "import_job",
            entity_id: Some(id.to_string()),
            summary: format!("{} {} ({})", new.source, new.label, status.code()),
            before: None,
            after: Some(serde_json::json!({ "source": new.source, "format": new.format, "label": new.label,
                "options": new.options, "dry_run": new.dry_run, "status": status.code() })),
        },
    )
    .await?;
    Ok(id)
}

impl Store {
    /// Records a job: `queued` for the server's worker, or `running` for a caller that runs it
    /// at once (the CLI).
    pub async fn create_import_job(&self, actor: &Actor, new: &NewImportJob, status: JobStatus) -> Result<ImportJob> {
        if !matches!(status, JobStatus::Queued | JobStatus::Running) {
            return Err(StoreError::invalid("status", Msg::new("新任务只能是排队中或进行中", "a new job is either queued or running")));
        }
        let name = name_of(&new.source, "source")?;
        let mut tx = self.begin().await?;
        let source_id = source_id(&mut tx, &name).await?;
        let id = insert_job(&mut tx, actor, source_id, &NewImportJob { source: name, ..new.clone() }, status).await?;
        let job = load_job(&mut tx, id).await?;
        tx.commit().await?;
        Ok(job)
    }

    /// Takes the oldest queued job, or a running one whose lease ran out (its worker died), for
    /// `worker`; two workers never get the same job.
    pub async fn claim_import_job(&self, worker: &str, lease_secs: i64) -> Result<Option<ImportJob>> {
        for _ in 0..CLAIM_ATTEMPTS {
            let now = now_text();
            let picked = sqlx::query(
                "SELECT id FROM import_jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < $1) ORDER BY id LIMIT 1",
            )
            .bind(now.clone())
            .fetch_optional(&self.pool)
            .await?;
            let Some(picked) = picked else {
                return Ok(None);
            };
            let id: i64 = picked.try_get("id")?;
            // Only one of the workers that picked this job changes its row: the others find it
            // running under a live lease and pick again.
            let claimed = sqlx::query(
                "UPDATE import_jobs SET status = 'running', worker = $1, lease_until = $2
                 WHERE id = $3 AND (status = 'queued' OR (status = 'running' AND lease_until < $4))",
            )
            .bind(worker.to_string())
            .bind(later(&now, lease_secs)?)
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if claimed.rows_affected() == 1 {
                tracing::info!(job = id, worker, "claimed import job");
                return Ok(Some(self.import_job(id).await?));
            }
        }
        Ok(None)
    }

    /// Extends a running job's lease (best effort while the job's transaction is open).
    ///
    /// On SQLite this does nothing: the job's open transaction holds the database's only write
    /// lock, so no other worker can claim anything until it ends, and waiting for the lock here
    /// would stall the job itself.
    pub async fn renew_import_lease(&self, job_id: i64, worker: &str, lease_secs: i64) -> Result<()> {
        if self.backend() == Backend::Sqlite {
            return Ok(());
        }
        sqlx::query("UPDATE import_jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND status = 'running'")
            .bind(later(&now_text(), lease_secs)?)
            .bind(job_id)
            .bind(worker.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn import_job(&self, id: i64) -> Result<ImportJob> {
        load_job(&mut *self.pool.acquire().await?, id).await
    }

    /// Jobs, newest first.
    pub async fn import_jobs(&self, page: i64, per_page: i64) -> Result<Page<ImportJob>> {
        let per_page = per_page.clamp(1, 200);
        let page = page.max(1);
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM import_jobs").fetch_one(&self.pool).await?.try_get("n")?;
        let rows = sqlx::query(&format!("{JOB_COLUMNS} ORDER BY j.id DESC LIMIT {per_page} OFFSET {}", (page - 1) * per_page))
            .fetch_all(&self.pool)
            .await?;
        Ok(Page { items: rows.iter().map(job).collect::<Result<_>>()?, total, total_capped: false, page, per_page })
    }

    /// Marks a job failed with the reason (nothing it wrote remains: its transaction was rolled back).
    pub async fn fail_import_job(&self, job_id: i64, error: &Msg) -> Result<ImportJob> {
        let mut tx = self.begin().await?;
        let before = load_job(&mut tx, job_id).await?;
        if !matches!(before.status, JobStatus::Queued | JobStatus::Running) {
            return Err(StoreError::Conflict(Msg::new(
                format!("任务 #{job_id} 已结束（{}），不能再标记为失败", before.status.label().zh),
                format!("job #{job_id} has already ended ({}); it cannot be marked failed", before.status.code()),
            )));
        }
        sqlx::query("UPDATE import_jobs SET status = 'failed', error = $1, finished_at = $2, lease_until = NULL WHERE id = $3")
            .bind(to_json(error))
            .bind(now_text())
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            &Actor::system("import"),
            Change {
                action: "import.fail",
                entity: "import_job",
                entity_id: Some(job_id.to_string()),
                summary: format!("{} {}: {}", before.source, before.label, error.en),
                before: None,
                after: Some(serde_json::json!({ "error": error })),
            },
        )
        .await?;
        let job = load_job(&mut tx, job_id).await?;
        tx.commit().await?;
        Ok(job)
    }

    /// The rows a job rejected, in row order (at most [`super::MAX_STORED_REJECTIONS`]).
    pub async fn import_rejections(&self, job_id: i64) -> Result<Vec<Rejection>> {
        let rows = sqlx::query(
            "SELECT row_no, column_name, value, reason_zh, reason_en FROM import_rejections WHERE job_id = $1 ORDER BY row_no, seq",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Rejection {
                    row: r.try_get::<i64, _>("row_no")?.max(0) as u64,
                    column: r.try_get("column_name")?,
                    value: r.try_get("value")?,
                    reason: Msg::new(r.try_get::<String, _>("reason_zh")?, r.try_get::<String, _>("reason_en")?),
                })
            })
            .collect()
    }

    /// For each source that feeds the reader, the fields it set, the job that last set each and
    /// when. A field several sources set is listed once per source, newest first.
    pub async fn reader_provenance(&self, reader_id: i64) -> Result<Vec<Provenance>> {
        let links = sqlx::query(
            "SELECT s.name, l.external_id, l.fields FROM reader_sources l JOIN import_sources s ON s.id = l.source_id WHERE l.reader_id = $1",
        )
        .bind(reader_id)
        .fetch_all(&self.pool)
        .await?;
        let mut sets: Vec<(String, String, BTreeMap<String, i64>)> = Vec::new();
        for link in &links {
            sets.push((
                link.try_get("name")?,
                link.try_get("external_id")?,
                from_json(&link.try_get::<String, _>("fields")?, "provenance")?,
            ));
        }
        let mut wanted: Vec<i64> = sets.iter().flat_map(|(_, _, f)| f.values().copied()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        // Each job's time, and the fields it mapped (what "*", a link it created, stands for).
        let mut jobs: HashMap<i64, (String, Vec<String>)> = HashMap::new();
        for chunk in wanted.chunks(500) {
            let mut sql = Sql::new("SELECT id, COALESCE(finished_at, started_at, created_at) AS at, mapped FROM import_jobs WHERE id IN (");
            sql.bind_list(chunk.iter().map(|id| (*id).into())).push(")");
            for r in sql.query().fetch_all(&self.pool).await? {
                jobs.insert(r.try_get("id")?, (r.try_get("at")?, from_json(&r.try_get::<String, _>("mapped")?, "mapped fields")?));
            }
        }
        let mut out: Vec<Provenance> = Vec::new();
        for (source, external_id, fields) in sets {
            let mut by_field: BTreeMap<&str, i64> = BTreeMap::new();
            if let Some((_, mapped)) = fields.get("*").and_then(|job| jobs.get(job)) {
                let first = fields["*"];
                by_field.extend(mapped.iter().map(|code| (code.as_str(), first)));
            }
            by_field.extend(fields.iter().filter(|(code, _)| code.as_str() != "*").map(|(code, job)| (code.as_str(), *job)));
            for (code, job_id) in by_field {
                // Custom attributes (attr.CODE) have no ReaderField to be reported under.
                let Some(field) = ReaderField::ALL.iter().copied().find(|f| f.code() == code) else { continue };
                let Some((at, _)) = jobs.get(&job_id) else { continue };
                out.push(Provenance { source: source.clone(), external_id: external_id.clone(), field, job_id, at: at.clone() });
            }
        }
        let pos = |f: ReaderField| ReaderField::ALL.iter().position(|x| *x == f);
        out.sort_by(|a, b| pos(a.field).cmp(&pos(b.field)).then(b.at.cmp(&a.at)).then(a.source.cmp(&b.source)));
        Ok(out)
    }

    pub async fn import_sources(&self) -> Result<Vec<ImportSource>> {
        let rows = sqlx::query("SELECT * FROM import_sources ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(source).collect()
    }

    /// Sets or clears a source's re-sync schedule and the spec it re-reads.
    pub async fn schedule_import_source(
        &self,
        actor: &Actor,
        name: &str,
        spec: Option<serde_json::Value>,
        every_minutes: Option<i64>,
    ) -> Result<ImportSource> {
        let name = name_of(name, "source")?;
        if let Some(n) = every_minutes {
            if !(1..=527_040).contains(&n) {
                return Err(StoreError::invalid(
                    "every_minutes",
                    Msg::new("同步间隔应为 1 分钟到 1 年之间", "the re-sync interval is between 1 minute and 1 year"),
                ));
            }
            if spec.is_none() {
                return Err(StoreError::invalid(
                    "spec",
                    Msg::new("定时同步需要知道如何重新读取数据源", "a scheduled re-sync needs to know how to read the source again"),
                ));
            }
        }
        let next = every_minutes.map(|n| later(&now_text(), n * 60)).transpose()?;
        let mut tx = self.begin().await?;
        let id = source_id(&mut tx, &name).await?;
        sqlx::query("UPDATE import_sources SET spec = $1, every_minutes = $2, next_run_at = $3 WHERE id = $4")
            .bind(spec.as_ref().map(|s| s.to_string()))
            .bind(every_minutes)
            .bind(next)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT * FROM import_sources WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
        let saved = source(&row)?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "import_source.schedule",
                entity: "import_source",
                entity_id: Some(id.to_string()),
                summary: match every_minutes {
                    Some(n) => format!("{name}: every {n} min"),
                    None => format!("{name}: no schedule"),
                },
                before: None,
                after: Some(serde_json::to_value(&saved).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// For every source whose next run is due, queues a job (unless one is queued or running)
    /// and moves its next run on; returns the jobs queued.
    pub async fn queue_due_imports(&self, now: &str) -> Result<Vec<ImportJob>> {
        let due = sqlx::query(
            "SELECT * FROM import_sources WHERE every_minutes IS NOT NULL AND spec IS NOT NULL AND next_run_at IS NOT NULL AND next_run_at <= $1
             ORDER BY id",
        )
        .bind(now.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut queued = Vec::new();
        for row in &due {
            let src = source(row)?;
            let (Some(every), Some(spec), Some(next_run_at)) = (src.every_minutes, &src.spec, &src.next_run_at) else { continue };
            // The next run after `now` on the source's cadence.
            let mut next = later(next_run_at, every * 60)?;
            while next.as_str() <= now {
                next = later(&next, every * 60)?;
            }
            let mut tx = self.begin().await?;
            // Of the servers calling this at once, only the one that moves the time on queues.
            let moved = sqlx::query("UPDATE import_sources SET next_run_at = $1 WHERE id = $2 AND next_run_at = $3")
                .bind(next)
                .bind(src.id)
                .bind(next_run_at.clone())
                .execute(&mut *tx)
                .await?;
            if moved.rows_affected() != 1 {
                continue;
            }
            let busy = sqlx::query("SELECT id FROM import_jobs WHERE source_id = $1 AND status IN ('queued', 'running') LIMIT 1")
                .bind(src.id)
                .fetch_optional(&mut *tx)
                .await?;
            if busy.is_some() {
                tx.commit().await?;
                continue;
            }
            let last = sqlx::query("SELECT format, label, options FROM import_jobs WHERE source_id = $1 ORDER BY id DESC LIMIT 1")
                .bind(src.id)
                .fetch_optional(&mut *tx)
                .await?;
            let (last_format, label, options) = match &last {
                Some(r) => (
                    Some(r.try_get::<String, _>("format")?),
                    r.try_get::<String, _>("label")?,
                    from_json::<ImportOptions>(&r.try_get::<String, _>("options")?, "job options")?,
                ),
                None => (None, src.name.clone(), ImportOptions::default()),
            };
            let format = match (spec.get("kind").and_then(|k| k.as_str()), spec.pointer("/open/format").and_then(|f| f.as_str())) {
                (Some("sql"), _) => "sql".to_string(),
                (_, Some(f)) => f.to_string(),
                _ => last_format.unwrap_or_else(|| "file".into()),
            };
            let new = NewImportJob { source: src.name.clone(), format, label, options, dry_run: false, spec: spec.clone() };
            let id = insert_job(&mut tx, &Actor::system("scheduler"), src.id, &new, JobStatus::Queued).await?;
            queued.push(load_job(&mut tx, id).await?);
            tx.commit().await?;
        }
        Ok(queued)
    }

    pub async fn mapping_profiles(&self) -> Result<Vec<MappingProfile>> {
        let rows = sqlx::query("SELECT * FROM mapping_profiles ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(profile).collect()
    }

    pub async fn mapping_profile(&self, name: &str) -> Result<MappingProfile> {
        let row = sqlx::query("SELECT * FROM mapping_profiles WHERE name = $1").bind(name.to_string()).fetch_optional(&self.pool).await?;
        profile(&row.ok_or(StoreError::NotFound)?)
    }

    /// Saves a profile under `name`, replacing one of that name.
    pub async fn save_mapping_profile(&self, actor: &Actor, name: &str, toml: &str) -> Result<MappingProfile> {
        let name = name_of(name, "name")?;
        if toml.len() > 1_000_000 {
            return Err(StoreError::invalid("toml", Msg::new("映射方案最多 1 MB", "a mapping profile has at most 1 MB")));
        }
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO mapping_profiles (name, toml, updated_by, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET toml = excluded.toml, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(name.clone())
        .bind(toml.to_string())
        .bind(actor.name.clone())
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "mapping_profile.save",
                entity: "mapping_profile",
                entity_id: Some(name.clone()),
                summary: name.clone(),
                before: None,
                after: Some(serde_json::json!({ "toml": toml })),
            },
        )
        .await?;
        let row = sqlx::query("SELECT * FROM mapping_profiles WHERE name = $1").bind(name).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        profile(&row)
    }
}

fn profile(row: &AnyRow) -> Result<MappingProfile> {
    Ok(MappingProfile {
        name: row.try_get("name")?,
        toml: row.try_get("toml")?,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}
