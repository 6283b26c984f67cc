//! Import jobs in the store: the writer's classification (created, updated, unchanged, merged,
//! rejected, deactivated), options, dry runs, all-or-nothing, undo, provenance, claiming and
//! scheduling. Every scenario runs on a fresh SQLite file and a fresh PostgreSQL database.

#[macro_use]
mod common;

use common::{actor, today};
use lector_store::domain::import::{ImportCounts, ImportOptions, IncomingReader, JobStatus, ReaderField, Rejection};
use lector_store::domain::reader::{ContactDraft, ReaderDraft, ReaderStatus};
use lector_store::domain::Msg;
use lector_store::imports::{ImportJob, NewImportJob, MAX_STORED_REJECTIONS};
use lector_store::readers::ReaderRecord;
use lector_store::{Actor, Store, StoreError};

scenarios!(
    scenario:
    reimporting_an_unchanged_source_writes_nothing,
    changed_rows_update_as_the_options_allow,
    a_second_source_merges_by_card_number,
    readers_missing_from_the_source_are_deactivated,
    bad_rows_are_rejected_and_the_rest_go_in,
    all_or_nothing_writes_nothing_when_a_row_is_rejected,
    a_dry_run_counts_but_writes_nothing,
    an_unfinished_job_leaves_nothing,
    undo_removes_created_readers,
    undo_restores_updated_readers_exactly,
    undo_waits_for_later_jobs,
    one_claimer_per_job_and_expired_leases_are_reclaimed,
    due_sources_are_queued_once,
    mapping_profiles_are_saved_and_loaded,
    rejections_are_stored_up_to_the_cap,
);

const MAPPED: [ReaderField; 6] =
    [ReaderField::CardNo, ReaderField::Name, ReaderField::Category, ReaderField::Affiliation, ReaderField::Email, ReaderField::Status];

fn draft(card: &str, name: &str) -> ReaderDraft {
    ReaderDraft {
        affiliation: Some("数学系".into()),
        contacts: vec![ContactDraft { kind: "email".into(), value: format!("{}@pku.edu.cn", card.to_lowercase()), ..Default::default() }],
        ..common::draft(card, name)
    }
}

/// A validated row of a source mapping [`MAPPED`], found in the source under `external_id`.
fn row(n: u64, external_id: &str, d: &ReaderDraft) -> IncomingReader {
    let input = d.parse(today()).unwrap_or_else(|e| panic!("row {n} does not parse: {e}"));
    let present = MAPPED
        .iter()
        .copied()
        .filter(|f| match f {
            ReaderField::Affiliation => input.affiliation.is_some(),
            ReaderField::Email => !input.contacts.is_empty(),
            _ => true,
        })
        .collect();
    IncomingReader { row: n, external_id: external_id.into(), input, mapped: MAPPED.to_vec(), present, mapped_attributes: vec![] }
}

/// Rows 2.. of a file listing readers S0000…: external id = card number.
fn roster(n: usize) -> Vec<IncomingReader> {
    (0..n).map(|i| row(i as u64 + 2, &format!("S{i:04}"), &draft(&format!("S{i:04}"), &format!("学生{i}")))).collect()
}

fn new_job(source: &str, options: ImportOptions, dry_run: bool) -> NewImportJob {
    NewImportJob {
        source: source.into(),
        format: "csv".into(),
        label: format!("{source}.csv"),
        options,
        dry_run,
        spec: serde_json::json!({ "kind": "file", "path": format!("/data/{source}.csv") }),
    }
}

/// Runs a whole job at once, as the CLI does.
async fn import(store: &Store, source: &str, options: ImportOptions, rows: &[IncomingReader]) -> ImportJob {
    run(store, new_job(source, options, false), rows).await
}

async fn run(store: &Store, new: NewImportJob, rows: &[IncomingReader]) -> ImportJob {
    let job = store.create_import_job(&actor(), &new, JobStatus::Running).await.expect("create job");
    assert_eq!(job.status, JobStatus::Running);
    let mut writer = store.begin_import(&job).await.expect("begin import");
    for batch in rows.chunks(1000) {
        writer.apply(batch).await.expect("apply a batch");
    }
    writer.finish().await.expect("finish")
}

fn counts(rows: u64, f: impl FnOnce(&mut ImportCounts)) -> ImportCounts {
    let mut c = ImportCounts { rows, ..Default::default() };
    f(&mut c);
    c
}

