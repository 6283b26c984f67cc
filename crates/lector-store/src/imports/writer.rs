//! The import writer: classifies one job's rows (created, updated, unchanged, merged, rejected)
//! and writes them inside a single transaction, a batch at a time, with a few statements per
//! batch rather than per row on the paths that carry most rows (create, unchanged).

use super::jobs::{from_json, to_json};
use super::{merge, ImportJob, MAX_STORED_REJECTIONS};
use crate::audit::{self, Change};
use crate::db::Param;
use crate::readers::refs::{Check, RefCache};
use crate::readers::rows::{self, insert_rows, Placeholders, ReaderRow, PARAMS_PER_STATEMENT};
use crate::readers::{load_reader, ReaderKey, ReaderRecord};
use crate::{now_text, Actor, Result, Store, StoreError};
use lector_domain::import::{ImportCounts, IncomingReader, JobStatus, ReaderField, Rejection};
use lector_domain::reader::ReaderInput;
use lector_domain::Msg;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A reader's link to a record of the job's source, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Link {
    pub reader_id: i64,
    pub fingerprint: i64,
    pub fields: String,
    pub first_job_id: i64,
    pub last_job_id: i64,
    pub seen_job_id: i64,
}

/// What undo needs to put a reader back: the record and its link before the job changed them
/// (no link: the job linked the reader, so undo unlinks it).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct BeforeImage {
    pub reader: ReaderRecord,
    pub external_id: String,
    pub link: Option<Link>,
}

const LINK_COLUMNS: &str = "external_id, reader_id, fingerprint, fields, first_job_id, last_job_id, seen_job_id";

fn link(row: &AnyRow) -> Result<Link> {
    Ok(Link {
        reader_id: row.try_get("reader_id")?,
        fingerprint: row.try_get("fingerprint")?,
        fields: row.try_get("fields")?,
        first_job_id: row.try_get("first_job_id")?,
        last_job_id: row.try_get("last_job_id")?,
        seen_job_id: row.try_get("seen_job_id")?,
    })
}

/// Applies one job's rows inside a single transaction: committed by [`ImportWriter::finish`]
/// (unless the job is a dry run or all-or-nothing with rejections), rolled back if dropped.
pub struct ImportWriter {
    store: Store,
    tx: Transaction<'static, Any>,
    job: ImportJob,
    refs: RefCache,
    counts: ImportCounts,
    /// Kept up to [`MAX_STORED_REJECTIONS`]; `counts.rejected` counts them all.
    rejections: Vec<Rejection>,
    last_rejected_row: Option<u64>,
    /// External ids met so far in this job, with the row each was first on.
    seen: HashMap<Box<str>, u64>,
    /// Field codes (and `attr.CODE`) the job's rows mapped, and the last row's mapping.
    mapped: BTreeSet<String>,
    last_mapping: (Vec<ReaderField>, Vec<String>),
}

/// A row bound for an existing reader: the one its record is linked to (its values changed), or
/// one with its card number (not linked yet: a merge).
struct Pending<'a> {
    row: &'a IncomingReader,
    fingerprint: i64,
    reader_id: i64,
    linked: bool,
}

/// An existing reader about to take a row's values.
struct Applied<'a> {
    pending: Pending<'a>,
    /// The reader's link to the row's record, as stored (none for a merge).
    link: Option<Link>,
    before: ReaderRecord,
    merged: ReaderInput,
    changed: Vec<String>,
}

/// The value a rejection shows for a field of a row.
fn value_of(input: &ReaderInput, field: &str) -> String {
    match field {
        "category" => input.category.clone(),
        "owner" => input.owner.clone().unwrap_or_default(),
        "card_no" => input.card_no.as_str().to_string(),
        f => f.strip_prefix("attributes.").and_then(|code| input.attributes.get(code)).map(|v| v.join(", ")).unwrap_or_default(),
    }
}

