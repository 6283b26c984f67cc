//! The demo library's import history: the registrar's list imported once through the real import
//! pipeline (readers it already knew, a changed mobile, a few rows with mistakes) and the same
//! people written differently by another system, which identity resolution merges or queues for
//! review — so the import and identity pages are alive on a fresh demo.

use anyhow::Context;
use lector_domain::contact::ContactKind;
use lector_domain::import::{ImportOptions, JobStatus};
use lector_import::runner::{self, JobSpec};
use lector_store::imports::NewImportJob;
use lector_store::readers::ReaderQuery;
use lector_store::{Actor, Store};
use std::fmt::Write;
use std::path::Path;

/// Readers the registrar's list repeats (a third with a new mobile).
const REPEATED: i64 = 30;
/// Readers the list writes again under a new card number: half with the name in pinyin, half
/// under another name with the same email.
const RESPELLED: i64 = 10;

pub async fn seed(store: &Store, dir: &Path) -> anyhow::Result<()> {
    let actor = Actor::system("demo");
    let page = store.readers(&ReaderQuery { page: 1, per_page: REPEATED + RESPELLED, ..Default::default() }).await?;
    let mut csv = String::from("读者证号,姓名,读者类型,院系,手机,电子邮件\n");
    for (i, summary) in page.items.iter().enumerate() {
        let r = store.reader(summary.id).await?;
        let contact = |kind| r.contacts.iter().find(|c| c.kind == kind).map(|c| c.value.clone()).unwrap_or_default();
        let mut mobile = contact(ContactKind::Mobile);
        if i % 3 == 0 && !mobile.is_empty() {
            mobile = format!("1{:010}", 3_800_000_000u64 + i as u64);
        }
        let (card, name) = if (i as i64) < REPEATED {
            (r.card_no.clone(), r.name.clone())
        } else if i % 2 == 0 {
            (format!("ILS{:06}", r.id), r.pinyin.clone())
        } else {
            // A shared email under another name and no mobile: for a person to decide.
            mobile.clear();
            (format!("ILS{:06}", r.id), "Li Ming".to_string())
        };
        let affiliation = r.affiliation.clone().unwrap_or_default();
        writeln!(csv, "{card},{name},{},{affiliation},{mobile},{}", r.category.code, contact(ContactKind::Email))?;
    }
    csv.push_str("D2026901,,undergraduate,文学院,13800000001,\nD2026902,钱多多,火星人,历史学院,13800000002,\nD2026903,孙小美,graduate,化学学院,12345,\n");
    let path = dir.join("imports").join("demo-2026级学生名单.csv");
    std::fs::create_dir_all(path.parent().unwrap_or(dir)).context("creating the imports folder")?;
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    // The job keeps the path for a later re-run, from wherever the server is started.
    let path = path.canonicalize().unwrap_or(path);

    let spec = JobSpec::File { path, open: Default::default(), profile: None };
    let new = NewImportJob {
        source: "registrar 教务处".into(),
        format: "csv".into(),
        label: "2026级学生名单.csv".into(),
        options: ImportOptions::default(),
        dry_run: false,
        spec: serde_json::to_value(spec)?,
    };
    let job = store.create_import_job(&actor, &new, JobStatus::Running).await?;
    let done = runner::run_job(store, job).await?;
    anyhow::ensure!(done.status == JobStatus::Succeeded, "the demo import failed: {:?}", done.error);
    store.resolve_identities(&actor).await.context("resolving the demo's identities")?;
    Ok(())
}