async fn reader_count(store: &Store) -> i64 {
    store.reader_stats().await.unwrap().total
}

/// A record without what every write moves on.
fn content(r: &ReaderRecord) -> ReaderRecord {
    ReaderRecord { version: 0, updated_at: String::new(), ..r.clone() }
}

fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> Msg {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

mod scenario {
    use super::*;

    // 1 ----------------------------------------------------------------------------------------
    pub async fn reimporting_an_unchanged_source_writes_nothing(store: Store) {
        let rows = roster(2500);
        let first = import(&store, "教务处", ImportOptions::default(), &rows).await;
        assert_eq!(first.status, JobStatus::Succeeded);
        assert_eq!(first.counts, counts(2500, |c| c.created = 2500));
        assert_eq!(reader_count(&store).await, 2500);
        let before = store.reader_by_card("S0042").await.unwrap();
        assert_eq!(before.name, "学生42");
        assert_eq!(before.affiliation.as_deref(), Some("数学系"));
        assert_eq!(before.contacts[0].value, "s0042@pku.edu.cn");
        assert_eq!(before.pinyin, "xuesheng42");

        let again = import(&store, "教务处", ImportOptions::default(), &rows).await;
        assert_eq!(again.counts, counts(2500, |c| c.unchanged = 2500));
        let after = store.reader_by_card("S0042").await.unwrap();
        assert_eq!(after, before, "an unchanged row writes nothing, not even updated_at");

        // Each run is one job, audited once; the list is newest first.
        let jobs = store.import_jobs(1, 10).await.unwrap();
        assert_eq!(jobs.total, 2);
        assert_eq!(jobs.items.iter().map(|j| j.id).collect::<Vec<_>>(), [again.id, first.id]);
        assert_eq!(jobs.items[1].source, "教务处");
        let runs =
            common::raw_count("SELECT COUNT(*) FROM audit_log WHERE action = 'import.run' AND entity_id IS NOT NULL AND $1 = 1", 1).await;
        assert_eq!(runs, 2);
        let sources = store.import_sources().await.unwrap();
        assert_eq!(sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["教务处"]);
        // Every field the source maps came from the first job.
        let provenance = store.reader_provenance(before.id).await.unwrap();
        let mapped: Vec<ReaderField> = ReaderField::ALL.iter().copied().filter(|f| MAPPED.contains(f)).collect();
        assert_eq!(provenance.iter().map(|p| p.field).collect::<Vec<_>>(), mapped);
        assert!(provenance.iter().all(|p| p.job_id == first.id && p.source == "教务处" && p.external_id == "S0042"));
    }

    // 2 ----------------------------------------------------------------------------------------
    pub async fn changed_rows_update_as_the_options_allow(store: Store) {
        let first = import(&store, "教务处", ImportOptions::default(), &roster(3)).await;
        let before = store.reader_by_card("S0001").await.unwrap();

        let mut d = draft("S0001", "李四");
        d.affiliation = None;
        d.contacts[0].value = "new@pku.edu.cn".into();
        let mut rows = roster(3);
        rows[1] = row(3, "S0001", &d);
        let options = ImportOptions { update_only_present: true, never_overwrite: vec![ReaderField::Name], ..Default::default() };
        let second = import(&store, "教务处", options, &rows).await;
        assert_eq!(
            second.counts,
            counts(3, |c| {
                c.updated = 1;
                c.unchanged = 2;
            })
        );
        let after = store.reader_by_card("S0001").await.unwrap();
        assert_eq!(after.name, "学生1", "never_overwrite keeps the name");
        assert_eq!(after.affiliation.as_deref(), Some("数学系"), "a blank cell keeps the stored value");
        assert_eq!(after.contacts.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(), ["new@pku.edu.cn"]);
        assert_eq!(after.version, before.version + 1);

        let provenance = store.reader_provenance(after.id).await.unwrap();
        let job_of = |f: ReaderField| provenance.iter().find(|p| p.field == f).map(|p| p.job_id);
        assert_eq!(job_of(ReaderField::Email), Some(second.id));
        assert_eq!(job_of(ReaderField::Name), Some(first.id));
        assert_eq!(job_of(ReaderField::Affiliation), Some(first.id));
        assert!(provenance.iter().all(|p| !p.at.is_empty()));

        // Without the options, a blank cell clears and the name follows the source.
        let third = import(&store, "教务处", ImportOptions::default(), &rows).await;
        assert_eq!(third.counts.updated, 1);
        let after = store.reader_by_card("S0001").await.unwrap();
        assert_eq!((after.name.as_str(), after.affiliation.as_deref()), ("李四", None));
        assert_eq!(after.pinyin, "lisi");
        let provenance = store.reader_provenance(after.id).await.unwrap();
        assert_eq!(provenance.iter().find(|p| p.field == ReaderField::Name).map(|p| p.job_id), Some(third.id));
    }

    // 3 ----------------------------------------------------------------------------------------
    pub async fn a_second_source_merges_by_card_number(store: Store) {
        import(&store, "教务处", ImportOptions::default(), &roster(3)).await;
        // The library system knows S0002 under its own id, with a phone-less, newer email.
        let mut d = draft("S0002", "学生2");
        d.contacts[0].value = "lib@pku.edu.cn".into();
        let rows = vec![row(2, "koha-77", &d), row(3, "koha-78", &draft("K0001", "新读者"))];
        let job = import(&store, "Koha", ImportOptions::default(), &rows).await;
        assert_eq!(
            job.counts,
            counts(2, |c| {
                c.merged = 1;
                c.created = 1;
            })
        );
        assert_eq!(reader_count(&store).await, 4);
        let merged = store.reader_by_card("S0002").await.unwrap();
        assert_eq!(merged.contacts[0].value, "lib@pku.edu.cn");
        let provenance = store.reader_provenance(merged.id).await.unwrap();
        let mut sources: Vec<(&str, &str)> = provenance.iter().map(|p| (p.source.as_str(), p.external_id.as_str())).collect();
        sources.sort();
        sources.dedup();
        assert_eq!(sources, [("Koha", "koha-77"), ("教务处", "S0002")]);
        let email: Vec<&str> = provenance.iter().filter(|p| p.field == ReaderField::Email).map(|p| p.source.as_str()).collect();
        assert_eq!(email, ["Koha", "教务处"], "the newest setter of a field comes first");

        // Re-importing the library system's file finds its own links now.
        let again = import(&store, "Koha", ImportOptions::default(), &rows).await;
        assert_eq!(again.counts, counts(2, |c| c.unchanged = 2));
        // A third record of that source with the same card is another record's card.
        let clash = import(&store, "Koha", ImportOptions::default(), &[row(2, "koha-99", &draft("S0002", "学生2"))]).await;
        assert_eq!(clash.counts, counts(1, |c| c.rejected = 1));
        let rejected = store.import_rejections(clash.id).await.unwrap();
        assert_eq!((rejected[0].row, rejected[0].column.as_str()), (2, "card_no"));
        assert!(rejected[0].reason.en.contains("koha-77"), "{}", rejected[0].reason.en);
    }

    // 4 ----------------------------------------------------------------------------------------
    pub async fn readers_missing_from_the_source_are_deactivated(store: Store) {
        import(&store, "人事处", ImportOptions::default(), &roster(4)).await;
        // A reader only another source knows is never this source's to deactivate.
        import(&store, "Koha", ImportOptions::default(), &[row(2, "k1", &draft("K0001", "馆员"))]).await;
        let options = ImportOptions { deactivate_missing: true, ..Default::default() };
        let listed: Vec<IncomingReader> = roster(4).into_iter().filter(|r| r.external_id != "S0003").collect();
        let job = import(&store, "人事处", options.clone(), &listed).await;
        assert_eq!(
            job.counts,
            counts(3, |c| {
                c.unchanged = 3;
                c.deactivated = 1;
            })
        );
        assert_eq!(store.reader_by_card("S0003").await.unwrap().status, ReaderStatus::Deactivated);
        assert_eq!(store.reader_by_card("S0002").await.unwrap().status, ReaderStatus::Active);
        assert_eq!(store.reader_by_card("K0001").await.unwrap().status, ReaderStatus::Active);
        let provenance = store.reader_provenance(store.reader_by_card("S0003").await.unwrap().id).await.unwrap();
        assert_eq!(provenance.iter().find(|p| p.field == ReaderField::Status).map(|p| p.job_id), Some(job.id));

        // Missing again: already deactivated, nothing more to do.
        let again = import(&store, "人事处", options.clone(), &listed).await;
        assert_eq!(again.counts.deactivated, 0);
        // Back in the file, unchanged since: its values (status active) apply again.
        let back = import(&store, "人事处", options.clone(), &roster(4)).await;
        assert_eq!(
            back.counts,
            counts(4, |c| {
                c.unchanged = 3;
                c.updated = 1;
            })
        );
        assert_eq!(store.reader_by_card("S0003").await.unwrap().status, ReaderStatus::Active);
        // A rejected row may be a listed reader: with any rejection, nobody is deactivated.
        let mut bad = listed.clone();
        bad[0].input.category = "nonesuch".into();
        bad[0].input.name = lector_store::domain::name::PersonName::parse("改名").unwrap();
        let careful = import(&store, "人事处", options, &bad).await;
        assert_eq!((careful.counts.rejected, careful.counts.deactivated), (1, 0));
        assert_eq!(store.reader_by_card("S0003").await.unwrap().status, ReaderStatus::Active);
    }

    // 5 ----------------------------------------------------------------------------------------
    pub async fn bad_rows_are_rejected_and_the_rest_go_in(store: Store) {
        let mut rows = roster(5);
        rows[2].input.category = "alien".into();
        rows[3].external_id = "S0000".into();
        let mut twin = draft("S0001", "双胞胎");
        twin.contacts.clear();
        let twin = row(9, "T-1", &twin);
        rows.push(twin);
        let mut writer = {
            let job =
                store.create_import_job(&actor(), &new_job("教务处", ImportOptions::default(), false), JobStatus::Running).await.unwrap();
            store.begin_import(&job).await.unwrap()
        };
        writer.apply(&rows[..3]).await.unwrap();
        // The caller's own rejections (a row it could not parse), twice for one row: one row.
        let bad_date = |col: &str| Rejection::new(8, col, "2024-13-01", Msg::new("日期无效", "invalid date"));
        writer.reject(bad_date("birth_date"));
        writer.reject(bad_date("expires_on"));
        writer.apply(&rows[3..]).await.unwrap();
        assert_eq!(
            writer.counts(),
            counts(7, |c| {
                c.created = 3;
                c.rejected = 4;
            })
        );
        let job = writer.finish().await.unwrap();
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.counts.created, 3);
        assert_eq!(reader_count(&store).await, 3);
        let rejections = store.import_rejections(job.id).await.unwrap();
        let summary: Vec<(u64, &str)> = rejections.iter().map(|r| (r.row, r.column.as_str())).collect();
        assert_eq!(summary, [(4, "category"), (5, "external_id"), (8, "birth_date"), (8, "expires_on"), (9, "card_no")]);
        assert_eq!(rejections[0].value, "alien");
        assert!(rejections[0].reason.zh.contains("alien") && rejections[0].reason.en.contains("no reader category"));
        assert!(rejections[1].reason.en.contains("row 2"), "{}", rejections[1].reason.en);
        assert!(rejections[4].reason.en.contains("source id S0001"), "{}", rejections[4].reason.en);
    }

    // 6 ----------------------------------------------------------------------------------------
    pub async fn all_or_nothing_writes_nothing_when_a_row_is_rejected(store: Store) {
        import(&store, "教务处", ImportOptions::default(), &roster(2)).await;
        let mut rows = roster(6);
        rows[0].input.name = lector_store::domain::name::PersonName::parse("改名").unwrap();
        rows[4].input.category = "alien".into();
        let options = ImportOptions { all_or_nothing: true, ..Default::default() };
        let job = import(&store, "教务处", options, &rows).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.counts, counts(6, |c| c.rejected = 1));
        let error = job.error.expect("a failed job says why");
        assert!(error.en.contains("1 rows were rejected") && error.en.contains("nothing was written"), "{}", error.en);
        assert!(error.zh.contains("没有写入"));
        assert!(job.finished_at.is_some());
        assert_eq!(reader_count(&store).await, 2);
        assert_eq!(store.reader_by_card("S0000").await.unwrap().name, "学生0");
        assert_eq!(store.import_rejections(job.id).await.unwrap().len(), 1);
        // Nothing to undo in a job that wrote nothing.
        conflict(store.undo_import_job(&actor(), job.id).await);
    }

    // 7 ----------------------------------------------------------------------------------------
    pub async fn a_dry_run_counts_but_writes_nothing(store: Store) {
        import(&store, "教务处", ImportOptions::default(), &roster(3)).await;
        let mut rows = roster(5);
        rows[1].input.name = lector_store::domain::name::PersonName::parse("改名").unwrap();
        rows[4].input.category = "alien".into();
        let before = store.reader_by_card("S0001").await.unwrap();
        let options = ImportOptions { deactivate_missing: false, ..Default::default() };
        let job = run(&store, new_job("教务处", options, true), &rows).await;
        assert!(job.dry_run);
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(
            job.counts,
            counts(5, |c| {
                c.created = 1;
                c.updated = 1;
                c.unchanged = 2;
                c.rejected = 1;
            })
        );
        assert_eq!(reader_count(&store).await, 3);
        assert_eq!(store.reader_by_card("S0001").await.unwrap(), before);
        assert_eq!(store.import_rejections(job.id).await.unwrap().len(), 1, "the report of a dry run keeps its rejections");
        let audited =
            common::raw_count("SELECT COUNT(*) FROM audit_log WHERE action = 'import.dry_run' AND entity_id = CAST($1 AS TEXT)", job.id)
                .await;
        assert_eq!(audited, 1);
        let undo = conflict(store.undo_import_job(&actor(), job.id).await);
        assert!(undo.en.contains("dry run"), "{}", undo.en);
        // The source's next real run still sees the news.
        let real = import(&store, "教务处", ImportOptions::default(), &rows).await;
        assert_eq!((real.counts.created, real.counts.updated), (1, 1));
    }

    // 8 ----------------------------------------------------------------------------------------
    pub async fn an_unfinished_job_leaves_nothing(store: Store) {
        let job = store.create_import_job(&actor(), &new_job("教务处", ImportOptions::default(), false), JobStatus::Running).await.unwrap();
        {
            let mut writer = store.begin_import(&job).await.unwrap();
            writer.apply(&roster(1500)).await.unwrap();
            assert_eq!(writer.counts().created, 1500);
            // The runner fails here (the source broke off): the writer is dropped, not finished.
        }
        let failed = store.fail_import_job(job.id, &Msg::new("文件读取中断", "the file broke off")).await.unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.as_ref().map(|e| e.en.as_str()), Some("the file broke off"));
        assert_eq!(reader_count(&store).await, 0);
        assert_eq!(common::raw_count("SELECT COUNT(*) FROM reader_sources WHERE $1 = 1", 1).await, 0);
        // A job that ended cannot fail again, nor be written to.
        conflict(store.fail_import_job(job.id, &Msg::new("再次", "again")).await);
        conflict(store.begin_import(&failed).await.map(|_| ()));

        // A database error mid-batch (a table the writer needs is gone, so the search keys
        // fail after the reader rows went in) also leaves nothing.
        let pool = common::raw_pool().await;
        sqlx::query("ALTER TABLE reader_search_keys RENAME TO reader_search_keys_away").execute(&pool).await.unwrap();
        let job = store.create_import_job(&actor(), &new_job("教务处", ImportOptions::default(), false), JobStatus::Running).await.unwrap();
        let mut writer = store.begin_import(&job).await.unwrap();
        assert!(writer.apply(&roster(10)).await.is_err());
        drop(writer);
        sqlx::query("ALTER TABLE reader_search_keys_away RENAME TO reader_search_keys").execute(&pool).await.unwrap();
        pool.close().await;
        store.fail_import_job(job.id, &Msg::new("写入失败", "write failed")).await.unwrap();
        assert_eq!(reader_count(&store).await, 0);
        let retry = import(&store, "教务处", ImportOptions::default(), &roster(10)).await;
        assert_eq!(retry.counts.created, 10);
    }

    // 9 ----------------------------------------------------------------------------------------
    pub async fn undo_removes_created_readers(store: Store) {
        store.create_reader(&actor(), &draft("M0001", "手工").parse(today()).unwrap()).await.unwrap();
        let job = import(&store, "教务处", ImportOptions::default(), &roster(1200)).await;
        assert_eq!(reader_count(&store).await, 1201);
        let undone = store.undo_import_job(&actor(), job.id).await.unwrap();
        assert_eq!(undone.status, JobStatus::Undone);
        assert!(undone.undone_at.is_some());
        assert_eq!(reader_count(&store).await, 1);
        assert!(store.reader_by_card("M0001").await.is_ok());
        assert_eq!(common::raw_count("SELECT COUNT(*) FROM reader_sources WHERE $1 = 1", 1).await, 0);
        let audited =
            common::raw_count("SELECT COUNT(*) FROM audit_log WHERE action = 'import.undo' AND entity_id = CAST($1 AS TEXT)", job.id).await;
        assert_eq!(audited, 1);
        let again = conflict(store.undo_import_job(&actor(), job.id).await);
        assert!(again.en.contains("undone"), "{}", again.en);
        // The source imports afresh afterwards.
        let fresh = import(&store, "教务处", ImportOptions::default(), &roster(3)).await;
        assert_eq!(fresh.counts.created, 3);
    }

    // 10 ---------------------------------------------------------------------------------------
    pub async fn undo_restores_updated_readers_exactly(store: Store) {
        // A reader with more than any source maps: related contacts, tags, a mobile, notes.
        let mut full = draft("S0001", "王芳");
        full.contacts.push(ContactDraft { kind: "mobile".into(), value: "13800138000".into(), verified: true, ..Default::default() });
        full.contacts[0].verified = true;
        full.tags = vec!["新生".into()];
        full.notes = Some("手工备注".into());
        full.related =
            vec![lector_store::domain::reader::RelatedDraft { name: "王父".into(), relation: "父亲".into(), ..Default::default() }];
        let manual = store.create_reader(&actor(), &full.parse(today()).unwrap()).await.unwrap();
        let first = import(&store, "教务处", ImportOptions::default(), &roster(3)).await;
        assert_eq!(
            first.counts,
            counts(3, |c| {
                c.created = 2;
                c.merged = 1;
            })
        );
        let after_first = store.reader(manual.id).await.unwrap();
        assert_eq!(after_first.name, "学生1");
        assert_eq!(after_first.tags, ["新生"], "what the source does not map stays");
        assert_eq!(after_first.related, manual.related);

        let mut rows = roster(3);
        let mut d = draft("S0002", "改名");
        d.affiliation = Some("物理系".into());
        rows[2] = row(4, "S0002", &d);
        let before_second = store.reader_by_card("S0002").await.unwrap();
        let second = import(&store, "教务处", ImportOptions::default(), &rows).await;
        assert_eq!(second.counts.updated, 1);
        store.undo_import_job(&actor(), second.id).await.unwrap();
        let restored = store.reader_by_card("S0002").await.unwrap();
        assert_eq!(content(&restored), content(&before_second));
        assert!(restored.version > before_second.version);
        // Its link is as before too: the same file is unchanged news again.
        let replay = import(&store, "教务处", ImportOptions::default(), &roster(3)).await;
        assert_eq!(replay.counts, counts(3, |c| c.unchanged = 3));

        // Undoing the merge gives the manual record back exactly and unlinks it.
        store.undo_import_job(&actor(), replay.id).await.unwrap();
        store.undo_import_job(&actor(), first.id).await.unwrap();
        let back = store.reader(manual.id).await.unwrap();
        assert_eq!(content(&back), content(&manual));
        assert!(store.reader_provenance(manual.id).await.unwrap().is_empty());
        assert_eq!(reader_count(&store).await, 1);
    }

    // 11 ---------------------------------------------------------------------------------------
    pub async fn undo_waits_for_later_jobs(store: Store) {
        let first = import(&store, "教务处", ImportOptions::default(), &roster(3)).await;
        let mut rows = roster(3);
        rows[0] = row(2, "S0000", &draft("S0000", "改名"));
        let second = import(&store, "教务处", ImportOptions::default(), &rows).await;
        let refused = conflict(store.undo_import_job(&actor(), first.id).await);
        assert!(refused.en.contains(&format!("#{}", second.id)) && refused.zh.contains(&format!("#{}", second.id)), "{}", refused.en);
        assert_eq!(reader_count(&store).await, 3);
        // A job that touched other readers does not stand in the way.
        let other = import(&store, "Koha", ImportOptions::default(), &[row(2, "k1", &draft("K0001", "馆员"))]).await;
        store.undo_import_job(&actor(), second.id).await.unwrap();
        store.undo_import_job(&actor(), first.id).await.unwrap();
        assert_eq!(reader_count(&store).await, 1);
        assert_eq!(store.import_job(other.id).await.unwrap().status, JobStatus::Succeeded);
    }

    // 12 ---------------------------------------------------------------------------------------
    pub async fn one_claimer_per_job_and_expired_leases_are_reclaimed(store: Store) {
        assert!(store.claim_import_job("w0", 60).await.unwrap().is_none());
        let mut queued = Vec::new();
        for i in 0..6 {
            let job =
                store.create_import_job(&actor(), &new_job(&format!("源{i}"), ImportOptions::default(), false), JobStatus::Queued).await;
            queued.push(job.unwrap().id);
        }
        // Four workers race for six jobs: each job goes to exactly one of them.
        let mut workers = Vec::new();
        for w in 0..4 {
            let store = store.clone();
            workers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(job) = store.claim_import_job(&format!("w{w}"), 60).await.unwrap() {
                    assert_eq!(job.status, JobStatus::Running);
                    mine.push(job.id);
                }
                mine
            }));
        }
        let mut claimed = Vec::new();
        for w in workers {
            claimed.extend(w.await.unwrap());
        }
        claimed.sort();
        assert_eq!(claimed, queued);

        // A worker that died: its lease runs out and another takes the job over.
        let job = store.create_import_job(&actor(), &new_job("源9", ImportOptions::default(), false), JobStatus::Queued).await.unwrap();
        let (a, b) = tokio::join!(store.claim_import_job("a", -5), store.claim_import_job("b", -5));
        let first = [a.unwrap(), b.unwrap()].into_iter().flatten().map(|j| j.id).collect::<Vec<_>>();
        assert!(first.contains(&job.id));
        let taken_over = store.claim_import_job("c", 60).await.unwrap().expect("an expired lease is claimed again");
        assert_eq!(taken_over.id, job.id);
        store.renew_import_lease(job.id, "c", 60).await.unwrap();
        assert!(store.claim_import_job("d", 60).await.unwrap().is_none(), "a live lease is not taken");
        // A job run directly (the CLI) is never claimed.
        store.create_import_job(&actor(), &new_job("直接", ImportOptions::default(), false), JobStatus::Running).await.unwrap();
        assert!(store.claim_import_job("e", 60).await.unwrap().is_none());
    }

    // 13 ---------------------------------------------------------------------------------------
    pub async fn due_sources_are_queued_once(store: Store) {
        let spec = serde_json::json!({ "kind": "sql", "sql": { "url": "mysql://reader@db/hr" } });
        // A source imported by hand before, with options its re-syncs keep.
        let options = ImportOptions { update_only_present: true, ..Default::default() };
        import(&store, "人事处", options.clone(), &roster(1)).await;
        let bad = store.schedule_import_source(&actor(), "人事处", None, Some(60)).await;
        assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
        let src = store.schedule_import_source(&actor(), "人事处", Some(spec.clone()), Some(60)).await.unwrap();
        assert_eq!(src.every_minutes, Some(60));
        let next = src.next_run_at.clone().expect("a next run");
        // Not yet due.
        assert!(store.queue_due_imports(&lector_store::now_text()).await.unwrap().is_empty());
        // Two servers find it due at once: one job.
        let late = chrono::DateTime::parse_from_rfc3339(&next).unwrap() + chrono::Duration::minutes(1);
        let late = late.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let (a, b) = tokio::join!(store.queue_due_imports(&late), store.queue_due_imports(&late));
        let jobs: Vec<ImportJob> = a.unwrap().into_iter().chain(b.unwrap()).collect();
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!((job.status, job.format.as_str(), job.created_by.as_str()), (JobStatus::Queued, "sql", "scheduler"));
        assert_eq!(job.options, options);
        assert_eq!(job.spec, spec);
        let src = store.import_sources().await.unwrap().into_iter().find(|s| s.name == "人事处").unwrap();
        assert!(src.next_run_at.as_deref() > Some(late.as_str()), "{:?} after {late}", src.next_run_at);
        // Due again while its job still waits: the time moves on, no second job.
        let later = chrono::DateTime::parse_from_rfc3339(&late).unwrap() + chrono::Duration::hours(2);
        let later = later.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        assert!(store.queue_due_imports(&later).await.unwrap().is_empty());
        assert_eq!(store.import_jobs(1, 50).await.unwrap().items.iter().filter(|j| j.status == JobStatus::Queued).count(), 1);
        // Unscheduled: never due.
        let off = store.schedule_import_source(&actor(), "人事处", None, None).await.unwrap();
        assert_eq!((off.every_minutes, off.next_run_at), (None, None));
    }

    // 14 ---------------------------------------------------------------------------------------
    pub async fn mapping_profiles_are_saved_and_loaded(store: Store) {
        assert!(matches!(store.mapping_profile("教务处").await, Err(StoreError::NotFound)));
        store.save_mapping_profile(&actor(), "教务处", "[columns]\n学号 = \"card_no\"\n").await.unwrap();
        store.save_mapping_profile(&actor(), "Koha", "[columns]\ncardnumber = \"card_no\"\n").await.unwrap();
        let saved = store
            .save_mapping_profile(&Actor::system("admin"), "教务处", "[columns]\n学号 = \"card_no\"\n姓名 = \"name\"\n")
            .await
            .unwrap();
        assert_eq!(saved.updated_by, "admin");
        let all = store.mapping_profiles().await.unwrap();
        assert_eq!(all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Koha", "教务处"]);
        let loaded = store.mapping_profile("教务处").await.unwrap();
        assert_eq!(loaded, saved);
        assert!(loaded.toml.contains("姓名"));
        assert!(matches!(store.save_mapping_profile(&actor(), "  ", "x").await, Err(StoreError::Invalid(_))));
    }

    // 15 ---------------------------------------------------------------------------------------
    pub async fn rejections_are_stored_up_to_the_cap(store: Store) {
        let job = store.create_import_job(&actor(), &new_job("大文件", ImportOptions::default(), false), JobStatus::Running).await.unwrap();
        let mut writer = store.begin_import(&job).await.unwrap();
        let extra = 5;
        for n in 0..(MAX_STORED_REJECTIONS + extra) as u64 {
            writer.reject(Rejection::new(n + 2, "card_no", "!", Msg::new("读者证号无效", "card number is invalid")));
        }
        writer.apply(&roster(2)).await.unwrap();
        let job = writer.finish().await.unwrap();
        let total = (MAX_STORED_REJECTIONS + extra) as u64;
        assert_eq!(
            job.counts,
            counts(total + 2, |c| {
                c.rejected = total;
                c.created = 2;
            })
        );
        let stored = store.import_rejections(job.id).await.unwrap();
        assert_eq!(stored.len(), MAX_STORED_REJECTIONS);
        assert_eq!((stored[0].row, stored.last().unwrap().row), (2, MAX_STORED_REJECTIONS as u64 + 1));
    }
}