impl Store {
    /// Opens the writer for a running job.
    pub async fn begin_import(&self, job: &ImportJob) -> Result<ImportWriter> {
        // Committed before the job's transaction opens, so that nothing in that long
        // transaction holds the job's row (lease renewals write it).
        let started = sqlx::query("UPDATE import_jobs SET started_at = $1 WHERE id = $2 AND status = 'running'")
            .bind(now_text())
            .bind(job.id)
            .execute(&self.pool)
            .await?;
        if started.rows_affected() != 1 {
            return Err(StoreError::Conflict(Msg::new(
                format!("导入任务 #{} 不在进行中，不能写入", job.id),
                format!("import job #{} is not running; it cannot write", job.id),
            )));
        }
        let mut tx = self.begin().await?;
        let refs = RefCache::load(&mut tx).await?;
        Ok(ImportWriter {
            store: self.clone(),
            tx,
            job: job.clone(),
            refs,
            counts: ImportCounts::default(),
            rejections: Vec::new(),
            last_rejected_row: None,
            seen: HashMap::new(),
            mapped: BTreeSet::new(),
            last_mapping: (Vec::new(), Vec::new()),
        })
    }
}

impl ImportWriter {
    /// Classifies each row (created / updated / unchanged / merged) and writes it; rows that
    /// cannot go in (a source id met before in the job, a card number another reader holds, an
    /// unknown category, owner or attribute) are rejected. Counts every row as read.
    pub async fn apply(&mut self, rows: &[IncomingReader]) -> Result<()> {
        self.counts.rows += rows.len() as u64;
        let mut batch: Vec<(&IncomingReader, i64)> = Vec::with_capacity(rows.len());
        for row in rows {
            self.note_mapping(row);
            if let Some(&first) = self.seen.get(row.external_id.as_str()) {
                self.reject_row(Rejection::new(
                    row.row,
                    "external_id",
                    &row.external_id,
                    Msg::new(format!("同一来源编号在第 {first} 行已出现"), format!("the same source id already appears on row {first}")),
                ));
                continue;
            }
            self.seen.insert(row.external_id.as_str().into(), row.row);
            batch.push((row, merge::fingerprint(row, &self.job.options)));
        }
        let ids: Vec<&str> = batch.iter().map(|(r, _)| r.external_id.as_str()).collect();
        // (fingerprint, reader id) of each row's link, by position.
        let mut links: Vec<Option<(i64, i64)>> = vec![None; ids.len()];
        let join = "reader_sources l ON l.source_id = {} AND l.external_id = v.column2";
        for (i, found) in
            rows::lookup_keys(&mut self.tx, join, &[Param::from(self.job.source_id)], &ids, &["l.fingerprint", "l.reader_id"]).await?
        {
            if let [fingerprint, reader_id] = found[..] {
                links[i] = Some((fingerprint, reader_id));
            }
        }
        let (mut unchanged, mut changed, mut fresh) = (Vec::new(), Vec::new(), Vec::new());
        for ((row, fingerprint), link) in batch.into_iter().zip(links) {
            match link {
                Some((stored, _)) if stored == fingerprint => unchanged.push(row.external_id.as_str()),
                Some((_, reader_id)) => changed.push(Pending { row, fingerprint, reader_id, linked: true }),
                None => fresh.push((row, fingerprint)),
            }
        }
        self.counts.unchanged += unchanged.len() as u64;
        if self.job.options.deactivate_missing {
            self.mark_seen(&unchanged).await?;
        }
        if changed.is_empty() && fresh.is_empty() {
            return Ok(());
        }
        let cards: Vec<&str> = changed.iter().map(|p| p.row).chain(fresh.iter().map(|f| f.0)).map(|r| r.input.card_no.as_str()).collect();
        let holders = self.card_holders(&cards).await?;
        // Card numbers this batch writes, with the row that writes each.
        let mut taken: HashMap<&str, u64> = HashMap::new();
        let mut updates = Vec::new();
        for p in changed {
            let card = p.row.input.card_no.as_str();
            if merge::sets_card(p.row, &self.job.options) {
                if holders.get(card).is_some_and(|h| h.0 != p.reader_id) {
                    self.reject_card(p.row, card_taken(card));
                    continue;
                }
                if let Some(&first) = taken.get(card) {
                    self.reject_card(p.row, card_repeated(card, first));
                    continue;
                }
                taken.insert(card, p.row.row);
            }
            updates.push(p);
        }
        let mut creates = Vec::new();
        for (row, fingerprint) in fresh {
            let card = row.input.card_no.as_str();
            if let Some(&first) = taken.get(card) {
                self.reject_card(row, card_repeated(card, first));
                continue;
            }
            match holders.get(card) {
                Some(&(reader_id, true)) => {
                    let other = sqlx::query("SELECT external_id FROM reader_sources WHERE source_id = $1 AND reader_id = $2")
                        .bind(self.job.source_id)
                        .bind(reader_id)
                        .fetch_one(&mut *self.tx)
                        .await?
                        .try_get::<String, _>("external_id")?;
                    let msg = Msg::new(
                        format!("读者证号“{card}”已属于本数据源的另一条记录（来源编号 {other}）"),
                        format!("card number '{card}' already belongs to another record of this source (source id {other})"),
                    );
                    self.reject_card(row, msg);
                    continue;
                }
                Some(&(reader_id, false)) => updates.push(Pending { row, fingerprint, reader_id, linked: false }),
                None => creates.push((row, fingerprint)),
            }
            taken.insert(card, row.row);
        }
        self.create(creates).await?;
        self.update(updates).await
    }

