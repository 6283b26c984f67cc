//! Readers resolved from the references circulation files use, many at once, on SQLite and
//! PostgreSQL.

#[macro_use]
#[allow(dead_code)]
mod common;

use common::{actor, draft, today};
use lector_store::domain::import::{ImportOptions, IncomingReader, JobStatus, ReaderField};
use lector_store::imports::NewImportJob;
use lector_store::reader_refs::ReaderRef;
use lector_store::Store;

scenarios!(
    scenario:
    cards_and_source_ids_resolve_in_bulk,
);

async fn import(store: &Store, source: &str, readers: &[(&str, &str)]) {
    let new = NewImportJob {
        source: source.into(),
        format: "csv".into(),
        label: "borrowers.csv".into(),
        options: ImportOptions::default(),
        dry_run: false,
        spec: serde_json::json!({ "kind": "file", "path": "/data/borrowers.csv" }),
    };
    let job = store.create_import_job(&actor(), &new, JobStatus::Running).await.expect("create the job");
    let mapped = vec![ReaderField::CardNo, ReaderField::Name, ReaderField::Category];
    let rows: Vec<IncomingReader> = readers
        .iter()
        .enumerate()
        .map(|(i, (id, card))| IncomingReader {
            row: i as u64 + 2,
            external_id: id.to_string(),
            input: draft(card, "读者").parse(today()).expect("a valid draft"),
            mapped: mapped.clone(),
            present: mapped.clone(),
            mapped_attributes: vec![],
        })
        .collect();
    let mut writer = store.begin_import(&job).await.expect("begin");
    writer.apply(&rows).await.expect("apply");
    writer.finish().await.expect("finish");
}

mod scenario {
    use super::*;

    pub async fn cards_and_source_ids_resolve_in_bulk(store: Store) {
        // More cards than one statement binds, so the chunks are exercised.
        let mut ids = Vec::new();
        for i in 0..520 {
            let input = draft(&format!("C{i:04}"), "读者").parse(today()).expect("a valid draft");
            ids.push(store.create_reader(&actor(), &input).await.expect("create").id);
        }
        import(&store, "koha", &[("101", "K0101"), ("102", "K0102")]).await;
        import(&store, "folio", &[("101", "F0101")]).await;
        let k101 = store.reader_by_card("K0101").await.expect("imported").id;
        let f101 = store.reader_by_card("F0101").await.expect("imported").id;

        let mut refs: Vec<ReaderRef> = (0..520).map(|i| ReaderRef::card(&format!("c{i:04}"))).collect();
        refs.push(ReaderRef::card(" ｃ0007 "));
        refs.push(ReaderRef::card("NOBODY"));
        refs.push(ReaderRef::external("koha", "101"));
        refs.push(ReaderRef::external("folio", " 101 "));
        refs.push(ReaderRef::external("koha", "999"));
        refs.push(ReaderRef::external("nowhere", "101"));
        let found = store.resolve_reader_refs(&refs).await.expect("resolve");

        assert_eq!(found.len(), 522, "520 cards and two source ids");
        assert_eq!(found.get(&ReaderRef::card("C0519")), Some(&ids[519]));
        assert_eq!(ReaderRef::card(" ｃ0007 "), ReaderRef::Card("C0007".into()), "full-width, lower case and padding are folded");
        assert_eq!(found.get(&ReaderRef::external("koha", "101")), Some(&k101));
        assert_eq!(found.get(&ReaderRef::external("folio", "101")), Some(&f101), "the same id under another source is another reader");
        assert!(!found.contains_key(&ReaderRef::card("NOBODY")));
        assert!(!found.contains_key(&ReaderRef::external("koha", "999")));
        assert!(!found.contains_key(&ReaderRef::external("nowhere", "101")));
        assert!(store.resolve_reader_refs(&[]).await.expect("nothing to resolve").is_empty());
    }
}