/// Rows per second of the writer alone, for a fresh import and an unchanged re-import (rows
/// built in memory, so reading, mapping and validation are not counted), on SQLite and then
/// PostgreSQL. `LECTOR_IMPORT_ROWS` sets the size (default 200,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release -p lector-store --test imports -- --ignored --nocapture"]
async fn measure_writer_speed() {
    common::run("measure_writer_speed", measure).await;
}

async fn measure(store: Store) {
    let n: usize = std::env::var("LECTOR_IMPORT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let surnames =
        ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "欧阳"];
    let given =
        ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞"];
    let rows: Vec<IncomingReader> = (0..n)
        .map(|i| {
            let name = format!("{}{}{}", surnames[i % 20], given[i / 20 % 20], given[i / 400 % 20]);
            let mut d = draft(&format!("2024{i:08}"), &name);
            d.affiliation = Some(["数学科学学院", "物理学院", "化学学院", "外国语学院"][i % 4].into());
            d.contacts.push(ContactDraft { kind: "mobile".into(), value: format!("13{i:09}"), ..Default::default() });
            let mut r = row(i as u64 + 2, &format!("2024{i:08}"), &d);
            r.mapped.push(ReaderField::Mobile);
            r.present.push(ReaderField::Mobile);
            r
        })
        .collect();
    for (label, expect_created) in [("fresh import", true), ("unchanged re-import", false)] {
        let job = store.create_import_job(&actor(), &new_job("教务处", ImportOptions::default(), false), JobStatus::Running).await.unwrap();
        let started = std::time::Instant::now();
        let mut writer = store.begin_import(&job).await.unwrap();
        for batch in rows.chunks(2000) {
            writer.apply(batch).await.unwrap();
        }
        let job = writer.finish().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let c = job.counts;
        assert_eq!(if expect_created { c.created } else { c.unchanged }, n as u64);
        println!("{:?} {label}: {n} rows in {secs:.2} s = {:.0} rows/s", store.backend(), n as f64 / secs);
    }
}