    /// Records a row the caller could not turn into a reader; several rejections of one row
    /// count it once, as read and as rejected.
    pub fn reject(&mut self, rejection: Rejection) {
        if self.last_rejected_row != Some(rejection.row) {
            self.counts.rows += 1;
        }
        self.reject_row(rejection);
    }

    pub fn counts(&self) -> ImportCounts {
        self.counts
    }

    /// Deactivates missing readers if asked, commits (or rolls back a dry run or a failed
    /// all-or-nothing job), stores counts and rejections, audits the job, and returns it.
    ///
    /// Readers are deactivated as missing only when no row was rejected: a rejected row may be
    /// one the source still lists. A dry run goes through the same steps, then rolls back.
    pub async fn finish(mut self) -> Result<ImportJob> {
        let refused = self.job.options.all_or_nothing && self.counts.rejected > 0;
        if self.job.options.deactivate_missing && self.counts.rejected == 0 {
            self.deactivate_missing().await?;
        }
        let ImportWriter { store, tx, job, counts, rejections, mapped, .. } = self;
        if job.dry_run || refused {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        let (status, error, counts) = if refused {
            let n = counts.rejected;
            let error = Msg::new(
                format!("有 {n} 行被拒绝；本任务设为“全部成功才导入”，因此没有写入任何数据"),
                format!("{n} rows were rejected; the job is all-or-nothing, so nothing was written"),
            );
            (JobStatus::Failed, Some(error), ImportCounts { rows: counts.rows, rejected: n, ..Default::default() })
        } else {
            (JobStatus::Succeeded, None, counts)
        };
        store.record_finished(&job, status, error, counts, &rejections, &mapped).await
    }

    fn note_mapping(&mut self, row: &IncomingReader) {
        if row.mapped == self.last_mapping.0 && row.mapped_attributes == self.last_mapping.1 {
            return;
        }
        self.mapped.extend(row.mapped.iter().map(|f| f.code().to_string()));
        self.mapped.extend(row.mapped_attributes.iter().map(|c| format!("attr.{c}")));
        self.last_mapping = (row.mapped.clone(), row.mapped_attributes.clone());
    }

    fn reject_row(&mut self, rejection: Rejection) {
        if self.last_rejected_row != Some(rejection.row) {
            self.counts.rejected += 1;
            self.last_rejected_row = Some(rejection.row);
        }
        if self.rejections.len() < MAX_STORED_REJECTIONS {
            self.rejections.push(rejection);
        }
    }

    fn reject_card(&mut self, row: &IncomingReader, msg: Msg) {
        self.reject_row(Rejection::new(row.row, "card_no", row.input.card_no.as_str(), msg));
    }

    fn reject_field(&mut self, row: &IncomingReader, field: &str, msg: Msg) {
        let value = value_of(&row.input, field);
        self.reject_row(Rejection::new(row.row, field, &value, msg));
    }

    /// The readers holding these card numbers, and whether this source links each already.
    async fn card_holders<'c>(&mut self, cards: &[&'c str]) -> Result<HashMap<&'c str, (i64, bool)>> {
        let join = "readers r ON r.card_no = v.column2 LEFT JOIN reader_sources l ON l.reader_id = r.id AND l.source_id = {}";
        let linked = "CASE WHEN l.reader_id IS NULL THEN 0 ELSE 1 END";
        let found = rows::lookup_keys(&mut self.tx, join, &[Param::from(self.job.source_id)], cards, &["r.id", linked]).await?;
        let mut out = HashMap::new();
        for (i, found) in found {
            if let [reader_id, linked] = found[..] {
                out.insert(cards[i], (reader_id, linked != 0));
            }
        }
        Ok(out)
    }

    /// Marks records met unchanged as seen by this job (for `deactivate_missing`).
    async fn mark_seen(&mut self, ids: &[&str]) -> Result<()> {
        let style = Placeholders::of(&self.tx);
        for chunk in ids.chunks(PARAMS_PER_STATEMENT - 2) {
            let mut sql = String::from("UPDATE reader_sources SET seen_job_id = ");
            style.push(&mut sql, 1);
            sql.push_str(" WHERE source_id = ");
            style.push(&mut sql, 2);
            sql.push_str(" AND external_id IN (");
            style.push_list(&mut sql, 3, chunk.len());
            sql.push(')');
            let mut q = sqlx::query(&sql).persistent(chunk.len() == PARAMS_PER_STATEMENT - 2).bind(self.job.id).bind(self.job.source_id);
            for id in chunk {
                q = q.bind(id.to_string());
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Creates readers for rows new to the store, with their links.
    async fn create(&mut self, creates: Vec<(&IncomingReader, i64)>) -> Result<()> {
        let mut readers = Vec::with_capacity(creates.len());
        let mut meta = Vec::with_capacity(creates.len());
        for (row, fingerprint) in creates {
            match self.refs.resolve(&row.input, None, Check::Input) {
                Ok(resolved) => {
                    readers.push(ReaderRow { id: 0, input: &row.input, resolved });
                    meta.push((row, fingerprint));
                }
                Err((field, msg)) => self.reject_field(row, &field, msg),
            }
        }
        let clashes = rows::unique_clashes(&mut self.tx, &readers).await?;
        if !clashes.is_empty() {
            let mut keep = vec![true; readers.len()];
            for (i, field, msg) in clashes {
                if std::mem::replace(&mut keep[i], false) {
                    self.reject_field(meta[i].0, &field, msg);
                }
            }
            let mut k = keep.iter();
            readers.retain(|_| k.next().copied().unwrap_or(false));
            let mut k = keep.iter();
            meta.retain(|_| k.next().copied().unwrap_or(false));
        }
        if readers.is_empty() {
            return Ok(());
        }
        rows::insert_readers(&mut self.tx, &mut readers, &now_text()).await?;
        rows::insert_children(&mut self.tx, &readers).await?;
        let (source, job) = (self.job.source_id, self.job.id);
        let fields = to_json(&BTreeMap::from([("*", job)]));
        let links: Vec<(&str, i64, i64)> = meta.iter().zip(&readers).map(|((row, fp), r)| (row.external_id.as_str(), r.id, *fp)).collect();
        let head =
            "INSERT INTO reader_sources (source_id, external_id, reader_id, fingerprint, fields, first_job_id, last_job_id, seen_job_id)";
        insert_rows(&mut self.tx, head, 8, &links, |(ext, id, fp), p| {
            p.extend([
                Param::from(source),
                (*ext).into(),
                Param::from(*id),
                Param::from(*fp),
                fields.as_str().into(),
                Param::from(job),
                Param::from(job),
                Param::from(job),
            ])
        })
        .await?;
        self.counts.created += readers.len() as u64;
        Ok(())
    }

    /// Applies rows to existing readers: their own records that changed (updated), or readers
    /// new to this source found by card number (merged).
    async fn update(&mut self, pending: Vec<Pending<'_>>) -> Result<()> {
        let options = self.job.options.clone();
        let mut changes: Vec<Applied> = Vec::new();
        let mut resolved = Vec::new();
        let mut quiet = Vec::new();
        for p in pending {
            let before = load_reader(&mut self.tx, ReaderKey::Id(p.reader_id)).await?;
            let (merged, changed) = merge::apply(&before.to_input()?, p.row, &options);
            if changed.is_empty() && p.linked {
                // News from the source that the options keep out of the record.
                quiet.push(p);
                continue;
            }
            match self.refs.resolve(&merged, self.refs.category_id(&before.category.code), Check::Input) {
                Ok(r) => {
                    let link = match p.linked {
                        true => {
                            let row = sqlx::query(&format!(
                                "SELECT {LINK_COLUMNS} FROM reader_sources WHERE source_id = $1 AND external_id = $2"
                            ))
                            .bind(self.job.source_id)
                            .bind(p.row.external_id.clone())
                            .fetch_one(&mut *self.tx)
                            .await?;
                            Some(link(&row)?)
                        }
                        false => None,
                    };
                    resolved.push(r);
                    changes.push(Applied { pending: p, link, before, merged, changed });
                }
                Err((field, msg)) => self.reject_field(p.row, &field, msg),
            }
        }
        self.keep_fingerprints(&quiet).await?;
        let readers: Vec<ReaderRow> =
            changes.iter().zip(resolved).map(|(c, resolved)| ReaderRow { id: c.pending.reader_id, input: &c.merged, resolved }).collect();
        let mut keep = vec![true; readers.len()];
        for (i, field, msg) in rows::unique_clashes(&mut self.tx, &readers).await? {
            if std::mem::replace(&mut keep[i], false) {
                self.reject_field(changes[i].pending.row, &field, msg);
            }
        }
        let now = now_text();
        let job = self.job.id;
        let mut images = Vec::new();
        let mut written = Vec::new();
        for ((c, r), _) in changes.iter().zip(readers).zip(&keep).filter(|(_, k)| **k) {
            let image = BeforeImage { reader: c.before.clone(), external_id: c.pending.row.external_id.clone(), link: c.link.clone() };
            images.push((r.id, if c.link.is_some() { "updated" } else { "merged" }, to_json(&image)));
            // A merge may change nothing in the record; it still links it (and undo unlinks it).
            if !c.changed.is_empty() {
                rows::update_reader(&mut self.tx, &r, &now, None).await?;
                written.push(r);
            }
        }
        let ids: Vec<i64> = written.iter().map(|r| r.id).collect();
        rows::delete_children(&mut self.tx, &ids).await?;
        rows::insert_children(&mut self.tx, &written).await?;
        insert_rows(
            &mut self.tx,
            "INSERT INTO import_changes (job_id, reader_id, action, before_json)",
            4,
            &images,
            |(id, action, image), p| p.extend([Param::from(job), Param::from(*id), (*action).into(), image.as_str().into()]),
        )
        .await?;
        let changes = changes.iter().zip(&keep).filter(|(_, k)| **k).map(|(c, _)| c);
        for c in changes {
            let mut fields: BTreeMap<String, i64> = match &c.link {
                Some(l) => from_json(&l.fields, "provenance")?,
                None => BTreeMap::new(),
            };
            fields.extend(c.changed.iter().map(|f| (f.clone(), job)));
            let fp = c.pending.fingerprint;
            match &c.link {
                Some(_) => {
                    self.counts.updated += 1;
                    sqlx::query(
                        "UPDATE reader_sources SET fingerprint = $1, fields = $2, last_job_id = $3, seen_job_id = $3
                         WHERE source_id = $4 AND external_id = $5",
                    )
                    .bind(fp)
                    .bind(to_json(&fields))
                    .bind(job)
                    .bind(self.job.source_id)
                    .bind(c.pending.row.external_id.clone())
                    .execute(&mut *self.tx)
                    .await?;
                }
                None => {
                    self.counts.merged += 1;
                    sqlx::query(
                        "INSERT INTO reader_sources (source_id, external_id, reader_id, fingerprint, fields, first_job_id, last_job_id, seen_job_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
                    )
                    .bind(self.job.source_id)
                    .bind(c.pending.row.external_id.clone())
                    .bind(c.pending.reader_id)
                    .bind(fp)
                    .bind(to_json(&fields))
                    .bind(job)
                    .execute(&mut *self.tx)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Rows whose news the options keep out of the record count as unchanged; their links
    /// take the new fingerprint so the next run skips them quickly.
    async fn keep_fingerprints(&mut self, quiet: &[Pending<'_>]) -> Result<()> {
        for p in quiet {
            self.counts.unchanged += 1;
            sqlx::query("UPDATE reader_sources SET fingerprint = $1, seen_job_id = $2 WHERE source_id = $3 AND external_id = $4")
                .bind(p.fingerprint)
                .bind(self.job.id)
                .bind(self.job.source_id)
                .bind(p.row.external_id.clone())
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Deactivates the readers this source linked before and did not list in this job.
    async fn deactivate_missing(&mut self) -> Result<()> {
        let missing = sqlx::query(&format!(
            "SELECT {} FROM reader_sources l JOIN readers r ON r.id = l.reader_id
             WHERE l.source_id = $1 AND l.seen_job_id <> $2 AND r.status <> 'deactivated' ORDER BY l.reader_id",
            LINK_COLUMNS.split(", ").map(|c| format!("l.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(self.job.source_id)
        .bind(self.job.id)
        .fetch_all(&mut *self.tx)
        .await?;
        let now = now_text();
        let job = self.job.id;
        for row in &missing {
            let before_link = link(row)?;
            let external_id: String = row.try_get("external_id")?;
            let before = load_reader(&mut self.tx, ReaderKey::Id(before_link.reader_id)).await?;
            if before.status == lector_domain::reader::ReaderStatus::Deactivated {
                continue;
            }
            sqlx::query("UPDATE readers SET status = 'deactivated', version = version + 1, updated_at = $1 WHERE id = $2")
                .bind(now.clone())
                .bind(before_link.reader_id)
                .execute(&mut *self.tx)
                .await?;
            let mut fields: BTreeMap<String, i64> = from_json(&before_link.fields, "provenance")?;
            fields.insert(ReaderField::Status.code().to_string(), job);
            // Fingerprint 0: should the record come back unchanged, it is applied again.
            sqlx::query(
                "UPDATE reader_sources SET fingerprint = 0, fields = $1, last_job_id = $2 WHERE source_id = $3 AND external_id = $4",
            )
            .bind(to_json(&fields))
            .bind(job)
            .bind(self.job.source_id)
            .bind(external_id.clone())
            .execute(&mut *self.tx)
            .await?;
            let image = BeforeImage { reader: before, external_id, link: Some(before_link.clone()) };
            sqlx::query("INSERT INTO import_changes (job_id, reader_id, action, before_json) VALUES ($1, $2, 'deactivated', $3)")
                .bind(job)
                .bind(before_link.reader_id)
                .bind(to_json(&image))
                .execute(&mut *self.tx)
                .await?;
            self.counts.deactivated += 1;
        }
        Ok(())
    }
}

fn card_taken(card: &str) -> Msg {
    Msg::new(format!("读者证号“{card}”已被另一位读者使用"), format!("card number '{card}' is already used by another reader"))
}

fn card_repeated(card: &str, first: u64) -> Msg {
    Msg::new(format!("读者证号“{card}”与第 {first} 行重复"), format!("card number '{card}' repeats the one on row {first}"))
}

impl Store {
    /// Stores how a job ended, with its rejections and one audit entry, in a short transaction
    /// of its own (the job's own transaction has ended).
    async fn record_finished(
        &self,
        job: &ImportJob,
        status: JobStatus,
        error: Option<Msg>,
        counts: ImportCounts,
        rejections: &[Rejection],
        mapped: &BTreeSet<String>,
    ) -> Result<ImportJob> {
        let mut tx = self.begin().await?;
        let created_by_id: Option<i64> = sqlx::query("SELECT created_by_id FROM import_jobs WHERE id = $1")
            .bind(job.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("created_by_id")?;
        sqlx::query(
            "UPDATE import_jobs SET status = $1, counts = $2, error = $3, mapped = $4, finished_at = $5, lease_until = NULL WHERE id = $6",
        )
        .bind(status.code().to_string())
        .bind(to_json(&counts))
        .bind(error.as_ref().map(to_json))
        .bind(to_json(mapped))
        .bind(now_text())
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM import_rejections WHERE job_id = $1").bind(job.id).execute(&mut *tx).await?;
        let numbered: Vec<(usize, &Rejection)> = rejections.iter().enumerate().collect();
        let head = "INSERT INTO import_rejections (job_id, seq, row_no, column_name, value, reason_zh, reason_en)";
        insert_rows(&mut tx, head, 7, &numbered, |(seq, r), p| {
            p.extend([
                Param::from(job.id),
                Param::from(*seq as i64),
                Param::from(r.row as i64),
                r.column.as_str().into(),
                r.value.as_str().into(),
                r.reason.zh.as_str().into(),
                r.reason.en.as_str().into(),
            ])
        })
        .await?;
        let c = counts;
        audit::record(
            &mut tx,
            &Actor { user_id: created_by_id, name: job.created_by.clone(), origin: "import".into() },
            Change {
                action: if job.dry_run { "import.dry_run" } else { "import.run" },
                entity: "import_job",
                entity_id: Some(job.id.to_string()),
                summary: format!(
                    "{} {}: {} — {} created, {} updated, {} unchanged, {} merged, {} rejected, {} deactivated",
                    job.source,
                    job.label,
                    status.code(),
                    c.created,
                    c.updated,
                    c.unchanged,
                    c.merged,
                    c.rejected,
                    c.deactivated
                ),
                before: None,
                after: Some(serde_json::json!({ "status": status.code(), "counts": counts, "error": error })),
            },
        )
        .await?;
        let done = super::jobs::load_job(&mut tx, job.id).await?;
        tx.commit().await?;
        Ok(done)
    }
}
